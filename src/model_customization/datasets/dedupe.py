"""Exact and near-duplicate detection for training examples.

`exact_key(example)` is a hash of the example with every string lowercased and its whitespace collapsed, so two
examples that differ only in case or spacing share a key. `NearDuplicateFilter` finds examples whose texts are
similar (estimated Jaccard similarity of their shingle sets >= threshold) with MinHash + LSH banding: datasketch's
signatures and LSH (its affine32 scheme, seed 1), computed with numpy alone (tests compare the two).

Shingles: the text is lowercased and its whitespace collapsed. A text of at least 3 * `shingle` words is shingled
into word `shingle`-grams (5 by default); shorter texts into character 3-grams of the normalised text (word 5-grams
of a 12-word text are too few and too brittle: one changed word removes half of them). An empty text has one empty
shingle, so all empty texts are duplicates of each other. MinHash uses a fixed seed, so results are deterministic
across runs and processes. LSH candidates are confirmed against the stored MinHashes, so a reported duplicate always
has an estimated similarity of at least `threshold`.

Shingle hashes (the 32-bit values datasketch's `hashfunc` gives, before its permutations):
- a character shingle: datasketch's default sha1_hash32, the first 4 bytes of its UTF-8 SHA-1, little-endian;
- a word shingle: from its words' hashes, each the 8-byte BLAKE2b digest of the word's UTF-8 (lone surrogates passed
  through) read little-endian. With h = 0, then h = h * WORD_MULTIPLIER + word_hash (mod 2**64) for each word in
  order, the shingle's value is (h XOR h >> 32) mod 2**32. Each word is hashed once per text and every window
  combined at once in numpy (a SHA-1 per word shingle was most of a build's MinHash time). For random word hashes
  two different shingles collide in h with probability about 2**-63, so the 32-bit values collide as rarely as
  SHA-1's prefixes do, and the estimate is as unbiased as datasketch's with its default hash.
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
WORD_MULTIPLIER = 0x9E3779B97F4A7C15  # odd, so each step h -> h * WORD_MULTIPLIER + word is a bijection of h


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
    """A MinHash signature: per permutation, the least permuted hash of a shingle set (see minhash_of).

    The same values datasketch's MinHash gives with its default (affine32) scheme, seed SEED and the shingle hashes of
    the module docstring; made here with numpy alone, because importing datasketch imports scipy (for its LSH parameters), which
    took longer than a build's whole parse of a 50 MB corpus."""

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
def _permutations(num_perm: int, seed: int) -> tuple[Any, Any]:
    """datasketch's affine32 permutations h -> a * h + b (mod 2**32), drawn as it draws them (odd a)."""
    import numpy as np  # imported here: server start-up does not need it

    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


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


_HASH_CHUNK = 8192  # shingles hashed into the signature at a time: the (shingles x num_perm) array stays ~4 MB
# The MurmurHash3 32-bit finalizer's shifts and multipliers: the affine32 scheme mixes each shingle hash with it once
# before applying the permutations.
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


def _affine32_minimum(values: Any, a: Any, b: Any) -> Any:
    """Per permutation, min over `values` (uint32) of a * fmix32(value) + b in uint32 arithmetic (which wraps: that
    is the scheme's modulo 2**32), as datasketch's MinHash.update_batch computes it.

    Laid out as (permutations x values), so that each permutation's minimum runs along contiguous memory (numpy's
    vectorised reduction): about 3x faster than (values x permutations) reduced over its first axis, the same values.
    _HASH_CHUNK values at a time, so the products stay ~4 MB whatever the text's length."""
    import numpy as np  # imported here: server start-up does not need it

    shift1, multiplier1, shift2, multiplier2, shift3 = (np.uint32(c) for c in _FMIX32)
    mixed = values ^ (values >> shift1)
    mixed *= multiplier1
    mixed ^= mixed >> shift2
    mixed *= multiplier2
    mixed ^= mixed >> shift3
    a_column, b_column = a[:, None], b[:, None]
    minimum = np.full(len(a), (1 << 32) - 1, dtype=np.uint32)
    # One buffer for every chunk: a new 4 MB array per chunk costs its page faults each time, as much as the work.
    products = np.empty((len(a), min(len(mixed), _HASH_CHUNK)), dtype=np.uint32)
    for start in range(0, len(mixed), _HASH_CHUNK):
        chunk = mixed[None, start : start + _HASH_CHUNK]
        permuted = products[:, : chunk.shape[1]]
        np.multiply(a_column, chunk, out=permuted)
        permuted += b_column
        np.minimum(minimum, permuted.min(axis=1), out=minimum)
    return minimum


def _word_shingle_values(words: list[str], shingle: int) -> Any:
    """The 32-bit hash of every word `shingle`-gram window of `words`, in order (see the module docstring)."""
    import numpy as np  # imported here: server start-up does not need it

    distinct = dict.fromkeys(words)  # each distinct word is hashed once
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest() for word in distinct])
    index = dict(zip(distinct, range(len(distinct)), strict=True))
    positions = np.fromiter(map(index.__getitem__, words), dtype=np.intp, count=len(words))  # no Python loop per word
    word_hashes = np.frombuffer(digests, dtype="<u8").astype(np.uint64)[positions]
    windows = len(words) - shingle + 1
    combined = word_hashes[:windows].copy()
    multiplier = np.uint64(WORD_MULTIPLIER)
    for offset in range(1, shingle):
        combined *= multiplier  # wraps: arithmetic mod 2**64
        combined += word_hashes[offset : offset + windows]
    combined ^= combined >> np.uint64(32)
    return combined.astype(np.uint32)


def minhash_of(text: str, num_perm: int = 128, shingle: int = 5) -> MinHash:
    """The MinHash signature of a text's shingle set (deterministic: fixed seed).

    The values datasketch's MinHash(num_perm, seed=SEED, hashfunc=<the shingle hash of the module docstring>) gives
    after update_batch with every shingle (its default affine32 permutations; a test compares them). A repeated
    shingle is hashed again, which changes no minimum. Chunks keep a session of a million words from making a
    (num_perm x shingles) array of a GB; the minimum over the chunks is the minimum over all."""
    import numpy as np  # imported here: server start-up does not need it

    a, b = _permutations(num_perm, SEED)
    words = text.lower().split()  # the words of normalise_text(text), as shingles() splits them
    if len(words) >= 3 * shingle:
        values = _word_shingle_values(words, shingle)
    else:
        sha1 = hashlib.sha1
        prefixes = b"".join([sha1(s.encode("utf-8")).digest()[:4] for s in shingles(text, shingle)])
        values = np.frombuffer(prefixes, dtype="<u4").astype(np.uint32)
    return MinHash(_affine32_minimum(values, a, b))


__all__ = ["MinHash", "NearDuplicateFilter", "canonical_json", "example_text", "exact_key", "minhash_of", "normalise_text", "shingles"]
