"""``music-tracker demo``: the whole pipeline on a generated history, no credentials needed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from music_tracker.settings import Settings
from music_tracker.simulation.listener import (
    Track,
    build_catalogue,
    listen,
    write_account_data,
    write_extended,
    write_lastfm,
)


@dataclass
class DemoInputs:
    """The generated exports, as an owner would have them on disk."""

    lastfm_csv: Path
    old_extended: Path
    new_extended: Path
    account_data: Path
    catalogue: list[Track]


def generate_inputs(folder: Path, *, seed: int = 7, plays_per_year: int = 3_000) -> DemoInputs:
    """Write a listening life: Last.fm 2008-2013, Spotify from 2012, exports that overlap.

    * Last.fm scrobbles up to mid-2013, overlapping the first Spotify year (same plays);
    * an extended-history export requested in 2023 (21 fields, ``endsong_N.json``);
    * a newer one requested in 2026 (23 fields) that repeats 2022-2023 from the first;
    * account data for the last year, which repeats plays of the 2026 export.
    """
    rng = random.Random(seed)
    catalogue = build_catalogue(rng, artists=400)
    years = 2026 - 2008
    history = listen(rng, catalogue, date(2008, 1, 1), date(2026, 10, 31), plays_per_year * years)
    spotify_start = date(2012, 6, 1)
    lastfm = [p for p in history if p.ended_at.date() < date(2013, 7, 1)]
    spotify = [p for p in history if p.ended_at.date() >= spotify_start]
    old = [p for p in spotify if p.ended_at.year < 2024]
    new = [p for p in spotify if p.ended_at.year >= 2022]
    recent = [p for p in spotify if p.ended_at.date() >= date(2025, 11, 1)]
    inputs = DemoInputs(
        lastfm_csv=folder / "lastfm" / "scrobbles.csv",
        old_extended=folder / "spotify-2023" / "Spotify Extended Streaming History",
        new_extended=folder / "spotify-2026" / "Spotify Extended Streaming History",
        account_data=folder / "spotify-account-2026" / "Spotify Account Data",
        catalogue=catalogue,
    )
    write_lastfm(lastfm, inputs.lastfm_csv)
    write_extended(old, inputs.old_extended, rng, new_generation=False)
    write_extended(new, inputs.new_extended, rng, new_generation=True)
    write_account_data(recent, inputs.account_data)
    return inputs


def poll_fake_spotify(
    settings: Settings, catalogue: list[Track], hours: int = 12
) -> dict[str, int]:
    """Authorize against a fake Spotify (PKCE through the loopback), then poll it every 10
    simulated minutes while its listener plays the demo's catalogue after the exports end.
    """
    import httpx

    from music_tracker.fakes.spotify import FakeSpotify
    from music_tracker.sources.spotify import auth
    from music_tracker.sources.spotify.ingest import ingest

    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    totals = {"polls": 0, "new_plays": 0, "duplicates": 0, "tracks": 0}
    with FakeSpotify(seed=7, start=start, plays_per_day=250, catalogue=catalogue) as fake:
        settings = settings.model_copy(
            update={
                "spotify_api_base": fake.api_base,
                "spotify_accounts_base": fake.accounts_base,
                "spotify_client_id": "demo-client",
            }
        )
        verifier, challenge = auth.pkce_pair()
        redirect = auth.redirect_uri(settings.spotify_redirect_port)
        url = auth.authorize_url(fake.accounts_base, "demo-client", redirect, challenge, "demo")
        # the fake's consent page redirects at once; follow it like a browser would
        location = httpx.get(url, follow_redirects=False, timeout=10).headers["location"]
        spotify = auth.SpotifyAuth(
            fake.accounts_base, "demo-client", auth.TokenStore(settings.state_dir), 10
        )
        spotify.exchange_code(auth.code_from_redirect(location, "demo"), verifier, redirect)
        for _ in range(hours * 6):
            fake.advance(timedelta(minutes=10))
            summary = ingest(settings, enrich=False)
            totals["polls"] += 1
            totals["new_plays"] += summary.new_plays
            totals["duplicates"] += summary.duplicates
        totals["tracks"] = ingest(settings, enrich=True).enrichment.tracks
    return totals


def enrich_with_fake_musicbrainz(
    settings: Settings, catalogue: list[Track], limit: int, interval_s: float = 1.0
) -> dict[str, Any]:
    """Serve a fake MusicBrainz that knows the demo's artists and enrich the most played.

    A third of the artists are linked to their Spotify id, a third are found through an
    ISRC, the rest by name; they live in a handful of cities, subdivisions and countries.
    MusicBrainz allows one request a second, so the demo waits ``interval_s`` between
    requests as the real client would (less only in tests: the fake has no limit) and stops
    after ``limit`` artists (``music-tracker enrich`` continues where it stopped).
    """
    from music_tracker import warehouse
    from music_tracker.fakes.musicbrainz import FakeArtist, FakeMusicBrainz, standard_areas
    from music_tracker.fakes.spotify import artist_id_for, isrc_for
    from music_tracker.sources.http import Budget
    from music_tracker.sources.musicbrainz.client import MusicBrainzClient
    from music_tracker.sources.musicbrainz.enrich import (
        enrich_artists,
        pending_artists,
        stored_area_ids,
    )

    areas = list(standard_areas().values())
    genres = [["indie rock", "rock"], ["electronic"], ["jazz"], ["hip hop"], ["folk", "indie"]]
    first_track: dict[str, Track] = {}
    for track in catalogue:
        first_track.setdefault(track.artist, track)
    artists = []
    for index, (name, track) in enumerate(sorted(first_track.items())):
        artists.append(
            FakeArtist(
                mbid=f"00000000-0000-4000-8000-{index:012d}",
                name=name,
                artist_type="Person" if index % 3 == 0 else "Group",
                area=areas[index % len(areas)].area_id,
                spotify_id=artist_id_for(name) if index % 3 == 0 else None,
                isrcs=[isrc_for(track.track_id)] if index % 3 == 1 else [],
                genres=genres[index % len(genres)],
            )
        )

    def writer() -> Any:
        return warehouse.connect(settings.warehouse_path, file_wait_s=settings.lock_wait_s)

    # the fake enforces the interval too, with room for the two clocks' jitter
    with FakeMusicBrainz(artists, min_interval_s=interval_s / 2) as fake:
        client = MusicBrainzClient(
            fake.base_url,
            "demo@example.org",
            timeout_s=10,
            budget=Budget(10_000),
            min_interval_s=interval_s,
        )
        with writer() as con:
            pending = pending_artists(con, timedelta(days=30), limit)
            known = stored_area_ids(con)
        summary = enrich_artists(
            writer, client, pending, min_score=settings.musicbrainz_min_score, known_areas=known
        )
        client.close()
    return summary.as_dict()
