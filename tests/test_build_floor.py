"""The build's fast paths give exactly what the slow ones gave: MinHash signatures and redaction of repeated texts."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_customization.datasets import redaction
import pickle

from model_customization.datasets import dedupe
from model_customization.datasets.dedupe import LSH_THRESHOLD_CAP, NearDuplicateFilter, exact_key, lsh_bands, minhash_of, shingles
from model_customization.datasets.redaction import redact_conversation
from model_customization.memory.records import Conversation, Message


def _datasketch_2() -> None:
    """The reference below is datasketch 2's default (affine32) scheme; datasketch 1 had only the older one."""
    datasketch = pytest.importorskip("datasketch")
    if int(datasketch.__version__.split(".")[0]) < 2:
        pytest.skip("the reference signatures are datasketch 2's affine32 scheme")


def _word_shingle_hash32(shingle: bytes) -> int:
    """The documented hash of a word shingle, one shingle at a time in plain integers (the reference for the
    vectorised one): each word's 8-byte BLAKE2b digest, little-endian, combined as h * multiplier + word mod 2**64,
    folded to 32 bits."""
    combined = 0
    for word in shingle.decode("utf-8", "surrogatepass").split(" "):
        word_hash = int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        combined = (combined * dedupe.WORD_MULTIPLIER + word_hash) % 2**64
    return (combined ^ (combined >> 32)) % 2**32


def _reference_hashfunc(text: str, shingle: int = 5):
    """datasketch's hashfunc for text's shingles: sha1_hash32 (its default) for character shingles, the word hash above
    for word shingles."""
    from datasketch.hashfunc import sha1_hash32

    return _word_shingle_hash32 if len(text.split()) >= 3 * shingle else sha1_hash32


def _datasketch_signature(text: str, shingle: int = 5) -> list[int]:
    """The signature datasketch itself computes: its default scheme, each shingle's documented hash fed to update_batch."""
    _datasketch_2()
    from datasketch import MinHash

    signature = MinHash(num_perm=128, seed=1, hashfunc=_reference_hashfunc(text, shingle))
    signature.update_batch([s.encode("utf-8", "surrogatepass") for s in shingles(text, shingle)])
    return signature.hashvalues.tolist()


@pytest.mark.parametrize("words", [0, 3, 14, 15, 200, 20_000])  # empty, character shingles, word shingles, several chunks
def test_minhash_is_datasketchs_signature(words: int) -> None:
    rng = random.Random(words)
    vocabulary = ["alpha", "beta", "gamma", "delta", "Straße", "naïve", "x1", "ü", "42", "tab\tbed"]
    text = " ".join(rng.choice(vocabulary) + str(rng.randint(0, 500)) for _ in range(words))
    assert minhash_of(text).hashvalues.tolist() == _datasketch_signature(text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6).filter(lambda w: not any(c.isspace() for c in w)), min_size=0, max_size=60), st.integers(1, 6))
def test_minhash_is_datasketchs_signature_for_any_words_and_shingle_size(words: list[str], shingle: int) -> None:
    # Any characters (lone surrogates, case-folding ones like "İ" whose lower case is two characters) and any shingle
    # size: the vectorised windows are the documented shingles, each hashed as the reference hashes it.
    text = " ".join(words)
    assert minhash_of(text, shingle=shingle).hashvalues.tolist() == _datasketch_signature(text, shingle)


def test_word_shingle_hashes_do_not_collide_on_reordered_or_repeated_words() -> None:
    # The combination is ordered: the same words in another order, or one word repeated, are other shingles.
    shingles_seen = [" ".join(p) for p in __import__("itertools").permutations(["a", "b", "c", "d", "e"])]
    shingles_seen += ["a a a a a", "a a a a b", "b a a a a", "aa a a a", "a a a a aa"]
    values = {_word_shingle_hash32(s.encode()) for s in shingles_seen}
    assert len(values) == len(shingles_seen)


def test_minhash_signatures_still_find_near_duplicates() -> None:
    base = " ".join(f"word{i}" for i in range(400))
    near = base.replace("word17 ", "changed ")
    other = " ".join(f"other{i}" for i in range(400))
    seen = NearDuplicateFilter(threshold=0.85)
    assert not seen.is_duplicate("a", None, minhash_of(base))
    assert seen.is_duplicate("b", None, minhash_of(near))
    assert not seen.is_duplicate("c", None, minhash_of(other))


def _shingles_as_documented(text: str, shingle: int = 5) -> set[str]:
    normalised = " ".join(text.lower().split())
    words = normalised.split(" ") if normalised else []
    if len(words) >= 3 * shingle:
        return {" ".join(words[i : i + shingle]) for i in range(len(words) - shingle + 1)}
    return {normalised} if len(normalised) <= 3 else {normalised[i : i + 3] for i in range(len(normalised) - 2)}


def test_shingles_are_the_documented_ones() -> None:
    rng = random.Random(1)
    alphabet = ["a", "B", " ", "\t", "\n", "\u00a0", "\u2028", "x", "\u0130", "\u00df", "\x1c", "\u3000", "word "]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        assert shingles(text) == _shingles_as_documented(text), repr(text)


@pytest.mark.parametrize("num_perm", [16, 128])
def test_lsh_bands_are_the_ones_datasketch_chooses(num_perm: int) -> None:
    _datasketch_2()
    from datasketch.lsh import _optimal_param

    for threshold in (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95):
        assert lsh_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5), threshold


def _datasketch_duplicates(texts: list[str], threshold: float) -> list[str | None]:
    """What the filter answered when it was datasketch's MinHash and MinHashLSH: the reference for the same decisions."""
    _datasketch_2()
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=min(threshold, LSH_THRESHOLD_CAP), num_perm=128)
    stored: dict[str, MinHash] = {}
    answers: list[str | None] = []
    for index, text in enumerate(texts):
        signature = MinHash(num_perm=128, seed=1, hashfunc=_reference_hashfunc(text))
        signature.update_batch([s.encode("utf-8") for s in shingles(text)])
        scored = [(signature.jaccard(stored[c]), c) for c in lsh.query(signature)]
        best = max((pair for pair in scored if pair[0] >= threshold), default=None)
        answers.append(best[1] if best else None)
        if best is None:
            lsh.insert(str(index), signature)
            stored[str(index)] = signature
    return answers


@pytest.mark.parametrize("threshold", [0.5, 0.85, 1.0])
def test_near_duplicate_decisions_are_datasketchs(threshold: float) -> None:
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(300)]
    originals = [[rng.choice(vocabulary) for _ in range(rng.choice([8, 60, 300]))] for _ in range(25)]
    texts = []
    for words in originals * 3:  # each original, then two rounds of copies with more and more words changed
        changed = list(words)
        for _ in range(rng.randint(0, max(1, len(words) // 4))):
            changed[rng.randrange(len(changed))] = rng.choice(vocabulary)
        texts.append(" ".join(changed))
    ours = NearDuplicateFilter(threshold=threshold)
    answers = [ours.duplicate_of(str(i), text) for i, text in enumerate(texts)]
    assert answers == _datasketch_duplicates(texts, threshold)
    assert 0 < sum(a is not None for a in answers) < len(texts)


def test_a_signature_survives_the_trip_to_a_worker_and_back() -> None:
    signature = minhash_of("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen")
    back = pickle.loads(pickle.dumps(signature))
    assert back.hashvalues.tolist() == signature.hashvalues.tolist() and back.jaccard(signature) == 1.0


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


def _exact_key_by_json(example: object) -> str:
    """exact_key as it was: json.dumps of the normalised example, nothing else."""
    canonical = json.dumps(dedupe._normalise(example), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_JSON_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", "\\", '"', " ", "\t", "\n", "É", "😀"]))
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | _JSON_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_JSON_TEXT | st.integers(-3, 3), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_JSON_VALUES)
def test_exact_key_is_the_json_keys_value_whatever_the_example_holds(value: object) -> None:
    """The fast path (orjson) gives the key json gave, for floats, big ints, non-str keys, control characters and
    non-ASCII text too, or fails where json failed (a key mixing ints and strings cannot be sorted by either)."""
    example = {"messages": [{"role": "user", "content": "Hello  World"}], "extra": value}
    try:
        expected = _exact_key_by_json(example)
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)):
            exact_key(example)
        return
    assert exact_key(example) == expected


def test_exact_key_of_lone_surrogates_fails_as_json_did() -> None:
    example = {"messages": [{"role": "user", "content": "broken \ud800 text"}]}
    with pytest.raises(UnicodeEncodeError):
        _exact_key_by_json(example)
    with pytest.raises(UnicodeEncodeError):
        exact_key(example)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_JSON_VALUES)
def test_a_datasets_lines_are_the_json_bytes_whatever_the_example_holds(value: object) -> None:
    """canonical_json (orjson where it writes the same bytes) gives json.dumps' line, or fails as json did."""
    example = {"messages": [{"role": "user", "content": "Hello  World"}], "extra": value}
    try:
        expected = json.dumps(example, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)):
            dedupe.canonical_json(example)
        return
    assert dedupe.canonical_json(example) == expected
