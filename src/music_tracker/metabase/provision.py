"""Make a Metabase instance match the dashboard definitions, idempotently.

One run: wait for Metabase, first-user setup on a new instance (else log in), the settings
public sharing needs, the DuckDB database on the newest serving copy (read-only, memory
limit), its sync, descriptions / keys / semantic types from the dbt project (dbt-metabase),
a collection, one native-SQL card per definition card, one dashboard per definition with
layout, filters and their wiring, and a public link per dashboard, written to
``public-links.json`` and ``public-links.caddy`` in the data folder.

Identity, so that a second run changes nothing and nothing is duplicated: a card is found
by its ``entity_id``, derived from the dashboard file and the card name (a renamed title
updates the card in place); a dashboard by its name inside the collection. What the
definitions no longer hold is archived and its public link removed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from music_tracker.metabase.client import MetabaseClient, MetabaseError
from music_tracker.metabase.embed import write_embeds, write_links
from music_tracker.metabase.from_copy import filter_defaults, open_copy, result_columns
from music_tracker.metabase.handoff import (
    SITE_NAME,
    current_copy,
    ensure_database,
)
from music_tracker.metabase.periods import (
    PERIOD_COLUMN,
    PERIOD_TABLE,
    PERIOD_TYPE,
    period_default,
    period_filters,
    period_sql,
)
from music_tracker.metabase.visualization import (
    DISPLAY,
    click_to_artist,
    description,
    visualization,
)
from music_tracker.reporting.definitions import (
    Card,
    Dashboard,
    Filter,
    load_dashboards,
)
from music_tracker.settings import Settings
from music_tracker.transform import write_manifest

log = logging.getLogger(__name__)

SYNC_POLL_S = 1.0


@dataclass
class ProvisionResult:
    url: str
    set_up: bool
    database_id: int
    collection_id: int
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    unchanged: int = 0
    metadata: str = ""
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    links_file: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.archived)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "set_up": self.set_up,
            "database_id": self.database_id,
            "collection_id": self.collection_id,
            "created": self.created,
            "updated": self.updated,
            "archived": self.archived,
            "unchanged": self.unchanged,
            "metadata": self.metadata,
            "public_links": self.links,
            "links_file": str(self.links_file) if self.links_file else None,
        }


# -- stable identities -----------------------------------------------------------------------


def entity_id(*parts: str) -> str:
    """A 21-character Metabase entity id derived from ``parts`` (same input, same id)."""
    digest = hashlib.sha256("/".join(("music-tracker", *parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:21]


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "music-tracker:" + "/".join(parts)))


def _parameter_id(dashboard: Dashboard, flt: Filter) -> str:
    return hashlib.sha256(f"{dashboard.slug}/{flt.name}".encode()).hexdigest()[:8]


# -- the database ----------------------------------------------------------------------------


def _sync_state(mb: MetabaseClient, database_id: int) -> tuple[Any, set[str], Any]:
    """(sync status, the ``dw`` tables Metabase has seen, the database file)."""
    database = mb.call("GET", f"/api/database/{database_id}", include="tables")
    seen = {
        t.get("name")
        for t in database.get("tables") or []
        if t.get("schema") == "dw" and t.get("active", True)
    }
    file = (database.get("details") or {}).get("database_file")
    return database.get("initial_sync_status"), seen, file


def _synced(mb: MetabaseClient, database_id: int, tables: set[str]) -> bool:
    """Metabase's last sync of the database is complete and saw every ``dw`` table."""
    status, seen, _ = _sync_state(mb, database_id)
    return status == "complete" and tables <= seen


def _wait_for_sync(
    mb: MetabaseClient,
    settings: Settings,
    database_id: int,
    tables: set[str],
    *,
    sleep: Callable[[float], None],
) -> None:
    """Until Metabase has synced every ``dw`` table of the serving copy."""
    deadline = time.monotonic() + settings.metabase_wait_s
    while True:
        status, seen, file = _sync_state(mb, database_id)
        if status == "complete" and tables <= seen:
            return
        if status == "aborted" or time.monotonic() >= deadline:
            missing = ", ".join(sorted(tables - seen)[:5]) or "none"
            raise MetabaseError(
                f"Metabase could not sync {file} (sync status {status}; tables not seen: "
                f"{missing}). Check that the data folder's serving/ is mounted at "
                f"{settings.metabase_serving_dir} in the Metabase container "
                "(MUSIC_TRACKER_METABASE_SERVING_DIR) and readable by its user, and the "
                "Metabase log; then run `music-tracker metabase provision` again"
            )
        sleep(SYNC_POLL_S)


def _field_id(mb: MetabaseClient, database_id: int, schema: str, table: str, column: str) -> int:
    """The id Metabase gave a column of the synced serving copy."""
    for found in mb.call("GET", f"/api/database/{database_id}/metadata").get("tables") or []:
        if (found.get("schema"), found.get("name")) == (schema, table):
            for fld in found.get("fields") or []:
                if fld.get("name") == column:
                    return int(fld["id"])
    raise MetabaseError(
        f"Metabase's sync has no column {schema}.{table}.{column}: run `music-tracker "
        "transform`, `publish` and `metabase provision` again"
    )


def _push_dbt_metadata(mb: MetabaseClient, settings: Settings, manifest: Path | None) -> str:
    """Descriptions, keys (from dbt relationship tests) and semantic types into Metabase's
    data model, with dbt-metabase. The DuckDB driver reports no foreign keys itself."""
    if manifest is None or not manifest.is_file():
        return "skipped: no dbt manifest yet (run `music-tracker transform` first)"
    from dbtmetabase import DbtMetabase, Filter
    from dbtmetabase import _models as dbtmetabase_models

    # dbt-metabase sleeps 5 s before looking at a sync it started; ours is already done
    dbtmetabase_models._SYNC_PERIOD = 0
    # its INFO lines name every table and field it touches; its warning about session ids
    # concerns its own login, which it does not need here (ours is reused)
    logging.getLogger("dbtmetabase").setLevel(logging.WARNING)
    logging.getLogger("dbtmetabase.metabase").addFilter(
        lambda record: "session ID is deprecated" not in record.getMessage()
    )
    key = settings.metabase_api_key.get_secret_value()
    try:
        exporter = DbtMetabase(
            manifest_path=manifest,
            metabase_url=mb.url,
            metabase_api_key=key or None,
            metabase_session_id=None if key else mb.session_id,
            http_timeout=int(settings.http_timeout_s),
        )
        exporter.export_models(
            metabase_database=settings.metabase_database_name,
            schema_filter=Filter(include=["dw"]),
            skip_sources=True,
            sync_timeout=int(settings.metabase_wait_s),
        )
    except Exception as exc:  # dbt-metabase raises requests' and its own errors
        raise MetabaseError(f"dbt-metabase could not update the data model: {exc}") from None
    return "descriptions, keys and semantic types from the dbt project"


# -- cards -----------------------------------------------------------------------------------

# the artist page every artist links to, and its filter
ARTIST_DASHBOARD = "artist"
ARTIST_FILTER = "artist"


def _template_tags(
    dashboard: Dashboard, card: Card, eid: str, date_field: int | None
) -> dict[str, Any]:
    """A tag per filter the card uses; a period's is a field filter on the play's day
    (metabase/periods.py)."""
    tags: dict[str, Any] = {}
    periods = period_filters(dashboard) if date_field is not None else set()
    for name in sorted(card.tags()):
        flt = dashboard.filter(name)
        tags[name] = {"id": _uuid(eid, name), "name": name, "display-name": flt.label}
        if name in periods:
            tags[name] |= {
                "display-name": "Period",
                "type": "dimension",
                "dimension": ["field", date_field, {"base-type": "type/Date"}],
                "widget-type": PERIOD_TYPE,
            }
        else:
            tags[name]["type"] = "number" if flt.kind == "year" else "text"
    return tags


def _parameter_type(tag: dict[str, Any]) -> str:
    kind = tag["type"]
    return (
        tag["widget-type"]
        if kind == "dimension"
        else "number/="
        if kind == "number"
        else "category"
    )


def _target(tag: dict[str, Any]) -> list[Any]:
    return [
        "dimension" if tag["type"] == "dimension" else "variable",
        ["template-tag", tag["name"]],
    ]


def card_payload(
    dashboard: Dashboard,
    card: Card,
    *,
    database_id: int,
    collection_id: int,
    columns: list[str] | None = None,
    date_field: int | None = None,
) -> dict[str, Any]:
    """What POST/PUT /api/card sends for one definition card (a native SQL question);
    ``columns``: the names its SQL returns (titled for Metabase); ``date_field``: the id
    of ``dw.dim_date.date`` in Metabase, for the periods' field filters."""
    eid = entity_id("card", dashboard.source_file, card.name)
    tags = _template_tags(dashboard, card, eid, date_field)
    periods = period_filters(dashboard) if date_field is not None else set()
    return {
        "name": card.title,
        "description": description(card, all_time=bool(periods) and not periods & card.tags()),
        "type": "question",
        "display": DISPLAY[card.viz],
        "collection_id": collection_id,
        "entity_id": eid,
        "dataset_query": {
            "database": database_id,
            "type": "native",
            "native": {"query": period_sql(card, periods), "template-tags": tags},
        },
        "parameters": [
            {
                "id": tag["id"],
                "type": _parameter_type(tag),
                "target": _target(tag),
                "name": tag["display-name"],
                "slug": name,
            }
            for name, tag in tags.items()
        ],
        "visualization_settings": visualization(card, columns or []),
    }


def _native(query: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """(database, SQL, template tags) of a stored query in either format Metabase returns:
    the legacy one we send (MBQL 4) or the stages of MBQL 5 (Metabase 0.57 and later)."""
    if "stages" in query:
        stage = (query.get("stages") or [{}])[0]
        return query.get("database"), stage.get("native", ""), stage.get("template-tags") or {}
    native = query.get("native") or {}
    return query.get("database"), native.get("query", ""), native.get("template-tags") or {}


def _card_differs(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    if existing.get("archived"):
        return True
    for key in ("name", "description", "display", "collection_id", "visualization_settings"):
        if existing.get(key) != wanted.get(key):
            return True
    return _native(existing.get("dataset_query") or {}) != _native(wanted["dataset_query"])


# -- dashboards ------------------------------------------------------------------------------


def _dashboard_parameters(dashboard: Dashboard, defaults: dict[str, Any]) -> list[dict[str, Any]]:
    parameters = []
    periods = period_filters(dashboard)
    for flt in dashboard.filters:
        parameter: dict[str, Any] = {
            "id": _parameter_id(dashboard, flt),
            "name": flt.label,
            "slug": flt.name,
            "type": "number/=" if flt.kind == "year" else "string/=",
            "sectionId": "number" if flt.kind == "year" else "string",
        }
        if flt.name in periods:  # a date range (metabase/periods.py), all time by default
            parameter |= {"name": "Period", "type": PERIOD_TYPE, "sectionId": "date"}
            if (default := period_default(defaults.get(flt.name))) is not None:
                parameter["default"] = default
        elif defaults.get(flt.name) is not None:
            parameter["default"] = [defaults[flt.name]]
        if (values := defaults.get(f"{flt.name}:values")) is not None and flt.name not in periods:
            parameter["values_source_type"] = "static-list"
            parameter["values_source_config"] = {"values": values}
        if flt.kind == "rank":  # plays or time listened, one at a time
            parameter["isMultiSelect"] = False
        parameters.append(parameter)
    return parameters


def _dashcards(
    dashboard: Dashboard,
    card_ids: dict[str, int],
    existing: list[dict[str, Any]],
    artist_link: tuple[int | None, str | None] = (None, None),
) -> list[dict[str, Any]]:
    """The whole dashcards array: existing dashcards keep their ids, new ones are negative;
    artists link to the Artist dashboard (``artist_link``: its id and filter's id)."""
    by_card = {dc.get("card_id"): dc.get("id") for dc in existing}
    periods = period_filters(dashboard)
    cards: list[dict[str, Any]] = []
    for n, card in enumerate(dashboard.cards, start=1):
        card_id = card_ids[card.name]
        mappings = [
            {
                "parameter_id": _parameter_id(dashboard, dashboard.filter(tag)),
                "card_id": card_id,
                # a period's field filter is a dimension; other tags are plain variables
                "target": ["dimension" if tag in periods else "variable", ["template-tag", tag]],
            }
            for tag in sorted(card.tags())
        ]
        cards.append(
            {
                "id": by_card.get(card_id, -n),
                "card_id": card_id,
                "dashboard_tab_id": None,
                "row": card.layout.row,
                "col": card.layout.col,
                "size_x": card.layout.width,
                "size_y": card.layout.height,
                "parameter_mappings": mappings,
                "series": [],
                "visualization_settings": click_to_artist(card, *artist_link),
            }
        )
    return cards


def _layout_key(dashcards: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            dc.get("card_id"),
            dc.get("row"),
            dc.get("col"),
            dc.get("size_x"),
            dc.get("size_y"),
            json.dumps(
                sorted(
                    (m.get("parameter_id"), json.dumps(m.get("target")))
                    for m in dc.get("parameter_mappings") or []
                )
            ),
            json.dumps(dc.get("visualization_settings") or {}, sort_keys=True),
        )
        for dc in dashcards
    )


# -- the whole run ---------------------------------------------------------------------------


def provision_project(
    settings: Settings, *, on_step: Callable[[str], None] | None = None
) -> ProvisionResult:
    """The project's dashboards (``dashboards/*.yml``) and dbt descriptions into Metabase:
    what ``metabase provision`` runs. DefinitionError, TransformError or MetabaseError say
    what stopped it."""
    dashboards = load_dashboards()
    if on_step:
        on_step("dbt manifest")
    manifest = write_manifest(settings) if settings.data_dir.is_dir() else None
    return provision(settings, dashboards, manifest=manifest, on_step=on_step)


def provision(
    settings: Settings,
    dashboards: list[Dashboard],
    *,
    manifest: Path | None = None,
    on_step: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ProvisionResult:
    """Make Metabase match ``dashboards``; see the module's docstring."""
    step = on_step or (lambda _: None)
    copy = current_copy(settings.serving_dir)
    if copy is None:
        raise MetabaseError(
            f"no serving copy in {settings.serving_dir}: run `music-tracker publish` first"
        )
    with open_copy(copy, settings.duckdb_memory_limit) as con:
        tables = {
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'dw'"
            ).fetchall()
        }
    with MetabaseClient(settings, sleep=sleep) as mb:
        step(f"waiting for Metabase at {mb.url}")
        mb.wait_until_up(settings.metabase_wait_s)
        set_up = mb.sign_in(site_name=SITE_NAME)
        created: list[str] = []
        updated: list[str] = []
        archived: list[str] = []
        if set_up:
            created.append("first admin user")
        step("settings")
        _ensure_settings(mb, settings, updated)
        step(f"database on {copy.name}")
        database, repointed = ensure_database(mb, settings, copy, created)
        database_id = int(database["id"])
        if repointed and f"database {settings.metabase_database_name!r}" not in created:
            updated.append(f"database {settings.metabase_database_name!r} -> {copy.name}")
        if repointed or not _synced(mb, database_id, tables):  # a new file, or a failed sync
            mb.call("POST", f"/api/database/{database_id}/sync_schema")
        step("waiting for the sync")
        _wait_for_sync(mb, settings, database_id, tables, sleep=sleep)
        step("data model from dbt")
        metadata = _push_dbt_metadata(mb, settings, manifest)
        date_field = _field_id(mb, database_id, *PERIOD_TABLE, PERIOD_COLUMN)
        step("collection")
        collection_id = _ensure_collection(mb, settings, created)
        defaults = filter_defaults(copy, dashboards, settings.duckdb_memory_limit)
        columns = result_columns(copy, dashboards, settings.duckdb_memory_limit)
        result = ProvisionResult(
            url=mb.url,
            set_up=set_up,
            database_id=database_id,
            collection_id=collection_id,
            created=created,
            updated=updated,
            archived=archived,
            metadata=metadata,
        )
        _sync_content(mb, settings, dashboards, (defaults, columns, date_field), result, step)
    result.links_file = write_links(settings, result.links)
    rows = {d.slug: max((c.layout.row + c.layout.height for c in d.cards), default=0)
            for d in dashboards}  # fmt: skip
    write_embeds(settings.data_dir, result.links, rows)
    return result


def _ensure_settings(mb: MetabaseClient, settings: Settings, updated: list[str]) -> None:
    wanted: dict[str, Any] = {
        "enable-public-sharing": True,
        "anon-tracking-enabled": False,
        "site-name": SITE_NAME,
    }
    if settings.metabase_site_url:
        wanted["site-url"] = settings.metabase_site_url.rstrip("/")
    current = {s.get("key"): s.get("value") for s in mb.call("GET", "/api/setting/")}
    changes = {k: v for k, v in wanted.items() if current.get(k) != v}
    if changes:
        mb.call("PUT", "/api/setting/", changes)
        updated.extend(f"setting {key}" for key in changes)


def _ensure_collection(mb: MetabaseClient, settings: Settings, created: list[str]) -> int:
    for collection in mb.call("GET", "/api/collection/"):
        if (
            collection.get("name") == settings.metabase_collection
            and not collection.get("archived")
            and not collection.get("personal_owner_id")
            and collection.get("location", "/") == "/"
        ):
            return int(collection["id"])
    collection = mb.call(
        "POST",
        "/api/collection/",
        {
            "name": settings.metabase_collection,
            "description": "Dashboards provisioned from dashboards/*.yml by music-tracker.",
        },
    )
    created.append(f"collection {settings.metabase_collection!r}")
    return int(collection["id"])


def _sync_content(
    mb: MetabaseClient,
    settings: Settings,
    dashboards: list[Dashboard],
    read: tuple[dict[str, dict[str, Any]], dict[tuple[str, str], list[str]], int],
    result: ProvisionResult,
    step: Callable[[str], None],
) -> None:
    """Cards, dashboards and links; ``read``: the filters' defaults and the cards' columns
    from the serving copy, and the id of the periods' date column in Metabase."""
    defaults, columns, date_field = read
    collection_id = result.collection_id
    cards_by_eid = {
        c.get("entity_id"): c
        for f in ("all", "archived")
        for c in mb.call("GET", "/api/card/", f=f)
        if c.get("collection_id") == collection_id
    }
    items = mb.call("GET", f"/api/collection/{collection_id}/items")
    live_dashboards = {
        i["name"]: i for i in items if i.get("model") == "dashboard" and not i.get("archived")
    }
    # every dashboard exists before any is laid out: artists link to the Artist one by id
    fresh: set[str] = set()
    for dashboard in dashboards:
        if dashboard.title not in live_dashboards:
            made = mb.call(
                "POST",
                "/api/dashboard/",
                {
                    "name": dashboard.title,
                    "description": dashboard.description,
                    "collection_id": collection_id,
                    "parameters": _dashboard_parameters(dashboard, defaults[dashboard.slug]),
                },
            )
            live_dashboards[dashboard.title] = {"id": made["id"], "name": dashboard.title}
            fresh.add(dashboard.title)
            result.created.append(f"dashboard {dashboard.slug}")
    artist_link: tuple[int | None, str | None] = (None, None)
    artist = next((d for d in dashboards if d.slug == ARTIST_DASHBOARD), None)
    if artist is not None and any(f.name == ARTIST_FILTER for f in artist.filters):
        artist_link = (
            int(live_dashboards[artist.title]["id"]),
            _parameter_id(artist, artist.filter(ARTIST_FILTER)),
        )
    wanted_eids: set[str] = set()
    for dashboard in dashboards:
        step(dashboard.title)
        card_ids: dict[str, int] = {}
        for card in dashboard.cards:
            wanted = card_payload(
                dashboard,
                card,
                database_id=result.database_id,
                collection_id=collection_id,
                columns=columns[dashboard.slug, card.name],
                date_field=date_field,
            )
            eid = wanted["entity_id"]
            wanted_eids.add(eid)
            label = f"card {dashboard.slug}/{card.name}"
            existing = cards_by_eid.get(eid)
            if existing is None:
                try:
                    made = mb.call("POST", "/api/card/", wanted)
                except MetabaseError:
                    # a request whose answer came too late is sent again (sources/http.py)
                    # and refused: the first one stored the card, under its entity_id
                    found = _card_stored(mb, collection_id, eid)
                    if found is None:
                        raise
                    made = found
                card_ids[card.name] = int(made["id"])
                result.created.append(label)
                continue
            card_ids[card.name] = int(existing["id"])
            if _card_differs(existing, wanted):
                body = {k: v for k, v in wanted.items() if k != "entity_id"}
                mb.call("PUT", f"/api/card/{existing['id']}", {**body, "archived": False})
                result.updated.append(label)
            else:
                result.unchanged += 1
        _sync_dashboard(
            mb,
            settings,
            dashboard,
            card_ids,
            int(live_dashboards[dashboard.title]["id"]),
            defaults[dashboard.slug],
            result,
            fresh=dashboard.title in fresh,
            artist_link=artist_link,
        )
    wanted_names = {d.title for d in dashboards}
    for name, item in live_dashboards.items():
        if name not in wanted_names:
            mb.call("DELETE", f"/api/dashboard/{item['id']}/public_link")
            mb.call("PUT", f"/api/dashboard/{item['id']}", {"archived": True})
            result.archived.append(f"dashboard {name!r}")
    for eid, card in cards_by_eid.items():
        if eid not in wanted_eids and not card.get("archived"):
            mb.call("PUT", f"/api/card/{card['id']}", {"archived": True})
            result.archived.append(f"card {card.get('name')!r}")


def _card_stored(mb: MetabaseClient, collection_id: int, eid: str) -> dict[str, Any] | None:
    """The card of ``collection_id`` with entity id ``eid``, archived or not, if any."""
    for f in ("all", "archived"):
        for card in mb.call("GET", "/api/card/", f=f):
            if card.get("collection_id") == collection_id and card.get("entity_id") == eid:
                return dict(card)
    return None


def _sync_dashboard(
    mb: MetabaseClient,
    settings: Settings,
    dashboard: Dashboard,
    card_ids: dict[str, int],
    dashboard_id: int,
    defaults: dict[str, Any],
    result: ProvisionResult,
    *,
    fresh: bool,
    artist_link: tuple[int | None, str | None],
) -> None:
    label = f"dashboard {dashboard.slug}"
    parameters = _dashboard_parameters(dashboard, defaults)
    current = mb.call("GET", f"/api/dashboard/{dashboard_id}")
    dashcards = _dashcards(dashboard, card_ids, current.get("dashcards") or [], artist_link)
    if (
        _layout_key(current.get("dashcards") or []) != _layout_key(dashcards)
        or current.get("parameters") != parameters
        or current.get("description") != dashboard.description
        or current.get("width") != "full"
    ):
        mb.call(
            "PUT",
            f"/api/dashboard/{dashboard_id}",
            {
                "description": dashboard.description,
                "parameters": parameters,
                "width": "full",
                "dashcards": dashcards,
            },
        )
        if not fresh:
            result.updated.append(label)
    public = current.get("public_uuid")
    if not public:
        public = mb.call("POST", f"/api/dashboard/{dashboard_id}/public_link")["uuid"]
    site = (settings.metabase_site_url or settings.metabase_url).rstrip("/")
    result.links[dashboard.slug] = {
        "title": dashboard.title,
        "uuid": public,
        "url": f"{site}/public/dashboard/{public}",
    }
