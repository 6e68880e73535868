"""Tables in memory that forked processes share, so that what one worker learned the others know too: a set of
16-byte digests (SharedDigests: texts in which redaction found nothing) and a map from digests to counts
(SharedCounts: a long text's tokens).

A fixed table of slots in an anonymous shared mapping (made before the fork; each child maps the same pages). A digest
lives in one of WINDOW slots from the slot its first 8 bytes name; when those are all taken, one of them is written
over (the set forgets, it never grows). Memory is the table's size at most, and only the pages written to are ever
made, shared by every process (no copy per worker, as a set of bytes objects would be).

Writes are not atomic across processes, and no lock is taken: a process reading a slot while another writes it may
see part of each digest. Such a mixture equals the digest looked up only if that digest shares bytes with both the old
and the new one at the same places, which for 128-bit digests of different texts does not happen in practice; a read
that misses a digest being written is only a miss. So a member is a digest that was added (or, after being written
over, no longer one), never one that was not.
"""

from __future__ import annotations

import hashlib
import mmap

DIGEST_BYTES = 16
WINDOW = 8  # slots a key may live in: one read of WINDOW slots finds it
_EMPTY = bytes(DIGEST_BYTES)


class _SharedSlots:
    """Slots of `entry` bytes, each starting with a 16-byte key (all zero: empty), in an anonymous shared mapping."""

    entry = DIGEST_BYTES

    def __init__(self, slots: int) -> None:
        if slots < 1 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two, got {slots}")
        self.slots = slots
        self._mask = slots - 1
        # WINDOW - 1 slots more, so that a window starting at the last slot does not wrap around.
        self._table = mmap.mmap(-1, (slots + WINDOW - 1) * self.entry)  # MAP_SHARED | MAP_ANONYMOUS: kept across fork

    def _window(self, key: bytes) -> tuple[int, bytes]:
        start = (int.from_bytes(key[:8], "little") & self._mask) * self.entry
        return start, self._table[start : start + WINDOW * self.entry]

    def _slot(self, window: bytes, key: bytes) -> int:
        """The offset in `window` of the slot whose key is `key`, or -1."""
        at = window.find(key)
        while at != -1 and at % self.entry:  # found across two slots, or in a slot's value: not a key
            at = window.find(key, at + 1)
        return at

    def _write(self, key: bytes, value: bytes) -> None:
        """Put key + value in the key's slot, else an empty one of its window, else the one its 9th byte picks."""
        start, window = self._window(key)
        at = self._slot(window, key)
        if at == -1:
            at = self._slot(window, _EMPTY)
        if at == -1:  # the window is full: written over
            at = (key[8] % WINDOW) * self.entry
        self._table[start + at : start + at + self.entry] = key + value

    def close(self) -> None:
        self._table.close()


class SharedDigests(_SharedSlots):
    def __contains__(self, digest: bytes) -> bool:
        return self._slot(self._window(digest)[1], digest) != -1

    def add(self, digest: bytes) -> None:
        if len(digest) != DIGEST_BYTES or digest == _EMPTY:
            raise ValueError(f"a digest is {DIGEST_BYTES} bytes, not all zero")
        self._write(digest, b"")


class SharedCounts(_SharedSlots):
    """A shared map from (16-byte digest, name) to a count, for forked processes: a gate's workers give each other
    the token counts of the long texts they counted (a system prompt, a tool definition, a file read again).

    Laid out as SharedDigests, with 32-byte entries: the key (the digest mixed with the name, e.g. an encoding), the
    count and a check of both. An entry read while another process writes it, or written over meanwhile, fails the
    check and is a miss: a count handed back is always one that was put for that key."""

    entry = 32  # key (16 bytes), count (8), check (8)

    @staticmethod
    def _key(digest: bytes, name: str) -> bytes:
        key = hashlib.blake2b(digest + name.encode(), digest_size=DIGEST_BYTES).digest()
        return key if key != _EMPTY else b"\x01" + key[1:]

    @staticmethod
    def _check(key: bytes, count: bytes) -> bytes:
        return hashlib.blake2b(key + count, digest_size=8).digest()

    def get(self, digest: bytes, name: str) -> int | None:
        key = self._key(digest, name)
        window = self._window(key)[1]
        at = self._slot(window, key)
        if at == -1:
            return None
        count = window[at + DIGEST_BYTES : at + 24]
        if window[at + 24 : at + 32] != self._check(key, count):
            return None  # torn or written over: a miss
        return int.from_bytes(count, "little")

    def put(self, digest: bytes, name: str, count: int) -> None:
        if not 0 <= count < 1 << 63:
            raise ValueError(f"a count is a non-negative 64-bit number, got {count}")
        key = self._key(digest, name)
        value = count.to_bytes(8, "little")
        self._write(key, value + self._check(key, value))


__all__ = ["DIGEST_BYTES", "SharedCounts", "SharedDigests"]
