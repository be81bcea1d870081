"""The Kamon protocol's sans-IO parsing, with plain calls (no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duorelay.protocols import CloseCode, ProtocolError, clip_reason, too_big
from duorelay.protocols.kamon import Join, namespace_for_path, parse_join


@pytest.mark.parametrize(
    ("frame", "join"),
    [
        ("* r_0", Join("r", 0)),
        ("* r_1", Join("r", 1)),
        ("* Friday game_1", Join("Friday game", 1)),
        ("* a_b_c_0", Join("a_b_c", 0)),
        ("* _x__1", Join("_x_", 1)),
        ("* ゲーム_0", Join("ゲーム", 0)),
        ("*  _0", Join(" ", 0)),
        ("* " + "x" * 128 + "_1", Join("x" * 128, 1)),
    ],
)
def test_valid_joins(frame: str, join: Join) -> None:
    assert parse_join(frame) == join


@given(st.text(min_size=1, max_size=128).filter(lambda s: s.isprintable()), st.integers(0, 1))
def test_any_printable_room_round_trips(room: str, seat: int) -> None:
    assert parse_join(f"* {room}_{seat}") == Join(room, seat)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_frames_parse_or_raise_4400(frame: str | bytes) -> None:
    try:
        join = parse_join(frame)
    except ProtocolError as error:
        assert error.code == CloseCode.BAD_REQUEST
        assert len(error.reason.encode()) <= 123
    else:
        assert isinstance(frame, str)
        assert frame == f"* {join.room}_{join.seat}"
        assert 1 <= len(join.room) <= 128


@pytest.mark.parametrize(
    ("path", "namespace"),
    [
        ("/ws", "default"),
        ("/ws/a", "a"),
        ("/ws/My.Game_v2-beta", "My.Game_v2-beta"),
        ("/ws/" + "n" * 64, "n" * 64),
        ("/ws/", None),
        ("/ws/" + "n" * 65, None),
        ("/ws/a/b", None),
        ("/ws/a b", None),
        ("/wsx", None),
        ("/x/ws/a", None),
        ("/", None),
        ("/CREATE", None),
    ],
)
def test_namespace_for_path(path: str, namespace: str | None) -> None:
    assert namespace_for_path(path) == namespace


@given(st.text(max_size=100))
def test_namespace_for_path_never_raises(path: str) -> None:
    namespace = namespace_for_path(path)
    assert namespace is None or path in ("/ws", f"/ws/{namespace}")


def test_too_big_counts_utf8_bytes() -> None:
    assert not too_big(b"x" * 10, 10)
    assert too_big(b"x" * 11, 10)
    assert not too_big("é" * 5, 10)  # 10 bytes
    assert too_big("é" * 6, 10)  # 12 bytes, 6 characters
    assert too_big("x" * 11, 10)
    assert not too_big("🎲" * 2, 8)
    assert too_big("🎲" * 2, 7)


@given(st.one_of(st.text(max_size=50), st.binary(max_size=50)), st.integers(0, 100))
def test_too_big_matches_encoded_length(frame: str | bytes, limit: int) -> None:
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
    assert too_big(frame, limit) == (size > limit)


@given(st.text(max_size=200))
def test_clip_reason_fits_a_close_frame(reason: str) -> None:
    clipped = clip_reason(reason)
    assert len(clipped.encode()) <= 123
    if len(reason.encode()) <= 123:
        assert clipped == reason
