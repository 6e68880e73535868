"""The table of digests a build's forked workers share (what one found clean, the others need not scan again)."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from model_customization.datasets import redaction
from model_customization.datasets.redaction import redact_conversation
from model_customization.datasets.shared_digests import SharedCounts, SharedDigests
from model_customization.memory.records import Conversation, Message


def _digest(n: int) -> bytes:
    return hashlib.blake2b(str(n).encode(), digest_size=16).digest()


def test_an_added_digest_is_a_member_and_others_are_not() -> None:
    table = SharedDigests(1024)
    added = [_digest(n) for n in range(200)]  # a fifth full: every window has room
    for digest in added:
        table.add(digest)
    assert all(digest in table for digest in added)
    assert not any(_digest(n) in table for n in range(200, 1200))
    table.add(added[0])  # twice: still one slot
    assert added[0] in table


def test_a_full_table_forgets_but_never_holds_what_was_not_added() -> None:
    table = SharedDigests(4)  # 4 slots (+7 so that a window never wraps): most of 300 digests are written over
    rng = random.Random(5)
    added = [rng.randbytes(16) for _ in range(300)]
    for digest in added:
        table.add(digest)
    members = [digest for digest in added if digest in table]
    assert 0 < len(members) <= 4 + 7
    assert added[-1] in table  # the last one written is there
    assert not any(rng.randbytes(16) in table for _ in range(1000))


def test_a_digest_found_across_two_slots_is_not_a_member() -> None:
    table = SharedDigests(1)
    first, second = bytes(range(1, 17)), bytes(range(17, 33))
    table.add(first)
    table.add(second)
    straddling = first[8:] + second[:8]  # the bytes are in the table, but not as one slot
    assert straddling not in table and first in table and second in table


@pytest.mark.parametrize("bad", [b"short", bytes(16)])
def test_a_digest_is_sixteen_bytes_not_all_zero(bad: bytes) -> None:
    with pytest.raises(ValueError):
        SharedDigests(8).add(bad)
    with pytest.raises(ValueError):
        SharedDigests(6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="shared by fork")
def test_what_a_forked_process_adds_the_others_see() -> None:
    table = SharedDigests(64)
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        table.add(_digest(7))
        os._exit(0)
    os.waitpid(child, 0)
    assert _digest(7) in table


FILE_BODY = "def load_config(path):\n    return read(path)\n" * 20  # long enough to be remembered when clean


@pytest.mark.skipif(not hasattr(os, "fork"), reason="shared by fork")
def test_a_text_a_forked_worker_found_clean_is_not_scanned_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_clean_texts", set())
    scanned: list[str] = []
    real = redaction._Redactor._detect
    monkeypatch.setattr(redaction._Redactor, "_detect", lambda self, text: (scanned.append(text), real(self, text))[1])
    conversation = Conversation("s1", [Message("user", FILE_BODY)], "f.jsonl", 1, "test")
    redaction.share_clean_texts()
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover (the child: a build worker)
            redact_conversation(conversation)
            os._exit(0)
        os.waitpid(child, 0)
        redacted, counts = redact_conversation(conversation)
        assert redacted.messages[0].content == FILE_BODY and not counts
        assert FILE_BODY not in scanned  # this process never scanned it: the worker had found it clean
    finally:
        redaction.unshare_clean_texts()
    assert redaction._shared_clean is None
    redact_conversation(conversation)  # back to this process's own memory, which never saw it
    assert scanned.count(FILE_BODY) == 1


def test_a_count_put_is_found_for_its_digest_and_name_only() -> None:
    table = SharedCounts(256)
    for n in range(100):
        table.put(_digest(n), "o200k_base", n * 7)
    assert [table.get(_digest(n), "o200k_base") for n in range(100)] == [n * 7 for n in range(100)]
    assert table.get(_digest(3), "cl100k_base") is None  # another encoding's count of the same text
    assert table.get(_digest(500), "o200k_base") is None
    table.put(_digest(3), "o200k_base", 99)  # put again: the new count
    assert table.get(_digest(3), "o200k_base") == 99


def test_a_torn_or_overwritten_count_is_a_miss_not_a_wrong_count() -> None:
    table = SharedCounts(1)
    table.put(_digest(1), "o200k_base", 1234)
    entry = bytearray(table._table[0:32])
    entry[16:24] = (4321).to_bytes(8, "little")  # another process's count half-written over this one
    table._table[0:32] = bytes(entry)
    assert table.get(_digest(1), "o200k_base") is None
    rng = random.Random(2)
    for n in range(200):  # far more than the 8 slots: every get is a right count or a miss
        table.put(rng.randbytes(16), "x", n)
    rng = random.Random(2)
    assert all(table.get(rng.randbytes(16), "x") in (None, n) for n in range(200))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="shared by fork")
def test_a_long_text_a_forked_worker_counted_is_not_counted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_customization.datasets import tokens

    text = "The quick brown fox jumps over the lazy dog. " * 200  # long: counted by digest
    monkeypatch.setattr(tokens, "_long_cache", {})
    counted: list[str] = []
    real = tokens._count_text
    monkeypatch.setattr(tokens, "_count_text", lambda t, e: (counted.append(t), real(t, e))[1])
    tokens.share_long_counts()
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover (the child: a gate's worker)
            tokens.count_text(text, "o200k_base")
            os._exit(0)
        os.waitpid(child, 0)
        assert tokens.count_text(text, "o200k_base") == real(text, "o200k_base")
        assert counted == []  # found in the table: this process never counted it
    finally:
        tokens.unshare_long_counts()
    assert tokens._shared_counts is None
