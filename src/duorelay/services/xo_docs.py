"""The XO API's models (validation and documentation) and its OpenAPI pages.

quart-schema (:class:`~quart_schema.QuartSchema`) builds ``GET /openapi.json``
from the routes and the models attached here (:func:`documented`). ``GET /docs``
is duorelay's own page (``static/docs/``), which reads ``/openapi.json`` and
lists every path, method, parameter, request and response: no script from
another site, so it works under the default Content-Security-Policy (quart-schema's
Swagger UI, Redoc and Scalar pages load their scripts from CDNs and inline
code, which that policy refuses; they are not served).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field
from quart import Quart, Response, send_from_directory
from quart_schema import (
    DataSource,
    QuartSchema,
    document_request,
    document_response,
    security_scheme,
)


class LoginForm(BaseModel):
    """The OAuth2 password form of ``/auth/login`` and ``/auth/signup``."""

    username: str
    password: str
    grant_type: str | None = Field(default=None, pattern="^password$")


class ConnectBody(BaseModel):
    """``POST /game/connect``'s body."""

    uuid: UUID


class GamePath(BaseModel):
    """A game id in a path."""

    game: UUID


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    type: str


class SignedUp(TokenOut):
    uuid: UUID


class PlayerOut(BaseModel):
    uuid: UUID


class GameCreated(BaseModel):
    game_uuid: UUID
    uuid: UUID


class AwaitingGame(BaseModel):
    uuid: UUID
    player_created: UUID
    date_created: str


class AwaitingOut(BaseModel):
    games: list[AwaitingGame]


class EventOut(BaseModel):
    name: str
    game_uuid: UUID
    sequence: int
    player_uuid: UUID
    timestamp: str
    params: dict[str, Any]


class Events(BaseModel):
    events: list[EventOut]


class Detail(BaseModel):
    """An error: ``detail`` is a string, or FastAPI's list for 422."""

    detail: str | list[dict[str, Any]]


_BEARER = security_scheme([{"bearer": []}])

_DOCS: dict[str, list[Callable[[Any], Any]]] = {
    "login": [
        document_request(LoginForm, source=DataSource.FORM),
        document_response(TokenOut),
        document_response(Detail, 401),
        document_response(Detail, 422),
        document_response(Detail, 429),
    ],
    "signup": [
        document_request(LoginForm, source=DataSource.FORM),
        document_response(SignedUp),
        document_response(Detail, 409),
        document_response(Detail, 422),
        document_response(Detail, 429),
    ],
    "me": [_BEARER, document_response(PlayerOut), document_response(Detail, 401)],
    "create": [_BEARER, document_response(GameCreated), document_response(Detail, 401)],
    "awaiting": [_BEARER, document_response(AwaitingOut), document_response(Detail, 401)],
    "connect": [
        _BEARER,
        document_request(ConnectBody),
        document_response(Detail, 404),
        document_response(Detail, 409),
        document_response(Detail, 422),
    ],
    "intratoken": [
        _BEARER,
        document_response(TokenOut),
        document_response(Detail, 403),
        document_response(Detail, 404),
        document_response(Detail, 422),
    ],
    "fetch": [
        _BEARER,
        document_response(list[EventOut]),
        document_response(Detail, 404),
        document_response(Detail, 422),
    ],
    "healthcheck": [],
}

_API_PATH = re.compile(
    r"/auth/(login|signup)|/players?/me|/game/?|/game/(awaiting|connect)"
    r"|(/auth)?/intratoken/[^/]+|/game/fetch/[^/]+|/healthcheck"
)


def is_api_path(path: str) -> bool:
    """Whether ``path`` is one of the XO API's."""
    return _API_PATH.fullmatch(path) is not None


def documented(view: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A plain function calling ``view`` (a bound method), with its OpenAPI models."""

    async def endpoint(**kwargs: Any) -> Response:
        return await view(**kwargs)

    endpoint.__name__ = view.__name__
    endpoint.__doc__ = view.__doc__
    for decorate in _DOCS[view.__name__]:
        endpoint = decorate(endpoint)
    return endpoint


DOCS_DIR = Path(__file__).resolve().parent.parent / "static" / "docs"


def install(app: Quart) -> None:
    """``/openapi.json`` (quart-schema) and ``/docs`` (``static/docs/index.html``)."""
    QuartSchema(
        app,
        info={"title": "duorelay", "version": "0.1.0"},
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
    )

    async def docs() -> Response:
        return await send_from_directory(DOCS_DIR, "index.html")

    app.add_url_rule("/docs", "xo_docs_page", docs)
