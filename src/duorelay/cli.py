"""Running the app on Hypercorn: config, socket options, signals, the CLI.

``python -m duorelay`` (:func:`main`) runs the app on Hypercorn's trio worker
with everything docs/protocols.md section 1 rules 10 and 11 ask for:

- pings every ``PING_INTERVAL`` seconds (Hypercorn's ``websocket_ping_interval``)
  and a connection dropped after ``IDLE_TIMEOUT`` seconds without a byte from
  its client, pongs included (Hypercorn's ``read_timeout``);
- ``TCP_USER_TIMEOUT`` on the listening sockets (accepted sockets inherit it),
  so a send to a client that stopped acknowledging fails after that many
  seconds instead of blocking Hypercorn's shielded send forever;
- on SIGTERM or SIGINT, every websocket is closed with 1001 "server shutting
  down" *before* Hypercorn's graceful shutdown starts, and the process exits
  within Hypercorn's ``graceful_timeout`` (default 3 s) plus about a second.

``hypercorn duorelay.app:app --worker-class trio`` works too: the app sets
``TCP_USER_TIMEOUT`` on the listening sockets it finds at start-up
(:func:`duorelay.transport.sockets.set_tcp_user_timeout_on_listeners`); pings
and the idle timeout need ``--websocket-ping-interval`` and ``--read-timeout``;
at shutdown Hypercorn cancels connections without a close frame (clients see 1006).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve as hypercorn_serve

from duorelay.observability import Stats, configure_logging
from duorelay.protocols import santorini as wire
from duorelay.referee.record import Recorder
from duorelay.services.santorini import SantoriniServer, ServerConfig
from duorelay.services.santorini_clients import ClientsConfig, run_clients
from duorelay.services.users import add_user
from duorelay.settings import Settings, SettingsError, load_settings
from duorelay.store.gateway import Store
from duorelay.transport.sockets import set_tcp_user_timeout

if TYPE_CHECKING:
    from duorelay.app import DuoRelay

log = logging.getLogger("duorelay")

DEFAULT_BIND = "127.0.0.1:8000"


class RelayConfig(Config):
    """Hypercorn's :class:`~hypercorn.config.Config`, set from duorelay's settings.

    Its listening sockets get ``TCP_USER_TIMEOUT`` when they are created.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.tcp_user_timeout = settings.tcp_user_timeout
        self.bind = [DEFAULT_BIND]
        self.worker_class = "trio"
        self.websocket_ping_interval = settings.ping_interval
        # Hypercorn annotates read_timeout as int, but uses it as seconds in
        # trio.fail_after, where a float is fine.
        self.read_timeout = settings.idle_timeout  # type: ignore[assignment]
        # Above duorelay's own limit, so the client gets duorelay's 1009 with a
        # reason; still a bound on what Hypercorn buffers for one frame.
        self.websocket_max_message_size = 2 * settings.max_message_size
        # Read by duorelay.transport.hypercorn_shims (patch 6): permessage-deflate
        # is negotiated only when this is true.
        self.websocket_compression = settings.websocket_compression

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
            set_tcp_user_timeout(sock, self.tcp_user_timeout)
        return sockets


async def serve(app: DuoRelay, config: Config) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully.

    On the signal every websocket is closed with 1001 (``DuoRelay.shut_down``),
    then Hypercorn stops accepting, waits up to ``config.graceful_timeout``
    seconds for connections to finish, and cancels the rest.
    """

    async def on_signal() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info(
                    "%s: closing %d connections with 1001, then stopping",
                    signal.Signals(signum).name,
                    len(app.sessions),
                )
                app.shut_down()
                return

    await hypercorn_serve(app, config, shutdown_trigger=on_signal)


def _serve_options(cli: argparse.ArgumentParser, default: object = None) -> None:
    """The options of ``serve``; under the subcommand their default is
    ``argparse.SUPPRESS``, so that options given before it are kept."""
    cli.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="HOST:PORT",
        default=default,
        help=f"address to listen on; repeat for several (default {DEFAULT_BIND})",
    )
    cli.add_argument(
        "--certfile", default=default, help="TLS certificate file (serves wss:// and https://)"
    )
    cli.add_argument("--keyfile", default=default, help="TLS private key file")
    cli.add_argument(
        "--graceful-timeout",
        type=float,
        metavar="SECONDS",
        default=default,
        help="seconds to wait for connections to close at shutdown (default 3)",
    )
    cli.add_argument(
        "--access-log",
        metavar="FILE",
        default=default,
        help="write Hypercorn's access log to FILE ('-' for standard output)",
    )
    cli.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=default,
        help="a Hypercorn TOML config file, applied before the options above",
    )


def parser() -> argparse.ArgumentParser:
    """The ``python -m duorelay`` command line; settings are listed in the epilog.

    Subcommands: ``serve`` (the default: the web server), ``santorini`` (the
    course's Santorini server) and ``santorini-clients`` (its client harness).
    """
    lines = ["settings (environment variables, read at start-up):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, frozenset):
            default = ",".join(sorted(default)) or "(any)"
        lines.append(f"  DUORELAY_{name.upper():<18} default {default}")
        lines.append(f"      {field.description}")
    epilog = "\n".join(lines) + (
        "\n\nOther Hypercorn options (TLS ciphers, logging, h2...) go in a Hypercorn"
        " TOML file given with --config."
    )
    description = (
        "duorelay: a multiplayer server for browser and bot games: it relays "
        "(Kamon, WMBP) and referees (ultimate tic-tac-toe at /uttt/, XO at /xo/, "
        "Santorini tournaments over TCP). Serves the static site, the relay and "
        "the games on Hypercorn's trio worker."
    )
    cli = argparse.ArgumentParser(
        prog="python -m duorelay",
        description=description + " Without a command: serve.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _serve_options(cli)
    commands = cli.add_subparsers(dest="command", metavar="COMMAND")
    serve_command = commands.add_parser(
        "serve",
        help="run the web server (the default)",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _serve_options(serve_command, argparse.SUPPRESS)
    santorini = commands.add_parser(
        "santorini",
        help="run Santorini tournaments over TCP (the course's xserver)",
        description=SANTORINI_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    santorini.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    santorini.add_argument(
        "--no-store",
        action="store_true",
        help="keep no event log (default: the database of DUORELAY_DATABASE_URL)",
    )
    commands.add_parser(
        "santorini-clients",
        help="play built-in bots against a Santorini server (the course's xclients)",
        description=CLIENTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    users = commands.add_parser(
        "users", help="manage the accounts of the XO and UTTT services"
    ).add_subparsers(dest="users_command", metavar="USERS_COMMAND", required=True)
    add = users.add_parser(
        "add",
        help="sign up an account; its password is read from standard input",
        description="Create account NAME (3 to 16 of a-z 0-9 _ -) in the database of "
        "DUORELAY_DATABASE_URL; the password is the first line of standard input. "
        "Exit status: 0 created, 1 refused (the reason on standard error), 2 bad "
        "settings or usage.",
    )
    add.add_argument("name", metavar="NAME")
    return cli


SANTORINI_HELP = """\
Run Santorini tournaments over TCP (docs/santorini.md), like the course's xserver.

Reads one JSON object from standard input:
  {"min players": N, "port": P, "waiting for": S, "repeat": 0 or 1}
and listens on port P (0: any free port; the log line "santorini: listening on
HOST:PORT" on standard error says which). It waits at most S seconds for each
next registration; then, with at least N players, it runs a round-robin
tournament and prints its Results as one JSON array line on standard output.
With repeat 1 it then accepts new players for the next tournament, until
SIGINT or SIGTERM. Logs go to standard error.

Exit status: 0 after a tournament (or a signal); 1 when fewer than N players
registered (no tournament: "no tournament" on standard error, nothing on
standard output); 2 for a bad configuration or bad settings.

Every game is stored in the database of DUORELAY_DATABASE_URL (default
sqlite:///duorelay.db in the working directory) unless --no-store is given.
Settings: DUORELAY_SANTORINI_TIME_PER_CALL, DUORELAY_SANTORINI_REGISTRATION_TIMEOUT,
DUORELAY_SANTORINI_MAX_PLAYERS, DUORELAY_SANTORINI_MAX_VALUE (python -m duorelay --help)."""

CLIENTS_HELP = """\
Play built-in Santorini bots against a server, like the course's xclients.

Reads one JSON object from standard input:
  {"players": [[Kind, Name, Path], ...], "observers": [...], "ip": IP, "port": P}
Kind is "good" (plays by the rules), "breaker" (makes an illegal move) or
"infinite" (never answers); Path is ignored (every player is a built-in bot);
observers are not part of the remote protocol and are ignored. The players
connect and register in the order given. Prints one JSON line per player,
[Name, Results] (Results null when it received none), once every connection
has ended. Exit status: 0; 1 if the server cannot be reached; 2 for a bad
configuration."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m duorelay``; returns the process exit code."""
    args = parser().parse_args(argv)
    if args.command == "santorini":
        return santorini(host=args.host, use_store=not args.no_store)
    if args.command == "santorini-clients":
        return santorini_clients()
    if args.command == "users":
        settings = _settings()
        return 2 if settings is None else add_user(settings, args.name)
    try:
        # The app layer sits above this one; importing it creates the app
        # from the environment, as for `hypercorn duorelay.app:app`.
        from duorelay.app import app
    except SettingsError as error:
        print(f"duorelay: {error}", file=sys.stderr)
        return 2
    config = RelayConfig(app.settings)
    if args.config:
        for name, value in vars(Config.from_toml(args.config)).items():
            setattr(config, name, value)
    if args.bind:
        config.bind = args.bind
    if args.certfile:
        config.certfile = args.certfile
    if args.keyfile:
        config.keyfile = args.keyfile
    if args.graceful_timeout is not None:
        config.graceful_timeout = args.graceful_timeout
    if args.access_log:
        config.accesslog = args.access_log
    config.errorlog = "-"
    tune_garbage_collector()
    trio.run(serve, app, config)
    return 0


def tune_garbage_collector() -> None:
    """Make CPython's cyclic GC cheaper for a long-running relay.

    Profiled under pingpong, the collector took about 15% of the server's CPU:
    every 700 net allocations it walked every waiting coroutine and channel of
    every connection. ``gc.freeze()`` moves what start-up allocated (the app,
    Quart, Hypercorn, pydantic) out of its sight, and the youngest generation
    is collected every 5,000 allocations instead (docs/benchmarks.md).
    Process-wide, so only the command that owns the process calls it.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 10, 10)


# -- Santorini (docs/santorini.md section 6) ----------------------------------------------


def read_json_value(source: IO[bytes], limit: int = 1 << 16) -> object:
    """The first JSON value of ``source`` (standard input), read as it arrives: a
    configuration typed by hand needs no end of file. ``ValueError`` when there
    is none or it is not JSON."""
    values = wire.JsonStream(limit)
    while True:
        value = values.next_value()
        if value is wire.END:
            raise ValueError("no JSON value on standard input")
        if value is not wire.NEED_DATA:
            return value
        chunk = source.read1(4096) if hasattr(source, "read1") else source.read(4096)
        values.receive_data(chunk)


def server_config(value: object, host: str) -> ServerConfig:
    """The course's server configuration: ``{"min players": N, "port": P,
    "waiting for": S, "repeat": 0 or 1}``; ``ValueError`` naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("the configuration is a JSON object")

    min_players = int(_number(value, "min players", 2, 10**6, integer=True))
    port = int(_number(value, "port", 0, 65535, integer=True))
    waiting_for = _number(value, "waiting for", 0.001, 10**9, integer=False)
    repeat = value.get("repeat")
    if repeat not in (0, 1) or isinstance(repeat, bool):
        raise ValueError(f"'repeat' must be 0 or 1, not {repeat!r}")
    return ServerConfig(min_players, waiting_for, repeat == 1, port, host)


def _number(value: dict[str, object], key: str, low: float, high: float, integer: bool) -> float:
    """``value[key]``, a number (an integer if ``integer``) from ``low`` to ``high``."""
    item = value.get(key)
    if (
        isinstance(item, bool)
        or not isinstance(item, int if integer else (int, float))
        or not low <= item <= high
    ):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{key!r} must be {kind} from {low:g} to {high:g}, not {item!r}")
    return float(item)


def _settings() -> Settings | None:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"duorelay: {error}", file=sys.stderr)
        return None
    configure_logging(settings.log_format)
    return settings


def santorini(host: str, use_store: bool = True) -> int:
    """``python -m duorelay santorini``: see its ``--help`` (exit status 0, 1 or 2)."""
    settings = _settings()
    if settings is None:
        return 2
    try:
        config = server_config(read_json_value(sys.stdin.buffer), host)
    except ValueError as error:
        print(f"duorelay santorini: bad configuration: {error}", file=sys.stderr)
        return 2
    played = trio.run(_run_santorini, config, settings, use_store)
    return 0 if played else 1


async def _run_santorini(config: ServerConfig, settings: Settings, use_store: bool) -> bool:
    store = Store(settings.database_url, settings.sqlite_synchronous) if use_store else None
    try:
        if store is not None:
            await store.migrate()

        def print_results(results: list[wire.Result]) -> None:
            print(json.dumps(wire.results_message(results)), flush=True)

        server = SantoriniServer(
            config, settings, Stats(), Recorder(store), on_results=print_results
        )
        played = True
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                nonlocal played
                played = await server.run()
                nursery.cancel_scope.cancel()

            async def on_signal() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("%s: stopping", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()

            nursery.start_soon(serve)
            nursery.start_soon(on_signal)
        if not played:
            print(
                f"duorelay santorini: no tournament: fewer than {config.min_players} players",
                file=sys.stderr,
            )
        return played
    finally:
        if store is not None:
            store.close()


def santorini_clients() -> int:
    """``python -m duorelay santorini-clients``: see its ``--help``."""
    if _settings() is None:
        return 2
    try:
        config = ClientsConfig.parse(read_json_value(sys.stdin.buffer))
    except ValueError as error:
        print(f"duorelay santorini-clients: bad configuration: {error}", file=sys.stderr)
        return 2
    if config.observers:
        print(
            "duorelay santorini-clients: observers are not part of the remote protocol; ignored",
            file=sys.stderr,
        )
    try:
        bots = trio.run(run_clients, config)
    except OSError as error:
        print(f"duorelay santorini-clients: {error}", file=sys.stderr)
        return 1
    for bot in bots:
        results = None if bot.results is None else wire.results_message(bot.results)
        print(json.dumps([bot.name, results]), flush=True)
    return 0
