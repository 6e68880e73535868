"""Redaction's fast path finds exactly what its plain definition finds (issue 20: one cheap scan per text, the exact
detectors only where it points).

_Redactor._detect runs each detector only at the places a cheap scan of the text found (keyword positions, runs of
digits and token characters in a class map of the text, a vendor marker inside a run), and skips a detector whose
scan found nothing. _Redactor._detect_plain is the same detectors run over the whole text, in the same order, with
no scan: the definition. These tests generate texts that mix every shape the detectors know (and near misses,
non-ASCII look-alikes, line breaks in awkward places) and require the same output, the same counts and the same
placeholders from both; and they check each cheap scan on its own against its pattern tried at every position.
"""

from __future__ import annotations

import base64
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_customization.datasets import redaction as R
from model_customization.datasets.redaction import redact_text

# Pieces of text that the detectors look for, or that come close.
SECRETS = [
    "sk-ant-api03-abcdefghijklmnop1234567890",
    "sk-proj-AbCdEfGhIjKlMnOp12345678",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "rk_test_abcdefghijklmnop1234",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "glpat-abcdefghij1234567890",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "hf_abcdefghijklmnopqrstuvwxyz1234",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "xoxb-123456789012-abcdefghij",
    "https://hooks.slack.com/services/T000/B000/XXXX",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
    "postgres://admin:s3cretPass@db.example.com:5432/app",
    "password: hunter22x",
    'api_key="Zx9#kLm2pQ"',
    "client_secret=abcDEF123456",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==",
    "Authorization: Bearer abc.def-ghi_12345",
    "my password is hunter22",
    "the api key: 9f8e7d6c5b4a",
    "access token was tok_123456",
    "bearer token = Qwerty123!",
    "pin code is 4821",
    "credentials: admin/Passw0rd",
    "refresh-token: r3fr3shT0k3n",
    "private key is abc123def456",
    base64.b64encode(b"password=hunter22 and more").decode(),
    base64.b64encode(b"AKIAIOSFODNN7EXAMPLE").decode(),
    "dGhpcyBpcyBqdXN0IHNvbWUgdGV4dCBoZXJl",
    "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0",
    "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA=",
]
PII = [
    "jane.doe@example.com",
    "git@github.com:org/repo.git",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "378282246310005",
    "3782 822463 10005",
    "1234 5678 9012 3456",
    "+44 20 7946 0958",
    "+1 (555) 123-4567",
    "(555) 123-4567",
    "555-123-4567",
    "555.123.4567",
    "020 7946 0958",
    "07700 900123",
    "192.168.1.20",
    "10.0.0.1",
    "127.0.0.1",
    "255.255.255.0",
    "version 10.4.0.1",
    "v10.4.0.1",
    "==10.4.0.1",
    "2001:db8::ff00:42:8329",
    "fe80::1%eth0",
    "::1",
    "12:30:45",
    "/home/marco/project",
    "/Users/jdoe/code",
    "C:\\Users\\Alice\\Desktop",
    "-home-marco-proj-x",
    "-Users-jdoe-code",
    "C--Users-Alice-x",
    "-rw-r--r--  1 marco staff 1234 Jan  1 12:00 file.txt",
    "drwxr-xr-x 2 root root 4096 Jan 1 dir",
    "marco@laptop:~/proj$ ls",
    "[jdoe@buildbox src]$ make",
    "alice@mbp work % git status",
    "$ whoami\nmarco\n",
    "$ hostname\nhandgemacht-hetzner\n",
    "USER=marco",
    "HOSTNAME=box1",
    "LOGNAME='jdoe'",
    "Author: Marco Rotili <marco@example.com>",
    "user.name=Marco Rotili",
    "Last login: Mon Jan  1 10:00:00 2026 from workstation7",
    "Marcos-MacBook-Pro.local",
]
NEAR_MISSES = [
    "sk-learn", "task_id", "disk-usage", "AKIA", "eyJ", "xox", "hooks.slack", "the password is wrong",
    "token json header", "api_", "key", "1.2.3", "555-1234", "1234", "62541.", "0 1 2 3", "a::b", "::", "f:g:h",
    "Users", "/home/", "-home-", "whoami", "hostname", "Author:", "Commit:", "user.name", ".local", "rwxrwxrwx",
    "conversation_to_example", "CamelCaseIdentifierName", "ABCDEFGHIJKLMNOPQRST", "0123456789abcdef01234567",
    "<SECRET_1>", "<EMAIL_2>", "<USER_1>", "@", "://", "=", ":", "'", '"', "`",
]
ODD = ["é", "→", "\u0663\u0664\u0665", "\u212a", "\u0131", "\u0130", "\u017f", "\u00a0", "\u2028", "日本語"]
SEPARATORS = ["", " ", "  ", "\n", "\r\n", "\t", "_", "-", ":", "=", ". ", ", ", "\n\n", " \n", "/", "@", "'", '"']

fragment = st.one_of(
    st.sampled_from(SECRETS),
    st.sampled_from(PII),
    st.sampled_from(NEAR_MISSES),
    st.sampled_from(ODD),
    st.text(alphabet="abcdefxyzABCDEFKXYZ0123456789 _-.:/=+@()\n\t'\"", max_size=24),
)


@st.composite
def mixed_texts(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(fragment, min_size=1, max_size=12))
    out = []
    for piece in pieces:
        out.append(piece)
        out.append(draw(st.sampled_from(SEPARATORS)))
    text = "".join(out)
    # Sometimes split a piece with a line break (a wrapped token) or cut the text anywhere.
    if draw(st.booleans()) and len(text) > 4:
        at = draw(st.integers(1, len(text) - 1))
        text = text[:at] + draw(st.sampled_from(["\n", "\r\n", "\n  "])) + text[at:]
    return text


def both(text: str) -> tuple[tuple, tuple]:
    fast, plain = R._Redactor(), R._PlainRedactor()
    fast_out, plain_out = fast._detect(text), plain._detect(text)
    return (
        (fast_out, dict(fast.counts), fast.placeholders, fast.sweep_values, fast.names),
        (plain_out, dict(plain.counts), plain.placeholders, plain.sweep_values, plain.names),
    )


FUZZ = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mixed_texts())
def test_fast_path_equals_plain_definition(text: str) -> None:
    fast, plain = both(text)
    assert fast == plain


def test_every_sample_piece_alone_and_together() -> None:
    pieces = SECRETS + PII + NEAR_MISSES + ODD
    for piece in pieces:
        for text in (piece, f"see {piece} here", f"x\n{piece}\n", piece.upper(), piece.lower()):
            fast, plain = both(text)
            assert fast == plain, text
    together = "\n".join(pieces)
    fast, plain = both(together)
    assert fast == plain
    assert fast[1]["secret"] >= 15 and fast[1]["email"] and fast[1]["card"] and fast[1]["phone"] and fast[1]["ip"]


def test_long_text_of_every_shape_through_redact_text() -> None:
    """A long text (over the clean-cache length), redacted twice: the second answer is the same, and the shapes are
    gone from it."""
    text = "\n".join(SECRETS + PII) + "\n" + "plain words " * 50
    first, counts = redact_text(text)
    second, counts_again = redact_text(text)
    assert first == second and counts == counts_again
    for value in ("AKIAIOSFODNN7EXAMPLE", "jane.doe@example.com", "4111 1111 1111 1111", "192.168.1.20", "hunter22"):
        assert value not in first


def all_match_starts(pattern: re.Pattern[str], text: str) -> list[int]:
    return [at for at in range(len(text) + 1) if pattern.match(text, at)]


digit_texts = st.lists(
    st.one_of(
        st.text(alphabet="0123456789", min_size=1, max_size=20),
        st.sampled_from([" ", "-", ".", "+", "(", ")", ":", "::", "a", "F", "_", "\n", "/", "x", "\u0663", "\u2192", "\u00e9", "\u00a0", "?"]),
    ),
    max_size=14,
).map("".join)


@FUZZ
@given(digit_texts)
def test_digit_scans_hold_every_place_a_pattern_matches(text: str) -> None:
    classes = R._classes(text)  # None for a text with a digit other than 0-9: the starts come from regex finders then
    assert (classes is None) == any(char.isdecimal() and not char.isascii() for char in text)
    for pattern, starts in (
        (R._CARD_RE, R._card_starts(text, classes)),
        (R._PHONE_RE, R._phone_starts(text, classes)),
        (R._IPV4_RE, R._ipv4_starts(text, classes)),
        (R._IPV6_RE, R._ipv6_starts(text, classes)),
    ):
        assert set(all_match_starts(pattern, text)) <= set(starts), (pattern.pattern, text)


keyword_texts = st.lists(
    st.sampled_from(
        ["pass", "password", "pwd", "secret", "client", "api", "key", "access", "token", "auth", "refresh", "private",
         "bearer", "pin code", "credential", "credentials", "PASSWORD", "Api_Key", " ", "_", "-", ":", "=", ":=", " is ",
         " was ", " for db ", "'", '"', "hunter22", "Zx9#kLm2", "\n", "x", "abc123"]
    ),
    max_size=14,
).map("".join)


stated_secrets = st.tuples(
    st.sampled_from(["", "my ", "the ", "x", "_", "API", "Refresh"]),
    st.sampled_from(["", "api", "access", "private", "auth", "refresh", "bearer", "client", "secret", "Access"]),
    st.sampled_from(["", " ", "_", "-"]),
    st.sampled_from(["key", "token", "secret", "password", "pass", "pwd", "pin code", "credentials", "KEY", "Token"]),
    st.sampled_from(["", " for db", " of prod"]),
    st.sampled_from([": ", "=", " is ", " was ", ":= ", " ", " are: ", "'='"]),
    st.sampled_from(["hunter22", "Zx9#kLm2", "abc123def", "wrong", "<SECRET_1>", "'s3cr3tV4lue'"]),
).map("".join)


@FUZZ
@given(st.lists(st.one_of(stated_secrets, keyword_texts), min_size=1, max_size=4).map(" ".join))
def test_keyword_starts_hold_every_place_a_pattern_matches(text: str) -> None:
    scan = R._Scan(text)
    assert set(all_match_starts(R._SECRET_KEYWORD_VALUE_RE, text)) <= set(scan.starts(R._VALUE_STARTS) or [])
    assert set(all_match_starts(R._SECRET_PHRASE_RE, text)) <= set(scan.starts(R._PHRASE_STARTS) or [])
    low = text.lower()
    for markers, _pattern in R._SECRET_VALUE_PATTERNS:
        assert scan.has(markers) == any(marker in low for marker in markers)
    assert scan.has(R._PHRASE_MARKERS) == any(marker in low for marker in R._PHRASE_MARKERS)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(SECRETS + NEAR_MISSES + ODD), st.text(alphabet="skrAKIJxoyeh_-.\n ", max_size=12)), max_size=8).map("".join))
def test_vendor_marker_checks(text: str) -> None:
    flat = text.replace("\n", "")
    assert R._marker_in_flat(text) == any(marker in flat for marker in R._SECRET_MARKERS)
    assert (R._MARKER_RE.search(text) is not None) == any(marker in text for marker in R._SECRET_MARKERS)
    if R._SECRET_RE.search(text):
        assert R._may_hold_vendor_token(text)
    if R._WRAPPED_RE.search(text):
        assert R._may_wrap(text)


@FUZZ
@given(st.lists(st.sampled_from(SECRETS + NEAR_MISSES + ODD + ["\n", "word ", "abc://x", "db_key", "PrivKey", "0" * 21, "key", "api_key", "apikey", "service_", "account", "_key", "client", "Passwd", "contraseña", "\u212aey", "PR\u0130V_KEY"]), max_size=10).map("".join))
def test_detect_secrets_lines_are_the_lines_that_may_hold_one(text: str) -> None:
    starts = R._Scan(text).ds_starts()
    if starts is None:  # a lower case longer than the text (U+0130): its lines are asked one by one (the fuzz test above covers it)
        assert len(text.lower()) != len(text)
        return
    flagged = {text.count("\n", 0, at) for at in starts}
    assert flagged == {index for index, line in enumerate(text.split("\n")) if R._may_hold_secret(line)}


token_texts = st.lists(
    st.one_of(
        st.text(alphabet="abcXYZ0189+/_-=", min_size=1, max_size=24),
        st.sampled_from([" ", "\n", "\t", ".", "?", "\u2192", "\u00e9", "\u0663", "\u00a0", "\u2028", "\u212a", "\u0130", "\ud800", "日本"]),
        st.sampled_from(["-rw-r--r--  1 marco staff 1234 Jan  1 12:00 f", "drwxr-xr-x 2 root root 4096 Jan 1 d", "rwxrwxrwx"]),
    ),
    max_size=12,
).map("".join)


@FUZZ
@given(token_texts)
def test_token_scans_of_any_text_hold_every_place_a_pattern_matches(text: str) -> None:
    """The ASCII view (one byte per character, "?" for the others) finds runs of ASCII classes in any text: the
    base64 runs, `ls -l` modes, wrapped-token lines and vendor-token runs of a text with arrows, accents, other
    digits or a lone surrogate are found where the patterns match."""
    assert len(R._ascii_view(text)) == len(text)
    assert set(all_match_starts(R._BASE64_RUN_RE, text)) <= set(R._base64_starts(text)), text
    if R._LS_LONG_RE.search(text):
        assert R._may_list_files(text)
    if R._WRAPPED_RE.search(text):
        assert R._may_wrap(text)
    if R._SECRET_RE.search(text):
        assert R._may_hold_vendor_token(text)


def test_short_clean_texts_are_remembered_and_texts_with_findings_are_not() -> None:
    R._clean_short_texts.clear()
    clean, dirty = "Run the tests please", "mail jane.doe@example.com now"
    assert redact_text(clean) == (clean, {})
    assert clean in R._clean_short_texts
    for _ in range(2):
        out, counts = redact_text(dirty)
        assert out == "mail <EMAIL_1> now" and counts["email"] == 1
    assert dirty not in R._clean_short_texts


def test_a_line_detect_secrets_saw_is_not_handed_to_it_again(monkeypatch) -> None:
    """detect-secrets is a pure function of the line: a flagged line that comes again (in another text, another
    conversation) gets the first answer without the plugins, and the same placeholders as the first time."""
    R._ds_line_cache.clear()
    calls: list[str] = []
    real = R._detect_secrets_found
    monkeypatch.setattr(R, "_detect_secrets_found", lambda line: (calls.append(line), real(line))[1])
    flagged = 'const k = "a8Fj3kL9mQ2xZ7pW4vB6nR1tY5uC0dE"'  # only detect-secrets finds it (high entropy)
    first, _ = redact_text(f"step one\n{flagged}\nthen 5 passed")
    second, _ = redact_text(f"other text\n{flagged}\nthen 5 passed")
    assert first.split("\n")[1] == 'const k = "<SECRET_1>"'
    assert first.split("\n")[1] == second.split("\n")[1]
    assert calls.count(flagged) == 1 and calls.count("then 5 passed") == 1
    long_line = "password " + "x" * 300  # longer than the cached lines: asked each time
    redact_text(long_line + "\na")
    redact_text(long_line + "\nb")
    assert calls.count(long_line) == 2


def test_vendor_tokens_wrapped_at_every_place() -> None:
    """A vendor token broken over lines at each of its places, alone, before more lines, or before words."""
    tokens = [secret for secret in SECRETS[:15] if "\n" not in secret and "://" not in secret]
    for token in tokens:
        for at in range(1, len(token)):
            for brk in ("\n", "\r\n", "\n  "):
                wrapped = token[:at] + brk + token[at:]
                for text in (wrapped, f"key:\n{wrapped}\nnext line", f"{wrapped} thanks", f"x {wrapped}\nab"):
                    fast, plain = both(text)
                    assert fast == plain, text
