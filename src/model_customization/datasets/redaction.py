"""Redact secrets and personal data from a conversation before anything is stored.

`redact_conversation(conv)` returns a new Conversation (the input is not touched) and a Counter of redactions by kind.
What is redacted: every message's content, every tool call's arguments (parsed as JSON when they are JSON: string
values are redacted one by one and the arguments re-dumped, so they stay valid JSON; otherwise redacted as text), and
every `description` inside the tool definitions. Roles, ids, tool names, weights, timestamps and metadata are kept.

Kinds (the keys of the Counter) and the placeholder each one leaves:

    secret       <SECRET_n>       detect-secrets plugins + our patterns (sk-/sk-ant- keys, AWS, GitHub, Slack, JWT,
                                  bearer tokens, `password: ...` style assignments, ...)
    private_key  <PRIVATE_KEY_n>  a whole -----BEGIN ... PRIVATE KEY----- block (to END, or to the end of the
                                  base64 body when END is missing)
    url_password <PASSWORD_n>     the password of scheme://user:password@host (the user is kept)
    email        <EMAIL_n>
    phone        <PHONE_n>        +international, NANP (555-123-4567, (555) 123-4567) and 0-prefixed national
                                  numbers with separators (020 7946 0958); bare digit runs are never phones
    card         <CARD_n>         13-19 digits (spaces/dashes allowed), first digit 2-6, passing the Luhn check
    ip           <IP_n>           IPv4 and IPv6; loopback (127/8, ::1), unspecified (0.0.0.0, ::) and reserved
                                  (240/4, e.g. 255.255.255.0 netmasks) are kept; a dotted quad right after a version
                                  marker ("version 10.4.0.1", "v10.4.0.1", "==10.4.0.1") is kept
    home_path    <USER_n>         the user-name part of /home/NAME, /Users/NAME, C:\\Users\\NAME (Public, Shared,
                                  Default are kept)

Counts are occurrences replaced (the same e-mail three times counts 3). Placeholders are consistent within one
conversation (the same value always gets the same placeholder) and numbering starts at 1 in every conversation;
numbers already used by placeholders present in the input are skipped, so redacting twice equals redacting once.
A secret value found anywhere in a conversation (secret/url_password kinds, 8+ characters) is also replaced
wherever else it occurs in that conversation, even where no detector would have recognised it.
"""

from __future__ import annotations

import ipaddress
import json
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from model_customization.memory.records import Conversation, ToolCall

KINDS = ("secret", "private_key", "url_password", "email", "phone", "card", "ip", "home_path")
LABELS = {
    "secret": "SECRET",
    "private_key": "PRIVATE_KEY",
    "url_password": "PASSWORD",
    "email": "EMAIL",
    "phone": "PHONE",
    "card": "CARD",
    "ip": "IP",
    "home_path": "USER",
}
_KIND_OF_LABEL = {label: kind for kind, label in LABELS.items()}
PLACEHOLDER_RE = re.compile(r"<(SECRET|PRIVATE_KEY|PASSWORD|EMAIL|PHONE|CARD|IP|USER)_(\d+)>")
_SWEEP_KINDS = {"secret", "url_password"}
_SWEEP_MIN_LEN = 8

# --- secrets: our own patterns -------------------------------------------------------------------------------------

_PRIVATE_KEY_RE = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=:,\s\\-]*)",
    re.DOTALL,
)
# scheme://user:password@host — the password may not contain whitespace, / ? # @ or placeholder brackets.
_URL_PASSWORD_RE = re.compile(r"(?<![\w+.-])([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@<>\"']+:)([^\s/?#@<>\"']+)(?=@)")

_SECRET_PATTERNS: list[re.Pattern[str]] = [
    # Anthropic / OpenAI style keys (require a digit so that sk-learn-style words are safe).
    re.compile(r"(?<![\w-])sk-(?:ant-|proj-|svcacct-)?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
    # Stripe-style secret/restricted keys.
    re.compile(r"(?<![\w-])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    # AWS access key ids.
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    # GitHub tokens.
    re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])"),
    # GitLab, npm, Hugging Face, Google API keys.
    re.compile(r"(?<![A-Za-z0-9_])(?:glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,}|AIza[0-9A-Za-z_-]{35})"),
    # Slack tokens and webhooks.
    re.compile(r"(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,}"),
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]+"),
    # JSON Web Tokens (header and payload are base64url JSON, so both start with eyJ).
    re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
]
_SECRET_RE = re.compile("|".join(f"(?:{p.pattern})" for p in _SECRET_PATTERNS))  # one pass instead of eight
# Literals at least one of which every _SECRET_PATTERNS match contains (a fast `in` test before the regex pass).
_SECRET_MARKERS = (
    "sk-", "sk_", "rk_", "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "npm_", "hf_", "AIza", "xox", "hooks.slack.com",
    "eyJ",
)
# Values introduced by a keyword: AWS secret keys, bearer/basic tokens, `password: hunter2`.
_SECRET_VALUE_PATTERNS: list[tuple[tuple[str, ...], re.Pattern[str]]] = [  # (lowercase markers, pattern)
    (("aws",), re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,20}?[\s'\"=:]([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")),
    (("bearer",), re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)")),
    (("authorization",), re.compile(r"(?i)\bauthorization:\s*basic\s+([A-Za-z0-9+/]{8,}=*)")),
    (("pass", "pwd", "secret", "key", "token"), re.compile(
        r"(?i)(?<![A-Za-z0-9])(?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|"
        r"access[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token)['\"]?\s*(?:[:=]|:=)\s*"
        r"['\"]?([^\s'\"<>,;()\[\]{}]{6,})"
    )),
]
_STRONG_VALUE_RE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)|[!@#$%^&*~+=]")  # letters and digits, or a symbol

# JSON object keys whose string values are secrets whatever they look like.
_SECRET_KEY_NAME_RE = re.compile(
    r"(?i)^(?:.*[_-])?(?:password|passwd|pwd|passphrase|secret|client_?secret|api_?key|apikey|access_?key|"
    r"secret_?key|private_?key|access_?token|auth_?token|refresh_?token|token|credentials?)$"
)

# --- detect-secrets ------------------------------------------------------------------------------------------------

# Lines worth handing to detect-secrets: a keyword its KeywordDetector keys on, a URL (BasicAuth), or a run of 20+
# token characters with a digit in it (every vendor-token plugin and the high-entropy plugins need one). The rest
# cannot produce a finding, and skipping them is most of redaction's speed. Checked with `in` and a possessive run
# regex, which are about 20x faster than one case-insensitive alternation over the text.
_DS_KEYWORDS = ("pass", "pwd", "secret", "contrase", "://")
_DS_KEY_RE = re.compile(r"(?:api|auth|service|account|db|database|priv|private|client)_?key")
_DS_RUN_RE = re.compile(r"[A-Za-z0-9+/=_]{20,}+")


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    if any(k in low for k in _DS_KEYWORDS) or ("key" in low and _DS_KEY_RE.search(low)):
        return True
    return any(any(c.isdigit() for c in run) for run in _DS_RUN_RE.findall(text))


_DS_SKIP = {"IPPublicDetector", "PrivateKeyDetector"}  # handled by our own ip / private_key rules
_DS_MIN_LEN = 5  # shorter values are capture-group fragments (e.g. 'ghp') or meaningless passwords
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_SEQUENCES = (
    string.ascii_uppercase + string.ascii_uppercase,
    string.digits + string.ascii_uppercase + string.digits + string.ascii_uppercase,
    string.hexdigits.upper() + string.hexdigits.upper(),
    string.ascii_uppercase + "=/",
)


@lru_cache(maxsize=1)
def _detect_secrets_plugins() -> list[Any]:
    """The detect-secrets plugins, instantiated directly (no global settings touched, no verification calls)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    plugins = []
    for cls in get_mapping_from_secret_type_to_class().values():
        if cls.__name__ in _DS_SKIP:
            continue
        if cls.__name__ == "Base64HighEntropyString":
            plugins.append(cls(limit=4.5))
        elif cls.__name__ == "HexHighEntropyString":
            plugins.append(cls(limit=3.0))
        else:
            plugins.append(cls())
    return plugins


def _ds_false_positive(plugin: Any, secret: str, line: str) -> bool:
    """detect-secrets' default heuristic filters, plus ours (git SHAs, placeholders)."""
    from detect_secrets.filters import heuristic

    if len(secret) < _DS_MIN_LEN or PLACEHOLDER_RE.search(secret):
        return True
    if plugin.__class__.__name__ == "HexHighEntropyString" and _HEX_RE.match(secret) and len(secret) in (*range(7, 13), 40):
        return True  # a git commit id (short or full), not a key
    upper = secret.upper()
    if any(upper in seq for seq in _SEQUENCES):
        return True
    return (
        heuristic.is_potential_uuid(secret)
        or heuristic.is_likely_id_string(secret, line, plugin)
        or heuristic.is_templated_secret(secret)
        or heuristic.is_prefixed_with_dollar_sign(secret)
        or heuristic.is_not_alphanumeric_string(secret)
        or heuristic.is_indirect_reference(line)
    )


def _detect_secrets_in_line(line: str) -> list[str]:
    found = []
    for plugin in _detect_secrets_plugins():
        for potential in plugin.analyze_line(filename="conversation", line=line):
            value = potential.secret_value
            if value and not _ds_false_positive(plugin, value, line):
                found.append(value)
    return found


# --- PII -----------------------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
_EMAIL_KEEP_LOCAL = {"git"}  # git@github.com:org/repo is an SSH remote, not a person

_CARD_RE = re.compile(
    r"(?<![\w.+-])(?:"
    r"[2-6]\d{12,18}"  # contiguous
    r"|[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"  # 4-4-4-4(-n)
    r"|3\d{3}([ -])\d{6}\2\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r")(?![\w-]|\.\d)"
)

_PHONE_RE = re.compile(
    r"(?<![\w.:/+-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,5}"  # +44 20 7946 0958, +1 (555) 123-4567, +15551234567
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\d{3}([-. ])\d{3}\1\d{4}"  # 555-123-4567, 555.123.4567, 555 123 4567
    r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}"  # 020 7946 0958, 07700 900123, 030-1234-5678
    r")(?![\w:/-]|\.\d)"
)

_IPV4_RE = re.compile(r"(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)")
_VERSION_BEFORE_RE = re.compile(r"(?i)(?:\b(?:version|ver|release|build|v)\s*[:=]?\s*|(?:==|>=|<=|~=|\^)\s*)$")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?:%[A-Za-z0-9_.]+)?(?![\w:])"
)

_HOME_RE = re.compile(
    r"(?:(?<![\w.])(/home/|/Users/)|(?<![A-Za-z])([A-Za-z]:(?:\\+|/)Users(?:\\+|/)))([A-Za-z0-9._-]+)(?=$|[/\\\s'\"`:;,)\]}])"
)
_HOME_KEEP = {"public", "shared", "default", "default user", "all users", "guest"}


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _ip_kept(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_unspecified or address.is_reserved


def _sub(pattern: re.Pattern[str], text: str, fn: Callable[[re.Match[str]], str | None]) -> str:
    """Like pattern.sub(fn, text), but a candidate that fn rejects (None) does not hide a match starting inside it."""
    out: list[str] = []
    done = 0
    position = 0
    while True:
        match = pattern.search(text, position)
        if match is None:
            break
        replacement = fn(match)
        if replacement is None:
            position = match.start() + 1
            continue
        out.append(text[done : match.start()])
        out.append(replacement)
        done = position = match.end()
        if match.end() == match.start():
            position += 1
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


class _Redactor:
    """Placeholder bookkeeping for one conversation."""

    def __init__(self) -> None:
        self.placeholders: dict[tuple[str, str], str] = {}
        self.next_number: Counter[str] = Counter()  # label -> last number used
        self.counts: Counter[str] = Counter()
        self.sweep_values: dict[str, str] = {}

    def reserve_existing(self, text: str) -> None:
        for label, number in PLACEHOLDER_RE.findall(text):
            self.next_number[label] = max(self.next_number[label], int(number))

    def placeholder(self, kind: str, value: str) -> str:
        self.counts[kind] += 1
        key = (kind, value)
        existing = self.placeholders.get(key)
        if existing is None:
            label = LABELS[kind]
            self.next_number[label] += 1
            existing = self.placeholders[key] = f"<{label}_{self.next_number[label]}>"
            if kind in _SWEEP_KINDS and len(value) >= _SWEEP_MIN_LEN:
                self.sweep_values[value] = existing
        return existing

    # -- the text pipeline ------------------------------------------------------------------------------------------

    def text(self, text: str) -> str:
        if not text:
            return text
        text = _PRIVATE_KEY_RE.sub(lambda m: self.placeholder("private_key", m.group(0).strip()), text)
        if "://" in text:
            text = _URL_PASSWORD_RE.sub(lambda m: m.group(1) + self.placeholder("url_password", m.group(2)), text)
        if any(marker in text for marker in _SECRET_MARKERS):
            text = _SECRET_RE.sub(lambda m: self.placeholder("secret", m.group(0)), text)
        low = text.lower()
        for markers, pattern in _SECRET_VALUE_PATTERNS:
            if any(marker in low for marker in markers):
                text = _sub(pattern, text, self._secret_value)
        text = self._detect_secrets(text)
        if "@" in text:
            text = _sub(_EMAIL_RE, text, self._email)
        text = _sub(_CARD_RE, text, self._card)
        text = _sub(_PHONE_RE, text, self._phone)
        if "." in text:
            text = _sub(_IPV4_RE, text, self._ipv4)
        if ":" in text:
            text = _sub(_IPV6_RE, text, self._ipv6)
        if "Users" in text or "/home/" in text:
            text = _sub(_HOME_RE, text, self._home)
        return text

    def _secret_value(self, match: re.Match[str]) -> str | None:
        value = match.group(1)
        if PLACEHOLDER_RE.search(value) or not _STRONG_VALUE_RE.search(value):
            return None
        start, end = match.span(1)
        whole = match.group(0)
        offset = match.start(0)
        return whole[: start - offset] + self.placeholder("secret", value) + whole[end - offset :]

    def _detect_secrets(self, text: str) -> str:
        if not _may_hold_secret(text):
            return text
        lines = text.split("\n")
        changed = False
        for index, line in enumerate(lines):
            if len(line) > 4000 or not _may_hold_secret(line):
                continue  # very long lines are data blobs; the regex passes above already ran over them
            for value in sorted(set(_detect_secrets_in_line(line)), key=len, reverse=True):
                if value in line:
                    occurrences = line.count(value)
                    placeholder = self.placeholder("secret", value)
                    self.counts["secret"] += occurrences - 1
                    line = line.replace(value, placeholder)
                    changed = True
            lines[index] = line
        return "\n".join(lines) if changed else text

    def _email(self, match: re.Match[str]) -> str | None:
        value = match.group(0)
        if value.split("@", 1)[0].lower() in _EMAIL_KEEP_LOCAL:
            return None
        return self.placeholder("email", value)

    def _card(self, match: re.Match[str]) -> str | None:
        value = match.group(0)
        digits = value.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19 or not _luhn_ok(digits):
            return None
        return self.placeholder("card", digits)

    def _phone(self, match: re.Match[str]) -> str | None:
        value = match.group(0)
        digits = sum(c.isdigit() for c in value)
        if not 8 <= digits <= 15:
            return None
        return self.placeholder("phone", value)

    def _ipv4(self, match: re.Match[str]) -> str | None:
        value = match.group(0)
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            return None
        line_start = match.string.rfind("\n", 0, match.start()) + 1
        before = match.string[max(line_start, match.start() - 16) : match.start()]
        if _ip_kept(address) or _VERSION_BEFORE_RE.search(before):
            return None
        return self.placeholder("ip", value)

    def _ipv6(self, match: re.Match[str]) -> str | None:
        value = match.group(0)
        if not any(c.isdigit() for c in value) or value.count(":") < 2:
            return None
        try:
            address = ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            return None
        if _ip_kept(address):
            return None
        return self.placeholder("ip", value)

    def _home(self, match: re.Match[str]) -> str | None:
        prefix = match.group(1) or match.group(2)
        user = match.group(3)
        if user.lower() in _HOME_KEEP or user in (".", ".."):
            return None
        return prefix + self.placeholder("home_path", user)

    def sweep(self, text: str) -> str:
        """Replace leftover occurrences of secret values found elsewhere in the conversation."""
        if not text or not self.sweep_values:
            return text
        pattern = _sweep_pattern(tuple(sorted(self.sweep_values, key=len, reverse=True)))

        def swap(match: re.Match[str]) -> str:
            placeholder = self.sweep_values[match.group(0)]
            self.counts[_KIND_OF_LABEL[placeholder[1:].rsplit("_", 1)[0]]] += 1
            return placeholder

        return pattern.sub(swap, text)


@lru_cache(maxsize=64)
def _sweep_pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(v) for v in values))


# --- structured fields ---------------------------------------------------------------------------------------------


def _redact_json_value(value: Any, fn: Callable[[str], str], redactor: _Redactor | None, key: str | None = None) -> Any:
    if isinstance(value, str):
        if (
            redactor is not None
            and key is not None
            and value
            and _SECRET_KEY_NAME_RE.match(key)
            and not PLACEHOLDER_RE.fullmatch(value)
            and len(value) >= 4
            and not value.isspace()
        ):
            return redactor.placeholder("secret", value)
        return fn(value)
    if isinstance(value, list):
        return [_redact_json_value(v, fn, redactor) for v in value]
    if isinstance(value, dict):
        return {k: _redact_json_value(v, fn, redactor, k) for k, v in value.items()}
    return value


def _redact_arguments(arguments: str, fn: Callable[[str], str], redactor: _Redactor | None) -> str:
    if not arguments:
        return arguments
    try:
        parsed = json.loads(arguments)
    except (json.JSONDecodeError, ValueError):
        return fn(arguments)
    redacted = _redact_json_value(parsed, fn, redactor)
    if redacted == parsed:
        return arguments  # keep the original formatting when nothing changed
    return json.dumps(redacted, ensure_ascii=False)


def _redact_descriptions(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, list):
        return [_redact_descriptions(v, fn) for v in value]
    if isinstance(value, dict):
        return {
            k: (fn(v) if k == "description" and isinstance(v, str) else _redact_descriptions(v, fn)) for k, v in value.items()
        }
    return value


def _map_conversation(conv: Conversation, fn: Callable[[str], str], redactor: _Redactor | None) -> Conversation:
    messages = [
        replace(
            m,
            content=fn(m.content) if isinstance(m.content, str) else m.content,
            tool_calls=[
                ToolCall(id=c.id, name=c.name, arguments=_redact_arguments(c.arguments, fn, redactor)) for c in m.tool_calls
            ],
        )
        for m in conv.messages
    ]
    tools = _redact_descriptions(conv.tools, fn) if conv.tools else conv.tools
    return replace(conv, messages=messages, tools=tools, outcome=replace(conv.outcome), metadata=dict(conv.metadata))


def _all_text(conv: Conversation) -> str:
    parts: list[str] = []
    for m in conv.messages:
        parts.append(m.content or "")
        parts.extend(c.arguments or "" for c in m.tool_calls)
    if conv.tools:
        parts.append(json.dumps(conv.tools, ensure_ascii=False))
    return "\n".join(parts)


def redact_text(text: str) -> tuple[str, Counter[str]]:
    """Redact one free-standing text (placeholders numbered from 1 within it)."""
    redactor = _Redactor()
    if "<" in text:
        redactor.reserve_existing(text)
    out = redactor.sweep(redactor.text(text))
    return out, redactor.counts


def redact_conversation(conv: Conversation) -> tuple[Conversation, Counter[str]]:
    """A redacted copy of `conv` and the number of redactions by kind (see the module docstring)."""
    redactor = _Redactor()
    everything = _all_text(conv)
    if "<" in everything:
        redactor.reserve_existing(everything)
    redacted = _map_conversation(conv, redactor.text, redactor)
    if redactor.sweep_values:
        redacted = _map_conversation(redacted, redactor.sweep, None)
    return redacted, redactor.counts


__all__ = ["KINDS", "LABELS", "PLACEHOLDER_RE", "redact_conversation", "redact_text"]
