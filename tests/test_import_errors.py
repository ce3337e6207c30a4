"""Bad input: a clear message naming the file (and row), exit 1, warehouse unchanged."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import EXTENDED_DIR, Cli, cli_json, query
from music_tracker.importers.errors import ImportInputError

GOOD = EXTENDED_DIR / "Streaming_History_Audio_2018.json"


@pytest.fixture
def loaded(cli: Cli, shared: Path, data_dir: Path) -> dict:
    """A warehouse that already holds one import, to prove bad runs leave it alone."""
    cli("import", str(EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"))
    return cli_json(cli, "status")


def _bad_file(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir(exist_ok=True)
    text = GOOD.read_text()
    if kind == "truncated":
        path = folder / "Streaming_History_Audio_2019.json"
        path.write_text(text[: len(text) // 2])
    elif kind == "not_json":
        path = folder / "endsong_3.json"
        path.write_text("this is not json at all\n" * 10)
    elif kind == "empty":
        path = folder / "StreamingHistory_music_0.json"
        path.write_text("")
    elif kind == "unknown":
        path = folder / "Playlist1.json"
        path.write_text(json.dumps({"playlists": [{"name": "x"}]}))
    elif kind == "impossible_ts":
        rows = json.loads(text)
        rows[41]["ts"] = "2018-13-45T25:61:00Z"
        path = folder / "Streaming_History_Audio_2017.json"
        path.write_text(json.dumps(rows))
    elif kind == "ancient_ts":
        rows = [{"endTime": "1970-01-01 00:00", "artistName": "A", "trackName": "B", "msPlayed": 1}]
        path = folder / "StreamingHistory_music_9.json"
        path.write_text(json.dumps(rows))
    elif kind == "empty_zip":
        path = folder / "my_spotify_data.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("MyData/Userdata.json", '{"username": "x"}')
            zf.writestr("MyData/Read_Me_First.pdf", "%PDF-1.4")
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "cannot be read as Spotify extended streaming history"),
        ("not_json", "not valid JSON"),
        ("empty", "the file is empty"),
        ("unknown", "unknown format"),
        ("impossible_ts", "row 42: impossible timestamp ts='2018-13-45T25:61:00Z'"),
        ("ancient_ts", "row 1: impossible timestamp endTime='1970-01-01 00:00'"),
        ("empty_zip", "the zip archive holds no listening history"),
    ],
)
def test_bad_input_changes_nothing(
    cli: Cli, loaded: dict, data_dir: Path, tmp_path: Path, kind: str, message: str
) -> None:
    bad = _bad_file(tmp_path, kind)
    # the good file is named first: it must not be imported either
    result = cli("import", str(GOOD), str(bad), expect=1)
    output = " ".join(result.output.split())
    assert bad.name in output
    assert message in output
    assert "nothing was imported" in output
    assert cli_json(cli, "status") == loaded
    (files,) = query(data_dir, "select count(*) from raw.import_files")[0]
    assert files == 1
    assert not list((data_dir / "landing").rglob("Streaming_History_Audio_2018.json"))


@pytest.mark.parametrize("second", ["impossible_ts", "too_big"])
def test_of_two_bad_files_the_first_is_named(
    cli: Cli, loaded: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """Files are parsed a file ahead of the one being staged (importers/run.py, _read_all):
    whichever fails first on the clock, the message names the first bad file in order,
    whether the second fails in parsing (another thread) or in hashing (this one)."""
    first = _bad_file(tmp_path, "truncated")
    if second == "too_big":
        cap_mb = GOOD.stat().st_size // 2**20 + 1  # the good and the truncated file pass
        monkeypatch.setenv("MUSIC_TRACKER_IMPORT_MAX_FILE_MB", str(cap_mb))
        later = tmp_path / "Streaming_History_Audio_2024.json"
        later.write_text(GOOD.read_text() + " " * cap_mb * 2**20)
    else:
        later = _bad_file(tmp_path, second)
    result = cli("import", str(GOOD), str(first), str(later), expect=1)
    output = " ".join(result.output.split())
    assert first.name in output and later.name not in output, output
    assert "cannot be read as Spotify extended streaming history" in output
    assert cli_json(cli, "status") == loaded


def test_bad_file_inside_a_folder_is_an_error(cli: Cli, loaded: dict, tmp_path: Path) -> None:
    bad = _bad_file(tmp_path, "truncated")
    result = cli("import", str(bad.parent), expect=1)
    assert bad.name in result.output
    assert cli_json(cli, "status") == loaded


def test_missing_path(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", str(tmp_path / "nope"), expect=1)
    assert "no such file or folder" in result.output


def test_a_zip_bomb_is_refused_before_it_is_extracted(
    cli: Cli, loaded: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member that starts as history but unpacks to more than the cap: refused by its
    declared size, nothing extracted, nothing stored."""
    monkeypatch.setenv("MUSIC_TRACKER_IMPORT_MAX_FILE_MB", "50")
    bomb = tmp_path / "my_spotify_data.zip"
    start = GOOD.read_text()[:2000].rsplit("},", 1)[0] + "},"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open(
            "Spotify Extended Streaming History/Streaming_History_Audio_2020.json", "w"
        ) as member,
    ):
        member.write(start.encode())
        for _ in range(60):  # 60 MB of spaces, about 60 KB compressed
            member.write(b" " * 2**20)
        member.write(b"]")
    assert bomb.stat().st_size < 2**20
    result = cli("import", str(bomb), expect=1)
    assert "Streaming_History_Audio_2020.json: larger than 50 MB uncompressed" in result.output
    assert "MUSIC_TRACKER_IMPORT_MAX_FILE_MB" in result.output
    after = cli_json(cli, "status")
    assert (after["plays"], after["last_import_at"]) == (loaded["plays"], loaded["last_import_at"])


def test_paths_inside_a_zip_never_lead_out_of_the_data_folder(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """Issue 26, item 6, for zips: a member's folders are not kept (only its file name is,
    under landing/), so one that climbs (``../``) or starts at the root lands inside like
    any other; a member without a file name at all (cut at a NUL byte) is refused, named,
    and creates nothing, not a traceback."""
    export = tmp_path / "zips" / "my_spotify_data.zip"
    export.parent.mkdir()
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr("../../escaped/Streaming_History_Audio_2018.json", GOOD.read_bytes())
        # another file (a byte more), so that it is landed too
        zf.writestr("/escaped/Streaming_History_Audio_2019.json", GOOD.read_bytes() + b"\n")
    before = set(tmp_path.rglob("*"))
    cli("import", str(export))
    written = {
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and p not in before
    }
    assert written and all(p.parts[0] == "data" for p in written), written
    landed = sorted(p.name for p in (data_dir / "landing").rglob("*.json"))
    assert landed == ["Streaming_History_Audio_2018.json", "Streaming_History_Audio_2019.json"]

    nameless = tmp_path / "zips" / "nameless.zip"
    with zipfile.ZipFile(nameless, "w") as zf:
        zf.writestr("Q", GOOD.read_bytes())
    data = bytearray(nameless.read_bytes())
    # the name's one byte, in the local and the central header, becomes a NUL: zipfile
    # reads the name up to it, which leaves nothing
    data[data.find(b"PK\x03\x04") + 30] = 0
    data[data.find(b"PK\x01\x02") + 46] = 0
    nameless.write_bytes(bytes(data))
    fresh = tmp_path / "fresh"
    result = cli("import", str(nameless), "--data-dir", str(fresh), expect=1)
    assert f"{nameless}: a member without a file name" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not fresh.exists()


def test_a_downloads_folder_reads_only_the_history_in_it(
    cli: Cli, shared: Path, tmp_path: Path
) -> None:
    """`import ~/Downloads`: a 4 GB disk image and a zipped video beside the export are
    told apart by their first bytes and skipped; only the history is read."""
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    (downloads / "Streaming_History_Audio_2018.json").write_bytes(GOOD.read_bytes())
    with (downloads / "ubuntu.img").open("wb") as image:  # sparse: costs no disk
        image.truncate(4 * 2**30)
    with zipfile.ZipFile(downloads / "holiday.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("holiday/clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2**20)
    summary = cli_json(cli, "import", str(downloads))
    assert summary["files_imported"] == 1 and summary["new_plays"] > 0
    skipped = {Path(s["file"]).name: s["reason"] for s in summary["files_skipped"]}
    assert skipped == {
        "ubuntu.img": "not listening history",
        "clip.mp4": "not listening history",  # named holiday.zip:holiday/clip.mp4
    }


def test_a_memory_cap_too_small_names_the_setting_and_changes_nothing(
    cli: Cli, loaded: dict, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's out-of-memory error is the setting's fault, not the file's: no traceback,
    no "download the export again", and the warehouse as it was."""
    monkeypatch.setenv("MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT", "8MB")
    result = cli("import", str(EXTENDED_DIR), expect=1)
    output = " ".join(result.output.split())
    assert "MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT=8MB, of which an import stores" in output
    assert "nothing stored was lost" in output
    assert "download the export again" not in output
    assert cli_json(cli, "status") == loaded


def test_files_that_do_not_fit_the_cap_together_are_read_one_at_a_time(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the default cap two files are parsed at once; where the two do not fit (seen
    in about half the re-imports of a ListenBrainz export, JSON lines read on two threads
    each), the one that ran out is parsed again when the other has finished, and the import
    is what reading one file at a time gives. One that does not fit alone still fails with
    the cap's message. DuckDB's error is injected: when two parses overlap is up to the
    threads, so a real one comes and goes."""
    import threading

    import duckdb

    from music_tracker.importers import run

    files = [EXTENDED_DIR / "Streaming_History_Audio_2018.json",
             EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"]  # fmt: skip
    clean = cli_json(cli, "import", *map(str, files), "--data-dir", str(tmp_path / "clean"))
    real_parse = run._parse
    lock, in_flight = threading.Lock(), [0]
    first_started = threading.Event()
    always_too_big: set[str] = set()
    parsed: list[str] = []
    injected: list[str] = []
    on_retry: dict[str, Exception] = {}  # a file's own failure, found when parsed again

    def two_do_not_fit(con: Any, item: Any, is_video: bool) -> Any:
        """A parse that starts while another runs is out of the cap, as DuckDB's was."""
        name = item.candidate.base_name
        with lock:
            if in_flight[0] or name in always_too_big:
                injected.append(name)
                raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate")
            if name in injected and name in on_retry:
                raise on_retry[name]
            in_flight[0] += 1
        try:
            if not first_started.is_set():
                first_started.set()
                time.sleep(0.5)  # the second file's parse starts meanwhile
            parsed.append(name)
            return real_parse(con, item, is_video)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(run, "_parse", two_do_not_fit)
    summary = cli_json(cli, "import", *map(str, files))
    assert injected == [files[1].name]  # the second ran out beside the first...
    assert sorted(parsed) == sorted(f.name for f in files)  # ...and was parsed again alone
    for key in ("files_imported", "rows_read", "new_plays", "duplicates", "set_aside"):
        assert summary[key] == clean[key], key
    assert query(data_dir, "select count(*) from raw.spotify_extended_history") == query(
        tmp_path / "clean", "select count(*) from raw.spotify_extended_history"
    )

    # a file that does not fit even alone: the cap's message, nothing stored changed
    before = cli_json(cli, "status")
    always_too_big.add("Streaming_History_Audio_2019.json")
    extra = tmp_path / "more" / "Streaming_History_Audio_2019.json"
    extra.parent.mkdir()
    rows = json.loads(files[0].read_text())
    for row in rows:
        row["ts"] = row["ts"].replace("2018-", "2019-", 1)
    extra.write_text(json.dumps(rows))
    for row in rows:
        row["ts"] = row["ts"].replace("2019-", "2020-", 1)
    (earlier := tmp_path / "more" / "Streaming_History_Audio_2020.json").write_text(
        json.dumps(rows)
    )
    result = cli("import", str(extra), str(files[1].with_name("Streaming_History_Video_2019.json")),
                 expect=1)  # fmt: skip
    assert "MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT=128MB" in " ".join(result.output.split())
    assert cli_json(cli, "status") == before

    # the file's own failure, found when it is parsed again, is what is reported...
    always_too_big.clear()
    injected.clear()
    first_started.clear()
    on_retry["Streaming_History_Audio_2019.json"] = ImportInputError(
        "Streaming_History_Audio_2019.json", "a failure of its own"
    )
    result = cli("import", str(earlier), str(extra), expect=1)
    assert "a failure of its own" in result.output and "Out of Memory" not in result.output
    # ...as is a later file's, once the one that ran out is read alone and passes
    del on_retry["Streaming_History_Audio_2019.json"]
    injected.clear()
    first_started.clear()
    # (named on the command line, a file that is not history fails while the two parse)
    (notes := tmp_path / "more" / "notes.txt").write_text("not listening history\n")
    result = cli("import", str(earlier), str(extra), str(notes), expect=1)
    output = " ".join(result.output.split())
    assert "notes.txt" in output and "Out of Memory" not in output, output
    assert injected and cli_json(cli, "status") == before


def test_a_file_that_cannot_be_landed_changes_nothing(
    cli: Cli, loaded: dict, data_dir: Path
) -> None:
    """Each file's private copy is moved into landing/ in the import's transaction; a
    move that fails fails the run before its commit, named."""
    import hashlib

    sha = hashlib.sha256(GOOD.read_bytes()).hexdigest()
    # where the file would be kept is taken by a file: its folder cannot be made
    (data_dir / "landing" / "spotify_extended_history" / sha).write_text("in the way")
    result = cli("import", str(EXTENDED_DIR / "Streaming_History_Video_2019.json"), str(GOOD),
                 expect=1)  # fmt: skip
    output = " ".join(result.output.split())
    assert f"{GOOD}: could not be kept under {data_dir / 'landing'}" in output
    assert "Not a directory" in output
    assert "nothing was imported" in output
    assert "Traceback" not in output
    assert cli_json(cli, "status") == loaded
    (files,) = query(data_dir, "select count(*) from raw.import_files")[0]
    assert files == 1
    # a folder where the file would be kept, and one named like a killed copy's leftover
    in_the_way = data_dir / "landing" / "spotify_extended_history" / sha
    in_the_way.unlink()
    (in_the_way / GOOD.name).mkdir(parents=True)
    (in_the_way / f"{GOOD.name}.k2j3h4g5.partial").mkdir()
    result = cli("import", str(GOOD), expect=1)
    output = " ".join(result.output.split())
    assert f"{GOOD}: could not be kept under {data_dir / 'landing'}" in output
    assert "Traceback" not in output and cli_json(cli, "status") == loaded


def _rewrite_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Rewrite ``path`` through a shared memory map, as a program that maps its files
    does: same size, and its times can stay as they were (helper-48)."""
    import mmap

    assert len(old) == len(new)
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), 0) as mapped:
        mapped[:] = bytes(mapped).replace(old, new)


@pytest.mark.parametrize("change", ["appended", "mapped", "emptied", "replaced", "removed"])
def test_a_file_written_after_it_was_read_is_imported_as_it_was_read(
    cli: Cli, loaded: dict, data_dir: Path, tmp_path: Path, change: str
) -> None:
    """An import reads each file once, into a private copy hashed as it is written; the
    rows are parsed from that copy and the same copy is kept under landing/. So a file
    written once it was read, even while its rows are still being parsed (a download or a
    sync still under way), changes none of it: the rows, the checksum recorded and the
    copy kept are of the version read. Before, the file was read three times and a write
    through a memory map (which can leave its times as they were) gave rows of one version
    under another's checksum."""
    import hashlib

    from music_tracker.importers.run import ImportOptions, run_import
    from music_tracker.settings import Settings

    export = tmp_path / "export"
    export.mkdir()
    path = export / GOOD.name
    path.write_bytes(GOOD.read_bytes())
    later = export / "Streaming_History_Video_2020.json"
    later.write_bytes((EXTENDED_DIR / later.name).read_bytes())

    def progress(step: str) -> None:
        if step != str(later):  # the first file is read, its rows perhaps still parsing
            return
        if change == "appended":
            with path.open("ab") as handle:
                handle.write(b"\n")
        elif change == "mapped":  # every play ten years earlier: other plays, same size
            _rewrite_in_place(path, b'"ts": "201', b'"ts": "200')
        elif change == "emptied":
            path.write_bytes(b"[]")
        elif change == "replaced":  # a new version renamed over it, as a sync does
            fresh = path.with_suffix(".new")
            fresh.write_bytes(GOOD.read_bytes().replace(b'"ts": "201', b'"ts": "200'))
            fresh.replace(path)
        else:
            path.unlink()

    summary = run_import(Settings(data_dir=data_dir), [export], ImportOptions(progress=progress))
    assert summary.files_imported == 2
    sha = hashlib.sha256(GOOD.read_bytes()).hexdigest()
    (kept,) = (data_dir / "landing" / "spotify_extended_history" / sha).iterdir()
    assert kept.read_bytes() == GOOD.read_bytes()
    expected = json.loads(GOOD.read_bytes())
    (stored,) = query(
        data_dir,
        "select strftime(min(played_at) at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ'),"
        " strftime(max(played_at) at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ')"
        f" from raw.spotify_extended_history where file_sha256 = '{sha}'",
    )
    assert stored == (min(row["ts"] for row in expected), max(row["ts"] for row in expected))
    (rows_read,) = query(
        data_dir, f"select rows_read from raw.import_files where file_sha256 = '{sha}'"
    )
    assert rows_read == (len(expected),)
    assert len(query(data_dir, "select * from raw.import_files")) == 3  # one before, two


def test_a_file_gone_before_it_is_read_is_named(
    cli: Cli, loaded: dict, data_dir: Path, tmp_path: Path
) -> None:
    """A file found in a folder and gone when the import reads it (a browser renaming its
    download): one line naming it, exit 1, nothing stored."""
    export = tmp_path / "export"
    export.mkdir()
    for name in ("Streaming_History_Audio_2018.json", "Streaming_History_Audio_2019.json"):
        (export / name).write_bytes(GOOD.read_bytes())
    from music_tracker.importers.run import ImportOptions, run_import
    from music_tracker.settings import Settings

    gone = export / "Streaming_History_Audio_2019.json"
    with pytest.raises(ImportInputError) as raised:
        run_import(
            Settings(data_dir=data_dir),
            [export],
            ImportOptions(on_files=lambda _found: gone.unlink()),
        )
    assert raised.value.file == str(gone)
    assert "could not be read (No such file or directory)" in str(raised.value)
    assert cli_json(cli, "status") == loaded


@pytest.mark.parametrize("change", ["appended", "mapped"])
def test_a_file_written_while_it_is_read_is_refused(
    cli: Cli, loaded: dict, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:  # fmt: skip
    """Between the first bytes that tell its format and the copy that is parsed, a file
    that changed is refused, named: appended to (its stamp changed), or rewritten through a
    memory map on a page already written, which leaves every time as it was (the copy does
    not begin with the bytes its format was told from). Nothing is stored or kept; once
    nothing writes it, it imports."""
    import mmap

    from music_tracker import files
    from music_tracker.importers import inputs
    from music_tracker.importers.run import run_import
    from music_tracker.settings import Settings

    path = tmp_path / GOOD.name
    path.write_bytes(GOOD.read_bytes())
    handle = path.open("r+b")
    mapped = mmap.mmap(handle.fileno(), 0)
    mapped[0:1] = b"["  # the page is written once, before the import takes the stamp
    stamps: list[files.Stamp] = []
    head = inputs.Candidate.head

    def writer_meanwhile(candidate: inputs.Candidate, count: int) -> bytes:
        first = head(candidate, count)
        stamps.append(files.stamp(path))
        if change == "appended":
            with path.open("ab") as appending:
                appending.write(b"\n")
        else:  # the first play ten years earlier, on the page written before
            at = mapped.find(b'"ts": "201')
            mapped[at : at + 10] = b'"ts": "200'
            stamps.append(files.stamp(path))
        return first

    kept = sorted((data_dir / "landing").rglob("*"))
    monkeypatch.setattr(inputs.Candidate, "head", writer_meanwhile)
    try:
        with pytest.raises(ImportInputError) as raised:
            run_import(Settings(data_dir=data_dir), [path])
    finally:
        mapped.close()
        handle.close()
    assert raised.value.file == str(path)
    assert "changed while it was being read" in str(raised.value)
    if change == "mapped":  # as helper-48 found: the write left the stamp as it was
        assert stamps[0] == stamps[1]
    assert cli_json(cli, "status") == loaded
    assert sorted((data_dir / "landing").rglob("*")) == kept  # no staging folder left
    monkeypatch.undo()
    assert run_import(Settings(data_dir=data_dir), [path]).new_plays > 0


@pytest.mark.timeout(120)
def test_a_pipe_and_a_zip_replaced_after_it_was_listed_are_named(
    cli: Cli, loaded: dict, data_dir: Path, tmp_path: Path
) -> None:
    """A pipe would hang the import at its first read, named or renamed over a file of
    a folder after it was listed; a zip swapped for another after its members were
    listed raised a KeyError from zipfile."""
    import os

    pipe = tmp_path / "history.json"
    os.mkfifo(pipe)
    output = " ".join(cli("import", str(pipe), expect=1).output.split())
    assert f"{pipe}: not a regular file" in output

    from music_tracker.importers.run import ImportOptions, run_import
    from music_tracker.settings import Settings

    export = tmp_path / "export"
    export.mkdir()
    listed = export / GOOD.name
    listed.write_bytes(GOOD.read_bytes())

    def pipe_over(_found: int) -> None:
        os.mkfifo(export / "pipe")
        (export / "pipe").replace(listed)

    with pytest.raises(ImportInputError, match="not a regular file") as raised:
        run_import(Settings(data_dir=data_dir), [export], ImportOptions(on_files=pipe_over))
    assert raised.value.file == str(listed)
    # a zip, listed, then a pipe in its place: its members are named as they are read
    zipped = export / "my_spotify_data.zip"
    listed.unlink()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("MyData/Streaming_History_Audio_2018.json", GOOD.read_bytes())

    def pipe_over_zip(_found: int) -> None:
        os.mkfifo(export / "pipe")
        (export / "pipe").replace(zipped)

    with pytest.raises(ImportInputError, match="not a regular file") as raised:
        run_import(Settings(data_dir=data_dir), [export], ImportOptions(on_files=pipe_over_zip))
    assert raised.value.file == f"{zipped}:MyData/Streaming_History_Audio_2018.json"

    archive = tmp_path / "my_spotify_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("MyData/Streaming_History_Audio_2018.json", GOOD.read_bytes())

    def swap(_found: int) -> None:
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("MyData/Userdata.json", '{"username": "x"}')

    with pytest.raises(ImportInputError, match="could not be read"):
        run_import(Settings(data_dir=data_dir), [archive], ImportOptions(on_files=swap))
    assert cli_json(cli, "status") == loaded


def test_a_folder_it_cannot_read_stops_the_import(data_dir: Path, tmp_path: Path) -> None:
    """pathlib's rglob left an unreadable folder out without a word: its plays were then
    missing from an import that said it was whole. Run without root's right to read
    anything (setpriv drops it), as an owner's own account runs."""
    import os
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to take away root's right to read anything")
    export = tmp_path / "export"
    (export / "sub").mkdir(parents=True)
    (export / GOOD.name).write_bytes(GOOD.read_bytes())
    (export / "sub" / "Streaming_History_Audio_2019.json").write_bytes(GOOD.read_bytes())
    cli = str(Path(sys.executable).with_name("music-tracker"))

    def without_root_reads(mode: int) -> str:
        """The import, ``sub`` at ``mode`` meanwhile: its output (exit 1 checked)."""
        (export / "sub").chmod(mode)
        try:
            done = subprocess.run(
                ["setpriv", "--bounding-set=-dac_override,-dac_read_search", cli, "import",
                 str(export), "--data-dir", str(data_dir)],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
        finally:
            (export / "sub").chmod(0o755)
        output = " ".join((done.stdout + done.stderr).split())
        assert done.returncode == 1, output
        return output

    output = without_root_reads(0)
    assert f"{export / 'sub'}: could not be read (Permission denied)" in output
    assert "nothing was imported" in output
    assert not (data_dir / "warehouse.duckdb").exists()
    # one that can be listed but not entered (r--): named too, not a traceback
    output = without_root_reads(0o644)
    inside = export / "sub" / "Streaming_History_Audio_2019.json"
    assert f"{inside}: could not be read (Permission denied)" in output
    assert "Traceback" not in output
    # a landing/ it cannot write to (its staging folder is made there): named, no traceback
    landing = data_dir / "landing"
    landing.mkdir(parents=True, mode=0o500)
    try:
        output = without_root_reads(0o755)
    finally:
        landing.chmod(0o700)
    assert f"{landing}: could not be written (Permission denied)" in output
    assert "Traceback" not in output


def test_a_long_name_a_lease_and_a_damaged_kept_copy(data_dir: Path, tmp_path: Path) -> None:
    """A file named with 250 bytes imports (its private copy is named apart from it); a
    file under a lease (Samba, NFS), whose holder gives it up when asked, is read once it
    is given up, not refused; a kept copy damaged since an earlier run that failed after
    landing it (appended to), and the .partial file a copy killed mid-way left beside it,
    give way to the copy read now."""
    import hashlib
    import subprocess
    import sys

    from music_tracker.importers.run import run_import
    from music_tracker.settings import Settings

    settings = Settings(data_dir=data_dir)
    long_name = tmp_path / ("Streaming_History_Audio_2018_" + "x" * 216 + ".json")
    assert len(long_name.name.encode()) == 250
    long_name.write_bytes(GOOD.read_bytes())
    sha = hashlib.sha256(GOOD.read_bytes()).hexdigest()
    kept = data_dir / "landing" / "spotify_extended_history" / sha / long_name.name
    kept.parent.mkdir(parents=True)
    kept.write_bytes(GOOD.read_bytes() + b"\n")
    leftover = kept.parent / f"{long_name.name[:64]}.k2j3h4g5.partial"
    leftover.write_bytes(b"[")
    assert run_import(settings, [long_name]).files_imported == 1
    assert kept.read_bytes() == GOOD.read_bytes()
    assert sorted(kept.parent.iterdir()) == [kept]

    leased = tmp_path / "Streaming_History_Audio_2023_3.json"
    leased.write_bytes((EXTENDED_DIR / leased.name).read_bytes())
    holder = subprocess.Popen(  # a write lease, given up when another opens the file
        [sys.executable, "-c", f"""
import fcntl, os, signal, sys, time
fd = os.open({str(leased)!r}, os.O_RDWR)
signal.signal(signal.SIGIO, lambda *_: fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK))
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
print("held", flush=True)
time.sleep(60)
"""],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert run_import(settings, [leased]).new_plays > 0
    finally:
        holder.kill()
        holder.wait()


def test_a_copy_that_cannot_be_finished_stops_a_new_file_not_a_known_one(
    cli: Cli, loaded: dict, data_dir: Path
) -> None:
    """The free-space check passed, then the copy could not be written whole (the disk
    filled meanwhile; here, a limit on a file's size, `ulimit -f`, refuses the same way):
    a new file stops the run, exit 74 as a full disk, with what to do; a file imported
    before is still read to the end and known by its checksum."""
    import resource
    import subprocess
    import sys

    def limited() -> None:  # 512 KB a file: the warehouse only grows past it at a commit
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).with_name("music-tracker")), "import", str(path),
             "--data-dir", str(data_dir), "--json"],
            capture_output=True, text=True, timeout=120, check=False, preexec_fn=limited,
        )  # fmt: skip

    done = run(GOOD)  # 1.4 MB, not imported before
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 74, output
    assert f"{GOOD}: could not be copied into {data_dir / 'landing'} (File too large)" in output
    assert "ulimit -f" in output and "Traceback" not in output
    assert cli_json(cli, "status") == loaded
    known = run(EXTENDED_DIR / "Streaming_History_Audio_2023_3.json")  # 3 MB, the one loaded
    assert known.returncode == 0, known.stdout + known.stderr
    assert json.loads(known.stdout)["files_already_imported"] == 1
    assert cli_json(cli, "status")["plays"] == loaded["plays"]
