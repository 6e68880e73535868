"""The gate reads rows with orjson and digests them with orjson's sorted text where that is exact: every row must
come out as json.loads would give it (value, key order, or the same error; a row holding a lone surrogate is
refused as not_unicode), and two rows must get the same digest exactly when json.dumps(sort_keys=True) gives them
the same text (the duplicate check)."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from model_customization.datasets.validate import load_json_line, parse_line, parse_line_digest, row_digest

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson would read them as floats
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, 0])
    | st.floats()  # NaN and infinities included (json writes and reads them)
    | st.sampled_from([1e19, -1e19, 1.8e19, -9.3e18, 0.0, -0.0, 1.0, 5e-324])
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "a\udfffb", "\ufeff", "\x00", "é", "🙂", "\u2028"])
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | st.sampled_from(["\ud800", "role"]), inner, max_size=4), max_leaves=12)


def _json_reference(raw: bytes):
    """What the gate did before orjson: json.loads of the UTF-8 text, or the error's text."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return "error", f"not valid JSON in UTF-8 ({error})"
    except RecursionError:
        return "recursion", None
    return "row", value


def _lone_surrogate(value) -> str | None:
    """The escape of the first lone surrogate json.dumps would write for value (in its order: keys before their
    values), or None: the gate refuses such a row (not_unicode), since no tokenizer can read it."""
    text = json.dumps(value, ensure_ascii=False)
    found = next((c for c in text if 0xD800 <= ord(c) <= 0xDFFF), None)
    return None if found is None else f"\\u{ord(found):04x}"


def _same(a, b) -> bool:
    # repr shows int vs float, -0.0, key order and NaN alike (NaN != NaN)
    return repr(a) == repr(b)


def _check(raw: bytes) -> None:
    kind, expected = _json_reference(raw)
    if kind == "recursion":
        return
    row, problem = parse_line("train", 1, raw, 1 << 30)
    row_too, digest, problem_too = parse_line_digest("train", 1, raw, 1 << 30)  # the workers' way
    if kind == "error":
        assert row is None and problem is not None and problem.message == expected
        assert row_too is None and problem_too == problem
    elif raw.strip() and _lone_surrogate(expected):
        assert row is None and problem is not None and problem.code == "not_unicode"
        assert f"({_lone_surrogate(expected)}:" in problem.message
        assert (row_too, digest, problem_too) == (None, None, problem)
    elif raw.strip():
        assert problem is None and _same(row, expected)
        assert problem_too is None and _same(row_too, expected)
        assert digest == row_digest(expected) == load_json_line(raw)[1]  # the digest read along equals row_digest


@settings(max_examples=400, deadline=None)
@given(_VALUES, st.booleans(), st.booleans())
def test_a_line_reads_as_json_reads_it(value, ascii_only, spaced):
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    raw = text.encode("utf-8", "surrogatepass") + b"\n"  # lone surrogates written raw make invalid UTF-8
    _check(raw)


@settings(max_examples=400, deadline=None)
@given(_VALUES, st.integers(0, 10**6), st.binary(max_size=3))
def test_a_damaged_line_fails_or_reads_as_json_does(value, seed, junk):
    raw = bytearray(json.dumps(value).encode())
    if raw:
        at = random.Random(seed).randrange(len(raw) + 1)
        raw[at:at] = junk  # invalid JSON, bad UTF-8, a BOM, control characters ...
    _check(bytes(raw))


def test_known_differences_of_orjson_read_as_json():
    for raw in [b'{"a": 18446744073709551616}', b'{"a": -9223372036854775809}', b'{"a": NaN}', b'{"a": 1e400}',
                b'{"a": "\\ud800"}', b'\xef\xbb\xbf{"a": 1}', b'{"b": 1, "a": 2, "b": 3}', b'{"a": "caf\xe9"}']:  # fmt: skip
        _check(raw)
    row, _ = parse_line("train", 1, b'{"a": 18446744073709551616}', 1 << 30)
    assert row == {"a": 2**64} and type(row["a"]) is int
    # A float written with an exponent and one that was an integer over 64 bits: not the same row.
    assert load_json_line(b'{"a": 1.8446744073709552e19}')[1] != load_json_line(b'{"a": 18446744073709551616}')[1]
    assert load_json_line(b'{"a": 1e19, "b": "x"}')[1] == load_json_line(b'{"b":"x","a":1E+19}')[1]


def _shuffled(value, rng):
    if isinstance(value, dict):
        items = [(k, _shuffled(v, rng)) for k, v in value.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


@settings(max_examples=400, deadline=None)
@given(_VALUES, _VALUES, st.integers(0, 10**6))
def test_digests_are_equal_exactly_when_the_sorted_json_is(a, b, seed):
    reordered = _shuffled(a, random.Random(seed))
    assert row_digest(reordered) == row_digest(a)
    assert (row_digest(a) == row_digest(b)) == (_canonical(a) == _canonical(b))


def test_values_orjson_writes_alike_stay_apart():
    # orjson writes NaN and infinities as null: the rows are still not duplicates of each other.
    rows = [{"w": None}, {"w": float("nan")}, {"w": float("inf")}, {"w": float("-inf")}, {"w": 2**64}, {"w": 1.8446744073709552e19}, {"w": 1}, {"w": 1.0}, {"w": True}]
    assert len({row_digest(r) for r in rows}) == len(rows)
