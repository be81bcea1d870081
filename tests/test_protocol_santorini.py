"""The Santorini wire, sans-IO: the JSON value stream and the message shapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duorelay.games import santorini as rules
from duorelay.protocols import santorini as wire
from duorelay.protocols.santorini import END, NEED_DATA, JsonStream


def drain(stream: JsonStream) -> list[object]:
    values = []
    while (value := stream.next_value()) not in (NEED_DATA, END):
        values.append(value)
    return values


def test_values_split_and_joined() -> None:
    stream = JsonStream(100)
    stream.receive_data(b' "alpha"\n[0,')
    assert drain(stream) == ["alpha"]
    stream.receive_data(b"0][1,2]  [[")
    assert drain(stream) == [[0, 0], [1, 2]]
    stream.receive_data(b'"x\\"]",1]]')
    assert drain(stream) == [[['x"]', 1]]]
    assert stream.next_value() is NEED_DATA


def test_a_top_level_number_ends_at_the_next_byte_or_the_end() -> None:
    stream = JsonStream(100)
    stream.receive_data(b"12")
    assert stream.next_value() is NEED_DATA
    stream.receive_data(b"3 4")
    assert stream.next_value() == 123
    assert stream.next_value() is NEED_DATA
    stream.receive_data(b"")
    assert drain(stream) == [4]
    assert stream.next_value() is END


def test_utf8_split_across_reads() -> None:
    data = json.dumps("żółw", ensure_ascii=False).encode()
    stream = JsonStream(100)
    for byte in data:
        stream.receive_data(bytes([byte]))
    assert drain(stream) == ["żółw"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "cannot start"),
        (b"hello", "cannot start"),
        (b"nulx ", "not JSON"),
        (b"]", "cannot start"),
        (b"[1 2]", "not JSON"),
        (b'"\xc3"', "UTF-8"),
        (b"NaN ", "cannot start"),
        (b"[" * 17, "deeper"),
        (b"1" * 5000 + b" ", "not JSON"),
        (b'"a\x01b"', "not JSON"),
    ],
)
def test_bad_bytes_raise_not_json(data: bytes, reason: str) -> None:
    stream = JsonStream(100_000)
    stream.receive_data(data)
    with pytest.raises(wire.NotJson, match=reason):
        drain(stream)


def test_a_stream_that_ends_inside_a_value() -> None:
    stream = JsonStream(100)
    stream.receive_data(b'["abc')
    assert stream.next_value() is NEED_DATA
    stream.receive_data(b"")
    with pytest.raises(wire.NotJson, match="ended inside"):
        stream.next_value()


def test_an_oversize_value_is_refused_before_it_is_complete() -> None:
    stream = JsonStream(10)
    stream.receive_data(b'  ["0123456')
    assert stream.next_value() is NEED_DATA
    stream.receive_data(b"789")
    with pytest.raises(wire.ValueTooLarge):
        stream.next_value()
    exact = JsonStream(10)
    exact.receive_data(b'\n\n["012345"]\n\n["0123456"]')
    assert exact.next_value() == ["012345"]  # exactly 10 bytes
    with pytest.raises(wire.ValueTooLarge):
        exact.next_value()


def test_a_large_value_in_one_byte_pieces_is_scanned_once() -> None:
    value = ["x" * 20_000, [[1, 2]] * 2_000, 'q"\\']
    data = json.dumps(value).encode()
    stream = JsonStream(len(data))
    for i in range(len(data)):
        stream.receive_data(data[i : i + 1])
        if i < len(data) - 1:
            assert stream.next_text() is NEED_DATA
            # Resumed where it stopped: the scan never restarts from the beginning.
            assert stream._scanned >= i
    assert drain(stream) == [value]
    assert stream.buffered == 0


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(json_values, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    separators=st.lists(st.sampled_from(["", " ", "\n", "\t\r\n "]), min_size=7, max_size=7),
)
def test_random_splits_decode_to_the_same_values(
    values: list[object], cuts: list[int], separators: list[str]
) -> None:
    # Scalars next to each other need a separator; containers and strings do not.
    text = ""
    for value, separator in zip(values, separators, strict=False):
        encoded = json.dumps(value, ensure_ascii=False)
        text += encoded + (separator or ("" if encoded[-1] in '"]}' else " "))
    data = text.encode()
    stream = JsonStream(len(data) + 1)
    decoded: list[object] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        if cut > start:  # b"" would mean the end of the stream
            stream.receive_data(data[start:cut])
            start = cut
        decoded += drain(stream)
    stream.receive_data(b"")
    decoded += drain(stream)
    assert decoded == values
    assert stream.next_value() is END


def test_encode_is_compact_with_a_newline() -> None:
    assert wire.encode([["mallory1", 0, 0]]) == '[["mallory1",0,0]]\n'


def test_names() -> None:
    assert wire.decode_name("alpha") == "alpha"
    for bad in ["Alpha", "", "al pha", "alpha1", 3, ["alpha"], None]:
        with pytest.raises(wire.BadMessage):
            wire.decode_name(bad)


def test_places() -> None:
    assert wire.decode_place([0, 5]) == rules.Place(0, 5)
    assert wire.decode_place([9, -1]) == rules.Place(9, -1)  # the rules refuse it, not the shape
    for bad in [[0], [0, 1, 2], [True, 0], [0.0, 1], "0,1", {"x": 0}]:
        with pytest.raises(wire.BadMessage):
            wire.decode_place(bad)


def test_actions_both_ways() -> None:
    cases = [
        ("alpha", rules.GiveUp("alpha")),
        (["alpha1", "EAST", "PUT"], rules.WinningMove("alpha1", 1, 0)),
        (["alpha2", "PUT", "SOUTH", "WEST", "NORTH"], rules.MoveBuild("alpha2", 0, 1, -1, -1)),
    ]
    for value, action in cases:
        assert wire.decode_action(value) == action
        assert wire.encode_action(action) == value
    for bad in [
        ["alpha1", "EAST"],
        ["alpha1", "UP", "PUT"],
        ["alpha1", "NORTH", "EAST"],
        ["alpha1", "EAST", "PUT", "PUT"],
        [1, "EAST", "PUT"],
        ["alpha1", ["EAST"], "PUT"],
        [],
        7,
    ]:
        with pytest.raises(wire.BadMessage):
            wire.decode_action(bad)


def test_classify_in_the_order_of_section_3() -> None:
    board = rules.encode_board(
        rules.replay(
            "a", "b", [rules.Place(0, 0), rules.Place(1, 1), rules.Place(2, 2), rules.Place(3, 3)]
        )
    )
    assert wire.classify(["playing-as", "alphaa"]) == wire.PlayingAs("alphaa")
    assert wire.classify("bravo") == wire.Other("bravo")
    assert wire.classify([]) == wire.PlacementRequest(())
    assert wire.classify([["a1", 0, 0]]) == wire.PlacementRequest((("a1", rules.Place(0, 0)),))
    assert wire.classify(board) == wire.TakeTurn(rules.decode_board(board))
    assert wire.classify([["a", "b"], ["c", "a", "irregular"]]) == wire.Results(
        (wire.Result("a", "b"), wire.Result("c", "a", irregular=True))
    )
    for bad in [3, [["a", "b", "late"]], {"x": 1}]:
        with pytest.raises(wire.BadMessage):
            wire.classify(bad)


def test_results_message() -> None:
    results = [wire.Result("alpha", "mallory", irregular=True), wire.Result("bravo", "alpha")]
    assert wire.results_message(results) == [["alpha", "mallory", "irregular"], ["bravo", "alpha"]]
