"""The ultimate tic-tac-toe server (docs/uttt.md): websockets ``/uttt`` and ``/``.

Task tree (docs/architecture.md)::

    app serving nursery
     └─ UtttService.run              waits for the store, then owns:
         ├─ Matches.run              one task per match while a submission waits
         ├─ uttt_sweep.sweep         revokes overdue matches, expires sessions
         └─ UtttService._touch       marks a login session used when its
                                     last connection ends (its expiry)

    Session.run (one per connection)
     └─ UtttService.serve            reader: frames -> matchmaking | match inbox

A connection's first frame is ``login`` or ``reconnect`` (within
``join_timeout``, else close 4408; another message or bad input: 4400). A
failed login or reconnect is answered (``success`` false) and the connection
closed: 4403, or 4429 past the login rate limit (``login_rate`` and
``login_burst`` per address and per name). A database that is unavailable:
1013. Then, in this order: the response, ``elo_update``, ``friends_update``,
one ``match_update`` per open match and per finished one not yet seen.
Pushes for the user that happen meanwhile wait and follow.

Every push (a match changed, a rated result's ``elo_update``) goes to every
open connection of the user (:meth:`Outbox.push`; a connection whose outbox
is full is closed 4430, the match and the others are not disturbed). Bad
input gets ``error`` and the connection stays. A match's moves go through its
match task (:class:`~duorelay.referee.matches.Matches`), which stores them
before anyone is told. A restart loses nothing: everything is in the store.

Cancellation: a connection's handler is cancelled when its session closes
(it leaves the online registry, and the random queue with its user's last
connection, synchronously in its ``finally``); the service's tasks are
cancelled when the app stops (the serving nursery), the match tasks with
them; a command submitted after that closes its connection with 1001.
"""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import trio
from quart import Quart, Response, send_from_directory
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from duorelay.core.limits import Buckets
from duorelay.core.session import Handler, Session
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import uttt as wire
from duorelay.referee import uttt as referee_uttt
from duorelay.referee import uttt_accounts
from duorelay.referee.accounts import BUCKETS, LoginRefused, valid_name
from duorelay.referee.matches import Decision, Matches, Refused
from duorelay.referee.matchmaking import Matchmaking, MatchRefused
from duorelay.referee.uttt import GAME, NotAPlayer, UtttGame, UtttMatch
from duorelay.services.referee_store import Referee, RefereeStore, StoreUnavailable
from duorelay.services.uttt_online import Client, Online, push_to
from duorelay.services.uttt_sweep import SESSION_LIFETIME, sweep
from duorelay.settings import Settings
from duorelay.store import accounts as queries
from duorelay.store import matches as match_queries
from duorelay.store.accounts import Account, now
from duorelay.store.gateway import StoreClosed

log = logging.getLogger("duorelay")

PATHS = ("/uttt", "/")
"""Websocket paths of the UTTT server (``GET /`` stays the static index)."""
PAGE_DIR = "uttt"
HEX_ID = re.compile(r"[0-9a-f]{32}")
TEMPORARY_LIFETIME = timedelta(hours=1)
"""A temporary account's session expires this long after its last connection ends."""
MATCH_RATE = 0.5
"""``match_request`` a second one account is served on average (each may
create a match row and push it to the opponent); more are refused."""
MATCH_BURST = 10
"""``match_request`` one account is served at once above :data:`MATCH_RATE`."""


class UtttService:
    """The UTTT front-end of one app: routes, connections, pushes, sweeps."""

    def __init__(self, settings: Settings, referee: RefereeStore, static_dir: Path) -> None:
        self.settings = settings
        self.referee = referee
        self.static_dir = static_dir
        self.online = Online()
        """Live connections by account (several tabs or devices)."""
        self.game = UtttGame(online=self.online.__contains__)
        self.matches: Matches[UtttMatch, referee_uttt.Command] | None = None
        self.matchmaking: Matchmaking | None = None
        self._nursery: trio.Nursery | None = None
        self._ready = trio.Event()
        self._match_requests = Buckets(BUCKETS)
        """``match_request`` token buckets by account id (bounded)."""

    def install(self, app: Quart) -> None:
        """Add ``GET /uttt/`` (the page) to ``app``."""
        app.add_url_rule("/uttt/", "uttt_page", self._page)

    async def _page(self) -> Response:
        return await send_from_directory(self.static_dir / PAGE_DIR, "index.html")

    def websocket_handler(self, path: str, address: str) -> Handler | None:
        """The handler of websocket ``path`` (``/uttt``, ``/``) from ``address``, else ``None``."""
        return partial(self.serve, address=address) if path in PATHS else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wait for the store, then own the match tasks and the sweeper until
        cancelled (at shutdown). Started at once (serving does not wait)."""
        task_status.started()
        try:
            referee = await self.referee.get()
        except StoreUnavailable:
            return
        matches = Matches(referee.store, self.game, GAME, self.settings.match_linger)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(matches.run)
                self.matches = matches
                self.matchmaking = Matchmaking(referee.store)
                self._nursery = nursery
                self._ready.set()
                revoke_time = self.settings.uttt_revoke_time
                nursery.start_soon(sweep, revoke_time, referee.store, matches, self._revoked)
        finally:
            self._nursery = None

    def _spawn(self, fn: Any, *args: Any) -> None:
        """Start a short store write in the service's nursery; dropped once the
        service has stopped (shutdown)."""
        if self._nursery is not None:
            with contextlib.suppress(RuntimeError):  # the nursery is closing
                self._nursery.start_soon(fn, *args)

    # -- one connection -----------------------------------------------------------------

    async def serve(self, session: Session, address: str) -> None:
        """The handler of one connection (module docstring)."""
        first: wire.Login | wire.Reconnect | None = None
        with trio.move_on_after(self.settings.join_timeout):
            frame = await session.receive()
            try:
                message = wire.decode(frame)
            except wire.InvalidMessage as bad:
                raise ProtocolError(CloseCode.BAD_REQUEST, bad.msg) from None
            if not isinstance(message, wire.Login | wire.Reconnect):
                raise ProtocolError(
                    CloseCode.BAD_REQUEST, "the first message must be login or reconnect"
                )
            first = message
        if first is None:
            raise ProtocolError(
                CloseCode.TIMEOUT, f"no login within {self.settings.join_timeout:g} s"
            )
        try:
            referee = await self.referee.get()
        except StoreUnavailable:
            raise ProtocolError(CloseCode.TRY_AGAIN_LATER, "the database is unavailable") from None
        await self._ready.wait()
        client = await self._enter(session, referee, first, address)
        if client is None:
            return
        session.where = {"uttt": client.account.name}
        self._add(client)
        try:
            await self._greet(client, referee, first)
            while True:
                frame = await session.receive()
                try:
                    message = wire.decode(frame)
                except wire.InvalidMessage as bad:
                    await self._send(client, wire.Error(bad.msg))
                    continue
                await self._handle(client, referee, message)
        finally:
            self._remove(client)

    async def _enter(
        self, session: Session, referee: Referee, first: wire.Login | wire.Reconnect, address: str
    ) -> Client | None:
        """Log in or reconnect; ``None`` (answered, the connection closing) on failure."""
        store = referee.store
        if isinstance(first, wire.Reconnect):
            live = self.online.session_open(first.id)
            at = now()
            account = None
            if HEX_ID.fullmatch(first.id):
                account = await store.run(
                    lambda c: match_queries.resume_session(
                        c,
                        first.id,
                        at - SESSION_LIFETIME,
                        at - (SESSION_LIFETIME if live else TEMPORARY_LIFETIME),
                    )
                )
            if account is None:
                msg = "unknown or expired session"
                await session.outbox.send(
                    wire.encode(wire.ReconnectResponse(False, None, None, False, msg))
                )
                session.close(CloseCode.FORBIDDEN, msg, flush=True)
                return None
            return Client(session, account, first.id)
        try:
            account = await self._log_in(referee, first, address)
        except LoginRefused as refused:
            await session.outbox.send(
                wire.encode(wire.LoginResponse(False, None, False, refused.reason))
            )
            code = CloseCode.FORBIDDEN if refused.retry_after is None else CloseCode.TOO_MANY
            session.close(code, refused.reason, flush=True)
            return None
        session_id = await store.run(lambda c: uttt_accounts.start_session(c, account))
        return Client(session, account, session_id)

    async def _log_in(self, referee: Referee, login: wire.Login, address: str) -> Account:
        accounts, store = referee.accounts, referee.store
        name = valid_name(login.name)
        if name is None:
            raise LoginRefused("a name is 3 to 16 letters, digits, '_' or '-'")
        if login.pw == "":
            accounts.charge(address, name)
            account = await store.run(lambda c: queries.create_account(c, name, None))
            if account is None:
                raise LoginRefused("that name is taken")
            return account
        existing = await store.run(lambda c: queries.account_by_name(c, name))
        if existing is None:
            try:
                return await accounts.sign_up(name, login.pw, address)
            except LoginRefused as refused:
                # Another login registered the name meanwhile (two tabs, one
                # password): this one logs in; anything else stands.
                taken = await store.run(lambda c: queries.account_by_name(c, name))
                if refused.retry_after is not None or taken is None:
                    raise
        return await accounts.log_in(name, login.pw, address)

    async def _greet(self, client: Client, referee: Referee, first: wire.ClientMessage) -> None:
        """The exact greeting (module docstring), then the pushes that waited."""
        account = client.account
        registered = not account.temporary
        response: wire.ServerMessage
        if isinstance(first, wire.Reconnect):
            response = wire.ReconnectResponse(
                True, client.session_id, account.name, registered, f"welcome back, {account.name}"
            )
        else:
            kind = "" if registered else " (temporary account)"
            msg = f"logged in as {account.name}{kind}"
            response = wire.LoginResponse(True, client.session_id, registered, msg)
        await self._send(client, response)
        elo, friends = await referee.store.run(lambda c: uttt_accounts.profile(c, account))
        await self._send(client, elo)
        await self._send(client, friends)
        await self._send_matches(client, referee)
        client.greeted()

    async def _send_matches(self, client: Client, referee: Referee) -> None:
        account_id = client.account.id
        shown = await referee.store.run(lambda c: self._load_shown(c, account_id))
        for match_id, match in shown:
            await self._send(client, self._update(match_id, match))
        finished = [match_id for match_id, match in shown if match.state.result is not None]
        if finished:
            await referee.store.run(lambda c: match_queries.mark_seen(c, finished, account_id))

    def _load_shown(self, connection: Connection, account_id: int) -> list[tuple[str, UtttMatch]]:
        shown = []
        for match_id in match_queries.matches_to_show(connection, account_id, GAME):
            loaded = self.game.load(connection, match_id)
            if loaded is not None:
                shown.append((match_id, loaded[0]))
        return shown

    async def _handle(self, client: Client, referee: Referee, message: wire.ClientMessage) -> None:
        """Serve one message after the greeting."""
        match message:
            case wire.Login() | wire.Reconnect():
                await self._send(client, wire.Error("already logged in"))
            case wire.MatchRequest(player):
                await self._request_match(client, player)
            case wire.Move(match_id, sub_x, sub_y, x, y):
                command = referee_uttt.PlayMove(client.account.id, sub_x, sub_y, x, y, now())
                await self._submit(client, match_id, command, "move_response")
            case wire.EndMatch(match_id):
                ending = referee_uttt.EndMatch(client.account.id, now())
                await self._submit(client, match_id, ending)
            case wire.MatchStatesRequest():
                if not client.states.allow(trio.current_time()):
                    await self._send(
                        client, wire.Error("too many match_states_request: wait a second")
                    )
                    return
                # Pushes wait as during the greeting: a state loaded before a
                # move must not be sent after that move's push.
                client.pending = []
                try:
                    await self._send_matches(client, referee)
                finally:
                    client.greeted()
            case wire.FriendRequest(user) | wire.UnfriendRequest(user):
                await self._friends(client, referee, message, user)

    async def _request_match(self, client: Client, player: str | None) -> None:
        assert self.matchmaking is not None
        kind = "match_request_response"
        key = str(client.account.id)
        if not self._match_requests.charge(key, MATCH_RATE, MATCH_BURST, trio.current_time()):
            msg = "too many match requests: wait a few seconds"
            await self._send(client, wire.Response(kind, False, msg))
            return
        try:
            if player is None:
                match_id = await self.matchmaking.random(client.account)
            else:
                match_id = await self.matchmaking.named(client.account, player)
        except MatchRefused as refused:
            await self._send(client, wire.Response(kind, False, refused.reason))
            return
        if match_id is None:
            await self._send(client, wire.Response(kind, True, "waiting for an opponent"))
            return
        await self._send(client, wire.Response(kind, True, "the match has started"))
        await self._announce_new(match_id)

    async def _announce_new(self, match_id: str) -> None:
        referee = await self.referee.get()
        loaded = await referee.store.run(lambda c: self.game.load(c, match_id))
        if loaded is not None:
            match = loaded[0]
            frame = wire.encode(self._update(match_id, match))
            for account_id in match.row.account_ids:
                self.online.push(account_id, frame)

    async def _submit(
        self, client: Client, match_id: str, command: referee_uttt.Command, kind: str | None = None
    ) -> None:
        """Put ``command`` in the match's inbox; the refusal goes to ``client``
        as ``kind`` (a ``move_response``) or an ``error``, plus a fresh
        match_update when it plays in the match."""
        assert self.matches is not None

        def refuse(reason: str) -> str:
            if kind is None:
                return wire.encode(wire.Error(reason))
            return wire.encode(wire.Response(kind, False, reason))

        def reply(outcome: Decision[Any] | Refused) -> None:
            if isinstance(outcome, Decision):
                self._announce(match_id, outcome)
                return
            push_to(client, refuse(outcome.reason))
            live = self.matches.live(match_id) if self.matches is not None else None
            if not isinstance(outcome, NotAPlayer) and live is not None:
                push_to(client, wire.encode(self._update(match_id, live.state)))

        known = HEX_ID.fullmatch(match_id) is not None
        if known:
            try:
                known = await self.matches.submit(match_id, command, reply)
            except RuntimeError:  # Matches.run has ended: the server is stopping
                raise ProtocolError(CloseCode.GOING_AWAY, "server shutting down") from None
        if not known:
            await self.session_send(client, refuse("no such match"))

    def _announce(self, match_id: str, decision: Decision[UtttMatch]) -> None:
        """Tell both players (every connection) a decision; a rated result's
        elo_updates. Synchronous."""
        match = decision.state
        frame = wire.encode(self._update(match_id, match))
        for account_id in match.row.account_ids:
            self.online.push(account_id, frame)
        finished = decision.extra
        if not isinstance(finished, referee_uttt.Finished):
            return
        for account_id, value in finished.standings.items():
            self.online.push(account_id, wire.encode(referee_uttt.elo_update(value)))

    async def _friends(
        self, client: Client, referee: Referee, message: wire.ClientMessage, user: str
    ) -> None:
        follow = isinstance(message, wire.FriendRequest)
        kind = "friend_request_response" if follow else "unfriend_request_response"
        account = client.account
        if account.temporary:
            refusal: str | None = "a temporary account has no friends"
        else:
            refusal = await referee.store.run(
                lambda c: uttt_accounts.change_friend(c, account, user, follow)
            )
        await self._send(client, wire.Response(kind, refusal is None, refusal or "done"))
        if refusal is None:
            friends = await referee.store.run(
                lambda c: uttt_accounts.friends_update(c, account.id)
            )
            await self._send(client, friends)

    # -- pushes and connections ---------------------------------------------------------

    def _update(self, match_id: str, match: UtttMatch) -> wire.MatchUpdate:
        return referee_uttt.match_update(match_id, match, self.settings.uttt_revoke_time)

    async def _send(self, client: Client, message: wire.ServerMessage) -> None:
        """Send an answer to ``client`` (waits for room in its own outbox)."""
        await self.session_send(client, wire.encode(message))

    async def session_send(self, client: Client, frame: str) -> None:
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await client.session.outbox.send(frame)

    def _add(self, client: Client) -> None:
        self.online.add(client)

    def _remove(self, client: Client) -> None:
        """Synchronous: forget the connection; its user leaves the queue with the
        last one; a login session's last connection marks it used (its expiry)."""
        last_of_account, last_of_session = self.online.remove(client)
        if last_of_account and self.matchmaking is not None:
            self.matchmaking.leave(client.account.id)
        if last_of_session:
            self._spawn(self._touch, client.session_id)

    async def _touch(self, session_id: str) -> None:
        try:
            referee = await self.referee.get()
            await referee.store.run(lambda c: queries.touch_session(c, session_id))
        except (StoreUnavailable, StoreClosed, SQLAlchemyError) as error:
            log.warning("uttt: could not mark session used: %s", error)

    def _revoked(self, match_id: str, outcome: Decision[Any] | Refused) -> None:
        if isinstance(outcome, Decision):
            log.info("uttt: match %s revoked", match_id)
            self._announce(match_id, outcome)
