"""The static site: ``/`` and ``/static/<path>`` (issue: static site)."""

from __future__ import annotations

import pytest

from conftest import STATIC_DIR, Server, http_get


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
