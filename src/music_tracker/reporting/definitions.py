"""Dashboard definitions: one YAML file per dashboard in ``dashboards/``, checked on load.

A card's SQL reads the ``dw`` schema only (the serving copy Metabase reads holds nothing
else) and uses Metabase's native-query syntax for filters, so one definition serves both
renderers: ``{{year}}`` is a filter's value and ``[[ and year_num = {{year}} ]]`` an optional
clause that is dropped when the filter has no value (all time).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from music_tracker.settings import PROJECT_ROOT

DASHBOARDS_DIR = PROJECT_ROOT / "dashboards"
# libyaml's safe loader where the install has it (a tenth of the pure-Python one's time)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

VIZ = Literal[
    "kpi", "bar", "column", "stacked_column", "line", "area", "heatmap", "treemap", "map",
    "pie", "table",
]  # fmt: skip
GRID_COLUMNS = 24  # Metabase's dashboard grid
# a time axis: x holds the first day of each period (a date) and is drawn on a continuous
# time scale, so that a period without plays is an empty stretch, not a missing category
TIME_GRAIN = Literal["year", "month", "week", "day"]
# The kinds of period the static report writes a page for (reporting/periods.py).
PeriodKind = Literal["all", "year", "last-12-months", "last-30-days"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("all", "year", "last-12-months", "last-30-days")
# The periods a time grain suits: enough bars or points to compare, not too many to read.
# Years over all time; months over all time, a year or the last 12 months; weeks over a
# year or the last 12 months; days over the last 30 days. A calendar (a heatmap of weeks
# by weekday) has a cell per day and suits every period. A chart of a period its grain
# does not suit draws one or two bars: the card is left out there, or gives a finer card
# to show in its place (instead:).
GRAIN_PERIODS: dict[str, tuple[PeriodKind, ...]] = {
    "year": ("all",),
    "month": ("all", "year", "last-12-months"),
    "week": ("year", "last-12-months"),
    "day": ("last-30-days",),
}
# words for the suffixes of column names, used when a card gives no title of its own
_SUFFIX_WORDS = {"_pct": " (%)", "_num": "", "_sid": "", "_ms": " (ms)", "_days": " (days)"}
# A ranked card (``rank:``) ranks by plays or by time listened: a filter of kind ``rank``
# (Metabase's "Rank by") offers these values; the static report binds ``BOTH`` and shows
# the two orderings itself (reporting/ranking.py)
RANK_BY = ("plays", "time listened")
BOTH = "both"
# the time measures a ranked card may show, by the end of the column's name, and their unit
TIME_UNITS = {"hours": "h", "minutes": "min"}
# words for the rank columns every ranked card returns
_COLUMN_WORDS = {
    "plays_rank": "Rank by plays",
    "time_rank": "Rank by time listened",
    "plays_rank_year_before": "Rank by plays the year before",
    "time_rank_year_before": "Rank by time the year before",
}

# How a measure is written, by its column's name, wherever it shows (the static report's
# figures, tables, lists and chart tooltips; Metabase's column settings): times (hours,
# minutes: TIME_UNITS) and percentages to one decimal ("1.0" beside "35.2", not "1");
# counts are whole numbers; thousands grouped everywhere.
_PERCENT = re.compile(r"_pct$")
_TAG = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_SCHEMA_REF = re.compile(r"\b(?:from|join)\s+([a-z_]+)\.", re.IGNORECASE)
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
# what only the owner can act on: a command (in backquotes), the command's name, a file of
# the data folder; the pages are public, their words are for visitors (docs/reporting.md,
# "Visitors read, the owner runs")
_OWNER_WORDS = re.compile(r"`|music-tracker|exclusions\.yaml")


def _for_visitors(text: str) -> str:
    """Words a visitor reads: no command, nothing only the owner can act on."""
    found = _OWNER_WORDS.search(text)
    if found:
        raise ValueError(
            f"visitors read this and cannot run commands ({found.group(0)!r} in {text!r}): "
            "say what is missing here, and put what the owner runs in to_fill:"
        )
    return text


VisitorText = Annotated[str, AfterValidator(_for_visitors)]


class DefinitionError(Exception):
    """A dashboard file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Strict):
    """A dashboard filter; cards use it as ``{{name}}`` in their SQL."""

    name: Name
    label: str
    kind: Literal["year", "text", "rank"]
    # year: "current" (the newest year with plays) or "all"; text: the first of ``options``;
    # rank: "plays" or "time listened" (what Metabase starts on, the static report's
    # first ordering)
    default: str = "all"
    # text filters: a query whose first column lists the values (most relevant first);
    # year filters may have one too: the years in which the dashboard has something to draw
    # (without it, every year with plays), with the cards' year clause ([[and
    # calendar.year_num = {{year}}]]) so that the static report can ask it for any period
    options_sql: str | None = None
    # how many values of a text filter the static report renders (one page each)
    static_values: int = Field(default=12, ge=1, le=100)

    @model_validator(mode="after")
    def _options(self) -> Filter:
        if self.kind == "text" and not self.options_sql:
            raise ValueError("a text filter needs options_sql")
        if self.kind == "year" and self.default not in ("current", "all"):
            raise ValueError("a year filter's default is 'current' or 'all'")
        if self.kind == "rank" and (self.default not in RANK_BY or self.options_sql):
            raise ValueError(
                f"a rank filter's default is one of {', '.join(map(repr, RANK_BY))} "
                "(and its values are those: no options_sql)"
            )
        if self.options_sql and set(_TAG.findall(self.options_sql)) - {self.name}:
            raise ValueError(f"options_sql may use {{{{{self.name}}}}} only")
        return self

    def options_query(self) -> str:
        """The options as a plain query: the year clause dropped (every value)."""
        assert self.options_sql is not None
        return bind(self.options_sql, {})[0]


class Layout(_Strict):
    row: int = Field(ge=0)
    col: int = Field(ge=0, lt=GRID_COLUMNS)
    width: int = Field(ge=1, le=GRID_COLUMNS)
    height: int = Field(ge=1, le=20)

    @model_validator(mode="after")
    def _fits(self) -> Layout:
        if self.col + self.width > GRID_COLUMNS:
            raise ValueError(f"col + width must be at most {GRID_COLUMNS}")
        return self


def year_clause(name: str = "year") -> re.Pattern[str]:
    """A card's year condition on filter ``name`` (``calendar.year_num = {{year}}``), the
    alias captured: what both renderers turn into a period's dates."""
    return re.compile(rf"\b(\w+)\.year_num\s*=\s*\{{\{{\s*{name}\s*\}}\}}")


class Rank(_Strict):
    """How a ranked card ranks: by plays or by time listened, its ``top`` rows each way.

    The card's SQL returns ``plays_rank`` and ``time_rank`` (a row number over each
    measure) and keeps the rows whose rank under the chosen measure is at most ``top``:
    Metabase's "Rank by" value, or both ways for the static report (``BOTH``), which
    shows the two orderings with a switch (docs/reporting.md, "Ranked by plays or by
    time")."""

    plays: str  # the column that counts plays (or tracks played in genre)
    time: str  # the column of time listened: hours or minutes (TIME_UNITS)
    top: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _time_column(self) -> Rank:
        if time_unit(self.time) is None:
            raise ValueError(f"rank.time names hours or minutes, not {self.time!r}")
        return self


# asked for every cell of every table the report writes (200,000 at 350,000 plays)
@functools.cache
def time_unit(column: str) -> str | None:
    """The unit of a time measure (``hours`` -> "h", ``minutes_played`` -> "min")."""
    return next((unit for word, unit in TIME_UNITS.items() if word in column.split("_")), None)


class EmptyCase(_Strict):
    """Other words for an empty card when ``sql`` (one boolean, on ``dw``) is true: why it
    is empty in that case, and what the owner runs then."""

    sql: str
    empty: VisitorText
    to_fill: str = ""

    @model_validator(mode="after")
    def _reads_dw(self) -> EmptyCase:
        _dw_only(self.sql)
        return self


def _dw_only(sql: str) -> None:
    schemas = {s.lower() for s in _SCHEMA_REF.findall(sql)}
    if schemas - {"dw"}:
        raise ValueError(
            f"cards read the dw schema only (the serving copy holds nothing else), "
            f"not {', '.join(sorted(schemas - {'dw'}))}"
        )


class Card(_Strict):
    """One question: SQL against ``dw`` and how to draw its rows."""

    name: Name
    title: VisitorText
    description: VisitorText = ""
    viz: VIZ
    sql: str
    # which columns the chart uses (names of columns the SQL returns)
    x: str | None = None
    y: str | None = None
    color: str | None = None
    # the values of ``color`` in the order of the palette's colours: each keeps its colour
    # on every page (drawn in the order the rows name them, "New artist" was blue on one
    # period and orange on another)
    series: list[str] = Field(default_factory=list)
    size: str | None = None
    label: str | None = None
    tooltip: list[str] = Field(default_factory=list)
    unit: str = ""
    sort: Literal["x", "-x", "y", "-y", "none"] = "none"
    # x is a date, the first day of each period of this length: a continuous time axis
    time: TIME_GRAIN | None = None
    # column -> the words shown for it (axes, legends, table heads, Metabase's columns);
    # columns not named here get column_title(name)
    titles: dict[str, str] = Field(default_factory=dict)
    # column -> its decimals where the rule by name (decimals()) does not suit it
    decimals: dict[str, int] = Field(default_factory=dict)
    # a column of artist names (as in dw.dim_artist): each links to the Artist dashboard
    artist_column: str | None = None
    # what the card says when it has no rows, to a visitor: what is missing (no command)
    empty: VisitorText = ""
    # what the owner runs to fill it (commands in backquotes): not on the pages, but in
    # `report`'s summary with the dashboards whose cards were empty (reporting/owner_hints.py)
    to_fill: str = ""
    # other words where a condition on dw says why it is empty (the first that holds)
    empty_when: list[EmptyCase] = Field(default_factory=list)
    # ranked by plays or by time listened (the dashboard's rank filter)
    rank: Rank | None = None
    layout: Layout
    # The static report's periods the card is shown on (a card that uses the dashboard's
    # period filter): all, year, last-12-months, last-30-days. Default: those its time
    # grain suits (GRAIN_PERIODS), or every one; give them for a chart of years that is
    # not on a time axis (one bar on a year's page).
    periods: list[PeriodKind] | None = None
    # Cards shown in its place (the same cell of the grid) on periods it is not shown on,
    # e.g. hours by day on the last 30 days for hours by month: each has this card's
    # fields except those it gives (a name at least) and its own periods. Metabase, which
    # offers any range of dates, shows the card, or one of another time grain by the
    # range's length (metabase/periods.py: grain_variants).
    instead: list[Card] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """Each card of ``instead`` starts from this card's fields."""
        if not isinstance(data, dict) or not isinstance(data.get("instead"), list):
            return data
        base = {k: v for k, v in data.items() if k not in ("instead", "periods")}
        return {
            **data,
            "instead": [{**base, **e} if isinstance(e, dict) else e for e in data["instead"]],
        }

    def grain_periods(self) -> tuple[PeriodKind, ...]:
        """The periods the card's time grain suits (GRAIN_PERIODS); every one without."""
        if self.time is None or self.viz == "heatmap":  # a calendar: a cell per day
            return PERIOD_KINDS
        return GRAIN_PERIODS[self.time]

    def shown_on(self) -> tuple[PeriodKind, ...]:
        return tuple(self.periods) if self.periods is not None else self.grain_periods()

    def on(self, kind: str | None) -> Card | None:
        """The card a page of this kind of period shows in this card's place: the card
        itself, one of ``instead`` or none (left out); the card itself when ``kind`` is
        None (a page without periods, or a card that ignores them)."""
        if kind is None or kind in self.shown_on():
            return self
        return next((card for card in self.instead if kind in card.shown_on()), None)

    def title_of(self, column: str | None) -> str:
        """The words shown for a result column."""
        if not column:
            return ""
        return self.titles[column] if column in self.titles else column_title(column)

    def digits(self, column: str | None) -> int | None:
        """The decimals a result column is written with: the card's own, else the rule by
        name (decimals())."""
        if column and column in self.decimals:
            return self.decimals[column]
        return decimals(column)

    def tags(self) -> set[str]:
        return set(_TAG.findall(self.sql))

    def measure(self) -> str | None:
        """The column the card measures: bar lengths, column heights, cell colours, sizes."""
        by_viz = {"bar": self.x, "heatmap": self.color, "treemap": self.size, "pie": self.size,
                  "map": self.size}  # fmt: skip
        return by_viz.get(self.viz, self.y)

    def columns(self) -> set[str]:
        used = {self.x, self.y, self.color, self.size, self.label, *self.tooltip}
        return {c for c in used if c}

    @model_validator(mode="after")
    def _chart_needs(self) -> Card:
        needs: dict[str, tuple[str, ...]] = {
            "kpi": ("y",),
            "bar": ("x", "y"),
            "column": ("x", "y"),
            "stacked_column": ("x", "y", "color"),
            "line": ("x", "y"),
            "area": ("x", "y"),
            "heatmap": ("x", "y", "color"),
            "treemap": ("label", "size"),
            "map": ("size",),
            "pie": ("label", "size"),
            "table": (),
        }
        missing = [f for f in needs[self.viz] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.viz} card needs {', '.join(missing)}")
        if self.series and self.color is None:
            raise ValueError("series: orders the values of color:, which the card does not have")
        if self.time and self.viz not in ("column", "stacked_column", "line", "area", "heatmap"):
            raise ValueError(f"a {self.viz} card has no time axis (time: is for x axes)")
        unsuited = [kind for kind in self.shown_on() if kind not in self.grain_periods()]
        if unsuited:
            raise ValueError(
                f"a chart by {self.time} is not shown on {', '.join(unsuited)}: it would "
                f"draw one or two bars there (periods: {', '.join(self.grain_periods())})"
            )
        taken = set(self.shown_on())
        for card in self.instead:
            if card.instead:
                raise ValueError(f"{card.name}: a card shown instead has no instead: of its own")
            if card.layout != self.layout:
                raise ValueError(f"{card.name}: a card shown instead takes the card's place")
            twice = taken & set(card.shown_on())
            if twice:
                raise ValueError(f"{card.name}: shown on {', '.join(sorted(twice))} already")
            taken |= set(card.shown_on())
        _dw_only(self.sql)
        if (self.to_fill or self.empty_when) and not self.empty:
            raise ValueError("a card with to_fill or empty_when says what is missing (empty:)")
        if self.rank and not re.search(rf"<=\s*{self.rank.top}\b", self.sql):
            raise ValueError(f"a ranked card's SQL keeps the rows ranked <= {self.rank.top}")
        return self


class Dashboard(_Strict):
    """One dashboard: its filters and cards."""

    slug: str
    source_file: str
    title: VisitorText
    description: VisitorText
    origin: Literal["original", "new"]
    order: int
    # how the static report draws it: a grid of cards, or (year in review) a story page
    page: Literal["dashboard", "story"] = "dashboard"
    filters: list[Filter] = Field(default_factory=list)
    cards: list[Card]

    def filter(self, name: str) -> Filter:
        return next(f for f in self.filters if f.name == name)

    @property
    def page_filter(self) -> Filter | None:
        """The filter the static report writes a page per value of (the first that is not
        a rank filter: both rankings are on every page)."""
        return next((f for f in self.filters if f.kind != "rank"), None)

    @property
    def rank_filter(self) -> Filter | None:
        return next((f for f in self.filters if f.kind == "rank"), None)

    def period_filter(self) -> str | None:
        """The name of the filter the static report writes a page per period for: the
        page filter, when it is a year filter."""
        flt = self.page_filter
        return flt.name if flt is not None and flt.kind == "year" else None

    def every_card(self) -> list[Card]:
        """The cards and those shown instead of them on some periods."""
        return [variant for card in self.cards for variant in (card, *card.instead)]

    @model_validator(mode="after")
    def _wiring(self) -> Dashboard:
        names = [c.name for c in self.every_card()]
        if len(names) != len(set(names)):
            raise ValueError("card names must be unique within a dashboard")
        titles = [c.title for c in self.cards]
        if len(titles) != len(set(titles)):  # Metabase lists them by title
            raise ValueError("card titles must be unique within a dashboard")
        known = {f.name for f in self.filters}
        ranks = [f.name for f in self.filters if f.kind == "rank"]
        if len(ranks) > 1:
            raise ValueError("a dashboard has one rank filter at most")
        for card in self.every_card():
            unknown = card.tags() - known
            if unknown:
                raise ValueError(f"card {card.name!r} uses undefined filter {sorted(unknown)}")
            # a ranked card is wired to the rank filter, and only ranked cards are
            ranked = bool(ranks) and ranks[0] in card.tags()
            if bool(card.rank) != ranked:
                raise ValueError(
                    f"card {card.name!r}: a card with rank: uses the dashboard's rank filter "
                    "and only such a card does"
                    if ranks
                    else f"card {card.name!r} is ranked (rank:): the dashboard needs a filter "
                    "of kind rank"
                )
            period = self.period_filter()
            if (card.periods is not None or card.instead) and period not in card.tags():
                raise ValueError(
                    f"card {card.name!r}: periods and instead are for cards that use the "
                    "period filter (a year filter, the first that is not a rank filter)"
                )
        return self


@functools.cache
def decimals(column: str | None) -> int | None:
    """The decimals a measure column is written with (hours, minutes and percentages:
    1); None for the rest, written as they come (counts are whole)."""
    if column and (time_unit(column) or _PERCENT.search(column)):
        return 1
    return None


@functools.cache
def column_title(name: str) -> str:
    """Words for a column name: ``share_of_all_plays_pct`` -> "Share of all plays (%)",
    ``year_num`` -> "Year"."""
    if name in _COLUMN_WORDS:
        return _COLUMN_WORDS[name]
    for suffix, words in _SUFFIX_WORDS.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)] + words
            break
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def load_dashboard(path: Path) -> Dashboard:
    """Read and check one definition file; errors name the file and the field."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: not readable YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: a dashboard file is a mapping of fields")
    try:
        slug = re.sub(r"^\d+_", "", path.stem).replace("_", "-")
        return Dashboard.model_validate({**raw, "slug": slug, "source_file": path.name})
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(raw, err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise DefinitionError(f"{path}: {problems}") from None


def _where(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """A field path that names cards and filters by name: cards[top_artists].sql."""
    parts: list[str] = []
    node: Any = raw
    for key in loc:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
            name = node.get("name") if isinstance(node, dict) else None
            parts[-1] += f"[{name or key}]"
            continue
        parts.append(str(key))
        node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "(file)"


def load_dashboards(folder: Path = DASHBOARDS_DIR) -> list[Dashboard]:
    """Every definition in ``folder``, in their ``order``."""
    paths = sorted(folder.glob("*.yml"))
    if not paths:
        raise DefinitionError(f"{folder}: no dashboard definitions (*.yml) found")
    dashboards = [load_dashboard(path) for path in paths]
    return sorted(dashboards, key=lambda d: (d.order, d.slug))


def bind(sql: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Native-query SQL with filter values: optional clauses kept only when all their
    filters have a value, each ``{{name}}`` a named parameter (``$name``) for DuckDB; a tag
    outside an optional clause with no value is NULL (cast it in the SQL)."""

    def optional(match: re.Match[str]) -> str:
        body = match.group(1)
        return body if all(values.get(tag) is not None for tag in _TAG.findall(body)) else ""

    text = _OPTIONAL.sub(optional, sql)
    used = set(_TAG.findall(text))
    return _TAG.sub(lambda m: f"${m.group(1)}", text), {tag: values.get(tag) for tag in used}
