"""The XO game service's HTTP API (docs/xogame.md): login, games, per-game tokens.

Routes (JSON bodies; every error is FastAPI's shape, never a traceback):

- ``POST /auth/login`` (also ``GET``: fields from the form or the query string),
  form ``username``, ``password`` (``grant_type`` optional, ``password`` if
  given): 200 ``{"access_token", "token_type": "Bearer", "type": "Bearer"}``;
  401 ``{"detail": "Incorrect username or password"}``; 422 missing fields;
  429 ``{"detail"}`` with ``Retry-After`` (seconds) past the login limit.
- ``POST /auth/signup``, the same form: 200 as login plus ``"uuid"``; 409 name
  taken; 422 invalid name or password; 429 as login.
- With ``Authorization: Bearer <login token>`` (else 401 ``{"detail": "Not
  authenticated"}`` + ``WWW-Authenticate: Bearer``): ``GET /players/me``
  (``/player/me``) ``{"uuid"}``; ``POST /game/`` (``/game``) ``{"game_uuid",
  "uuid"}``; ``GET /game/awaiting`` ``{"games": [{"uuid", "player_created",
  "date_created"}]}`` (newest first, at most 10); ``POST /game/connect``
  ``{"uuid"}``: ``null``, 404 ``Game not found``, 409 (own game, already
  joined); ``GET /auth/intratoken/{game}`` (``/intratoken/{game}``):
  ``{"access_token", "token_type": "Intra", "type": "Intra"}``, 422 not a
  UUID, 404, 403 not a player; ``GET /game/fetch/{game}``: the events, 404
  ``Game not found`` (also for a game without events: no opponent yet).
- ``GET /healthcheck``: ``"OK"`` (no token); ``GET /xo/``: the page ``static/xo/``.
- A wrong method on these paths: 405 ``{"detail": "Method Not Allowed"}``; a
  body over 64 KiB or too slow (the app's limits): 413 ``{"detail": "Request
  Entity Too Large"}``, 408 ``{"detail": "Request Timeout"}``.
- The database unavailable: 503 ``{"detail"}``.

The match task registry (:class:`~duorelay.referee.matches.Matches`) of XO
games and the token key are made by :meth:`XoService.run`, a task of the
serving nursery; requests wait for it. The websocket side:
:mod:`duorelay.services.xo_ws`; the OpenAPI document: :mod:`duorelay.services.xo_docs`.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import trio
from pydantic import ValidationError
from quart import Quart, Response, request, send_from_directory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.http import HTTP_STATUS_CODES

from duorelay.core.backplane import Backplane
from duorelay.protocols import xogame as wire
from duorelay.referee.accounts import LoginRefused
from duorelay.referee.matches import Decision, Matches, Refused
from duorelay.referee.xo import ALREADY_JOINED, OWN_GAME, BadToken, Join, Tokens, XoRules
from duorelay.services import xo_docs
from duorelay.services.referee_store import Referee, RefereeStore, StoreUnavailable
from duorelay.settings import Settings
from duorelay.store import accounts as account_queries
from duorelay.store import xo as queries
from duorelay.store.accounts import Account
from duorelay.store.gateway import StoreClosed

log = logging.getLogger("duorelay")
T = TypeVar("T")

SECRET_NAME = "xo_jwt"
"""The ``secrets`` row of the generated JWT key (``DUORELAY_JWT_SECRET`` unset)."""
NOT_AUTHENTICATED = "Not authenticated"
BAD_LOGIN = "Incorrect username or password"
GAME_NOT_FOUND = "Game not found"
UNAVAILABLE = "the game service is unavailable: try again later"


class ApiError(Exception):
    """An error answer: ``status`` and ``detail`` (a string or FastAPI's list)."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def unauthenticated(detail: str = NOT_AUTHENTICATED) -> ApiError:
    """401 with ``WWW-Authenticate: Bearer``."""
    return ApiError(401, detail, {"WWW-Authenticate": "Bearer"})


def invalid(error: ValidationError, where: str) -> ApiError:
    """422 in FastAPI's shape: ``{"detail": [{"loc": [where, ...], "msg", "type"}]}``."""
    detail = [
        {"loc": [where, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in error.errors()
    ]
    return ApiError(422, detail)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _time(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite keeps no time zone: every time stored is UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _json_body(raw: str | bytes) -> Any:
    """A request body as JSON (any content type; UTF-8, -16 or -32), ``None``
    if empty; 422 ``json_invalid`` if it is not JSON: not UTF-8, or nested
    deeper than the recursion limit, too (else that is a 500)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        detail = [{"loc": ["body", 0], "msg": "JSON decode error", "type": "json_invalid"}]
        raise ApiError(422, detail) from None


async def _form_fields() -> MultiDict[str, str]:
    """The request's form fields (URL-encoded or multipart; files ignored).

    The app reads every body before routing (``DuoRelay._read_body``). Quart
    0.23 parses a multipart form by iterating the body, which yields nothing
    once it has been read whole (0.22 yields it): so a multipart body is
    parsed here from the bytes already read, with Quart's own parser and limits.
    """
    if request.mimetype != "multipart/form-data":
        return await request.form
    raw = await request.get_data(as_text=False)
    data = raw if isinstance(raw, bytes) else raw.encode()

    async def once() -> AsyncIterator[bytes]:
        yield data

    parser = request.make_form_data_parser()
    body: Any = once()  # what the parser reads of Quart's Body: its chunks
    form, _ = await parser.parse(body, request.mimetype, len(data), request.mimetype_params)
    return form


def game_id(value: str) -> str:
    """A path's game id as 32 hex; 422 (``loc ["path", "game"]``) if not a UUID."""
    try:
        return xo_docs.GamePath.model_validate({"game": value}).game.hex
    except ValidationError as error:
        raise invalid(error, "path") from None


class XoService:
    """The XO API of one app: its routes, its matches and its tokens."""

    def __init__(self, settings: Settings, referee: RefereeStore, backplane: Backplane) -> None:
        self.settings = settings
        self.referee_store = referee
        self.backplane = backplane
        self.matches: Matches[Any, Any] | None = None
        self.tokens: Tokens | None = None
        self.published: Callable[[str, Decision[Any]], None] = lambda game, decision: None
        """Called with each decision this process made (after its listeners):
        :mod:`duorelay.services.xo_ws` tells the other processes."""
        self._ready = trio.Event()

    def install(self, app: Quart) -> None:
        """Add the routes, the error handlers and the OpenAPI document to ``app``."""
        rules: list[tuple[str, Callable[..., Any], list[str]]] = [
            ("/auth/login", self.login, ["GET", "POST"]),
            ("/auth/signup", self.signup, ["POST"]),
            ("/players/me", self.me, ["GET"]),
            ("/player/me", self.me, ["GET"]),
            ("/game/", self.create, ["POST"]),
            ("/game", self.create, ["POST"]),
            ("/game/awaiting", self.awaiting, ["GET"]),
            ("/game/connect", self.connect, ["POST"]),
            ("/auth/intratoken/<game>", self.intratoken, ["GET"]),
            ("/intratoken/<game>", self.intratoken, ["GET"]),
            ("/game/fetch/<game>", self.fetch, ["GET"]),
            ("/healthcheck", self.healthcheck, ["GET"]),
        ]
        for number, (path, view, methods) in enumerate(rules):
            app.add_url_rule(
                path, f"xo_{view.__name__}_{number}", xo_docs.documented(view), methods=methods
            )
        app.add_url_rule("/xo/", "xo_page_index", self.page)
        app.register_error_handler(ApiError, self._error)
        app.register_error_handler(MethodNotAllowed, self._not_allowed)
        app.after_request(self._json_refusals)
        xo_docs.install(app)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the matches and the token key once the store is open (without
        holding up serving), then run the match tasks until cancelled."""
        task_status.started()
        try:
            try:
                referee = await self.referee_store.get()
                key = self.settings.jwt_secret
                if key is None:
                    made = secrets.token_urlsafe(48)
                    key = await referee.store.run(
                        lambda c: account_queries.secret(c, SECRET_NAME, made)
                    )
            except (StoreUnavailable, StoreClosed, SQLAlchemyError) as error:
                log.error("xo: game service unavailable: %s", str(error).splitlines()[0])
                return
            self.tokens = Tokens(key, self.settings.token_lifetime)
            self.matches = Matches(referee.store, XoRules(), "xo", self.settings.match_linger)
            async with trio.open_nursery() as nursery:
                await nursery.start(self.matches.run)
                self._ready.set()
        finally:
            self.matches = None
            self._ready.set()

    async def ready(self) -> tuple[Referee, Matches[Any, Any], Tokens]:
        """The store, matches and tokens; :class:`ApiError` 503 if unavailable."""
        await self._ready.wait()
        try:
            referee = await self.referee_store.get()
        except StoreUnavailable:
            raise ApiError(503, UNAVAILABLE) from None
        if self.matches is None or self.tokens is None:
            raise ApiError(503, UNAVAILABLE)
        return referee, self.matches, self.tokens

    async def query(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in the store; 503 if the database fails."""
        referee, _, _ = await self.ready()
        try:
            return await referee.store.run(fn)
        except (StoreClosed, SQLAlchemyError) as error:
            log.warning("xo: store error %s", str(error).splitlines()[0])
            raise ApiError(503, UNAVAILABLE) from None

    async def _error(self, error: ApiError) -> Response:
        response = _json({"detail": error.detail}, error.status)
        response.headers.update(error.headers)
        return response

    async def _not_allowed(self, error: MethodNotAllowed) -> Response:
        if not xo_docs.is_api_path(request.path):
            return error.get_response()  # type: ignore[return-value]
        return _json({"detail": "Method Not Allowed"}, 405)

    async def _json_refusals(self, response: Response) -> Response:
        """The app's plain-text 408 and 413 (a body too slow or too large, refused
        before any route) in this API's shape, on its paths."""
        if response.status_code in (408, 413) and xo_docs.is_api_path(request.path):
            response.set_data(json.dumps({"detail": HTTP_STATUS_CODES[response.status_code]}))
            response.content_type = "application/json"
        return response

    async def user(self) -> Account:
        """The account of the request's login token; 401 otherwise."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated()
        _, _, tokens = await self.ready()
        try:
            name = tokens.user(token.strip())
        except BadToken:
            raise unauthenticated() from None
        account = await self.query(lambda c: account_queries.account_by_name(c, name))
        if account is None:
            raise unauthenticated()
        return account

    async def _form(self) -> xo_docs.LoginForm:
        fields: dict[str, Any] = dict((await _form_fields()).items())
        if not fields and request.method == "GET":
            fields = dict(request.args.items())
        try:
            return xo_docs.LoginForm.model_validate(fields)
        except ValidationError as error:
            raise invalid(error, "body") from None

    def _refused(self, refused: LoginRefused) -> ApiError:
        if refused.retry_after is not None:
            retry = str(max(1, math.ceil(refused.retry_after)))
            return ApiError(429, refused.reason, {"Retry-After": retry})
        return unauthenticated(BAD_LOGIN)

    def _token_body(self, token: str, kind: str) -> dict[str, str]:
        return {"access_token": token, "token_type": kind, "type": kind}

    async def login(self) -> Response:
        """``POST /auth/login`` (and ``GET``): a login token."""
        form = await self._form()
        referee, _, tokens = await self.ready()
        address = request.remote_addr or "?"
        try:
            account = await referee.accounts.log_in(form.username, form.password, address)
        except LoginRefused as refused:
            raise self._refused(refused) from None
        except (StoreClosed, SQLAlchemyError):
            raise ApiError(503, UNAVAILABLE) from None
        return _json(self._token_body(tokens.login(account.name), "Bearer"))

    async def signup(self) -> Response:
        """``POST /auth/signup``: a new account and its login token."""
        form = await self._form()
        referee, _, tokens = await self.ready()
        address = request.remote_addr or "?"
        try:
            account = await referee.accounts.sign_up(form.username, form.password, address)
        except LoginRefused as refused:
            if refused.retry_after is not None:
                raise self._refused(refused) from None
            if refused.reason == "that name is taken":
                raise ApiError(409, refused.reason) from None
            field = "username" if refused.reason.startswith("a name") else "password"
            detail = [{"loc": ["body", field], "msg": refused.reason, "type": "value_error"}]
            raise ApiError(422, detail) from None
        except (StoreClosed, SQLAlchemyError):
            raise ApiError(503, UNAVAILABLE) from None
        body = self._token_body(tokens.login(account.name), "Bearer")
        return _json({**body, "uuid": wire.dashed(account.uuid)})

    async def me(self) -> Response:
        """``GET /players/me``: ``{"uuid"}`` of the caller."""
        account = await self.user()
        return _json({"uuid": wire.dashed(account.uuid)})

    async def create(self) -> Response:
        """``POST /game/``: a new game waiting for an opponent."""
        account = await self.user()
        created = await self.query(lambda c: queries.create_game(c, account))
        return _json({"game_uuid": wire.dashed(created), "uuid": wire.dashed(created)})

    async def awaiting(self) -> Response:
        """``GET /game/awaiting``: the games without an opponent, newest first."""
        await self.user()
        games = await self.query(queries.awaiting)
        return _json(
            {
                "games": [
                    {
                        "uuid": wire.dashed(game.id),
                        "player_created": wire.dashed(game.players[0]),
                        "date_created": _time(game.created_at),
                    }
                    for game in games
                ]
            }
        )

    async def connect(self) -> Response:
        """``POST /game/connect {"uuid"}``: join as the opponent; ``game_init``
        is stored and broadcast before the answer."""
        account = await self.user()
        body = _json_body(await request.get_data(as_text=False))
        try:
            game = xo_docs.ConnectBody.model_validate(body).uuid.hex
        except ValidationError as error:
            raise invalid(error, "body") from None
        _, matches, _ = await self.ready()
        done = trio.Event()
        result: list[Decision[Any] | Refused] = []

        def reply(outcome: Decision[Any] | Refused) -> None:
            result.append(outcome)
            if isinstance(outcome, Decision):
                self.published(game, outcome)
            done.set()

        try:
            if not await matches.submit(game, Join(account.uuid), reply):
                raise ApiError(404, GAME_NOT_FOUND)
        except (StoreClosed, SQLAlchemyError) as error:  # loading the game's state
            log.warning("xo: store error %s", str(error).splitlines()[0])
            raise ApiError(503, UNAVAILABLE) from None
        await done.wait()
        outcome = result[0]
        if isinstance(outcome, Refused):
            status = 409 if outcome.reason in (ALREADY_JOINED, OWN_GAME) else 503
            raise ApiError(status, outcome.reason)
        return _json(None)

    async def intratoken(self, game: str) -> Response:
        """``GET /auth/intratoken/{game}``: the caller's per-game token."""
        account = await self.user()
        game_hex = game_id(game)
        found = await self.query(lambda c: queries.game(c, game_hex))
        if found is None:
            raise ApiError(404, GAME_NOT_FOUND)
        if account.uuid not in found.players:
            raise ApiError(403, "Not a player of this game")
        _, _, tokens = await self.ready()
        return _json(self._token_body(tokens.intra(account.uuid, game_hex), "Intra"))

    async def fetch(self, game: str) -> Response:
        """``GET /game/fetch/{game}``: every event of the game, in order."""
        await self.user()
        game_hex = game_id(game)
        found = await self.query(lambda c: queries.events(c, game_hex))
        if not found:
            raise ApiError(404, GAME_NOT_FOUND)
        return _json([wire.event(game_hex, seq, kind, data) for seq, kind, data in found])

    async def page(self) -> Response:
        """``GET /xo/``: the XO page (``static/xo/index.html`` of the static folder)."""
        return await send_from_directory(self.settings.static_dir.resolve() / "xo", "index.html")

    async def healthcheck(self) -> Response:
        """``GET /healthcheck``: ``"OK"``."""
        return _json("OK")
