"""``python -m duorelay users add NAME``: sign an account up from the command line.

The account is shared by every service (the XO API, UTTT). The password is
the first line of standard input (without its line end; from a terminal it is
asked for without echo). Exit status: 0 created (``created account NAME
(uuid UUID)`` on standard output), 1 refused (a taken or invalid name, an
invalid password, the database unavailable: the reason on standard error).
"""

from __future__ import annotations

import getpass
import sys
from typing import IO

import sqlalchemy.exc
import trio

from duorelay.protocols.xogame import dashed
from duorelay.referee.accounts import Accounts, LoginLimit, LoginRefused
from duorelay.settings import Settings
from duorelay.store.gateway import Store

CLI_ADDRESS = "command line"
"""The "client address" of sign-ups from the command line (for the rate limit)."""


def read_password(stdin: IO[str]) -> str:
    """The password: asked for on a terminal, else the first line of ``stdin``."""
    if stdin.isatty():
        return getpass.getpass("password: ")
    return stdin.readline().removesuffix("\n").removesuffix("\r")


def add_user(settings: Settings, name: str, stdin: IO[str] = sys.stdin) -> int:
    """Create account ``name``; the exit status (0 created, 1 refused)."""
    password = read_password(stdin)

    async def create() -> str:
        store = Store(settings.database_url, settings.sqlite_synchronous)
        try:
            await store.migrate()
            limit = LoginLimit(settings.login_rate, settings.login_burst)
            accounts = Accounts(store, limit, settings.password_profile)
            account = await accounts.sign_up(name, password, CLI_ADDRESS)
            return f"created account {account.name} (uuid {dashed(account.uuid)})"
        finally:
            store.close()

    try:
        print(trio.run(create))
    except LoginRefused as refused:
        print(f"duorelay users add: {refused.reason}", file=sys.stderr)
        return 1
    except sqlalchemy.exc.SQLAlchemyError as error:
        first = str(error).splitlines()[0]
        print(f"duorelay users add: database unavailable: {first}", file=sys.stderr)
        return 1
    return 0
