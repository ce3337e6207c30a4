"""Year in review as a story: the year's figures as sentences and short ranked lists, one
page per year, drawn as plain HTML (no chart library: it opens at once on a phone).

The figures are the rows of the dashboard's cards (``dashboards/13_year_in_review.yml``),
the same ones Metabase shows as tables; a card the story does not know is left to
Metabase, a card that is missing leaves its section out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from music_tracker.reporting import ranking
from music_tracker.reporting.cards_html import show_in
from music_tracker.reporting.definitions import Rank
from music_tracker.reporting.front_page import counted, long_date
from music_tracker.reporting.layout import Context, esc, footer, head, nav
from music_tracker.reporting.periods import date_span

Rows = dict[str, list[dict[str, Any]]]  # card name: its rows as column -> value
Link = Callable[[str, Any], str | None]  # (column, value) -> a page, or None

_LISTS = (
    ("top_artists", "Top artists", "artist"),
    ("top_tracks", "Top songs", "track"),
    ("top_albums", "Top albums", "album"),
    ("top_genres", "Top genres", "genre"),
)
_UP = "<span aria-hidden='true'>&#9650;</span>"
_DOWN = "<span aria-hidden='true'>&#9660;</span>"
# Before enrichment the genres say what is missing (the top_genres card's empty:, else
# this); what the owner runs is theirs to read, in `report`'s summary (owner_hints.py)
NO_GENRES = "No genres yet: the artists have not been looked up in MusicBrainz."


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value:
        return dt.date.fromisoformat(value[:10])
    return None


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "0"
    return f"{float(value):,.{digits}f}"


def _against(now: Any, before: Any, what: str, against: str) -> str:
    """'+12% on the year before (75.7)' style comparison (``against``: what it is compared
    with); nothing when the year before is empty."""
    if not before:
        return f"nothing {against}"
    change = (float(now or 0) - float(before)) / float(before) * 100
    if abs(change) < 0.5:
        return f"as many {what} as {against}"
    sign = "+" if change > 0 else "\u2212"
    previous = _number(before, 1 if what == "hours" else 0)
    return f"{sign}{abs(change):.0f}% on {against} ({previous})"


def _compared_with(summary: dict[str, Any]) -> str | None:
    """What the year is compared with: "the year before", or "1 Jan \u2013 3 Oct 2023" (a
    year still going, against the same days of the year before); None when the history
    starts after the year before began, which leaves nothing fair to compare (a year of
    three months against one of nine read as listening six times as much)."""
    since, until = _date(summary.get("compared_from")), _date(summary.get("compared_to"))
    starts = _date(summary.get("history_starts"))
    if since is None or until is None:  # a summary without them (Metabase's own SQL)
        return "the year before"
    if starts is not None and starts > since:
        return None
    if until < dt.date(since.year, 12, 31):
        return date_span(since, until)
    return "the year before"


def _change(now: Any, before: Any) -> str:
    """How a rank moved against the year before (``before`` None: not played then)."""
    if before is None:
        return "<span class='change new'>new</span>"
    if before > now:
        return f"<span class='change up'>{_UP} up from #{before}</span>"
    if before < now:
        return f"<span class='change down'>{_DOWN} down from #{before}</span>"
    return "<span class='change same'>same as the year before</span>"


def _figure(row: dict[str, Any], column: str) -> str:
    """A measure as the list says it: "708 plays", "35.2 hours", "12.5 minutes"."""
    words = column.split("_")[0]  # plays_that_year: plays; hours_that_year: hours
    if words in ("hours", "minutes"):  # never "0.0": a play has time played
        return f"{show_in(column, row.get(column), heard=True)} {words}"
    return counted(float(row.get(column) or 0), "play")


def _ranked(
    rows: list[dict[str, Any]],
    column: str,
    rank: Rank,
    first: str,
    name: str,
    link: Link,
    compared: bool = True,
) -> str:
    """The list both ways (plays, time listened), with a switch: each ordering its top,
    its measure, its change against the year before by the same measure (none when the
    year before had no plays: ``compared`` false)."""
    bodies = {}
    for key, _, _ in ranking.ORDERINGS:
        at = ranking.RANK_COLUMNS[key]
        measure = rank.plays if key == ranking.PLAYS else rank.time
        kept = sorted(
            (row for row in rows if row.get(at) is not None and row[at] <= rank.top),
            key=lambda row: row[at],
        )
        items = []
        for row in kept:
            value = row.get(column)
            href = link(column, value)
            shown = f"<a href='{esc(href)}'>{esc(value)}</a>" if href else esc(value)
            if f"{at}_year_before" not in row:
                change = _first_listen(row)
            elif compared:
                change = _change(row[at], row.get(f"{at}_year_before"))
            else:  # nothing to measure against: not "new" (it may be back after years)
                change = ""
            items.append(
                f"<li data-rank='{esc(row[at])}'><span class='name'>{shown}</span>"
                f"<span class='plays'>{_figure(row, measure)}</span>{change}</li>"
            )
        bodies[key] = f"<ol class='ranked-story'>{''.join(items)}</ol>"
    return ranking.switch(name, first) + ranking.parts(bodies)


def _first_listen(row: dict[str, Any]) -> str:
    first = _date(row.get("first_listen"))
    return f"<span class='change'>first on {esc(long_date(first) if first else '')}</span>"


def _months(rows: list[dict[str, Any]]) -> str:
    """Hours per month as a small bar chart, drawn here as SVG."""
    if not rows:
        return ""
    by_month = {int(row["month_num"]): row for row in rows}
    most = max(float(row["hours"] or 0) for row in rows) or 1.0
    bars = []
    for month in range(1, 13):
        row = by_month.get(month)
        hours = float(row["hours"] or 0) if row else 0.0
        height = round(hours / most * 100, 1)
        name = dt.date(2000, month, 1).strftime("%B")
        bars.append(
            f"<g><title>{name}: {hours:,.1f} hours</title>"
            f"<rect x='{(month - 1) * 10 + 1}' y='{100 - height}' width='8' height='{height}'>"
            f"</rect></g>"
        )
    labels = "".join(
        f"<span>{dt.date(2000, month, 1).strftime('%b')}</span>" for month in range(1, 13)
    )
    # the hours over each bar: a phone has no pointer to show a bar's title (helper-64)
    values = "".join(f"<span>{_short_hours(by_month.get(month))}</span>" for month in range(1, 13))
    return (
        f"<figure class='months'><div class='month-values'>{values}</div>"
        "<svg viewBox='0 0 120 100' preserveAspectRatio='none' "
        "role='img' aria-label='Hours of music by month'>" + "".join(bars) + "</svg>"
        f"<div class='month-labels' aria-hidden='true'>{labels}</div>"
        "<figcaption>Hours of music, month by month</figcaption></figure>"
    )


def _short_hours(row: dict[str, Any] | None) -> str:
    """A month's hours in at most four characters: "103", "9.5"; nothing for none."""
    hours = float(row["hours"] or 0) if row else 0.0
    if hours <= 0:
        return ""
    return f"{int(hours + 0.5)}" if hours >= 10 else f"{hours:.1f}"  # 32.5: "33", as said


def _moments(data: Rows, link: Link) -> str:
    parts = []
    day_rows = data.get("most_played_day") or []
    if day_rows:
        row = day_rows[0]
        day = _date(row["day"])
        when = f"{day.strftime('%A')} {long_date(day)}" if day else ""
        parts.append(
            "<div class='moment' data-figure='most-played-day'><h3>The biggest day</h3>"
            f"<p><strong>{esc(when)}</strong>: {counted(float(row['plays'] or 0), 'play')}, "
            f"{_number(row['hours'], 1)} hours.</p></div>"
        )
    month_rows = data.get("hours_by_month") or []
    if month_rows:
        top = max(month_rows, key=lambda r: (r["plays"] or 0, -int(r["month_num"])))
        plays = counted(float(top["plays"] or 0), "play")
        parts.append(
            "<div class='moment' data-figure='most-played-month'><h3>The biggest month</h3>"
            f"<p><strong>{esc(top['month'])}</strong>: {plays}, "
            f"{_number(top['hours'], 1)} hours.</p></div>"
        )
    first_rows = data.get("first_song") or []
    if first_rows:
        row = first_rows[0]
        played = row["played_at"]
        when = (
            # a play's time is its end (the original's rule): said so, not "at 17:28" for a
            # song begun at 17:26 (helper-64)
            f"{long_date(played.date())}, ending at {played.strftime('%H:%M')}"
            if isinstance(played, dt.datetime)
            else esc(played)
        )
        href = link("artist", row["artist"])
        artist = f"<a href='{esc(href)}'>{esc(row['artist'])}</a>" if href else esc(row["artist"])
        parts.append(
            "<div class='moment' data-figure='first-song'><h3>The first song</h3>"
            f"<p><strong>{esc(row['song'])}</strong> by {artist}, {when}.</p></div>"
        )
    return f"<section class='moments'>{''.join(parts)}</section>" if parts else ""


def _discoveries(data: Rows, link: Link, ranks: dict[str, Rank], first: str) -> str:
    counts = (data.get("discovery_counts") or [{}])[0]
    if not counts:
        return ""
    names = data.get("discoveries") or []
    listed = ""
    if names and "discoveries" in ranks:
        name = "rank-year-in-review--discoveries"
        listed = _ranked(names, "artist", ranks["discoveries"], first, name, link)
    return (
        f"<section class='story-list{' ranks' if listed else ''}' data-figure='discoveries'>"
        "<h2>Discoveries</h2>"
        f"<p><strong class='big'>{_number(counts.get('new_artists'))}</strong> new artists "
        f"and <strong class='big'>{_number(counts.get('new_tracks'))}</strong> new songs, "
        f"heard for the first time ever.</p>{listed}</section>"
    )


def render(
    title: str,
    year_label: str,
    years: list[tuple[str, str]],
    data: Rows,
    context: Context,
    link: Link,
    ranks: dict[str, Rank] | None = None,
    first: str = ranking.PLAYS,
    period: str = "",
    empty: dict[str, str] | None = None,
) -> str:
    """The story page of one year; ``years`` are (label, file) of every year's page;
    ``ranks``: how each ranked card ranks (its lists show both ways, ``first`` first);
    ``period``: the dates it covers, as the dashboards state theirs (a year the history
    starts or ends in is a part of a year: "2024: 1 Jan - 3 Oct 2024, up to the newest
    play"); ``empty``: what a card with no rows says (its definition's empty:)."""
    ranks = ranks or {}
    summary = (data.get("summary") or [{}])[0]
    year = summary.get("year") or year_label
    heading = f"{year} in music"
    against = _compared_with(summary)
    starts = _date(summary.get("history_starts"))
    figures = (
        "<div class='kpis story-kpis'>"
        + "".join(
            f"<div class='kpi-card' data-figure='{key}'><span class='kpi-label'>{label}</span>"
            f"<span class='kpi-value'>{_number(summary.get(key), digits)}</span>"
            + (
                "<span class='kpi-detail'>"
                + esc(_against(summary.get(key), summary.get(f"{key}_year_before"), what, against))
                + "</span>"
                if against
                else ""
            )
            + "</div>"
            for key, label, digits, what in (
                ("hours", "Hours of music", 1, "hours"),
                ("days_with_music", "Days with music", 0, "days"),
                ("plays", "Plays", 0, "plays"),
            )
        )
        + "</div>"
    )
    if against is None and starts is not None:
        figures += (
            f"<p class='story-note' data-figure='not-compared'>The history starts on "
            f"{esc(long_date(starts))}: there is no whole year before to compare with.</p>"
        )
    lists = []
    for card, label, column in _LISTS:
        if card not in data:
            continue
        rows = data[card]
        ranked = bool(rows) and card in ranks
        if rows and not ranked:
            continue  # a list the definitions do not rank (rank:) is Metabase's alone
        if ranked:
            name = f"rank-year-in-review--{card}"
            compared = against is not None and bool(summary.get("plays_year_before"))
            body = _ranked(rows, column, ranks[card], first, name, link, compared)
        elif card == "top_genres":
            said = (empty or {}).get(card) or NO_GENRES
            body = f"<p class='empty'>{esc(said)}</p>"
        elif card == "top_albums":  # plays without albums (account data names none)
            body = "<p class='empty'>None of this year's plays names its album.</p>"
        else:
            body = "<p class='empty'>Nothing played this year.</p>"
        lists.append(
            f"<section class='story-list{' ranks' if ranked else ''}' data-card='{card}'>"
            f"<h2>{label}</h2>{body}</section>"
        )
    choices = "".join(
        f"<a href='{esc(file)}'{' aria-current=page' if label == year else ''}>{esc(label)}</a>"
        for label, file in years
    )
    return (
        head(
            f"{title}: {year}",
            1,
            description=f"A year of listening: {year}.",
            scripts=["report.js"],
            drawn=True,
        )
        + nav(1)
        + f"<header><h1>{esc(heading)}</h1>"
        + (f"<p class='period'>{esc(period)}</p>" if period else "")
        + f"<nav class='years' aria-label='Other years'>{choices}</nav></header>"
        + "<main class='story'>"
        + figures
        + _months(data.get("hours_by_month") or [])
        + f"<div class='story-lists'>{''.join(lists)}</div>"
        + _moments(data, link)
        + _discoveries(data, link, ranks, first)
        + "</main>"
        + footer(context)
        + "</body></html>"
    )
