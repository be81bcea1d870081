"""WMBP's sans-IO decode/encode and the host room, with plain calls."""

from __future__ import annotations

import json

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from duorelay.protocols.wmbp import (
    BadMessage,
    Error,
    From,
    FromStr,
    Kick,
    PlayerJoined,
    PlayerLeft,
    Prepare,
    PrepareReply,
    Start,
    State,
    Stop,
    To,
    ToStr,
    code_for_path,
    decode,
    encode,
)
from duorelay.relay.rooms import HostRoom, NoFreeCode, Registry, RoomLocked


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"cmd": "prepare", "max_players": 4}, Prepare(4, "")),
        ({"cmd": "prepare", "max_players": 4, "name": "n", "extra": 1}, Prepare(4, "n")),
        ({"cmd": "start"}, Start()),
        ({"cmd": "kick", "player": 3}, Kick(3)),
        ({"cmd": "stop"}, Stop()),
        ({"cmd": "to", "to": [1, 2], "data": [104, 105]}, To((1, 2), b"hi")),
        ({"cmd": "to_str", "to": [], "data": "hi"}, ToStr((), "hi")),
    ],
)
def test_decode_cbor_and_json(wire: dict[str, object], message: object) -> None:
    assert decode(cbor2.dumps(wire)) == message
    assert decode(json.dumps(wire)) == message


def test_byte_payload_as_cbor_byte_string() -> None:
    assert decode(cbor2.dumps({"cmd": "to", "to": [1], "data": b"\x00\xff"})) == To(
        (1,), b"\x00\xff"
    )


def test_encode_uses_wmbp_field_names_and_integer_arrays() -> None:
    assert cbor2.loads(encode(From(7, b"\x01\x02"))) == {"cmd": "from", "from": 7, "data": [1, 2]}
    assert cbor2.loads(encode(FromStr(7, "x"))) == {"cmd": "from_str", "from": 7, "data": "x"}
    assert cbor2.loads(encode(State("n", (1, 2), 4, True))) == {
        "cmd": "state",
        "name": "n",
        "players": [1, 2],
        "max_players": 4,
        "accept_conns": True,
    }


server_messages = st.one_of(
    st.builds(
        State,
        st.text(),
        st.lists(st.integers(1, 2**32 - 1)).map(tuple),
        st.integers(0, 99),
        st.booleans(),
    ),
    st.builds(PrepareReply, st.text()),
    st.builds(PlayerJoined, st.integers(1, 2**32 - 1)),
    st.builds(PlayerLeft, st.integers(1, 2**32 - 1)),
    st.builds(From, st.integers(1, 2**32 - 1), st.binary()),
    st.builds(FromStr, st.integers(1, 2**32 - 1), st.text()),
    st.builds(Error, st.text()),
)


@given(server_messages)
def test_server_messages_echoed_back_are_ignored(message: object) -> None:
    assert decode(encode(message)) is None  # type: ignore[arg-type]


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_frames_decode_or_raise_bad_message(frame: str | bytes) -> None:
    try:
        decode(frame)
    except BadMessage as error:
        assert str(error)


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(["cmd", "max_players", "name", "player", "to", "data"]), cbor_values
    )
)
def test_arbitrary_maps_decode_or_raise_bad_message(raw: dict[str, object]) -> None:
    if "cmd" in raw or raw:
        raw.setdefault("cmd", "to")
    try:
        decode(cbor2.dumps(raw))
    except BadMessage as error:
        assert str(error)


def test_deep_nesting_is_a_bad_message_not_a_crash() -> None:
    with pytest.raises(BadMessage):
        decode("[" * 100_000)
    with pytest.raises(BadMessage):
        decode(b"\x81" * 100_000)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/ABCD", "ABCD"),
        ("/abcd", None),
        ("/ABC1", None),
        ("/ÄBCD", None),
        ("/ws", None),
        ("/ABCDE", None),
        ("/A/CD", None),
        ("/", None),
    ],
)
def test_code_for_path(path: str, code: str | None) -> None:
    assert code_for_path(path) == code


def test_host_room_lifecycle() -> None:
    rooms: Registry[str] = Registry()
    room: HostRoom[str] = HostRoom("host")
    with pytest.raises(RoomLocked):
        room.join("early")  # not prepared yet
    code = rooms.register(room, max_rooms=10)
    assert rooms.find(code) is room and len(rooms) == 1
    room.prepare(2, "quiz")
    assert (room.join("a"), room.join("b")) == (1, 2)
    with pytest.raises(RoomLocked):
        room.join("c")
    assert room.kick(1) == "a" and list(room.clients) == [2]
    assert room.join("d") == 3  # ids are never reused
    assert room.leave(1)  # the kicked client's socket is gone: report it now
    assert room.drop(2) == "b" and not room.leave(2)  # dropped: reported already
    room.start()
    with pytest.raises(RoomLocked):
        room.join("e")
    assert room.close() == ["d"]
    rooms.unregister(room)
    rooms.unregister(room)
    assert rooms.find(code) is None and len(rooms) == 0


def test_rooms_cap() -> None:
    rooms: Registry[str] = Registry()
    rooms.register(HostRoom("one"), max_rooms=1)
    with pytest.raises(NoFreeCode):
        rooms.register(HostRoom("two"), max_rooms=1)
