"""The build's fast paths give exactly what the slow ones gave: MinHash signatures and redaction of repeated texts."""

from __future__ import annotations

import hashlib
import random

import pytest

from model_customization.datasets import redaction
from model_customization.datasets.dedupe import NearDuplicateFilter, minhash_of, shingles
from model_customization.datasets.redaction import redact_conversation
from model_customization.memory.records import Conversation, Message


def _datasketch_signature(text: str) -> list[int]:
    """The signature datasketch itself computes: its default scheme, each shingle's sha1_hash32 value fed to update_batch."""
    from datasketch import MinHash
    from datasketch.hashfunc import sha1_hash32

    signature = MinHash(num_perm=128, seed=1, hashfunc=sha1_hash32)
    signature.update_batch([s.encode("utf-8") for s in shingles(text)])
    return signature.hashvalues.tolist()


@pytest.mark.parametrize("words", [0, 3, 14, 15, 200, 20_000])  # empty, character shingles, word shingles, several chunks
def test_minhash_is_datasketchs_signature(words: int) -> None:
    rng = random.Random(words)
    vocabulary = ["alpha", "beta", "gamma", "delta", "Straße", "naïve", "x1", "ü", "42", "tab\tbed"]
    text = " ".join(rng.choice(vocabulary) + str(rng.randint(0, 500)) for _ in range(words))
    assert minhash_of(text).hashvalues.tolist() == _datasketch_signature(text)


def test_minhash_signatures_still_find_near_duplicates() -> None:
    base = " ".join(f"word{i}" for i in range(400))
    near = base.replace("word17 ", "changed ")
    other = " ".join(f"other{i}" for i in range(400))
    seen = NearDuplicateFilter(threshold=0.85)
    assert not seen.is_duplicate("a", None, minhash_of(base))
    assert seen.is_duplicate("b", None, minhash_of(near))
    assert not seen.is_duplicate("c", None, minhash_of(other))


def _conversation(session: str, *texts: str) -> Conversation:
    return Conversation(session, [Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)], "f.jsonl", 1, "test")


FILE_BODY = "def load_config(path):\n    return read(path)\n" * 20  # long enough to be remembered when clean


@pytest.fixture()
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> set[bytes]:
    memory: set[bytes] = set()
    monkeypatch.setattr(redaction, "_clean_texts", memory)
    return memory


def test_a_clean_text_is_remembered_and_handed_back_unchanged(fresh_memory: set[bytes]) -> None:
    first, counts = redact_conversation(_conversation("s1", FILE_BODY))
    assert first.messages[0].content == FILE_BODY and not counts
    assert hashlib.blake2b(FILE_BODY.encode(), digest_size=16).digest() in fresh_memory
    again, counts = redact_conversation(_conversation("s2", FILE_BODY))
    assert again.messages[0].content == FILE_BODY and not counts


def test_a_text_with_findings_is_never_remembered_and_counts_every_time(fresh_memory: set[bytes]) -> None:
    secretive = FILE_BODY + "contact me at jane.doe@example.com, key sk-ant-api03-abcdefghijklmnop1234567890\n"
    for session in ("s1", "s2"):
        redacted, counts = redact_conversation(_conversation(session, secretive, secretive))
        assert "jane.doe@example.com" not in redacted.messages[0].content
        assert "<EMAIL_1>" in redacted.messages[1].content and "<SECRET_1>" in redacted.messages[1].content
        assert counts == {"email": 2, "secret": 2}
    assert not fresh_memory


def test_a_remembered_text_still_gets_the_names_its_conversation_learned(fresh_memory: set[bytes]) -> None:
    mentions = FILE_BODY + "ask marcorossi about it\n"
    redact_conversation(_conversation("s1", mentions))  # no name known there: clean, remembered
    assert fresh_memory
    redacted, counts = redact_conversation(_conversation("s2", "see /home/marcorossi/project", mentions))
    assert "marcorossi" not in redacted.messages[1].content
    assert redacted.messages[1].content.endswith("ask <USER_1> about it\n")
    assert counts["home_path"] == 2


def test_memory_gives_the_same_output_as_scanning_every_time(fresh_memory: set[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    pieces = [FILE_BODY, "Server at 10.2.3.4 said hi. " * 12, "nothing here at all, only prose. " * 10, "user@box:~$ whoami\nmarco\n" * 12]
    conversations = [_conversation(f"s{i}", *rng.choices(pieces, k=6)) for i in range(12)]
    remembered = [redact_conversation(c) for c in conversations]
    monkeypatch.setattr(redaction, "_CLEAN_MIN_CHARS", 10**9)  # nothing remembered: every text scanned
    scanned = [redact_conversation(c) for c in conversations]
    assert [(r.messages, n) for r, n in remembered] == [(r.messages, n) for r, n in scanned]
