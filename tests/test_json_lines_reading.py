"""A JSON Lines record reads to exactly the object json.loads gives (orjson reads most lines; json the rest), and a
bad line is refused with the same message as before."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_customization.memory.reading import RecordError, parse_json_line

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson would read those as floats
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates too: json writes them as escapes
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def _same(a: object, b: object) -> bool:
    # json.dumps tells 1 from 1.0 and writes NaN, so equal dumps are the same values of the same types.
    return json.dumps(a) == json.dumps(b)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _values, max_size=5), st.booleans(), st.sampled_from(["", "\n", "\r\n", "  \n"]))
def test_a_line_reads_as_json_reads_it(obj: dict, ascii_only: bool, ending: str) -> None:
    raw = (json.dumps(obj, ensure_ascii=ascii_only) + ending).encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(raw.decode("utf-8").rstrip("\r\n"))
    except UnicodeDecodeError:  # a raw lone surrogate (ensure_ascii off): not UTF-8
        with pytest.raises(RecordError, match="invalid UTF-8"):
            parse_json_line(raw, 2)
        return
    assert _same(parse_json_line(raw, 2), expected)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"n": 123456789012345678901234567890}', {"n": 123456789012345678901234567890}),  # an int, not 1.23e+29
        (b'{"n": 18446744073709551615, "m": -9223372036854775808}', {"n": 18446744073709551615, "m": -9223372036854775808}),
        (b'{"x": 1e400, "y": NaN}', {"x": float("inf"), "y": float("nan")}),
        (b'{"s": "\\ud800"}', {"s": "\ud800"}),
        (b'{"a": 1, "a": 2}', {"a": 2}),
        (b'{"f": 0.1, "g": -0.0, "h": 5e-324}', {"f": 0.1, "g": -0.0, "h": 5e-324}),
    ],
)
def test_values_orjson_reads_differently_or_not_at_all_read_as_json_reads_them(raw: bytes, expected: dict) -> None:
    assert _same(parse_json_line(raw, 3), expected)


def test_a_byte_order_mark_is_read_on_the_first_line_only() -> None:
    assert parse_json_line(b'\xef\xbb\xbf{"a": 1}', 1) == {"a": 1}
    with pytest.raises(RecordError, match="invalid JSON"):
        parse_json_line(b'\xef\xbb\xbf{"a": 1}', 2)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"a": 1', "invalid JSON: Expecting ',' delimiter (column 8)"),
        (b'[1, 2]', "expected a JSON object, got a list"),
        (b'"text"', "expected a JSON object, got a string"),
        (b'{"a": "\xff"}', "invalid UTF-8 at byte 7 of the line"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: nested too deeply to read"),
    ],
)
def test_a_bad_line_is_refused_with_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(RecordError) as refused:
        parse_json_line(raw, 4)
    assert str(refused.value) == message
