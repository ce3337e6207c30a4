"""Files written whole (music_tracker/files.py): several writers of one file at once, the
leftovers of a writer killed before its rename, a name near the file system's limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from music_tracker import files

WRITER = """
import sys
from pathlib import Path
from music_tracker import files
path, me = Path(sys.argv[1]), sys.argv[2]
for n in range(200):
    files.write_text(path, f"{me} {n} " + "x" * 4000)
"""


def test_writers_of_one_file_at_once_each_replace_it_whole(tmp_path: Path) -> None:
    """Four processes rewrite one state file at once (two `status` calls, the watchdog and
    a run): before, they shared one .partial name and one failed on a file the other had
    just renamed (FileNotFoundError) or renamed the other's half-written file."""
    path = tmp_path / "state" / "health.json"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(me)], stderr=subprocess.PIPE)
        for me in range(4)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    me, n, text = path.read_text().split(" ")
    assert me in {"0", "1", "2", "3"} and n == "199" and text == "x" * 4000
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["health.json"]


def test_a_killed_writers_leftover_goes_at_a_later_write(tmp_path: Path) -> None:
    """A writer killed between its write and its rename (the watchdog's SIGKILL, the
    kernel's out-of-memory killer) leaves its .partial file; the first write into that
    folder removes those an hour old, and leaves a younger one (a writer at work) and
    other programs' .partial files alone."""
    path = tmp_path / "cursor.json"
    old = tmp_path / "cursor.json.k2j3h4g5.partial"
    other = tmp_path / "token.json.z9y_8x7w.partial"
    young = tmp_path / "cursor.json.a1b2c3d4.partial"
    not_ours = [tmp_path / ".report.partial", tmp_path / "x.json.partial"]
    for leftover in (old, other, young, *not_ours):
        leftover.write_text("half")
    hour_ago = time.time() - files.STALE_PARTIAL_S - 60
    for leftover in (old, other, *not_ours):
        os.utime(leftover, (hour_ago, hour_ago))
    files.write_text(path, "{}")
    assert path.read_text() == "{}"
    assert not old.exists() and not other.exists()
    assert young.exists() and all(p.exists() for p in not_ours)


def test_a_name_near_the_limit_is_written(tmp_path: Path) -> None:
    """A file name of 250 bytes (an export renamed by its owner; Linux allows 255): its
    .partial name keeps only the name's start, so it fits too."""
    path = tmp_path / ("StreamingHistory_music_0_" + "再" * 75)
    assert len(path.name.encode()) == 250
    files.write_text(path, "[]")
    files.copy(path, tmp_path / "copy.json")
    assert path.read_text() == (tmp_path / "copy.json").read_text() == "[]"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "copy.json"])


def test_a_move_puts_a_private_file_in_private_folders(tmp_path: Path) -> None:
    """An import lands each file by moving its own copy into landing/: the file 0600, the
    folders it makes 0700, whatever the umask; the copy's name is gone."""
    staged = tmp_path / "staging" / "export.json"
    staged.parent.mkdir()
    staged.write_bytes(b"[]")
    staged.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        target = tmp_path / "landing" / "family" / "sha" / "export.json"
        files.move(staged, target)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"[]" and not staged.exists()
    assert target.stat().st_mode & 0o777 == 0o600
    for folder in (target.parent, target.parent.parent, tmp_path / "landing"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


def test_a_move_to_another_file_system_copies(tmp_path: Path) -> None:
    """A source folder of landing/ on a disk of its own (a mount: the staging folder, in
    landing/, is not on it): a rename cannot cross it (EXDEV), so the file is copied
    whole, then its first name removed."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    staged = Path(tempfile.mkdtemp(dir=shm)) / "export.json"
    try:
        staged.write_bytes(os.urandom(3 * 2**20 + 7))
        content = staged.read_bytes()
        target = tmp_path / "landing" / "sha" / "export.json"
        files.move(staged, target)
        assert target.read_bytes() == content and not staged.exists()
        assert target.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in target.parent.iterdir()] == ["export.json"]  # no .partial
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
