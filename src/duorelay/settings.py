"""Typed settings, read once from ``DUORELAY_*`` environment variables.

Every setting is an environment variable ``DUORELAY_<NAME>`` (ARCHITECTURE.md,
"Settings"). They are parsed and validated by pydantic-settings into one frozen
:class:`Settings` object when the app is created; a bad value raises
:class:`SettingsError`, whose message names the variable, so a misconfigured
server stops at start-up instead of failing on the first connection.

Hypercorn's own options (bind address, workers, TLS) stay Hypercorn's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DUORELAY_"


class SettingsError(ValueError):
    """A ``DUORELAY_*`` variable has a bad value; the message names it."""


class Settings(BaseSettings):
    """The server's settings; frozen after start-up.

    Units: sizes in bytes, durations in seconds (floats allowed).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    static_dir: Path = Field(
        default=Path("static"),
        validate_default=True,
        description="Folder served at / (its index.html) and under /static/.",
    )
    max_message_size: Annotated[int, Field(gt=0)] = Field(
        default=1024 * 1024,
        description="Largest frame a client may send, in bytes (text: UTF-8 length); "
        "a larger one closes the sender with 1009.",
    )
    join_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds a new connection has to send its join frame (else 4408).",
    )
    outbox_size: Annotated[int, Field(gt=0)] = Field(
        default=64,
        description="Frames that may wait for one receiver before its sender is back-pressured.",
    )

    @field_validator("static_dir")
    @classmethod
    def _static_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            where = value if value.is_absolute() else Path.cwd() / value
            raise ValueError(
                f"{str(where)!r} is not a directory; start the server from the project "
                "folder or set this variable to the folder of your site"
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
            name = ENV_PREFIX + "_".join(str(part) for part in item["loc"]).upper()
            value = item.get("input")
            shown = value if isinstance(value, str) else str(value)
            problems.append(f"{name}={shown!r}: {item['msg']}")
        raise SettingsError("bad settings: " + "; ".join(problems)) from None
