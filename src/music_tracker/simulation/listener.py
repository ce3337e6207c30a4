"""A realistic, reproducible listening history: what the demo and the benchmarks import.

The generator invents a catalogue (artists with albums and tracks whose popularity follows a
Zipf law), then a listener: sessions every day in the evening-heavy rhythm of a real person
in their local time zone, tracks played to the end or skipped, occasional zero-length
plays, podcasts, offline plays. It writes the files the way Spotify and Last.fm ship them,
quirks included: exact duplicate rows, files not sorted by time, 21-field exports before
2024 (``username``, ``ip_addr_decrypted``) and 23-field ones after (``ip_addr``,
``audiobook_*``), ``offline_timestamp`` in ms in old exports and s in new ones.
"""

from __future__ import annotations

import csv
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

_SYLLABLES = (
    "al an ar be bo ca da de el en fa fi ga ha in ja ka la le li lo ma me mi mo na ne no "
    "or pa ra re ri ro sa se si so ta te ti to ul va ve vi wa ya ze zo"
).split()
_WORDS = (
    "night light heart fire river city dream summer rain gold shadow ocean echo wild blue "
    "silver stone ghost electric golden paper glass velvet neon midnight morning winter "
    "satellite garden mirror thunder honey static violet desert signal forever young"
).split()
_PLATFORMS_OLD = [
    "Android OS 8.0.0 API 26 (motorola, moto e5 play)",
    "iOS 12.1 (iPhone9,3)",
    "OS X 10.13.6 [x86 8]",
]
_PLATFORMS_NEW = ["android", "ios", "windows", "osx", "web_player"]
_REASONS_END_SKIP = ["fwdbtn", "backbtn", "endplay"]
_BASE62 = string.digits + string.ascii_letters
# Local-time rhythm: relative weight of starting a session in each hour of the day.
_HOUR_WEIGHTS = [
    1,
    0.5,
    0.3,
    0.2,
    0.2,
    0.4,
    1.5,
    3,
    4,
    3,
    2.5,
    2.5,
    3,
    3,
    2.5,
    2.5,
    3,
    4,
    5,
    6,
    6,
    5,
    4,
    2,
]


@dataclass(frozen=True)
class Track:
    track_id: str
    name: str
    artist: str
    album: str
    duration_ms: int


@dataclass(frozen=True)
class Play:
    ended_at: datetime  # UTC
    ms_played: int
    track: Track | None  # None for a podcast episode
    episode: tuple[str, str, str] | None  # (show, episode, uri)
    reason_start: str
    reason_end: str
    shuffle: bool
    skipped: bool
    offline: bool
    platform_index: int


def _spotify_id(rng: random.Random) -> str:
    return "".join(rng.choice(_BASE62) for _ in range(22))


def _name(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS).capitalize() for _ in range(words))


def _artist_name(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
    return rng.choice([word, f"The {_name(rng, 1)}s", f"{word} {_name(rng, 1)}", f"DJ {word}"])


def build_catalogue(rng: random.Random, artists: int = 2_500) -> list[Track]:
    """Artists with 1-4 albums of 6-14 tracks each; ordered by popularity (most first)."""
    tracks: list[Track] = []
    seen: set[str] = set()
    for _ in range(artists):
        artist = _artist_name(rng)
        while artist in seen:
            artist = f"{artist} {rng.choice(_SYLLABLES).capitalize()}"
        seen.add(artist)
        for _ in range(rng.randint(1, 4)):
            album = _name(rng, rng.randint(1, 3))
            for _ in range(rng.randint(6, 14)):
                title = _name(rng, rng.randint(1, 4))
                if rng.random() < 0.04:
                    title += f" (feat. {_artist_name(rng)})"
                if rng.random() < 0.03:
                    title += f" - Remastered {rng.randint(2005, 2020)}"
                duration = max(45_000, int(rng.gauss(215_000, 60_000)))
                tracks.append(Track(_spotify_id(rng), title, artist, album, duration))
    return tracks


def listen(
    rng: random.Random,
    catalogue: list[Track],
    start: date,
    end: date,
    plays: int,
    timezone: str = "America/Denver",
    podcast_share: float = 0.02,
    one_stream: bool = True,
) -> list[Play]:
    """About ``plays`` plays between ``start`` and ``end`` (inclusive), in time order.

    One account plays one stream at a time, so a day holds at most about 400 plays; with
    ``one_stream=False`` sessions may overlap (a stress test of 10 million plays in 20
    years, 1,370 a day, which no single listener could produce).
    """
    zone = ZoneInfo(timezone)
    days = (end - start).days + 1
    per_day = plays / days
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(catalogue))]
    cumulative = list(_accumulate(weights))
    shows = [(f"The {_name(rng, 2)} Podcast", _spotify_id(rng)) for _ in range(12)]
    result: list[Play] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        remaining = max(0, round(rng.gauss(per_day, per_day * 0.4)))
        while remaining > 0:
            hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
            local = datetime(
                day.year,
                day.month,
                day.day,
                hour,
                rng.randint(0, 59),
                rng.randint(0, 59),
                tzinfo=zone,
            )
            clock = local.astimezone(UTC)
            if one_stream and result and clock < result[-1].ended_at:
                # one account plays one stream at a time: a session starts after the last
                clock = result[-1].ended_at + timedelta(minutes=rng.randint(1, 30))
            session = min(remaining, rng.randint(3, 30))
            remaining -= session
            shuffle = rng.random() < 0.5
            offline = rng.random() < 0.05
            platform_index = rng.randrange(5)
            for _ in range(session):
                if rng.random() < podcast_share:
                    show, _show_id = rng.choice(shows)
                    ms = rng.randint(60_000, 3_000_000)
                    clock += timedelta(milliseconds=ms)
                    episode = (
                        show,
                        f"Episode {rng.randint(1, 300)}: {_name(rng, 3)}",
                        f"spotify:episode:{_spotify_id(rng)}",
                    )
                    result.append(
                        Play(
                            clock,
                            ms,
                            None,
                            episode,
                            "clickrow",
                            "trackdone",
                            False,
                            False,
                            offline,
                            platform_index,
                        )
                    )
                    continue
                track = catalogue[_pick(rng, cumulative)]
                roll = rng.random()
                if roll < 0.01:
                    ms, reason_end, skipped = 0, "endplay", True
                elif roll < 0.18:
                    ms = rng.randint(500, min(track.duration_ms, 60_000))
                    reason_end, skipped = rng.choice(_REASONS_END_SKIP), True
                else:
                    ms, reason_end, skipped = track.duration_ms, "trackdone", False
                clock += timedelta(milliseconds=ms + rng.randint(0, 2_000))
                reason_start = (
                    "trackdone" if result and result[-1].reason_end == "trackdone" else "clickrow"
                )
                result.append(
                    Play(
                        clock,
                        ms,
                        track,
                        None,
                        reason_start,
                        reason_end,
                        shuffle,
                        skipped,
                        offline,
                        platform_index,
                    )
                )
    if not one_stream:
        result.sort(key=lambda play: play.ended_at)
    return [p for p in result if p.ended_at.date() <= end + timedelta(days=1)]


def _accumulate(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    import bisect

    return min(bisect.bisect_left(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)


def extended_record(play: Play, *, new_generation: bool, rng: random.Random) -> dict[str, object]:
    """One play as a row of the extended streaming history (21 or 23 fields)."""
    track, episode = play.track, play.episode
    record: dict[str, object] = {"ts": play.ended_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if not new_generation:
        record["username"] = "a1b2c3d4e5"
    platform = (_PLATFORMS_NEW if new_generation else _PLATFORMS_OLD * 2)[play.platform_index % 5]
    record["platform"] = platform
    record["ms_played"] = play.ms_played
    record["conn_country"] = "ZZ" if play.offline and rng.random() < 0.5 else "US"
    record["ip_addr" if new_generation else "ip_addr_decrypted"] = (
        f"192.0.2.{play.platform_index + 10}"
    )
    if not new_generation:
        record["user_agent_decrypted"] = "unknown"
    record.update(
        master_metadata_track_name=track.name if track else None,
        master_metadata_album_artist_name=track.artist if track else None,
        master_metadata_album_album_name=track.album if track else None,
        spotify_track_uri=f"spotify:track:{track.track_id}" if track else None,
        episode_name=episode[1] if episode else None,
        episode_show_name=episode[0] if episode else None,
        spotify_episode_uri=episode[2] if episode else None,
    )
    if new_generation:
        record.update(
            audiobook_title=None,
            audiobook_uri=None,
            audiobook_chapter_uri=None,
            audiobook_chapter_title=None,
        )
    offline_at = None
    if play.offline:
        started = play.ended_at - timedelta(milliseconds=play.ms_played)
        offline_at = int(started.timestamp()) if new_generation else int(started.timestamp() * 1000)
    record.update(
        reason_start=play.reason_start,
        reason_end=play.reason_end,
        shuffle=play.shuffle,
        skipped=play.skipped if new_generation or play.ended_at.year >= 2020 else None,
        offline=play.offline,
        offline_timestamp=offline_at,
        incognito_mode=False,
    )
    return record


def write_extended(
    plays: list[Play],
    folder: Path,
    rng: random.Random,
    *,
    new_generation: bool,
    rows_per_file: int = 16_000,
) -> list[Path]:
    """Write an extended-history export: ~16k rows per file, a few duplicates, not sorted.

    One file's records at a time in memory (10 million plays are 20 GB of dicts).
    """
    folder.mkdir(parents=True, exist_ok=True)
    plays = sorted(plays, key=lambda play: play.ended_at)
    paths: list[Path] = []
    for index, first in enumerate(range(0, len(plays), rows_per_file)):
        chunk = [
            extended_record(p, new_generation=new_generation, rng=rng)
            for p in plays[first : first + rows_per_file]
        ]
        chunk += [chunk[i] for i in rng.sample(range(len(chunk)), k=len(chunk) // 300)]
        chunk.sort(key=lambda r: str(r["ts"]))
        if new_generation:
            years = f"{str(chunk[0]['ts'])[:4]}-{str(chunk[-1]['ts'])[:4]}"
            name = f"Streaming_History_Audio_{years}_{index}.json"
        else:
            name = f"endsong_{index}.json"
        if index % 3 == 1:  # real exports are not always sorted
            rng.shuffle(chunk)
        path = folder / name
        path.write_text(json.dumps(chunk, indent=2 if index == 0 else None))
        paths.append(path)
    (folder / "ReadMeFirst_ExtendedStreamingHistory.pdf").write_bytes(
        b"%PDF-1.4\n% demo placeholder\n"
    )
    return paths


def write_account_data(plays: list[Play], folder: Path, rows_per_file: int = 10_000) -> list[Path]:
    """Write an account-data package: StreamingHistory_music_N.json and _podcast_N.json."""
    folder.mkdir(parents=True, exist_ok=True)
    music = [
        {
            "endTime": p.ended_at.strftime("%Y-%m-%d %H:%M"),
            "artistName": p.track.artist,
            "trackName": p.track.name,
            "msPlayed": p.ms_played,
        }
        for p in plays
        if p.track
    ]
    podcasts = [
        {
            "endTime": p.ended_at.strftime("%Y-%m-%d %H:%M"),
            "podcastName": p.episode[0],
            "episodeName": p.episode[1],
            "msPlayed": p.ms_played,
        }
        for p in plays
        if p.episode
    ]
    paths = []
    for index, first in enumerate(range(0, len(music), rows_per_file)):
        path = folder / f"StreamingHistory_music_{index}.json"
        path.write_text(json.dumps(music[first : first + rows_per_file], indent=2))
        paths.append(path)
    path = folder / "StreamingHistory_podcast_0.json"
    path.write_text(json.dumps(podcasts, indent=2))
    (folder / "Userdata.json").write_text(json.dumps({"username": "demo", "country": "US"}))
    return [*paths, path]


def write_lastfm(plays: list[Play], path: Path) -> Path:
    """Write a Last.fm scrobble export: headerless artist,album,track,date (start, UTC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for play in sorted(plays, key=lambda p: p.ended_at, reverse=True):
            if play.track is None or play.ms_played < 30_000:
                continue  # Last.fm scrobbles only tracks played long enough
            started = play.ended_at - timedelta(milliseconds=play.ms_played)
            writer.writerow(
                [
                    play.track.artist,
                    play.track.album,
                    play.track.name,
                    started.strftime("%d %b %Y %H:%M"),
                ]
            )
    return path


# --- Messy listening: what really happened, and what each source records of it ----------
#
# The de-duplication rules are tested against this, not against their own formulas: a
# listener pauses, stops early, seeks, repeats short tracks and plays some tracks on
# another player that only Last.fm hears, with device clocks a little off; each source
# then records what it really knows (docs/deduplication.md).

LASTFM_MIN_TRACK_MS = 30_000  # Last.fm scrobbles no track shorter than 30 s...
LASTFM_ENOUGH_MS = 240_000  # ...once half of it, or 4 minutes, has been heard
# a scrobbled play of a track this long lasts a minute at least (half of it heard)
_TWO_MINUTES_MS = 120_000


@dataclass(frozen=True)
class TruePlay:
    """One listening event as it happened (ground truth)."""

    index: int
    track: Track
    started_at: datetime  # UTC, exact
    heard_ms: int  # what Spotify counts as ms_played
    paused_ms: int  # time spent paused in the middle
    on_spotify: bool  # False: another player, heard by Last.fm only
    scrobble_clock_s: int  # the scrobbling device's clock error, in seconds
    # the extended history writes this play twice, the copy's ``ts`` this many seconds
    # later (0: once), as real exports do with a few plays
    written_twice_after_s: int = 0

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(milliseconds=self.heard_ms + self.paused_ms)

    @property
    def scrobbled(self) -> bool:
        """Last.fm's rule: a track over 30 s, heard for half its length or 4 minutes."""
        track = self.track.duration_ms
        return track > LASTFM_MIN_TRACK_MS and self.heard_ms >= min(track // 2, LASTFM_ENOUGH_MS)


def listen_messily(
    rng: random.Random,
    catalogue: list[Track],
    start: datetime,
    plays: int,
    *,
    max_clock_error_s: int = 20,
) -> list[TruePlay]:
    """``plays`` plays in a row from ``start``, with the habits that make sources disagree.

    About a third of the plays are paused (10 s to 10 min) or stopped early, some are seeks
    to the end, short tracks are repeated back to back, and now and then any track is put
    on repeat (two to five more plays, each heard in full). One in twenty is on another
    player. Each session's scrobbling device has its clock off by up to
    ``max_clock_error_s``. The extended history writes one Spotify play in twenty twice,
    the copy 1-44 s later (as real exports do), and half of those plays are repeated
    straight after: the copy then lies between the two plays' rows.

    Another player's plays come from their own tenth of the catalogue (tracks the listener
    owns elsewhere): a scrobble from another player of a track heard on Spotify within the
    same few minutes cannot be told from that Spotify play's scrobble by any record (the
    device's clock may be a minute off), so no rule could get it right and none is tested.
    The exception is the one case the records do decide: the track just heard on Spotify
    and scrobbled, played again straight after on another player (its own scrobble is the
    Spotify play's nearest). The same track then goes through two players. Only a track of
    two minutes or more: its two scrobbles start a minute apart at least, whereas two
    scrobbles of one track in one minute are one row of Last.fm's export (its natural key
    is to the minute: docs/deduplication.md).
    """
    elsewhere = catalogue[9::10]
    on_spotify_only = [t for i, t in enumerate(catalogue) if i % 10 != 9]
    result: list[TruePlay] = []
    clock = start
    clock_error = rng.randint(-max_clock_error_s, max_clock_error_s)
    previous: TruePlay | None = None
    on_repeat = 0  # plays still to come of the track on repeat
    for index in range(plays):
        in_full = False
        if (
            previous is not None
            and previous.on_spotify
            and (
                on_repeat > 0
                or (
                    previous.written_twice_after_s
                    and previous.heard_ms == previous.track.duration_ms
                    and rng.random() < 0.5
                )
            )
        ):  # on repeat: the same track straight after, heard in full
            track, on_spotify, in_full = previous.track, True, True
            on_repeat = max(0, on_repeat - 1)
        else:
            on_repeat = 0
            if rng.random() < 0.1:  # a new session: another hour, maybe another device
                clock += timedelta(minutes=rng.randint(20, 180))
                clock_error = rng.randint(-max_clock_error_s, max_clock_error_s)
                previous = None
            player = rng.random()
            on_spotify = player >= 0.05
            if not on_spotify:
                track = rng.choice(elsewhere)
            elif (
                player < 0.07
                and previous is not None
                and previous.on_spotify
                and previous.scrobbled
                and previous.track.duration_ms >= _TWO_MINUTES_MS
            ):  # the same track again on another player
                track, on_spotify = previous.track, False
            elif (
                previous is not None
                and previous.on_spotify
                and previous.track.duration_ms < 90_000
                and rng.random() < 0.5
            ):
                track = previous.track  # a short track on repeat
            else:
                track = rng.choice(on_spotify_only)
                if rng.random() < 0.03:  # put on repeat, starting with this play
                    on_repeat, in_full = rng.randint(2, 5), True
        roll = rng.random()
        paused = 0
        if in_full:  # heard to the end, perhaps after a pause
            heard = track.duration_ms
            paused = rng.randint(10_000, 600_000) if roll < 0.15 else 0
        elif roll < 0.15:  # paused in the middle, then heard to the end
            heard, paused = track.duration_ms, rng.randint(10_000, 600_000)
        elif roll < 0.27:  # stopped early
            heard = rng.randint(5_000, track.duration_ms)
        elif roll < 0.32:  # sought towards the end: heard less than its length, no pause
            heard = rng.randint(track.duration_ms // 3, track.duration_ms)
        elif roll < 0.37:  # paused and stopped early
            heard, paused = rng.randint(5_000, track.duration_ms), rng.randint(10_000, 300_000)
        else:
            heard = track.duration_ms
        # a copy is one only while it overlaps its play (docs/deduplication.md): at most
        # the time heard less the 2 s of ``ts``'s precision, and 1-44 s as in real exports
        copy_after = 0
        if on_spotify and heard >= 5_000 and rng.random() < 0.05:
            copy_after = rng.randint(1, min(44, heard // 1000 - 3))
        started = clock + timedelta(milliseconds=rng.randint(0, 3_000))
        play = TruePlay(index, track, started, heard, paused, on_spotify, clock_error, copy_after)
        result.append(play)
        clock = play.ended_at
        previous = play
    return result


def short_catalogue(rng: random.Random, tracks: int = 40) -> list[Track]:
    """A small catalogue in which plays of one track often come close together: a quarter
    of the tracks are 35-89 s long (the ones repeated back to back)."""
    result = []
    for index in range(tracks):
        duration = rng.randint(35_000, 89_000) if index % 4 == 0 else rng.randint(120_000, 420_000)
        result.append(
            Track(_spotify_id(rng), f"Song {index}", f"Artist {index % 7}", "Album", duration)
        )
    return result


def extended_rows(plays: list[TruePlay]) -> list[tuple[int, dict[str, object]]]:
    """(truth index, row) of the extended history: the end to the second, the time heard.

    As in real exports, some plays are written twice (``TruePlay.written_twice_after_s``).
    """
    rows = []
    for play in plays:
        if not play.on_spotify or play.heard_ms <= 0:
            continue
        row = _extended_row(play)
        rows.append((play.index, row))
        if play.written_twice_after_s:
            again = play.ended_at + timedelta(seconds=play.written_twice_after_s)
            rows.append((play.index, row | {"ts": again.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    return rows


def _extended_row(play: TruePlay) -> dict[str, object]:
    return {
        "ts": play.ended_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": "android",
        "ms_played": play.heard_ms,
        "conn_country": "SE",
        "master_metadata_track_name": play.track.name,
        "master_metadata_album_artist_name": play.track.artist,
        "master_metadata_album_album_name": play.track.album,
        "spotify_track_uri": f"spotify:track:{play.track.track_id}",
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "reason_start": "clickrow",
        "reason_end": "trackdone" if play.heard_ms == play.track.duration_ms else "endplay",
        "shuffle": False,
        "skipped": play.heard_ms < play.track.duration_ms,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": False,
    }


def account_rows(plays: list[TruePlay]) -> list[tuple[int, dict[str, object]]]:
    """(truth index, row) of account data: the end to the minute, the time heard."""
    return [
        (
            play.index,
            {
                "endTime": play.ended_at.strftime("%Y-%m-%d %H:%M"),
                "artistName": play.track.artist,
                "trackName": play.track.name,
                "msPlayed": play.heard_ms,
            },
        )
        for play in plays
        if play.on_spotify and play.heard_ms > 0
    ]


def api_items(plays: list[TruePlay]) -> list[tuple[int, dict[str, object]]]:
    """(truth index, item) of the recently-played endpoint: the end to the millisecond and
    the track's full length (the API does not say how much was heard)."""
    items: list[tuple[int, dict[str, object]]] = []
    for play in plays:
        if not play.on_spotify or play.heard_ms < LASTFM_MIN_TRACK_MS:
            continue  # Spotify lists a play in recently played after about 30 s
        track = play.track
        artist = {"id": _stable_id("artist", track.artist), "name": track.artist}
        items.append(
            (
                play.index,
                {
                    "played_at": play.ended_at.strftime("%Y-%m-%dT%H:%M:%S.")
                    + f"{play.ended_at.microsecond // 1000:03d}Z",
                    "context": None,
                    "track": {
                        "id": track.track_id,
                        "name": track.name,
                        "duration_ms": track.duration_ms,
                        "artists": [artist],
                        "album": {
                            "id": _stable_id("album", track.album + track.artist),
                            "name": track.album,
                        },
                        "external_ids": {},
                    },
                },
            )
        )
    return items


def lastfm_rows(plays: list[TruePlay]) -> list[tuple[int, list[str]]]:
    """(truth index, CSV row) of a Last.fm export: the start by the scrobbling device's
    clock, to the minute; only scrobbled plays, from any player."""
    rows = []
    for play in plays:
        if not play.scrobbled:
            continue
        started = play.started_at + timedelta(seconds=play.scrobble_clock_s)
        rows.append(
            (
                play.index,
                [play.track.artist, play.track.album, play.track.name, f"{started:%d %b %Y %H:%M}"],
            )
        )
    return rows


def write_records(source: str, plays: list[TruePlay], folder: Path) -> tuple[Path, list[int]]:
    """Write what ``source`` records of ``plays`` as that source's file in ``folder``.

    ``source`` is a source's name in the warehouse (``dedupe.EXTENDED`` and the others).
    Returns the file and, for each of its rows in order, the index of the true play it
    records: the independent truth the de-duplication is checked against.
    """
    from music_tracker import dedupe

    folder.mkdir(parents=True, exist_ok=True)
    if source == dedupe.LASTFM:
        lastfm = lastfm_rows(plays)
        path = folder / "scrobbles.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(row for _, row in lastfm)
        return path, [index for index, _ in lastfm]
    if source == dedupe.API:
        items = api_items(plays)
        path = folder / "recently_played.json"
        page = {"items": [item for _, item in items], "cursors": None, "limit": 50}
        path.write_text(json.dumps(page))
        return path, [index for index, _ in items]
    if source == dedupe.EXTENDED:
        records, path = extended_rows(plays), folder / "Streaming_History_Audio_2021.json"
    elif source == dedupe.ACCOUNT:
        records, path = account_rows(plays), folder / "StreamingHistory_music_0.json"
    else:
        raise ValueError(f"unknown source {source!r}")
    path.write_text(json.dumps([row for _, row in records]))
    return path, [index for index, _ in records]


def _stable_id(kind: str, name: str) -> str:
    digest = random.Random(f"{kind}:{name}")
    return "".join(digest.choice(_BASE62) for _ in range(22))
