"""The report's front page: the last 30 days and the year in a few numbers, then the
dashboards.

Both periods end at the newest play, not at the day the report is built: a history whose
last export is two years old shows its last 30 days of listening ("to 3 October 2024"),
not thirty empty days. The streak is the run of days with a stream that ends on the newest
day with one; it is called current only when that day is today or yesterday.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from music_tracker.reporting.definitions import Dashboard
from music_tracker.reporting.layout import Context, esc, footer, head, nav

# Spotify's placeholder for plays it cannot name: counted everywhere, never ranked
NOT_AN_ARTIST = "Unknown Artist"
WINDOW_DAYS = 30


@dataclass(frozen=True)
class Period:
    """One headline period: its bounds (local dates, inclusive) and its figures."""

    key: str
    title: str
    first_date: dt.date
    last_date: dt.date
    hours: float
    plays: int
    days_with_music: int
    top_artist: str | None
    top_artist_plays: int
    top_track: str | None
    top_track_artist: str | None
    top_track_plays: int
    new_artists: int


@dataclass(frozen=True)
class Streak:
    days: int
    start_date: dt.date | None
    end_date: dt.date | None
    is_current: bool


@dataclass(frozen=True)
class Headlines:
    newest: dt.date
    periods: list[Period]
    streak: Streak
    # stretches of at least GAP_DAYS without a play between the first and the newest:
    # (the first day without, the last), told on the page (helper-64: four years without
    # music read as "every play since the history began")
    gaps: list[tuple[dt.date, dt.date]] = field(default_factory=list)


GAP_DAYS = 90  # a quarter without a play is told as a gap in the history


def counted(number: float, word: str) -> str:
    """ "1 play", "1,339 plays": the word in the singular for one."""
    return f"{number:,.0f} {word}" if number == 1 else f"{number:,.0f} {word}s"


def long_date(day: dt.date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def _period(
    con: duckdb.DuckDBPyConnection, key: str, title: str, first: dt.date, last: dt.date
) -> Period:
    bounds = {"first": first, "last": last}
    (ms, plays, days) = con.execute(
        "select coalesce(sum(ms_played), 0), coalesce(sum(tracks_played), 0), count(*)"
        " from dw.agg_daily_listening where date_sid between $first and $last",
        bounds,
    ).fetchone() or (0, 0, 0)
    artist = con.execute(
        "select artist.artist_name, count(*) as plays"
        " from dw.fact_track_played as fact"
        " join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
        " where fact.date_sid between $first and $last and artist.artist_name is not null"
        "   and artist.artist_name <> $unknown"
        " group by artist.artist_name order by plays desc, artist.artist_name limit 1",
        {**bounds, "unknown": NOT_AN_ARTIST},
    ).fetchone()
    track = con.execute(
        "select track.artist_track, artist.artist_name, count(*) as plays"
        " from dw.fact_track_played as fact"
        " join dw.dim_track as track on track.track_sid = fact.track_sid"
        " join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
        " where fact.date_sid between $first and $last and artist.artist_name is not null"
        "   and artist.artist_name <> $unknown"
        " group by track.artist_track, artist.artist_name"
        " order by plays desc, track.artist_track limit 1",
        {**bounds, "unknown": NOT_AN_ARTIST},
    ).fetchone()
    (new_artists,) = con.execute(
        "select count(*) from dw.agg_first_listens"
        " where entity_type = 'artist' and first_date_sid between $first and $last",
        bounds,
    ).fetchone() or (0,)
    return Period(
        key=key,
        title=title,
        first_date=first,
        last_date=last,
        hours=round(float(ms) / 3_600_000, 1),
        plays=int(plays),
        days_with_music=int(days),
        top_artist=artist[0] if artist else None,
        top_artist_plays=int(artist[1]) if artist else 0,
        top_track=track[0] if track else None,
        top_track_artist=track[1] if track else None,
        top_track_plays=int(track[2]) if track else 0,
        new_artists=int(new_artists),
    )


def headlines(
    con: duckdb.DuckDBPyConnection, today: dt.date, span: tuple[dt.date, dt.date]
) -> Headlines:
    """The figures of the front page; ``span``: the first and the newest day with plays."""
    oldest, newest = span
    last_30 = _period(
        con,
        "last-30-days",
        f"The last {WINDOW_DAYS} days of listening",
        newest - dt.timedelta(days=WINDOW_DAYS - 1),
        newest,
    )
    # a history that starts this year: the year from its first play (helper-68)
    start = max(dt.date(newest.year, 1, 1), oldest)
    year = _period(con, "year", f"{newest.year} so far", start, newest)
    row = con.execute(
        "select streak_days, streak_start_date, streak_end_date from dw.agg_listening_streaks"
        " order by streak_end_date desc limit 1"
    ).fetchone()
    if row is None:
        streak = Streak(0, None, None, is_current=False)
    else:
        end: dt.date = row[2]
        streak = Streak(int(row[0]), row[1], end, is_current=end >= today - dt.timedelta(days=1))
    gaps = [
        (after + dt.timedelta(days=1), before - dt.timedelta(days=1))
        for after, before in con.execute(
            "select date_sid, next_day from (select date_sid, lead(date_sid) over (order by"
            " date_sid) as next_day from dw.agg_daily_listening where date_sid > date"
            " '1900-01-01') where next_day - date_sid > $days order by date_sid",
            {"days": GAP_DAYS},
        ).fetchall()
    ]
    return Headlines(newest=newest, periods=[last_30, year], streak=streak, gaps=gaps)


def _gaps_html(gaps: list[tuple[dt.date, dt.date]]) -> str:
    """The history's long silences, said once on the front page: a chart of years shows
    them as empty years, which could be years of no music or exports that hold none."""
    if not gaps:
        return ""
    spans = [f"{long_date(first)} to {long_date(last)}" for first, last in gaps[:3]]
    more = f", and {len(gaps) - 3} more" if len(gaps) > 3 else ""
    said = "; ".join(spans) + more
    return (
        f"<p class='gaps' data-figure='gaps'>The history has"
        f" {'a gap' if len(gaps) == 1 else f'{len(gaps)} gaps'}"
        f" of {GAP_DAYS} days or more without a song: {esc(said)}.</p>"
    )


def _figure(label: str, value: str, detail: str, key: str) -> str:
    return (
        f"<div class='kpi-card' data-figure='{esc(key)}'><span class='kpi-label'>{esc(label)}"
        f"</span><span class='kpi-value'>{value}</span>"
        f"<span class='kpi-detail'>{detail}</span></div>"
    )


def _name(name: str | None, link: Callable[[str | None], str | None]) -> str:
    if name is None:
        return "&mdash;"
    href = link(name)
    return f"<a href='{esc(href)}'>{esc(name)}</a>" if href else esc(name)


def _period_html(period: Period, link: Callable[[str | None], str | None]) -> str:
    span = f"{long_date(period.first_date)} to {long_date(period.last_date)}"
    if period.key == "last-30-days":
        heading = f"{period.title}, to {long_date(period.last_date)}"
    else:
        since = (
            "1 January"
            if (period.first_date.month, period.first_date.day) == (1, 1)
            else f"the first play, {long_date(period.first_date)},"
        )
        heading = f"{period.last_date.year}, from {since} to {long_date(period.last_date)}"
    days = f"{counted(period.days_with_music, 'day')} with music, {counted(period.plays, 'play')}"
    track = period.top_track
    track_html = "&mdash;"
    if track is not None:
        href = link(period.top_track_artist)
        track_html = f"<a href='{esc(href)}'>{esc(track)}</a>" if href else esc(track)
    figures = [
        _figure("Hours", f"{period.hours:,.1f}", days, f"{period.key}-hours"),
        _figure(
            "Top artist",
            _name(period.top_artist, link),
            counted(period.top_artist_plays, "play"),
            f"{period.key}-top-artist",
        ),
        _figure(
            "Top track",
            track_html,
            counted(period.top_track_plays, "play"),
            f"{period.key}-top-track",
        ),
        _figure(
            "New artists",
            f"{period.new_artists:,}",
            "heard for the first time",
            f"{period.key}-new-artists",
        ),
    ]
    return (
        f"<section class='period' aria-label='{esc(span)}'><h2>{esc(heading)}</h2>"
        f"<div class='kpis'>{''.join(figures)}</div></section>"
    )


def _streak_html(streak: Streak) -> str:
    if streak.end_date is None or streak.start_date is None:
        return ""
    label = "Current streak" if streak.is_current else "Latest streak"
    days = counted(streak.days, "day")
    detail = (
        f"{long_date(streak.start_date)} to {long_date(streak.end_date)}"
        if streak.days > 1
        else long_date(streak.end_date)
    )
    return (
        "<p class='streak' data-figure='streak'>"
        f"<strong>{esc(label)}:</strong> <span class='streak-days'>{esc(days)}</span> in a row "
        f"with music, {esc(detail)}.</p>"
    )


def render(
    figures: Headlines | None,
    dashboards: list[Dashboard],
    context: Context,
    link: Callable[[str | None], str | None],
    artist_pages: int,
) -> str:
    """The front page; ``link`` gives an artist's page (relative to the front page)."""
    story = ""
    if figures is not None:
        story = "".join(_period_html(p, link) for p in figures.periods) + _streak_html(
            figures.streak
        )
    items = "".join(
        f"<li><a href='{esc(d.slug)}/index.html'>{esc(d.title)}</a>"
        + (
            "<span class='origin'>from the original reports</span>"
            if d.origin == "original"
            else ""
        )
        + f"<p>{esc(d.description)}</p></li>"
        for d in dashboards
    )
    search = (
        # not "All 135 artists" beside an Overview of 1,346 (helper-64): a page is for an
        # artist of the most played, or one a list names (artist_pages.choose)
        f"<p class='artists-link'><a href='artist/index.html'>"
        f"{counted(artist_pages, 'artist page')}</a>: the most played artists and every one a"
        " list names, with a search box.</p>"
    )
    return (
        head("My listening", 0, description="A music listening history in numbers.", drawn=True)
        + nav(0)
        + "<header><h1>My listening</h1>"
        + "<p>Every play since the history began, from Spotify's exports and its API.</p>"
        + _gaps_html(figures.gaps if figures else [])
        + "</header><main class='front'>"
        + story
        + "<h2 class='section'>Dashboards</h2>"
        + search
        + f"<ul class='dashboards'>{items}</ul></main>"
        + footer(context)
        + "</body></html>"
    )


def summary(figures: Headlines | None) -> dict[str, Any]:
    """The headline figures as plain values (for tests and ``report --json``)."""
    if figures is None:
        return {}
    return {
        "newest": figures.newest.isoformat(),
        "periods": [p.__dict__ for p in figures.periods],
        "streak_days": figures.streak.days,
    }
