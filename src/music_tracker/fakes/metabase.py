"""A fake Metabase on 127.0.0.1: the API the provisioner and dbt-metabase use, for real.

It keeps state like an instance does (setup token until the first admin exists, sessions,
API keys, settings, databases with their synced tables and fields, collections, cards,
dashboards with dashcards, public links), answers in the shapes of a real Metabase's
responses (recorded from a real instance: docs/architecture.md, "Reference data"; cards
come back in MBQL 5 like Metabase 0.57+), and, given the OpenAPI subset
(``metabase-openapi-subset.json``), rejects any request that does not match it: unknown
path or method, unknown query parameter, a path id that is not an integer, a body that
fails the request schema. Four endpoints outside the subset, used by dbt-metabase and for
listing a collection, are served in the shapes of the recorded responses: database
metadata, table and field updates, and collection items.

Like Metabase with the DuckDB driver it opens a database's file read-only when it syncs
and keeps it open (a DuckDB lock) until the database is pointed at another file; public
dashboard cards run their SQL on that file. ``path_map`` turns the path inside the
Metabase container into the path on this machine.

Failure modes for the tests: ``starting_requests`` (answer 503 to that many requests,
as a starting instance does), ``fail_sync`` (a sync that aborts), and being started late
on a fixed port (connection refused before).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb

from music_tracker.connections import connect_duckdb
from music_tracker.fakes.server import LoopbackServer

VERSION = {"tag": "v0.63.3", "major": 63}
ADMIN_GROUP_ID = 2
# Outside the transcribed subset: (method, path template) served with recorded shapes.
EXTRA_ENDPOINTS = {
    ("GET", "/api/database/{id}/metadata"),
    ("GET", "/api/collection/{id}/items"),
    ("PUT", "/api/table/{id}"),
    ("PUT", "/api/table/{id}/fields/order"),
    ("PUT", "/api/field/{id}"),
}
_DUCKDB_TYPES = {
    "BIGINT": "type/BigInteger",
    "INTEGER": "type/Integer",
    "SMALLINT": "type/Integer",
    "TINYINT": "type/Integer",
    "HUGEINT": "type/BigInteger",
    "DOUBLE": "type/Float",
    "FLOAT": "type/Float",
    "BOOLEAN": "type/Boolean",
    "DATE": "type/Date",
    "TIME": "type/Time",
    "TIMESTAMP": "type/DateTime",
    "TIMESTAMP WITH TIME ZONE": "type/DateTimeWithLocalTZ",
    "VARCHAR": "type/Text",
}


# Visualization settings. The OpenAPI document leaves ``visualization_settings`` an open
# object; Metabase's frontend reads these keys (its visualizations' settings definitions),
# with these values. Checked by hand here: an unknown key, a wrong value, a column the
# card's result does not have, a time-series axis on a column that is not a date, a click
# to a dashboard or filter that does not exist, is a 400 the provisioner must not cause.
def _text(value: Any) -> bool:
    return isinstance(value, str)


def _columns(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _one_of(*allowed: Any) -> Any:
    return lambda value: value in allowed


_CARD_SETTINGS: dict[str, Any] = {
    "card.title": _text,
    "card.description": _text,
    "graph.dimensions": _columns,
    "graph.metrics": _columns,
    "graph.x_axis.scale": _one_of("timeseries", "linear", "pow", "log", "ordinal", "histogram"),
    "graph.x_axis.title_text": _text,
    "graph.y_axis.title_text": _text,
    "stackable.stack_type": _one_of(None, "stacked", "normalized"),
    "scalar.field": _text,
    "pie.dimension": _text,
    "pie.metric": _text,
    "pie.sort_rows": _one_of(True, False),  # false: slices in the query's row order
    "table.pivot": _one_of(True, False),
    "table.pivot_column": _text,
    "table.cell_column": _text,
    "table.column_formatting": lambda value: isinstance(value, list),
    "map.type": _one_of("pin", "region", "grid"),
    "map.pin_type": _one_of("markers", "tiles", "heat", "grid"),
    "map.latitude_column": _text,
    "map.longitude_column": _text,
    "map.metric": _text,
    "column_settings": lambda value: isinstance(value, dict),
    "click_behavior": lambda value: isinstance(value, dict),
}
_DASHCARD_SETTINGS = {"column_settings", "click_behavior", "card.title", "card.description"}
_COLUMN_SETTINGS: dict[str, Any] = {
    "column_title": _text,
    "suffix": _text,
    "prefix": _text,
    "decimals": lambda value: isinstance(value, int) and value >= 0,
    "number_style": _one_of("decimal", "percent", "scientific", "currency"),
    "scale": lambda value: isinstance(value, int | float),
    "date_style": _text,
    "view_as": _one_of(None, "link", "email_link", "image", "auto"),
    "click_behavior": lambda value: isinstance(value, dict),
}
# settings whose value names result columns
_COLUMN_NAMING = (
    "graph.dimensions", "graph.metrics", "scalar.field", "pie.dimension", "pie.metric",
    "table.pivot_column", "table.cell_column", "map.latitude_column", "map.longitude_column",
    "map.metric",
)  # fmt: skip
_DATE_TYPES = {"type/Date", "type/DateTime", "type/DateTimeWithLocalTZ"}

# Parameters. The OpenAPI subset leaves a dashboard's and a card's ``parameters`` and a
# dashcard's ``parameter_mappings`` open objects ("type is a closed enum"); Metabase's own
# parameter schema (its ``metabase.lib.schema.parameter`` namespace, "types") defines the
# enum, and for each parameter type the template-tag types (or, for a field filter, its
# widget types) it may be passed to. Transcribed here: a parameter type outside the enum,
# a mapping to a tag the card does not have, a type the tag cannot take, a field filter
# on a field that does not exist (or a date filter on a column that is not a date) is a
# 400 the provisioner must not cause.
_DATE_WIDGETS = {"date/single", "date/range", "date/month-year", "date/quarter-year",
                 "date/relative", "date/all-options"}  # fmt: skip
_PARAMETER_TYPES: dict[str, set[str]] = {
    "number": {"number", "number/=", "id", "category", "location/zip_code"},
    "text": {"text", "string/=", "id", "category", "location/city", "location/state",
             "location/zip_code", "location/country"},
    "date": {"date", "date/single", "date/all-options", "id", "category"},
    "boolean": {"boolean", "id", "category", "boolean/="},
    "date/single": {"date", "date/single", "date/all-options", "id", "category"},
    "id": {"id"},
    "category": {"category", "number", "text", "date", "boolean"},
    "location/city": {"location/city"},
    "location/state": {"location/state"},
    "location/zip_code": {"location/zip_code"},
    "location/country": {"location/country"},
    "date/range": {"date/range", "date/all-options"},
    "date/month-year": {"date/month-year", "date/all-options"},
    "date/quarter-year": {"date/quarter-year", "date/all-options"},
    "date/relative": {"date/relative", "date/all-options"},
    "date/all-options": {"date/all-options"},
    "temporal-unit": {"temporal-unit"},
    "number/!=": {"number/!="},
    "number/<=": {"number/<="},
    "number/=": {"number/=", "number", "id", "category", "location/zip_code"},
    "number/>=": {"number/>="},
    "number/between": {"number/between"},
    "string/!=": {"string/!="},
    "string/=": {"string/=", "text", "id", "category", "location/city", "location/state",
                 "location/zip_code", "location/country"},
    "string/contains": {"string/contains"},
    "string/does-not-contain": {"string/does-not-contain"},
    "string/ends-with": {"string/ends-with"},
    "string/starts-with": {"string/starts-with"},
    "boolean/=": {"boolean", "boolean/="},
}  # fmt: skip
_TAG_TYPES = {"snippet", "card", "dimension", "number", "text", "date", "boolean"}
# a date filter's value (and default): a day, a range of days (open at either end), a
# month, a quarter, or relative to today (past30days, past12months~, thisyear, ...)
_DAY = r"\d{4}-\d{2}-\d{2}"
_DATE_VALUE = re.compile(
    rf"^(?:{_DAY}|{_DAY}~{_DAY}|~{_DAY}|{_DAY}~|\d{{4}}-\d{{2}}|Q[1-4]-\d{{4}}"
    r"|(?:past|next)\d+(?:minutes|hours|days|weeks|months|quarters|years)~?"
    r"|(?:this|last|next)(?:minute|hour|day|week|month|quarter|year))$"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiSpec:
    """The OpenAPI subset as request checks (jsonschema for bodies, parameters by hand)."""

    def __init__(self, path: Path) -> None:
        from jsonschema import Draft202012Validator

        document = json.loads(path.read_text(encoding="utf-8"))
        components = document.get("components", {}).get("schemas", {})
        self.operations: list[tuple[str, re.Pattern[str], str, dict[str, Any], Any]] = []
        for template, methods in document["paths"].items():
            norm = template.rstrip("/") or "/"
            pattern = re.compile(
                "^" + re.sub(r"\\\{[^}]+\\\}", r"([^/]+)", re.escape(norm)) + "/?$"
            )
            for method, operation in methods.items():
                schema = (
                    operation.get("requestBody", {})
                    .get("content", {})
                    .get("application/json", {})
                    .get("schema")
                )
                validator = Draft202012Validator(_inline(schema, components)) if schema else None
                self.operations.append((method.upper(), pattern, norm, operation, validator))

    def check(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[str | None, str | None]:
        """(template, None) when the request matches; (template or None, why) when not."""
        from jsonschema import Draft202012Validator

        known_path = False
        for op_method, pattern, template, operation, validator in self.operations:
            match = pattern.match(path)
            if not match:
                continue
            known_path = True
            if op_method != method:
                continue
            params = operation.get("parameters", [])
            names = re.findall(r"\{([^}]+)\}", template)
            for name, value in zip(names, match.groups(), strict=True):
                schema: dict[str, Any] = next(
                    (p.get("schema", {}) for p in params if p["name"] == name), {}
                )
                typed: Any = int(value) if value.isdigit() else value
                if schema and not Draft202012Validator(schema).is_valid(typed):
                    return template, f"path parameter {name}={value!r} does not match {schema}"
            declared = {p["name"]: p for p in params if p.get("in") == "query"}
            for name, values in query.items():
                if name not in declared:
                    return template, f"unknown query parameter {name!r}"
                enum = declared[name].get("schema", {}).get("enum")
                if enum and values[-1] not in enum:
                    return template, f"query parameter {name}={values[-1]!r} not in {enum}"
            if validator is not None:
                errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
                if errors:
                    where = ".".join(str(p) for p in errors[0].absolute_path) or "body"
                    return template, f"{where}: {errors[0].message}"
            return template, None
        for extra_method, template in EXTRA_ENDPOINTS:
            extra = "^" + re.sub(r"\\\{[^}]+\\\}", r"(\\d+)", re.escape(template)) + "/?$"
            if extra_method == method and re.match(extra, path):
                return template, None
        why = f"{method} not allowed on {path}" if known_path else f"no endpoint {path}"
        return None, why


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(components[ref.rsplit("/", 1)[-1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


@dataclass
class Logged:
    method: str
    path: str
    status: int


class Page(str):
    """An HTML answer (any other ``str`` is served as plain text)."""


@dataclass
class _Database:
    row: dict[str, Any]
    tables: list[dict[str, Any]] = field(default_factory=list)
    con: duckdb.DuckDBPyConnection | None = None
    opened: str | None = None


class FakeMetabase(LoopbackServer):
    """The fake instance; use as a context manager to serve it (``port`` to pick one)."""

    def __init__(
        self,
        *,
        spec: Path | None = None,
        path_map: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.spec = ApiSpec(spec) if spec else None
        self.path_map = path_map or {}
        self.port = port
        self.starting_requests = 0
        self.fail_sync = False
        # someone else completes the setup between our look at the token and our POST
        self.setup_race: tuple[str, str] | None = None
        self.log: list[Logged] = []
        self.rejected: list[str] = []
        self.setup_token: str | None = secrets.token_hex(16)
        self.users: dict[str, str] = {}  # email -> password
        self.sessions: set[str] = set()
        self.api_keys: set[str] = set()
        self.settings: dict[str, Any] = {
            "site-name": "Metabase",
            "site-url": None,
            "enable-public-sharing": False,
            "anon-tracking-enabled": True,
        }
        self.databases: dict[int, _Database] = {}
        self.collections: dict[int, dict[str, Any]] = {}
        self.cards: dict[int, dict[str, Any]] = {}
        self.dashboards: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._field_ids = itertools.count(1)
        self._lock = threading.RLock()
        # (method, path) -> seconds: the next such request is done, its answer sent late
        self._late: dict[tuple[str, str], float] = {}

    # -- server plumbing ----------------------------------------------------------------

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for database in self.databases.values():
            if database.con is not None:
                database.con.close()
                database.con = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    def writes(self) -> list[Logged]:
        """Requests that may change state (not GETs), in order."""
        return [r for r in self.log if r.method != "GET" and r.status < 400]

    def reset_log(self) -> None:
        self.log.clear()

    def answer_late(self, method: str, path: str, seconds: float) -> None:
        """Do the next ``method path`` request, then wait ``seconds`` before answering: a
        Metabase that stored a card under load and answered after the client gave up (and
        retried)."""
        self._late[method, path] = seconds

    def lateness(self, method: str, raw_path: str) -> float:
        """How long to hold the answer of this request (0: not held); used once."""
        with self._lock:
            return self._late.pop((method, urlparse(raw_path).path), 0.0)

    # -- dispatch -----------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        parsed = urlparse(raw_path)
        path = parsed.path
        query = parse_qs(parsed.query, keep_blank_values=True)
        with self._lock:
            status, answer = self._handle(method, path, query, headers, body)
            self.log.append(Logged(method, path, status))
        return status, answer

    def _handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> tuple[int, Any]:
        if self.starting_requests > 0:
            self.starting_requests -= 1
            return 503, "Metabase is still initializing. Please sit tight..."
        if not path.startswith("/api/"):
            return self._page(path)
        template: str | None = None
        if self.spec is not None:
            template, why = self.spec.check(method, path, query, body)
            if why:
                self.rejected.append(f"{method} {path}: {why}")
                return (404 if template is None else 400), {"message": why}
        parts = [p for p in path.split("/") if p][1:]  # after "api"
        public = parts[:1] in (["health"], ["public"]) or (
            parts[:2] == ["session", "properties"]
            or parts == ["setup"]
            or (parts == ["session"] and method == "POST")
        )
        if not public and not self._authenticated(headers):
            return 401, "Unauthenticated"
        if self.spec is not None and method in ("POST", "PUT") and isinstance(body, dict):
            why = self._check_visualizations(parts, body) or self._check_parameters(parts, body)
            if why:
                self.rejected.append(f"{method} {path}: {why}")
                return 400, {"message": why}
        try:
            return self._route(method, parts, query, body or {})
        except KeyError as exc:
            return 404, {"message": f"Not found: {exc}"}

    # -- visualization settings ---------------------------------------------------------

    def _check_visualizations(self, parts: list[str], body: dict[str, Any]) -> str | None:
        """Why the visualization settings of a card or of a dashboard's cards are wrong,
        or None (see ``_CARD_SETTINGS``)."""
        if parts == ["card"] or (parts[:1] == ["card"] and len(parts) == 2):
            settings = body.get("visualization_settings")
            if settings is None:
                return None
            stored = self.cards.get(int(parts[1])) if len(parts) == 2 else None
            query = body.get("dataset_query") or (stored or {}).get("dataset_query") or {}
            return self._check_card_settings(settings, self._result_columns(query))
        if parts[:1] == ["dashboard"] and len(parts) == 2 and body.get("dashcards"):
            for dashcard in body["dashcards"]:
                card = self.cards.get(dashcard.get("card_id"))
                settings = dashcard.get("visualization_settings") or {}
                unknown = sorted(set(settings) - _DASHCARD_SETTINGS)
                if unknown:
                    return (
                        f"dashcard {dashcard.get('id')}: unknown visualization settings {unknown}"
                    )
                columns = self._result_columns(card["dataset_query"]) if card else {}
                why = self._check_card_settings(settings, columns)
                if why:
                    return f"dashcard {dashcard.get('id')}: {why}"
        return None

    # -- parameters ---------------------------------------------------------------------

    def _check_parameters(self, parts: list[str], body: dict[str, Any]) -> str | None:
        """Why a card's template tags and parameters, or a dashboard's parameters and its
        dashcards' mappings, are wrong, or None (see ``_PARAMETER_TYPES``)."""
        if parts[:1] == ["card"] and len(parts) <= 2:
            query = body.get("dataset_query") or {}
            tags = (query.get("native") or {}).get("template-tags") or {}
            if not tags and "stages" in query:
                tags = (query["stages"][0] or {}).get("template-tags") or {}
            for name, tag in tags.items():
                why = self._check_tag(name, tag)
                if why:
                    return f"template tag {name!r}: {why}"
            for parameter in body.get("parameters") or []:
                why = self._check_parameter(parameter) or self._check_target(
                    parameter.get("type"), parameter.get("target"), tags
                )
                if why:
                    return f"card parameter {parameter.get('id')!r}: {why}"
            return None
        if parts[:1] != ["dashboard"] or len(parts) > 2:
            return None
        stored = self.dashboards.get(int(parts[1])) if len(parts) == 2 else None
        parameters = body.get("parameters")
        if parameters is None:
            parameters = (stored or {}).get("parameters") or []
        by_id = {}
        for parameter in parameters:
            why = self._check_parameter(parameter, dashboard=True)
            if why:
                return f"dashboard parameter {parameter.get('id')!r}: {why}"
            by_id[parameter["id"]] = parameter
        for dashcard in body.get("dashcards") or []:
            card = self.cards.get(dashcard.get("card_id"))
            if card is None:
                continue
            tags = card["dataset_query"]["stages"][0].get("template-tags") or {}
            for mapping in dashcard.get("parameter_mappings") or []:
                parameter = by_id.get(mapping.get("parameter_id"))
                if parameter is None:
                    missing = mapping.get("parameter_id")
                    return f"dashcard {dashcard.get('id')}: no parameter {missing!r}"
                if mapping.get("card_id") != dashcard.get("card_id"):
                    return f"dashcard {dashcard.get('id')}: a mapping names another card"
                why = self._check_target(parameter["type"], mapping.get("target"), tags)
                if why:
                    return f"dashcard {dashcard.get('id')}: {why}"
        return None

    def _check_tag(self, name: str, tag: Any) -> str | None:
        if not isinstance(tag, dict) or tag.get("name") != name:
            return "its name differs from its key"
        if not tag.get("display-name") or tag.get("type") not in _TAG_TYPES:
            return f"type {tag.get('type')!r} or display-name missing"
        if tag["type"] != "dimension":
            return "a dimension only on a field filter" if "dimension" in tag else None
        widget = tag.get("widget-type")
        if widget != "none" and widget not in _PARAMETER_TYPES:
            return f"widget-type {widget!r} is not a parameter type"
        dimension = tag.get("dimension")
        if not (isinstance(dimension, list) and len(dimension) >= 2 and dimension[0] == "field"):
            return f"dimension {dimension!r} is not a field reference"
        field = self._field_by_id(dimension[1])
        if field is None:
            return f"field {dimension[1]!r} does not exist"
        if widget in _DATE_WIDGETS and field["base_type"] not in _DATE_TYPES:
            return f"a date filter on {field['name']!r}, a {field['base_type']} column"
        return None

    def _check_parameter(self, parameter: Any, *, dashboard: bool = False) -> str | None:
        if not isinstance(parameter, dict) or not parameter.get("id"):
            return "no id"
        kind = parameter.get("type")
        if kind not in _PARAMETER_TYPES:
            return f"type {kind!r} is not a parameter type"
        if dashboard and not (parameter.get("name") and parameter.get("slug")):
            return "a dashboard parameter needs a name and a slug"
        default = parameter.get("default")
        dated = default is not None and str(kind).startswith("date/") and kind != "date/single"
        if dated and not (isinstance(default, str) and _DATE_VALUE.match(default)):
            return f"default {default!r} is not a date filter value"
        return None

    def _check_target(self, kind: Any, target: Any, tags: dict[str, Any]) -> str | None:
        """A parameter of type ``kind`` aimed at a template tag of the card."""
        if not (isinstance(target, list) and len(target) == 2 and isinstance(target[1], list)):
            return f"target {target!r} is not [dimension|variable, [template-tag, name]]"
        wrapper, (ref, name) = target[0], target[1]
        tag = tags.get(name) if ref == "template-tag" else None
        if tag is None:
            return f"target {target!r} names no template tag of the card"
        field_filter = tag["type"] == "dimension"
        if wrapper != ("dimension" if field_filter else "variable"):
            return f"a {tag['type']} tag is targeted as {wrapper!r}"
        accepts = tag.get("widget-type") if field_filter else tag["type"]
        if accepts not in _PARAMETER_TYPES.get(kind, set()):
            return f"a {kind} parameter cannot be passed to a tag that takes {accepts}"
        return None

    def _field_by_id(self, field_id: Any) -> dict[str, Any] | None:
        for database in self.databases.values():
            for table in database.tables:
                for fld in table["fields"]:
                    if fld["id"] == field_id:
                        return {**fld, "schema": table["schema"], "table": table["name"]}
        return None

    def _result_columns(self, query: dict[str, Any]) -> dict[str, str]:
        """The columns (name -> base type) a native query returns, with no filter values."""
        database = self.databases.get(query.get("database"))  # type: ignore[arg-type]
        if database is None:
            return {}
        _, answer = self._run({"dataset_query": _to_mbql5(query),
                               "database_id": query.get("database")}, {})  # fmt: skip
        if answer.get("status") != "completed":
            return {}
        return {col["name"]: col["base_type"] for col in answer["data"]["cols"]}

    def _check_card_settings(self, settings: Any, columns: dict[str, str]) -> str | None:
        if not isinstance(settings, dict):
            return "visualization_settings is not an object"
        for key, value in settings.items():
            check = _CARD_SETTINGS.get(key)
            if check is None:
                return f"unknown visualization setting {key!r}"
            if not check(value):
                return f"visualization setting {key!r} has a wrong value: {value!r}"
        named = [settings[k] for k in _COLUMN_NAMING if k in settings]
        named = [c for value in named for c in (value if isinstance(value, list) else [value])]
        for key, entry in (settings.get("column_settings") or {}).items():
            try:
                kind, column = json.loads(key)
            except (ValueError, TypeError):
                return f'column_settings key {key!r} is not ["name", column]'
            if kind != "name" or not isinstance(entry, dict):
                return f'column_settings key {key!r} is not ["name", column]'
            named.append(column)
            for name, value in entry.items():
                check = _COLUMN_SETTINGS.get(name)
                if check is None or not check(value):
                    return f"column_settings {key}: {name!r} = {value!r} is not a column setting"
                if name == "click_behavior":
                    why = self._check_click(value, columns)
                    if why:
                        return f"column_settings {key}: {why}"
        if columns:
            missing = sorted({c for c in named if c not in columns})
            if missing:
                return f"visualization settings name columns the query does not return: {missing}"
            dimensions = settings.get("graph.dimensions") or []
            if settings.get("graph.x_axis.scale") == "timeseries" and (
                not dimensions or columns.get(dimensions[0]) not in _DATE_TYPES
            ):
                return "a timeseries x axis needs a date or datetime column as its dimension"
        if "click_behavior" in settings:
            return self._check_click(settings["click_behavior"], columns)
        return None

    def _check_click(self, behaviour: Any, columns: dict[str, str]) -> str | None:
        """A click behaviour: a link to a dashboard that exists, filled from result columns
        into that dashboard's filters."""
        kind = behaviour.get("type")
        if kind not in ("link", "crossfilter", "actionMenu"):
            return f"click_behavior type {kind!r}"
        if kind != "link":
            return None
        if behaviour.get("linkType") not in ("dashboard", "question", "url"):
            return f"click_behavior linkType {behaviour.get('linkType')!r}"
        if behaviour["linkType"] != "dashboard":
            return None
        target = self.dashboards.get(behaviour.get("targetId", 0))
        if target is None or target["archived"]:
            return f"click_behavior targetId {behaviour.get('targetId')!r} is no dashboard"
        parameters = {p["id"] for p in target.get("parameters") or []}
        for key, mapping in (behaviour.get("parameterMapping") or {}).items():
            source, goal = mapping.get("source") or {}, mapping.get("target") or {}
            if mapping.get("id") != key or goal.get("id") != key:
                return f"click_behavior parameterMapping {key!r}: ids disagree"
            if goal.get("type") != "parameter" or key not in parameters:
                return f"click_behavior: dashboard {target['id']} has no filter {key!r}"
            if source.get("type") != "column" or (columns and source.get("id") not in columns):
                return f"click_behavior: source {source!r} is not a column of the card"
        return None

    def _page(self, path: str) -> tuple[int, Any]:
        """The web application's pages: Metabase answers every public dashboard's address
        with its single-page app, which then calls ``/api/public/dashboard/<uuid>``."""
        parts = [p for p in path.split("/") if p]
        if (
            parts[:2] == ["public", "dashboard"]
            and len(parts) == 3
            and self.settings.get("enable-public-sharing")
            and any(d["public_uuid"] == parts[2] for d in self.dashboards.values())
        ):
            return 200, Page(
                f"<!doctype html><html><head><title>{self.settings['site-name']}</title>"
                f'</head><body><div id="root" data-public-dashboard="{parts[2]}"></div>'
                "</body></html>"
            )
        return 404, Page("<!doctype html><title>Not found</title>")

    def _authenticated(self, headers: dict[str, str]) -> bool:
        key = headers.get("x-api-key")
        session = headers.get("x-metabase-session")
        return (key is not None and key in self.api_keys) or (
            session is not None and session in self.sessions
        )

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        head = parts[0] if parts else ""
        rest = parts[1:]
        if head == "health":
            return 200, {"status": "ok"}
        if head == "session":
            return self._session(method, rest, body)
        if head == "setup":
            return self._setup(body)
        if head == "setting":
            return self._setting(method, rest, body)
        if head == "api-key":
            return self._api_key(method, body)
        if head == "database":
            return self._database(method, rest, query, body)
        if head in ("table", "field"):
            return self._metadata_update(head, method, rest, body)
        if head == "collection":
            return self._collection(method, rest, body)
        if head == "card":
            return self._card(method, rest, query, body)
        if head == "dashboard":
            return self._dashboard(method, rest, body)
        if head == "public":
            return self._public(rest, query)
        if head == "notify":
            return 200, {"success": True}
        return 404, {"message": "Not found"}

    # -- session, setup, settings, API keys -----------------------------------------------

    def _session(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if rest == ["properties"]:
            answer = {
                "has-user-setup": bool(self.users),
                "version": VERSION,
                "site-name": self.settings["site-name"],
                "enable-public-sharing": self.settings["enable-public-sharing"],
            }
            answer["setup-token"] = None if self.users else self.setup_token
            return 200, answer
        if method == "DELETE":
            return 204, None
        if self.users.get(body.get("username")) != body.get("password"):
            return 401, {"errors": {"password": "did not match stored password"}}
        return 200, {"id": self._new_session()}

    def _new_session(self) -> str:
        session = secrets.token_hex(16)
        self.sessions.add(session)
        return session

    def _setup(self, body: Any) -> tuple[int, Any]:
        if self.setup_race and not self.users:
            self.add_admin(*self.setup_race)
        if self.users:
            return 403, "The /api/setup route can only be used to create the first user."
        if body.get("token") != self.setup_token:
            return 400, {"errors": {"token": "Token does not match the setup token."}}
        self.users[body["user"]["email"]] = body["user"]["password"]
        self.settings["site-name"] = body["prefs"]["site_name"]
        self.setup_token = None
        personal = self._new_collection("Music Tracker's Personal Collection", personal=True)
        self.collections[personal["id"]] = personal
        return 200, {"id": self._new_session()}

    def add_admin(self, email: str, password: str) -> None:
        """An instance someone set up before (by hand, or another tool)."""
        with self._lock:
            self.users[email] = password
            self.setup_token = None

    def add_api_key(self) -> str:
        with self._lock:
            key = "mb_" + secrets.token_urlsafe(24)
            self.api_keys.add(key)
            return key

    def _setting(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and not rest:
            return 200, [{"key": k, "value": v} for k, v in sorted(self.settings.items())]
        if method == "GET":
            return 200, self.settings.get(rest[0])
        if rest:
            self.settings[rest[0]] = body["value"]
        else:
            self.settings.update(body)
        return 204, None

    def _api_key(self, method: str, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, [{"name": "key", "group": {"id": ADMIN_GROUP_ID}}]
        key = self.add_api_key()
        return 200, {"id": next(self._ids), "name": body["name"], "unmasked_key": key}

    # -- databases, sync, data model ----------------------------------------------------

    def host_path(self, container_path: str) -> Path:
        for inside, outside in self.path_map.items():
            if container_path.startswith(inside.rstrip("/") + "/"):
                return Path(outside) / container_path[len(inside.rstrip("/")) + 1 :]
        return Path(container_path)

    def _database(
        self, method: str, rest: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if not rest:
            if method == "GET":
                rows = [self._db_row(db) for db in self.databases.values()]
                return 200, {"data": rows, "total": len(rows)}
            if body["engine"] != "duckdb":
                return 400, {"errors": {"engine": "value must be a valid database engine."}}
            database_id = next(self._ids)
            row = {
                "id": database_id,
                "name": body["name"],
                "engine": "duckdb",
                "details": dict(body["details"]),
                "is_full_sync": body.get("is_full_sync", True),
                "is_on_demand": body.get("is_on_demand", False),
                "auto_run_queries": body.get("auto_run_queries", True),
                "initial_sync_status": "incomplete",
                "description": None,
                "features": ["native-parameters", "schemas", "basic-aggregations"],
                "created_at": _now(),
                "updated_at": _now(),
                "timezone": "UTC",
                "is_sample": False,
                "is_audit": False,
                "settings": None,
                "cache_ttl": None,
                "caveats": None,
                "points_of_interest": None,
                "dbms_version": {"flavor": "DuckDB", "version": "v1.5.5"},
            }
            database = _Database(row)
            self.databases[database_id] = database
            self._sync(database)  # Metabase syncs a new database right away
            return 200, self._db_row(database)
        if rest[0] == "validate":
            return 200, {"valid": True}
        database = self.databases[int(rest[0])]
        action = rest[1] if len(rest) > 1 else None
        if action == "sync_schema":
            self._sync(database)
            return 200, {"status": "ok"}
        if action == "rescan_values":
            return 200, {"status": "ok"}
        if action == "metadata":
            return 200, {**self._db_row(database), "tables": self._tables(database)}
        if method == "GET":
            answer = self._db_row(database)
            if query.get("include") == ["tables"]:
                answer["tables"] = [
                    {k: v for k, v in t.items() if k != "fields"} for t in database.tables
                ]
            return 200, answer
        if method == "DELETE":
            self._close(database)
            del self.databases[database.row["id"]]
            return 204, None
        changed = {k: v for k, v in body.items() if v is not None}
        if "details" in changed and changed["details"] != database.row["details"]:
            # Metabase tests the new connection first and refuses details it cannot use;
            # then it rebuilds its connection pool and lets go of the old file
            trial = _Database({**database.row, "details": changed["details"]})
            try:
                self._open(trial)
            except duckdb.Error as exc:
                return 400, {"message": f"Couldn't connect to the database: {exc}"}
            self._close(database)
            database.con, database.opened = trial.con, trial.opened
        database.row.update(changed)
        database.row["updated_at"] = _now()
        return 200, self._db_row(database)

    def _db_row(self, database: _Database) -> dict[str, Any]:
        return copy.deepcopy(database.row)

    def _close(self, database: _Database) -> None:
        if database.con is not None:
            database.con.close()
            database.con = None
            database.opened = None

    def _open(self, database: _Database) -> duckdb.DuckDBPyConnection:
        file = str(database.row["details"].get("database_file", ""))
        if database.con is None or database.opened != file:
            self._close(database)
            host = self.host_path(file)
            if not host.is_file():
                raise duckdb.IOException(f"IO Error: Cannot open file {file!r}")
            # what the driver does: read-only, its memory limit, temp files beside the file
            database.con = connect_duckdb(
                host,
                read_only=True,
                config={
                    "memory_limit": str(database.row["details"].get("memory_limit") or "256MB"),
                    "temp_directory": f"{host}.tmp",
                },
            )
            database.opened = file
        return database.con

    def _sync(self, database: _Database) -> None:
        """Read the file's tables and columns, keeping ids of what was seen before."""
        try:
            if self.fail_sync:
                raise duckdb.IOException("IO Error: injected sync failure")
            con = self._open(database)
            columns = con.execute(
                "select schema_name, table_name, column_name, data_type, column_index"
                " from duckdb_columns() where schema_name not in ('information_schema',"
                " 'pg_catalog') order by schema_name, table_name, column_index"
            ).fetchall()
        except duckdb.Error:
            database.row["initial_sync_status"] = "aborted"
            return
        old = {(t["schema"], t["name"]): t for t in database.tables}
        tables: dict[tuple[str, str], dict[str, Any]] = {}
        for schema, name, column, data_type, position in columns:
            table = tables.get((schema, name))
            if table is None:
                table = old.get((schema, name)) or {
                    "id": next(self._ids),
                    "db_id": database.row["id"],
                    "schema": schema,
                    "name": name,
                    "display_name": name.replace("_", " ").title(),
                    "description": None,
                    "entity_type": "entity/GenericTable",
                    "visibility_type": None,
                    "field_order": "database",
                    "points_of_interest": None,
                    "caveats": None,
                    "active": True,
                    "initial_sync_status": "complete",
                    "fields": [],
                }
                table["seen"] = set()
                tables[(schema, name)] = table
            table["seen"].add(column)
            if not any(f["name"] == column for f in table["fields"]):
                table["fields"].append(self._field(table, column, data_type, position))
        for table in tables.values():
            seen = table.pop("seen")
            table["fields"] = [f for f in table["fields"] if f["name"] in seen]
        database.tables = list(tables.values())
        database.row["initial_sync_status"] = "complete"

    def _field(self, table: dict[str, Any], name: str, data_type: str, position: int) -> Any:
        base = _DUCKDB_TYPES.get(str(data_type).split("(")[0], "type/*")
        return {
            "id": next(self._field_ids),
            "table_id": table["id"],
            "name": name,
            "display_name": name.replace("_", " ").title(),
            "description": None,
            "database_type": str(data_type),
            "base_type": base,
            "effective_type": base,
            "semantic_type": None,
            "fk_target_field_id": None,
            "visibility_type": "normal",
            "has_field_values": "list",
            "coercion_strategy": None,
            "settings": None,
            "position": position,
            "database_position": position,
            "custom_position": 0,
            "active": True,
            "caveats": None,
            "points_of_interest": None,
            "parent_id": None,
            "nfc_path": None,
            "target": None,
        }

    def _tables(self, database: _Database) -> list[dict[str, Any]]:
        return copy.deepcopy(database.tables)

    def _metadata_update(
        self, head: str, method: str, rest: list[str], body: Any
    ) -> tuple[int, Any]:
        target = int(rest[0])
        for database in self.databases.values():
            for table in database.tables:
                if head == "table" and table["id"] == target:
                    if rest[1:] == ["fields", "order"]:
                        order = {fid: n for n, fid in enumerate(body)}
                        table["fields"].sort(key=lambda f: order.get(f["id"], 0))
                        table["field_order"] = "custom"
                        return 200, {"success": True}
                    table.update(body)
                    return 200, {k: v for k, v in table.items() if k != "fields"}
                for fld in table["fields"]:
                    if head == "field" and fld["id"] == target:
                        fld.update(body)
                        return 200, dict(fld)
        return 404, {"message": f"Not found: {head} {target}"}

    def field_by_name(self, table: str, column: str) -> dict[str, Any]:
        """For the tests: a synced field (with what dbt-metabase set on it)."""
        for database in self.databases.values():
            for tbl in database.tables:
                if tbl["name"] == table:
                    return next(f for f in tbl["fields"] if f["name"] == column)
        raise KeyError(f"{table}.{column}")

    def unwired_tags(self) -> list[str]:
        """For the tests: each template tag of a card on a dashboard that no parameter of
        that dashboard reaches (Metabase accepts it: the card then runs on the tag's
        default, or without its optional clause, whatever the visitor picks). As
        "dashboard / card: tag", for dashboards not archived."""
        found = []
        for dashboard in self.dashboards.values():
            if dashboard.get("archived"):
                continue
            parameters = {p["id"] for p in dashboard.get("parameters") or []}
            for dashcard in dashboard.get("dashcards") or []:
                card = self.cards.get(dashcard.get("card_id"))
                if card is None:
                    continue
                stage = card["dataset_query"]["stages"][0]
                reached = {
                    mapping["target"][1][1]
                    for mapping in dashcard.get("parameter_mappings") or []
                    if mapping.get("parameter_id") in parameters
                }
                found += [
                    f"{dashboard['name']} / {card['name']}: {tag}"
                    for tag in sorted(set(stage.get("template-tags") or {}) - reached)
                ]
        return found

    def table_by_name(self, table: str) -> dict[str, Any]:
        for database in self.databases.values():
            for tbl in database.tables:
                if tbl["name"] == table:
                    return tbl
        raise KeyError(table)

    # -- collections, cards, dashboards -------------------------------------------------

    def _new_collection(self, name: str, *, personal: bool = False, **extra: Any) -> Any:
        return {
            "id": next(self._ids),
            "name": name,
            "description": extra.get("description"),
            "archived": False,
            "location": "/",
            "personal_owner_id": 1 if personal else None,
            "is_personal": personal,
            "entity_id": secrets.token_urlsafe(16)[:21],
            "slug": re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"),
            "namespace": None,
            "authority_level": None,
            "type": None,
            "created_at": _now(),
            "can_write": True,
        }

    def _collection(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if not rest:
            if method == "GET":
                root = {"id": "root", "name": "Our analytics", "parent_id": None}
                return 200, [root, *copy.deepcopy(list(self.collections.values()))]
            collection = self._new_collection(body["name"], description=body.get("description"))
            self.collections[collection["id"]] = collection
            return 200, collection
        collection_id = int(rest[0])
        if collection_id not in self.collections:
            raise KeyError(f"collection {collection_id}")
        items = [
            self._item(card, "card")
            for card in self.cards.values()
            if card["collection_id"] == collection_id and not card["archived"]
        ] + [
            self._item(dashboard, "dashboard")
            for dashboard in self.dashboards.values()
            if dashboard["collection_id"] == collection_id and not dashboard["archived"]
        ]
        return 200, {"data": items, "total": len(items), "limit": None, "offset": None}

    def _item(self, row: dict[str, Any], model: str) -> dict[str, Any]:
        item = {
            key: row.get(key)
            for key in ("id", "name", "description", "archived", "collection_id", "entity_id")
        }
        item |= {"model": model, "collection_position": None, "can_write": True}
        if model == "card":
            item |= {"display": row["display"], "database_id": row["database_id"]}
        return item

    def _card(
        self, method: str, rest: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if not rest:
            if method == "GET":
                # f=archived lists archived cards only; the default (all) the others
                archived = query.get("f", ["all"])[-1] == "archived"
                rows = [c for c in self.cards.values() if c["archived"] == archived]
                return 200, [self._card_out(c) for c in rows]
            eid = body.get("entity_id")
            if eid and any(c["entity_id"] == eid for c in self.cards.values()):
                return 400, {"message": f"entity_id {eid} is already used"}
            card_id = next(self._ids)
            card: dict[str, Any] = {
                "id": card_id,
                "entity_id": eid or secrets.token_urlsafe(16)[:21],
                "archived": False,
                "public_uuid": None,
                "created_at": _now(),
                "query_type": "native",
                "type": body.get("type") or "question",
                "creator_id": 1,
                "dashboard_count": 0,
                "parameter_mappings": [],
            }
            self._apply_card(card, body)
            self.cards[card_id] = card
            return 200, self._card_out(card)
        if rest[0] == "public":
            rows = [c for c in self.cards.values() if c["public_uuid"]]
            return 200, [
                {"id": c["id"], "name": c["name"], "public_uuid": c["public_uuid"]} for c in rows
            ]
        card = self.cards[int(rest[0])]
        action = rest[1] if len(rest) > 1 else None
        if action == "public_link":
            if method == "DELETE":
                card["public_uuid"] = None
                return 204, None
            card["public_uuid"] = card["public_uuid"] or secrets.token_hex(16)
            return 200, {"uuid": card["public_uuid"]}
        if action == "query":
            return self._run(card, {})
        if method == "GET":
            return 200, self._card_out(card)
        if method == "DELETE":
            del self.cards[card["id"]]
            return 204, None
        self._apply_card(card, {k: v for k, v in body.items() if k != "entity_id"})
        return 200, self._card_out(card)

    def _apply_card(self, card: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "dataset_query" and value is not None:
                card["dataset_query"] = _to_mbql5(value)
                card["database_id"] = value.get("database")
            elif value is not None or key in ("description", "collection_id"):
                card[key] = value
        card["updated_at"] = _now()

    def _card_out(self, card: dict[str, Any]) -> dict[str, Any]:
        answer = copy.deepcopy(card)
        answer["dashboard_count"] = sum(
            any(dc["card_id"] == card["id"] for dc in d["dashcards"])
            for d in self.dashboards.values()
        )
        return answer

    def _dashboard(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if not rest:
            dashboard_id = next(self._ids)
            self.dashboards[dashboard_id] = {
                "id": dashboard_id,
                "name": body["name"],
                "description": body.get("description"),
                "collection_id": body.get("collection_id"),
                "parameters": body.get("parameters") or [],
                "dashcards": [],
                "tabs": [],
                "archived": False,
                "public_uuid": None,
                "width": "fixed",
                "auto_apply_filters": True,
                "entity_id": secrets.token_urlsafe(16)[:21],
                "created_at": _now(),
                "updated_at": _now(),
                "creator_id": 1,
            }
            return 200, copy.deepcopy(self.dashboards[dashboard_id])
        if rest[0] == "public":
            rows = [d for d in self.dashboards.values() if d["public_uuid"]]
            return 200, [
                {"id": d["id"], "name": d["name"], "public_uuid": d["public_uuid"]} for d in rows
            ]
        dashboard = self.dashboards[int(rest[0])]
        action = rest[1] if len(rest) > 1 else None
        if action == "public_link":
            if method == "DELETE":
                dashboard["public_uuid"] = None
                return 204, None
            if not self.settings.get("enable-public-sharing"):
                return 400, {"message": "Public sharing is not enabled."}
            dashboard["public_uuid"] = dashboard["public_uuid"] or str(
                _uuid_from(dashboard["entity_id"])
            )
            return 200, {"uuid": dashboard["public_uuid"]}
        if method == "GET":
            return 200, self._dashboard_out(dashboard)
        if method == "DELETE":
            del self.dashboards[dashboard["id"]]
            return 204, None
        if action == "cards":
            body = {"dashcards": body.get("cards")}
        for key, value in body.items():
            if key == "dashcards" and value is not None:
                dashboard["dashcards"] = self._replace_dashcards(dashboard, value)
            elif value is not None:
                dashboard[key] = value
        dashboard["updated_at"] = _now()
        return 200, self._dashboard_out(dashboard)

    def _replace_dashcards(
        self, dashboard: dict[str, Any], wanted: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Metabase's rule: the array is the whole set; omitted dashcards are deleted,
        negative ids are new ones."""
        ids = [dc["id"] for dc in wanted]
        if len(ids) != len(set(ids)):
            raise KeyError("dashcard ids must be unique")
        existing = {dc["id"]: dc for dc in dashboard["dashcards"]}
        result = []
        for dc in wanted:
            if dc["id"] >= 0 and dc["id"] not in existing:
                raise KeyError(f"dashcard {dc['id']}")
            if dc.get("card_id") not in self.cards:
                raise KeyError(f"card {dc.get('card_id')}")
            row = dict(existing.get(dc["id"], {}))
            row |= dc
            if dc["id"] < 0:
                row["id"] = next(self._ids)
                row["created_at"] = _now()
            row["dashboard_id"] = dashboard["id"]
            row["entity_id"] = row.get("entity_id") or secrets.token_urlsafe(16)[:21]
            result.append(row)
        return result

    def _dashboard_out(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        answer = copy.deepcopy(dashboard)
        for dc in answer["dashcards"]:
            dc["card"] = self._card_out(self.cards[dc["card_id"]])
        return answer

    # -- public pages and queries -------------------------------------------------------

    def _public(self, rest: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        if not self.settings.get("enable-public-sharing"):
            return 404, "Not found."
        if rest[:1] == ["dashboard"]:
            dashboard = next(
                (
                    d
                    for d in self.dashboards.values()
                    if d["public_uuid"] == rest[1] and not d["archived"]
                ),
                None,
            )
            if dashboard is None:
                return 404, "Not found."
            if len(rest) == 2:
                out = self._dashboard_out(dashboard)
                return 200, {
                    k: out[k] for k in ("id", "name", "description", "parameters", "dashcards")
                }
            dashcard = next(dc for dc in dashboard["dashcards"] if dc["id"] == int(rest[3]))
            values = _parameter_values(dashcard, query.get("parameters", ["[]"])[-1])
            return self._run(self.cards[dashcard["card_id"]], values)
        return 404, "Not found."

    def _run(self, card: dict[str, Any], values: dict[str, Any]) -> tuple[int, Any]:
        database = self.databases[card["database_id"]]
        stage = card["dataset_query"]["stages"][0]
        try:
            values = {
                **values,
                **{
                    name: _FieldFilter(self._field_by_id(tag["dimension"][1]), values.get(name))
                    for name, tag in (stage.get("template-tags") or {}).items()
                    if tag.get("type") == "dimension"
                },
            }
        except ValueError as exc:
            return 400, {"message": str(exc)}
        sql = _substitute(stage["native"], values)
        try:
            con = self._open(database)
            cursor = con.execute(sql)
            rows = cursor.fetchall()
            description = cursor.description or []
        except duckdb.Error as exc:
            return 202, {"status": "failed", "error": str(exc), "data": {"rows": [], "cols": []}}
        cols = [
            {
                "name": d[0],
                "display_name": d[0],
                "base_type": _DUCKDB_TYPES.get(str(d[1]), "type/*"),
            }
            for d in description
        ]
        return 202, {
            "status": "completed",
            "row_count": len(rows),
            "data": {"rows": [[_jsonable(v) for v in row] for row in rows], "cols": cols},
        }


def _to_mbql5(query: dict[str, Any]) -> dict[str, Any]:
    """Store a legacy native query the way Metabase 0.57+ does (MBQL 5 stages)."""
    if "stages" in query:
        return copy.deepcopy(query)
    native = query.get("native") or {}
    stage: dict[str, Any] = {"lib/type": "mbql.stage/native", "native": native.get("query", "")}
    if native.get("template-tags"):
        stage["template-tags"] = copy.deepcopy(native["template-tags"])
    return {
        "lib/type": "mbql/query",
        "stages": [stage],
        "database": query.get("database"),
        "lib.convert/converted?": True,
    }


def _uuid_from(text: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-metabase:{text}"))


def _parameter_values(dashcard: dict[str, Any], raw: str) -> dict[str, Any]:
    """Template-tag values of a public dashcard request (``parameters=[{id, value}]``)."""
    by_id = {p["id"]: p.get("value") for p in json.loads(raw or "[]")}
    values = {}
    for mapping in dashcard.get("parameter_mappings") or []:
        value = by_id.get(mapping["parameter_id"])
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            values[mapping["target"][1][1]] = value
    return values


_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_TAG = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class _FieldFilter:
    """A field filter's condition, as Metabase writes it: on the column named in full
    (schema, table, column: no alias), ``1 = 1`` without a value. Date values only."""

    def __init__(self, field: dict[str, Any] | None, value: Any) -> None:
        if field is None:
            raise ValueError("the field filter's field does not exist")
        self.column = '"{schema}"."{table}"."{name}"'.format(**field)
        self.value = value[0] if isinstance(value, list) and value else value
        if self.value is not None and not _DATE_VALUE.match(str(self.value)):
            raise ValueError(f"{self.value!r} is not a date filter value")

    def has_value(self) -> bool:
        return self.value is not None

    def sql(self, today: date | None = None) -> str:
        if self.value is None:
            return "1 = 1"
        start, end = _date_bounds(str(self.value), today or date.today())
        parts = [f"{self.column} >= date '{start}'" if start else "",
                 f"{self.column} < date '{end}'" if end else ""]  # fmt: skip
        return " and ".join(p for p in parts if p) or "1 = 1"


def _date_bounds(value: str, today: date) -> tuple[date | None, date | None]:
    """A date filter value as [start, end) days (either open)."""
    day = date.fromisoformat
    if ("~" in value and not value.endswith("~")) or value.startswith("~"):
        low, _, high = value.partition("~")
        return (day(low) if low else None, day(high) + timedelta(days=1) if high else None)
    if re.fullmatch(_DAY, value.rstrip("~")):
        start = day(value.rstrip("~"))
        return start, None if value.endswith("~") else start + timedelta(days=1)
    if re.fullmatch(r"\d{4}-\d{2}", value):
        start = day(value + "-01")
        return start, (start + timedelta(days=32)).replace(day=1)
    quarter = re.fullmatch(r"Q([1-4])-(\d{4})", value)
    if quarter:
        start = date(int(quarter.group(2)), 3 * int(quarter.group(1)) - 2, 1)
        return start, (start + timedelta(days=95)).replace(day=1)
    relative = re.fullmatch(r"past(\d+)(days|months|quarters|years)(~?)", value)
    if relative:
        # Metabase's time interval: the N whole units before the current one (days, or
        # calendar months, quarters, years); "~" adds the current unit, whole
        n, unit, current = int(relative.group(1)), relative.group(2), relative.group(3)
        if unit == "days":
            return today - timedelta(days=n), today + timedelta(days=1 if current else 0)
        step = {"months": 1, "quarters": 3, "years": 12}[unit]
        month = today.year * 12 + today.month - 1
        month -= month % step  # the current unit's first month

        def first(m: int) -> date:
            return date(m // 12, m % 12 + 1, 1)

        return first(month - n * step), first(month + step if current else month)
    if value == "thisyear":
        return today.replace(month=1, day=1), today.replace(year=today.year + 1, month=1, day=1)
    raise ValueError(f"{value!r}: a date filter value this fake does not evaluate")


def _substitute(sql: str, values: dict[str, Any]) -> str:
    """Metabase's native-query rules: an optional clause stays only when its tags have
    values; a tag becomes a literal, a field filter its condition."""

    def literal(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if isinstance(value, _FieldFilter):
            return value.sql()
        if value is None:
            return "null"
        if isinstance(value, int | float):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    def optional(match: re.Match[str]) -> str:
        body = match.group(1)
        tags = _TAG.findall(body)
        given = [values.get(t) for t in tags]
        kept = all(v is not None and (not isinstance(v, _FieldFilter) or v.has_value())
                   for v in given)  # fmt: skip
        return body if kept else ""

    return _TAG.sub(literal, _OPTIONAL.sub(optional, sql))


def _jsonable(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _handler(fake: FakeMetabase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._reply(400, {"message": "the body is not JSON"})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = fake.handle(self.command, self.path, headers, body)
            time.sleep(fake.lateness(self.command, self.path))
            self._reply(status, answer)

        def _reply(self, status: int, answer: Any) -> None:
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            if answer is not None:
                kind = "application/json" if not isinstance(answer, str) else "text/plain"
                if isinstance(answer, Page):
                    kind = "text/html; charset=utf-8"
                self.send_header("Content-Type", kind)
                if isinstance(answer, str):
                    data = answer.encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 (http.server names)

        def log_message(self, *args: object) -> None:  # quiet
            pass

    return Handler
