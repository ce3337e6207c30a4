"""``music-tracker demo``: the whole pipeline on a generated history, no credentials needed.

``run_demo`` is the sequence (the CLI prints its lines and the status at the end): a
generated listening life imported from four overlapping exports, a fake Spotify polled,
the star schema built, a fake MusicBrainz asked, the report written, the serving copy
published and a fake Metabase provisioned. Every step runs the same job a command runs,
with the demo's settings (its tolerances and memory cap are the configured ones).
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from music_tracker.console import matched_in_words
from music_tracker.importers.run import run_import
from music_tracker.ingest import ingest
from music_tracker.lock import DataFolderError as DataFolderError
from music_tracker.lock import WriterBusy, make_folders, writer_lock
from music_tracker.metabase.client import MetabaseError
from music_tracker.metabase.provision import provision_project
from music_tracker.publish import PublishError, publish
from music_tracker.report import OutputRefused, report
from music_tracker.reporting.definitions import DefinitionError
from music_tracker.reporting.static_site import ReportError
from music_tracker.settings import Settings
from music_tracker.simulation.listener import (
    Track,
    build_catalogue,
    listen,
    write_account_data,
    write_extended,
    write_lastfm,
)
from music_tracker.transform import run_build
from music_tracker.warehouse import WarehouseBusy

DEMO_DATA_DIR = Path("data/demo")
DEMO_MARKER = ".music-tracker-demo"

Say = Callable[[str], None]  # one line of the demo's story (rich markup)


class DemoError(Exception):
    """The demo cannot run here, or a step of it went wrong; the message says which."""


# what stops the demo with one line: another writer (its publish takes the writer lock) and
# the failures of its steps that say what went wrong
BUSY = (WriterBusy, WarehouseBusy)
FAILURES = (
    DemoError,
    PublishError,
    MetabaseError,
    DefinitionError,
    ReportError,
    OutputRefused,
    DataFolderError,
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


def reference_spec() -> Path | None:
    """The Metabase API subset the demo's fake checks every request against, in the
    project's reference folder when MUSIC_TRACKER_SHARED names one (docs/architecture.md,
    "Reference data")."""
    shared = os.environ.get("MUSIC_TRACKER_SHARED")
    return Path(shared) / "specs" / "metabase" / "metabase-openapi-subset.json" if shared else None


def claim_folder(settings: Settings) -> None:
    """Make the data folder the demo's own: never one with a warehouse or tokens that the
    demo did not make (real data), DemoError then."""
    marker = settings.data_dir / DEMO_MARKER
    real = [
        path
        for path in (settings.warehouse_path, settings.state_dir / "spotify_token.json")
        if path.exists()
    ]
    if real and not marker.exists():
        raise DemoError(
            f"{settings.data_dir.resolve()} holds real data ({', '.join(p.name for p in real)}):"
            " the demo needs a folder of its own; run it without --data-dir (it uses"
            f" {DEMO_DATA_DIR}) or name an empty folder"
        )
    make_folders(settings.data_dir)
    marker.write_text("made by `music-tracker demo`: generated data, safe to delete\n")


def demo_metabase(settings: Settings, say: Say, *, spec: Path | None = None) -> dict[str, Any]:
    """Publish, then provision a fake Metabase (the real one is a Java service the demo
    does not need); every request checked against the Metabase API subset ``spec`` when
    one is given."""
    from music_tracker.fakes.metabase import FakeMetabase

    site = settings.metabase_site_url or "https://music.example.com"
    with FakeMetabase(
        spec=spec if spec is not None and spec.is_file() else None,
        path_map={settings.metabase_serving_dir: str(settings.serving_dir)},
    ) as fake:
        demo_settings = settings.model_copy(
            update={
                "metabase_url": fake.root_url,
                "metabase_site_url": site,
                "metabase_admin_email": "demo@example.com",
                "metabase_admin_password": SecretStr(secrets.token_urlsafe(16)),
                "metabase_api_key": SecretStr(""),
            }
        )
        # the first copy is written before Metabase has a database to point at it
        with writer_lock(settings.data_dir, "publish", wait_s=settings.lock_wait_s):
            published = publish(demo_settings.model_copy(update={"metabase_url": ""})).as_dict()
        say(
            f"  {Path(published['path']).name}: {published['tables']} tables,"
            f" {published['rows']:,} rows"
        )
        result = provision_project(demo_settings).as_dict()
        if fake.rejected:  # a request outside the spec is a bug in the provisioner
            raise DemoError("the fake Metabase rejected: " + "; ".join(fake.rejected))
    say(
        f"  {len(result['created'])} objects created; {len(result['public_links'])} public"
        f" dashboards; links in {result['links_file']}"
    )
    return {"site": site, **result}


def run_demo(
    settings: Settings,
    say: Say,
    *,
    musicbrainz_interval: float = 1.0,
    spec: Path | None = None,
    plays_per_year: int = 3_000,
) -> dict[str, Any]:
    """The demo's eight steps in ``settings.data_dir`` (``claim_folder`` first); the
    report's summary and the fake Metabase's public links."""
    inputs_dir = settings.data_dir / "demo-inputs"
    say(f"[bold]1/8[/] generating a listening history in {inputs_dir}")
    inputs = generate_inputs(inputs_dir, plays_per_year=plays_per_year)
    say("[bold]2/8[/] importing Last.fm scrobbles and three overlapping Spotify exports")
    for path in (inputs.lastfm_csv, inputs.old_extended, inputs.new_extended, inputs.account_data):
        result = run_import(settings, [path]).as_dict()
        say(
            f"  {path.parent.name}/{path.name}: {result['new_plays']:,} new plays, "
            f"{sum(result['duplicates'].values()):,} duplicates"
        )
    say(
        "[bold]3/8[/] polling a fake Spotify on 127.0.0.1 every 10 simulated minutes "
        "for 12 hours, then fetching track, album and artist metadata"
    )
    polled = poll_fake_spotify(settings, inputs.catalogue)
    say(
        f"  {polled['polls']} polls: {polled['new_plays']} new plays, "
        f"{polled['duplicates']} overlapping rows ignored; {polled['tracks']} tracks enriched"
    )
    say("[bold]4/8[/] building the star schema with dbt (models and data tests)")
    built = run_build(settings)
    say(f"  {built.succeeded} models, seeds and tests passed")
    say(
        "[bold]5/8[/] looking up the 25 most played artists in a fake MusicBrainz "
        f"(a request every {musicbrainz_interval:g} s; the real service allows one a second)"
    )
    found = enrich_with_fake_musicbrainz(
        settings, inputs.catalogue, limit=25, interval_s=musicbrainz_interval
    )
    say(
        f"  {found['found']} found ({matched_in_words(found['matched_by'])}),"
        f" {found['areas_fetched']} areas"
    )
    say("[bold]6/8[/] rebuilding the star schema with the artists' countries and genres")
    built = run_build(settings)
    say(f"  {built.succeeded} models, seeds and tests passed")
    say("[bold]7/8[/] writing the dashboards as a static report")
    written = report(settings)
    say(
        "[bold]8/8[/] publishing the serving copy and provisioning a fake Metabase on 127.0.0.1"
        " (setup, database, cards, dashboards, public links)"
    )
    return {"report": written, "metabase": demo_metabase(settings, say, spec=spec)}
