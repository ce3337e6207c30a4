"""`music-tracker backup` and `restore` on the real exports' warehouse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from conftest import Cli, cli_json, held_elsewhere
from music_tracker.backup_layout import MANIFEST, backups


@pytest.fixture
def data_dir(built_copy: Path) -> Path:
    target = built_copy
    (target / "state").mkdir(exist_ok=True)
    (target / "state" / "cursor.json").write_text('{"after_ms": 1}')
    return target


def _contents(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Every table: (rows, a checksum of its rows in a fixed order)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() order by all"
        ).fetchall()
        found = {}
        for schema, table in tables:
            rows, digest = con.execute(
                f"select count(*), md5(string_agg(md5(t::varchar), '' order by md5(t::varchar)))"
                f' from {schema}."{table}" as t'
            ).fetchone()  # type: ignore[misc]
            found[f"{schema}.{table}"] = (rows, digest)
        return found


def test_a_restored_warehouse_equals_the_original(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    result = cli_json(cli, "backup")
    copy = Path(result["path"])
    assert copy.parent == data_dir.parent / "backups" and (copy / MANIFEST).is_file()
    assert result["landing_files_new"] > 0
    restored = tmp_path / "restored"
    cli("restore", str(copy), "--data-dir", str(restored))
    original = _contents(data_dir / "warehouse.duckdb")
    assert _contents(restored / "warehouse.duckdb") == original
    assert len(original) > 20 and original["raw.spotify_extended_history"][0] > 1000
    assert (restored / "state" / "cursor.json").read_text() == '{"after_ms": 1}'
    landed = sorted(p.relative_to(data_dir) for p in (data_dir / "landing").rglob("*"))
    assert sorted(p.relative_to(restored) for p in (restored / "landing").rglob("*")) == landed
    # the restored folder works: the star schema builds from it
    cli("transform", "--data-dir", str(restored))


def test_restore_checks_before_it_touches_anything(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    copy = Path(cli_json(cli, "backup")["path"])
    # into a folder that holds a warehouse: refused without --replace
    refused = cli("restore", str(copy), expect=1)
    assert "--replace" in refused.output
    # a damaged backup: refused, and the target is untouched
    damaged = copy / "warehouse.duckdb"
    data = bytearray(damaged.read_bytes())
    data[5000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    target = tmp_path / "elsewhere"
    result = cli("restore", str(copy), "--data-dir", str(target), expect=1)
    assert "missing or damaged (warehouse.duckdb)" in result.output
    assert "use an older backup" in result.output and not target.exists()
    assert "not a complete backup" in cli("restore", str(tmp_path), expect=1).output


def test_old_backups_are_pruned_and_landing_files_stored_once(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "2")
    made = []
    for _ in range(3):
        made.append(cli_json(cli, "backup"))
        time.sleep(1.05)  # one backup per second at most: the names are the UTC second
    root = data_dir.parent / "backups"
    assert [p.name for p in backups(root)] == [Path(m["path"]).name for m in made[1:]]
    assert made[1]["landing_files_new"] == 0  # landing files are stored once
    assert made[2]["removed"] == [Path(made[0]["path"]).name]


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An S3 server on 127.0.0.1 (moto's, real HTTP) with an empty bucket; its client."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets per process, not per server: start from none
    httpx.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "MUSIC_TRACKER_BACKUP_BUCKET": "s3://music-backups/vm-1",
        "MUSIC_TRACKER_BACKUP_BUCKET_ENDPOINT": endpoint,
        "MUSIC_TRACKER_BACKUP_BUCKET_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="music-backups")
    yield client
    server.stop()


# what a backup folder holds besides the backups: their landing files, and the lock one
# backup at a time holds (data folders side by side share the folder)
_NOT_BACKUPS = {"landing", ".backup.lock"}


def _keys(client: Any) -> list[str]:
    answer = client.list_objects_v2(Bucket="music-backups", Prefix="vm-1/")
    return sorted(item["Key"] for item in answer.get("Contents", []))


def test_backups_go_to_the_bucket_and_come_back_from_it(
    cli: Cli, data_dir: Path, tmp_path: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "2")
    made = []
    for _ in range(3):
        made.append(cli_json(cli, "backup"))
        time.sleep(1.05)
    names = [Path(m["path"]).name for m in made]
    keys = _keys(bucket)
    # the bucket mirrors the folder: the two kept backups, each complete, landing files once
    assert {k.split("/")[1] for k in keys} == {"landing", *names[1:]}
    for name in names[1:]:
        assert f"vm-1/{name}/{MANIFEST}" in keys and f"vm-1/{name}/warehouse.duckdb" in keys
    landing = sorted(p for p in (data_dir / "landing").rglob("*") if p.is_file())
    assert len([k for k in keys if k.startswith("vm-1/landing/")]) == len(landing)
    assert made[0]["bucket"]["uploaded_files"] > len(landing)
    assert made[1]["bucket"]["uploaded_files"] < made[0]["bucket"]["uploaded_files"]
    assert made[2]["bucket"]["deleted_files"] > 0  # the first backup, pruned in both places

    # a new machine: no local backups, an empty data folder; the newest comes from the bucket
    fresh = tmp_path / "new-vm" / "data"
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_DIR", str(tmp_path / "new-vm" / "backups"))
    cli("restore", "s3://music-backups/vm-1", "--data-dir", str(fresh))
    assert _contents(fresh / "warehouse.duckdb") == _contents(data_dir / "warehouse.duckdb")
    assert (fresh / "state" / "cursor.json").read_text() == '{"after_ms": 1}'
    assert [p.name for p in backups(tmp_path / "new-vm" / "backups")] == [names[2]]
    # a named one, and one the bucket does not have
    other = tmp_path / "other" / "data"
    cli("restore", f"s3://music-backups/vm-1/{names[1]}", "--data-dir", str(other))
    assert _contents(other / "warehouse.duckdb") == _contents(data_dir / "warehouse.duckdb")
    empty = str(tmp_path / "empty")
    gone = cli("restore", f"s3://music-backups/vm-1/{names[0]}", "--data-dir", empty, expect=1)
    assert "no complete backup of that name" in gone.output
    # over a warehouse: refused before anything is fetched
    local = tmp_path / "new-vm" / "backups" / names[1]
    shutil.rmtree(local)
    url = f"s3://music-backups/vm-1/{names[1]}"
    refused = cli("restore", url, "--data-dir", str(fresh), expect=1)
    assert "--replace" in refused.output and not local.exists()
    # the new machine backs up: the bucket keeps its own newest, not only what this
    # machine holds (one backup of its own and one fetched)
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "3")
    time.sleep(1.05)
    newest = Path(cli_json(cli, "backup", "--data-dir", str(fresh))["path"]).name
    assert {k.split("/")[1] for k in _keys(bucket)} == {"landing", names[1], names[2], newest}


def test_an_unreachable_bucket_keeps_the_local_backup_and_says_so(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch, bucket: Any
) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_BUCKET", "s3://no-such-bucket")
    result = cli("backup", expect=1)
    text = " ".join(result.output.split())
    assert "but not to the bucket" in text and "MUSIC_TRACKER_BACKUP_BUCKET" in text
    assert len(backups(data_dir.parent / "backups")) == 1  # the local one is complete


def _tamper(manifest: Path, section: str, key: str, target: Path) -> None:
    """Add to a backup's manifest an entry ``key`` that stands for ``target``, with its true
    size and checksum: only the path is wrong."""
    entries = json.loads(manifest.read_text())
    data = target.read_bytes()
    entries[section][key] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest.write_text(json.dumps(entries))


@pytest.mark.parametrize(
    ("section", "key"),
    [("landing", "../../escaped.txt"), ("files", "state/../../../escaped.txt")],
)
def test_a_manifest_naming_a_path_outside_its_folder_is_refused(
    cli: Cli, data_dir: Path, tmp_path: Path, section: str, key: str
) -> None:
    """Issue 26, item 6: a manifest's paths are joined onto the backup's folders and the data
    folder; one that climbs out of them refuses the whole restore, before anything is
    written, naming the entry."""
    copy = Path(cli_json(cli, "backup")["path"])
    # both keys name this file from the backup's folders (backups/landing, backups/<time>)
    escaped = tmp_path / "escaped.txt"
    escaped.write_text("someone else's file")
    _tamper(copy / MANIFEST, section, key, escaped)
    target = tmp_path / "restored" / "data"
    result = cli("restore", str(copy), "--data-dir", str(target), expect=1)
    text = " ".join(result.output.split())
    assert f"{section} entry {key!r}" in text and "outside" in text, text
    assert "nothing was restored" in text
    assert not (tmp_path / "restored").exists()  # landing/../../escaped.txt would be here


def test_a_bucket_manifest_naming_a_path_outside_is_refused_before_fetching(
    cli: Cli, data_dir: Path, tmp_path: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same from the bucket: its manifest is checked before anything is fetched, so an
    object under a climbing key never lands outside the local backup folder."""
    name = Path(cli_json(cli, "backup")["path"]).name
    key = f"vm-1/{name}/{MANIFEST}"
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(bucket.get_object(Bucket="music-backups", Key=key)["Body"].read())
    payload = tmp_path / "payload.txt"
    payload.write_text("not a landing file")
    _tamper(manifest, "landing", "../../escaped.txt", payload)
    bucket.put_object(Bucket="music-backups", Key=key, Body=manifest.read_bytes())
    bucket.put_object(
        Bucket="music-backups", Key="vm-1/landing/../../escaped.txt", Body=payload.read_bytes()
    )
    machine = tmp_path / "new-vm"
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_DIR", str(machine / "backups"))
    result = cli("restore", "s3://music-backups/vm-1", "--data-dir", str(machine / "data"),
                 expect=1)  # fmt: skip
    text = " ".join(result.output.split())
    assert "landing entry '../../escaped.txt'" in text and "outside" in text, text
    assert not (machine / "escaped.txt").exists()  # backups/landing/../../escaped.txt
    assert not (machine / "data").exists() and not (machine / "backups" / name).exists()


def test_a_damaged_backup_is_reported_and_skipped_never_pruned_nor_fatal(
    cli: Cli, data_dir: Path, tmp_path: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26, item 8: a backup whose manifest was cut short is named in a warning on every
    later backup, which otherwise goes on (pruning, the bucket); it is neither deleted nor
    counted among the kept ones; restoring it says what is wrong."""
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "2")
    damaged = Path(cli_json(cli, "backup")["path"])
    text = (damaged / MANIFEST).read_text()
    (damaged / MANIFEST).write_text(text[: len(text) // 2])
    made = []
    for _ in range(3):
        time.sleep(1.05)  # one backup per second at most
        result = cli("backup", "--json")
        assert f"{damaged} is damaged" in " ".join(result.stderr.split()), result.stderr
        made.append(json.loads(result.stdout))
    names = [Path(m["path"]).name for m in made]
    assert [m["damaged"] for m in made] == [[damaged.name]] * 3
    # the newest two good ones kept: the damaged one neither counted nor deleted
    assert [m["removed"] for m in made] == [[], [], [names[0]]]
    root = data_dir.parent / "backups"
    assert sorted(p.name for p in root.iterdir() if p.name not in _NOT_BACKUPS) == sorted(
        [damaged.name, *names[1:]]
    )
    # the bucket got each new backup (the damaged one was whole when it went there)
    assert {k.split("/")[1] for k in _keys(bucket)} == {"landing", *names[1:]}
    restored = tmp_path / "restored"
    refused = cli("restore", str(damaged), "--data-dir", str(restored), expect=1)
    words = " ".join(refused.output.split())
    assert f"{damaged / MANIFEST} is damaged" in words and "nothing was restored" in words
    assert not restored.exists()
    # the newest good one restores
    cli("restore", made[2]["path"], "--data-dir", str(restored))


CLI = str(Path(sys.executable).with_name("music-tracker"))
_HOLDERS = {
    # the owner's DuckDB shell, holding the warehouse file itself
    "duckdb": (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1] + '/warehouse.duckdb')\n"
        "print('held', flush=True); sys.stdin.readline()\n"
    ),
    # another writer of ours, holding the writer lock
    "writer": (
        "import sys; from pathlib import Path\n"
        "from music_tracker.lock import writer_lock\n"
        "with writer_lock(Path(sys.argv[1]), 'a long transform', wait_s=0):\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
    ),
}


@pytest.mark.parametrize("holder", list(_HOLDERS))
def test_backup_and_restore_wait_for_another_holder_then_exit_75_naming_it(
    cli: Cli, data_dir: Path, holder: str
) -> None:
    """Issue 26, item 7: like every command that writes, `backup` (and `restore --replace`)
    waits MUSIC_TRACKER_LOCK_WAIT_S for whoever holds the warehouse, then exits 75 naming
    it, with nothing made or changed: no DuckDB lock traceback, no waiting a flow's
    MUSIC_TRACKER_WRITER_WAIT_S."""
    copy = Path(cli_json(cli, "backup")["path"])
    before = _contents(data_dir / "warehouse.duckdb")
    env = {
        **os.environ,
        "MUSIC_TRACKER_DATA_DIR": str(data_dir),
        "MUSIC_TRACKER_LOCK_WAIT_S": "1",
        "MUSIC_TRACKER_WRITER_WAIT_S": "600",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDERS[holder], str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        for args in (["backup"], ["restore", str(copy), "--replace"]):
            started = time.monotonic()
            done = subprocess.run(
                [CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            seconds = time.monotonic() - started
            said = " ".join(done.stderr.split())
            assert done.returncode == 75, (args, done.returncode, done.stderr)
            assert "Traceback" not in done.stdout + done.stderr
            named = f"(PID {process.pid})" if holder == "duckdb" else "`a long transform` (process"
            assert named in said and f"run `music-tracker {args[0]}` again" in said, said
            assert seconds >= 1, seconds  # it waited its MUSIC_TRACKER_LOCK_WAIT_S first
    finally:
        process.communicate("\n", timeout=30)
    assert backups(data_dir.parent / "backups") == [copy]  # no backup made, none half-made
    left = (data_dir.parent / "backups").iterdir()
    assert not [p for p in left if p.name.startswith(".") and p.name not in _NOT_BACKUPS]
    assert _contents(data_dir / "warehouse.duckdb") == before


def test_landed_files_named_like_leftovers_are_backed_up(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """A backup leaves out what runs that never committed left in landing/ (a staging
    folder, a killed copy's .partial file) by what they are, not by name alone: a file
    named on the command line as `.history.json` or `x.download.partial` is landed whole
    and backed up (helper-50 found both left out, and their only copies pruned)."""
    from conftest import EXTENDED_DIR

    rows = json.loads((EXTENDED_DIR / "Streaming_History_Audio_2018.json").read_bytes())
    named = [tmp_path / ".history.json", tmp_path / "history.download.partial"]
    for index, path in enumerate(named):  # contents of their own: landed under their sha
        path.write_text(json.dumps(rows[index::2]))
    imported = cli_json(cli, "import", *map(str, named))
    assert imported["files_imported"] == 2
    landed = {str(p.relative_to(data_dir / "landing")) for p in (data_dir / "landing").rglob("*")
              if p.is_file() and p.name in {path.name for path in named}}  # fmt: skip
    assert len(landed) == 2
    made = Path(cli_json(cli, "backup")["path"])
    assert landed <= set(json.loads((made / MANIFEST).read_text())["landing"])
    restored = tmp_path / "restored"
    cli("restore", str(made), "--data-dir", str(restored))
    assert all((restored / "landing" / relative).is_file() for relative in landed)


# -- whose backup: data folders sharing one backup folder and bucket ------------------------


def _sibling(cli: Cli, data_dir: Path) -> Path:
    """A second data folder beside ``data_dir`` (~/music-test beside ~/music), made from
    the real account-data export: both share the default backup folder."""
    from conftest import ACCOUNT_DIR

    sibling = data_dir.parent / "music-test"
    cli("import", str(ACCOUNT_DIR), "--data-dir", str(sibling))
    return sibling


def _owner(backup: Path) -> str | None:
    folder = json.loads((backup / MANIFEST).read_text()).get("data_folder")
    return folder["id"] if folder else None


def test_a_sibling_data_folders_backups_never_prune_this_ones(
    cli: Cli, data_dir: Path, bucket: Any
) -> None:
    """The reviewer's defect: ~/music and ~/music-test share ../backups (and the bucket's
    setting); eight backups of ~/music-test, one more than MUSIC_TRACKER_BACKUP_KEEP's 7,
    deleted ~/music's only backup and its landing files, and `--json` listed it under
    "removed". Each prunes only its own, here and in the bucket."""
    sibling = _sibling(cli, data_dir)
    mine = cli_json(cli, "backup")
    name = Path(mine["path"]).name
    root = data_dir.parent / "backups"
    made = []
    for _ in range(8):
        time.sleep(1.05)  # one backup per second at most
        made.append(cli_json(cli, "backup", "--data-dir", str(sibling)))
    theirs = [Path(m["path"]).name for m in made]
    assert [m["data_folder"]["path"] for m in made] == [str(sibling)] * 8
    assert len({m["data_folder"]["id"] for m in made} | {mine["data_folder"]["id"]}) == 2
    # the sibling kept its newest 7 and removed its own oldest; this folder's is untouched
    assert [m["removed"] for m in made] == [[]] * 7 + [[theirs[0]]]
    assert made[-1]["kept"] == theirs[1:]
    assert all(m["left_alone"]["other_data_folders"] == [name] for m in made)
    assert made[-1]["bucket"]["removed"] == [theirs[0]]
    assert made[-1]["bucket"]["left_alone"]["other_data_folders"] == [name]
    assert [p.name for p in backups(root)] == sorted([name, *theirs[1:]])
    assert {k.split("/")[1] for k in _keys(bucket)} == {"landing", name, *theirs[1:]}
    # this folder's backup is whole, with its landing files, here and from the bucket
    restored = data_dir.parent / "restored"
    cli("restore", str(root / name), "--data-dir", str(restored))
    assert _contents(restored / "warehouse.duckdb") == _contents(data_dir / "warehouse.duckdb")
    from_bucket = data_dir.parent / "from-bucket"
    cli("restore", f"s3://music-backups/vm-1/{name}", "--data-dir", str(from_bucket))
    assert _contents(from_bucket / "warehouse.duckdb") == _contents(data_dir / "warehouse.duckdb")
    # the human summary says the same
    time.sleep(1.05)
    said = " ".join(cli("backup", "--data-dir", str(sibling)).output.split())
    assert f"kept 7 backups of this data folder ({made[0]['data_folder']['id'][:8]})" in said
    assert f"removed 1 older: {theirs[1]}" in said and "left alone: 1 of other data" in said


def test_restore_without_a_name_takes_the_target_folders_own_newest_or_refuses(
    cli: Cli, data_dir: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sibling = _sibling(cli, data_dir)
    root = data_dir.parent / "backups"
    mine = []
    for folder in (data_dir, sibling, data_dir, sibling):  # the sibling's is the newest
        result = cli_json(cli, "backup", "--data-dir", str(folder))
        if folder == data_dir:
            mine.append(Path(result["path"]).name)
        time.sleep(1.05)
    newest_of_sibling = backups(root)[-1].name
    # into the data folder itself (--replace): its own newest, from the folder and bucket
    for source in (str(root), "s3://music-backups/vm-1"):
        done = cli_json(cli, "restore", source, "--replace")
        assert Path(done["restored_from"]).name == mine[-1], (source, done)
        assert done["data_folder"] == _owner(root / mine[-1])
    # the sibling's own newest into the sibling
    done = cli_json(cli, "restore", str(root), "--replace", "--data-dir", str(sibling))
    assert Path(done["restored_from"]).name == newest_of_sibling
    # into an empty folder: which one cannot be told; refused naming both and how to pick
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_DIR", str(data_dir.parent / "new-vm-backups"))
    empty = data_dir.parent / "new-vm"
    for source in (str(root), "s3://music-backups/vm-1"):
        refused = cli("restore", source, "--data-dir", str(empty), expect=1)
        said = " ".join(refused.output.split())
        assert "which backup to restore cannot be told" in said, said
        assert f"2 of the data folder {_owner(root / mine[-1])[:8]}" in said  # type: ignore[index]
        assert f"(backed up from {data_dir}), the newest {mine[-1]}" in said
        assert f"(backed up from {sibling}), the newest {newest_of_sibling}" in said
        assert "nothing was restored: name the one to restore, as in" in said
        assert f"`music-tracker restore {source}/{newest_of_sibling}`" in said
        assert not empty.exists()
    assert not (data_dir.parent / "new-vm-backups").exists()  # nothing fetched
    # named, on a new machine (the old one's folder gone): restored, and the restored
    # folder continues that data folder's backups
    data_dir.rename(data_dir.parent / "old-vm-gone")
    cli("restore", f"s3://music-backups/vm-1/{mine[0]}", "--data-dir", str(empty))
    assert json.loads((empty / "state" / "data-folder.json").read_text()) == {
        "id": _owner(root / mine[0]),
        "path": str(empty),
    }
    own_id = _owner(root / mine[0])
    monkeypatch.delenv("MUSIC_TRACKER_BACKUP_DIR")
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "2")
    made = cli_json(cli, "backup", "--data-dir", str(empty))
    assert made["data_folder"] == {"id": own_id, "path": str(empty)}
    assert made["removed"] == [mine[0]] and made["kept"] == [mine[1], Path(made["path"]).name]
    assert made["left_alone"]["other_data_folders"] == [
        p.name for p in backups(root) if _owner(p) != made["data_folder"]["id"]
    ]


def test_a_folder_restored_beside_the_original_gets_its_own_id(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """~/music's backup restored into ~/music-try while ~/music is still there took its
    id: the two then pruned each other's backups, and restoring ~/music fetched the
    other's plays (helper-68). The second folder now gets an id of its own, and says so."""
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "1")
    original = cli_json(cli, "backup")
    trial = data_dir.parent / "music-try"
    said = " ".join(cli("restore", original["path"], "--data-dir", str(trial)).output.split())
    assert f"the data folder this backup came from, {data_dir}, is still there" in said, said
    own = json.loads((trial / "state" / "data-folder.json").read_text())
    assert own["path"] == str(trial) and own["id"] != original["data_folder"]["id"]
    for _ in range(2):
        time.sleep(1.05)
        made = cli_json(cli, "backup", "--data-dir", str(trial))
        assert made["data_folder"]["id"] == own["id"]
    assert Path(original["path"]).is_dir()  # never pruned by the trial folder's backups
    # restored there again: it keeps the id it was given (helper-69: a new one each time
    # left its earlier backups to no one)
    cli("restore", original["path"], "--replace", "--data-dir", str(trial))
    assert json.loads((trial / "state" / "data-folder.json").read_text())["id"] == own["id"]
    # restoring ~/music without naming a backup takes its own, not the trial's newest
    done = cli_json(cli, "restore", str(data_dir.parent / "backups"), "--replace")
    assert done["restored_from"] == original["path"]
    assert done["data_folder"] == original["data_folder"]["id"] and done["note"] is None


def test_a_copied_data_folder_gets_its_own_id_and_leaves_the_originals_backups(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cp -r ~/music ~/music-test` copies the id file too: the copy's first backup sees
    the id file naming ~/music, which still holds that id, and gives the copy its own."""
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "1")
    original = cli_json(cli, "backup")
    copy = data_dir.parent / "music-copy"
    shutil.copytree(data_dir, copy)
    time.sleep(1.05)
    result = cli("backup", "--json", "--data-dir", str(copy))
    made = json.loads(result.stdout)
    said = " ".join(result.stderr.split())
    assert f"{copy} is a copy of the data folder {data_dir}" in said, said
    assert made["data_folder"]["id"] != original["data_folder"]["id"]
    assert made["removed"] == [] and made["left_alone"]["other_data_folders"] == [
        Path(original["path"]).name
    ]
    # the original keeps its id; a moved folder keeps its own too
    time.sleep(1.05)
    again = cli_json(cli, "backup")
    assert again["data_folder"]["id"] == original["data_folder"]["id"]
    assert again["removed"] == [Path(original["path"]).name]
    moved = data_dir.parent / "music-moved"
    copy.rename(moved)
    time.sleep(1.05)
    after = cli_json(cli, "backup", "--data-dir", str(moved))
    assert after["data_folder"] == {"id": made["data_folder"]["id"], "path": str(moved)}
    assert after["removed"] == [Path(made["path"]).name]


def _as_before_the_ids(backup: Path) -> None:
    """Make a backup look like one an older version made: no data_folder in its manifest,
    no id file in its state/."""
    manifest = json.loads((backup / MANIFEST).read_text())
    del manifest["data_folder"], manifest["files"]["state/data-folder.json"]
    (backup / "state" / "data-folder.json").unlink()
    (backup / MANIFEST).write_text(json.dumps(manifest))


def test_backups_from_before_the_ids_are_never_pruned_and_restore_as_before(
    cli: Cli, data_dir: Path, tmp_path: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which data folder made an older version's backup cannot be known: none prunes it
    (not even the folder that made it: delete them by hand), here or in the bucket."""
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "2")
    root = data_dir.parent / "backups"
    old = []
    for _ in range(2):
        old.append(Path(cli_json(cli, "backup")["path"]))
        time.sleep(1.05)
    (data_dir / "state" / "data-folder.json").unlink()  # an older version never wrote it
    for backup in old:
        _as_before_the_ids(backup)
    # the bucket holds them as an older version uploaded them
    for backup in old:
        for path in sorted(backup.rglob("*"), key=lambda p: p.name == MANIFEST):
            if path.is_file():
                key = f"vm-1/{backup.name}/{path.relative_to(backup)}"
                bucket.put_object(Bucket="music-backups", Key=key, Body=path.read_bytes())
    # with only those, restore into an empty folder takes the newest, as it always did
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_DIR", str(tmp_path / "vm-2" / "backups"))
    done = cli_json(cli, "restore", "s3://music-backups/vm-1", "--data-dir", str(tmp_path / "a"))
    assert Path(done["restored_from"]).name == old[-1].name and done["data_folder"] is None
    monkeypatch.delenv("MUSIC_TRACKER_BACKUP_DIR")
    sibling = _sibling(cli, data_dir)
    for folder in (data_dir, sibling, sibling, sibling, data_dir, data_dir):
        made = cli_json(cli, "backup", "--data-dir", str(folder))
        assert made["left_alone"]["without_data_folder"] == [p.name for p in old]
        assert made["bucket"]["left_alone"]["without_data_folder"] == [p.name for p in old]
        assert not {p.name for p in old} & set(made["removed"] + made["bucket"]["removed"])
        time.sleep(1.05)
    assert {p.name for p in old} <= {p.name for p in backups(root)}
    assert {p.name for p in old} <= {k.split("/")[1] for k in _keys(bucket)}
    assert len(backups(root)) == 2 + 2 + 2  # the old ones, and each folder's newest two
    said = " ".join(cli("backup").output.split())
    assert "2 made before backups named their data folder (never pruned" in said
    # the old ones restore whole, their landing files kept
    for backup in old:
        target = tmp_path / "restored" / backup.name
        cli("restore", str(backup), "--data-dir", str(target))
        assert (target / "warehouse.duckdb").is_file()


def test_sibling_data_folders_backing_up_at_once_take_turns(cli: Cli, data_dir: Path) -> None:
    """Two data folders' backups started together (two `serve`s at 03:30) share the backup
    folder: without its lock they named theirs the same second ("exists already"), or one
    swept the other's half-written backup as a leftover. Both are made, whole, in turn;
    one that finds the folder held past its wait exits 75 naming the holder."""
    sibling = _sibling(cli, data_dir)
    root = data_dir.parent / "backups"
    env = {**os.environ, "MUSIC_TRACKER_LOCK_WAIT_S": "120"}
    runs = [
        subprocess.Popen(
            [CLI, "backup", "--json", "--data-dir", str(folder)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in (data_dir, sibling, data_dir, sibling)
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        results.append(json.loads(out))
    names = sorted(Path(r["path"]).name for r in results)
    assert [p.name for p in backups(root)] == names and len(set(names)) == 4
    assert sorted(r["data_folder"]["path"] for r in results) == sorted(
        [str(data_dir), str(sibling)] * 2
    )
    assert all(r["removed"] == [] for r in results)
    assert not [p for p in root.iterdir() if p.name.startswith(".") and p.name not in _NOT_BACKUPS]
    for backup in backups(root):  # each whole: it restores
        target = data_dir.parent / "restored" / backup.name
        cli("restore", str(backup), "--data-dir", str(target))
    # a backup folder held (another data folder's long backup): exit 75, naming it
    held = "backup_folder_lock(Path(sys.argv[1]), 'backup of /elsewhere', wait_s=0)"
    with held_elsewhere(held, str(root)):
        done = subprocess.run(
            [CLI, "backup", "--data-dir", str(sibling)],
            env={**os.environ, "MUSIC_TRACKER_LOCK_WAIT_S": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    said = " ".join(done.stderr.split())
    assert done.returncode == 75, done.stderr
    assert "`backup of /elsewhere` (process" in said and "is writing the backups" in said, said
    assert len(backups(root)) == 4
