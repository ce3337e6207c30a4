"""Podcast episodes in old account data without a podcast file (importers/podcasts.py):
imported for real, from the real exports written as old ones and from the simulated legacy
listener, every row labelled with what it really was."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import ACCOUNT_DIR, EXTENDED_DIR, Cli, cli_json, query
from music_tracker.importers import podcasts
from music_tracker.simulation import legacy


def _import_old_export(
    cli: Cli, data_dir: Path, rows: list[legacy.LegacyRow], folder: Path
) -> tuple[dict[str, str], legacy.RuleScore]:
    """Import ``rows`` as StreamingHistoryN.json; the shows decided (name: reason) and how
    the decision fares against the labels. Checks that the rows of the shows decided, and
    only they, left the music."""
    legacy.write_legacy_export(rows, folder)
    cli_json(cli, "import", str(folder))
    decided = {
        show["show"]: show["reason"]
        for show in cli_json(cli, "status")["podcast_shows_in_old_account_data"]
    }
    distinct = {(r.ended_at, r.artist, r.title, r.ms_played) for r in rows if r.ms_played > 0}
    moved = sum(ms for _, artist, _, ms in distinct if artist in decided)
    ((episode_ms, music_of_shows),) = query(
        data_dir,
        "select (select coalesce(sum(ms_played), 0) from raw.other_plays"
        "        where source = 'spotify_account_data' and content_type = 'podcast'),"
        " (select count(*) from raw.spotify_account_data where list_contains($shows, artist_name))",
        {"shows": sorted(decided)},
    )
    assert (episode_ms, music_of_shows) == (moved, 0)
    return decided, legacy.score(rows, set(decided))


def test_weekly_shows_heard_over_several_sittings(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """A followed weekly show heard over several sittings: dozens of numbered titles
    ("#156 - ..."), each heard in 1 to 12 rows of a few to 45 minutes. "At most 3 plays a
    title" found 17% of the podcast time here, and took sleep sounds and long classical
    works for shows (2.4% of the music time)."""
    rows = legacy.legacy_history(seed=26)
    decided, score = _import_old_export(cli, data_dir, rows, tmp_path / "old")
    assert score.podcast_found >= 0.9
    assert score.music_taken < 0.005
    for show in ("The Long Talk Show", "Misfits Weekly", "Deep Dive Radio"):
        per_title = [r for r in rows if r.artist == show]
        assert len(per_title) / len({r.title for r in per_title}) > 3  # not "a few plays"
        assert decided[show].startswith("episodes: ")
        assert "several sittings" in decided[show]
    text = cli("status").output
    assert "podcast, not music (old account data): Misfits Weekly," in text


@pytest.mark.parametrize(
    "export",
    [
        pytest.param(lambda: legacy.from_account_export(ACCOUNT_DIR), id="account_data_2024"),
        pytest.param(lambda: legacy.from_extended_history(EXTENDED_DIR), id="extended_2026"),
    ],
)
def test_real_exports_written_as_old_ones(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path, export: object
) -> None:
    """The real exports, their episodes mixed into the music as an old export has them:
    the music taken for podcasts stays under 0.5% of the music time (a 3.5-hour sound bath
    heard once, 0.6% of the 2024 account's music, was taken by "at most 3 plays a title")."""
    rows = export()  # type: ignore[operator]
    _, score = _import_old_export(cli, data_dir, rows, tmp_path / "old")
    assert score.podcast_found >= 0.9
    assert score.music_taken < 0.005


def test_overlapping_old_exports_imported_together(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """Two downloads of old account data that overlap, imported at once: a row in both
    files is one play, not an episode heard twice in full; the shows are those of the
    history imported whole."""
    rows = legacy.legacy_history(seed=27, days=120)
    whole = tmp_path / "whole"
    legacy.write_legacy_export(rows, whole)
    cli_json(cli, "import", str(whole), "--data-dir", str(tmp_path / "once"))
    expected = cli_json(cli, "status", "--data-dir", str(tmp_path / "once"))[
        "podcast_shows_in_old_account_data"
    ]
    legacy.write_legacy_export(rows[: len(rows) * 2 // 3], tmp_path / "first")
    legacy.write_legacy_export(rows[len(rows) // 3 :], tmp_path / "second")
    cli_json(cli, "import", str(tmp_path / "first"), str(tmp_path / "second"))
    decided = cli_json(cli, "status")["podcast_shows_in_old_account_data"]
    assert {(s["show"], s["reason"]) for s in decided} == {
        (s["show"], s["reason"]) for s in expected
    }
    assert len(expected) >= 4


def _long_form_music(start: datetime) -> list[legacy.LegacyRow]:
    """The review's music of an episode's shape (issue 26): each artist's rows, as an old
    export lists them, all music."""
    rows: list[legacy.LegacyRow] = []
    minute = 60_000

    def play(day: int, hour: float, artist: str, title: str, ms: int) -> None:
        rows.append(
            legacy.LegacyRow(start + timedelta(days=day, hours=hour), artist, title, ms, False)
        )

    # Mahler's symphonies played through once each (movements back to back), two
    # movements restarted for a few minutes weeks later
    day = 300
    for number, lengths in {
        1: [16, 10, 11, 20],
        2: [22, 10, 11, 5, 35],
        5: [13, 15, 18, 10, 15],
        9: [28, 16, 12, 25],
    }.items():
        ended = timedelta(hours=20)
        for movement, length in enumerate(lengths, 1):
            ended += timedelta(minutes=length, seconds=1)
            rows.append(
                legacy.LegacyRow(
                    start + timedelta(days=day) + ended,
                    "Gustav Mahler",
                    f"Symphony No. {number}: {movement}. Satz",
                    length * minute - 700,
                    False,
                )
            )
        day += 4
    play(320, 9, "Gustav Mahler", "Symphony No. 5: 4. Satz", 4 * minute)
    play(322, 9, "Gustav Mahler", "Symphony No. 9: 4. Satz", 6 * minute)
    # DJ mixes of 1-2 hours, each heard once over 1-3 morning sittings, or in one
    for number in range(12):
        title = f"Live at Printworks London (DJ Mix) Vol. {number}"
        for sitting, length in enumerate([40, 35, 20][: 1 + number % 3]):
            play(20 + number * 20 + sitting, 8.7, "Solomun", title, length * minute)
    # post-rock: each long track heard in full, then again without its drone 10 days on
    for number, (title, length) in enumerate(
        [("Storm", 20), ("Moya", 14), ("Sleep", 16), ("East Hastings", 18)]
    ):
        play(200 + number, 18, "Godspeed You! Black Emperor", title, length * minute - 400)
        play(210 + number, 18, "Godspeed You! Black Emperor", title, (length - 2) * minute)
    # ambient "Part N", each heard once in full on its evening, some later for minutes
    for number in range(8):
        play(100 + 2 * number, 23, "Stars of the Lid", f"Part {number + 1}", (15 + number) * minute)
        if number % 3 == 0:
            play(130 + number, 23, "Stars of the Lid", f"Part {number + 1}", 5 * minute)
    # Grateful Dead live tracks titled with their dates, one or two a day for months
    songs = ["Bertha", "Deal", "Loser", "Jack Straw", "Tennessee Jed", "Ramble On Rose"]
    for day in range(60, 300, 2):
        song = songs[day % len(songs)]
        play(
            day,
            12,
            "Grateful Dead",
            f"{song} - Live at Winterland {day % 12 + 1}/{day % 28 + 1}/77",
            (5 + day % 7) * minute,
        )
    return rows


def test_long_form_music_stays_music(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Music of an episode's shape, mixed into the simulated legacy listener's history:
    a symphony played through with movements restarted weeks later (a full play and a
    restart is not an episode resumed), DJ mixes heard over sittings, post-rock and ambient
    pieces come back to, live tracks titled with dates. Before issue 26's fix they were all
    taken for shows (1.2%, 5.4%, 0.7%, 0.7% and 4.6% of the music in the review)."""
    background = legacy.legacy_history(seed=26)
    music = _long_form_music(min(r.ended_at for r in background))
    decided, score = _import_old_export(cli, data_dir, background + music, tmp_path / "old")
    assert not {r.artist for r in music} & set(decided), decided
    assert score.podcast_found >= 0.9
    assert score.music_taken < 0.005


def test_a_renamed_download_is_old_account_data(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """A browser's second download is "StreamingHistory0 (1).json": its episodes are
    found as in StreamingHistory0.json (the rule was skipped silently before)."""
    rows = legacy.legacy_history(seed=27, days=120)
    folder = tmp_path / "old"
    legacy.write_legacy_export(rows, folder)
    for path in folder.glob("StreamingHistory*.json"):
        path.rename(path.with_name(f"{path.stem} (1).json"))
    imported = cli_json(cli, "import", str(folder))
    assert [Path(name).name for name in imported["old_account_data_files"]] == [
        "StreamingHistory0 (1).json"
    ]
    decided = {s["show"] for s in cli_json(cli, "status")["podcast_shows_in_old_account_data"]}
    assert len(decided) >= 4
    assert legacy.score(rows, set(decided)).podcast_found >= 0.9


def test_old_exports_imported_in_two_parts(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Old account data imported a year at a time, the downloads overlapping (issue 26's
    review): the second import decides on the rows stored before and its own, so its shows
    are those of the history imported whole; a decision carried over says where it came
    from (no podcast file was imported, so none is "named in a podcast file"), and no play
    is both music and a podcast episode."""
    rows = legacy.legacy_history(seed=27, days=240)
    cli_json(
        cli, "import", str(_written(rows, tmp_path / "whole")), "--data-dir", str(tmp_path / "once")
    )
    expected = {
        s["show"]
        for s in cli_json(cli, "status", "--data-dir", str(tmp_path / "once"))[
            "podcast_shows_in_old_account_data"
        ]
    }
    first = rows[: len(rows) * 3 // 5]
    cli_json(cli, "import", str(_written(first, tmp_path / "first")))
    cli_json(cli, "import", str(_written(rows[len(rows) * 2 // 5 :], tmp_path / "second")))
    decided = {
        s["show"]: s["reason"] for s in cli_json(cli, "status")["podcast_shows_in_old_account_data"]
    }
    assert set(decided) >= expected
    assert not any(podcasts.BY_PODCAST_FILE in reason for reason in decided.values()), decided
    ((both,),) = query(
        data_dir,
        "select count(*) from raw.spotify_account_data m join raw.other_plays o"
        " on o.source = 'spotify_account_data' and o.source_key = m.source_key",
    )
    assert both == 0
    # every distinct row stored once: as music or as an episode
    ((music, episodes),) = query(
        data_dir,
        "select (select count(*) from raw.spotify_account_data where ms_played > 0),"
        " (select count(*) from raw.other_plays where source = 'spotify_account_data')",
    )
    distinct = {(r.ended_at, r.artist, r.title, r.ms_played) for r in rows if r.ms_played > 0}
    assert music + episodes == len(distinct)


def _written(rows: list[legacy.LegacyRow], folder: Path) -> Path:
    legacy.write_legacy_export(rows, folder)
    return folder


def test_binged_and_dated_bulletins_are_found(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Shows missed before issue 26's review: a show titled "Episode N" binged three
    episodes back to back on weekend drives (back to back was taken for an album), and an
    hourly news bulletin dated "NPR News: 03-02-2019 7AM EST" (MM-DD-YYYY)."""
    background = legacy.legacy_history(seed=28, days=120)
    start = min(r.ended_at for r in background)
    shows: list[legacy.LegacyRow] = []
    for week in range(8):
        ended = start + timedelta(days=3 + 7 * week, hours=9)
        for number in range(3):
            length = (50 + 10 * ((week + number) % 3)) * 60_000
            ended += timedelta(milliseconds=length, seconds=5)
            title = f"Episode {300 + 3 * week + number}: The Great Molasses Flood {number}"
            shows.append(legacy.LegacyRow(ended, "The Dollop", title, length, True))
    for day in range(100):
        if day % 7 < 5:
            at = start + timedelta(days=day, hours=7, minutes=10)
            title = f"NPR News: {at:%m-%d-%Y} 7AM EST"
            shows.append(legacy.LegacyRow(at, "NPR News Now", title, (240 + day % 60) * 1000, True))
    decided, score = _import_old_export(cli, data_dir, background + shows, tmp_path / "old")
    assert {"The Dollop", "NPR News Now"} <= set(decided), decided
    assert score.music_taken < 0.005


def test_episodes_heard_before_the_first_song(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Podcasts from before the first music play (a listener of shows who came to music
    later): the calendar starts with the first episode, so the build passes (it failed on
    the episodes' days missing from dim_date) and the episodes keep their days."""
    import json

    def row(ts: str, **fields: object) -> dict[str, object]:
        keys = ("master_metadata_track_name", "master_metadata_album_artist_name",
                "master_metadata_album_album_name", "spotify_track_uri", "episode_name",
                "episode_show_name", "spotify_episode_uri")  # fmt: skip
        return {"ts": ts, "platform": "ios", "ms_played": 1_800_000, "conn_country": "US",
                **dict.fromkeys(keys), "reason_start": "trackdone", "reason_end": "trackdone",
                "shuffle": False, "skipped": False, "offline": False,
                "offline_timestamp": None, "incognito_mode": False, **fields}  # fmt: skip

    rows = [
        row(f"2017-03-0{day}T08:00:00Z", episode_name=f"Episode {day}",
            episode_show_name="A Morning Show",
            spotify_episode_uri=f"spotify:episode:{'0' * 21}{day}")
        for day in (1, 2, 3)
    ] + [
        row("2019-06-01T20:00:00Z", ms_played=200_000, master_metadata_track_name="Song",
            master_metadata_album_artist_name="A Band", master_metadata_album_album_name="LP",
            spotify_track_uri=f"spotify:track:{'1' * 22}")
    ]  # fmt: skip
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Streaming_History_Audio_2017-2019.json").write_text(json.dumps(rows))
    cli("import", str(folder))
    cli("transform")
    days = query(
        data_dir,
        "select other.date_sid, calendar.date_sid from dw.fact_other_played as other"
        " left join dw.dim_date as calendar on calendar.date_sid = other.date_sid order by 1",
    )
    assert len(days) == 3 and all(day == known for day, known in days), days
