"""A scheduled build replayed: the statements dbt issued for the same build, run again.

A changed-data build (``transform`` after new plays: up to 70 a day under ``serve``) selects
the same nodes every time the project and the side tables' change marks are the same, and
dbt then issues the same statements: its Jinja renders the same SQL, the incremental
models read what changed from the warehouse itself (``macros/play_changes.sql``), no model
queries the warehouse while it is compiled. One test does: a raw key's uniqueness test
counts the rows imported since the last build and groups every key above a threshold
(``macros/get_where_subquery.sql``); a build above it is neither replayed nor recorded
(``transform.most_new_keys``), so every plan holds the form below it, and the count, kept
in the plan, is read by nobody when replayed. What differs from one such build to the next is
the data the statements read. dbt's own work around them (start-up, parse check, selection,
per-node Jinja, events) cost 8-10 of a 1-million-play warehouse's 13 CPU-seconds, more than
its SQL.

So a changed-data build that dbt ran and that passed is recorded (:class:`Recorder`, from
dbt's own events: each statement with the node it belongs to), and the next build with the
same key (:func:`plan_key`: the project's fingerprint, with dbt's and DuckDB's versions;
the warehouse's catalog, whose columns dbt reads to decide what SQL to write; and the
selection) runs those statements on the warehouse (:func:`replay`), node by node in the
order dbt started them, each node on a cursor of its own as dbt-duckdb does (its temporary
tables and any transaction it leaves open end with it), with the settings of
``transform/profiles.yml``. A data test fails when its statement says ``should_error``, as
dbt's test runner decides; the replay stops there (dbt would go on with what does not
depend on the test; the build fails either way, and the next one goes to dbt).

A plan is only recorded when it can be replayed as it stands: every node a SQL model or a
test that passed and issued statements, and every statement outside a node one of dbt's
look-ups, a transaction or ``create schema if not exists``. A statement that names a table
or column that is not there on replay is :class:`PlanFailed`: the plan is dropped and dbt
builds everything (``transform.run_build``). Any other failing statement (a constraint,
memory, the disk) fails the build as it would have failed dbt's (:class:`StatementFailed`).
A plan is a file kept with dbt's parse cache, in dbt's target folder (``transform/target/``,
or ``MUSIC_TRACKER_DBT_TARGET_DIR``: ``/data/dbt/target`` in the image), so the data folders
built from one checkout share their plans, as they share the parse cache: nothing in a plan
belongs to a data folder (no path, no data; the key holds everything its statements depend
on), and a plan recorded on one warehouse replays on another of the same catalog. It is as
private as the warehouse (mode 0600): whoever can change it, or the parse cache beside it,
can change the warehouse itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from music_tracker import files, interrupts

PLAN_VERSION = 1
# dbt's statements outside any node: its look-ups of schemas, relations and databases,
# transactions, and creating the schemas the project writes to (they exist on any warehouse
# a changed-data build runs on). Anything else there and the build is not recorded.
_OUTSIDE_NODES = re.compile(
    r"^\s*(select\b|begin\s*$|commit\s*$|create schema if not exists\b)", re.IGNORECASE
)
# dbt's wrapper of a data test's query (dbt's get_test_sql): one row, failing if should_error
_TEST_COLUMNS = ("failures", "should_warn", "should_error")


class PlanFailed(Exception):
    """A statement of the plan failed: the plan no longer fits this warehouse."""


@dataclass
class PlannedNode:
    """One model or test of the build: its statements, as dbt issued them."""

    unique_id: str
    name: str
    resource_type: str
    path: str
    statements: list[str] = field(default_factory=list)


@dataclass
class Plan:
    key: str
    fingerprint: str
    nodes: list[PlannedNode]


@dataclass
class Replayed:
    """What a replay did: nodes run, seconds they took, data tests that failed."""

    succeeded: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def plan_key(fingerprint: str, catalog: str, selection: list[str]) -> str:
    """What a plan is recorded for: a build of this project, these settings and these
    versions of dbt and DuckDB (``fingerprint``), on a warehouse whose tables and views are
    these (``catalog``: dbt reads them to decide the SQL it writes), selecting these
    nodes."""
    text = "\0".join([fingerprint, catalog, *selection])
    return hashlib.sha256(text.encode()).hexdigest()


def plans_dir(target: Path) -> Path:
    """Where the plans are kept: in dbt's target folder ``target``, beside its parse cache
    (not backed up: remade by the next build dbt runs)."""
    return target / "plans"


def load(target: Path, key: str) -> Plan | None:
    """The plan recorded for ``key``, or None (none recorded, or one that cannot be read:
    the build then goes to dbt, which records it again)."""
    path = plans_dir(target) / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        if stored["version"] != PLAN_VERSION or stored["key"] != key:
            return None
        with suppress(OSError):  # its use, for save's choice of which plans to keep
            os.utime(path)
        return Plan(
            key=key,
            fingerprint=stored["fingerprint"],
            nodes=[PlannedNode(**node) for node in stored["nodes"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# Plans kept: data folders of other settings (the demo's and the owner's) share the folder,
# so a plan of another fingerprint is not dropped on sight; the least recently used go
# beyond this many (a plan is about 300 kB)
KEPT_PLANS = 32


def save(target: Path, plan: Plan) -> None:
    """Store ``plan``; beyond ``KEPT_PLANS``, the plans least recently recorded or
    replayed go."""
    folder = plans_dir(target)
    folder.mkdir(parents=True, exist_ok=True)

    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # gone meanwhile (another build's save)
            return 0.0

    for old in sorted(folder.glob("*.json"), key=used, reverse=True)[KEPT_PLANS - 1 :]:
        old.unlink(missing_ok=True)
    document = {
        "version": PLAN_VERSION,
        "key": plan.key,
        "fingerprint": plan.fingerprint,
        "nodes": [vars(node) for node in plan.nodes],
    }
    files.write_text(folder / f"{plan.key}.json", json.dumps(document))


def portable(plan: Plan, data_dir: Path) -> bool:
    """Whether no statement of ``plan`` names ``data_dir`` in a string (a path to read):
    plans are shared by the data folders of one checkout, and one reading a file of its
    own folder would read that folder's file on another's warehouse. No model reads a file
    today; this keeps it so. A folder's name elsewhere (``/music`` in a comment naming
    ``src/music_tracker``) is not a path read."""
    folders = {str(data_dir.absolute()), str(data_dir.resolve())}
    quoted = [f"{quote}{folder}" for folder in folders for quote in ("'", '"')]
    return not any(q in sql for node in plan.nodes for sql in node.statements for q in quoted)


def drop(target: Path, key: str) -> None:
    (plans_dir(target) / f"{key}.json").unlink(missing_ok=True)


class Recorder:
    """A dbtRunner callback that keeps each statement of a build with its node."""

    def __init__(self, key: str, fingerprint: str) -> None:
        self.key = key
        self.fingerprint = fingerprint
        self._nodes: dict[str, PlannedNode] = {}
        self._order: list[str] = []
        self._replayable = True

    def __call__(self, event: Any) -> None:
        name = event.info.name
        if name not in ("NodeStart", "SQLQuery", "NodeFinished"):
            return
        info = event.data.node_info
        unique_id = info.unique_id
        if name == "SQLQuery":
            if not unique_id:
                if not _OUTSIDE_NODES.match(_without_comment(event.data.sql)):
                    self._replayable = False
            elif unique_id in self._nodes:
                self._nodes[unique_id].statements.append(event.data.sql)
            else:  # a statement of a node that never started: not ours to guess
                self._replayable = False
        elif name == "NodeStart":
            # seeds and Python models do part of their work outside SQL statements
            if info.resource_type not in ("model", "test") or info.node_path.endswith(".py"):
                self._replayable = False
            self._order.append(unique_id)
            self._nodes[unique_id] = PlannedNode(
                unique_id=unique_id,
                name=info.node_name,
                resource_type=info.resource_type,
                path=info.node_path,
            )
        elif info.node_status not in ("success", "pass"):
            self._replayable = False

    def plan(self) -> Plan | None:
        """The build as a plan, or None when it cannot be replayed as recorded."""
        if not self._replayable or not self._order:
            return None
        if any(not self._nodes[unique_id].statements for unique_id in self._order):
            return None  # a node that issued nothing: not a build to take as it is
        return Plan(
            key=self.key,
            fingerprint=self.fingerprint,
            nodes=[self._nodes[unique_id] for unique_id in self._order],
        )


def _without_comment(sql: str) -> str:
    """A statement without dbt's leading ``/* {"app": "dbt", ...} */`` comment."""
    stripped = sql.lstrip()
    if stripped.startswith("/*"):
        end = stripped.find("*/")
        return stripped[end + 2 :] if end >= 0 else stripped
    return stripped


def replay(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    *,
    session: dict[str, str],
    on_node: Callable[[str, int], None] | None = None,
) -> Replayed:
    """Run ``plan``'s statements on the warehouse open on ``con``; stop at the first
    failing data test (dbt would go on with what does not depend on it; the build fails
    either way). ``session``: the settings dbt-duckdb sets on each cursor (the profile's
    ``settings``). A statement naming a table or column that is not there is
    :class:`PlanFailed`; any other error (a constraint, memory, the disk) is the build's
    failure, as it would be dbt's (:class:`StatementFailed`)."""
    result = Replayed()
    total = len(plan.nodes)
    for node in plan.nodes:
        started = time.monotonic()
        # as dbt-duckdb: a cursor per node, its settings set on it, closed after the node
        # (its temporary tables and any transaction it left open go with it)
        cursor = con.cursor()
        try:
            for key, value in session.items():
                cursor.execute(f"set {key} = '{value.replace(chr(39), chr(39) * 2)}'")
            for sql in node.statements:
                _execute(cursor, node, sql)
                if node.resource_type == "test":
                    failed = _test_failures(cursor)
                    if failed:
                        result.failures.append(
                            f"test {node.name}: Got {failed} result"
                            f"{'' if failed == 1 else 's'}, configured to fail if != 0"
                        )
        finally:
            cursor.close()
        result.seconds += time.monotonic() - started
        if result.failures:
            return result
        result.succeeded += 1
        if on_node is not None:
            on_node(node.name, total)
    return result


class StatementFailed(Exception):
    """A statement of the plan failed on this data, as it would have under dbt."""


def _execute(cursor: duckdb.DuckDBPyConnection, node: PlannedNode, sql: str) -> None:
    try:
        cursor.execute(sql)
    except duckdb.Error as exc:
        if isinstance(exc, duckdb.InterruptException) or interrupts.received():
            raise  # Ctrl+C: the command's own line says what it left
        first = str(exc).splitlines()[0]
        what = f"{node.resource_type} {node.name}: {first}"
        if isinstance(exc, duckdb.CatalogException | duckdb.BinderException):
            raise PlanFailed(what) from exc  # a table or column is not what it was
        raise StatementFailed(what) from exc


def _test_failures(cursor: duckdb.DuckDBPyConnection) -> int:
    """The failures a data test's statement reports (0 for any other statement)."""
    columns = tuple(column[0] for column in cursor.description or ())
    if columns[: len(_TEST_COLUMNS)] != _TEST_COLUMNS:
        return 0
    row = cursor.fetchone()
    if row is None or not row[2]:
        return 0
    return int(row[0])
