"""Exact and near-duplicate detection for training examples.

`exact_key(example)` is a hash of the example with every string lowercased and its whitespace collapsed, so two
examples that differ only in case or spacing share a key. `NearDuplicateFilter` finds examples whose texts are
similar (estimated Jaccard similarity of their shingle sets >= threshold) with MinHash (one permutation hashing with
densification: one hash per shingle, see minhash_of) + LSH banding with the bands datasketch would choose.

Shingles: the text is lowercased and its whitespace collapsed. A text of at least 3 * `shingle` words is shingled
into word `shingle`-grams (5 by default); shorter texts into character 3-grams of the normalised text (word 5-grams
of a 12-word text are too few and too brittle: one changed word removes half of them). An empty text has one empty
shingle, so all empty texts are duplicates of each other. MinHash uses a fixed seed, so results are deterministic
across runs and processes. LSH candidates are confirmed against the stored MinHashes, so a reported duplicate always
has an estimated similarity of at least `threshold`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_WS_RE = re.compile(r"\s+")
SEED = 1
CHAR_SHINGLE = 3


def normalise_text(text: str) -> str:
    # The same as _WS_RE.sub(" ", text.lower()).strip() (str.split and the regex's \s both split on exactly the
    # characters str.isspace accepts), without a regex pass over every character.
    return " ".join(text.lower().split())


def _normalise(value: Any, other: list[Any] | None = None) -> Any:
    """value with every string normalised; anything but str, list, dict, int, bool and None found inside is appended
    to `other` (floats above all: see exact_key)."""
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, list):
        return [_normalise(v, other) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v, other) for k, v in value.items()}
    if other is not None and type(value) not in _PLAIN_SCALARS:
        other.append(value)
    return value


_PLAIN_SCALARS = (int, bool, type(None))


def exact_key(example: dict[str, Any]) -> str:
    """sha256 of the example (messages, tools, weights: everything) with strings lowercased and whitespace collapsed.

    The hash is of json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":")) of the normalised example.
    orjson writes the same bytes for strings, ints up to 64 bits, booleans, None, lists and dicts with str keys (keys
    sorted by code point, which UTF-8 byte order is), about ten times faster; json writes anything else: floats
    (json's repr "1e-05" against orjson's "1e-5", NaN against null), larger ints, non-str keys (orjson refuses them
    and lone surrogates, json then decides as before), any other type."""
    import orjson

    other: list[Any] = []
    normalised = _normalise(example, other)
    if not other:
        try:
            return hashlib.sha256(orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except TypeError:  # orjson.JSONEncodeError: a key not a str, an int over 64 bits, a lone surrogate
            pass
    canonical = json.dumps(normalised, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _only_plain_scalars(value: Any) -> bool:
    """Whether value holds nothing but str, int, bool, None, lists and dicts (where orjson writes json's bytes)."""
    if isinstance(value, str) or type(value) in _PLAIN_SCALARS:
        return True
    if isinstance(value, list):
        return all(map(_only_plain_scalars, value))
    if isinstance(value, dict):
        return all(map(_only_plain_scalars, value.values()))
    return False


def canonical_json(value: Any) -> bytes:
    """json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")) as UTF-8: a dataset's lines.

    Written by orjson where it gives the same bytes (see exact_key: no floats or other types inside, str keys, ints up
    to 64 bits, no lone surrogates), else by json, which also raises what it raised before."""
    import orjson

    if _only_plain_scalars(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: a key not a str, an int over 64 bits, a lone surrogate
            pass
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def example_text(example: dict[str, Any]) -> str:
    """The text near-duplicate detection compares: user and assistant contents plus assistant tool calls, in order."""
    parts: list[str] = []
    for message in example.get("messages") or []:
        if message.get("role") not in ("user", "assistant"):
            continue
        if message.get("content"):
            parts.append(str(message["content"]))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            parts.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    return "\n".join(parts)


def shingles(text: str, shingle: int = 5) -> set[str]:
    """The shingle set of a text (see the module docstring for the short-text fallback)."""
    words = text.lower().split()  # the words of normalise_text(text), without joining them and splitting again
    if len(words) >= 3 * shingle:
        # zip of the shifted word lists gives each window once, without a slice per position.
        return set(map(" ".join, zip(*(words[offset:] for offset in range(shingle)), strict=False)))
    normalised = " ".join(words)
    if len(normalised) <= CHAR_SHINGLE:
        return {normalised}
    return {normalised[i : i + CHAR_SHINGLE] for i in range(len(normalised) - CHAR_SHINGLE + 1)}


LSH_THRESHOLD_CAP = 0.95


class MinHash:
    """A MinHash signature: num_perm uint32 values (see minhash_of); two texts' values agree, position by position,
    about as often as their shingle sets' Jaccard similarity."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: Any) -> None:
        self.hashvalues = hashvalues

    def digest(self) -> Any:
        return self.hashvalues.copy()

    def jaccard(self, other: MinHash) -> float:
        """Estimated Jaccard similarity: the share of permutations whose minima agree."""
        if len(other.hashvalues) != len(self.hashvalues):
            raise ValueError("cannot compare MinHash signatures of different numbers of permutations")
        import numpy as np

        return float(np.count_nonzero(self.hashvalues == other.hashvalues)) / len(self.hashvalues)

    def __getstate__(self) -> Any:
        return self.hashvalues

    def __setstate__(self, hashvalues: Any) -> None:
        self.hashvalues = hashvalues


@lru_cache(maxsize=8)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) for an LSH index at `threshold`: the choice datasketch's MinHashLSH makes (false
    positives and false negatives weighted equally), so that candidates, and so the duplicates found, are the same.

    Both error areas are integrals of polynomials of degree bands * rows <= num_perm, which Gauss-Legendre
    quadrature with num_perm / 2 + 1 nodes integrates exactly (up to rounding), where datasketch calls scipy's quad."""
    import numpy as np  # imported here: server start-up does not need it

    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def integral(f: Callable[[Any], Any], low: float, high: float) -> float:
        half = (high - low) / 2
        return float(half * np.dot(weights, f(half * nodes + (low + high) / 2)))

    best, chosen = float("inf"), (0, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = integral(lambda s, b=bands, r=rows: 1 - (1 - s**r) ** b, 0.0, threshold)
            false_negative = integral(lambda s, b=bands, r=rows: (1 - s**r) ** b, threshold, 1.0)
            error = 0.5 * false_positive + 0.5 * false_negative
            if error < best:
                best, chosen = error, (bands, rows)
    return chosen


class NearDuplicateFilter:
    """Streaming near-duplicate filter: feed examples in order; later near-copies of earlier ones are reported.

    MinHash + LSH banding: two signatures are candidates when all rows of some band agree (lsh_bands chooses the
    bands); a candidate is a duplicate when its estimated Jaccard similarity reaches the threshold."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise ValueError(f"shingle must be at least 1, got {shingle}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle
        # Banding cannot serve a threshold above ~0.97 (it needs at least two bands; 1.0 is a legal setting here).
        # Every candidate's Jaccard similarity is checked against the real threshold, so a lower LSH threshold only
        # finds more candidates to check, never more duplicates.
        bands, rows = lsh_bands(min(threshold, LSH_THRESHOLD_CAP), num_perm)
        self._bands = [(band * rows, (band + 1) * rows) for band in range(bands)]
        self._buckets: list[dict[bytes, list[str]]] = [{} for _ in self._bands]
        self._hashes: dict[str, MinHash] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def minhash(self, text: str) -> MinHash:
        return minhash_of(text, self.num_perm, self.shingle)

    def _band_keys(self, signature: MinHash) -> list[bytes]:
        values = signature.hashvalues
        if len(values) != self.num_perm:
            raise ValueError(f"signature has {len(values)} permutations, this filter {self.num_perm}")
        return [values[start:end].tobytes() for start, end in self._bands]

    def duplicate_of(self, key: str, text: str | None, signature: MinHash | None = None) -> str | None:
        """The key of an earlier near-duplicate of `text` (nothing is stored then); else store it and return None.

        `signature` is minhash_of(text) computed elsewhere (a build's worker process): then text is not needed."""
        if key in self._hashes:
            raise ValueError(f"key {key!r} was already added; keys must be unique")
        if signature is None:
            signature = self.minhash(text or "")
        band_keys = self._band_keys(signature)
        candidates = {found for bucket, band_key in zip(self._buckets, band_keys, strict=True) for found in bucket.get(band_key, ())}
        best: tuple[float, str] | None = None
        for candidate in candidates:
            similarity = signature.jaccard(self._hashes[candidate])
            if similarity >= self.threshold and (best is None or (similarity, candidate) > best):
                best = (similarity, candidate)
        if best is not None:
            return best[1]
        for bucket, band_key in zip(self._buckets, band_keys, strict=True):
            bucket.setdefault(band_key, []).append(key)
        self._hashes[key] = signature
        return None

    def is_duplicate(self, key: str, text: str | None, signature: MinHash | None = None) -> bool:
        """True when a near-duplicate was already seen; otherwise `text` is remembered under `key` and False returned."""
        return self.duplicate_of(key, text, signature) is not None


# Shingle hashes. A shingle of word 5-grams is a span of the normalised text's UTF-8 bytes (the words are joined by
# single spaces, and no word holds a 0x20 byte), so every shingle's hash is computed at once from prefix sums in
# numpy: the polynomial hash sum(byte[i] * P**(i - start)) mod 2**64 of the span, then mixed by MurmurHash3's 64-bit
# finaliser. Prefix sums run over windows of at most _WINDOW bytes (the powers of P are kept for one window only);
# a shingle longer than a window (a 256 KB "word") is hashed on its own with blake2b, which is then its hash wherever
# it occurs (the choice depends on the shingle alone). Character 3-grams are hashed from their code points.
_P = 0x100000001B3  # odd, so invertible modulo 2**64
_WINDOW = 1 << 18
_FMIX64 = (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33)
_BIN_BITS = 7  # log2 of the largest num_perm the one-permutation scheme serves through the top bits of a hash


@lru_cache(maxsize=1)
def _powers() -> tuple[Any, Any]:
    """P**i and P**-i modulo 2**64 for i in [0, _WINDOW] (uint64 products wrap: that is the modulo)."""
    import numpy as np  # imported here: server start-up does not need it

    def powers_of(base: int) -> Any:
        out = np.empty(_WINDOW + 1, dtype=np.uint64)
        out[0] = 1
        out[1:] = base
        return np.cumprod(out, out=out)

    return powers_of(_P), powers_of(pow(_P, -1, 1 << 64))


def _fmix64(values: Any) -> Any:
    import numpy as np

    shift1, multiplier1, shift2, multiplier2, shift3 = (np.uint64(c) for c in _FMIX64)
    values ^= values >> shift1
    values *= multiplier1
    values ^= values >> shift2
    values *= multiplier2
    values ^= values >> shift3
    return values


def _span_hashes(data: bytes, starts: Any, ends: Any) -> Any:
    """The polynomial hash (before mixing) of each span data[starts[i]:ends[i]]; spans ordered by start and end."""
    import numpy as np

    powers, inverse_powers = _powers()
    raw = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(len(starts), dtype=np.uint64)
    first = 0
    while first < len(starts):
        base = int(starts[first])
        if int(ends[first]) - base > _WINDOW:  # one shingle longer than a window: its own hash
            digest = hashlib.blake2b(data[base : int(ends[first])], digest_size=8).digest()
            out[first] = int.from_bytes(digest, "little")
            first += 1
            continue
        # The spans that end inside this window [base, base + _WINDOW] (ends grow with starts).
        last = int(np.searchsorted(ends, base + _WINDOW, side="right"))
        top = int(ends[last - 1])
        prefix = np.zeros(top - base + 1, dtype=np.uint64)
        np.cumsum(raw[base:top] * powers[: top - base], out=prefix[1:])
        local_starts = starts[first:last] - base
        out[first:last] = (prefix[ends[first:last] - base] - prefix[local_starts]) * inverse_powers[local_starts]
        first = last
    return out


def shingle_hashes(text: str, shingle: int = 5) -> Any:
    """A 64-bit hash of each shingle of `text` (uint64 array; a shingle occurring twice appears twice), the same
    shingles `shingles` gives: word shingles hash their UTF-8 bytes, character 3-grams their code points."""
    import numpy as np

    words = text.lower().split()
    if len(words) >= 3 * shingle:
        data = " ".join(words).encode("utf-8", "surrogatepass")
        spaces = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 32)
        starts = np.concatenate(([0], spaces + 1))[: len(words) - shingle + 1]
        ends = np.concatenate((spaces, [len(data)]))[shingle - 1 :]
        return _fmix64(_span_hashes(data, starts, ends))
    points = np.frombuffer(" ".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    if len(points) <= CHAR_SHINGLE:  # the whole text is the one shingle; its length keeps "" and "a" apart
        raw = sum(int(c) * _P ** (CHAR_SHINGLE - i) for i, c in enumerate(points)) + len(points)
        return _fmix64(np.array([raw % (1 << 64)], dtype=np.uint64))
    grams = len(points) - CHAR_SHINGLE + 1
    raw = np.full(grams, CHAR_SHINGLE, dtype=np.uint64)  # the length term, as for a whole short text
    for offset in range(CHAR_SHINGLE):
        raw += points[offset : offset + grams] * np.uint64(pow(_P, CHAR_SHINGLE - offset, 1 << 64))
    return _fmix64(raw)


@lru_cache(maxsize=8)
def _borrow_order(num_perm: int, seed: int) -> Any:
    """Per bin, the other bins in the order an empty bin tries them (a fixed random order: densification)."""
    import numpy as np

    generator = np.random.RandomState(seed)
    order = np.empty((num_perm, num_perm - 1), dtype=np.intp)
    for bin_ in range(num_perm):
        others = np.array([b for b in range(num_perm) if b != bin_], dtype=np.intp)
        order[bin_] = generator.permutation(others)
    return order


def minhash_of(text: str, num_perm: int = 128, shingle: int = 5) -> MinHash:
    """The MinHash signature of a text's shingle set (deterministic: fixed seed), by one permutation hashing with
    optimal densification (Shrivastava, ICML 2017).

    Each shingle's 64-bit hash goes to one of num_perm bins by its top bits; a bin's value is its least hash (the
    next 32 bits of it). An empty bin takes the value of the first non-empty bin in its fixed borrowing order. For
    two sets, each bin's values agree with probability equal to their Jaccard similarity (the first bin of the
    borrowing order that is non-empty in the union decides, and its least hash over the union is shared exactly when
    it belongs to both sets), as with num_perm independent permutations, at the cost of one hash per shingle instead
    of num_perm. num_perm must be a power of two up to 128."""
    import numpy as np

    if num_perm & (num_perm - 1) or not 1 < num_perm <= 1 << _BIN_BITS:
        raise ValueError(f"num_perm must be a power of two from 2 to {1 << _BIN_BITS}, got {num_perm}")
    hashes = np.sort(shingle_hashes(text, shingle))
    bin_shift = 64 - (num_perm.bit_length() - 1)
    edges = np.append(np.searchsorted(hashes, np.arange(num_perm, dtype=np.uint64) << np.uint64(bin_shift)), len(hashes))
    filled = edges[:-1] < edges[1:]
    least = hashes[np.minimum(edges[:-1], len(hashes) - 1)]
    values = ((least >> np.uint64(bin_shift - 32)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    if not filled.all():
        empty = np.flatnonzero(~filled)
        order = _borrow_order(num_perm, SEED)[empty]
        values[empty] = values[order[np.arange(len(empty)), filled[order].argmax(axis=1)]]
    return MinHash(values)


__all__ = ["MinHash", "NearDuplicateFilter", "canonical_json", "example_text", "exact_key", "minhash_of", "normalise_text", "shingle_hashes", "shingles"]
