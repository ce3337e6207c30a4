"""Podcast episodes in old account data without a podcast file (importers/podcasts.py):
imported for real, from the real exports written as old ones and from the simulated legacy
listener, every row labelled with what it really was."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ACCOUNT_DIR, EXTENDED_DIR, Cli, cli_json, query
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
