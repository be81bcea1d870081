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
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve as hypercorn_serve

from duorelay.settings import Settings, SettingsError
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


def parser() -> argparse.ArgumentParser:
    """The ``python -m duorelay`` command line; settings are listed in the epilog."""
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
    cli = argparse.ArgumentParser(
        prog="python -m duorelay",
        description="duorelay: a websocket relay for two-player browser and bot games. "
        "Serves the static site and the relay on Hypercorn's trio worker.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="HOST:PORT",
        help=f"address to listen on; repeat for several (default {DEFAULT_BIND})",
    )
    cli.add_argument("--certfile", help="TLS certificate file (serves wss:// and https://)")
    cli.add_argument("--keyfile", help="TLS private key file")
    cli.add_argument(
        "--graceful-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds to wait for connections to close at shutdown (default 3)",
    )
    cli.add_argument(
        "--access-log",
        metavar="FILE",
        help="write Hypercorn's access log to FILE ('-' for standard output)",
    )
    cli.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="a Hypercorn TOML config file, applied before the options above",
    )
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m duorelay``; returns the process exit code."""
    args = parser().parse_args(argv)
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
