"""Typed settings, read once from ``DUORELAY_*`` environment variables.

Every setting is an environment variable ``DUORELAY_<NAME>`` (README.md,
"Settings"). They are parsed and validated by pydantic-settings into one frozen
:class:`Settings` object when the app is created; a bad value raises
:class:`SettingsError`, whose message names the variable, so a misconfigured
server stops at start-up instead of failing on the first connection.

Hypercorn's own options (bind address, workers, TLS) stay Hypercorn's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "DUORELAY_"

DEMO_SITE = Path(__file__).resolve().parent / "static"
"""The demo pages shipped inside the package (package data): the default site."""


class SettingsError(ValueError):
    """A ``DUORELAY_*`` variable has a bad value; the message names it."""


class Settings(BaseSettings):
    """The server's settings; frozen after start-up.

    Units: sizes in bytes, durations in seconds (floats allowed).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    static_dir: Path = Field(
        default=DEMO_SITE,
        validate_default=True,
        description="Folder served at / (its index.html) and under /static/; "
        "default: the demo pages shipped in the package.",
    )
    max_message_size: Annotated[int, Field(gt=0)] = Field(
        default=1024 * 1024,
        description="Largest frame a client may send, in bytes (text: UTF-8 length); "
        "a larger one closes the sender with 1009.",
    )
    websocket_compression: bool = Field(
        default=False,
        description="Offer permessage-deflate compression to clients that ask for it "
        "(python -m duorelay); a message that inflates past the message size limit "
        "closes the connection with 1009. Off: no compression, no compression bombs.",
    )
    join_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds a new connection has to send its join frame (else 4408).",
    )
    outbox_size: Annotated[int, Field(gt=0)] = Field(
        default=64,
        description="Frames that may wait for one receiver before its sender is back-pressured.",
    )
    outbox_bytes: Annotated[int, Field(gt=0)] = Field(
        default=1024 * 1024,
        description="Bytes of frames that may wait for one receiver before its sender is "
        "back-pressured (a larger frame still passes when nothing else waits).",
    )
    host_stall_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds a WMBP client may wait for room in its host's full outbox "
        "before the host is closed as too slow (4430).",
    )

    ping_interval: Annotated[float, Field(gt=0)] = Field(
        default=20.0, description="Seconds between the server's pings to each client."
    )
    idle_timeout: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description="Seconds a client may send nothing (pongs count) before it is dropped.",
    )
    tcp_user_timeout: Annotated[float, Field(ge=0)] = Field(
        default=30.0,
        description="Seconds sent data may stay unacknowledged before the connection "
        "is dropped (TCP_USER_TIMEOUT on the listening sockets; 0 leaves the "
        "system default).",
    )
    allowed_origins: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        description="Comma-separated Origin values allowed to open a websocket; "
        "empty allows any. A request without Origin (a bot) is always allowed.",
    )
    max_rate: Annotated[float, Field(gt=0)] = Field(
        default=200.0,
        description="Frames per second one connection may send on average; faster, its "
        "frames are read more slowly.",
    )
    max_burst: Annotated[int, Field(gt=0)] = Field(
        default=400,
        description="Frames one connection may send at once above max_rate, without waiting.",
    )
    max_connections: Annotated[int, Field(gt=0)] = Field(
        default=10_000,
        description="Websocket connections one process holds; more get 4429.",
    )
    max_connections_per_address: Annotated[int, Field(gt=0)] = Field(
        default=64,
        description="Websocket connections one client address may hold open in one "
        "process; more get 4429. Behind a proxy every client has the proxy's address.",
    )
    lookup_rate: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="Failed room-code lookups (GET /{CODE} 404, WMBP client 4404) per "
        "second one client address may make on average, across the cluster; over it "
        "(beyond lookup_burst), every lookup gets HTTP 429 or close 4429.",
    )
    lookup_burst: Annotated[int, Field(gt=0)] = Field(
        default=20,
        description="Failed room-code lookups one client address may make at once "
        "above lookup_rate.",
    )
    body_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds a client has to send an HTTP request's body; later: 408 "
        "and the connection is closed.",
    )
    content_security_policy: str | None = Field(
        default=None,
        description="Content-Security-Policy header of every HTTP response; unset: a "
        "policy for the demo pages (only this server's scripts, styles, images and "
        "websockets); empty: no header (for a site of your own that needs more).",
    )
    wmbp_max_players: Annotated[int, Field(ge=0)] = Field(
        default=64,
        description="Largest max_players a WMBP host may prepare a room for.",
    )
    wmbp_max_rooms: Annotated[int, Field(gt=0)] = Field(
        default=10_000,
        description="WMBP rooms one process holds; a host preparing one more gets 4429.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by every process of the cluster (redis://host:port/0, "
        "rediss://, unix://); unset: rooms live in this process only.",
    )
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = Field(
        default="duorelay",
        description="Start of every Redis key and channel name of this deployment.",
    )
    redis_lease: Annotated[float, Field(ge=0.3)] = Field(
        default=10.0,
        description="Seconds a seat held by a process that died stays taken "
        "(the lease, renewed every third of it).",
    )
    database_url: str = Field(
        default="sqlite:///duorelay.db",
        description="SQLAlchemy URL of the database (the event log of refereed games): "
        "sqlite:///FILE (relative to the working directory) or postgresql+psycopg://...",
    )
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite only: when a commit reaches the disk. normal: at checkpoints "
        "(a commit survives a crash of the server, a power loss may lose the last ones); "
        "full: at every commit (survives a power loss, costs an fdatasync per commit).",
    )
    santorini_port: Annotated[int, Field(ge=0, le=65535)] | None = Field(
        default=None,
        description="TCP port of the Santorini tournament server run beside the web "
        "server (repeat mode; docs/santorini.md); unset: off.",
    )
    santorini_host: str = Field(
        default="127.0.0.1",
        description="Address the Santorini server listens on (0.0.0.0: every interface).",
    )
    santorini_min_players: Annotated[int, Field(ge=2)] = Field(
        default=2,
        description="Players a Santorini tournament beside the web server needs to start.",
    )
    santorini_waiting_for: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds the Santorini server waits for each next registration "
        "before it starts a tournament (beside the web server).",
    )
    santorini_time_per_call: Annotated[float, Field(gt=0)] = Field(
        default=1.2,
        description="Seconds a Santorini player has for each call (reply to a placement "
        "or a turn; room in its outbox for a message); slower misbehaves.",
    )
    santorini_registration_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds a new Santorini connection has to send its name (else closed).",
    )
    santorini_max_players: Annotated[int, Field(ge=2)] = Field(
        default=64,
        description="Most players in one Santorini tournament; registrations beyond it "
        "wait for the next one (repeat mode) while the lobby holds them, else are closed.",
    )
    santorini_max_value: Annotated[int, Field(ge=64)] = Field(
        default=8192,
        description="Largest JSON value a Santorini client may send, in bytes; "
        "a larger one closes it as misbehaving.",
    )
    backplane_wait: Annotated[float, Field(ge=0)] = Field(
        default=5.0,
        description="Seconds a join waits for the backplane (Redis) while it connects "
        "or reconnects, before it is refused with 1013.",
    )
    login_rate: Annotated[float, Field(gt=0)] = Field(
        default=0.2,
        description="Login and sign-up attempts a second, per client address and per "
        "account name (each attempt costs an Argon2 hash).",
    )
    login_burst: Annotated[int, Field(gt=0)] = Field(
        default=10, description="Login attempts in a burst, per address and per name."
    )
    password_profile: Literal["rfc9106-low-memory", "cheapest"] = Field(
        default="rfc9106-low-memory",
        description="Argon2id cost of new password hashes: rfc9106-low-memory (t=3, "
        "64 MiB, p=4) or cheapest (for tests only).",
    )
    jwt_secret: str | None = Field(
        default=None,
        min_length=32,
        description="Key that signs the XO API's tokens (HS256, at least 32 characters). "
        "Unset: generated on first start and kept in the database.",
    )
    token_lifetime: Annotated[float, Field(gt=0)] = Field(
        default=1800.0, description="Seconds an XO login or per-game token is valid."
    )
    match_linger: Annotated[float, Field(ge=0)] = Field(
        default=60.0,
        description="Seconds a turn-based match stays in memory after its last move or "
        "watcher (then it is loaded from the database again); 0: not at all.",
    )
    uttt_revoke_time: Annotated[float, Field(gt=0)] = Field(
        default=7 * 24 * 3600.0,
        description="Seconds a UTTT match may go without a move; then the player on "
        "turn loses it.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: one readable line per event; json: one JSON object."
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _idle_longer_than_ping(self) -> Settings:
        if self.idle_timeout <= self.ping_interval:
            raise ValueError(
                f"{ENV_PREFIX}IDLE_TIMEOUT ({self.idle_timeout:g}) must be longer than "
                f"{ENV_PREFIX}PING_INTERVAL ({self.ping_interval:g}), or idle clients "
                "are dropped between two pings"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        if value:
            import coredis  # imported only when a backplane is configured

            try:
                coredis.ConnectionPool.from_url(value)
            except (
                Exception
            ) as error:  # coredis raises ValueError, KeyError...: all mean "bad URL"
                raise ValueError(f"not a usable Redis URL ({error})") from None
        return value or None

    @field_validator("static_dir")
    @classmethod
    def _static_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            where = value if value.is_absolute() else Path.cwd() / value
            raise ValueError(
                f"{str(where)!r} is not a directory; set this variable to the folder "
                "of your site (a relative path starts at the working directory), or "
                "unset it to serve the demo pages"
            )
        return value


def load_settings() -> Settings:
    """Read :class:`Settings` from the environment.

    Raises :class:`SettingsError` naming each bad variable, for example
    ``DUORELAY_OUTBOX_SIZE='ten': Input should be a valid integer``.
    """
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            if not item["loc"]:  # a rule across several settings names them itself
                problems.append(item["msg"].removeprefix("Value error, "))
                continue
            name = ENV_PREFIX + "_".join(str(part) for part in item["loc"]).upper()
            value = item.get("input")
            shown = value if isinstance(value, str) else str(value)
            problems.append(f"{name}={shown!r}: {item['msg']}")
        raise SettingsError("bad settings: " + "; ".join(problems)) from None
