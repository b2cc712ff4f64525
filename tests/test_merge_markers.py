"""No file in the repository keeps a merge's conflict markers: a half-resolved merge once reached
main with two such blocks in a stylesheet and a URL module."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^(<<<<<<< |>>>>>>> |=======$)", re.MULTILINE)


def conflicted(text: str) -> bool:
    return bool(MARKER.search(text))


def test_no_tracked_file_has_conflict_markers():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".jpg", ".gif", ".webp", ".ico", ".woff2", ".mo", ".gz"} or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if conflicted(text):
            found.append(name)
    assert found == []


def test_the_check_finds_a_conflict_block():
    assert conflicted("a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> branch\n")
    assert not conflicted("a = 1\n# ======= a ruler\n")
