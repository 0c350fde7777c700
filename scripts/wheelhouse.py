"""Download into a folder the wheels of everything arnn needs beyond torch, for an offline node's Python and platform:

    python scripts/wheelhouse.py --python-version 3.12 --dest wheelhouse

(`make wheelhouse PY=3.12`). The list is this environment's: each distribution that arnn and its tests require, at
the version installed here. Left out: torch, torchvision and triton and what only they require (the node's torch
brings those; what arnn needs by another path, e.g. numpy, is in), ruff (a linter), setuptools (the node's Python
has its own) and arnn itself (the node runs it from src/: scripts/offline_node.sh). A package with no wheel on the
index (pure-Python source only, e.g. antlr4-python3-runtime 4.9.3 of Hydra) is built into one here. Writes
<dest>/requirements.txt, the list scripts/offline_node.sh installs.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

NODE_BRINGS = ("torch", "torchvision", "triton")
NOT_NEEDED = {"arnn", "ruff", "setuptools"}


def _requires(name: str, extras: frozenset[str]) -> list[str]:
    """The names `name` requires in this environment (its markers evaluated here, with `extras`)."""
    found = []
    for text in distribution(name).requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in extras or {""}):
            found.append(re.sub(r"[-_.]+", "-", requirement.name).lower())
    return found


def closure(roots: list[str], extras: frozenset[str] = frozenset(), stop: tuple[str, ...] = ()) -> set[str]:
    """`roots` and everything they require that is installed here, not looking past the names in `stop`."""
    seen: set[str] = set()
    stack = [(root, extras) for root in roots]
    while stack:
        name, name_extras = stack.pop()
        if name in seen or name in stop:
            continue
        try:
            distribution(name)
        except PackageNotFoundError:
            continue  # required only where a marker of another platform holds
        seen.add(name)
        stack += [(child, frozenset()) for child in _requires(name, name_extras)]
    return seen


def requirements() -> list[str]:
    """`name==version` of every distribution the wheelhouse holds."""
    names = closure(["arnn"], frozenset({"dev"}), stop=NODE_BRINGS) - NOT_NEEDED
    return [f"{name}=={distribution(name).version}" for name in sorted(names)]


def download(requirement: str, python_version: str, platforms: list[str], dest: Path) -> None:
    """The wheel of `requirement` for that Python and platform, or one built here from its pure-Python source."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    target = ["--python-version", python_version, "--only-binary=:all:"]
    target += [option for platform in platforms for option in ("--platform", platform)]
    downloaded = subprocess.run(
        [*pip, "download", "--no-deps", *target, "--dest", str(dest), requirement], capture_output=True
    )
    if downloaded.returncode == 0:
        return
    with tempfile.TemporaryDirectory() as built:
        subprocess.run([*pip, "wheel", "--no-deps", "--no-cache-dir", "--wheel-dir", built, requirement], check=True)
        (wheel,) = Path(built).glob("*.whl")
        if not wheel.name.endswith("-none-any.whl"):
            sys.exit(f"error: {requirement} has no wheel for Python {python_version} on {platforms[0]} on the index")
        shutil.move(wheel, dest / wheel.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    parser.add_argument(
        "--platforms",
        default="manylinux_2_28_x86_64,manylinux_2_17_x86_64,manylinux2014_x86_64,manylinux1_x86_64",
        help="the wheel platform tags the node accepts, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--dest", type=Path, default=Path("wheelhouse"))
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    listed = requirements()
    for requirement in listed:
        download(requirement, args.python_version, args.platforms.split(","), args.dest)
    (args.dest / "requirements.txt").write_text("\n".join(listed) + "\n")
    size = sum(path.stat().st_size for path in args.dest.glob("*.whl")) / 2**20
    print(f"{args.dest}: {len(listed)} wheels for Python {args.python_version}, {size:.0f} MiB")


if __name__ == "__main__":
    main()
