"""The static site: ``/`` and ``/static/<path>`` (issue: static site)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from unittest.mock import patch

import pytest

from conftest import (
    DUORELAY,
    STATIC_DIR,
    LogWatch,
    Server,
    StartServer,
    http_get,
    server_process,
)


async def test_index_is_served_at_root(server: Server) -> None:
    status, headers, body = await http_get(server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert body == (STATIC_DIR / "index.html").read_bytes()


async def test_a_static_file(server: Server) -> None:
    status, headers, body = await http_get(server, "/static/connect4.js")
    assert status == 200
    assert "javascript" in headers["content-type"]
    assert body == (STATIC_DIR / "connect4.js").read_bytes()


async def test_missing_file_404(server: Server) -> None:
    status, _, _ = await http_get(server, "/static/no-such-file.js")
    assert status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/..%2fpyproject.toml",
        "/static/%2e%2e%2fpyproject.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/....//pyproject.toml",
    ],
)
async def test_path_traversal_404(server: Server, path: str) -> None:
    status, headers, body = await http_get(server, path)
    if status == 308:  # Werkzeug merges "//"; the target stays inside /static/
        target = headers["location"].removeprefix(server.http(""))
        assert target.startswith("/static/")
        status, _, body = await http_get(server, target)
    assert status == 404
    assert b"[project]" not in body and b"root:" not in body


def not_served(server_log: LogWatch) -> list[logging.LogRecord]:
    return [r for r in server_log.records if r.getMessage().startswith("static ")]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/static/" + "a" * 256, "OSError: File name too long"),  # ENAMETOOLONG: was a 500
        ("/static/" + "a" * 300 + ".js", "OSError: File name too long"),
        (
            "/static/" + "/".join(["b" * 200] * 25),
            "FileNotFoundError: No such file or directory",
        ),  # 5 KB
        ("/static/a%00b", "ValueError: .*embedded null"),
        ("/static/%ff%fe.js", "FileNotFoundError: No such file or directory"),
        ("/static/buzzer", "not a regular file"),
        ("/static/buzzer/", "not a regular file"),
        ("/static/no-such-file.js", "FileNotFoundError: No such file or directory"),
    ],
)
async def test_unservable_static_path_is_a_404_logged_in_one_line(
    server: Server, server_log: LogWatch, caplog: pytest.LogCaptureFixture, path: str, reason: str
) -> None:
    status, _, body = await http_get(server, path)
    assert status == 404
    assert b"Traceback" not in body
    [record] = not_served(server_log)
    assert re.search(f"not served: {reason}", record.getMessage())
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_long_name_is_logged_clipped(server: Server, server_log: LogWatch) -> None:
    assert (await http_get(server, "/static/" + "c" * 5000))[0] == 404
    [record] = not_served(server_log)
    assert len(record.getMessage()) < 200


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static folder with links to a file and a folder outside it, and to a file
    inside it; the outside holds a secret."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret\n")
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>site</title>\n")
    (root / "sub" / "page.txt").write_text("inside\n")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "secret.txt").symlink_to(outside / "secret.txt")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "alias.txt").symlink_to(root / "sub" / "page.txt")
    (root / "loop").symlink_to(root / "loop")
    return root


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/static/passwd", "outside the static folder"),
        ("/static/secret.txt", "outside the static folder"),
        ("/static/out/secret.txt", "outside the static folder"),
        ("/static/out", "outside the static folder"),
        # Python 3.11: RuntimeError("Symlink loop from ..."); 3.13: OSError ELOOP
        ("/static/loop", "RuntimeError: Symlink loop|OSError: Too many levels of symbolic links"),
    ],
)
async def test_symlinks_out_of_the_static_folder_are_not_served(
    start_server: StartServer, server_log: LogWatch, site: Path, path: str, reason: str
) -> None:
    server = await start_server(static_dir=site)
    status, _, body = await http_get(server, path)
    assert status == 404
    assert b"secret" not in body and b"root:" not in body
    [record] = not_served(server_log)
    assert re.search(f"not served: (?:{reason})", record.getMessage())


async def test_files_and_symlinks_inside_the_static_folder_are_served(
    start_server: StartServer, site: Path
) -> None:
    server = await start_server(static_dir=site)
    assert (await http_get(server, "/"))[::2] == (200, (site / "index.html").read_bytes())
    assert (await http_get(server, "/static/sub/page.txt"))[::2] == (200, b"inside\n")
    assert (await http_get(server, "/static/alias.txt"))[::2] == (200, b"inside\n")


async def test_an_index_linked_out_of_the_static_folder_is_not_served(
    start_server: StartServer, site: Path
) -> None:
    (site / "index.html").unlink()
    (site / "index.html").symlink_to(site.parent / "outside" / "secret.txt")
    server = await start_server(static_dir=site)
    status, _, body = await http_get(server, "/")
    assert (status, b"secret" in body) == (404, False)


async def test_demo_pages_are_served_from_any_working_directory(tmp_path: Path) -> None:
    """``pip install`` then ``python -m duorelay`` in any folder serves the demo:
    the pages ship inside the package (the default DUORELAY_STATIC_DIR)."""
    env = {k: v for k, v in os.environ.items() if k != "DUORELAY_STATIC_DIR"}
    with patch.dict(os.environ, env, clear=True):
        async with server_process(*DUORELAY, cwd=tmp_path) as (_, server):
            status, headers, body = await http_get(server, "/")
            assert (status, body) == (200, (STATIC_DIR / "index.html").read_bytes())
            assert headers["content-type"].startswith("text/html")
            status, _, body = await http_get(server, "/static/buzzer/host.html")
            assert (status, body) == (200, (STATIC_DIR / "buzzer" / "host.html").read_bytes())
