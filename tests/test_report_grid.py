"""The desktop grid of a page that leaves cards out (reporting/grid.py): the cards left
take the room of those left out, on the dashboards' own layouts and on a made-up one."""

from __future__ import annotations

from music_tracker.reporting.definitions import (
    GRID_COLUMNS,
    PERIOD_KINDS,
    Layout,
    load_dashboards,
)
from music_tracker.reporting.grid import reflow


def _cells(placed: dict[str, Layout]) -> dict[tuple[int, int], str]:
    """Grid cell (row, column) -> the card in it; fails on two cards in one cell."""
    cells: dict[tuple[int, int], str] = {}
    for key, lay in placed.items():
        for row in range(lay.row, lay.row + lay.height):
            for col in range(lay.col, lay.col + lay.width):
                assert (row, col) not in cells, f"{key} and {cells[(row, col)]} overlap"
                cells[(row, col)] = key
    return cells


def _holes(placed: dict[str, Layout]) -> int:
    """Empty cells in the rows the cards take."""
    cells = _cells(placed)
    rows = max((lay.row + lay.height for lay in placed.values()), default=0)
    return rows * GRID_COLUMNS - len(cells)


def test_a_page_with_every_card_keeps_the_definitions_layout() -> None:
    for dashboard in load_dashboards():
        layouts = [(card.name, card.layout) for card in dashboard.cards]
        assert reflow(layouts, {name for name, _ in layouts}) == dict(layouts)


def test_every_period_page_closes_up_where_cards_are_left_out() -> None:
    """Each dashboard's page of each kind of period: no two cards in one cell, and no more
    empty cells than the definitions' own layout has (Metabase's, which shows them all)."""
    checked = 0
    for dashboard in load_dashboards():
        period = dashboard.period_filter()
        if period is None:
            continue
        layouts = [(card.name, card.layout) for card in dashboard.cards]
        defined = _holes(dict(layouts))
        for kind in PERIOD_KINDS:
            shown = {
                card.name
                for card in dashboard.cards
                if card.on(kind if period in card.tags() else None) is not None
            }
            placed = reflow(layouts, shown)
            assert set(placed) == shown, (dashboard.slug, kind)
            assert _holes(placed) <= defined, (dashboard.slug, kind, placed)
            checked += len(shown) < len(layouts)
    assert checked >= 10  # pages that do leave a card out


def test_a_column_left_empty_gives_its_width_and_a_row_left_empty_closes_up() -> None:
    """A year chart beside two stacked charts, a wide chart below, three cards under it."""
    layouts = [
        ("years", Layout(row=0, col=0, width=8, height=9)),
        ("hours", Layout(row=0, col=8, width=16, height=5)),
        ("parts", Layout(row=5, col=8, width=16, height=4)),
        ("calendar", Layout(row=9, col=0, width=24, height=5)),
        ("a", Layout(row=14, col=0, width=8, height=4)),
        ("b", Layout(row=14, col=8, width=8, height=4)),
        ("c", Layout(row=14, col=16, width=8, height=4)),
    ]
    placed = reflow(layouts, {"hours", "parts", "calendar", "a", "c"})
    assert placed["hours"] == Layout(row=0, col=0, width=24, height=5)
    assert placed["parts"] == Layout(row=5, col=0, width=24, height=4)
    assert placed["calendar"] == Layout(row=9, col=0, width=24, height=5)
    # b's column goes to its left neighbour
    assert placed["a"] == Layout(row=14, col=0, width=16, height=4)
    assert placed["c"] == Layout(row=14, col=16, width=8, height=4)
    # the calendar's row gone: the row below moves up; a stacked column that lost a card
    # fills the height of its neighbour
    placed = reflow(layouts, {"years", "hours", "a", "b", "c"})
    assert placed["years"] == Layout(row=0, col=0, width=8, height=9)
    assert placed["hours"] == Layout(row=0, col=8, width=16, height=9)
    assert placed["a"].row == 9
    assert _holes(placed) == 0
