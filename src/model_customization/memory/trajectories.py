"""Importers for labelled agent trajectories: tau-bench results, ToolBench answer files and SWE-agent ``.traj`` files.

All three carry OpenAI-shaped messages (ToolBench: the legacy ``function_call`` / ``role: "function"`` shape), so the
messages are read with the OpenAI chat importer's helpers and only the envelope differs.

tau-bench (``tau_bench``)
    ``run.py`` writes a JSON array of ``EnvRunResult`` objects ``{task_id, reward, info, traj, trial}`` (``traj`` is
    the agent's chat history with ``tool_calls`` and ``role: "tool"`` results); JSON Lines with one such object a
    line are read too. Each result becomes one Conversation: ``task_id`` (as a string), ``outcome.reward``,
    ``metadata["trial"]``, session id ``<file stem>:task<task_id>:trial<trial>`` (``<file stem>:<n>``, the 1-based
    position of the result, when either is missing). A run that crashed is stored with ``traj: []`` and
    ``info.error``; it has nothing to learn from and becomes an ImportProblem that quotes the error. Results in an
    array are located by their real line in the file, so problems point at the line where the bad result starts.

ToolBench (``toolbench``)
    An answer file ``{answer_generation: {valid_data, query, final_answer, finish_type, train_messages, function},
    win, tree, ...}``. ``train_messages`` holds the chat at successive steps of the search; in the real files every
    entry is a prefix of the last one, so the LAST entry (the full chat) is the conversation. ``function`` becomes
    the tools (wrapped as OpenAI tool definitions). Outcome: ``reward = 1.0`` when ``finish_type == "give_answer"``
    and ``valid_data`` is true, else ``0.0``; ``finish_type``, ``valid_data`` and ``win`` are kept in metadata.
    Files whose search produced no usable chain (``valid_data: false`` and no ``train_messages``) become an
    ImportProblem: the DFS tree in them has no messages to rebuild a conversation from. ``task_id`` is the query id
    with its instruction group (``G1_answer_10`` for ``G1_answer/10_ChatGPT_DFS_woFilter_w2.json`` or
    ``G1_answer_10_ChatGPT_DFS_woFilter_w2.json``) so that attempts of one query by different methods group
    together; the file stem when the name does not have that shape.

SWE-agent (``swe_agent``)
    A ``.traj`` document with ``history`` (role/content messages, ``tool_calls`` on assistant turns, ``tool_call_ids``
    on tool results) and/or ``trajectory`` steps ``{response, observation, action, thought, ...}`` and
    ``info.exit_status``. ``history`` is used when present (it is what the model saw, demonstrations included);
    otherwise the steps become assistant (response) / user (observation) turns. ``exit_status`` and whether a patch
    was submitted go into metadata only: "submitted" does not say whether the patch resolved the issue, so no
    reward is set. ``task_id`` is the file stem (SWE-agent names the file after the instance id).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .formats import MemoryFormat
from .openai_chat import openai_record
from .reading import RecordError, iter_lines, json_type, parse_json_line, read_json_document, read_text
from .records import Conversation, ImportProblem, Outcome

Result = Conversation | ImportProblem


# ---------------------------------------------------------------------------------------------------------------
# helpers shared by the three formats


def _chat(messages: Any, path: Path, line: int, functions: Any = None) -> Conversation:
    """OpenAI-shaped messages (modern or legacy) read by the OpenAI chat importer; raises RecordError."""
    if not isinstance(messages, list):
        raise RecordError(f"expected a list of messages, got {json_type(messages)}")
    obj: dict[str, Any] = {"messages": messages}
    if functions is not None:
        obj["functions"] = functions
    return openai_record(obj, path, line)


def _iter_array(text: str) -> Iterator[tuple[int, Any] | ImportProblem]:
    """The elements of a top-level JSON array with the 1-based line each starts on.

    Yields ``(line, value)`` pairs; a syntax error yields one ImportProblem (its ``file`` left empty for the caller
    to fill in) and ends the array, since nothing after it can be located reliably.
    """
    decoder = json.JSONDecoder()
    n = len(text)
    pos = _skip_ws(text, 0)
    if pos >= n or text[pos] != "[":
        raise ValueError("not a JSON array")
    pos = _skip_ws(text, pos + 1)
    line = 1 + text.count("\n", 0, pos)
    counted = pos
    if pos < n and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield ImportProblem("", exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno}); rest of the file skipped")
            return
        yield line, value
        pos = _skip_ws(text, end)
        if pos < n and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < n and text[pos] == "]":
            if _skip_ws(text, pos + 1) < n:
                line += text.count("\n", counted, pos)
                yield ImportProblem("", line, "invalid JSON: extra data after the array")
            return
        line += text.count("\n", counted, pos)
        yield ImportProblem("", line, "invalid JSON: expected ',' or ']' between results; rest of the file skipped")
        return


_WS = re.compile(r"[ \t\r\n]*")


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------------------
# tau-bench

TAU_BENCH = "tau_bench"
_TAU_KEYS = ("task_id", "traj")


def _is_tau_result(obj: Any) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in _TAU_KEYS) and ("reward" in obj or "trial" in obj)


def _sniff_tau_document(doc: Any) -> bool:
    if isinstance(doc, list):
        return bool(doc) and _is_tau_result(doc[0])
    return _is_tau_result(doc)


def iter_tau_bench(path: Path) -> Iterator[Result]:
    path = Path(path)
    file = str(path)
    if path.suffix.lower() == ".jsonl":
        yield from _tau_lines(path)
        return
    try:
        text = read_text(path)
    except UnicodeDecodeError as exc:
        yield ImportProblem(file, 0, f"invalid UTF-8 at byte {exc.start}")
        return
    stripped = text.lstrip()
    if stripped.startswith("["):
        index = 0
        for item in _iter_array(text):
            if isinstance(item, ImportProblem):
                yield ImportProblem(file, item.line, item.message)
                continue
            index += 1
            line, value = item
            yield _tau_record(value, path, line, index)
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        yield from _tau_lines(path)  # JSON Lines under another name
        return
    yield _tau_record(doc, path, 1, 1)


def _tau_lines(path: Path) -> Iterator[Result]:
    index = 0  # the result's position among the file's lines, readable or not: it names results without a task id
    for item in iter_lines(path):
        if isinstance(item, ImportProblem):
            yield item
            continue
        line_no, raw = item
        index += 1
        try:
            obj = parse_json_line(raw, line_no)
        except RecordError as exc:
            yield ImportProblem(str(path), line_no, str(exc))
            continue
        yield _tau_record(obj, path, line_no, index)


def _tau_record(obj: Any, path: Path, line: int, index: int) -> Result:
    try:
        return _tau_conversation(obj, path, line, index)
    except RecordError as exc:
        return ImportProblem(str(path), line, str(exc))


def _tau_conversation(obj: Any, path: Path, line: int, index: int) -> Conversation:
    if not isinstance(obj, dict):
        raise RecordError(f"result {index}: expected a JSON object, got {json_type(obj)}")
    task_id, trial = obj.get("task_id"), obj.get("trial")
    label = f"task {task_id} trial {trial}" if task_id is not None else f"result {index}"
    if "traj" not in obj:
        raise RecordError(f"{label}: missing 'traj'")
    traj = obj["traj"]
    if not isinstance(traj, list):
        raise RecordError(f"{label}: 'traj' must be a list of messages, got {json_type(traj)}")
    if not traj:
        info = obj.get("info")
        error = info.get("error") if isinstance(info, dict) else None
        why = f" (the run failed: {str(error)[:200]})" if error else ""
        raise RecordError(f"{label}: empty 'traj'{why}")
    reward = obj.get("reward")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
        raise RecordError(f"{label}: 'reward' must be a number, got {json_type(reward)}")
    try:
        conv = _chat(traj, path, line)
    except RecordError as exc:
        raise RecordError(f"{label}: {exc}") from None
    if task_id is not None and trial is not None:
        conv.session_id = f"{path.stem}:task{task_id}:trial{trial}"
    else:
        conv.session_id = f"{path.stem}:{index}"
    conv.source_format = TAU_BENCH
    conv.task_id = str(task_id) if task_id is not None else None
    conv.outcome = Outcome(reward=float(reward) if reward is not None else None)
    if trial is not None:
        conv.metadata["trial"] = trial
    return conv


# ---------------------------------------------------------------------------------------------------------------
# ToolBench

TOOLBENCH = "toolbench"
_TB_UPSTREAM_NAME = re.compile(r"^(\d+)_")  # data/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json
_TB_FLAT_NAME = re.compile(r"^(G\d+_answer_\d+)_")  # G1_answer_10_ChatGPT_DFS_woFilter_w2.json
_TB_GROUP_DIR = re.compile(r"^G\d+_answer$")


def _sniff_toolbench(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    ag = doc.get("answer_generation")
    return isinstance(ag, dict) and any(k in ag for k in ("train_messages", "finish_type", "valid_data"))


def _toolbench_task_id(ag: dict[str, Any], doc: dict[str, Any], path: Path) -> str:
    for holder in (ag, doc):
        qid = holder.get("query_id")
        if isinstance(qid, (str, int)) and not isinstance(qid, bool):
            return str(qid)
    flat = _TB_FLAT_NAME.match(path.stem)
    if flat:
        return flat.group(1)
    upstream = _TB_UPSTREAM_NAME.match(path.stem)
    if upstream:
        parent = path.parent.name
        return f"{parent}_{upstream.group(1)}" if _TB_GROUP_DIR.match(parent) else upstream.group(1)
    return path.stem


def _iter_one_document(path: Path, to_conversation: Callable[[Any, Path], Conversation]) -> Iterator[Result]:
    """Formats whose file is one document holding one conversation: it, or one problem saying why not."""
    path = Path(path)
    doc, problem = read_json_document(path)
    if problem is not None:
        yield problem
        return
    try:
        yield to_conversation(doc, path)
    except RecordError as exc:
        yield ImportProblem(str(path), 1, str(exc))


def iter_toolbench(path: Path) -> Iterator[Result]:
    return _iter_one_document(path, _toolbench_conversation)


def _toolbench_conversation(doc: Any, path: Path) -> Conversation:
    if not isinstance(doc, dict) or not isinstance(doc.get("answer_generation"), dict):
        raise RecordError("not a ToolBench answer file: no 'answer_generation' object")
    ag = doc["answer_generation"]
    valid = ag.get("valid_data")
    finish_type = ag.get("finish_type")
    chats = ag.get("train_messages")
    if not chats:
        why = "valid_data is false and " if valid is False else ""
        raise RecordError(f"{why}'answer_generation' has no 'train_messages': no conversation to import")
    if not isinstance(chats, list):
        raise RecordError(f"'train_messages' must be a list of conversations, got {json_type(chats)}")
    functions = ag.get("function")
    if functions is not None and not isinstance(functions, list):
        raise RecordError(f"'function' must be a list of function definitions, got {json_type(functions)}")
    try:
        conv = _chat(chats[-1], path, 1, functions)
    except RecordError as exc:
        raise RecordError(f"train_messages[{len(chats) - 1}]: {exc}") from None
    conv.session_id = path.stem
    conv.source_format = TOOLBENCH
    conv.task_id = _toolbench_task_id(ag, doc, path)
    conv.outcome = Outcome(reward=1.0 if finish_type == "give_answer" and valid is True else 0.0)
    conv.metadata = {"finish_type": finish_type, "valid_data": valid}
    if isinstance(doc.get("win"), bool):
        conv.metadata["win"] = doc["win"]
    return conv


# ---------------------------------------------------------------------------------------------------------------
# SWE-agent

SWE_AGENT = "swe_agent"


def _sniff_swe_agent(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    history = doc.get("history")
    if isinstance(history, list) and history:
        first = history[0]
        if isinstance(first, dict) and "role" in first and ("agent" in first or "message_type" in first):
            return True
    steps = doc.get("trajectory")
    if isinstance(steps, list) and steps and isinstance(doc.get("info"), dict):
        first = steps[0]
        return isinstance(first, dict) and "observation" in first and ("action" in first or "response" in first)
    return False


def iter_swe_agent(path: Path) -> Iterator[Result]:
    return _iter_one_document(path, _swe_agent_conversation)


def _swe_agent_conversation(doc: Any, path: Path) -> Conversation:
    if not isinstance(doc, dict):
        raise RecordError(f"expected a JSON object, got {json_type(doc)}")
    history = doc.get("history")
    steps = doc.get("trajectory")
    if isinstance(history, list) and history:
        messages = []
        for i, m in enumerate(history, start=1):
            if not isinstance(m, dict):
                raise RecordError(f"history message {i}: expected an object, got {json_type(m)}")
            if m.get("role") == "tool" and not m.get("tool_call_id"):
                ids = m.get("tool_call_ids")
                if isinstance(ids, list) and ids and isinstance(ids[0], str):
                    m = {**m, "tool_call_id": ids[0]}
            messages.append(m)
        where = "history"
    elif isinstance(steps, list) and steps:
        messages = []
        for i, step in enumerate(steps, start=1):
            if not isinstance(step, dict):
                raise RecordError(f"trajectory step {i}: expected an object, got {json_type(step)}")
            response = step.get("response")
            if response is None:
                response = step.get("action")
            messages.append({"role": "assistant", "content": response})
            messages.append({"role": "user", "content": step.get("observation")})
        where = "trajectory"
    else:
        raise RecordError("neither 'history' nor 'trajectory' has any entries")
    try:
        conv = _chat(messages, path, 1)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None
    conv.session_id = path.stem
    conv.source_format = SWE_AGENT
    conv.task_id = path.stem
    info = doc.get("info")
    if isinstance(info, dict):
        if "exit_status" in info:
            conv.metadata["exit_status"] = info["exit_status"]
        if "submission" in info:
            conv.metadata["submitted_patch"] = bool(info["submission"])
    return conv


# ---------------------------------------------------------------------------------------------------------------

TAU_BENCH_FORMAT = MemoryFormat(
    TAU_BENCH,
    iter_tau_bench,
    sniff_line=_is_tau_result,
    sniff_document=_sniff_tau_document,
    title="tau-bench results",
    where="the results JSON (or JSONL) tau-bench's run.py writes",
    kept="each trial's chat with tool calls and results; task id and trial for grouping attempts",
    outcome_signals="reward per trial",
)
TOOLBENCH_FORMAT = MemoryFormat(
    TOOLBENCH,
    iter_toolbench,
    sniff_document=_sniff_toolbench,
    title="ToolBench answer files",
    where="ToolBench's answer/<group>/*.json",
    kept="the full chat of the search (last train_messages), function definitions as tools",
    outcome_signals="finish_type give_answer with valid_data counts as reward 1, else 0",
)
SWE_AGENT_FORMAT = MemoryFormat(
    SWE_AGENT,
    iter_swe_agent,
    sniff_document=_sniff_swe_agent,
    title="SWE-agent trajectories",
    where="*.traj files SWE-agent writes per instance",
    kept="the history the model saw (demonstrations included) or the trajectory steps",
    outcome_signals="exit status kept in metadata only (submitted is not resolved)",
)

FORMATS: list[MemoryFormat] = [TAU_BENCH_FORMAT, TOOLBENCH_FORMAT, SWE_AGENT_FORMAT]
FORMAT = TAU_BENCH_FORMAT  # the module's primary format; register all of FORMATS
