"""exclusions.yaml, through the CLI on the real exports: plays left out of the star schema
(and so of every dashboard), counted per entry, back when the entry goes; a bad file
changes nothing."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from conftest import Cli, cli_json, query
from music_tracker import exclusions
from music_tracker.reporting.definitions import load_dashboards

_RAW_ROWS = (
    "select (select count(*) from raw.spotify_extended_history)"
    " + (select count(*) from raw.spotify_account_data)"
)


def _most_played(data_dir: Path, column: str, source: str) -> tuple[str, int]:
    """The most played value of a column of dw's plays (names as the dashboards show them)."""
    (row,) = query(
        data_dir,
        f"select {column}, count(*) from dw.fact_track_played as fact"
        " join dw.dim_track as track using (track_sid)"
        " join dw.dim_album as album using (album_sid)"
        f" where fact.source = '{source}' and {column} is not null"
        f" group by 1 order by 2 desc, 1 limit 1",
    )
    return row


def test_exclusions_leave_the_star_schema_and_come_back(built_copy: Path, cli: Cli) -> None:
    data = built_copy
    plays_before = query(data, "select count(*) from dw.fact_track_played")[0][0]
    raw_before = query(data, _RAW_ROWS)[0][0]
    artist, artist_plays = _most_played(data, "fact.artist_name", "spotify_account_data")
    album, _ = _most_played(data, "album.album_name", "spotify_extended_history")
    track_id, track_plays = _most_played(data, "fact.track_id", "spotify_extended_history")
    (data / "exclusions.yaml").write_text(
        "artists:\n"
        f"  - name: {artist.upper()}\n"  # case does not matter
        "    reason: a shared account\n"
        "  - Nobody By This Name\n"
        "tracks:\n"
        f"  - id: spotify:track:{track_id}\n"
        "    reason: sleep sounds\n"
        "albums:\n"
        f"  - {album}\n"
    )
    result = cli_json(cli, "transform", "--data-dir", str(data))
    assert result["full_refresh"]  # an edit rebuilds the whole history
    gone = query(
        data,
        "select count(*) from dw.fact_track_played as fact"
        " join dw.dim_album as album using (album_sid)"
        " where lower(fact.artist_name) = lower($artist) or fact.track_id = $track"
        " or album.album_name = $album",
        {"artist": artist, "track": track_id, "album": album},
    )
    assert gone == [(0,)]
    counted = {
        entry: (reason, plays)
        for entry, reason, plays in query(
            data, "select entry, reason, play_count from dw.agg_excluded_plays"
        )
    }
    assert counted[artist.upper()] == ("a shared account", artist_plays)
    assert counted[f"spotify:track:{track_id}"] == ("sleep sounds", track_plays)
    assert counted["Nobody By This Name"] == ("no reason given", 0)
    excluded = query(data, "select count(distinct play_sid) from intermediate.int_plays_excluded")
    after = query(data, "select count(*) from dw.fact_track_played")[0][0]
    assert after == plays_before - excluded[0][0] < plays_before - artist_plays
    # the plays stay stored
    assert query(data, _RAW_ROWS)[0][0] == raw_before
    # aggregates the dashboards read leave them out too
    assert query(data, "select sum(tracks_played) from dw.agg_daily_listening") == [(after,)]
    status = cli_json(cli, "status", "--data-dir", str(data))
    assert status["exclusions"]["excluded_plays"] == excluded[0][0]
    assert any("line 4" in w and "Nobody By This Name" in w for w in status["warnings"])
    # an export says what the exclusions keep out of it (helper-63: "20,343 music plays"
    # alone, silent about the 708 excluded)
    out = data.parent / "exported"
    exported = cli_json(
        cli, "export", "--format", "csv", "--output", str(out), "--data-dir", str(data)
    )
    assert exported["files"][0]["rows"] == after
    assert [w for w in exported["warnings"] if "exclusions.yaml" in w] == [
        f"{excluded[0][0]:,} plays are kept out of the star schema by exclusions.yaml, so out"
        " of this export too (they stay in the warehouse's raw tables)"
    ]
    # a comment and a new order change no entry: a changed-data build, whose counts follow
    # the entries to their new lines (the stored matches still said the old ones)
    text = (data / "exclusions.yaml").read_text()
    artists, rest = text.split("tracks:\n")
    (data / "exclusions.yaml").write_text(f"# kept out of my stats\ntracks:\n{rest}{artists}")
    assert not cli_json(cli, "transform", "--data-dir", str(data))["full_refresh"]
    moved = {
        entry: (line, reason, plays)
        for entry, line, reason, plays in query(
            data, "select entry, line_number, reason, play_count from dw.agg_excluded_plays"
        )
    }
    assert {entry: (reason, plays) for entry, (_, reason, plays) in moved.items()} == counted
    assert moved[artist.upper()][0] == 8 and moved["Nobody By This Name"][0] == 10
    _nowhere(data, cli, artist)
    # removing the entries brings every play back
    (data / "exclusions.yaml").write_text("artists: []\n")
    cli("transform", "--data-dir", str(data))
    assert query(data, "select count(*) from dw.fact_track_played") == [(plays_before,)]
    assert query(data, "select count(*) from dw.agg_excluded_plays") == [(0,)]
    assert query(
        data, "select play_count from dw.dim_artist where lower(artist_name) = lower($a)",
        {"a": artist},
    ) == [(artist_plays,)]  # fmt: skip


def _nowhere(data: Path, cli: Cli, artist: str) -> None:
    """An artist whose every play is excluded is in no dashboard, no filter list (the
    star schema's names, which Metabase lists a column's values from; every filter's
    options), and not in the static report (its artist index and pages)."""
    name = artist.lower()
    columns = query(
        data,
        "select table_name, column_name from duckdb_columns()"
        " where schema_name = 'dw' and data_type = 'VARCHAR'"
        " and table_name != 'agg_excluded_plays'",  # it names the entry, with its count
    )
    for table, column in columns:
        found = query(
            data,
            f"select count(*) from dw.{table} where lower({column}) = $name"
            f" or starts_with(lower({column}), $name || ' - ')",  # "artist - track"
            {"name": name},
        )
        assert found == [(0,)], (table, column)
    # the dimensions count the plays left in, no more
    assert query(data, "select sum(play_count) from dw.dim_artist") == query(
        data, "select count(*) from dw.fact_track_played"
    )
    assert query(data, "select sum(play_count) from dw.dim_track") == query(
        data, "select count(*) from dw.fact_track_played"
    )
    for dashboard in load_dashboards():
        for flt in dashboard.filters:
            if flt.options_sql:
                values = {str(v).lower() for (v, *_) in query(data, flt.options_query())}
                assert name not in values, (dashboard.slug, flt.name)
    cli("report", "--data-dir", str(data))
    # Coverage names the entry, with its count and reason: that is where it is counted
    pages = [p for p in (data / "report").rglob("*.html") if p.parent.name != "coverage"]
    assert len(pages) > 100
    shown = html.escape(artist).lower()
    for page in pages:
        text = page.read_text(encoding="utf-8").lower()
        for mention in (f">{shown}<", f"{shown} - ", f"'{name}'", json.dumps(name)):
            assert mention not in text, (page, mention)


def test_bad_yaml_names_file_and_line_and_changes_nothing(built_copy: Path, cli: Cli) -> None:
    data = built_copy
    before = query(data, "select count(*), max(finished_at) from raw.transform_runs")
    (data / "exclusions.yaml").write_text("artists:\n  - name: Raffi\n    reason: [oops\n")
    result = cli("transform", "--data-dir", str(data), expect=1)
    assert "exclusions.yaml, line 3" in result.output and "not valid YAML" in result.output
    assert query(data, "select count(*), max(finished_at) from raw.transform_runs") == before
    assert query(data, "select count(*) from raw.exclusions") == [(0,)]
    status = cli_json(cli, "status", "--data-dir", str(data))
    assert any("exclusions.yaml, line 3" in w for w in status["warnings"])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("singers:\n  - Raffi\n", "line 1: unknown list 'singers'"),
        ("artists: Raffi\n", "line 1: artists: expected a list"),
        ("artists:\n  - name: Raffi\n    id: 0LyfQWJT6nXafLPZqxe9Of\n", "line 2: an entry needs"),
        ("tracks:\n  - id: not-an-id\n", "line 2: 'not-an-id' is not a Spotify track id"),
        ("artists:\n  - name: Raffi\n    why: kids\n", "line 3: an entry takes name:"),
        # a name or id left blank (or YAML's null): said so, not a KeyError
        ("artists:\n  - name:\n    reason: forgot the name\n", "line 2: an empty entry"),
        ("artists:\n  - name: ~\n", "line 2: an empty entry"),
        ("artists:\n  - null\n", "line 2: an empty entry"),
        ("tracks:\n  - id:\n", "line 2: an empty entry"),
        # YAML's one-line lists: each entry is counted and warned about by its line
        ("albums: [Frozen, Moana]\n", "line 1: 'Moana' shares its line with 'Frozen'"),
        # the genres dashboards' label for artists MusicBrainz gave none: every artist not
        # looked up, most of a history
        ("genres:\n  - No Genre Defined\n", "line 2: 'No Genre Defined' is not a genre"),
    ],
)
def test_entries_that_cannot_be_used(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "exclusions.yaml"
    path.write_text(text)
    with pytest.raises(exclusions.ExclusionsError, match=problem):
        exclusions.load(path)


def test_names_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "exclusions.yaml"
    path.write_text(
        "artists:\n"
        "  - Kidz Bop Kids\n"
        "  - https://open.spotify.com/artist/0LyfQWJT6nXafLPZqxe9Of?si=x\n"
        "albums:\n"
        "  - spotify:album:4aawyAB9vmqN3uQ7FjRGTy\n"
        "genres:\n"
        "  - name: Sleep\n"
        "    reason: at night\n"
        "tracks:\n"
    )
    found = exclusions.load(path)
    assert [(e.kind, e.name, e.spotify_id, e.reason, e.line) for e in found] == [
        ("artist", "kidz bop kids", None, None, 2),
        ("artist", None, "0LyfQWJT6nXafLPZqxe9Of", None, 3),
        ("album", None, "4aawyAB9vmqN3uQ7FjRGTy", None, 5),
        ("genre", "sleep", None, "at night", 7),
    ]
    # moving entries around does not change what the build depends on; removing one does
    path.write_text(
        "genres:\n  - name: Sleep\n    reason: at night\n"
        "albums: [spotify:album:4aawyAB9vmqN3uQ7FjRGTy]\n"
        "artists:\n  - https://open.spotify.com/artist/0LyfQWJT6nXafLPZqxe9Of?si=x\n"
        "  - Kidz Bop Kids\n"
    )
    moved = exclusions.load(path)
    assert exclusions.fingerprint(moved) == exclusions.fingerprint(found)
    assert exclusions.fingerprint(moved[:-1]) != exclusions.fingerprint(found)


def test_an_entry_that_matches_nothing_says_what_it_may_need(tmp_path: Path) -> None:
    """An artist's or album's Spotify id is known once `ingest` fetched its tracks' details
    (an export alone names no artist or album id), a genre once `enrich` looked its artists
    up: a warning about such an entry says so, not only "a typo?"."""
    import duckdb

    path = tmp_path / exclusions.FILE_NAME
    path.write_text(
        "artists:\n  - id: spotify:artist:0LyfQWJT6nXafLPZqxe9Of\n"
        "genres:\n  - sleep\ntracks:\n  - Nope\n"
    )
    entries = exclusions.load(path)
    with duckdb.connect() as con:
        con.execute(
            "create schema raw; create schema dw; create schema intermediate;"
            " create table raw.exclusions (kind varchar, entry varchar, match_name varchar,"
            " spotify_id varchar, reason varchar, line_number integer);"
            " create table intermediate.int_plays_excluded (play_sid varchar);"
            " create table dw.agg_excluded_plays (kind varchar, entry varchar, reason varchar,"
            " line_number integer, play_count bigint)"
        )
        exclusions.store(con, entries)
        con.execute(
            "insert into dw.agg_excluded_plays select kind, entry, 'no reason given',"
            " line_number, 0 from raw.exclusions"
        )
        warnings = exclusions.status(con, tmp_path)["warnings"]
    by_line = {line: next(w for w in warnings if f"line {line}:" in w) for line in (2, 4, 6)}
    assert "music-tracker ingest" in by_line[2]
    assert "music-tracker enrich" in by_line[4]
    assert by_line[6].endswith("(a typo?)")


def test_a_report_of_a_history_wholly_excluded_says_so(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """Every play kept out by exclusions.yaml: `report` says that (and how to undo it),
    not that nothing was imported, and the report on the owner's site stops showing what
    was just excluded: it becomes one page that says there is nothing to show."""
    scrobbles = tmp_path / "scrobbles.csv"
    scrobbles.write_text(
        "Raffi,Singable Songs,Baby Beluga,14 Nov 2023 22:13\n"
        "Raffi,Singable Songs,Down by the Bay,14 Nov 2023 22:18\n"
    )
    cli("import", str(scrobbles))
    cli("transform")
    cli("report")
    site = tmp_path / "site"
    cli("report", "--output", str(site))
    assert "Raffi" in (data_dir / "report" / "top-lists" / "index.html").read_text()
    (data_dir / exclusions.FILE_NAME).write_text("artists:\n  - raffi\n")
    cli("transform")
    result = cli("report", "--output", str(site))
    assert "exclusions.yaml keeps every play out" in result.output, result.output
    assert "import, then transform" not in result.output
    for folder in (data_dir / "report", site):
        pages = [p.relative_to(folder) for p in folder.rglob("*.html")]
        assert pages == [Path("index.html")], pages
        text = (folder / "index.html").read_text()
        assert "Nothing to show" in text and "Raffi" not in text
