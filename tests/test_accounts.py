"""Accounts (referee/accounts.py) on a real SQLite store: sign-up, log-in,
the rate limits per address and per name, and the store's account queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import trio.testing

from duorelay.referee.accounts import Accounts, LoginLimit, LoginRefused, valid_name
from duorelay.store import accounts as queries
from duorelay.store.gateway import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'duorelay.db'}")
    await store.migrate()
    yield store
    store.close()


def test_names() -> None:
    assert valid_name("Alice_1") == "alice_1"
    for bad in ("al", "a" * 17, "al ice", "ålice", "", None, 7, "a" * 10_000):
        assert valid_name(bad) is None


async def test_sign_up_and_log_in(store: Store) -> None:
    accounts = Accounts(store, LoginLimit(rate=100, burst=100), profile="cheapest")
    alice = await accounts.sign_up("Alice", "secret", "10.0.0.1")
    assert alice.name == "alice" and not alice.temporary
    assert alice.password_hash is not None and alice.password_hash.startswith("$argon2id$")
    assert len(alice.uuid) == 32
    assert await accounts.log_in("ALICE", "secret", "10.0.0.1") == alice
    for name, password in (("alice", "wrong"), ("nobody", "secret")):
        with pytest.raises(LoginRefused) as refused:
            await accounts.log_in(name, password, "10.0.0.1")
        assert refused.value.reason == "wrong name or password"
    with pytest.raises(LoginRefused, match="taken"):
        await accounts.sign_up("alice", "other", "10.0.0.2")
    for name, password in (("a", "pw"), ("alice", ""), ("alice", "x" * 129)):
        with pytest.raises(LoginRefused):
            await accounts.log_in(name, password, "10.0.0.1")


async def test_attempts_are_limited_per_address_and_per_name(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    accounts = Accounts(store, LoginLimit(rate=1, burst=3), profile="cheapest")
    await accounts.sign_up("bob", "pw", "10.0.0.9")
    for _ in range(2):
        await accounts.log_in("bob", "pw", "10.0.0.1")
    with pytest.raises(LoginRefused) as refused:  # bob's name is out of tokens
        await accounts.log_in("bob", "pw", "10.0.0.2")
    assert refused.value.retry_after == 1
    for name in ("carol", "dave", "erin"):  # another address, other names
        with pytest.raises(LoginRefused, match="wrong name"):
            await accounts.log_in(name, "pw", "10.0.0.3")
    with pytest.raises(LoginRefused, match="too many"):  # that address is out of tokens
        await accounts.log_in("frank", "pw", "10.0.0.3")
    await trio.sleep(1)
    assert (await accounts.log_in("bob", "pw", "10.0.0.4")).name == "bob"


async def test_queries(store: Store) -> None:
    alice = await store.run(lambda c: queries.create_account(c, "alice", "h"))
    temp = await store.run(lambda c: queries.create_account(c, "guest", None))
    assert alice and temp and temp.temporary
    assert await store.run(lambda c: queries.create_account(c, "alice", "h")) is None
    assert await store.run(lambda c: queries.account_by_uuid(c, alice.uuid)) == alice
    assert await store.run(lambda c: queries.follow(c, alice.id, temp.id))
    assert not await store.run(lambda c: queries.follow(c, alice.id, temp.id))
    assert await store.run(lambda c: queries.friends_of(c, alice.id, "uttt")) == [("guest", 1000)]
    assert await store.run(lambda c: queries.unfollow(c, alice.id, temp.id))
    await store.run(lambda c: queries.set_rating(c, alice.id, "uttt", 1010))
    await store.run(lambda c: queries.set_rating(c, alice.id, "uttt", 1019))
    assert await store.run(lambda c: queries.top(c, "uttt")) == [("alice", 1019)]
    assert await store.run(lambda c: queries.rank(c, "uttt", 1000)) == 2
    session = await store.run(lambda c: queries.create_session(c, alice.id))
    recent = queries.now() - timedelta(days=20)
    assert await store.run(lambda c: queries.session_account(c, session, recent)) == alice
    assert await store.run(lambda c: queries.session_account(c, session, queries.now())) is None
    first = await store.run(lambda c: queries.secret(c, "jwt", "one"))
    assert (first, await store.run(lambda c: queries.secret(c, "jwt", "two"))) == ("one", "one")
