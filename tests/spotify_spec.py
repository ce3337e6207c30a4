"""Validate HTTP responses against Spotify's OpenAPI spec (sonallux's corrected copy).

Spotify removed some fields for development-mode apps in 2026 that the spec still lists as
required (album ``label``, ``popularity``, ``genres``, ``available_markets``); the spec marks
them ``deprecated``. A 2026 development-mode response omits them, so they are dropped from
``required`` before validating; everything else is checked as published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from conftest import SHARED

SPEC = SHARED / "specs" / "spotify" / "sonallux-fixed-spotify-open-api.yml"


def _is_deprecated(prop: Any) -> bool:
    return isinstance(prop, dict) and bool(
        prop.get("deprecated")
        or any(isinstance(p, dict) and p.get("deprecated") for p in prop.get("allOf", []))
    )


def _drop_deprecated_required(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("required"), list):
            parts = [node, *[p for p in node.get("allOf", []) if isinstance(p, dict)]]
            deprecated = {
                name
                for part in parts
                for name, prop in (part.get("properties") or {}).items()
                if _is_deprecated(prop)
            }
            node["required"] = [name for name in node["required"] if name not in deprecated]
            if not node["required"]:
                del node["required"]
        for value in node.values():
            _drop_deprecated_required(value)
    elif isinstance(node, list):
        for value in node:
            _drop_deprecated_required(value)


@cache
def spotify_openapi() -> OpenAPI:
    spec = yaml.safe_load(Path(SPEC).read_text())
    _drop_deprecated_required(spec)
    return OpenAPI.from_dict(spec)


@dataclass
class _Request:
    path: str
    query: dict[str, str]
    method: str = "get"
    host_url: str = "https://api.spotify.com"
    content_type: str = "application/json"
    body: bytes | None = None
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(self.query), header=Headers({"Authorization": "Bearer x"})
        )

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


@dataclass
class _Response:
    status_code: int
    data: bytes
    headers: Headers
    content_type: str


def validate(response: httpx.Response) -> None:
    """Raise if ``response`` (from the fake's /v1) breaks the published spec."""
    url = response.request.url
    request = _Request(path=url.path, query=dict(parse_qsl(url.query.decode())))
    spotify_openapi().validate_response(
        request,
        _Response(
            status_code=response.status_code,
            data=response.content,
            headers=Headers(dict(response.headers)),
            content_type=response.headers.get("content-type", "application/json").split(";")[0],
        ),
    )
