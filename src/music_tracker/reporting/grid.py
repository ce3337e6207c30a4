"""Where each card of a page sits on the desktop grid when a period leaves cards out.

The definitions' ``layout`` is Metabase's 24-column grid, and Metabase shows every card. A
page of the static report may show fewer (a chart of years has nothing to compare on a
year's page): placed as defined, the missing card would leave an empty rectangle. So the
layout is read as Metabase's dashboards are built, rows of cards and, within a row,
columns of cards (cut wherever no card crosses), and laid out again with the cards of the
page: a column left empty gives its width to its neighbour (the one on its left, else its
right), a row left empty closes up, and a column that lost a card keeps its height by
stretching its lowest card. With every card present the layout is the definitions' own.
A layout that cannot be cut so (no such arrangement exists among the definitions) keeps
its places, holes and all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from music_tracker.reporting.definitions import GRID_COLUMNS, Layout


@dataclass(frozen=True)
class _Box:
    key: str
    col: int
    row: int
    width: int
    height: int


@dataclass
class _Node:
    """A piece of the layout: one card (``box``), rows or columns of pieces, or cards kept
    where they are (``fixed``). ``start`` and ``size`` are its extent across the cut that
    made it (rows: its first row and height; columns: its first column and width)."""

    start: int
    size: int
    box: _Box | None = None
    rows: list[_Node] = field(default_factory=list)
    columns: list[_Node] = field(default_factory=list)
    fixed: list[_Box] = field(default_factory=list)


def _cut(
    boxes: list[_Box], lo: Callable[[_Box], int], extent: Callable[[_Box], int]
) -> list[list[_Box]]:
    """The boxes in groups separated by lines no box crosses (along one axis)."""
    groups: list[list[_Box]] = []
    end = None
    for box in sorted(boxes, key=lambda b: (lo(b), b.key)):
        if end is None or lo(box) >= end:
            groups.append([box])
            end = lo(box) + extent(box)
        else:
            groups[-1].append(box)
            end = max(end, lo(box) + extent(box))
    return groups


def _split(boxes: list[_Box], start: int, size: int) -> _Node:
    if len(boxes) == 1:
        return _Node(start, size, box=boxes[0])
    bands = _cut(boxes, lambda b: b.row, lambda b: b.height)
    if len(bands) > 1:
        return _Node(start, size, rows=[_band(band, "row") for band in bands])
    columns = _cut(boxes, lambda b: b.col, lambda b: b.width)
    if len(columns) > 1:
        return _Node(start, size, columns=[_band(column, "col") for column in columns])
    return _Node(start, size, fixed=boxes)


def _band(boxes: list[_Box], axis: str) -> _Node:
    if axis == "row":
        first = min(b.row for b in boxes)
        return _split(boxes, first, max(b.row + b.height for b in boxes) - first)
    first = min(b.col for b in boxes)
    return _split(boxes, first, max(b.col + b.width for b in boxes) - first)


def _boxes(node: _Node) -> list[_Box]:
    if node.box is not None:
        return [node.box]
    return node.fixed + [b for child in (*node.rows, *node.columns) for b in _boxes(child)]


class _Placer:
    def __init__(self, shown: set[str]) -> None:
        self.shown = shown
        self.placed: dict[str, Layout] = {}

    def has(self, node: _Node) -> bool:
        return any(box.key in self.shown for box in _boxes(node))

    def height(self, node: _Node, left: int, right: int, top: int, origin: tuple[int, int]) -> int:
        """The rows the node's shown cards take when laid out between columns ``left`` and
        ``right`` from row ``top``, without placing them."""
        saved = dict(self.placed)
        used = self.place(node, left, right, top, origin, None)
        self.placed = saved
        return used

    def place(
        self,
        node: _Node,
        left: int,
        right: int,
        top: int,
        origin: tuple[int, int],
        stretch: int | None,
    ) -> int:
        """Lay the node's shown cards out between columns ``left`` and ``right`` from row
        ``top``; ``origin``: the node's first column and width as defined (its cards'
        columns are scaled from it); ``stretch``: the rows to fill. The rows taken."""
        first, width = origin

        def scale(col: int) -> int:
            return left + round((col - first) * (right - left) / width)

        if node.box is not None:
            box = node.box
            if box.key not in self.shown:
                return 0
            height = max(box.height, stretch or 0)
            self.placed[box.key] = Layout(
                row=top, col=scale(box.col), width=scale(box.col + box.width) - scale(box.col),
                height=height,
            )  # fmt: skip
            return height
        if node.fixed:
            kept = [box for box in node.fixed if box.key in self.shown]
            base = min(box.row for box in node.fixed)
            for box in kept:
                self.placed[box.key] = Layout(
                    row=top + box.row - base, col=scale(box.col),
                    width=scale(box.col + box.width) - scale(box.col), height=box.height,
                )  # fmt: skip
            return max((box.row - base + box.height for box in kept), default=0)
        if node.rows:
            shown = [row for row in node.rows if self.has(row)]
            row_top = top
            for i, row in enumerate(shown):
                last = i == len(shown) - 1
                # a row keeps the space the definitions leave above it (none, usually)
                if i:
                    before = node.rows[node.rows.index(row) - 1]
                    row_top += max(0, row.start - (before.start + before.size))
                fill = stretch - (row_top - top) if last and stretch is not None else None
                row_top += self.place(row, left, right, row_top, origin, fill)
            return row_top - top
        # columns: each shown column takes the width of its empty neighbours
        shown = [column for column in node.columns if self.has(column)]
        if not shown:
            return 0
        spans = {id(column): [column.start, column.start + column.size] for column in shown}
        for i, column in enumerate(node.columns):
            if self.has(column):
                continue
            taker = next((c for c in reversed(node.columns[:i]) if self.has(c)), None)
            if taker is not None:
                spans[id(taker)][1] = column.start + column.size
            else:
                after = next(c for c in node.columns[i + 1 :] if self.has(c))
                spans[id(after)][0] = column.start
        # a column keeps its own height, or fills the row when a card of it was left out
        edges = {id(c): (scale(spans[id(c)][0]), scale(spans[id(c)][1])) for c in shown}
        natural = [self.height(c, *edges[id(c)], top, (c.start, c.size)) for c in shown]
        tallest = max([*natural, stretch or 0])
        for column in shown:
            lost = any(box.key not in self.shown for box in _boxes(column))
            fill = tallest if lost or stretch is not None else None
            self.place(column, *edges[id(column)], top, (column.start, column.size), fill)
        return tallest


def reflow(layouts: Sequence[tuple[str, Layout]], shown: set[str]) -> dict[str, Layout]:
    """Each shown card's place (by key) when only the ``shown`` cards of ``layouts`` (every
    card of the dashboard, keyed, with its layout as defined) are on the page."""
    boxes = [_Box(key, lay.col, lay.row, lay.width, lay.height) for key, lay in layouts]
    if not boxes:
        return {}
    if all(box.key in shown for box in boxes):
        return dict(layouts)
    root = _split(boxes, 0, max(b.row + b.height for b in boxes))
    placer = _Placer(shown)
    placer.place(root, 0, GRID_COLUMNS, 0, (0, GRID_COLUMNS), None)
    return placer.placed
