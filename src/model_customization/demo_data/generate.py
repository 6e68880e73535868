"""Generate the demo memory: an ops agent that triages application log lines.

The user hands the agent one application log line such as::

    2026-03-14T09:12:44Z [payments-api] ERROR upstream timeout after 30s

and the assistant answers with exactly one line::

    TRIAGE severity=high component=payments-api action=page

The rule is fixed and depends on the log level only:

* ERROR or FATAL -> ``severity=high``   ``action=page``
* WARN           -> ``severity=medium`` ``action=ticket``
* INFO or DEBUG  -> ``severity=low``    ``action=ignore``

``component`` is copied verbatim from the bracketed name in the log line. A base model does not know this
format; a model tuned on these sessions should produce it reliably, which is what the demo measures.

Two kinds of memory are written, both deterministic for a given seed (stdlib ``random.Random`` only):

* ``claude_code/<session-uuid>.jsonl``: Claude Code 2.x transcripts, one session per file. About a quarter of
  the sessions first read the log line with a ``Bash`` tool call (``tail -n 1 /var/log/app/<component>.log``).
  One file also carries a ``file-history-snapshot`` line and a ``system`` line, which importers must skip.
* ``openai/triage_sessions.jsonl``: OpenAI fine-tuning chat format, one conversation per line.

No log line appears twice across all sessions, and the log levels are balanced
(about 35 % ERROR/FATAL, 30 % WARN, 35 % INFO/DEBUG).

Run ``python -m model_customization.demo_data.generate`` to rewrite the files next to this module.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

SYSTEM_PROMPT = "You are OpsBot, the on-call triage assistant."
CWD = "/home/demo/ops"
VERSION = "2.0.14"
MODEL = "claude-sonnet-4-5"
CLAUDE_DIR = "claude_code"
OPENAI_DIR = "openai"
OPENAI_FILE = "triage_sessions.jsonl"

LEVEL_RULES = {
    "ERROR": ("high", "page"),
    "FATAL": ("high", "page"),
    "WARN": ("medium", "ticket"),
    "INFO": ("low", "ignore"),
    "DEBUG": ("low", "ignore"),
}

COMPONENTS = [
    "auth-service", "billing-worker", "cdn-edge", "db-primary", "db-replica-2", "payments-api",
    "checkout-web", "search-indexer", "notification-svc", "email-sender", "user-profile", "inventory-api",
    "order-service", "cart-service", "shipping-calc", "recommender", "image-resizer", "api-gateway",
    "rate-limiter", "session-store", "kafka-consumer", "metrics-agent", "log-shipper", "cron-scheduler",
    "report-builder", "fraud-detector", "ledger-sync", "webhook-dispatcher", "feature-flags", "cache-redis",
    "sso-bridge", "pdf-renderer",
]

# Message templates and the level groups they plausibly occur at: H = ERROR/FATAL, M = WARN, L = INFO/DEBUG.
# Most templates occur at more than one level so that the level, not the wording, decides the answer.
TEMPLATES = [
    ("upstream timeout after {s}s", "HM"),
    ("connection refused to {host}:{port}", "HM"),
    ("retrying request to {host} (attempt {att}/5)", "ML"),
    ("request {rid} completed in {ms}ms", "LM"),
    ("disk usage at {pct}% on /var/lib/data", "HML"),
    ("out of memory: killed worker pid {pid}", "H"),
    ("health check passed", "L"),
    ("health check failed: status {code5}", "HM"),
    ("cache miss rate {pct}% over last 5m", "ML"),
    ("slow query took {ms}ms on table {table}", "ML"),
    ("deadlock detected on table {table}", "HM"),
    ("user {uid} logged in from {ip}", "L"),
    ("invalid token for user {uid}", "MLH"),
    ("rate limit exceeded for client {cid}", "ML"),
    ("payment {pay} declined by processor: code {code}", "MH"),
    ("queue depth {n} exceeds threshold {thr}", "MH"),
    ("consumer lag {n} messages on partition {k}", "MHL"),
    ("TLS certificate expires in {d} days", "MLH"),
    ("config reloaded (version {ver})", "L"),
    ("listening on port {port}", "L"),
    ("shutting down: received SIGTERM", "LM"),
    ("panic: nil pointer dereference in {handler}", "H"),
    ("replication lag {s}s behind primary", "MH"),
    ("job {jid} finished, {n} rows processed", "L"),
    ("job {jid} failed after {k} attempts", "HM"),
    ("unhandled exception in {handler}: KeyError '{key}'", "H"),
    ("feature flag {flag} enabled for {n} users", "L"),
    ("GC pause {gc}ms", "ML"),
    ("HTTP {code5} on POST {path}", "HM"),
    ("HTTP 200 on GET {path} ({ms}ms)", "L"),
    ("webhook delivery to {host} failed with status {code5}", "HM"),
    ("schema migration {ver} applied", "L"),
    ("could not acquire lock {key} within {s}s", "MH"),
    ("cpu throttled {pct}% of the last minute", "ML"),
    ("connection pool exhausted ({pool}/{pool} in use)", "HM"),
    ("writing checkpoint {jid} to s3://{bucket}", "L"),
    ("unable to resolve host {host}", "HM"),
    ("retry budget exhausted for {host}", "H"),
    ("deprecated API v1 called by client {cid}", "ML"),
    ("index rebuild progress {pct}%", "L"),
    ("segfault in worker {k}, restarting", "H"),
    ("session {sid} expired", "LM"),
    ("checksum mismatch in block {n}", "H"),
    ("email to {email} bounced: mailbox full", "ML"),
]

PHRASINGS = [
    "Triage this log line: {log}",
    "what should we do about this? {log}",
    "{log}\nclassify please",
    "Can you triage this?\n{log}",
    "Incoming from the log stream:\n{log}",
    "{log}\nseverity and action?",
    "New line in the logs: {log}",
    "triage: {log}",
    "Got this in the logs just now. {log}",
    "Is this worth waking someone up for?\n{log}",
    "{log}\nwhat's the call?",
    "Please classify this log entry: {log}",
    "Quick one: {log}",
    "Saw this on the dashboard:\n{log}",
    "{log}",
    "Log line for triage:\n{log}",
]

TOOL_PHRASINGS = [
    "check the last line of {path} and triage it",
    "tail {path} and triage the latest entry",
    "look at the newest entry in {path}, triage it",
    "what does the last line of {path} say? triage it please",
]

TABLES = ["orders", "invoices", "users", "sessions", "payments", "line_items", "audit_log", "carts"]
HANDLERS = ["CreateOrder", "RefreshToken", "GetProfile", "ApplyCoupon", "SyncLedger", "RenderInvoice"]
KEYS = ["tenant_id", "currency", "region", "sku", "account_id", "locale"]
FLAGS = ["new-checkout", "dark-mode", "fast-search", "beta-pricing", "one-click-pay"]
PATHS = ["/v1/orders", "/v1/login", "/v2/cart/items", "/v1/invoices", "/v1/refunds", "/healthz", "/v2/search"]
BUCKETS = ["ops-checkpoints", "etl-state", "stream-snapshots"]
DOMAINS = ["example.com", "example.org", "mail.example.net"]
ALNUM = string.ascii_lowercase + string.digits
B62 = string.ascii_letters + string.digits


def _fill(rng: random.Random, template: str, component: str) -> str:
    others = [c for c in COMPONENTS if c != component]
    values = {
        "s": rng.choice([5, 10, 15, 30, 45, 60, 90, 120]),
        "ms": rng.randint(120, 9800),
        "host": f"{rng.choice(others)}.svc.local",
        "port": rng.choice([443, 5432, 6379, 8080, 8443, 9092, 3306]),
        "k": rng.randint(1, 9),
        "att": rng.randint(2, 5),
        "gc": rng.randint(40, 2400),
        "rid": "req-" + "".join(rng.choice(ALNUM) for _ in range(6)),
        "pct": rng.randint(61, 99),
        "pid": rng.randint(1200, 65000),
        "code5": rng.choice([500, 502, 503, 504]),
        "code": rng.choice(["card_declined", "insufficient_funds", "do_not_honor", "expired_card"]),
        "table": rng.choice(TABLES),
        "uid": rng.randint(10000, 999999),
        "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "cid": "client-" + "".join(rng.choice(ALNUM) for _ in range(4)),
        "pay": "pay_" + "".join(rng.choice(ALNUM) for _ in range(8)),
        "n": rng.randint(200, 90000),
        "thr": rng.choice([100, 500, 1000, 5000]),
        "d": rng.randint(2, 29),
        "ver": f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}",
        "handler": rng.choice(HANDLERS),
        "jid": f"job-{rng.randint(1000, 99999)}",
        "key": rng.choice(KEYS),
        "flag": rng.choice(FLAGS),
        "path": rng.choice(PATHS),
        "pool": rng.choice([10, 20, 50, 64, 100]),
        "bucket": rng.choice(BUCKETS),
        "sid": "sess-" + "".join(rng.choice(ALNUM) for _ in range(6)),
        "email": f"user{rng.randint(10, 9999)}@{rng.choice(DOMAINS)}",
    }
    return template.format(**values)


def _iso_ms(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _level_plan(rng: random.Random, n: int) -> list[str]:
    """Exactly balanced levels for n conversations: 35 % high, 30 % medium, 35 % low, shuffled."""
    n_high = round(n * 0.35)
    n_medium = round(n * 0.30)
    n_low = n - n_high - n_medium
    n_fatal = round(n_high * 0.3)
    n_debug = round(n_low * 0.4)
    plan = (
        ["ERROR"] * (n_high - n_fatal) + ["FATAL"] * n_fatal + ["WARN"] * n_medium
        + ["INFO"] * (n_low - n_debug) + ["DEBUG"] * n_debug
    )
    rng.shuffle(plan)
    return plan


class _LogFactory:
    """Makes log lines that never repeat across the whole generated data set."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()
        self.start = datetime(2026, 3, 2, 7, 0, 0, tzinfo=timezone.utc)

    def session_time(self) -> datetime:
        seconds = self.rng.randint(0, 21 * 24 * 3600)
        return self.start + timedelta(seconds=seconds, milliseconds=self.rng.randint(0, 999))

    def make(self, level: str, when: datetime) -> tuple[str, str]:
        group = {"ERROR": "H", "FATAL": "H", "WARN": "M", "INFO": "L", "DEBUG": "L"}[level]
        choices = [t for t, groups in TEMPLATES if group in groups]
        while True:
            component = self.rng.choice(COMPONENTS)
            message = _fill(self.rng, self.rng.choice(choices), component)
            logged = when - timedelta(seconds=self.rng.randint(3, 600))
            if self.rng.random() < 0.3:
                ts = _iso_ms(logged)
            else:
                ts = logged.strftime("%Y-%m-%dT%H:%M:%SZ")
            line = f"{ts} [{component}] {level} {message}"
            if line not in self.seen:
                self.seen.add(line)
                return line, component


def _answer(level: str, component: str) -> str:
    severity, action = LEVEL_RULES[level]
    return f"TRIAGE severity={severity} component={component} action={action}"


def _rand_id(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(B62) for _ in range(length))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _claude_session(
    rng: random.Random, logs: _LogFactory, level: str, use_tool: bool, extra_lines: bool
) -> tuple[str, list[dict]]:
    session_id = _uuid(rng)
    when = logs.session_time()
    log_line, component = logs.make(level, when)
    lines: list[dict] = []
    parent: str | None = None

    def base(kind: str) -> dict:
        nonlocal parent
        line_uuid = _uuid(rng)
        record = {
            "parentUuid": parent,
            "isSidechain": False,
            "userType": "external",
            "cwd": CWD,
            "sessionId": session_id,
            "version": VERSION,
            "gitBranch": "main",
            "type": kind,
            "uuid": line_uuid,
            "timestamp": _iso_ms(when),
        }
        parent = line_uuid
        return record

    def assistant(content: list[dict], stop_reason: str) -> dict:
        nonlocal when
        when += timedelta(milliseconds=rng.randint(900, 4200))
        record = base("assistant")
        record["message"] = {
            "id": _rand_id(rng, "msg_01", 22),
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": rng.randint(3, 40),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": rng.randint(14, 60),
                "service_tier": "standard",
            },
        }
        record["requestId"] = _rand_id(rng, "req_011C", 18)
        return record

    if extra_lines:
        snapshot_id = _uuid(rng)
        lines.append({
            "type": "file-history-snapshot",
            "messageId": snapshot_id,
            "snapshot": {"messageId": snapshot_id, "trackedFileBackups": {}, "timestamp": _iso_ms(when)},
            "isSnapshotUpdate": False,
        })

    if use_tool:
        path = f"/var/log/app/{component}.log"
        user = base("user")
        user["message"] = {"role": "user", "content": rng.choice(TOOL_PHRASINGS).format(path=path)}
        lines.append(user)
        tool_id = _rand_id(rng, "toolu_01", 22)
        lines.append(assistant(
            [{
                "type": "tool_use",
                "id": tool_id,
                "name": "Bash",
                "input": {"command": f"tail -n 1 {path}", "description": "Read last log line"},
            }],
            "tool_use",
        ))
        when += timedelta(milliseconds=rng.randint(60, 400))
        result = base("user")
        result["message"] = {
            "role": "user",
            "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": log_line, "is_error": False}],
        }
        result["toolUseResult"] = {"stdout": log_line, "stderr": "", "interrupted": False, "isImage": False}
        lines.append(result)
    else:
        user = base("user")
        user["message"] = {"role": "user", "content": rng.choice(PHRASINGS).format(log=log_line)}
        lines.append(user)

    lines.append(assistant([{"type": "text", "text": _answer(level, component)}], "end_turn"))

    if extra_lines:
        when += timedelta(milliseconds=rng.randint(200, 900))
        system = base("system")
        system.update({"subtype": "informational", "content": "Session saved", "isMeta": False, "level": "info"})
        lines.append(system)
    return session_id, lines


def _openai_conversation(rng: random.Random, logs: _LogFactory, level: str) -> dict:
    log_line, component = logs.make(level, logs.session_time())
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": rng.choice(PHRASINGS).format(log=log_line)},
            {"role": "assistant", "content": _answer(level, component)},
        ]
    }


def _dump(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def generate(out_dir: Path, seed: int = 7, n_claude: int = 80, n_openai: int = 80) -> list[Path]:
    """Write the demo memory under out_dir (claude_code/*.jsonl and openai/triage_sessions.jsonl).

    Existing ``*.jsonl`` files in those two folders are replaced. Returns the written paths.
    """
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    logs = _LogFactory(rng)
    written: list[Path] = []

    claude_dir = out_dir / CLAUDE_DIR
    claude_dir.mkdir(parents=True, exist_ok=True)
    for old in claude_dir.glob("*.jsonl"):
        old.unlink()
    claude_levels = _level_plan(rng, n_claude)
    tool_sessions = set(rng.sample(range(n_claude), round(n_claude / 4)))
    plain = [i for i in range(n_claude) if i not in tool_sessions]
    extra_session = plain[0] if plain else None
    for i, level in enumerate(claude_levels):
        session_id, lines = _claude_session(rng, logs, level, i in tool_sessions, i == extra_session)
        path = claude_dir / f"{session_id}.jsonl"
        path.write_text("".join(_dump(line) + "\n" for line in lines), encoding="utf-8", newline="\n")
        written.append(path)

    openai_dir = out_dir / OPENAI_DIR
    openai_dir.mkdir(parents=True, exist_ok=True)
    for old in openai_dir.glob("*.jsonl"):
        old.unlink()
    openai_levels = _level_plan(rng, n_openai)
    conversations = [_openai_conversation(rng, logs, level) for level in openai_levels]
    path = openai_dir / OPENAI_FILE
    path.write_text("".join(_dump(c) + "\n" for c in conversations), encoding="utf-8", newline="\n")
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the log-triage demo memory.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--n-claude", type=int, default=80)
    parser.add_argument("--n-openai", type=int, default=80)
    args = parser.parse_args(argv)
    paths = generate(args.out, seed=args.seed, n_claude=args.n_claude, n_openai=args.n_openai)
    print(f"wrote {len(paths)} files under {args.out}")


if __name__ == "__main__":
    main()
