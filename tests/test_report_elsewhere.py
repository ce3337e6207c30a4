"""The reports on a site the owner already has: the static report copied under a path of
another site (`report --output`), every link followed there from a real HTTP server."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from conftest import Cli
from music_tracker.lock import REPORT_LOCK_FILE, holder
from music_tracker.report import COPY_LIST, REPORT_MARK, copy_report


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            # a filter's choices are pages too (a select that navigates)
            choice = tag == "option" and name == "value" and (value or "").endswith(".html")
            if value and (name in ("href", "src") or choice):
                self.found.append(value)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Another site's document root, served over HTTP as a web server would."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>The owner's site</title>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_report_works_under_a_path_of_another_site(
    built_copy: Path, cli: Cli, site: tuple[Path, str]
) -> None:
    root, base = site
    previous = os.umask(0o022)  # the usual umask, whatever the test run's
    try:
        done = cli("report", "--data-dir", str(built_copy), "--output", str(root / "music"))
    finally:
        os.umask(previous)
    assert "copied to" in done.stdout
    # the other site's web server runs as a user of its own: it enters every folder and
    # reads every file (Vega's runtime and the world map were the owner's alone, copied
    # from the data folder's cache: such a server answered 404 for both, and the charts
    # the browser draws stayed empty)
    for path in [root / "music", *(root / "music").rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    start = f"{base}/music/"
    seen: set[str] = set()
    todo = [start]
    with httpx.Client(timeout=10) as web:
        while todo:
            url = todo.pop()
            if url in seen:
                continue
            seen.add(url)
            answer = web.get(url)
            assert answer.status_code == 200, url
            if not answer.headers.get("content-type", "").startswith("text/html"):
                continue
            parser = _Links()
            parser.feed(answer.text)
            for link in parser.found:
                target = urljoin(url, link).split("#", 1)[0]
                parts = urlsplit(target)
                if parts.scheme not in ("http", "https") or not target.startswith(base):
                    continue  # outside links (none expected) are not this test's
                # every link stays inside the copied folder
                assert parts.path.startswith("/music/"), (url, link)
                todo.append(target)
    reached = {urlsplit(u).path.removeprefix("/music/") or "index.html" for u in seen}
    written = {str(p.relative_to(root / "music")) for p in (root / "music").rglob("*.html")}
    # every dashboard reached from the front page, and every page reached is one written
    dashboards = {str(p.relative_to(root / "music")) for p in (root / "music").glob("*/index.html")}
    assert dashboards <= reached and len(dashboards) >= 14, dashboards - reached
    assert {r for r in reached if r.endswith(".html")} <= written
    assert len(reached & written) > 2 * len(dashboards)  # the filters' pages too
    assert (root / "index.html").read_text().startswith("<!doctype html><title>The owner's")


def _a_report(folder: Path) -> Path:
    """The least a copy takes for a report: its mark."""
    (folder / REPORT_MARK).parent.mkdir(parents=True)
    (folder / REPORT_MARK).write_text("// the report's script")
    return folder


def test_report_output_refuses_a_folder_of_other_files(
    built_copy: Path, cli: Cli, site: tuple[Path, str], tmp_path: Path
) -> None:
    """Refused before the report is built (``report/`` not written): a folder of the
    owner's files, a folder under a file, a name too long for the copy's scratch beside
    it (the file system takes 255 bytes), a loop of links."""
    root, _ = site
    done = cli("report", "--data-dir", str(built_copy), "--output", str(root), expect=1)
    assert "holds files that are not a report" in done.stdout + done.stderr
    assert (root / "index.html").is_file() and not (root / "assets").exists()
    under_a_file = root / "index.html" / "music"
    done = cli("report", "--data-dir", str(built_copy), "--output", str(under_a_file), expect=1)
    assert f"{root / 'index.html'} is a file, not a folder" in done.stdout + done.stderr
    longest = copy_report(_a_report(tmp_path / "report"), root / ("m" * 245))  # scratch: 255
    assert (longest / COPY_LIST).read_text() == "assets/report.js\n"
    long_name = root / ("m" * 246)
    done = cli("report", "--data-dir", str(built_copy), "--output", str(long_name), expect=1)
    assert "choose a name of at most 245 bytes" in done.stdout + done.stderr
    (root / "loop").symlink_to("loop")
    done = cli("report", "--data-dir", str(built_copy), "--output", str(root / "loop" / "m"),
               expect=1)  # fmt: skip
    assert "cannot be followed" in done.stdout + done.stderr
    assert not long_name.exists() and not (built_copy / "report").exists()


def test_report_output_never_replaces_the_data_folder_or_the_owners_files(
    built_copy: Path, cli: Cli, site: tuple[Path, str]
) -> None:
    """A data folder inside the copy (an import run from the site's folder) is never
    replaced with it; a folder of the owner's beside the copy is left alone."""
    root, _ = site
    cli("report", "--data-dir", str(built_copy), "--output", str(root / "music"))
    keep = root / ".music.old"
    keep.mkdir()
    (keep / "precious.html").write_text("the owner's")
    cli("report", "--data-dir", str(built_copy), "--output", str(root / "music"))
    assert (keep / "precious.html").read_text() == "the owner's"
    assert sorted(p.name for p in root.iterdir()) == [".music.old", "index.html", "music"]
    inside = root / "music" / "data"
    built_copy.rename(inside)
    done = cli("report", "--data-dir", str(inside), "--output", str(root / "music"), expect=1)
    assert "holds or lies inside the data folder" in done.stdout + done.stderr
    assert (inside / "warehouse.duckdb").is_file()


def test_a_copy_replaces_only_what_a_copy_wrote_and_is_public_under_any_umask(
    built_copy: Path, cli: Cli, site: tuple[Path, str]
) -> None:
    """The folder of an earlier copy with the owner's files put in it (a repository, a
    CNAME, a download) is refused and left as it was; without them it is replaced, as is
    a copy from before the copies kept their list (known by its pages and assets alone).
    The copy is public whatever the umask (a web server of another user reads it), and
    what an interrupted copy left beside it is cleared."""
    root, _ = site
    music = root / "music"

    def copy(expect: int = 0) -> str:
        previous = os.umask(0o077)  # the strictest: the copy is public anyway
        try:
            done = cli(
                "report", "--data-dir", str(built_copy), "--output", str(music), expect=expect
            )
        finally:
            os.umask(previous)
        return done.stdout + done.stderr

    copy()
    for path in [music, *music.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    owners = {
        ".git/HEAD": "ref: refs/heads/main",
        "CNAME": "music.example",
        "downloads/plays.csv": "x",
    }
    for name, text in owners.items():
        (music / name).parent.mkdir(exist_ok=True)
        (music / name).write_text(text)
    said = copy(expect=1)
    assert "holds what is not part of the report (.git, CNAME, downloads)" in said, said
    assert {name: (music / name).read_text() for name in owners} == owners
    for name in owners:
        (music / name).unlink()
    (music / ".git").rmdir()
    (music / "downloads").rmdir()
    # a copy from before the list: replaced if it holds what the report holds, and pages
    # in its folders (a year no longer in it)
    (music / ".music-tracker-copy").unlink()
    (music / "year-in-review" / "1999.html").write_text("a year no longer in the report")
    left = root / ".music.k3x9_q2a"  # as an interrupted copy leaves its scratch folder
    (left / "old").mkdir(parents=True)
    (left / "old" / "index.html").write_text("the copy before")
    (left / ".music-tracker-scratch").touch()
    owners = root / ".music.notes123"  # named alike, but the owner's: no mark in it
    (owners / "new").mkdir(parents=True)
    copy()
    assert not (music / "year-in-review" / "1999.html").exists()
    assert (music / "index.html").is_file()
    assert not left.exists() and (owners / "new").is_dir()
    (music / ".music-tracker-copy").unlink()
    # but not a page of the owner's beside them
    (music / "404.html").write_text("the owner's")
    assert "(404.html)" in copy(expect=1)
    (music / "404.html").unlink()
    (music / ".music-tracker-copy").write_text("index.html\n")  # a list that lost its lines
    assert "holds what is not part of the report (artist, " in copy(expect=1)
    assert (music / "overview" / "index.html").is_file()  # the copy there stays


def test_a_report_folder_that_is_a_link_is_refused(
    built_copy: Path, cli: Cli, tmp_path: Path
) -> None:
    """report/ linked into a web root: the report, swapped in as a whole, would replace
    the link with a folder of its own and the web root would never get a page."""
    web_root = tmp_path / "www" / "music"
    web_root.mkdir(parents=True)
    (built_copy / "report").symlink_to(web_root)
    said = cli("report", "--data-dir", str(built_copy), expect=1)
    assert "is a link" in said.stdout + said.stderr and "--output" in said.stdout + said.stderr
    assert (built_copy / "report").is_symlink() and not any(web_root.iterdir())


def test_report_that_cannot_be_written_is_not_called_a_failed_copy(
    built_copy: Path, cli: Cli, site: tuple[Path, str]
) -> None:
    """Writing the report itself fails (a file where its cache folder goes): the error
    names the report folder, not a copy that never started."""
    root, _ = site
    (built_copy / "report").mkdir()
    (built_copy / ".report-cache").write_text("in the way")
    done = cli("report", "--data-dir", str(built_copy), "--output", str(root / "music"), expect=1)
    said = done.stdout + done.stderr
    assert f"cannot write the report in {built_copy / 'report'}" in said, said
    assert "cannot copy" not in said and "None" not in said, said
    assert not (root / "music").exists()


def test_leftovers_of_an_earlier_report_are_cleared(built_copy: Path, cli: Cli) -> None:
    """A report/ that was once a file leaves a file where the report swaps its folder
    aside (.report.old), a run stopped at the wrong moment a file or folder where it
    writes (.report.partial): the next report clears them and is written. The report it
    replaces stays as .report.old until the next run (deleted while that run's cards run)."""
    (built_copy / "report").write_text("once a file")
    (built_copy / ".report.old").write_text("left by an earlier run")
    (built_copy / ".report.partial").write_text("left by an earlier run")
    cli("report", "--data-dir", str(built_copy))
    assert (built_copy / "report" / "index.html").is_file()
    assert (built_copy / ".report.old").read_text() == "once a file"  # the one it replaced
    assert not (built_copy / ".report.partial").exists()
    cli("report", "--data-dir", str(built_copy))  # and again, over a folder this time
    assert (built_copy / "report" / "index.html").is_file()
    assert (built_copy / ".report.old" / "index.html").is_file()


def test_two_reports_at_once_write_one_after_the_other(built_copy: Path, tmp_path: Path) -> None:
    """The owner's `report` while another is being written (a scheduled refresh's, say):
    before, both wrote one report/, its .partial folder and caches together, and one
    failed on a file the other had just renamed. Now the second waits for the first; one
    that cannot wait long enough says who holds the report and exits 75."""
    command = [sys.executable, "-m", "music_tracker", "report", "--data-dir", str(built_copy)]
    said = tmp_path / "first.log"
    with said.open("w") as log:  # a file, not a pipe nobody reads while the others run
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "`report`" not in holder(built_copy, REPORT_LOCK_FILE):
            assert first.poll() is None and time.monotonic() < deadline, said.read_text()
            time.sleep(0.05)
        env = {**os.environ, "MUSIC_TRACKER_LOCK_WAIT_S": "0"}
        second = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert second.returncode == 75, second.stdout + second.stderr
        assert "is writing the report: run `music-tracker report` again" in second.stderr
        env["MUSIC_TRACKER_LOCK_WAIT_S"] = "300"
        third = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert third.returncode == 0, third.stdout + third.stderr
        assert first.wait(timeout=300) == 0, said.read_text()
    finally:
        first.kill()
        first.wait()
    assert (built_copy / "report" / "index.html").is_file()
    assert not list(built_copy.glob(".report.partial"))
    assert not list((built_copy / ".report-cache").rglob("*.partial"))


def test_report_serve_answers_compressed_and_stops_on_ctrl_c(
    built_copy: Path, tmp_path: Path
) -> None:
    """`report --serve`: the report over HTTP on 127.0.0.1, text gzip-compressed for a
    client that accepts it (as the deployed proxy serves it), the same bytes either way, and
    not sent again to a browser that has them; a port in use is told with what to do,
    before the report is built; the address is printed once it answers; Ctrl+C stops it,
    exit 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-m", "music_tracker", "report", "--data-dir", str(built_copy)]
    said = tmp_path / "serve.log"
    with said.open("w") as log:
        server = subprocess.Popen(
            [*command, "--serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while f"http://127.0.0.1:{port}/index.html" not in said.read_text():
            assert server.poll() is None and time.monotonic() < deadline, said.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/index.html"
        # (trust_env=False: a proxy in the environment is not for 127.0.0.1)
        plain = httpx.get(url, headers={"Accept-Encoding": "identity"}, trust_env=False)
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.text.lstrip().lower().startswith("<!doctype html>")
        packed = httpx.get(url, headers={"Accept-Encoding": "gzip"}, trust_env=False)
        assert packed.headers["content-encoding"] == "gzip"
        assert int(packed.headers["content-length"]) < len(plain.content) / 2
        last_modified = packed.headers["last-modified"]
        assert last_modified == plain.headers["last-modified"]
        assert packed.content == plain.content  # httpx unpacks it
        for encoding in ("gzip", "identity"):  # a version the browser has is not sent again
            again = httpx.get(
                url,
                headers={"Accept-Encoding": encoding, "If-Modified-Since": last_modified},
                trust_env=False,
            )
            assert again.status_code == 304 and not again.content, encoding
        page = built_copy / "report" / "index.html"
        written = page.stat().st_mtime_ns
        taken = subprocess.run(
            [*command, "--serve", "--port", str(port)], capture_output=True, text=True, check=False
        )
        assert taken.returncode == 1 and "choose --port" in taken.stderr, taken.stderr
        assert page.stat().st_mtime_ns == written  # told before building the report again
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0, said.read_text()
    finally:
        server.kill()


def test_a_star_schema_built_in_part_is_told_not_a_traceback(built_copy: Path, cli: Cli) -> None:
    """`transform --select +fact_track_played` on a first build leaves most of dw unbuilt:
    the report stopped with DuckDB's Catalog Error and a traceback (helper-69). It says
    what is missing and what to run, and leaves the last report as it was."""
    import duckdb

    with duckdb.connect(str(built_copy / "warehouse.duckdb")) as con:
        con.execute("drop table dw.agg_first_listens")
        con.execute("drop table dw.agg_listening_streaks")
    done = cli("report", "--data-dir", str(built_copy), expect=1)
    said = " ".join((done.stdout + done.stderr).split())
    assert (
        "the star schema is not built whole (no dw.agg_first_listens,"
        " dw.agg_listening_streaks): run `music-tracker transform`"
    ) in said, said
    assert "Traceback" not in said and not (built_copy / "report").exists()
