"""A set of 16-byte digests in memory that forked processes share: what one build worker learned (a text in which
redaction found nothing), the others know too.

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

import mmap

DIGEST_BYTES = 16
WINDOW = 8  # slots a digest may live in: one read of 128 bytes finds it
_EMPTY = bytes(DIGEST_BYTES)


class SharedDigests:
    def __init__(self, slots: int) -> None:
        if slots < 1 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two, got {slots}")
        self.slots = slots
        self._mask = slots - 1
        # WINDOW - 1 slots more, so that a window starting at the last slot does not wrap around.
        self._table = mmap.mmap(-1, (slots + WINDOW - 1) * DIGEST_BYTES)  # MAP_SHARED | MAP_ANONYMOUS: kept across fork

    def _window(self, digest: bytes) -> tuple[int, bytes]:
        start = (int.from_bytes(digest[:8], "little") & self._mask) * DIGEST_BYTES
        return start, self._table[start : start + WINDOW * DIGEST_BYTES]

    @staticmethod
    def _slot(window: bytes, digest: bytes) -> int:
        """The offset of the slot of `window` that holds `digest`, or -1."""
        at = window.find(digest)
        while at != -1 and at % DIGEST_BYTES:  # found across two slots: not a slot's value
            at = window.find(digest, at + 1)
        return at

    def __contains__(self, digest: bytes) -> bool:
        return self._slot(self._window(digest)[1], digest) != -1

    def add(self, digest: bytes) -> None:
        if len(digest) != DIGEST_BYTES or digest == _EMPTY:
            raise ValueError(f"a digest is {DIGEST_BYTES} bytes, not all zero")
        start, window = self._window(digest)
        if self._slot(window, digest) != -1:
            return
        at = self._slot(window, _EMPTY)
        if at == -1:  # the window is full: write over the slot the digest's next byte picks
            at = (digest[8] % WINDOW) * DIGEST_BYTES
        self._table[start + at : start + at + DIGEST_BYTES] = digest

    def close(self) -> None:
        self._table.close()


__all__ = ["DIGEST_BYTES", "SharedDigests"]
