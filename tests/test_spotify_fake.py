"""The fake Spotify follows the published spec; real recorded responses parse the same way."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from conftest import SPOTIFY_DATA
from music_tracker.fakes.spotify import FakeSpotify
from music_tracker.sources.spotify import parse
from spotify_spec import validate

SAMPLES = SPOTIFY_DATA / "api_samples"


@pytest.fixture
def fake() -> FakeSpotify:
    with FakeSpotify(seed=3) as server:
        server.advance(timedelta(hours=12))
        yield server


def _get(fake: FakeSpotify, path: str, **params: object) -> httpx.Response:
    access, _ = fake.grant_tokens()
    return httpx.get(
        f"{fake.api_base}/{path}", params=params, headers={"Authorization": f"Bearer {access}"}
    )


def test_recently_played_matches_spec_and_holds_last_50(fake: FakeSpotify) -> None:
    response = _get(fake, "me/player/recently-played", limit=50)
    validate(response)
    body = response.json()
    assert len(body["items"]) == 50
    truth = sorted(fake.plays, key=lambda p: p.played_at)[-50:]
    assert [i["track"]["id"] for i in body["items"]] == [p.track.track_id for p in reversed(truth)]
    after = int(body["cursors"]["before"])
    newer = _get(fake, "me/player/recently-played", limit=50, after=after).json()
    assert len(newer["items"]) == 49  # strictly after the oldest of the first page
    for item in body["items"]:
        assert "popularity" not in item["track"] and "available_markets" not in item["track"]
        assert item["track"]["external_ids"]["isrc"]


@pytest.mark.parametrize("kind", ["tracks", "albums", "artists"])
def test_single_items_match_spec(fake: FakeSpotify, kind: str) -> None:
    track = fake.plays[0].track
    page = _get(fake, "me/player/recently-played", limit=1).json()["items"][0]["track"]
    item_id = {
        "tracks": page["id"],
        "albums": page["album"]["id"],
        "artists": page["artists"][0]["id"],
    }[kind]
    response = _get(fake, f"{kind}/{item_id}")
    validate(response)
    assert "popularity" not in response.json()
    assert track is not None


def test_errors_match_spec(fake: FakeSpotify) -> None:
    expired = httpx.get(
        f"{fake.api_base}/me/player/recently-played", headers={"Authorization": "Bearer nope"}
    )
    assert expired.status_code == 401
    validate(expired)
    fake.inject("429")
    limited = _get(fake, "me/player/recently-played")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    validate(limited)
    batch = _get(fake, "tracks", ids=fake.plays[0].track.track_id)
    assert batch.status_code == 403  # development mode: batch endpoints are gone
    validate(batch)


@pytest.mark.parametrize(
    "sample", ["recently-played__spotify-web-api-java.json", "recently-played__zmb3-spotify.json"]
)
def test_real_recorded_pages_parse_with_the_client_code(sample: str) -> None:
    page = json.loads((SAMPLES / sample).read_text())
    assert parse.is_recently_played_page(page)
    rows = parse.recently_played_rows(page)
    assert rows.height == len(page["items"])
    assert rows["played_at"].null_count() == 0 and rows["track_id"].null_count() == 0
    first = page["items"][0]
    assert rows["track_id"][0] == first["track"]["id"]
    assert rows["artist_name"][0] == first["track"]["artists"][0]["name"]


def test_real_recorded_objects_parse_with_the_client_code() -> None:
    tracks = json.loads((SAMPLES / "tracks-several__spotify-web-api-java.json").read_text())[
        "tracks"
    ]
    row = parse.track_row(tracks[0])
    assert row["track_id"] == tracks[0]["id"] and row["duration_ms"] == tracks[0]["duration_ms"]
    assert row["isrc"] == tracks[0]["external_ids"]["isrc"]
    assert row["popularity"] == tracks[0]["popularity"]  # read when the API still serves it
    albums = json.loads((SAMPLES / "albums-several__spotify-web-api-java.json").read_text())[
        "albums"
    ]
    assert parse.album_row(albums[0])["release_date"] == albums[0]["release_date"]
    artists = json.loads((SAMPLES / "artists-several__spotify-web-api-java.json").read_text())[
        "artists"
    ]
    assert parse.artist_row(artists[0])["genres"] == artists[0]["genres"]
    local = json.loads((SAMPLES / "track-local__spotify-web-api-java.json").read_text())
    assert parse.track_row(local)["track_id"] == local["id"]


def test_recorded_pages_import(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    for sample in (
        "recently-played__spotify-web-api-java.json",
        "recently-played__zmb3-spotify.json",
    ):
        result = cli("import", str(SAMPLES / sample), "--json")
        summary = json.loads(result.stdout)
        assert summary["new_plays"] == len(json.loads((SAMPLES / sample).read_text())["items"])
