"""Which export format a file holds, told from its content rather than its name."""

from __future__ import annotations

import csv
import io
import json
import re
from enum import StrEnum

from music_tracker.importers.errors import ImportInputError

SNIFF_BYTES = 256 * 1024


class Format(StrEnum):
    """Input formats; values are what ``--source`` accepts."""

    EXTENDED = "spotify_extended_history"
    ACCOUNT_MUSIC = "spotify_account_data"
    ACCOUNT_PODCAST = "spotify_account_podcast"
    ACCOUNT_AUDIOBOOK = "spotify_account_audiobook"
    LASTFM = "lastfm"
    API = "spotify_api"
    LISTENBRAINZ = "listenbrainz"


class NotHistory(Exception):
    """The file is valid but holds no listening history (Userdata.json, a PDF, ...)."""


class EmptyHistory(Exception):
    """A history file holding an empty list: nothing to import, nothing wrong."""


_EXTENDED_KEYS = {"ts", "ms_played"}
_ACCOUNT_MUSIC_KEYS = {"endTime", "artistName", "trackName", "msPlayed"}
_ACCOUNT_PODCAST_KEYS = {"endTime", "podcastName", "episodeName", "msPlayed"}
_ACCOUNT_AUDIOBOOK_KEYS = {"endTime", "audiobookName", "chapterName", "msPlayed"}
_LISTEN_KEYS = {"listened_at", "track_metadata"}
LASTFM_DATE_FORMAT = "%d %b %Y %H:%M"
_LASTFM_DATE = re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}$")


def detect_format(name: str, head: bytes) -> Format:
    """Tell the format from the first bytes of a file.

    Raises ``NotHistory`` for well-formed files that are not listening history,
    ``EmptyHistory`` for an empty list, and ``ImportInputError`` for content that cannot be
    read at all (empty, truncated, not JSON or CSV).
    """
    if not head.strip():
        raise ImportInputError(name, "the file is empty", hint="download the export again")
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith(("[", "{")):
        return _detect_json(name, text)
    if name.lower().endswith(".json"):
        raise ImportInputError(
            name,
            "not valid JSON although the name ends in .json",
            hint="the file may be damaged or not a Spotify export; download it again",
        )
    if text.startswith("%PDF") or "\x00" in text[:1024]:
        raise NotHistory(name)
    return _detect_csv(name, text)


def _detect_json(name: str, text: str) -> Format:
    if text.startswith("{"):
        # a recently-played response as the API sent it (ingest's landing files)
        if '"items"' in text and '"played_at"' in text:
            return Format.API
        if _is_listen(text):  # JSON lines of listens (a ListenBrainz export)
            return Format.LISTENBRAINZ
        raise NotHistory(name)
    body = text[1:].lstrip()
    if body.startswith("]"):
        raise EmptyHistory(name)
    try:
        first, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        raise ImportInputError(
            name,
            f"not valid JSON ({exc.msg} near the start of the file)",
            hint="the file may be truncated or not a Spotify export; download it again",
        ) from exc
    if not isinstance(first, dict):
        raise NotHistory(name)
    keys = set(first)
    if keys >= _LISTEN_KEYS:  # ListenBrainz's older export: one JSON array of listens
        return Format.LISTENBRAINZ
    if keys >= _EXTENDED_KEYS:
        return Format.EXTENDED
    if keys >= _ACCOUNT_MUSIC_KEYS:
        return Format.ACCOUNT_MUSIC
    if keys >= _ACCOUNT_PODCAST_KEYS:
        return Format.ACCOUNT_PODCAST
    if keys >= _ACCOUNT_AUDIOBOOK_KEYS:
        return Format.ACCOUNT_AUDIOBOOK
    raise NotHistory(name)


def _is_listen(text: str) -> bool:
    """Whether the first line is a JSON object with a listen's keys."""
    try:
        first = json.loads(text.split("\n", 1)[0])
    except json.JSONDecodeError:
        return False
    return isinstance(first, dict) and set(first) >= _LISTEN_KEYS


def _detect_csv(name: str, text: str) -> Format:
    lines = [line for line in text.splitlines()[:5] if line.strip()]
    try:
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    except csv.Error:  # a field past the csv module's limit (128 KB): no scrobble line
        raise NotHistory(name) from None
    data_rows = [row for row in rows if [c.strip().lower() for c in row] != HEADER]
    if data_rows and all(len(r) == 4 and _LASTFM_DATE.match(r[3].strip()) for r in data_rows):
        return Format.LASTFM
    raise NotHistory(name)


HEADER = ["artist", "album", "track", "date"]


def is_data_for(fmt: Format, head: bytes) -> bool:
    """Whether a file that holds no listening history by its content still has the shape
    ``fmt``'s reader reads, so that ``--source`` applies to it: a JSON array of objects
    (Spotify's history files), a JSON object with ``items`` (a recently-played response),
    or lines of four CSV fields (Last.fm). A read-me, a PDF, an image is none of these: in
    a folder or zip it is skipped, with or without ``--source``."""
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if fmt is Format.LASTFM:
        if text.startswith(("[", "{", "%PDF")) or "\x00" in text[:1024]:
            return False
        lines = [line for line in text.splitlines()[:5] if line.strip()]
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines))))
        except csv.Error:
            return False
        return bool(rows) and all(len(row) == len(HEADER) for row in rows)
    if fmt is Format.API:
        return text.startswith("{") and '"items"' in text
    if fmt is Format.LISTENBRAINZ:
        return text.startswith("{") and _is_listen(text)
    if not text.startswith("["):
        return False
    try:
        first, _ = json.JSONDecoder().raw_decode(text[1:].lstrip())
    except json.JSONDecodeError:
        return False
    return isinstance(first, dict)
