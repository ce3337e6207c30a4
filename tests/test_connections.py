"""No DuckDB connection of music-tracker prints a progress bar on stdout (connections.py):
stdout is the command's own, and with --json one JSON document."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

from music_tracker.connections import connect_duckdb

SRC = Path(__file__).resolve().parents[1] / "src" / "music_tracker"
PROFILES = Path(__file__).resolve().parents[1] / "transform" / "profiles.yml"

# DuckDB draws its bar on stdout (a pipe included) once a query has run for 2 s
# (progress_bar_time; setting it turns the bar on). How long a query takes depends on the
# machine and its load: the rows are doubled until a plain connection draws the bar, and
# the helper's connection then runs that same query.
_LONG_QUERY = """
import sys
import duckdb
from music_tracker.connections import connect_duckdb

rows = int(sys.argv[2])
con = duckdb.connect() if sys.argv[1] == "plain" else connect_duckdb()
con.execute(f"select count(*) from range({rows}) t(i) where i % 7 = 3").fetchall()
"""


def _stdout_of_query(how: str, rows: int) -> str:
    return subprocess.run(
        [sys.executable, "-c", _LONG_QUERY, how, str(rows)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def test_a_long_query_prints_no_progress_bar() -> None:
    rows = 200_000_000
    while "\u2595" not in _stdout_of_query("plain", rows):
        rows *= 2
        assert rows <= 25_600_000_000, "no plain connection drew a bar: the test proves nothing"
    # the query a plain connection drew a bar for: the helper's draws none
    assert _stdout_of_query("helper", rows) == ""
    # the import's reader threads query through cursors of the connection
    cursor = connect_duckdb().cursor()
    assert cursor.execute("select current_setting('enable_progress_bar')").fetchone() == (False,)


def test_every_connection_is_made_by_the_helper() -> None:
    """publish, backup, report, Metabase provisioning, the fake Metabase, the warehouse:
    a ``duckdb.connect`` anywhere but connections.py would bring the bar back."""
    direct = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "connect"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "duckdb"
            ):
                direct.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert [where.split(":")[0] for where in direct] == ["connections.py"], direct
    # dbt-duckdb opens its own connections and runs each `settings` entry as SET on them
    settings = yaml.safe_load(PROFILES.read_text())["music_tracker"]["outputs"]["warehouse"][
        "settings"
    ]
    assert settings["enable_progress_bar"] is False
