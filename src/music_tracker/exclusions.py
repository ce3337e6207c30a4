"""``exclusions.yaml``: what the owner keeps out of their stats.

The file sits in the data folder. Four lists, ``artists``, ``tracks``, ``albums`` and
``genres``; each entry a name (matched case-insensitively) or a Spotify id (a bare id, a
``spotify:artist:…`` URI or an ``open.spotify.com`` link), alone or as a mapping with an
optional ``reason``::

    artists:
      - Kidz Bop Kids
      - name: Raffi
        reason: the children's music
      - id: spotify:artist:0LyfQWJT6nXafLPZqxe9Of
    genres:
      - name: sleep
        reason: sleep sounds at night

``transform`` reads it (:func:`load`), stores it in ``raw.exclusions`` and builds the star
schema without the plays it matches (``transform/models/intermediate/int_plays_excluded.sql``,
the one place the rule lives); the plays stay in raw and in the landing zone. Its
fingerprint is part of the build's: a change rebuilds the whole history, so removing an
entry brings its plays back.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import duckdb

FILE_NAME = "exclusions.yaml"
# the file's lists and the kind of thing each entry names
KINDS = {"artists": "artist", "tracks": "track", "albums": "album", "genres": "genre"}
_ENTRY_KEYS = {"name", "id", "reason"}
_SPOTIFY_REF = re.compile(
    r"^(?:spotify:(?P<kind1>artist|track|album):|https?://open\.spotify\.com/(?P<kind2>artist|track|album)/)"
    r"(?P<id>[A-Za-z0-9]{22})(?:\?.*)?$"
)
_BARE_ID = re.compile(r"^[A-Za-z0-9]{22}$")
_NULL_TAG = "tag:yaml.org,2002:null"
# int_artist_genres' genre for an artist without one: a label, not a genre to exclude
NO_GENRE = "no genre defined"


class ExclusionsError(Exception):
    """``exclusions.yaml`` cannot be used: the message names the file, line and the fix."""


@dataclass(frozen=True)
class Exclusion:
    """One entry: what it names (``name`` lower-cased, or a Spotify ``spotify_id``)."""

    kind: str
    entry: str
    name: str | None
    spotify_id: str | None
    reason: str | None
    line: int


def path_in(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def load(path: Path) -> list[Exclusion]:
    """The entries of ``path``, in file order; none when there is no file."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExclusionsError(f"{path}: cannot be read ({exc})") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        # where what went wrong began (an unclosed bracket), then where it was noticed
        mark = exc.context_mark or exc.problem_mark
        where = f", line {mark.line + 1}" if mark else ""
        what = "; ".join(
            f"{text} (line {at.line + 1})" if at else text
            for text, at in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark))
            if text
        )
        raise ExclusionsError(
            f"{path}{where}: not valid YAML: {what}; fix it and run"
            " `music-tracker transform` again (nothing was changed)"
        ) from exc
    except yaml.YAMLError as exc:
        raise ExclusionsError(f"{path}: not valid YAML ({exc})") from exc
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        _fail(path, root, "expected lists under artists:, tracks:, albums: or genres:")
    found: list[Exclusion] = []
    for key_node, value_node in root.value:
        key = str(key_node.value)
        if key not in KINDS:
            _fail(path, key_node, f"unknown list {key!r}; use {', '.join(KINDS)}")
        if isinstance(value_node, yaml.ScalarNode) and value_node.value in ("", "~", "null"):
            continue  # an empty list written as "artists:"
        if not isinstance(value_node, yaml.SequenceNode):
            _fail(path, value_node, f"{key}: expected a list of entries (lines starting with -)")
        for item in value_node.value:
            entry = _entry(path, KINDS[key], item)
            # status and Coverage count and warn by line: one entry a line
            same_line = next((e for e in found if e.line == entry.line), None)
            if same_line is not None:
                _fail(
                    path,
                    item,
                    f"{entry.entry!r} shares its line with {same_line.entry!r}: write each"
                    " entry on a line of its own, starting with -",
                )
            found.append(entry)
    return found


def _entry(path: Path, kind: str, node: yaml.Node) -> Exclusion:
    line = node.start_mark.line + 1
    reason = None
    if isinstance(node, yaml.ScalarNode):
        written, explicit_id = _text(node), False
    elif isinstance(node, yaml.MappingNode):
        values: dict[str, str] = {}
        for key_node, value_node in node.value:
            if key_node.value not in _ENTRY_KEYS or not isinstance(value_node, yaml.ScalarNode):
                _fail(
                    path, key_node, f"an entry takes name:, id: and reason:, not {key_node.value!r}"
                )
            values[key_node.value] = _text(value_node)
        if ("name" in values) == ("id" in values):
            _fail(path, node, "an entry needs either name: or id:")
        explicit_id = "id" in values
        written = values["id"] if explicit_id else values["name"]
        reason = values.get("reason") or None
    else:
        _fail(path, node, "an entry is a name, or name:/id: with an optional reason:")
    if not written:
        _fail(path, node, "an empty entry (a name written null or ~ goes in quotes)")
    if kind == "genre" and " ".join(written.lower().split()) == NO_GENRE:
        _fail(
            path,
            node,
            f"{written!r} is not a genre: it is what the genre dashboards show for the"
            " artists MusicBrainz gave none (every artist not looked up yet); list such"
            " artists by name",
        )
    spotify_id = _spotify_id(kind, written, explicit=explicit_id)
    if explicit_id and spotify_id is None:
        _fail(path, node, f"{written!r} is not a Spotify {kind} id (22 letters and digits)")
    name = None if spotify_id else written.lower()
    return Exclusion(kind, written, name, spotify_id, reason, line)


def _text(node: yaml.ScalarNode) -> str:
    """A value as written; "name:" left blank or YAML's null ("~", "null" unquoted) is
    empty (an empty entry, said so), not the name "~"."""
    return "" if node.tag == _NULL_TAG else str(node.value).strip()


def _spotify_id(kind: str, written: str, *, explicit: bool) -> str | None:
    """A Spotify id from a URI or link of this kind, or a bare id given as ``id:`` (or a
    22-character run of letters and digits that has both, as no name in a catalogue does)."""
    if kind == "genre":
        return None
    match = _SPOTIFY_REF.match(written)
    if match:
        return match.group("id") if kind in (match.group("kind1"), match.group("kind2")) else None
    looks_like_id = bool(re.search(r"\d", written)) and not written.isdigit()
    if _BARE_ID.match(written) and (explicit or looks_like_id):
        return written
    return None


def _fail(path: Path, node: yaml.Node, why: str) -> None:
    raise ExclusionsError(
        f"{path}, line {node.start_mark.line + 1}: {why}; fix it and run"
        " `music-tracker transform` again (nothing was changed)"
    )


def fingerprint(entries: list[Exclusion]) -> str:
    """What the build depends on: the entries, not where they stand in the file."""
    canonical = sorted(
        json.dumps({k: v for k, v in asdict(e).items() if k != "line"}, sort_keys=True)
        for e in entries
    )
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


def store(con: duckdb.DuckDBPyConnection, entries: list[Exclusion]) -> None:
    """Replace ``raw.exclusions`` with ``entries`` (the caller's transaction)."""
    con.execute("delete from raw.exclusions")
    if entries:
        con.executemany(
            "insert into raw.exclusions values (?, ?, ?, ?, ?, ?)",
            [[e.kind, e.entry, e.name, e.spotify_id, e.reason, e.line] for e in entries],
        )


def status(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[str, Any]:
    """What ``status`` says of the exclusions: each entry with the plays it kept out at the
    last build, the plays kept out in all, and warnings (an entry that matches nothing, a
    file edited or broken since the last build)."""
    path = path_in(data_dir)
    warnings: list[str] = []
    try:
        current: list[Exclusion] | None = load(path)
    except ExclusionsError as exc:
        current = None
        warnings.append(str(exc).replace("run `music-tracker transform`", "run `transform`"))
    entries: list[dict[str, Any]] = []
    excluded = 0
    if _has_table(con, "dw", "agg_excluded_plays"):
        rows = con.execute(
            "select kind, entry, reason, line_number, play_count from dw.agg_excluded_plays"
            " order by line_number"
        ).fetchall()
        entries = [
            {"kind": k, "entry": e, "reason": r, "line": n, "plays": p} for k, e, r, n, p in rows
        ]
        (excluded,) = con.execute(
            "select count(distinct play_sid) from intermediate.int_plays_excluded"
        ).fetchone() or (0,)
    stored = [
        Exclusion(*row)
        for row in con.execute(
            "select kind, entry, match_name, spotify_id, reason, line_number from raw.exclusions"
        ).fetchall()
    ] if _has_table(con, "raw", "exclusions") else []  # fmt: skip
    if current is not None and fingerprint(current) != fingerprint(stored):
        warnings.append(
            f"{path} changed since the last build: run `music-tracker transform` to apply it"
        )
    ids = {(e.kind, e.entry) for e in stored if e.spotify_id}
    for item in entries:
        if item["plays"] == 0:
            warnings.append(
                f"{path}, line {item['line']}: {item['kind']} {item['entry']!r} matches no"
                f" play ({_maybe_why(item['kind'], (item['kind'], item['entry']) in ids)})"
            )
    return {"file": str(path), "entries": entries, "excluded_plays": excluded, "warnings": warnings}


def _maybe_why(kind: str, is_id: bool) -> str:
    """Why an entry may match nothing besides a typo: what its key needs first."""
    if kind in ("artist", "album") and is_id:
        # the exports name tracks only; artists' and albums' ids come with the track details
        return (
            f"a typo? an {kind}'s Spotify id is known once `music-tracker ingest` has fetched"
            " its tracks' details from Spotify; until then give its name"
        )
    if kind == "genre":
        return "a typo? genres are MusicBrainz's: run `music-tracker enrich` first"
    return "a typo?"


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?"
        " union all select count(*) from duckdb_views() where schema_name = ? and view_name = ?",
        [schema, name, schema, name],
    ).fetchall()
    return bool(sum(count for (count,) in row) > 0)
