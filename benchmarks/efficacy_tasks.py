"""Agent memory for two efficacy tasks, written by us and deterministic from a seed (stdlib `random` only).

* Tool calls (`write_tool_call_sessions`): Claude Code 2.x transcripts of a deployment assistant that works through
  an MCP server named `deploy`. The user asks, in varied words, to restart, scale, roll back or read the logs of a
  service in an environment; the assistant answers with one `tool_use` of the matching tool. The arguments follow
  house conventions a base model cannot guess: environments are spelled `production`, `staging` or `dev` whatever
  the user wrote ("prod", "live", "pre-prod", "sandbox", ...), versions always carry a leading `v`, counts are
  integers, and the keys come in a fixed order. About a quarter of the sessions first ask for the service's status
  (a `service_status` call and a one-line answer), and some follow-ups then say "it" instead of the service's name.
  Each session ends after the result of its last call, so the last assistant turn (what evaluation holds out) is
  that call; `expected_call(session)` gives it.
* JSON output (`write_json_intake_sessions`): OpenAI chat fine-tuning JSONL of a help-desk intake agent. The system
  message describes the JSON object to reply with (`INTAKE_SCHEMA` is its JSON Schema); the user message is a customer's e-mail; the assistant replies
  with one JSON object. Its fields follow fixed rules from the e-mail: the category from what the customer writes
  about, the priority from urgency cues ("down", "asap" -> urgent; "no rush" -> low; else normal), the customer id
  and the product copied, refund_requested when the customer asks for money back.

Usage: python benchmarks/efficacy_tasks.py OUT [--seed 11] [--tool-sessions 200] [--json-sessions 200]
"""

from __future__ import annotations

import argparse
import json
import random
import string
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# --- tool calls: a deployment assistant (Claude Code transcripts) -----------------------------------------------
TOOL_PREFIX = "mcp__deploy__"
CWD = "/home/dev/platform"
CLAUDE_VERSION = "2.0.31"
CLAUDE_MODEL = "claude-sonnet-4-5"

SERVICES = [
    "payments-api", "checkout-web", "auth-service", "search-indexer", "order-service", "billing-worker",
    "inventory-api", "notification-svc", "image-resizer", "api-gateway", "ledger-sync", "report-builder",
    "fraud-detector", "shipping-calc", "feature-flags", "session-store", "webhook-dispatcher", "pdf-renderer",
]
# The environment names the tools accept, and how people say them.
ENVIRONMENTS = {
    "production": ["prod", "production", "live"],
    "staging": ["staging", "stage", "pre-prod"],
    "dev": ["dev", "development", "sandbox"],
}

ACTION_PHRASES = {
    "restart_service": [
        "restart {service} in {env}",
        "{service} on {env} is stuck, bounce it",
        "please give {service} ({env}) a restart",
        "can you restart the {service} service on {env}?",
        "{env} {service} needs a restart",
    ],
    "scale_service": [
        "scale {service} in {env} to {replicas} replicas",
        "we need {replicas} instances of {service} on {env}",
        "bump {service} ({env}) to {replicas} replicas",
        "set the replica count of {service} on {env} to {replicas}",
        "traffic is up, run {service} with {replicas} pods in {env}",
    ],
    "rollback_service": [
        "roll {service} on {env} back to {version}",
        "{version} of {service} was fine, revert {env} to it",
        "rollback {service} in {env} to version {version}",
        "the last deploy of {service} broke {env}, go back to {version}",
        "please downgrade {service} on {env} to {version}",
    ],
    "tail_logs": [
        "show me the last {lines} log lines of {service} in {env}",
        "tail {lines} lines from {service} on {env}",
        "what is {service} logging on {env}? last {lines} lines",
        "grab {lines} lines of {env} logs for {service}",
        "I need the most recent {lines} lines of the {service} logs ({env})",
    ],
}
# Follow-ups after a status check: the same actions, with the service named as "it".
FOLLOW_UP_PHRASES = {
    "restart_service": ["ok, restart it", "restart it please", "bounce it"],
    "scale_service": ["scale it to {replicas} replicas", "give it {replicas} replicas"],
    "rollback_service": ["roll it back to {version}", "revert it to {version}"],
    "tail_logs": ["show me its last {lines} log lines", "tail {lines} lines of its logs"],
}
STATUS_PHRASES = [
    "how is {service} doing on {env}?",
    "status of {service} in {env}?",
    "is {service} healthy on {env}?",
    "check {service} ({env}) for me",
]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _token(rng: random.Random, prefix: str, length: int) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _version(rng: random.Random) -> str:
    return f"v{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"


def _call_arguments(rng: random.Random, tool: str, service: str, environment: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {"service": service, "environment": environment}
    if tool == "scale_service":
        arguments["replicas"] = rng.choice([2, 3, 4, 5, 6, 8, 10, 12, 16])
    elif tool == "rollback_service":
        arguments["version"] = _version(rng)
    elif tool == "tail_logs":
        arguments["lines"] = rng.choice([20, 50, 100, 200, 500])
    return arguments


def _phrase(rng: random.Random, template: str, arguments: dict[str, Any], env_word: str) -> str:
    version = arguments.get("version", "")
    # People drop the leading v about half the time; the tool always gets it.
    spoken_version = version[1:] if version and rng.random() < 0.5 else version
    text = template.format(
        service=arguments["service"], env=env_word, replicas=arguments.get("replicas"), version=spoken_version, lines=arguments.get("lines")
    )
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


def _tool_result(rng: random.Random, tool: str, arguments: dict[str, Any]) -> str:
    service, environment = arguments["service"], arguments["environment"]
    if tool == "restart_service":
        pods = rng.randint(2, 6)
        return f"Restarted {service} in {environment}: {pods}/{pods} pods ready after {rng.randint(8, 70)}s"
    if tool == "scale_service":
        return f"Scaled {service} in {environment} to {arguments['replicas']} replicas (was {rng.randint(1, 6)})"
    if tool == "rollback_service":
        return f"Rolled back {service} in {environment} to {arguments['version']}; rollout complete"
    if tool == "tail_logs":
        lines = [
            f"{datetime(2026, 10, rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), tzinfo=timezone.utc):%Y-%m-%dT%H:%M:%SZ} "
            f"{rng.choice(['INFO', 'INFO', 'WARN', 'ERROR'])} {rng.choice(['request handled', 'cache miss', 'retrying upstream', 'slow query', 'health check ok'])}"
            for _ in range(2)
        ]
        return "\n".join(lines) + f"\n... ({arguments['lines']} lines)"
    replicas = rng.randint(2, 8)
    return (
        f"{service} {environment}: {replicas}/{replicas} replicas healthy, version {_version(rng)}, "
        f"p99 {rng.randint(80, 900)}ms, error rate {rng.randint(0, 30) / 10}%"
    )


class _ClaudeSession:
    """Writes the lines of one Claude Code 2.x session: user and assistant lines chained by parentUuid."""

    def __init__(self, rng: random.Random, when: datetime) -> None:
        self.rng = rng
        self.when = when
        self.session_id = _uuid(rng)
        self.parent: str | None = None
        self.lines: list[dict[str, Any]] = []

    def _line(self, kind: str) -> dict[str, Any]:
        line_uuid = _uuid(self.rng)
        record = {
            "parentUuid": self.parent, "isSidechain": False, "userType": "external", "cwd": CWD,
            "sessionId": self.session_id, "version": CLAUDE_VERSION, "gitBranch": "main", "type": kind,
            "uuid": line_uuid, "timestamp": _iso(self.when),
        }
        self.parent = line_uuid
        self.lines.append(record)
        return record

    def user_text(self, text: str) -> None:
        self.when += timedelta(seconds=self.rng.randint(5, 120))
        self._line("user")["message"] = {"role": "user", "content": text}

    def _assistant(self, block: dict[str, Any], stop_reason: str) -> None:
        self.when += timedelta(milliseconds=self.rng.randint(900, 4000))
        record = self._line("assistant")
        record["message"] = {
            "id": _token(self.rng, "msg_01", 22), "type": "message", "role": "assistant", "model": CLAUDE_MODEL,
            "content": [block], "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": self.rng.randint(4, 60), "cache_creation_input_tokens": 0, "cache_read_input_tokens": self.rng.randint(0, 9000), "output_tokens": self.rng.randint(20, 90), "service_tier": "standard"},
        }
        record["requestId"] = _token(self.rng, "req_011C", 18)

    def assistant_text(self, text: str) -> None:
        self._assistant({"type": "text", "text": text}, "end_turn")

    def tool_call(self, tool: str, arguments: dict[str, Any], result: str) -> None:
        call_id = _token(self.rng, "toolu_01", 22)
        self._assistant({"type": "tool_use", "id": call_id, "name": TOOL_PREFIX + tool, "input": arguments}, "tool_use")
        self.when += timedelta(milliseconds=self.rng.randint(300, 9000))
        record = self._line("user")
        record["message"] = {"role": "user", "content": [{"tool_use_id": call_id, "type": "tool_result", "content": result, "is_error": False}]}
        record["toolUseResult"] = {"type": "text", "text": result}


def tool_call_session(rng: random.Random, when: datetime) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """One session: (session id, its lines, the expected last call {"name", "arguments"})."""
    session = _ClaudeSession(rng, when)
    tool = rng.choice(sorted(ACTION_PHRASES))
    service = rng.choice(SERVICES)
    environment = rng.choice(sorted(ENVIRONMENTS))
    env_word = rng.choice(ENVIRONMENTS[environment])
    arguments = _call_arguments(rng, tool, service, environment)
    if rng.random() < 0.25:  # a status check first
        status_arguments = {"service": service, "environment": environment}
        session.user_text(_phrase(rng, rng.choice(STATUS_PHRASES), status_arguments, env_word))
        status = _tool_result(rng, "service_status", status_arguments)
        session.tool_call("service_status", status_arguments, status)
        session.assistant_text(status.replace(f"{service} {environment}: ", f"{service} in {environment} has ", 1) + ".")
        templates = FOLLOW_UP_PHRASES[tool] if rng.random() < 0.5 else ACTION_PHRASES[tool]
    else:
        templates = ACTION_PHRASES[tool]
    session.user_text(_phrase(rng, rng.choice(templates), arguments, env_word))
    session.tool_call(tool, arguments, _tool_result(rng, tool, arguments))
    return session.session_id, session.lines, {"name": TOOL_PREFIX + tool, "arguments": arguments}


def write_tool_call_sessions(out_dir: Path, seed: int = 11, n: int = 200) -> list[Path]:
    """Write n Claude Code session files (<session id>.jsonl) under out_dir, replacing any there; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.jsonl"):
        old.unlink()
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, 8, 0, tzinfo=timezone.utc)
    written = []
    for _ in range(n):
        when = start + timedelta(seconds=rng.randint(0, 40 * 24 * 3600))
        session_id, lines, _ = tool_call_session(rng, when)
        path = out_dir / f"{session_id}.jsonl"
        path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines), encoding="utf-8")
        written.append(path)
    return written


def expected_call(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The last tool call of a session's lines, as {"name", "arguments"}."""
    for line in reversed(lines):
        for block in (line.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                return {"name": block["name"], "arguments": block["input"]}
    raise ValueError("the session has no tool call")


# --- JSON output: a help-desk intake agent (OpenAI chat JSONL) ------------------------------------------------------
PRODUCTS = ["Ledger Cloud", "Ledger Desktop", "Ledger Mobile", "PayLink", "Invoice Studio", "Team Vault"]
CATEGORIES = ["billing", "bug", "account", "feature_request"]
PRIORITIES = ["low", "normal", "urgent"]
INTAKE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"enum": CATEGORIES},
        "priority": {"enum": PRIORITIES},
        "customer_id": {"type": "string", "pattern": "^C-[0-9]{5}$"},
        "product": {"enum": PRODUCTS},
        "refund_requested": {"type": "boolean"},
    },
    "required": ["category", "priority", "customer_id", "product", "refund_requested"],
    "additionalProperties": False,
}
# The schema in a compact form a reader (and a small model) takes in quickly: every example carries it, and the
# training budget is counted in tokens.
INTAKE_SYSTEM = (
    "You are the intake agent of the Acme help desk. Reply to the customer's e-mail with only this JSON object, no "
    'other text: {"category": "billing"|"bug"|"account"|"feature_request", "priority": "low"|"normal"|"urgent", '
    '"customer_id": "C-" and 5 digits, "product": ' + "|".join(f'"{p}"' for p in PRODUCTS) + ', "refund_requested": true|false}'
)
ISSUE_PHRASES = {
    "billing": [
        "I was charged twice for {product} this month.",
        "The invoice for {product} shows the wrong amount.",
        "My card was billed for {product} after I cancelled.",
        "Why did the price of {product} go up on my last bill?",
    ],
    "bug": [
        "{product} crashes every time I open a report.",
        "Exports from {product} come out empty.",
        "{product} shows an error 500 when I save.",
        "Sync in {product} stopped working since the update.",
    ],
    "account": [
        "I can't log in to {product} anymore, the reset link never arrives.",
        "Please move my {product} account to my new e-mail address.",
        "Two-factor login for {product} locked me out.",
        "How do I add a second admin to our {product} account?",
    ],
    "feature_request": [
        "It would be great if {product} could export to CSV.",
        "Could {product} get a dark mode?",
        "We would love an API for {product} to automate our reports.",
        "Please add recurring schedules to {product}.",
    ],
}
REFUND_PHRASES = ["I want a refund.", "Please refund me.", "I'd like my money back.", "Can you refund the charge?"]
URGENT_PHRASES = ["Our whole team is blocked, this is urgent!", "Please fix this asap.", "Production is down because of this.", "We need this solved today."]
LOW_PHRASES = ["No rush, whenever you get to it.", "Not urgent at all.", "Low priority for us."]
ID_PHRASES = ["My customer id is {cid}.", "Account: {cid}", "(customer {cid})", "Customer number {cid} here."]
GREETINGS = ["Hi,", "Hello support,", "Dear Acme team,", "Hey there,", ""]
SIGN_OFFS = ["Thanks, {name}", "Best regards,\n{name}", "-- {name}", "Cheers, {name}", "{name}"]
NAMES = ["Maria", "Jonas", "Aiko", "Priya", "Tom", "Fatima", "Lucas", "Chen", "Olga", "Sam"]


def intake_conversation(rng: random.Random) -> dict[str, Any]:
    """One conversation in the OpenAI chat fine-tuning format, with the expected answer as the assistant turn."""
    category = rng.choice(CATEGORIES)
    product = rng.choice(PRODUCTS)
    customer_id = f"C-{rng.randint(0, 99999):05d}"
    refund = category == "billing" and rng.random() < 0.6
    urgency = rng.choices(PRIORITIES, weights=[2, 5, 3])[0]
    sentences = [rng.choice(ISSUE_PHRASES[category]).format(product=product)]
    if refund:
        sentences.append(rng.choice(REFUND_PHRASES))
    if urgency == "urgent":
        sentences.append(rng.choice(URGENT_PHRASES))
    elif urgency == "low":
        sentences.append(rng.choice(LOW_PHRASES))
    id_sentence = rng.choice(ID_PHRASES).format(cid=customer_id)
    sentences.insert(rng.randint(0, len(sentences)), id_sentence)
    greeting = rng.choice(GREETINGS)
    body = " ".join(sentences)
    email = "\n\n".join(part for part in (greeting, body, rng.choice(SIGN_OFFS).format(name=rng.choice(NAMES))) if part)
    answer = {"category": category, "priority": urgency, "customer_id": customer_id, "product": product, "refund_requested": refund}
    return {
        "messages": [
            {"role": "system", "content": INTAKE_SYSTEM},
            {"role": "user", "content": email},
            {"role": "assistant", "content": json.dumps(answer)},
        ]
    }


def write_json_intake_sessions(out_dir: Path, seed: int = 11, n: int = 200) -> Path:
    """Write n conversations to out_dir/intake_sessions.jsonl (no e-mail appears twice); returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        conversation = intake_conversation(rng)
        email = conversation["messages"][1]["content"]
        if email not in seen:
            seen.add(email)
            rows.append(conversation)
    path = out_dir / "intake_sessions.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the tool-call and JSON-intake agent memory.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--tool-sessions", type=int, default=200)
    parser.add_argument("--json-sessions", type=int, default=200)
    args = parser.parse_args()
    tool_files = write_tool_call_sessions(args.out / "tool_calls", args.seed, args.tool_sessions)
    json_file = write_json_intake_sessions(args.out / "json_intake", args.seed, args.json_sessions)
    print(f"wrote {len(tool_files)} Claude Code sessions under {args.out / 'tool_calls'} and {json_file}")


if __name__ == "__main__":
    main()
