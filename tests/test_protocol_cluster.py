"""The cluster messages' codec (protocols/cluster.py), with plain calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duorelay.protocols.cluster import (
    Accepted,
    BadClusterMessage,
    Close,
    ClusterMessage,
    Frame,
    Join,
    Left,
    Locked,
    PlayerFrame,
    decode,
    encode,
    is_frame,
)

players = st.integers(min_value=0, max_value=2**32 - 1)
payloads = st.text() | st.binary()
messages = st.one_of(
    st.builds(Frame, payloads),
    st.builds(PlayerFrame, players, payloads),
    st.builds(Join, st.text()),
    st.builds(Left, st.text()),
    st.builds(Accepted, players),
    st.just(Locked()),
    st.builds(Close, st.integers(min_value=1000, max_value=4999), st.booleans(), st.text()),
)


@given(messages)
def test_decode_inverts_encode(message: ClusterMessage) -> None:
    assert decode(*encode(message)) == message


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (Frame("hé"), (b"t", "hé".encode())),
        (Frame(b"\x00\x01"), (b"b", b"\x00\x01")),
        (PlayerFrame(7, "hi"), (b"T", b"\x00\x00\x00\x07hi")),
        (PlayerFrame(258, b""), (b"B", b"\x00\x00\x01\x02")),
        (Join("wmbp:ABCD:client:n:1"), (b"J", b"wmbp:ABCD:client:n:1")),
        (Left("a"), (b"Q", b"a")),
        (Accepted(3), (b"A", b"\x00\x00\x00\x03")),
        (Locked(), (b"L", b"")),
        (Close(4410, True, "bye"), (b"C", b"\x11\x3a\x01bye")),
    ],
)
def test_wire_bytes(message: ClusterMessage, wire: tuple[bytes, bytes]) -> None:
    assert encode(message) == wire


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (b"x", b""),
        (b"", b"abc"),
        (b"t", b"\xff"),
        (b"T", b"\x00\x00\x00"),
        (b"A", b"\x01"),
        (b"C", b"\x03"),
        (b"J", b"\xc3"),
    ],
)
def test_bad_messages_are_refused(kind: bytes, payload: bytes) -> None:
    with pytest.raises(BadClusterMessage):
        decode(kind, payload)


def test_only_frames_count_against_the_publish_queue() -> None:
    assert is_frame(Frame("x")) and is_frame(PlayerFrame(1, b"x"))
    assert not any(is_frame(m) for m in (Join("a"), Left("a"), Accepted(1), Locked()))
    assert not is_frame(Close(1000, False, ""))
