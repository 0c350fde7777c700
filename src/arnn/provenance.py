"""Where a number came from: the code's version and the CPU it ran on (standard library only, so the doctor and the
bench read them without importing the training stack)."""

import platform
import subprocess
from pathlib import Path


def code_version(checkout: Path = Path(__file__).parent) -> str | None:
    """`git describe` of the checkout, `-dirty` when tracked files outside `results/` have uncommitted changes (a row
    running into the tracked `results/` changes only its own files); None outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=checkout).stdout.strip()

    try:
        described = git("describe", "--always", "--abbrev=7")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results")
    except OSError:
        return None
    if not described:
        return None
    return f"{described}-dirty" if changed else described


def cpu_name() -> str:
    """The CPU's model name (Linux), else the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())
