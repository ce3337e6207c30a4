"""A simulated legacy account history: music and podcast episodes mixed, as before 2023.

Old account-data files (``StreamingHistoryN.json``) list episodes as music: the show as
"artistName", the episode as "trackName". This listener makes such a history with the
listening that makes podcasts hard to tell from music, and labels every row, so the
podcast rule (importers/podcasts.py) can be measured against the truth:

* podcasts: weekly shows followed for the year, numbered ("#156 - Guest"), one to three
  hours an episode, each heard over one to a dozen sittings of 3 to 45 minutes, resumed
  where it stopped, within a few days of its release, now and then a few seconds to find
  the place; one in seven sampled for a few minutes and dropped, one in ten not heard; a
  weekly interview show without numbers; a daily news bulletin of 5 to 25 minutes titled
  with its date, on weekdays;
* music: albums played through, shuffled favourites (heard in full again and again, or
  skipped), a favourite song on repeat, classical works with numbered titles
  ("Symphony No. 5 ...: I. Allegro con brio", "Op. 27 No. 2") including single tracks of
  20 to 45 minutes, a band with "Part 1" / "Part 2" titles, a live album whose titles are
  dated ("... - Live at Fillmore West, San Francisco, 2/27/1969"), and sleep sounds of one
  to eight hours (a sound bath, rain) heard at night to a sleep timer or on repeat.

A full play's ``msPlayed`` is the track's length less up to 1.5 s, as in real exports.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

_WORDS = (
    "night light heart fire river city dream summer rain gold shadow ocean echo wild blue "
    "silver stone ghost electric golden paper glass velvet neon midnight morning winter "
    "satellite garden mirror thunder honey static violet desert signal forever young"
).split()
_GUESTS = (
    "Ana Ruiz, Tom Becker, Priya Nair, Jon Adler, Mei Chen, Sam Okafor, Lena Vogt, Omar Haddad,"
    " Kate Moss, Ivan Petrov, Zoe Hart, Luis Ortega, Nina Park, Raj Patel, Eve Stone"
).split(", ")
_MINUTE = 60_000


@dataclass(frozen=True)
class LegacyRow:
    """One row as an old account export writes it, and what it really was."""

    ended_at: datetime
    artist: str
    title: str
    ms_played: int
    is_podcast: bool

    def record(self) -> dict[str, object]:
        return {
            "endTime": self.ended_at.strftime("%Y-%m-%d %H:%M"),
            "artistName": self.artist,
            "trackName": self.title,
            "msPlayed": self.ms_played,
        }


@dataclass(frozen=True)
class _Item:
    artist: str
    title: str
    length_ms: int


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count)).title()


def _music_catalogue(rng: random.Random) -> tuple[list[list[_Item]], list[_Item], list[_Item]]:
    """Albums (pop and classical, in track order), sleep sounds, and every track."""
    albums: list[list[_Item]] = []
    for band in range(60):
        artist = f"{_words(rng, 2)} {rng.choice(['Band', 'Club', 'Society', ''])}".strip()
        for _ in range(rng.randint(1, 3)):
            album = [
                _Item(artist, _words(rng, rng.randint(1, 3)), rng.randint(150_000, 330_000))
                for _ in range(rng.randint(8, 14))
            ]
            if band == 0:  # a band whose titles are numbered parts
                album += [
                    _Item(artist, f"Echoes, Part {n}", rng.randint(240_000, 720_000))
                    for n in (1, 2, 3)
                ]
            albums.append(album)
    for composer, work, opus in (
        ("Ludwig van Beethoven", "Symphony No. 5 in C Minor", "Op. 67"),
        ("Ludwig van Beethoven", "Piano Sonata No. 14 in C-Sharp Minor", "Op. 27 No. 2"),
        ("Gustav Mahler", "Symphony No. 2 in C Minor", "Resurrection"),
        ("Anton Bruckner", "Symphony No. 8 in C Minor", "WAB 108"),
    ):
        movements = ["I. Allegro", "II. Andante", "III. Scherzo", "IV. Finale"]
        albums.append(
            [
                _Item(composer, f"{work}, {opus}: {movement}", rng.randint(300_000, 1_500_000))
                for movement in movements
            ]
        )
    # a live album: every title dated like a daily show's episode
    albums.append(
        [
            _Item(
                "The Wandering Ones",
                f"{_words(rng, 2)} - Live at Fillmore West, San Francisco, 2/{day}/1969",
                rng.randint(240_000, 1_400_000),
            )
            for day in range(26, 28)
            for _ in range(5)
        ]
    )
    # whole works as single tracks of 20 to 45 minutes
    albums.append(
        [
            _Item("Johann Sebastian Bach", title, rng.randint(20 * _MINUTE, 45 * _MINUTE))
            for title in (
                "Goldberg Variations, BWV 988",
                "Cello Suite No. 1 in G Major, BWV 1007 (complete)",
                "The Art of Fugue, BWV 1080",
                "Mass in B Minor, BWV 232: Gloria (complete)",
            )
        ]
    )
    sleep = [
        _Item(artist, title, rng.randint(60 * _MINUTE, 8 * 60 * _MINUTE))
        for artist, title in (
            ("Sleeping Vibrations", "The Perfect Bedtime Sound Bath"),
            ("Sleeping Vibrations", "Deep Sleep Singing Bowls"),
            ("Rain Sounds Collective", "Heavy Rain on a Tin Roof, 8 Hours"),
            ("Rain Sounds Collective", "Thunderstorm at Night"),
            ("Rain Sounds Collective", "Gentle Rain for Sleep"),
            ("Brown Noise Lab", "Brown Noise Part 1"),
        )
    ]
    tracks = [item for album in albums for item in album]
    return albums, sleep, tracks


def _full(rng: random.Random, item: _Item) -> int:
    return item.length_ms - rng.randint(0, 1_500)


def legacy_history(
    seed: int = 26, start: date = date(2021, 1, 4), days: int = 365
) -> list[LegacyRow]:
    """A year of one listener's account data, music and episodes mixed, in time order."""
    rng = random.Random(seed)
    albums, sleep, tracks = _music_catalogue(rng)
    favourites = rng.sample(tracks, 80)
    on_repeat = rng.choice(favourites)
    weights = [1 / (rank + 1) for rank in range(len(favourites))]
    weekly = [
        (name, rng.randint(80, 300), rng.randint(60, 180), rng.randrange(7))
        for name in ("The Long Talk Show", "Misfits Weekly", "Deep Dive Radio")
    ]
    rows: list[LegacyRow] = []
    # (when, item, how many ms are left of it): episodes being heard, resumed where they stopped
    open_episodes: list[tuple[datetime, _Item, int]] = []

    def play(at: datetime, item: _Item, ms: int, is_podcast: bool) -> datetime:
        end = at + timedelta(milliseconds=ms)
        rows.append(
            LegacyRow(end.replace(second=0, microsecond=0), item.artist, item.title, ms, is_podcast)
        )
        return end + timedelta(seconds=rng.randint(1, 20))

    for offset in range(days):
        day = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=offset)
        for show, first, length_minutes, weekday in weekly:
            if day.weekday() == weekday:
                number = first + offset // 7
                guest = rng.choice(_GUESTS)
                length = (length_minutes + rng.randint(-20, 20)) * _MINUTE
                item = _Item(show, f"#{number} - {guest}", length)
                heard = rng.random()
                if heard < 0.15:  # sampled for a few minutes, then dropped
                    left = rng.randint(_MINUTE, 8 * _MINUTE)
                elif heard < 0.25:  # left unheard
                    continue
                else:
                    left = length
                open_episodes.append((day + timedelta(hours=rng.randint(0, 40)), item, left))
        if day.weekday() == 0 and rng.random() < 0.8:
            guest = rng.choice(_GUESTS)
            item = _Item(
                "Conversations",
                f"{guest} on {_words(rng, 3).lower()}",
                rng.randint(35, 70) * _MINUTE,
            )
            open_episodes.append((day + timedelta(hours=rng.randint(10, 60)), item, item.length_ms))
        clock = day + timedelta(hours=6, minutes=rng.randint(0, 90))
        if day.weekday() < 5 and rng.random() < 0.7:
            title = f"{day:%A}, {day:%B} {day.day}, {day.year}: {_words(rng, 3)}"
            item = _Item("The Morning Brief", title, rng.randint(5, 25) * _MINUTE)
            heard = item.length_ms if rng.random() < 0.8 else rng.randint(_MINUTE, item.length_ms)
            clock = play(clock, item, heard, True)
        # the day's sittings: commute, work, evening; each a podcast or a music session
        for hour in sorted(rng.sample([8, 12, 13, 17, 18, 20, 21, 22], rng.randint(2, 4))):
            clock = max(clock, day + timedelta(hours=hour, minutes=rng.randint(0, 50)))
            ready = [entry for entry in open_episodes if entry[0] <= clock]
            if ready and rng.random() < 0.55:
                entry = ready[0]
                _, item, left = entry
                if rng.random() < 0.15:  # finding the place again
                    clock = play(clock, item, rng.randint(1_000, 20_000), True)
                sitting = min(left, rng.randint(3 * _MINUTE, 45 * _MINUTE))
                clock = play(clock, item, sitting, True)
                open_episodes.remove(entry)
                if left - sitting > _MINUTE and rng.random() < 0.97:
                    # mostly the episode begun is the one resumed next
                    open_episodes.insert(
                        0 if rng.random() < 0.8 else len(open_episodes),
                        (clock + timedelta(hours=rng.randint(2, 30)), item, left - sitting),
                    )
                continue
            clock = _music_session(rng, clock, albums, favourites, weights, on_repeat, play)
        # drop episodes never finished after three weeks
        open_episodes = [e for e in open_episodes if e[0] > day - timedelta(days=21)]
        if rng.random() < 0.3:  # sleep sounds at night
            night = day + timedelta(hours=22, minutes=rng.randint(0, 120))
            item = rng.choice(sleep[:2]) if rng.random() < 0.7 else rng.choice(sleep)
            if rng.random() < 0.3:  # on repeat: heard to the end, again
                for _ in range(rng.randint(1, 2)):
                    night = play(night, item, _full(rng, item), False)
            else:  # until the sleep timer stops it
                play(
                    night,
                    item,
                    min(item.length_ms, rng.randint(15, 90) * _MINUTE + rng.randint(0, 59_999)),
                    False,
                )
    rows.sort(key=lambda row: row.ended_at)
    return rows


def _music_session(
    rng: random.Random,
    clock: datetime,
    albums: list[list[_Item]],
    favourites: list[_Item],
    weights: list[float],
    on_repeat: _Item,
    play: Callable[[datetime, _Item, int, bool], datetime],
) -> datetime:
    kind = rng.random()
    if kind < 0.35:  # an album played through, now and then a track skipped
        for item in rng.choice(albums):
            ms = rng.randint(3_000, 40_000) if rng.random() < 0.1 else _full(rng, item)
            clock = play(clock, item, ms, False)
    elif kind < 0.45:  # the favourite song on repeat
        for _ in range(rng.randint(4, 15)):
            clock = play(clock, on_repeat, _full(rng, on_repeat), False)
    else:  # shuffled favourites
        for item in rng.choices(favourites, weights=weights, k=rng.randint(5, 20)):
            ms = rng.randint(2_000, item.length_ms) if rng.random() < 0.2 else _full(rng, item)
            clock = play(clock, item, ms, False)
    return clock


def write_legacy_export(
    rows: list[LegacyRow], folder: Path, rows_per_file: int = 10_000
) -> list[Path]:
    """Write ``StreamingHistory0.json``, ``1``, ... as an old account export has them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, first in enumerate(range(0, len(rows), rows_per_file)):
        path = folder / f"StreamingHistory{number}.json"
        path.write_text(
            json.dumps([row.record() for row in rows[first : first + rows_per_file]], indent=2)
        )
        paths.append(path)
    return paths


def from_account_export(folder: Path) -> list[LegacyRow]:
    """A real account export (2023 on: music and podcast files apart) as an old one writes
    it: its episodes mixed into music as artist = show, track = episode."""
    rows = []
    for path in sorted(folder.glob("StreamingHistory_*.json")):
        is_podcast = "_podcast_" in path.name
        if not is_podcast and "_music_" not in path.name:
            continue
        for record in json.loads(path.read_text()):
            rows.append(
                LegacyRow(
                    datetime.strptime(record["endTime"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC),
                    record["podcastName" if is_podcast else "artistName"],
                    record["episodeName" if is_podcast else "trackName"],
                    record["msPlayed"],
                    is_podcast,
                )
            )
    rows.sort(key=lambda row: row.ended_at)
    return rows


def from_extended_history(folder: Path) -> list[LegacyRow]:
    """A real extended history as an old account export writes it: end times cut to the
    minute, no ids, episodes as artist = show, track = episode; audiobooks and videos left out."""
    rows = set()
    for path in sorted(folder.glob("Streaming_History_Audio_*.json")):
        for record in json.loads(path.read_text()):
            is_podcast = record.get("episode_show_name") is not None
            artist = (
                record["episode_show_name"]
                if is_podcast
                else record.get("master_metadata_album_artist_name")
            )
            title = (
                record["episode_name"] if is_podcast else record.get("master_metadata_track_name")
            )
            if artist is None or title is None:
                continue
            ended = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC, second=0
            )
            # the account export has one row per (minute, artist, track, ms): the extended
            # history's copies of a play collapse into it
            rows.add(LegacyRow(ended, artist, title, record["ms_played"], is_podcast))
    return sorted(rows, key=lambda row: (row.ended_at, row.artist, row.title, row.ms_played))


@dataclass(frozen=True)
class RuleScore:
    """How a decision of shows fares on labelled rows."""

    podcast_ms: int
    podcast_found_ms: int
    music_ms: int
    music_taken_ms: int

    @property
    def podcast_found(self) -> float:
        return self.podcast_found_ms / self.podcast_ms if self.podcast_ms else 1.0

    @property
    def music_taken(self) -> float:
        return self.music_taken_ms / self.music_ms if self.music_ms else 0.0


def score(rows: list[LegacyRow], shows: set[str]) -> RuleScore:
    """The podcast time found and the music time taken for podcasts when ``shows`` are
    the "artists" decided to be shows."""
    podcast = [row for row in rows if row.is_podcast]
    music = [row for row in rows if not row.is_podcast]
    return RuleScore(
        sum(row.ms_played for row in podcast),
        sum(row.ms_played for row in podcast if row.artist in shows),
        sum(row.ms_played for row in music),
        sum(row.ms_played for row in music if row.artist in shows),
    )
