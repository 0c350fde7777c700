"""No tracked file points a reader at material only the project's authors have: the sibling folder of shared
notes, its summary page, or its numbered source documents. Sources are cited as papers (author, venue, year,
table/figure/theorem) and real datasets are found through $ARNN_TEST_DATA (tests/helpers/data.py)."""

import re
import shutil
import subprocess

import pytest

from tests.helpers.runs import ROOT

# Built from pieces so that this file does not match itself.
PRIVATE = [
    ("a path into the shared folder", re.compile(re.escape(".." + "/shared"))),
    ("the internal summary page", re.compile(re.escape("PAPER" + ".md"))),
    ("a numbered source document", re.compile(r"\bseeds? 00[0-4]\b", re.IGNORECASE)),
]
SKIPPED_DIRS = ("results/",)  # run outputs: logs and configs written by training, not documentation


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listing.returncode != 0:
        pytest.skip(f"git ls-files failed: {listing.stderr.decode(errors='replace').strip()}")
    return [name for name in listing.stdout.decode().split("\0") if name and not name.startswith(SKIPPED_DIRS)]


def _text(name: str) -> str | None:
    """The file's text, or None for a binary file (or one deleted from the work tree but still tracked)."""
    path = ROOT / name
    if not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_tracked_file_refers_to_private_material():
    offences = []
    for name in _tracked_files():
        text = _text(name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            offences += [f"{name}:{number}: {what}: {line.strip()[:160]}" for what, rx in PRIVATE if rx.search(line)]
    assert not offences, (
        f"{len(offences)} line(s) refer to material a user of the repository does not have; cite the paper "
        "(e.g. Chang et al. (ICLR 2019), Table 1) or use $ARNN_TEST_DATA instead:\n" + "\n".join(offences)
    )
