"""The cases an evaluation runs on: a dataset's held-out split, or a suite file (JSONL or YAML) of cases.

A suite case has `messages` and any of `reference`, `json_schema`, `regex`, `contains`, `expected_tool_call` and
`rubric`; each answer gets every metric its case provides for (metrics.score_case), and a rubric is shown to the
judge. `tool_results` ({tool name: the text a call to it returns}) is for GRPO's multi-turn episodes: a sampled answer
that calls a tool gets that text back as a tool message and goes on (providers/local/grpo.py); evaluate ignores it.
`tools` (OpenAI function tools, [{type: "function", function: {name, description?, parameters?}}]) are the tools the
model is shown: a local model sees them through its chat template (providers/local/chat.py render_prompt), a hosted
one gets them as the API's `tools`, in evaluate and in GRPO alike. A dataset case's prompt is the conversation up to
its last assistant turn and the reference is that turn.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from model_customization.datasets.build import get_dataset, read_split
from model_customization.datasets.examples import example_tools, prompt_and_reference
from model_customization.datasets.redaction import redact_text
from model_customization.errors import UserError
from model_customization.evaluation.metrics import METRICS, schema_validator, score_case
from model_customization.paths import check_readable, resolve_user_path
from model_customization.reading_limits import NotARegularFile, read_regular_bytes
from model_customization.workspace import Workspace

# The keys a suite case may have besides messages, and an optional name for it. They travel together as a case's
# "expects" (evaluate's rows, GRPO's stored cases, the cases' sha256): the checks, and what the case gives the
# model besides its messages (tool_results, tools).
SUITE_EXPECTATIONS = ("reference", "json_schema", "regex", "contains", "expected_tool_call", "rubric", "tool_results", "tools")
SUITE_KEYS = ("messages", *SUITE_EXPECTATIONS, "id")
ROLES = ("system", "user", "assistant", "tool")
# OpenAI's rule for a function's name (chat completions, FunctionObject.name).
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_FUNCTION_KEYS = ("name", "description", "parameters", "strict")


def suite_metrics(cases: list[dict[str, Any]]) -> list[str]:
    """The 0-1 metrics the suite's cases provide for, in a fixed order (reference metrics first)."""
    provided = {key for case in cases for key in SUITE_EXPECTATIONS if key in case}
    names: list[str] = []
    if "reference" in provided:
        names += list(METRICS)
    if "json_schema" in provided:
        names += ["json_valid", "schema_valid"]
    if "regex" in provided:
        names.append("regex_match")
    if "contains" in provided:
        names.append("contains")
    if "expected_tool_call" in provided:
        names += ["tool_name_match", "tool_arguments_match", "tool_call_exact"]
    return names


def load_suite(path: Path) -> list[dict[str, Any]]:
    """The cases of a JSONL (.jsonl, .ndjson) or YAML (.yaml, .yml: a list of cases, or {cases: [...]}) suite file,
    each with "source" = "file:line". A case that cannot be used is a UserError naming its file and line."""
    check_readable(path, what="Suite file")  # inside the allowed roots (paths.py), links followed
    suffix = path.suffix.lower()
    try:
        # Only a regular file within the memory limit (reading_limits.py): a FIFO or device is refused unopened.
        raw = read_regular_bytes(path, what="Suite file", fenced=True)  # checked again on the file opened (a link swapped in is refused)
    except FileNotFoundError:
        raise UserError(f"Suite file {path} not found. Give the path of a .jsonl or .yaml file of cases.") from None
    except NotARegularFile as error:
        if error.kind == "a folder":
            raise UserError(f"Suite file {path} not found (it is a folder). Give the path of a .jsonl or .yaml file of cases.") from None
        raise
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {raw[error.start]:#04x}). Save the suite as UTF-8.") from None
    if suffix in (".jsonl", ".ndjson"):
        located = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                located.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}). Each line of a JSONL suite is one case object.") from None
            except RecursionError:
                raise UserError(f"{path}:{number}: JSON nested too deeply to read. Each line of a JSONL suite is one flat case object.") from None
    elif suffix in (".yaml", ".yml"):
        located = _yaml_cases(path, text)
    else:
        raise UserError(f"Suite file {path} should end in .jsonl or .yaml (or .yml); cannot tell its format from {suffix or 'no suffix'!r}.")
    cases = []
    for number, case in located:
        where = f"{path}:{number}"
        try:
            _check_suite_case(case, where)
        except UserError as error:
            # The message quotes what was wrong (an unknown key, a regex): never a secret the suite holds.
            raise UserError(redact_text(str(error))[0]) from None
        cases.append({**case, "source": f"{path.name}:{number}"})
    if not cases:
        raise UserError(f"Suite file {path} has no cases. Each case needs messages and any of {', '.join(SUITE_EXPECTATIONS)}.")
    return cases


def _yaml_cases(path: Path, text: str) -> list[tuple[int, Any]]:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise UserError(f"{path}: YAML nested too deeply to read. A suite is a list of flat case mappings.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(error, 'problem', None) or error}).") from None
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        found = [value for key, value in root.value if isinstance(key, yaml.ScalarNode) and key.value == "cases"]
        root = found[0] if found else root
    if not isinstance(root, yaml.SequenceNode):
        raise UserError(f"{path}:{root.start_mark.line + 1}: a YAML suite is a list of cases, or a mapping with a 'cases' list.")
    loader_cls = yaml.SafeLoader
    cases = []
    for node in root.value:
        loader = loader_cls("")
        try:
            value = loader.construct_document(node)
        except yaml.YAMLError as error:
            raise UserError(f"{path}:{node.start_mark.line + 1}: {error}") from None
        finally:
            loader.dispose()
        cases.append((node.start_mark.line + 1, value))
    return cases


def _check_suite_case(case: Any, where: str) -> None:
    if not isinstance(case, dict):
        raise UserError(f"{where}: a case must be an object with messages, not {type(case).__name__}.")
    unknown = sorted(set(case) - set(SUITE_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a case may have {', '.join(SUITE_KEYS)}.")
    messages = case.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: the case needs messages, a non-empty list of {{role, content}} turns ending with a user turn.")
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise UserError(f"{where}: message {position} must be {{role: one of {', '.join(ROLES)}, content: text}}.")
    if messages[-1]["role"] == "assistant":
        raise UserError(f"{where}: the last message is the assistant's; end with the user turn the models should answer (put the answer in reference).")
    for key in ("reference", "regex", "rubric"):
        if key in case and not isinstance(case[key], str):
            raise UserError(f"{where}: {key} must be text, not {type(case[key]).__name__}.")
    if "regex" in case:
        try:
            re.compile(case["regex"])
        except re.error as error:
            raise UserError(f"{where}: regex {case['regex']!r} does not compile: {error}.") from None
    needles = case.get("contains")
    if "contains" in case and not (isinstance(needles, str) or (isinstance(needles, list) and needles and all(isinstance(n, str) for n in needles))):
        raise UserError(f"{where}: contains must be a text or a non-empty list of texts.")
    if "json_schema" in case:
        if not isinstance(case["json_schema"], (dict, bool)):
            raise UserError(f"{where}: json_schema must be a JSON Schema object (or true/false).")
        try:
            schema_validator(json.dumps(case["json_schema"], sort_keys=True))
        except UserError as error:
            raise UserError(f"{where}: {error}") from None
    call = case.get("expected_tool_call")
    if "expected_tool_call" in case and not (isinstance(call, dict) and isinstance(call.get("name"), str)):
        raise UserError(f"{where}: expected_tool_call must be {{name, arguments}}.")
    results = case.get("tool_results")
    if "tool_results" in case and not (isinstance(results, dict) and results and all(isinstance(k, str) and k and isinstance(v, str) for k, v in results.items())):
        raise UserError(
            f"{where}: tool_results must map each tool name to the text its call returns, "
            'e.g. {"get_weather": "12 C, light rain"}.'
        )
    if "tools" in case:
        names = check_tools(case["tools"], where)
        if isinstance(call, dict) and call["name"] not in names:
            raise UserError(f"{where}: expected_tool_call names {call['name']!r}, which is not among the case's tools ({', '.join(names)}).")
        for name in sorted(set(results or {}) - set(names)):
            raise UserError(f"{where}: tool_results has a result for {name!r}, which is not among the case's tools ({', '.join(names)}).")


def check_tools(tools: Any, where: str) -> list[str]:
    """The names of a case's tools, checked against OpenAI's function-tool shape; a UserError says which tool (by
    position and name) and what is wrong with it."""
    example = '{"type": "function", "function": {"name": "get_weather", "description": "...", "parameters": {"type": "object", ...}}}'
    if not isinstance(tools, list) or not tools:
        raise UserError(f"{where}: tools must be a non-empty list of function tools, each like {example}.")
    names: list[str] = []
    for position, tool in enumerate(tools):
        label = f"tools[{position}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            label += f" ({function['name']!r})"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise UserError(f"{where}: {label} must be a function tool, {example}.")
        unknown = sorted(set(tool) - {"type", "function"}) or sorted(set(function) - set(TOOL_FUNCTION_KEYS))
        if unknown:
            raise UserError(f"{where}: {label} has unknown key(s) {', '.join(map(repr, unknown))}; a function has {', '.join(TOOL_FUNCTION_KEYS)}.")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise UserError(f"{where}: {label} needs a name of 1 to 64 letters, digits, '_' or '-' (got {name!r}).")
        if name in names:
            raise UserError(f"{where}: {label}: two tools are named {name!r}; each tool needs its own name.")
        if "description" in function and not isinstance(function["description"], str):
            raise UserError(f"{where}: {label}: description must be text.")
        if "strict" in function and not isinstance(function["strict"], (bool, type(None))):
            raise UserError(f"{where}: {label}: strict must be true or false.")
        if "parameters" in function:
            parameters = function["parameters"]
            if not isinstance(parameters, dict):
                raise UserError(f"{where}: {label}: parameters must be a JSON Schema object, e.g. {{\"type\": \"object\", \"properties\": {{...}}}}.")
            import jsonschema

            try:
                jsonschema.validators.validator_for(parameters).check_schema(parameters)
            except jsonschema.SchemaError as error:
                raise UserError(f"{where}: {label}: parameters is not a valid JSON Schema: {error.message}.") from None
        names.append(name)
    return names


def dataset_cases(ws: Workspace, dataset_id: str, split: str) -> list[dict[str, Any]] | None:
    """A GRPO dataset's split (suite cases stored by start_job) as suite cases, scored by their own checks; None for
    any other dataset, whose cases are its conversations' last assistant turns."""
    if get_dataset(ws, dataset_id)["card"].get("method") != "grpo":
        return None
    return [{"messages": row["messages"], **row["expects"], "source": row.get("source", "")} for row in read_split(ws, dataset_id, split)]


def case_rows(ws: Workspace, dataset_id: str | None, split: str, suite_cases: list[dict[str, Any]] | None, limit: int | None) -> list[dict[str, Any]]:
    """The cases laid out for a run: prompt, reference, a suite case's expectations, and room for the outputs."""
    if suite_cases is None and dataset_id is not None:
        suite_cases = dataset_cases(ws, dataset_id, split)
    if suite_cases is not None:
        results: list[dict[str, Any]] = [
            {
                "case": index,
                "source": case["source"],
                "prompt": case["messages"],
                "reference": case.get("reference"),
                "expects": {k: case[k] for k in SUITE_EXPECTATIONS if k in case},
                "outputs": {},
            }
            for index, case in enumerate(suite_cases)
        ]
    else:
        # A kto dataset's undesirable sessions are not answers to match: only its desirable ones are references.
        examples = [example for example in read_split(ws, dataset_id, split) if example.get("label") is not False]
        results = []
        for index, example in enumerate(examples):
            prompt, reference = prompt_and_reference(example)
            row: dict[str, Any] = {"case": index, "prompt": prompt, "reference": reference, "outputs": {}}
            if tools := example_tools(example):  # the tools the example offered, as the model was trained with them
                row["tools"] = tools
            results.append(row)
    return results[: max(limit, 0)] if limit is not None else results


def cases_sha256(results: list[dict[str, Any]]) -> str:
    # A dataset case's tools count only where there are some, so that the sha256 of cases without tools is unchanged.
    return hashlib.sha256(json.dumps([[r["prompt"], r["reference"], r.get("expects")] + ([r["tools"]] if r.get("tools") else []) for r in results], sort_keys=True).encode()).hexdigest()


def cases_fingerprint(ws: Workspace, *, dataset_id: str | None = None, split: str = "test", suite: str | Path | None = None) -> dict[str, Any]:
    """{cases, cases_sha256} of a dataset split or a suite file as they are now: an evaluation whose plan has the same
    sha256 (and no limit) was run on exactly these cases."""
    if (dataset_id is None) == (suite is None):
        raise UserError("Give either dataset_id or suite.")
    if dataset_id is not None:
        get_dataset(ws, dataset_id)
    suite_cases = load_suite(resolve_user_path(suite, what="Suite file")[1]) if suite is not None else None
    results = case_rows(ws, dataset_id, split, suite_cases, None)
    if not results:
        raise UserError(f"{suite or dataset_id} has no cases to evaluate on.")
    return {"cases": len(results), "cases_sha256": cases_sha256(results)}


def case_tools(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools a case row offers the model (a suite case's `tools`, or a dataset example's), or None."""
    return (row.get("expects") or {}).get("tools") or row.get("tools") or None


def score_answer(answer: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A suite case gets every metric it provides for; a dataset case the reference metrics. Tool calls the model
    made natively (a hosted API's tool_calls) are kept with the answer's text."""
    if "expects" in row:
        scores = score_case(answer, row["expects"])
    else:
        scores = {name: fn(answer["text"], row["reference"]) for name, fn in METRICS.items()}
    calls = {"tool_calls": answer["tool_calls"]} if answer.get("tool_calls") else {}
    return {"text": answer["text"], "seconds": answer["seconds"], **calls, **scores}
