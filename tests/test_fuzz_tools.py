"""Property-based fuzzing of every MCP tool, through the in-process client, from its published input schema.

For each tool in tools/list: hypothesis draws arguments from the tool's input JSON schema (hypothesis-jsonschema),
with hostile strings mixed into the string fields (100k+ characters, control characters, NUL, lone surrogates,
path tricks, ids that look almost valid), then a fixed sweep puts each hostile value into each string field on its
own, numbers at the edges into each number field, and hostile files (invalid UTF-8, control characters, a 10 MB
line, binary) into the fields that read files. Every call must come back as a result, or as an isError result whose
text says what was wrong, without a traceback or an internal exception's repr; the server must never log an
unexpected exception and must still answer tools/list afterwards.

Safe and bounded: no cloud key is set (cloud calls fail fast with a UserError), the one real dataset is too small to
train on, models never name the embedded model, and path fields never point at a real folder outside this test's
temporary directory (a recursive scan of / would be a hang, not a finding).

MODEL_CUSTOMIZATION_FUZZ_EXAMPLES sets the hypothesis examples per tool (default 25); the cases run per tool and in
total are printed in the terminal summary (pytest -rA or -s) and written to <tmp>/fuzz-counts.json.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from helpers import MCP_TOOLS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client

from model_customization.server.app import build_server

FUZZ_EXAMPLES = int(os.environ.get("MODEL_CUSTOMIZATION_FUZZ_EXAMPLES", "25"))

# Values no well-behaved agent sends, but a confused or hostile one might.
HOSTILE_STRINGS: list[str] = [
    "",
    " ",
    "x" * 100_001,
    "\x00",
    "ds-\x00abc",
    "\x01\x02\x1b[31mred\x1b[0m\x7f\r\n\t",
    "\ud800",
    "ok\udfffok",
    "\u202eevil\u202c",
    "🙂" * 3,
    "../../etc/passwd",
    "/proc/self/environ",
    "~",
    "~no_such_user_zz/memory.jsonl",
    "/dev/null",
    "ds-",
    "job-\n",
    "ft-",
    "ft-" + "0" * 64,
    "job-00000000@step-",
    "job-0@step-99999999999999999999",
    "eval-",
    "file-",
    "local:",
    "openai:",
    "anthropic:claude-x",
    "bedrock:anthropic.claude-3-haiku-20240307-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/x",
    "ft:gpt-4o-mini:org::abc",
    "gpt-4o-mini",
    "claude-sonnet-5",
    "{{7*7}}${jndi:x}%s%n",
    "' OR 1=1; DROP TABLE jobs; --",
    "datasets://../../x",
    "NaN",
]
# Numbers at the edges; most are outside the schema, so the SDK's argument validation must answer them cleanly.
EDGE_NUMBERS: list[Any] = [0, -1, 1, 2**63, -(2**63), 1e308, -1e308, 1e-308, math.nan, math.inf, -math.inf, 0.5, True]
# Fields whose strings name files or folders the tool reads or writes.
PATH_FIELDS = {
    ("build_dataset_from_memory", "paths"),
    ("inspect_dataset", "path"),
    ("evaluate", "suite"),
    ("set_agent_suite", "suite"),
    ("export_model", "output_dir"),
}
# Fields that name a model: the embedded model (or a default that means it) would load real weights.
MODEL_FIELDS = {"model", "models", "base_model", "judge", "pairwise_judge"}
FORBIDDEN_IN_ERRORS = re.compile(
    r"Traceback|File \"|\b(KeyError|TypeError|AttributeError|IndexError|NameError|UnboundLocalError|"
    r"RecursionError|ZeroDivisionError|AssertionError|UnicodeEncodeError|UnicodeDecodeError|"
    r"JSONDecodeError|OverflowError|sqlite3\.|sqlalchemy\.)\b|<object at 0x|object at 0x[0-9a-f]+"
)


# --- the environment ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files a tool that reads memory, datasets or suites might be handed."""
    folder = tmp_path_factory.mktemp("hostile-files")
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    files = {
        "invalid_utf8.jsonl": json.dumps(chat).encode() + b"\n" + b'{"messages": [{"role": "user", "content": "\xff\xfe\xc3("}]}\n',
        "control_chars.jsonl": b'{"messages": [{"role": "user", "content": "a\x00b\x01c\x1b"}]}\n' + json.dumps({"messages": [{"role": "user", "content": "\x00\x07\x1b[2J"}, {"role": "assistant", "content": "\u0000"}]}).encode() + b"\n",
        "ten_mb_line.jsonl": json.dumps({"messages": [{"role": "user", "content": "q" * (10 * 1024 * 1024)}, {"role": "assistant", "content": "a"}]}).encode() + b"\n",
        "binary.jsonl": bytes(range(256)) * 64,
        "empty.jsonl": b"",
        "not_json.jsonl": b"this is not json\n{\n[1, 2\n",
        "deep.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "wrong_shape.jsonl": b'{"messages": "not a list"}\n{"messages": [{"role": 7, "content": null}]}\n[]\n1\n"s"\nnull\n',
        "suite.yaml": b"- messages: [{role: user, content: \"\xff\xfe\"}]\n  reference: \"\x00\"\n",
        "suite_bad.yaml": b"{{{ not: yaml ::: \x00\n",
        "deep.yaml": b"[" * 50_000 + b"]" * 50_000 + b"\n",
        "suite_wrong.yaml": b"cases: 7\n",
        "suite.jsonl": b'{"messages": [{"role": "user", "content": "hi"}], "regex": "(((", "json_schema": {"type": 7}}\n{"messages": []}\n',
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "all").mkdir()
    for name, data in files.items():
        if name != "ten_mb_line.jsonl":  # read on its own already; seconds each time it is read
            (folder / "all" / name).write_bytes(data)
    return {name: folder / name for name in files} | {"folder": folder / "all"}


@pytest.fixture
def fuzz_server(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile_files: dict[str, Path]):
    """A server on a fresh workspace with one tiny real dataset, no cloud credentials, and a sandboxed cwd and HOME."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "OPENAI_", "ANTHROPIC_")) or name in ("MODEL_CUSTOMIZATION_OPENAI_BASE_URL",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # The hostile files and this test's folder may be read; anything else stays outside the allowed roots.
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", os.pathsep.join([str(tmp_path), str(hostile_files["folder"].parent)]))

    # Five conversations: a real dataset id to aim at, too small for start_job to train on (it needs 10).
    from model_customization.datasets.build import build_dataset

    memory = tmp_path / "tiny-memory.jsonl"
    memory.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}) + "\n"
            for i in range(5)
        ),
        encoding="utf-8",
    )
    dataset_id = build_dataset(ws, [memory], name="fuzz-tiny").dataset_id
    return build_server(ws=ws), dataset_id, tmp_path


class CrashLog(logging.Handler):
    """Collects what the SDK logs when a tool raises something other than a ToolError (a crash)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        """One short line per crash: the innermost exception and where in our code it was raised."""
        texts = []
        for record in self.records:
            error = record.exc_info[1] if record.exc_info else None
            while error is not None and (error.__cause__ or error.__context__) is not None:
                error = error.__cause__ or error.__context__
            if error is None:
                texts.append(shorten(record.getMessage()))
                continue
            frames = [f for f in traceback.extract_tb(error.__traceback__) if "model_customization" in f.filename]
            at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
            texts.append(f"{type(error).__name__}: {shorten(str(error), 300)}{at}")
        self.records.clear()
        return texts


@pytest.fixture
def crash_log():
    handler = CrashLog()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


# --- one call, judged ---------------------------------------------------------------------------------------------


def shorten(value: Any, limit: int = 300) -> str:
    text = ascii(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


class Caller:
    """Calls tools through one in-process client held open in a background event loop, and judges each answer."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: Client, crash_log: CrashLog) -> None:
        self.portal = portal
        self.client = client
        self.crash_log = crash_log
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.longest_error: dict[str, int] = {}
        self.slowest: tuple[float, str] = (0.0, "")
        self.hypothesis_cases = 0
        self.planned_sweep = 0

    def call(self, tool: str, arguments: dict[str, Any]) -> None:
        problem = self.judge(tool, arguments)
        assert problem is None, problem

    def judge(self, tool: str, arguments: dict[str, Any]) -> str | None:
        """None when the answer is acceptable, otherwise what was wrong with it."""
        self.counts[tool] = self.counts.get(tool, 0) + 1
        started = time.monotonic()
        result = self.portal.call(lambda: self.client.call_tool(tool, arguments))
        seconds = time.monotonic() - started
        if seconds > self.slowest[0]:
            self.slowest = (seconds, shorten(arguments, 160))
        where = f"{tool}({shorten(arguments, 200)})"
        crashes = self.crash_log.take()
        if crashes:
            return f"{where} crashed inside the server: " + "; ".join(crashes)
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        try:
            # What a real transport writes must be encodable: a lone surrogate echoed back would break stdio/HTTP.
            result.model_dump_json()
        except ValueError as error:
            return f"{where}: the answer cannot be sent as JSON ({shorten(str(error), 200)})"
        if result.is_error:
            self.errors[tool] = self.errors.get(tool, 0) + 1
            self.longest_error[tool] = max(self.longest_error.get(tool, 0), len(text))
            explanation = text.removeprefix(f"Error executing tool {tool}").removeprefix(":").strip()
            if len(explanation) < 15:
                return f"{where}: the error does not say what was wrong: {shorten(text)}"
            found = FORBIDDEN_IN_ERRORS.search(text)
            if found:
                return f"{where}: internal detail {found.group(0)!r} reached the client: {shorten(text, 600)}"
        elif result.structured_content is None:
            return f"{where}: a result without structured content"
        return None


def with_caller(fuzz_server, crash_log: CrashLog, body) -> Caller:
    """Runs body(caller, input schemas by tool name) against one client, then checks the server still lists its tools."""
    server, _, _ = fuzz_server
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(server)) as client:
            caller = Caller(portal, client, crash_log)
            schemas = {tool.name: tool.input_schema for tool in portal.call(client.list_tools).tools}
            body(caller, schemas)
            # The server still answers after everything it was sent.
            names = {tool.name for tool in portal.call(client.list_tools).tools}
            assert names == MCP_TOOLS
    return caller


# --- making arguments safe to send --------------------------------------------------------------------------------


def outside_sandbox(value: str, sandbox: Path) -> bool:
    """True for a string naming an existing folder outside the test's temporary directory (a scan of it is a hang)."""
    try:
        path = Path(value).expanduser()
        if not path.is_dir():
            return False
        return not path.resolve().is_relative_to(sandbox.resolve())
    except (OSError, ValueError, RuntimeError):
        return False


def make_safe(tool: str, arguments: dict[str, Any], sandbox: Path) -> dict[str, Any]:
    """Keep a call bounded: no default or embedded local model, no scan of a real folder outside the sandbox."""
    arguments = dict(arguments)
    for field in ("paths", "path", "suite", "output_dir"):
        value = arguments.get(field)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and outside_sandbox(v, sandbox) for v in values):
            replaced = [f"fuzz-{i}" if isinstance(v, str) and outside_sandbox(v, sandbox) else v for i, v in enumerate(values)]
            arguments[field] = replaced if isinstance(value, list) else replaced[0]
    for field in MODEL_FIELDS & set(arguments):
        value = arguments[field]
        values = value if isinstance(value, list) else [value]
        cleaned = [
            "no-such-model" if isinstance(v, str) and (not v.strip() or is_embedded_name(v) or outside_sandbox(v.removeprefix("local:"), sandbox)) else v
            for v in values
        ]
        arguments[field] = cleaned if isinstance(value, list) else cleaned[0]
    if tool == "prompt_model" and arguments.get("model") is None and arguments.get("agent") is None:
        arguments["model"] = "no-such-model"  # the default is the embedded model: real weights, seconds per call
    if tool == "start_job" and arguments.get("base_model") is None and arguments.get("provider", "local") == "local":
        arguments["base_model"] = "no-such-model"
    if tool == "generate_constitutional_dataset" and arguments.get("model") is None:
        arguments["model"] = "no-such-model"
    return arguments


def is_embedded_name(value: str) -> bool:
    from model_customization.providers.local.models import is_embedded

    name = value.strip()
    for prefix in ("local:",):
        name = name.removeprefix(prefix).strip()
    return is_embedded(name) or is_embedded(name.lower())


def base_arguments(tool: str, schema: dict[str, Any], dataset_id: str, hostile_files: dict[str, Path]) -> dict[str, Any]:
    """The smallest arguments that get past the schema, pointing at nothing real (or at the tiny dataset)."""
    presets: dict[str, dict[str, Any]] = {
        "build_dataset_from_memory": {"paths": [str(hostile_files["invalid_utf8.jsonl"])]},
        "inspect_dataset": {"dataset_id": dataset_id},
        "start_job": {"dataset_id": dataset_id, "base_model": "no-such-model"},
        "prompt_model": {"model": "no-such-model", "prompt": "hi"},
        # Cloud models pass the up-front model check (no key is needed to name one), so the dataset or suite is
        # read; the first answer then fails fast for want of OPENAI_API_KEY.
        "evaluate": {"models": ["gpt-4o-mini", "gpt-4.1-mini"], "dataset_id": dataset_id, "limit": 1},
        "generate_constitutional_dataset": {"model": "no-such-model", "principles": ["Be kind."], "prompts": ["hi"], "limit": 1},
        "deploy_model": {"agent": "fuzz-agent", "model": "no-such-model"},
        "set_agent_suite": {"agent": "fuzz-agent", "dataset_id": dataset_id},
        "upload_training_file": {"dataset_id": dataset_id},
    }
    if tool in presets:
        return dict(presets[tool])
    arguments: dict[str, Any] = {}
    for field in schema.get("required", []):
        arguments[field] = "fuzz-" + field
    return arguments


def string_fields(schema: dict[str, Any]) -> list[tuple[str, bool]]:
    """(field, takes a list of strings) for every top-level field that accepts a string."""
    fields = []
    for name, spec in schema.get("properties", {}).items():
        options = spec.get("anyOf", [spec])
        if any(o.get("type") == "string" and "enum" not in o for o in options):
            fields.append((name, False))
        elif any(o.get("type") == "array" and o.get("items", {}).get("type") == "string" and "enum" not in o.get("items", {}) for o in options):
            fields.append((name, True))
    return fields


def number_fields(schema: dict[str, Any]) -> list[str]:
    return [
        name
        for name, spec in schema.get("properties", {}).items()
        if any(o.get("type") in ("integer", "number") for o in spec.get("anyOf", [spec]))
    ]


def with_hostile_strings(value: Any, data: st.DataObject, pool: list[str]) -> Any:
    """Replace some of the strings anywhere in a generated value by hostile ones (keys of free-form objects too)."""
    if isinstance(value, str):
        return data.draw(st.sampled_from(pool)) if data.draw(st.integers(0, 3)) == 0 else value
    if isinstance(value, list):
        return [with_hostile_strings(v, data, pool) for v in value]
    if isinstance(value, dict):
        return {k: with_hostile_strings(v, data, pool) for k, v in value.items()}
    return value


# --- the tests ----------------------------------------------------------------------------------------------------

TOTALS: dict[str, dict[str, Any]] = {}


def hostile_sweep(tool: str, schema: dict[str, Any], dataset_id: str, hostile_files: dict[str, Path], sandbox: Path) -> list[dict[str, Any]]:
    """Each hostile string in each string field, each edge number in each number field, each hostile file where read."""
    base = base_arguments(tool, schema, dataset_id, hostile_files)
    planned: list[dict[str, Any]] = []
    for field, is_list in string_fields(schema):
        # A suite replaces the dataset: with both given the call would stop before the file is read.
        field_base = {k: v for k, v in base.items() if k != "dataset_id"} if field == "suite" else base
        for value in HOSTILE_STRINGS:
            planned.append(field_base | {field: [value] * max(1, schema["properties"][field].get("minItems", 1)) if is_list else value})
        if (tool, field) in PATH_FIELDS:
            for path in hostile_files.values():
                planned.append(field_base | {field: [str(path)] if is_list else str(path)})
    for field in number_fields(schema):
        for number in EDGE_NUMBERS:
            planned.append(base | {field: number})
    return [make_safe(tool, arguments, sandbox) for arguments in planned]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("tool", sorted(MCP_TOOLS))
def test_fuzz_tool(tool: str, fuzz_server, crash_log, hostile_files) -> None:
    """Hypothesis draws FUZZ_EXAMPLES argument sets from the tool's schema with hostile strings mixed in; then the
    fixed hostile sweep. Every answer is judged by Caller.judge; the server must still list its tools at the end."""
    _, dataset_id, sandbox = fuzz_server
    # The 10 MB file takes seconds a read: the sweep hands it to each file-reading field once; hypothesis does not.
    pool = HOSTILE_STRINGS + [dataset_id] + [str(p) for name, p in hostile_files.items() if name != "ten_mb_line.jsonl"]
    problems: list[str] = []
    timings: dict[str, float] = {}

    def body(caller: Caller, schemas: dict[str, dict[str, Any]]) -> None:
        schema = schemas[tool]

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            arguments = data.draw(from_schema(schema), label="arguments")
            caller.call(tool, make_safe(tool, with_hostile_strings(arguments, data, pool), sandbox))

        started = time.monotonic()
        fuzz()
        timings["hypothesis"] = time.monotonic() - started
        caller.hypothesis_cases = caller.counts.get(tool, 0)
        planned = hostile_sweep(tool, schema, dataset_id, hostile_files, sandbox)
        caller.planned_sweep = len(planned)
        started = time.monotonic()
        problems.extend(filter(None, (caller.judge(tool, arguments) for arguments in planned)))
        timings["sweep"] = time.monotonic() - started

    caller = with_caller(fuzz_server, crash_log, body)
    sweep_cases = caller.counts.get(tool, 0) - caller.hypothesis_cases
    TOTALS[tool] = {
        "hypothesis": caller.hypothesis_cases,
        "sweep": sweep_cases,
        "errors": caller.errors.get(tool, 0),
        "seconds": round(timings["hypothesis"] + timings["sweep"], 2),
        "longest_error_chars": caller.longest_error.get(tool, 0),
        "slowest_call": [round(caller.slowest[0], 2), caller.slowest[1]],
    }
    assert not problems, f"{len(problems)} of {sweep_cases} sweep calls went wrong:\n" + "\n".join(problems)
    # Every example hypothesis was asked for reached the server (none dropped as invalid or duplicate), and the sweep
    # ran in full.
    assert caller.hypothesis_cases == FUZZ_EXAMPLES, caller.hypothesis_cases
    assert sweep_cases == caller.planned_sweep > 0


def test_unexpected_exception_becomes_an_internal_error_with_an_id(caplog: pytest.LogCaptureFixture) -> None:
    """The safety net in run_domain: a bug's text and traceback stay in the server log, under an id the client gets."""
    from mcp.server.mcpserver.exceptions import ToolError

    from model_customization.tools.common import run_domain

    def broken_lookup(job_id: str) -> None:
        return {"other": 1}[job_id]  # a KeyError with the caller's text in it

    with caplog.at_level(logging.ERROR, logger="model_customization.tools.common"):
        with pytest.raises(ToolError) as raised:
            anyio.run(run_domain, broken_lookup, "job-secret-looking-value")
    text = str(raised.value)
    error_id = re.search(r"Internal error ([0-9a-f]{8}) in broken_lookup", text)
    assert error_id, text
    assert "KeyError" not in text and "job-secret-looking-value" not in text and "Traceback" not in text
    assert "report the id" in text
    logged = [r for r in caplog.records if error_id.group(1) in r.getMessage()]
    assert logged and logged[0].exc_info and logged[0].exc_info[0] is KeyError


def test_lone_surrogates_are_refused_before_the_domain_runs() -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from model_customization.tools.common import run_domain

    reached: list[str] = []
    with pytest.raises(ToolError, match="not valid Unicode text"):
        anyio.run(lambda: run_domain(reached.append, {"nested": ["ok", "bad\udc80"]}))
    assert reached == []
    assert anyio.run(lambda: run_domain(len, "fine \u00e9 \U0001f642")) == 8


def test_zz_fuzz_summary(capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Prints the cases run per tool and in total (runs last in this file) and checks the total is what was asked."""
    if not TOTALS:
        pytest.skip("run with test_fuzz_tool above (this only sums what it ran)")
    lines = [f"{'tool':34} {'hypothesis':>10} {'sweep':>6} {'errors':>7} {'seconds':>8}  slowest call"]
    for tool in sorted(TOTALS):
        entry = TOTALS[tool]
        lines.append(f"{tool:34} {entry['hypothesis']:>10} {entry['sweep']:>6} {entry['errors']:>7} {entry['seconds']:>8}  {entry['slowest_call'][0]} s")
    total_hypothesis = sum(entry["hypothesis"] for entry in TOTALS.values())
    total_sweep = sum(entry["sweep"] for entry in TOTALS.values())
    seconds = sum(entry["seconds"] for entry in TOTALS.values())
    lines.append(f"{'total':34} {total_hypothesis:>10} {total_sweep:>6} {'':>7} {round(seconds, 1):>8}  cases: {total_hypothesis + total_sweep}")
    with capsys.disabled():
        print("\nfuzz cases per tool\n" + "\n".join(lines))
    (tmp_path_factory.getbasetemp() / "fuzz-counts.json").write_text(json.dumps(TOTALS, indent=2), encoding="utf-8")
    assert total_hypothesis == FUZZ_EXAMPLES * len(TOTALS)
    if len(TOTALS) == len(MCP_TOOLS):
        assert set(TOTALS) == MCP_TOOLS
