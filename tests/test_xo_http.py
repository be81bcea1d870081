"""The XO API's answers to bad input (docs/xogame.md): exact statuses and bodies."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import create_engine, select

from conftest import ROOT, Server, StartServer
from duorelay.services.users import add_user
from duorelay.settings import Settings
from duorelay.store.schema import secrets
from xo_client import call, sign_up

SECRET = "k" * 64
NOT_AUTHENTICATED = {"detail": "Not authenticated"}
NOT_FOUND = {"detail": "Game not found"}
MISSING_GAME = "0" * 8 + "-0000-4000-8000-" + "0" * 12


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server(jwt_secret=SECRET)  # type: ignore[no-any-return]


def token(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def game_of(server: Server, creator: str) -> str:
    status, _, body = await call(server, "POST", "/game/", token=creator)
    assert status == 200
    return str(body["game_uuid"])


PROTECTED = [
    ("GET", "/players/me"),
    ("GET", "/player/me"),
    ("POST", "/game/"),
    ("POST", "/game"),
    ("GET", "/game/awaiting"),
    ("POST", "/game/connect"),
    ("GET", f"/auth/intratoken/{MISSING_GAME}"),
    ("GET", f"/intratoken/{MISSING_GAME}"),
    ("GET", f"/game/fetch/{MISSING_GAME}"),
]


async def test_not_authenticated(server: Server) -> None:
    now = int(time.time())
    bad = [
        None,  # no header
        token({"username": "alice", "exp": now - 10}),  # expired
        token({"username": "alice", "exp": now + 600}, key="x" * 64),  # forged
        token({"username": "alice", "exp": now + 600}, algorithm="HS512"),  # another algorithm
        token({"username": "alice", "exp": now + 600}, key="", algorithm="none"),  # alg none
        token({"username": "alice"}),  # no exp
        token({"user": "alice", "exp": now + 600}),  # wrong claims
        token({"player_uuid": MISSING_GAME, "game_uuid": MISSING_GAME, "exp": now + 600}),
        token({"username": "nobody", "exp": now + 600}),  # no such account
        "not.a.jwt",
    ]
    await sign_up(server, "alice")
    for method, path in PROTECTED:
        for value in bad:
            status, headers, body = await call(server, method, path, token=value)
            assert (status, body) == (401, NOT_AUTHENTICATED), (path, value)
            assert headers["www-authenticate"] == "Bearer"
        for header in ("Basic YWxpY2U6c2VjcmV0", "Bearer", "bearer"):
            sent = [("Authorization", header)]
            status, _, body = await call(server, method, path, headers=sent)
            assert (status, body) == (401, NOT_AUTHENTICATED)


async def test_login_errors(server: Server) -> None:
    await sign_up(server, "alice")
    for form in (
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "secret-pw"},
        {"username": "x", "password": "secret-pw"},
    ):
        status, headers, body = await call(server, "POST", "/auth/login", form=form)
        assert (status, body) == (401, {"detail": "Incorrect username or password"})
        assert headers["www-authenticate"] == "Bearer"
    status, _, body = await call(server, "POST", "/auth/login", form={"password": "p"})
    assert status == 422
    assert [(e["loc"], e["type"]) for e in body["detail"]] == [(["body", "username"], "missing")]
    status, _, body = await call(server, "POST", "/auth/login", form={})
    assert status == 422 and [e["loc"] for e in body["detail"]] == [
        ["body", "username"],
        ["body", "password"],
    ]
    form = {"username": "alice", "password": "secret-pw", "grant_type": "client"}
    status, _, body = await call(server, "POST", "/auth/login", form=form)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "grant_type"]
    form["grant_type"] = "password"
    status, _, body = await call(server, "POST", "/auth/login", form=form)
    assert status == 200 and body["token_type"] == "Bearer"
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert set(claims) == {"username", "exp"} and claims["username"] == "alice"
    assert 1700 <= claims["exp"] - time.time() <= 1800


async def test_signup_errors(server: Server) -> None:
    await sign_up(server, "alice")
    status, _, body = await call(
        server, "POST", "/auth/signup", form={"username": "Alice", "password": "p"}
    )
    assert (status, body) == (409, {"detail": "that name is taken"})
    status, _, body = await call(
        server, "POST", "/auth/signup", form={"username": "a b", "password": "p"}
    )
    assert status == 422
    assert body["detail"] == [
        {
            "loc": ["body", "username"],
            "msg": "a name is 3 to 16 letters, digits, '_' or '-'",
            "type": "value_error",
        }
    ]
    status, _, body = await call(
        server, "POST", "/auth/signup", form={"username": "carol", "password": ""}
    )
    assert status == 422 and body["detail"][0]["loc"] == ["body", "password"]


async def test_wrong_method_and_huge_body(server: Server) -> None:
    alice = await sign_up(server, "alice")
    for method, path in [
        ("GET", "/game/connect"),
        ("DELETE", "/players/me"),
        ("PUT", "/auth/login"),
        ("GET", "/auth/signup"),
        ("POST", "/healthcheck"),
        ("POST", f"/game/fetch/{MISSING_GAME}"),
    ]:
        status, _, body = await call(server, method, path, token=alice)
        assert (status, body) == (405, {"detail": "Method Not Allowed"}), (method, path)
    # Other paths keep Quart's own 405.
    status, headers, body = await call(server, "POST", "/healthz")
    assert status == 405 and not headers["content-type"].startswith("application/json")
    status, _, body = await call(server, "POST", "/auth/login", raw=b"u" * (65 * 1024))
    assert status == 413
    status, _, body = await call(server, "GET", "/healthcheck")
    assert (status, body) == (200, "OK")


async def test_connect_errors(server: Server) -> None:
    alice, bob, carol = [await sign_up(server, name) for name in ("alice", "bob", "carol")]
    game = await game_of(server, alice)
    for body_sent, loc, kind in (
        ({"uuid": "nope"}, ["body", "uuid"], "uuid_parsing"),
        ({}, ["body", "uuid"], "missing"),
        ([], ["body"], "model_type"),
    ):
        status, _, body = await call(server, "POST", "/game/connect", token=bob, body=body_sent)
        assert status == 422, body
        assert [(e["loc"], e["type"]) for e in body["detail"]] == [(loc, kind)]
    status, _, body = await call(server, "POST", "/game/connect", token=bob, raw=b"{nope")
    assert status == 422 and body["detail"][0]["type"] == "json_invalid"
    status, _, body = await call(
        server, "POST", "/game/connect", token=bob, body={"uuid": MISSING_GAME}
    )
    assert (status, body) == (404, NOT_FOUND)
    status, _, body = await call(server, "POST", "/game/connect", token=alice, body={"uuid": game})
    assert (status, body) == (409, {"detail": "You cannot join your own game"})
    status, _, body = await call(server, "POST", "/game/connect", token=bob, body={"uuid": game})
    assert status == 200
    for who in (bob, carol):
        status, _, body = await call(
            server, "POST", "/game/connect", token=who, body={"uuid": game}
        )
        assert (status, body) == (409, {"detail": "Game already has an opponent"})
    status, _, events = await call(server, "GET", f"/game/fetch/{game}", token=carol)
    assert [e["name"] for e in events] == ["game_init"]


async def test_intratoken_and_fetch_errors(server: Server) -> None:
    alice, bob = await sign_up(server, "alice"), await sign_up(server, "bob")
    game = await game_of(server, alice)
    for path in ("/auth/intratoken/", "/intratoken/", "/game/fetch/"):
        status, _, body = await call(server, "GET", path + "not-a-uuid", token=alice)
        assert status == 422
        assert [(e["loc"], e["type"]) for e in body["detail"]] == [
            (["path", "game"], "uuid_parsing")
        ]
        status, _, body = await call(server, "GET", path + MISSING_GAME, token=alice)
        assert (status, body) == (404, NOT_FOUND)
    status, _, body = await call(server, "GET", f"/auth/intratoken/{game}", token=bob)
    assert (status, body) == (403, {"detail": "Not a player of this game"})
    status, _, body = await call(server, "GET", f"/auth/intratoken/{game}", token=alice)
    assert status == 200
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert set(claims) == {"player_uuid", "game_uuid", "exp"} and claims["game_uuid"] == game
    # No opponent yet: no events, and the original's fetch answers 404.
    status, _, body = await call(server, "GET", f"/game/fetch/{game}", token=alice)
    assert (status, body) == (404, NOT_FOUND)


async def test_awaiting_newest_first_at_most_ten(server: Server) -> None:
    alice = await sign_up(server, "alice")
    games = [await game_of(server, alice) for _ in range(12)]
    status, _, body = await call(server, "GET", "/game/awaiting", token=alice)
    assert status == 200
    assert [g["uuid"] for g in body["games"]] == games[::-1][:10]
    me = (await call(server, "GET", "/players/me", token=alice))[2]["uuid"]
    assert {g["player_created"] for g in body["games"]} == {me}


async def test_login_rate_limits(start_server: StartServer) -> None:
    server = await start_server(jwt_secret=SECRET, login_burst=2, login_rate=0.001)
    wrong = {"username": "alice", "password": "wrong"}
    for _ in range(2):
        status, _, _ = await call(server, "POST", "/auth/login", form=wrong)
        assert status == 401
    limited = {"detail": "too many login attempts, try again later"}
    status, headers, body = await call(server, "POST", "/auth/login", form=wrong)
    assert (status, body) == (429, limited) and headers["retry-after"] == "1000"
    # Per name: alice is limited from another address too.
    status, _, body = await call(server, "POST", "/auth/login", form=wrong, source="127.0.0.2")
    assert (status, body) == (429, limited)
    # Per address: another name from the first address is limited.
    other = {"username": "bob", "password": "wrong"}
    status, _, body = await call(server, "POST", "/auth/signup", form=other)
    assert (status, body) == (429, limited)
    # Another name from another address is not.
    status, _, body = await call(server, "POST", "/auth/login", form=other, source="127.0.0.3")
    assert status == 401


async def test_generated_secret_is_kept(start_server: StartServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    first = await start_server(database_url=url)
    alice = await sign_up(first, "alice")
    second = await start_server(database_url=url)
    status, _, _ = await call(second, "GET", "/players/me", token=alice)
    assert status == 200
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(select(secrets.c.name, secrets.c.value)).all()
    engine.dispose()
    assert [name for name, _ in rows] == ["xo_jwt"] and len(rows[0][1]) >= 32


async def test_openapi_and_docs(server: Server) -> None:
    status, headers, spec = await call(server, "GET", "/openapi.json")
    assert status == 200
    for path in (
        "/auth/login",
        "/auth/signup",
        "/players/me",
        "/game/",
        "/game/awaiting",
        "/game/connect",
        "/auth/intratoken/{game}",
        "/game/fetch/{game}",
        "/healthcheck",
    ):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/auth/login"] and "get" in spec["paths"]["/auth/login"]
    status, _, page = await call(server, "GET", "/xo/")
    assert status == 200 and b"/static/xo/xo.js" in page
    status, headers, page = await call(server, "GET", "/docs")
    assert status == 200 and b"/static/docs/docs.js" in page
    assert "script-src 'self';" in headers["content-security-policy"]


def test_users_add(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'u.db'}", password_profile="cheapest")
    assert add_user(settings, "Carol", io.StringIO("pw-1\n")) == 0
    assert add_user(settings, "carol", io.StringIO("pw-2\n")) == 1
    assert add_user(settings, "c d", io.StringIO("pw-2\n")) == 1
    assert add_user(settings, "dave", io.StringIO("")) == 1


def test_users_add_command(tmp_path: Path) -> None:
    env = {
        "DUORELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}",
        "DUORELAY_PASSWORD_PROFILE": "cheapest",
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "duorelay", "users", "add", "carol"]
    done = subprocess.run(command, input="pw\n", capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("created account carol (uuid ")
    done = subprocess.run(command, input="pw\n", capture_output=True, text=True, env=env, cwd=ROOT)
    assert (done.returncode, done.stderr) == (1, "duorelay users add: that name is taken\n")
    done = subprocess.run(command[:-2], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 2 and "USERS_COMMAND" in done.stderr
