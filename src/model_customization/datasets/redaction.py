"""Redact secrets and personal data from a conversation before anything is stored.

`redact_conversation(conv)` returns a new Conversation (the input is not touched) and a Counter of redactions by kind.
What is redacted: every message's content, every tool call's arguments (parsed as JSON when they are JSON: object keys
and string values are redacted one by one and the arguments re-dumped, so they stay valid JSON; otherwise redacted as
text), and every key and string of the tool definitions (property names, descriptions, `default`, `enum`, ...). A
string under a secret-named key ("password", "api_key", "token", ...) is a secret whatever it looks like, and so are
the `default`, `const`, `enum` and `examples` of a schema property with such a name. Roles, ids, tool names, weights,
timestamps and metadata are kept.

`redact_record(value, keep=())` redacts any JSON-like record the same way, as one text: it is the choke point for
everything stored or returned beside the examples (dataset cards and so the ledger's dataset rows, inspect_dataset
reports, evaluation folders and stored answers). Only this program's ids and hashes and the strings in `keep` pass.

Besides the shapes below, secrets are found stated in words ("my password is ...", "the api key: ...": a value with
letters and digits, or a symbol), base64-encoded (a run that decodes to text holding a secret is replaced whole) and
wrapped over lines (a vendor token with a line break inside).

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
    home_path    <USER_n>         the user's name: the NAME of /home/NAME, /Users/NAME, C:\\Users\\NAME (Public, Shared,
                                  Default are kept) and of Claude Code's encoded project folders (-home-NAME-...,
                                  -Users-NAME-..., C--Users-NAME-...); the owner and group columns of `ls -l` lines
                                  (system accounts such as root, staff, wheel are kept); the user of a shell prompt
                                  (NAME@host:~$, [NAME@host dir]$, NAME@host dir %); the output of `whoami`; USER=,
                                  LOGNAME=; a git author (`Author: Full Name <...>`, user.name=Full Name)
    host_name    <HOST_n>         the machine's name: the host of a shell prompt, the output of `hostname` or
                                  `uname -n`, HOSTNAME=, "Last login: ... from HOST", a Mac's NAME-MacBook-Pro.local

Counts are occurrences replaced (the same e-mail three times counts 3). Placeholders are consistent within one
conversation (the same value always gets the same placeholder) and numbering starts at 1 in every conversation;
numbers already used by placeholders present in the input are skipped, so redacting twice equals redacting once.
A secret value found anywhere in a conversation (secret/url_password kinds, 8+ characters) is also replaced
wherever else it occurs in that conversation, even where no detector would have recognised it.

User and host names are learned the same way: once a name is seen in one of the shapes above (or as what a `whoami`,
`hostname` or `git config user.name` tool call returned), every other whole-word occurrence of it in the conversation
is replaced too: in prose, in tool results, in tool arguments, in an encoded folder name (a user name is matched as
written, lower case, Capitalised and UPPER case, and with its non-alphanumerics turned into "-" the way Claude Code
encodes folders; a host name as written, in lower, Capitalised or UPPER case, and without its domain). Rule for common words: a name shorter than 3 characters, or one in a short
list of account and machine names that are ordinary words or shared defaults (root, admin, user, dev, ubuntu, test,
runner, localhost, ...) or of given names that are common English words (will, mark, may, ...), is replaced inside
the shapes above but never learned, so the word stays everywhere else. (The user-name kind keeps the key home_path,
which dataset cards already count by.)
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import lru_cache
from typing import Any

from model_customization.datasets.shared_digests import SharedDigests
from model_customization.memory.records import Conversation, ToolCall

KINDS = ("secret", "private_key", "url_password", "email", "phone", "card", "ip", "home_path", "host_name")
LABELS = {
    "secret": "SECRET",
    "private_key": "PRIVATE_KEY",
    "url_password": "PASSWORD",
    "email": "EMAIL",
    "phone": "PHONE",
    "card": "CARD",
    "ip": "IP",
    "home_path": "USER",
    "host_name": "HOST",
}
_KIND_OF_LABEL = {label: kind for kind, label in LABELS.items()}
PLACEHOLDER_RE = re.compile(r"<(SECRET|PRIVATE_KEY|PASSWORD|EMAIL|PHONE|CARD|IP|USER|HOST)_(\d+)>")
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
# One search for all of them (used on the short runs where a vendor token can be, and on texts that are not ASCII):
# it finds a match exactly where some marker occurs (the tests check it against the plain `in` tests).
_MARKER_RE = re.compile(
    r"-(?<=sk-)|-(?<=glpat-)|_(?<=sk_)|_(?<=rk_)|_(?<=gh[pousr]_)|_(?<=github_pat_)|_(?<=npm_)|_(?<=hf_)"
    r"|A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA|Iza)|x(?=ox)|J(?<=eyJ)|\.(?<=hooks\.)slack\.com"
)
# Values introduced by a keyword: AWS secret keys, bearer/basic tokens, `password: hunter2`.
_SECRET_VALUE_PATTERNS: list[tuple[tuple[str, ...], re.Pattern[str]]] = [  # (lowercase markers, pattern)
    (("aws",), re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,20}?[\s'\"=:]([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")),
    (("bearer",), re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)")),
    (("authorization",), re.compile(r"(?i)\bauthorization:\s*basic\s+([A-Za-z0-9+/]{8,}=*)")),
    (("pass", "pwd", "secret", "key", "token"), _SECRET_KEYWORD_VALUE_RE := re.compile(
        r"(?i)(?<![A-Za-z0-9])(?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|"
        r"access[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token)['\"]?\s*(?:[:=]|:=)\s*"
        r"['\"]?([^\s'\"<>,;()\[\]{}]{6,})"
    )),
]
# A secret stated in words: "my password is hunter22", "the api key: abc...", "token was ...". Only a value that
# looks like one (letters and digits, or a symbol) counts, so "the password is wrong" stays.
_SECRET_PHRASE_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:password|passwd|passphrase|passcode|pin code|secret|api[ _-]?key|access[ _-]?key|"
    r"secret[ _-]?key|private[ _-]?key|access[ _-]?token|auth[ _-]?token|refresh[ _-]?token|bearer token|token|"
    r"credentials?)(?:[ \t]+(?:for|of|to|on)[ \t]+[^\s:=]{1,40}){0,1}[ \t]*(?:\b(?:is|was|are|=|:)\b[ \t]*:?|:)[ \t]*"
    r"['\"`]?([^\s'\"`<>,;()\[\]{}]{6,})"
)
_PHRASE_MARKERS = ("pass", "pin code", "secret", "key", "token", "credential")
# A run that may be base64 (standard or URL-safe): long enough to hide a key, decoded and looked at once.
# Encoded text has both upper and lower case letters (paths, words and hex digests seldom do: they are not decoded).
_BASE64_RUN_RE = re.compile(
    r"(?<![A-Za-z0-9+/_=-])(?=[A-Za-z0-9+/_-]*[A-Z])(?=[A-Za-z0-9+/_-]*[a-z])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/_=-])"
)
_BASE64_SECRET_KINDS = ("secret", "private_key", "url_password")
# A token wrapped over lines: a run of token characters that ends its line, then one or more lines that are each
# nothing but such a run (a key pasted with a line break in it). The joined value is checked against the vendor
# patterns. A following line with words after the run ("eyJ...\nTRIAGE severity=high") is prose, not a wrapped key.
_WRAPPED_RE = re.compile(
    r"(?m)(?<![A-Za-z0-9_+/=.-])[A-Za-z0-9_+/=.-]{3,}(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9_+/=.-]{2,}(?=[ \t]*$)){1,8}"
)
_STRONG_VALUE_RE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)|[!@#$%^&*~+=]")  # letters and digits, or a symbol

# JSON object keys whose string values are secrets whatever they look like.
_SECRET_KEY_NAME_RE = re.compile(
    r"(?i)^(?:.*[_-])?(?:password|passwd|pwd|passphrase|secret|client_?secret|api_?key|apikey|access_?key|"
    r"secret_?key|private_?key|access_?token|auth_?token|refresh_?token|token|credentials?)$"
)
# Inside a JSON schema property whose name is a secret's, these hold values of it (a tool definition's default).
_SCHEMA_VALUE_KEYS = {"default", "const", "enum", "examples", "example"}

# --- detect-secrets ------------------------------------------------------------------------------------------------

# Lines worth handing to detect-secrets: a keyword its KeywordDetector keys on, a URL (BasicAuth), or a run of 20+
# token characters with a digit in it (every vendor-token plugin and the high-entropy plugins need one). The rest
# cannot produce a finding, and skipping them is most of redaction's speed. Checked with `in` and a possessive run
# regex, which are about 20x faster than one case-insensitive alternation over the text.
_DS_KEYWORDS = ("pass", "pwd", "secret", "contrase", "://")
_DS_KEY_WORDS = ("api", "auth", "service", "account", "db", "database", "priv", "private", "client")
_DS_KEY_RE = re.compile(r"(?:" + "|".join(_DS_KEY_WORDS) + r")_?key")
_DS_RUN_RE = re.compile(r"[A-Za-z0-9+/=_]{20,}+")


_DS_RUN_TABLE = bytes(ord("r") if chr(b) in string.ascii_letters + string.digits + "+/=_" else ord(" ") for b in range(256))
_DS_DIGIT_TABLE = bytes(ord("0") if chr(b) in string.digits else ord(" ") for b in range(256))
_DS_RUN_BYTES_RE = re.compile(rb"r+")


def _has_run_with_digit(text: str) -> bool:
    """Whether _DS_RUN_RE finds a run with a digit in it. The run's characters are ASCII, so the UTF-8 bytes of the
    text have the same runs; they are found with bytes.find on the translated bytes instead of a regex pass."""
    encoded = text.encode("utf-8", "surrogatepass")
    runs = encoded.translate(_DS_RUN_TABLE)
    digits = encoded.translate(_DS_DIGIT_TABLE)
    needle = b"r" * 20
    at = runs.find(needle)
    while at != -1:
        end = _DS_RUN_BYTES_RE.match(runs, at).end()  # type: ignore[union-attr]
        if digits.find(b"0", at, end) != -1:
            return True
        at = runs.find(needle, end)
    return False


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    if any(k in low for k in _DS_KEYWORDS) or ("key" in low and _DS_KEY_RE.search(low)):
        return True
    return _has_run_with_digit(text)


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


def load_detect_secrets() -> None:
    """Load detect-secrets' plugins now (a process about to fork workers that redact, or their fork server), so that
    the workers share them instead of each loading its own."""
    _detect_secrets_plugins()


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


# What detect-secrets found in a line (a pure function of the line), kept for lines that come again: a line holding a
# keyword is handed to every plugin (about half a millisecond), and many such lines repeat ("    pass" in Python
# files read again, "5 passed in 0.3s" in test runs). Lines of up to _DS_CACHED_LINE_CHARS only, bounded in entries
# (a few MB when full), cleared whole when full.
_DS_CACHED_LINE_CHARS = 256
_DS_LINE_CACHE_MAX_ENTRIES = 20_000
_ds_line_cache: dict[str, tuple[str, ...]] = {}


def _detect_secrets_in_line(line: str) -> tuple[str, ...]:
    if len(line) > _DS_CACHED_LINE_CHARS:
        return _detect_secrets_found(line)
    found = _ds_line_cache.get(line)
    if found is None:
        found = _detect_secrets_found(line)
        if len(_ds_line_cache) >= _DS_LINE_CACHE_MAX_ENTRIES:
            _ds_line_cache.clear()
        _ds_line_cache[line] = found
    return found


def _detect_secrets_found(line: str) -> tuple[str, ...]:
    found = []
    for plugin in _detect_secrets_plugins():
        for potential in plugin.analyze_line(filename="conversation", line=line):
            value = potential.secret_value
            if value and not _ds_false_positive(plugin, value, line):
                found.append(value)
    return tuple(found)


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

# Claude Code names a project's folder after its path with every non-alphanumeric turned into "-":
# /home/NAME/x -> -home-NAME-x, /Users/NAME/x -> -Users-NAME-x, C:\\Users\\NAME\\x -> C--Users-NAME-x.
_ENCODED_HOME_RE = re.compile(
    r"(?:(?<![A-Za-z0-9-])|(?<=\b[A-Z]-))(-home-|-Users-)([A-Za-z0-9_.]+?)(?=-|$|[/\\\s'\"`:;,)\]}*])"
)
# `ls -l`: mode, links, owner, group, then the size (or a device's major number).
_LS_LONG_RE = re.compile(r"(?m)^([ \t]*[-dlcbpsD][rwxsStTl-]{9}[@+.]?[ \t]+\d+[ \t]+)(\S+)([ \t]+)(\S+)(?=[ \t]+\d)")
# Shell prompts at the start of a line: user@host:~/dir$ (or user@host:~/dir alone, as status lines show it),
# [user@host dir]$, user@host dir % (zsh), with an optional "(venv) " before; and ssh's "user@host's password:".
_PROMPT_RE = re.compile(
    r"(?m)(?:^[ \t]*(?:\([^()\n]{1,40}\)[ \t]*)?\[?)([A-Za-z_][A-Za-z0-9_.-]{0,31})@([A-Za-z0-9][A-Za-z0-9-]{0,62})"
    r"(?=(?:\.[A-Za-z0-9-]+)*(?::~\S*(?:\s|$)|:/\S*[$#](?:\s|$)|[ \t]+\S*[ \t]?[$#%](?:\s|$)))"
    r"|(?<![\w.@-])([A-Za-z_][A-Za-z0-9_.-]{0,31})@([A-Za-z0-9][A-Za-z0-9.-]{0,252})(?='s password:)"
)
_ENV_NAME_RE = re.compile(r"(?<![A-Za-z0-9_$])(USER|LOGNAME|USERNAME|HOSTNAME)=([\"']?)([A-Za-z0-9_][A-Za-z0-9_.-]*)\2(?![\w.-])")
# What `whoami` / `hostname` printed, in a terminal log kept as text ("$ whoami\nmarco").
_COMMAND_OUTPUT_RE = re.compile(
    r"(?m)(?:^|[$#%>][ \t])[ \t]*(whoami|id -un|hostname|hostname -s|uname -n)[ \t]*\n[ \t]*([A-Za-z0-9_][A-Za-z0-9_.-]*)[ \t]*$"
)
_NAME_COMMANDS = ("whoami", "id -un", "hostname", "uname -n")  # literals in every _COMMAND_OUTPUT_RE match
_NAME_VARIABLES = ("USER=", "LOGNAME=", "USERNAME=", "HOSTNAME=")  # and in every _ENV_NAME_RE match
_GIT_AUTHOR_RE = re.compile(r"(?m)^[ \t]*(?:Author|Commit):[ \t]+([^<>\n@]{2,80}?)[ \t]+<")
_GIT_USER_NAME_RE = re.compile(r"user\.name(?:=|[ \t]+[\"'])([^\"'\n<>@]{2,80}?)(?=[\"']|[ \t]*$)", re.MULTILINE)
_LAST_LOGIN_RE = re.compile(r"Last login: [^\n]{5,60}? from ([A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*)")
_MAC_HOST_RE = re.compile(
    r"(?<![\w.-])([A-Za-z0-9-]*(?:MacBook|iMac|Mac-mini|Macmini|Mac-Pro|Mac-Studio|MBP)[A-Za-z0-9-]*)\.local(?![\w-])",
    re.IGNORECASE,
)
# Tool calls whose output is a user name, a host name or a full name.
_WHOAMI_COMMAND_RE = re.compile(r"^\s*(?:whoami|id -un|id -nu|logname|echo \$\{?(?:USER|LOGNAME)\}?)\s*$")
_HOSTNAME_COMMAND_RE = re.compile(r"^\s*(?:hostname(?: -s| --short| -f)?|uname -n|echo \$\{?HOSTNAME\}?|scutil --get \w+)\s*$")
_GIT_NAME_COMMAND_RE = re.compile(r"^\s*git config (?:--global |--get |--local )*user\.name\s*$")

# Accounts and groups that are the system's, not a person's: kept in `ls -l` columns and prompts.
_SYSTEM_ACCOUNTS = {
    "root", "wheel", "staff", "admin", "daemon", "bin", "sys", "adm", "nobody", "nogroup", "users", "everyone",
    "_www", "www-data", "docker", "sudo", "syslog", "messagebus", "mail", "tty", "disk", "lp", "audio", "video",
    "input", "kvm", "render", "utmp", "man", "games", "operator", "_lpadmin", "sshd", "postgres", "mysql", "redis",
    "nginx", "apache", "systemd-journal", "systemd-network", "unknown", "access_bpf",
}
# Names never learned (replaced inside the shapes above, left alone elsewhere): shared defaults and ordinary words.
_NAME_NOT_LEARNED = _SYSTEM_ACCOUNTS | {
    "user", "dev", "developer", "test", "tester", "guest", "ubuntu", "debian", "fedora", "centos", "alpine", "arch",
    "kali", "pi", "ec2-user", "vagrant", "runner", "node", "app", "home", "default", "public", "shared", "git",
    "jenkins", "build", "builder", "ci", "codespace", "vscode", "coder", "gitpod", "local", "system", "administrator",
    "owner", "me", "you", "claude", "github", "copilot", "bot", "agent", "server", "host", "box", "machine",
    "computer", "laptop", "desktop", "workstation", "devbox", "sandbox", "container", "localhost", "raspberrypi",
    "buildkitsandbox", "workspace", "project", "projects", "code", "src", "tmp", "temp", "data", "work", "main",
    # given names that are everyday English words
    "will", "mark", "bill", "art", "max", "may", "june", "april", "august", "grace", "hope", "joy", "faith", "rose",
    "ray", "sky", "dawn", "summer", "amber", "jack", "frank", "sue", "rob", "pat", "gene", "guy", "lane", "dean",
    "chase", "hunter", "page", "rich", "penny", "ruby", "jade", "iris", "hazel", "ivy", "holly", "miles", "chip",
}
_NAME_MIN_LEN = 3


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


def _sub_at(
    pattern: re.Pattern[str], text: str, fn: Callable[[re.Match[str]], str | None], starts: list[int] | None, *, retry_inside: bool = True
) -> str:
    """_sub (or, with retry_inside=False, pattern.sub keeping a match fn rejects) trying only the positions in `starts`
    (ascending): the caller's cheap scan found them, and every place the pattern can match starts at one of them,
    so the result is the same as searching every position; None means the scan could not tell, and every position
    is searched."""
    if starts is None:
        return _sub(pattern, text, fn) if retry_inside else pattern.sub(lambda m: fn(m) or m.group(0), text)
    out: list[str] = []
    done = 0
    position = 0
    for start in starts:
        if start < position:
            continue
        match = pattern.match(text, start)
        if match is None:
            continue
        replacement = fn(match)
        if replacement is None:
            position = start + 1 if retry_inside else max(match.end(), start + 1)
            continue
        out.append(text[done:start])
        out.append(replacement)
        done = position = match.end()
        if match.end() == start:
            position += 1
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _run_starts(finder: re.Pattern[str], text: str) -> list[int]:
    """Where `finder`'s matches start. Used with a finder made only of characters that the detector's look-behind
    refuses before its match, so no finder match can run over a place where a detector match starts."""
    return [match.start() for match in finder.finditer(text)]


# Characters that IGNORECASE matches to an ASCII letter (dotless i, dotted I, long s, Kelvin sign): with one of them
# in a text, keyword positions found in its lower-case copy could miss a match, so the text is searched throughout.
_FOLDS_TO_ASCII = ("\u0131", "\u0130", "\u017f", "\u212a")


_last_view: tuple[str, bytes] = ("", b"")  # the last text _ascii_view was asked about, and its view
_last_classes: tuple[str, bytes | None] = ("", b"")  # the last text _classes was asked about, and its classes
_NON_ASCII_DIGIT_RE = re.compile(r"[^\x00-\x7f\D]")  # a character \d matches that is not 0-9


def _ascii_view(text: str) -> bytes:
    """The text as one byte per character: itself for an ASCII text, else with "?" for every other character, so
    positions in it are positions in the text. A scan for runs of ASCII classes finds the same runs in it (no other
    character is in such a class; "?" is in none of them). The passes of one text ask in turn: a pass that replaced
    nothing hands the same string on, so it is encoded once."""
    global _last_view
    last = _last_view  # one read and one write of a tuple: threads redacting at once never mix two texts
    if last[0] is text:
        return last[1]
    view = text.encode("ascii", "replace")
    _last_view = (text, view)
    return view


def _classes(text: str) -> bytes | None:
    """The class of every character of the text (see _CLASS_TABLE), other characters than ASCII in no class; None
    for a text holding a digit other than 0-9, which \\d matches and the classes do not show (then the regex finders
    below are used). Asked in turn by the passes of one text, like _ascii_view."""
    global _last_classes
    last = _last_classes
    if last[0] is text:
        return last[1]
    if text.isascii() or _NON_ASCII_DIGIT_RE.search(text) is None:
        classes: bytes | None = _ascii_view(text).translate(_CLASS_TABLE)
    else:
        classes = None
    _last_classes = (text, classes)
    return classes


# Fast scans of a text's ASCII view: bytes.translate maps each character to its class in one C pass, and bytes.find
# looks for runs of a class, which is some 20x faster than a regex looking at every position. A text holding a digit
# other than 0-9 (which \d matches) is scanned for digit shapes with the regex finders below instead.
def _class_table(classes: dict[str, str], other: str = " ") -> bytes:
    table = bytearray(other.encode("ascii") * 256)
    for members, code in classes.items():
        for char in members:
            table[ord(char)] = ord(code)
    return bytes(table)


_DIGITS = "0123456789"
_CLASS_TABLE = _class_table({_DIGITS: "0", "ABCDEFabcdef": "h", "+": "+", "(": "(", ".": ".", ":": ":", " ": " ", "-": "-"}, "~")
_TOKEN_TABLE = _class_table({string.ascii_letters + _DIGITS + "+/_-": "b"})  # the characters of a base64 run
_MODE_TABLE = _class_table({"rwxsStTl-": "p"})  # the characters of an `ls -l` mode
_RUN_OF = {code: re.compile(re.escape(code) + b"+") for code in (b"0", b"b", b"s")}


def _class_runs(classes: bytes, code: bytes, least: int) -> list[int]:
    """The starts of the runs of at least `least` bytes `code` in `classes` (bytes.find finds a run at its start,
    since the search resumes after the previous run)."""
    starts = []
    needle = code * least
    at = classes.find(needle)
    while at != -1:
        starts.append(at)
        at = classes.find(needle, _RUN_OF[code].match(classes, at).end())  # type: ignore[union-attr]
    return starts


def _finds(classes: bytes, needle: bytes) -> list[int]:
    found = []
    at = classes.find(needle)
    while at != -1:
        found.append(at)
        at = classes.find(needle, at + 1)
    return found


# On the classes (digits are "0"; a dot, a space and a dash are themselves; most other characters "~"), whole runs of
# digits that may begin a card or a phone, with the separator after them (the callers check the first digit). Each
# pattern starts with its literal "0", so the search skips to the next digit in C; a run followed by anything else
# (the arrow after a line number of Claude Code's Read output) is no candidate.
_CARD_RUN_RE = re.compile(rb"0(?<!00)(?:0{12,18}(?!0)|000(?=[ -]))")
_PHONE_RUN_RE = re.compile(rb"0(?<!00)(?:00(?=[ .-])|0{2,4}(?=[ -]))")


def _card_starts(text: str, classes: bytes | None) -> list[int]:
    if classes is None:
        return _run_starts(_DIGITS_4_RE, text)
    # A card's look-behind and look-ahead refuse a digit on either side, so its first run of digits is a whole run:
    # 13 to 19 digits, or four followed by the group separator (a space or a dash); the first digit is 2 to 6.
    return [
        run.start()
        for run in _CARD_RUN_RE.finditer(classes)
        if text[run.start()] in "23456"
    ]


def _phone_starts(text: str, classes: bytes | None) -> list[int]:
    if classes is None:
        return sorted({*_run_starts(_PHONE_SIGN_RE, text), *_run_starts(_DIGITS_3_RE, text)})
    # A phone that starts with a digit starts a whole run (its look-behind refuses a digit): three digits and a
    # separator (555-123-4567), or a 0 and two to four more digits and a space or dash (020 7946 0958).
    digit_led = [
        run.start()
        for run in _PHONE_RUN_RE.finditer(classes)
        if run.end() - run.start() == 3 or text[run.start()] == "0"
    ]
    signs = _finds(classes, b"+0") + _finds(classes, b"(0")
    return sorted({*digit_led, *signs}) if signs else digit_led


def _ipv4_starts(text: str, classes: bytes | None) -> list[int]:
    if classes is None:
        return _run_starts(_IPV4_START_RE, text)
    # A match starts with one to three digits, a dot and a digit: up to two places before a digit-dot-digit.
    return sorted({start for at in _finds(classes, b"0.0") for start in (at - 2, at - 1, at) if start >= 0})


_IPV6_COLONS_RE = re.compile(rb":(?=[0h]{0,4}:)")  # on the classes: a colon, up to four hex digits and a colon


def _ipv6_starts(text: str, classes: bytes | None) -> list[int]:
    if classes is None:
        return _run_starts(_IPV6_START_RE, text)
    # A match starts with up to four hex digits, a colon, up to four more and a colon: up to four places before
    # every colon that such a pair begins with (the look-ahead finds every one, overlapping or not).
    starts: set[int] = set()
    for found in _IPV6_COLONS_RE.finditer(classes):
        at = found.start()
        starts.update(range(max(0, at - 4), at + 1))
    return sorted(starts)


def _base64_starts(text: str) -> list[int]:
    return _class_runs(_ascii_view(text).translate(_TOKEN_TABLE), b"b", 16)  # the run's characters are all ASCII


def _may_list_files(text: str) -> bool:
    """False when no `ls -l` mode (nine of r w x s S t T l -) can be in the text."""
    return b"p" * 9 in _ascii_view(text).translate(_MODE_TABLE)


# Where each keyword-led pattern's match can start: at a keyword its alternatives begin with, or at a word that comes
# before one (with a separator or none: "api_key", "apikey", "access token"). Both are found from the positions of
# the keywords the gates look for anyway, so no other word is searched for.
_VALUE_STARTS = (("pass", "pwd", "secret"), {"secret": ("client",), "key": ("api", "access"), "token": ("access", "auth", "refresh")})
_PHRASE_STARTS = (
    ("pass", "pin code", "secret", "token", "credential"),
    {"key": ("api", "access", "private"), "token": ("access", "auth", "refresh", "bearer")},
)
# Runs where a match of the digit and token patterns can start (each is preceded by a character the pattern's
# look-behind refuses, so it starts a maximal run of these characters).
_DIGITS_4_RE = re.compile(r"\d{4,}")  # a card's first four digits
_PHONE_SIGN_RE = re.compile(r"[+(]\d")  # +1 ..., (555) ...
_DIGITS_3_RE = re.compile(r"\d{3,}")  # 555-..., 020 ... (also after a "(", which the look-behind allows)
_IPV4_START_RE = re.compile(r"\d+\.")
_IPV6_START_RE = re.compile(r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")


# Every keyword a detector's gate asks about (in the lower-case text): the value patterns', the phrase's and
# detect-secrets' (_SECRET_VALUE_PATTERNS, _PHRASE_MARKERS, _DS_KEYWORDS and the "key" of _DS_KEY_RE).
_GATE_KEYWORDS = tuple(
    dict.fromkeys([*(m for markers, _ in _SECRET_VALUE_PATTERNS for m in markers), *_PHRASE_MARKERS, *_DS_KEYWORDS, "key"])
)
_GATE_KEYWORD_RE = re.compile("|".join(re.escape(keyword) for keyword in _GATE_KEYWORDS))
# Marker classes: with line breaks deleted and letters reduced to their case, every vendor marker holds one of
# _MARKER_CLASS_NEEDLES (sk- sk_ rk_ gh?_ glpat- npm_ hf_ github_pat_ -> "aa-"; AKIA... -> "AAAA"; AIza -> "AAaa";
# eyJ -> "aaA"; xox -> "xax"; hooks.slack.com -> "aaaaa.aaaaa.aaa"), so a text without any of them holds no marker.
_MARKER_TABLE = _class_table(
    {string.ascii_lowercase: "a", string.ascii_uppercase: "A", "-_": "-", ".": ".", "x": "x"}
)
_MARKER_CLASS_NEEDLES = (b"aa-", b"AAAA", b"AAaa", b"aaA", b"xax", b"aaaaa.aaaaa.aaa")


def _marker_in_flat(text: str) -> bool:
    """Whether a vendor marker occurs in the text with its line breaks taken out (a break may split a marker)."""
    marker_classes = _ascii_view(text).translate(_MARKER_TABLE, b"\n")
    if not any(needle in marker_classes for needle in _MARKER_CLASS_NEEDLES):
        return False
    flat = text.replace("\n", "")
    return any(marker in flat for marker in _SECRET_MARKERS)


_WRAP_TABLE = _class_table({string.ascii_letters + _DIGITS + "_+/=.-": "w", " \t": " ", "\n": "\n"}, "~")
# A line that is nothing but a run of two or more token characters (spaces and tabs around it), the shape every
# continuation line of _WRAPPED_RE has (any other character, "\r" or the arrow after a line number, breaks it).
_WRAP_SHAPE_RE = re.compile(rb"\n *ww+ *(?:\n|\Z)")


def _may_wrap(text: str) -> bool:
    """False when _WRAPPED_RE cannot match: no line of the text is a lone run of token characters."""
    return _WRAP_SHAPE_RE.search(_ascii_view(text).translate(_WRAP_TABLE)) is not None


_VENDOR_RUN_TABLE = _class_table({string.ascii_letters + _DIGITS + "_-": "s"})


def _may_hold_vendor_token(text: str) -> bool:
    """Whether _SECRET_RE may match: a vendor marker in the text (what decided it before), looked for only where a
    match could be. Every pattern but two matches inside a run of 15 or more of [A-Za-z0-9_-] (a marker and at least
    ten more), so the marker is looked for in those runs; the two others hold "hooks.slack.com" or ".eyJ"."""
    if "hooks.slack.com" in text or ".eyJ" in text:
        return True
    runs = _ascii_view(text).translate(_VENDOR_RUN_TABLE)
    needle = b"s" * 15
    at = runs.find(needle)
    while at != -1:
        end = _RUN_OF[b"s"].match(runs, at).end()  # type: ignore[union-attr]
        if _MARKER_RE.search(text[at:end]):
            return True
        at = runs.find(needle, end)
    return False


class _Scan:
    """What the detectors' cheap checks found in one text, each part looked for once, on first use, and shared by
    every detector that asks about the same string (a detector that replaced something hands on a new string, and
    the next one to ask scans that one)."""

    __slots__ = ("text", "low", "present", "_found", "_first", "_ds_starts")

    def __init__(self, text: str) -> None:
        self.text = text
        low = self.low = text.lower()
        # Which gate keywords the text holds: one regex search answers "none" for a short text (most are), `in`
        # tests (each a C pass) are cheaper for a long one.
        self._found: dict[str, list[int]] = {}
        self._first: dict[str, int] = {}  # where a gate keyword found present was first seen
        if len(low) < 512 and _GATE_KEYWORD_RE.search(low) is None:
            self.present: frozenset[str] | set[str] = frozenset()
        else:
            present = self.present = set()
            found = self._found
            for keyword in _GATE_KEYWORDS:
                at = low.find(keyword)
                if at == -1:
                    found[keyword] = []
                else:
                    present.add(keyword)
                    self._first[keyword] = at
        self._ds_starts: list[int] | None | bool = False  # False: not looked for yet

    def positions(self, keyword: str) -> list[int]:
        """Where `keyword` (lower case) starts in the lower-case text."""
        found = self._found.get(keyword)
        if found is None:
            low = self.low
            found = []
            at = self._first.get(keyword)
            if at is None:  # (a gate keyword known to be absent has its empty list already)
                at = low.find(keyword)
            while at != -1:
                found.append(at)
                at = low.find(keyword, at + 1)
            self._found[keyword] = found
        return found

    def has(self, keywords: tuple[str, ...]) -> bool:
        """Whether one of `keywords` (all in _GATE_KEYWORDS) is in the lower-case text."""
        return not self.present.isdisjoint(keywords)

    def starts(self, spec: tuple[tuple[str, ...], dict[str, tuple[str, ...]]]) -> list[int] | None:
        """Every place a keyword-led pattern can match (see _VALUE_STARTS), ascending; None when not sure."""
        if any(char in self.text for char in _FOLDS_TO_ASCII):
            return None
        leading, prefixed = spec
        low = self.low
        starts = {at for keyword in leading for at in self.positions(keyword)}
        for keyword, words in prefixed.items():
            reach = max(map(len, words)) + 1
            for at in self.positions(keyword):
                before = low[max(0, at - reach) : at]
                # "api" + "key" or "api" + "_" + "key": two C calls rule out every word for most keywords
                if before.endswith(words) or before[:-1].endswith(words):
                    for word in words:
                        for start in (at - len(word), at - len(word) - 1):
                            if start >= 0 and low.startswith(word, start):
                                starts.add(start)
        return sorted(starts)

    def ds_starts(self) -> list[int] | None:
        """Where the text holds what _may_hold_secret looks for (a keyword, a `...key`, a 20+ run with a digit),
        in order; None for a text whose lower case is longer than it (U+0130 lowers to two characters), so that
        positions in the lower case are not positions in the text. (Lowering a character does not depend on the
        lines around it, and the keywords are ASCII, so a keyword found in the text's lower case is in its line's.)"""
        if self._ds_starts is not False:
            return self._ds_starts  # type: ignore[return-value]
        text = self.text
        if len(self.low) != len(text):
            self._ds_starts = None
            return None
        present = self.present
        starts = [at for keyword in _DS_KEYWORDS if keyword in present for at in self.positions(keyword)]
        if "key" in present:  # a `..._key` of _DS_KEY_RE: its "key" is on the same line
            low = self.low
            starts.extend(
                at
                for at in self.positions("key")
                if any(low[max(0, at - len(word) - 1) : at].endswith((word, word + "_")) for word in _DS_KEY_WORDS)
            )
        # The runs and their digits are ASCII: the same in the text's ASCII view as in its UTF-8 (_has_run_with_digit).
        view = _ascii_view(text)
        runs = view.translate(_DS_RUN_TABLE)
        needle = b"r" * 20
        at = runs.find(needle)
        if at != -1:
            digits = _classes(text) or view.translate(_DS_DIGIT_TABLE)
            while at != -1:
                end = _DS_RUN_BYTES_RE.match(runs, at).end()  # type: ignore[union-attr]
                if digits.find(b"0", at, end) != -1:
                    starts.append(at)
                at = runs.find(needle, end)
        starts.sort()
        self._ds_starts = starts
        return starts


# Digests (blake2b, 16 bytes) of texts in which the detectors found nothing (see _Redactor.text), shared by every
# redaction in this process. Only texts long enough for a scan to cost more than hashing them; bounded in entries
# (about 6 MB when full), cleared whole when full.
_CLEAN_MIN_CHARS = 256
_CLEAN_MAX_ENTRIES = 100_000
_clean_texts: set[bytes] = set()
# Shorter texts in which nothing was found, kept as they are (a set of strings: their hash is cached on the string,
# so asking costs less than one scan). Tool arguments and short replies repeat a great deal ("file_path", a test
# command, "Run the tests"). Bounded in entries (under 256 characters each, so a few MB when full), cleared when full.
_CLEAN_SHORT_MAX_ENTRIES = 20_000
_clean_short_texts: set[str] = set()
# Set by share_clean_texts() in a process about to fork a build's workers (or in their fork server): the digests of
# clean texts then live in a table the workers share instead of _clean_texts, so that a text one worker found clean
# (a file read again in another session) is not scanned again by the other. Split between two workers' own sets, a
# 52.9 MB corpus had 20% more characters scanned.
_shared_clean: SharedDigests | None = None
SHARED_CLEAN_SLOTS = 1 << 18  # 4 MB at most, shared: less than one worker's _clean_texts when full


def share_clean_texts() -> None:
    """From now on, remember clean texts where the processes this one forks share them (see _shared_clean)."""
    global _shared_clean
    if _shared_clean is None:
        _shared_clean = SharedDigests(SHARED_CLEAN_SLOTS)


def unshare_clean_texts() -> None:
    """Back to this process's own memory of clean texts (its forked workers are gone): the shared table is freed."""
    global _shared_clean
    shared, _shared_clean = _shared_clean, None
    if shared is not None:
        shared.close()


class _Redactor:
    """Placeholder bookkeeping for one conversation."""

    def __init__(self, depth: int = 0) -> None:
        self.placeholders: dict[tuple[str, str], str] = {}
        self.next_number: Counter[str] = Counter()  # label -> last number used
        self.counts: Counter[str] = Counter()
        self.sweep_values: dict[str, str] = {}
        self.names: dict[str, str] = {}  # a learned user or host name, as it may be written -> its placeholder
        self.depth = depth  # 1 while looking inside a decoded base64 run (never decoded again)
        self._last_scan: _Scan | None = None

    def _scan(self, text: str) -> _Scan:
        scan = self._last_scan
        if scan is None or scan.text is not text:
            scan = self._last_scan = _Scan(text)
        return scan

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

    def name(self, kind: str, value: str, learn: bool = True) -> str:
        """The placeholder of a user or host name found in one of the known shapes (counted), learning the name."""
        placeholder = self.placeholder(kind, value.lower())
        if learn:
            self.learn(kind, value)
        return placeholder

    def learn(self, kind: str, value: str) -> None:
        """Remember a user or host name, so that its other occurrences in the conversation are replaced by the sweep."""
        value = value.strip()
        low = value.lower()
        if len(value) < _NAME_MIN_LEN or low in _NAME_NOT_LEARNED or not _has_letter(value):
            return
        if PLACEHOLDER_RE.search(value) or "<" in value or ">" in value:
            return
        key = (kind, low)
        placeholder = self.placeholders.get(key)
        if placeholder is None:
            label = LABELS[kind]
            self.next_number[label] += 1
            placeholder = self.placeholders[key] = f"<{label}_{self.next_number[label]}>"
        forms = {value, low, value.upper(), low.capitalize(), " ".join(w.capitalize() for w in low.split())}
        if kind == "home_path":
            forms.add(re.sub(r"[^A-Za-z0-9]", "-", value))  # as Claude Code writes it in a folder name
        for form in forms:
            if len(form) >= _NAME_MIN_LEN and form.strip("-"):
                self.names.setdefault(form, placeholder)
        if kind == "host_name" and "." in value:
            self.learn(kind, value.split(".", 1)[0])  # box.example.com is also written box

    def learn_from_commands(self, conv: Conversation) -> None:
        """Learn names from what `whoami`, `hostname` and `git config user.name` tool calls returned."""
        asked: dict[str, str] = {}
        for m in conv.messages:
            for call in m.tool_calls:
                command = _command_of(call.arguments)
                if command is None:
                    continue
                if _WHOAMI_COMMAND_RE.match(command):
                    asked[call.id] = "user"
                elif _HOSTNAME_COMMAND_RE.match(command):
                    asked[call.id] = "host"
                elif _GIT_NAME_COMMAND_RE.match(command):
                    asked[call.id] = "full_name"
        if not asked:
            return
        for m in conv.messages:
            what = asked.get(m.tool_call_id or "") if m.role == "tool" else None
            if what is None or not isinstance(m.content, str):
                continue
            output = next((ln.strip() for ln in m.content.splitlines() if ln.strip()), "")
            if what == "user" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", output):
                self.learn("home_path", output)
            elif what == "host" and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", output):
                self.learn("host_name", output)
            elif what == "full_name" and re.fullmatch(r"[^<>@\n]{2,80}", output):
                self.learn("home_path", output)

    # -- the text pipeline ------------------------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """The text with every shape the detectors know replaced by its placeholder (see the module docstring).

        What the detectors find depends on the text alone: the conversation's state only numbers the placeholders
        of what was found. So a text in which nothing was found (no placeholder asked for, hence nothing learned
        and nothing counted) is remembered by its digest, and the next time any conversation holds it (a file read
        again, a system reminder, a tool definition) it is handed back without another scan."""
        if self.depth:
            return self._detect(text)
        if len(text) < _CLEAN_MIN_CHARS:
            if text in _clean_short_texts:
                return text
            found_before = self.counts.total()
            out = self._detect(text)
            if self.counts.total() == found_before and out == text:
                if len(_clean_short_texts) >= _CLEAN_SHORT_MAX_ENTRIES:
                    _clean_short_texts.clear()
                _clean_short_texts.add(text)
            return out
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        shared = _shared_clean
        if digest in (_clean_texts if shared is None else shared):
            return text
        found_before = self.counts.total()
        out = self._detect(text)
        if self.counts.total() == found_before and out == text:
            if shared is not None:
                shared.add(digest)
            else:
                if len(_clean_texts) >= _CLEAN_MAX_ENTRIES:
                    _clean_texts.clear()
                _clean_texts.add(digest)
        return out

    def _detect(self, text: str) -> str:
        """Every detector over the text, in order (see _detect_plain, which this equals): each one runs only where
        the text's scan found a place it could match, and a text with none of them is handed back untouched."""
        if not text:
            return text
        if "-----BEGIN" in text:
            text = _PRIVATE_KEY_RE.sub(lambda m: self.placeholder("private_key", m.group(0).strip()), text)
        # A wrapped token is looked for only when a vendor marker is there with the line breaks taken out (and
        # then only if a line is nothing but a run of token characters, without which _WRAPPED_RE finds nothing).
        if "\n" in text and _may_wrap(text) and _marker_in_flat(text):
            text = _sub_at(_WRAPPED_RE, text, self._wrapped, None, retry_inside=False)
        if "://" in text:
            text = _URL_PASSWORD_RE.sub(lambda m: m.group(1) + self.placeholder("url_password", m.group(2)), text)
        if _may_hold_vendor_token(text):
            text = _SECRET_RE.sub(lambda m: self.placeholder("secret", m.group(0)), text)
        for markers, pattern in _SECRET_VALUE_PATTERNS:
            scan = self._scan(text)
            if not scan.has(markers):
                continue
            if pattern is _SECRET_KEYWORD_VALUE_RE:
                if ":" in text or "=" in text:  # the pattern's assignment sign
                    text = _sub_at(pattern, text, self._secret_value, scan.starts(_VALUE_STARTS))
            else:
                text = _sub_at(pattern, text, self._secret_value, None)
        scan = self._scan(text)
        if scan.has(_PHRASE_MARKERS):
            text = _sub_at(_SECRET_PHRASE_RE, text, self._secret_value, scan.starts(_PHRASE_STARTS))
        text = self._detect_secrets(text)
        if self.depth == 0 and len(text) >= 16:
            text = _sub_at(_BASE64_RUN_RE, text, self._base64, _base64_starts(text), retry_inside=False)
        if "@" in text:
            text = _sub(_PROMPT_RE, text, self._prompt)
            text = _sub(_EMAIL_RE, text, self._email)
        text = _sub_at(_CARD_RE, text, self._card, _card_starts(text, _classes(text)))
        text = _sub_at(_PHONE_RE, text, self._phone, _phone_starts(text, _classes(text)))
        if "." in text:
            text = _sub_at(_IPV4_RE, text, self._ipv4, _ipv4_starts(text, _classes(text)))
        if ":" in text:
            text = _sub_at(_IPV6_RE, text, self._ipv6, _ipv6_starts(text, _classes(text)))
        if "Users" in text or "/home/" in text:
            text = _sub(_HOME_RE, text, self._home)
        if "-home-" in text or "-Users-" in text:
            text = _sub(_ENCODED_HOME_RE, text, self._home)
        return self._names(text)

    def _detect_plain(self, text: str) -> str:
        """What _detect does, written plainly: every detector searched for over the whole text, in order. Slow; the
        definition _detect must equal (the tests compare the two). Only the choices that decide what is found are
        kept: a wrapped token is looked for only when a vendor marker is in the text with its line breaks taken out,
        detect-secrets reads only the lines _may_hold_secret passes and none longer than 4000 characters, a Mac's
        host name only in a text that holds ".local" in lower case, and the text of a decoded base64 run is not
        decoded again."""
        if not text:
            return text
        text = _PRIVATE_KEY_RE.sub(lambda m: self.placeholder("private_key", m.group(0).strip()), text)
        if any(marker in text.replace("\n", "") for marker in _SECRET_MARKERS):
            text = _WRAPPED_RE.sub(lambda m: self._wrapped(m) or m.group(0), text)
        text = _URL_PASSWORD_RE.sub(lambda m: m.group(1) + self.placeholder("url_password", m.group(2)), text)
        text = _SECRET_RE.sub(lambda m: self.placeholder("secret", m.group(0)), text)
        for _markers, pattern in _SECRET_VALUE_PATTERNS:
            text = _sub(pattern, text, self._secret_value)
        text = _sub(_SECRET_PHRASE_RE, text, self._secret_value)
        lines = text.split("\n")
        for index, line in enumerate(lines):
            if len(line) <= 4000 and _may_hold_secret(line):
                lines[index] = self._secrets_in_line(line)
        text = "\n".join(lines)
        if self.depth == 0:
            text = _BASE64_RUN_RE.sub(lambda m: self._base64(m) or m.group(0), text)
        for pattern, fn in (
            (_PROMPT_RE, self._prompt), (_EMAIL_RE, self._email), (_CARD_RE, self._card), (_PHONE_RE, self._phone),
            (_IPV4_RE, self._ipv4), (_IPV6_RE, self._ipv6), (_HOME_RE, self._home), (_ENCODED_HOME_RE, self._home),
            (_LS_LONG_RE, self._ls_columns), (_COMMAND_OUTPUT_RE, self._command_output), (_ENV_NAME_RE, self._env_name),
        ):
            text = _sub(pattern, text, fn)
        text = _sub(_GIT_AUTHOR_RE, text, lambda m: self._replace_group(m, 1, "home_path", self._full_name(m, 1)))
        text = _sub(_GIT_USER_NAME_RE, text, lambda m: self._replace_group(m, 1, "home_path", self._full_name(m, 1)))
        text = _sub(_LAST_LOGIN_RE, text, lambda m: self._replace_group(m, 1, "host_name", m.group(1)))
        if ".local" in text:  # the pattern ignores case, but a Mac's name is looked for only after a lower-case .local
            text = _sub(_MAC_HOST_RE, text, lambda m: self._replace_group(m, 1, "host_name", m.group(1)))
        return text

    def _names(self, text: str) -> str:
        """The other shapes a user or host name comes in: `ls -l` columns, whoami/hostname output, USER=, git authors."""
        if "\n" in text or text[:1] in "-dlcbpsD \t":
            if _may_list_files(text):
                text = _sub(_LS_LONG_RE, text, self._ls_columns)
            if any(command in text for command in _NAME_COMMANDS):
                text = _sub(_COMMAND_OUTPUT_RE, text, self._command_output)
        if "=" in text and any(variable in text for variable in _NAME_VARIABLES):
            text = _sub(_ENV_NAME_RE, text, self._env_name)
        if ":" in text and ("Author" in text or "Commit" in text):
            text = _sub(_GIT_AUTHOR_RE, text, lambda m: self._replace_group(m, 1, "home_path", self._full_name(m, 1)))
        if "user.name" in text:
            text = _sub(_GIT_USER_NAME_RE, text, lambda m: self._replace_group(m, 1, "home_path", self._full_name(m, 1)))
        if "Last login" in text:
            text = _sub(_LAST_LOGIN_RE, text, lambda m: self._replace_group(m, 1, "host_name", m.group(1)))
        if ".local" in text:
            text = _sub(_MAC_HOST_RE, text, lambda m: self._replace_group(m, 1, "host_name", m.group(1)))
        return text

    def _replace_group(self, match: re.Match[str], group: int, kind: str, value: str | None) -> str | None:
        if value is None or PLACEHOLDER_RE.search(value):
            return None
        start, end = match.span(group)
        offset = match.start(0)
        whole = match.group(0)
        return whole[: start - offset] + self.name(kind, value) + whole[end - offset :]

    @staticmethod
    def _full_name(match: re.Match[str], group: int) -> str | None:
        value = match.group(group).strip()
        return None if value.lower() in _NAME_NOT_LEARNED or "[bot]" in value or not value else value

    def _prompt(self, match: re.Match[str]) -> str | None:
        if match.group(1) is not None:
            user, host, (u_start, u_end), (h_start, h_end) = match.group(1), match.group(2), match.span(1), match.span(2)
        else:
            user, host, (u_start, u_end), (h_start, h_end) = match.group(3), match.group(4), match.span(3), match.span(4)
        if PLACEHOLDER_RE.search(match.group(0)):
            return None
        offset = match.start(0)
        whole = match.group(0)
        user_out = user if user.lower() in _SYSTEM_ACCOUNTS else self.name("home_path", user)
        host_out = self.name("host_name", host)
        return whole[: u_start - offset] + user_out + whole[u_end - offset : h_start - offset] + host_out + whole[h_end - offset :]

    def _ls_columns(self, match: re.Match[str]) -> str | None:
        owner, group = match.group(2), match.group(4)

        def column(value: str, learn: bool) -> str:
            if value.lower() in _SYSTEM_ACCOUNTS or value.isdigit() or PLACEHOLDER_RE.fullmatch(value):
                return value
            return self.name("home_path", value, learn=learn or value.lower() == owner.lower())

        replaced = match.group(1) + column(owner, True) + match.group(3) + column(group, False)
        return None if replaced == match.group(0) else replaced

    def _command_output(self, match: re.Match[str]) -> str | None:
        kind = "home_path" if match.group(1) in ("whoami", "id -un") else "host_name"
        if (kind == "home_path" and match.group(2).lower() in _SYSTEM_ACCOUNTS) or not _has_letter(match.group(2)):
            return None
        return self._replace_group(match, 2, kind, match.group(2))

    def _env_name(self, match: re.Match[str]) -> str | None:
        kind = "host_name" if match.group(1) == "HOSTNAME" else "home_path"
        if (kind == "home_path" and match.group(3).lower() in _SYSTEM_ACCOUNTS) or not _has_letter(match.group(3)):
            return None  # root, or HOSTNAME=0.0.0.0 (a bind address, not a name)
        return self._replace_group(match, 3, kind, match.group(3))

    def _secret_value(self, match: re.Match[str]) -> str | None:
        value = match.group(1)
        if PLACEHOLDER_RE.search(value) or not _STRONG_VALUE_RE.search(value):
            return None
        start, end = match.span(1)
        whole = match.group(0)
        offset = match.start(0)
        return whole[: start - offset] + self.placeholder("secret", value) + whole[end - offset :]

    def _detect_secrets(self, text: str) -> str:
        """detect-secrets on the lines that may hold a secret (_may_hold_secret), none longer than 4000 characters
        (very long lines are data blobs; the regex passes above already ran over them). The scan's positions say
        which lines those are, so the other lines are not looked at again."""
        starts = self._scan(text).ds_starts()
        if starts is None:  # positions in the lower case are not positions in the text: each line is asked on its own
            if not _may_hold_secret(text):
                return text
            indices: Collection[int] = range(text.count("\n") + 1)
            lines = text.split("\n")
            indices = [index for index in indices if _may_hold_secret(lines[index])]
        elif not starts:
            return text
        else:
            lines = text.split("\n")
            indices, line, done = [], 0, 0
            for at in starts:
                line += text.count("\n", done, at)
                done = at
                if not indices or indices[-1] != line:
                    indices.append(line)
        changed = False
        for index in indices:
            line = lines[index]
            if len(line) > 4000:
                continue
            redacted = self._secrets_in_line(line)
            if redacted is not line:
                lines[index] = redacted
                changed = True
        return "\n".join(lines) if changed else text

    def _secrets_in_line(self, line: str) -> str:
        for value in sorted(set(_detect_secrets_in_line(line)), key=len, reverse=True):
            if value in line:
                occurrences = line.count(value)
                placeholder = self.placeholder("secret", value)
                self.counts["secret"] += occurrences - 1
                line = line.replace(value, placeholder)
        return line

    def _wrapped(self, match: re.Match[str]) -> str | None:
        """A vendor token broken over lines: the lines it spans become one placeholder (of the joined value).

        The run's lines are joined a few at a time (the longest joins first), since the lines around a wrapped token
        may be words that would spoil a shape's end ("AKIA...\nthanks" is no AWS key id when joined whole)."""
        whole = match.group(0)
        lines = [(m.start(), m.end()) for m in re.finditer(r"[^\s]+", whole)]
        for size in range(len(lines), 1, -1):
            for first in range(len(lines) - size + 1):
                span = lines[first : first + size]
                joined = "".join(whole[start:end] for start, end in span)
                found = _SECRET_RE.search(joined)
                if found is None:
                    continue
                # Map the token back to the text; it must cross a line break (else the ordinary pass finds it).
                offsets, position = [], 0
                for start, end in span:
                    offsets.append((position, start))
                    position += end - start
                begin, stop = _text_index(offsets, found.start()), _text_index(offsets, found.end() - 1) + 1
                if "\n" not in whole[begin:stop]:
                    continue
                return whole[:begin] + self.placeholder("secret", found.group(0)) + whole[stop:]
        return None

    def _base64(self, match: re.Match[str]) -> str | None:
        """A base64 run whose decoded text holds a secret is itself a secret."""
        decoded = _decode_base64_text(match.group(0))
        if decoded is None:
            return None
        inner = type(self)(depth=1)
        inner.text(decoded)
        if not any(inner.counts[kind] for kind in _BASE64_SECRET_KINDS):
            return None
        return self.placeholder("secret", match.group(0))

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
        # _HOME_RE: (prefix)(drive prefix)(name); _ENCODED_HOME_RE: (prefix)(name)
        prefix, user = (match.group(1) or match.group(2), match.group(3)) if match.re is _HOME_RE else match.groups()
        if user.lower() in _HOME_KEEP or user.strip(".") == "" or PLACEHOLDER_RE.search(user):
            return None
        return prefix + self.name("home_path", user)

    def sweep(self, text: str) -> str:
        """Replace leftover occurrences of secret values and learned names found elsewhere in the conversation."""
        if not text or not (self.sweep_values or self.names):
            return text

        def swap(match: re.Match[str]) -> str:
            found = match.group(0)
            placeholder = self.sweep_values.get(found) or self.names.get(found) or self.names[found.lower()]
            self.counts[_KIND_OF_LABEL[placeholder[1:].rsplit("_", 1)[0]]] += 1
            return placeholder

        if self.sweep_values:
            text = _sweep_pattern(tuple(sorted(self.sweep_values, key=len, reverse=True))).sub(swap, text)
        if self.names:
            text = _names_pattern(tuple(sorted(self.names, key=len, reverse=True))).sub(swap, text)
        return text


class _PlainRedactor(_Redactor):
    """A _Redactor that searches plainly (_detect_plain): the reference the tests hold the fast path to."""

    def _detect(self, text: str) -> str:
        return self._detect_plain(text)


def _text_index(offsets: list[tuple[int, int]], index: int) -> int:
    """Where character `index` of lines joined together sits in the text ((joined offset, text offset) per line)."""
    joined_at, text_at = max(o for o in offsets if o[0] <= index)
    return text_at + index - joined_at


def _decode_base64_text(run: str) -> str | None:
    """The text a base64 run encodes, or None when it does not decode to printable UTF-8."""
    import base64
    import binascii

    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded) if ("-" in body or "_" in body) else base64.b64decode(padded, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if len(decoded) < 8 or sum(ch.isprintable() or ch in "\n\t\r" for ch in decoded) < len(decoded):
        return None
    return decoded


@lru_cache(maxsize=64)
def _sweep_pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(v) for v in values))


@lru_cache(maxsize=64)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    # Whole words only, and never the label inside a placeholder (a user called "secret" must not eat <SECRET_1>).
    return re.compile(r"(?<![A-Za-z0-9<])(?:" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z0-9]|_\d+>)")


def _has_letter(value: str) -> bool:
    return any(c.isalpha() for c in value)


def _command_of(arguments: str) -> str | None:
    """The shell command of a tool call's arguments ({"command": ...} or {"cmd": [...]}), if it has one."""
    try:
        parsed = json.loads(arguments) if arguments else None
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(parsed, dict):
        return None
    command = parsed.get("command", parsed.get("cmd"))
    if isinstance(command, list) and all(isinstance(c, str) for c in command):
        command = " ".join(command[2:] if command[:2] in (["bash", "-lc"], ["bash", "-c"], ["sh", "-c"]) else command)
    return command if isinstance(command, str) else None


# --- structured fields ---------------------------------------------------------------------------------------------


def _is_secret_value(value: str) -> bool:
    return bool(value) and not PLACEHOLDER_RE.fullmatch(value) and len(value) >= 4 and not value.isspace()


def _redact_json_value(
    value: Any, fn: Callable[[str], str], redactor: _Redactor | None, key: str | None = None, secret: bool = False
) -> Any:
    """Every string in a JSON value, object keys included, goes through fn. A string under a secret-named key (and
    the default, enum, const or examples of a schema property with a secret's name) is a secret whatever it holds."""
    if isinstance(value, str):
        if redactor is not None and (secret or (key is not None and _SECRET_KEY_NAME_RE.match(key))) and _is_secret_value(value):
            return redactor.placeholder("secret", value)
        return fn(value)
    if isinstance(value, list):
        return [_redact_json_value(v, fn, redactor, None, secret) for v in value]
    if isinstance(value, dict):
        named_secret = key is not None and bool(_SECRET_KEY_NAME_RE.match(key))
        return {
            fn(k): _redact_json_value(v, fn, redactor, k, named_secret and k in _SCHEMA_VALUE_KEYS) for k, v in value.items()
        }
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
    tools = _redact_json_value(conv.tools, fn, redactor) if conv.tools else conv.tools
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


# Fields of stored records that hold hashes and ids this program made, never text a user or a model wrote; a
# sha256 would otherwise look like a high-entropy secret. Everything else, a field added tomorrow included, is redacted.
def _kept_key(key: str) -> bool:
    return key in ("id", "sha256", "path_sha256") or key.endswith(("_sha256", "_id", "_ids", "_hash"))


def _redact_record_value(value: Any, fn: Callable[[str], str], redactor: _Redactor | None, keep: frozenset[str], key: str | None = None) -> Any:
    if (key is not None and _kept_key(key)) or (isinstance(value, str) and value in keep):
        return value
    if isinstance(value, str):
        return _redact_json_value(value, fn, redactor, key)
    if isinstance(value, (list, tuple)):
        return [_redact_record_value(v, fn, redactor, keep) for v in value]
    if isinstance(value, dict):
        return {
            (fn(k) if isinstance(k, str) and k not in keep else k): _redact_record_value(v, fn, redactor, keep, k if isinstance(k, str) else None)
            for k, v in value.items()
        }
    return value


def redact_record(value: Any, keep: Collection[str] = ()) -> tuple[Any, Counter[str]]:
    """Redact a JSON-like record (a card, a ledger row, findings, an evaluation's files) as one text.

    The choke point for everything stored or returned beside the examples: every string and every object key is
    redacted, whatever field it sits in, so a field added later cannot slip past; only ids and hashes this program
    made (keys "id", "sha256", "*_id", "*_sha256", "*_hash") and the exact strings in `keep` (e.g. the model ids an
    evaluation compares, which other records refer to) are left as they are. Placeholders are shared across the
    record, and redacting twice equals redacting once. Returns the redacted copy and the counts by kind.
    """
    kept = frozenset(keep)
    redactor = _Redactor()
    try:
        everything = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        everything = ""
    if "<" in everything:
        redactor.reserve_existing(everything)
    redacted = _redact_record_value(value, redactor.text, redactor, kept)
    if redactor.sweep_values or redactor.names:
        redacted = _redact_record_value(redacted, redactor.sweep, None, kept)
    return redacted, redactor.counts


def redact_conversation(conv: Conversation) -> tuple[Conversation, Counter[str]]:
    """A redacted copy of `conv` and the number of redactions by kind (see the module docstring)."""
    redactor = _Redactor()
    everything = _all_text(conv)
    if "<" in everything:
        redactor.reserve_existing(everything)
    redactor.learn_from_commands(conv)
    redacted = _map_conversation(conv, redactor.text, redactor)
    if redactor.sweep_values or redactor.names:
        redacted = _map_conversation(redacted, redactor.sweep, None)
    return redacted, redactor.counts


__all__ = ["KINDS", "LABELS", "PLACEHOLDER_RE", "redact_conversation", "redact_record", "redact_text"]
