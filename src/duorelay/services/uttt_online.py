"""Who is online on the UTTT server: the live connections of each account in
this process (several tabs or devices), and pushes to all of them.

A push never waits: it goes into each connection's outbox with
:meth:`~duorelay.core.mailboxes.Outbox.push`; a connection whose outbox (and
its reserve) is full is closed with 4430 "too slow", like every other
receiver of the server that does not read; the pusher (a match task) and the
other connections go on. A connection still being greeted keeps its pushes
in ``pending`` (at most :data:`PENDING_LIMIT`, else 4430) and gets them after
the greeting, so the greeting's order holds; so does one answering a
``match_states_request`` (a state loaded from the store before a move is
never sent after that move's push).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from duorelay.core.limits import TokenBucket
from duorelay.core.session import Session
from duorelay.protocols import CloseCode
from duorelay.store.accounts import Account

PENDING_LIMIT = 64
"""Pushes that may wait for a connection still being greeted; past it: 4430."""
STATES_RATE = 1.0
"""``match_states_request`` a second one connection is served on average (each
reloads all the user's matches from the store); more get ``error``."""
STATES_BURST = 5
"""``match_states_request`` one connection is served at once above :data:`STATES_RATE`."""


@dataclass(eq=False)
class Client:
    """One logged-in connection: its ``session``, ``account`` and login ``session_id``;
    ``states`` limits its ``match_states_request``. ``pending`` holds pushes
    until the greeting (or a ``match_states_request``'s answer) is sent, else
    ``None``."""

    session: Session
    account: Account
    session_id: str
    pending: list[str] | None = field(default_factory=list)
    states: TokenBucket = field(
        default_factory=lambda: TokenBucket(STATES_RATE, STATES_BURST, 0.0)  # starts full
    )

    def greeted(self) -> None:
        """The greeting is sent: give it the pushes that waited, then push directly."""
        pending, self.pending = self.pending or [], None
        for frame in pending:
            push_to(self, frame)


def push_to(client: Client, frame: str) -> None:
    """Give ``frame`` to one connection (never waits; see the module docstring)."""
    if client.pending is not None:
        if len(client.pending) >= PENDING_LIMIT:
            client.session.close(CloseCode.TOO_SLOW, "too slow: too many pushes waiting")
        else:
            client.pending.append(frame)
        return
    try:
        client.session.outbox.push(frame)
    except trio.WouldBlock:
        client.session.close(CloseCode.TOO_SLOW, "too slow: the outbox is full")
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # the connection is ending


class Online:
    """The live connections by account id and by login session id."""

    def __init__(self) -> None:
        self._by_account: dict[int, set[Client]] = {}
        self._by_session: dict[str, int] = {}

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._by_account

    def __len__(self) -> int:
        return len(self._by_account)

    def session_open(self, session_id: str) -> bool:
        """Whether login session ``session_id`` has a live connection here."""
        return session_id in self._by_session

    def add(self, client: Client) -> None:
        """Count ``client`` in (synchronous)."""
        self._by_account.setdefault(client.account.id, set()).add(client)
        self._by_session[client.session_id] = self._by_session.get(client.session_id, 0) + 1

    def remove(self, client: Client) -> tuple[bool, bool]:
        """Count ``client`` out (synchronous, once per :meth:`add`); whether it was
        its account's last connection here, and its login session's last."""
        clients = self._by_account.get(client.account.id, set())
        clients.discard(client)
        last_of_account = not clients
        if last_of_account:
            self._by_account.pop(client.account.id, None)
        left = self._by_session.get(client.session_id, 1) - 1
        if left:
            self._by_session[client.session_id] = left
        else:
            self._by_session.pop(client.session_id, None)
        return last_of_account, not left

    def push(self, account_id: int, frame: str) -> None:
        """Give ``frame`` to every connection of the account (never waits)."""
        for client in list(self._by_account.get(account_id, ())):
            push_to(client, frame)
