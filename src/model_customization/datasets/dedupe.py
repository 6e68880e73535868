"""Exact and near-duplicate detection for training examples.

`exact_key(example)` is a hash of the example with every string lowercased and its whitespace collapsed, so two
examples that differ only in case or spacing share a key. `NearDuplicateFilter` finds examples whose texts are
similar (estimated Jaccard similarity of their shingle sets >= threshold) with MinHash + LSH (datasketch).

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasketch import MinHash

_WS_RE = re.compile(r"\s+")
SEED = 1
CHAR_SHINGLE = 3


def normalise_text(text: str) -> str:
    # The same as _WS_RE.sub(" ", text.lower()).strip() (str.split and the regex's \s both split on exactly the
    # characters str.isspace accepts), without a regex pass over every character.
    return " ".join(text.lower().split())


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def exact_key(example: dict[str, Any]) -> str:
    """sha256 of the example (messages, tools, weights: everything) with strings lowercased and whitespace collapsed."""
    canonical = json.dumps(_normalise(example), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
    normalised = normalise_text(text)
    words = normalised.split(" ") if normalised else []
    if len(words) >= 3 * shingle:
        # zip of the shifted word lists gives each window once, without a slice per position.
        return set(map(" ".join, zip(*(words[offset:] for offset in range(shingle)))))
    if len(normalised) <= CHAR_SHINGLE:
        return {normalised}
    return {normalised[i : i + CHAR_SHINGLE] for i in range(len(normalised) - CHAR_SHINGLE + 1)}


LSH_THRESHOLD_CAP = 0.95


class NearDuplicateFilter:
    """Streaming near-duplicate filter: feed examples in order; later near-copies of earlier ones are reported."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise ValueError(f"shingle must be at least 1, got {shingle}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle
        from datasketch import MinHashLSH  # imported here: half a second that server start-up does not need

        # datasketch cannot band a threshold above ~0.97 (it needs at least two bands; 1.0 is a legal setting here).
        # Every candidate's Jaccard similarity is checked against the real threshold, so a lower LSH threshold only
        # finds more candidates to check, never more duplicates.
        self._lsh = MinHashLSH(threshold=min(threshold, LSH_THRESHOLD_CAP), num_perm=num_perm)
        self._hashes: dict[str, MinHash] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def minhash(self, text: str) -> MinHash:
        return minhash_of(text, self.num_perm, self.shingle)

    def duplicate_of(self, key: str, text: str | None, signature: MinHash | None = None) -> str | None:
        """The key of an earlier near-duplicate of `text` (nothing is stored then); else store it and return None.

        `signature` is minhash_of(text) computed elsewhere (a build's worker process): then text is not needed."""
        if key in self._hashes:
            raise ValueError(f"key {key!r} was already added; keys must be unique")
        if signature is None:
            signature = self.minhash(text or "")
        best: tuple[float, str] | None = None
        for candidate in self._lsh.query(signature):
            similarity = signature.jaccard(self._hashes[candidate])
            if similarity >= self.threshold and (best is None or (similarity, candidate) > best):
                best = (similarity, candidate)
        if best is not None:
            return best[1]
        self._lsh.insert(key, signature)
        self._hashes[key] = signature
        return None

    def is_duplicate(self, key: str, text: str | None, signature: MinHash | None = None) -> bool:
        """True when a near-duplicate was already seen; otherwise `text` is remembered under `key` and False returned."""
        return self.duplicate_of(key, text, signature) is not None


_HASH_CHUNK = 8192  # shingles hashed into the signature at a time: the (shingles x num_perm) array stays ~8 MB
# The MurmurHash3 32-bit finalizer's shifts and multipliers: datasketch's affine32 scheme (its default) mixes each
# input hash with it once before applying the permutations.
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


def _affine32_minimum(values: Any, a: Any, b: Any) -> Any:
    """Per permutation, min over `values` (uint32) of a * fmix32(value) + b in uint32 arithmetic: exactly what
    datasketch's MinHash.update_batch computes in its affine32 scheme (a test compares them), without its round trip
    through a Python list of ints (an int call per shingle), which took most of its time."""
    import numpy as np

    shift1, multiplier1, shift2, multiplier2, shift3 = (np.uint32(c) for c in _FMIX32)
    mixed = values ^ (values >> shift1)
    mixed *= multiplier1
    mixed ^= mixed >> shift2
    mixed *= multiplier2
    mixed ^= mixed >> shift3
    permuted = mixed[:, None] * a  # uint32 wraps, which is the scheme's modulo 2**32
    permuted += b
    return permuted.min(axis=0)


def minhash_of(text: str, num_perm: int = 128, shingle: int = 5) -> MinHash:
    """The MinHash signature of a text's shingle set (deterministic: fixed seed, datasketch's sha1_hash32 values).

    Each shingle's hash value is what datasketch's default sha1_hash32 gives (the first 4 bytes of its UTF-8 SHA-1,
    little-endian), read for a whole chunk at once with numpy; the permutations are applied as update_batch applies
    them (_affine32_minimum), so the signature is the one update_batch gives with every shingle. Chunks keep a
    session of a million words from making a (shingles x num_perm) array of a GB; the minimum over the chunks is the
    minimum over all."""
    import numpy as np
    from datasketch import MinHash

    signature = MinHash(num_perm=num_perm, seed=SEED, hashfunc=int)
    same_scheme = getattr(signature, "scheme", None) == "affine32" and signature.hashvalues.dtype == np.uint32
    a, b = signature.permutations
    sha1 = hashlib.sha1
    found = list(shingles(text, shingle))
    minimum = signature.hashvalues
    for start in range(0, len(found), _HASH_CHUNK):
        prefixes = b"".join([sha1(s.encode("utf-8")).digest()[:4] for s in found[start : start + _HASH_CHUNK]])
        values = np.frombuffer(prefixes, dtype="<u4").astype(np.uint32)
        if same_scheme:
            minimum = np.minimum(minimum, _affine32_minimum(values, a, b))
        else:  # another datasketch: let it apply its own scheme
            signature.update_batch(values.tolist())
    if same_scheme:
        signature.hashvalues = minimum
    return signature


__all__ = ["NearDuplicateFilter", "example_text", "exact_key", "minhash_of", "normalise_text", "shingles"]
