"""Constitutional data: a model answers, critiques its answer against each principle and revises it.

For every prompt the model is called 1 + 2 * len(principles) times:

    answer      the prompt as it is
    critique i  the prompt, the current answer, then a request to judge that answer against principle i
    revise i    ... the critique, then a request to rewrite the answer accordingly; the rewrite becomes the current answer

The last revision is the answer we want. Two datasets are stored the way build_dataset stores its own
(content-addressed, split by prompt with the given seed and fractions, a card): a supervised one (prompt + final
revision) and a preference one (final revision preferred over the first answer). Every critique and revision is kept:
in a `constitution.jsonl` beside the splits of both datasets and, while small, in the card's `constitution` section.

A prompt whose model call fails or comes back empty is left out of both datasets and recorded with the step and the
reason (counted in the card), never silently dropped. Prompts are redacted before they are sent (a secret never
reaches a provider), and everything stored is redacted again as one conversation, so a value keeps one placeholder
across the prompt, the answers, the critiques and the revisions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_customization.datasets.build import SPLITS, _canonical, read_split, split_sessions, store_examples
from model_customization.datasets.examples import message_to_dict, to_plain_chat
from model_customization.datasets.redaction import redact_conversation, redact_text
from model_customization.errors import UserError
from model_customization.jobs.spending import NO_CONSENT, Allowance, Consent, approve_spend, authorize_chat_operation
from model_customization.memory.records import Conversation, Message, ToolCall
from model_customization.operations.datasets import ConstitutionalDatasetRequest
from model_customization.providers import chat as chat_router
from model_customization.providers.registry import is_paid
from model_customization.workspace import Workspace

# The requests that follow the answer. Phrased as turns of the same conversation, so any chat model (local or
# hosted) sees an ordinary dialogue: its answer, a request to critique it, its critique, a request to rewrite.
CRITIQUE_REQUEST = (
    "Review your previous answer against this principle:\n\n{principle}\n\n"
    "Say specifically where the answer falls short of the principle, quoting the parts concerned. "
    "If it already meets the principle completely, say so. Do not rewrite the answer yet."
)
REVISION_REQUEST = (
    "Now rewrite your previous answer so that it meets the principle ({principle}) and fixes what your critique "
    "found, keeping everything that was already good. Reply with the rewritten answer only, without any preamble "
    "or commentary."
)
EXAMPLES_FILE = "constitution.jsonl"
INLINE_EXAMPLES_BYTES = 64 * 1024  # above this the card points to EXAMPLES_FILE instead of holding the records
MAX_REPORTED_FAILURES = 50
MAX_DETAIL_CHARS = 300
# Labels models like to put before a rewrite even when asked not to ("Revised answer: ...").
_REVISION_LABEL_RE = re.compile(r"^\s*(?:\*\*)?(?:revised|rewritten|improved|new)?\s*(?:answer|response|revision)\s*:(?:\*\*)?\s*", re.IGNORECASE)

ProgressFn = Callable[[int, int, str], None]  # (model calls done, model calls planned, message)


@dataclass
class _Prompt:
    index: int  # position among the prompts read (0-based), for reports
    prompt_id: str  # sha256 of the redacted prompt (messages + tools): groups splits, removes duplicates
    messages: list[dict[str, Any]]  # stored shape (OpenAI chat messages), redacted
    tools: list[dict] | None


@dataclass
class _Step:
    principle_index: int
    principle: str
    critique: str
    revision: str | None = None


@dataclass
class _Run:
    """What happened to one prompt: the answer, every critique and revision, or where it failed."""

    prompt: _Prompt
    original: str | None = None
    steps: list[_Step] = field(default_factory=list)
    failure: dict[str, Any] | None = None

    @property
    def final(self) -> str | None:
        return self.steps[-1].revision if self.steps else self.original


class _StepFailed(Exception):
    def __init__(self, stage: str, principle_index: int | None, reason: str, detail: str, error: BaseException | None = None):
        super().__init__(detail)
        self.stage, self.principle_index, self.reason, self.detail, self.error = stage, principle_index, reason, detail, error


def generate_constitutional_dataset(
    ws: Workspace, request: ConstitutionalDatasetRequest, progress: ProgressFn | None = None, consent: Consent = NO_CONSENT
) -> dict[str, Any]:
    """generate_constitutional_data with the arguments of the generate_constitutional_dataset tool and the
    `dataset constitutional` command."""
    return generate_constitutional_data(ws, **request.model_dump(), progress=progress, consent=consent)


def check_constitutional_spending(ws: Workspace, request: ConstitutionalDatasetRequest, consent: Consent = NO_CONSENT) -> None:
    """Raise ConfirmationNeeded when the generation would need a person to approve its cost (nothing is recorded)."""
    arguments = request.model_dump()
    principles = _check_inputs(
        arguments["principles"], arguments["model"], arguments["prompts"], arguments["dataset_id"], arguments["split"], arguments["limit"],
        arguments["max_tokens"], arguments["temperature"], arguments["validation_fraction"], arguments["test_fraction"],
    )
    provider, name = chat_router.check_chat_model(ws, arguments["model"])
    chosen = _chosen_prompts(ws, arguments["prompts"], arguments["dataset_id"], arguments["split"], arguments["limit"], Counter(), Counter())[0]
    quote = _generation_quote(provider, name, chosen, principles, arguments["max_tokens"])
    if quote != 0:
        approve_spend(ws, provider, quote, consent, what="constitutional generation", by_argument=False)


def _generation_quote(provider: str, name: str, chosen: list[_Prompt], principles: list[str], max_tokens: int) -> float | None:
    """The most the generation's calls can cost: each call's conversation laid out as _critique_and_revise builds
    it, every reply taken at max_tokens of up to 8 bytes."""
    reply = "x" * (max_tokens * 8)
    total = 0.0
    for prompt in chosen:
        conversation = [{"role": m["role"], "content": m["content"]} for m in to_plain_chat(prompt.messages)]
        calls = [conversation]
        for principle in principles:
            with_answer = [*conversation, {"role": "assistant", "content": reply}, {"role": "user", "content": CRITIQUE_REQUEST.format(principle=principle)}]
            calls += [with_answer, [*with_answer, {"role": "assistant", "content": reply}, {"role": "user", "content": REVISION_REQUEST.format(principle=principle)}]]
        for messages in calls:
            bound = chat_router.chat_quote_usd(provider, name, messages, max_tokens)
            if bound is None:
                return None
            total += bound
    return round(total, 8)


def _chosen_prompts(
    ws: Workspace, prompts: list[str] | None, dataset_id: str | None, split: str, limit: int | None, dropped: Counter[str], redactions: Counter[str]
) -> tuple[list[_Prompt], dict[str, Any]]:
    if prompts is not None:
        raw = [([{"role": "user", "content": text}], None) for text in prompts]
        source = {"path": "(prompts given inline)", "sha256": hashlib.sha256(_canonical({"prompts": prompts}).encode("utf-8")).hexdigest()}
    else:
        raw, source = _prompts_from_dataset(ws, dataset_id, split, dropped)
    return _distinct_prompts(raw, limit, dropped, redactions), source


def generate_constitutional_data(
    ws: Workspace,
    *,
    principles: list[str],
    model: str,
    prompts: list[str] | None = None,
    dataset_id: str | None = None,
    split: str = "train",
    limit: int | None = None,
    name: str | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    progress: ProgressFn | None = None,
    consent: Consent = NO_CONSENT,
) -> dict[str, Any]:
    """Answer, critique and revise every prompt against the principles; store an SFT and a DPO dataset.

    prompts are single user messages; dataset_id takes the conversations of a stored dataset's split, each up to
    its last assistant turn (a preference example's input). limit keeps the first N distinct prompts. Returns the
    two dataset ids (dpo_dataset_id is None when no revision differs from its original answer), counts per split,
    failures by reason with the first failed prompts, what was left out and the number of model calls made.
    """
    principles = _check_inputs(
        principles, model, prompts, dataset_id, split, limit, max_tokens, temperature, validation_fraction, test_fraction
    )
    # Refuse a model that certainly cannot answer (missing local folder, missing key) before any prompt is read or sent.
    provider, canonical = chat_router.check_chat_model(ws, model)
    dropped: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    chosen, source = _chosen_prompts(ws, prompts, dataset_id, split, limit, dropped, redactions)
    if not chosen:
        raise UserError(
            f"No usable prompt in split {split!r} of {dataset_id} (left out: {dict(dropped)}). "
            "Each example needs a user message before its last assistant turn; try another split or dataset."
        )

    # Every paid call is approved as one generation before the first is sent; each then draws from that approval.
    allowance = None
    if is_paid(provider):
        quote = _generation_quote(provider, canonical, chosen, principles, max_tokens)
        allowance = authorize_chat_operation(ws, provider, quote, consent, what="constitutional generation", kind="constitutional")
    try:
        return _generate(
            ws, chosen, principles, model, provider, source, dropped, redactions, allowance,
            dataset_id=dataset_id, split=split, limit=limit, name=name, max_tokens=max_tokens, temperature=temperature, seed=seed,
            validation_fraction=validation_fraction, test_fraction=test_fraction, prompts=prompts, progress=progress,
        )
    finally:
        if allowance is not None:
            allowance.close()


def _generate(
    ws: Workspace, chosen: list[_Prompt], principles: list[str], model: str, provider: str, source: dict[str, Any], dropped: Counter[str],
    redactions: Counter[str], allowance: Allowance | None, *, dataset_id: str | None, split: str, limit: int | None, name: str | None,
    max_tokens: int, temperature: float, seed: int, validation_fraction: float, test_fraction: float, prompts: list[str] | None,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    calls_per_prompt = 1 + 2 * len(principles)
    planned = calls_per_prompt * len(chosen)
    options = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    usage = Counter({"prompt_tokens": 0, "completion_tokens": 0, "replies_cut_at_max_tokens": 0})
    calls = 0
    runs: list[_Run] = []
    succeeded = 0

    def ask(number: int, prompt: _Prompt, stage: str, principle_index: int | None, messages: list[dict[str, Any]]) -> str:
        nonlocal calls
        where = f"prompt {number}/{len(chosen)}: " + (stage if principle_index is None else f"{stage} against principle {principle_index + 1}/{len(principles)}")
        if progress:
            progress(calls, planned, where)
        calls += 1
        call_options = {**options, "seed": _call_seed(seed, prompt.prompt_id, stage, principle_index)}
        return _ask(ws, model, messages, {**call_options, "allowance": allowance}, stage, principle_index, usage)

    for number, prompt in enumerate(chosen, 1):
        run = _Run(prompt)
        runs.append(run)
        try:
            _critique_and_revise(run, principles, functools.partial(ask, number, prompt))
        except _StepFailed as failed:
            if isinstance(failed.error, UserError) and not succeeded:
                # A refusal of what was asked (unknown model, missing key, bad option) would repeat for every prompt.
                raise UserError(f"{model} could not {failed.stage} prompt {number}: {failed.error}") from failed.error
            run.failure = {"stage": failed.stage, "principle_index": failed.principle_index, "reason": failed.reason, "detail": _clip(redact_text(failed.detail)[0])}
            dropped[f"failed:{failed.reason}"] += 1
            continue
        succeeded += 1
    if progress:
        progress(calls, planned, f"{succeeded} of {len(chosen)} prompts revised; storing datasets")

    if not succeeded:
        reasons = Counter(run.failure["reason"] for run in runs if run.failure)
        first = next(run.failure for run in runs if run.failure)
        raise UserError(
            f"Every prompt failed ({dict(reasons)}); nothing was stored. First failure: {first['stage']}: {first['detail']}. "
            "Check the model with prompt_model, raise max_tokens if replies are cut to nothing, or try another model."
        )
    return _store(
        ws, runs, principles, model, provider, options, source, dropped, redactions, usage, calls,
        name=name, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
        origin={"dataset_id": dataset_id, "split": split} if dataset_id else {"prompts": len(prompts or [])}, limit=limit,
    )


def _check_inputs(
    principles: Any, model: Any, prompts: Any, dataset_id: Any, split: str, limit: int | None, max_tokens: int,
    temperature: float, validation_fraction: float, test_fraction: float,
) -> list[str]:
    if not isinstance(principles, list) or not principles:
        raise UserError(
            "No principles given. Pass a list of one or more principles to judge answers by, e.g. "
            "['The answer must not help anyone cause harm.', 'The answer says plainly what it does not know.']."
        )
    cleaned = []
    for number, principle in enumerate(principles, 1):
        if not isinstance(principle, str) or not principle.strip():
            raise UserError(f"Principle {number} is blank. Give every principle as a sentence the answer should satisfy, or remove it.")
        cleaned.append(principle.strip())
    if not isinstance(model, str) or not model.strip():
        raise UserError("No model given. Name the model that answers, critiques and revises, e.g. 'SmolLM2-135M-Instruct', a tuned ft-... id, or 'openai:gpt-4.1-mini'.")
    if (prompts is None) == (dataset_id is None):
        raise UserError("Give exactly one of prompts (a list of user messages) or dataset_id (a stored dataset whose conversations are the prompts).")
    if prompts is not None:
        if not isinstance(prompts, list):
            raise UserError("prompts must be a list of user messages (strings), e.g. ['How do I pick a lock?'].")
        if not prompts:
            raise UserError("prompts is empty. Give at least one user message to answer, or a dataset_id instead.")
        for number, prompt in enumerate(prompts, 1):
            if not isinstance(prompt, str) or not prompt.strip():
                raise UserError(f"Prompt {number} is blank. Remove it or write the user message it should hold.")
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1 (got {limit}); leave it out to use every prompt.")
    if not 1 <= max_tokens <= 4096:
        raise UserError(f"max_tokens must be between 1 and 4096 (got {max_tokens}).")
    if not 0 <= temperature <= 2:
        raise UserError(f"temperature must be between 0 and 2 (got {temperature}); 0 means greedy.")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise UserError(
            f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must each be in [0, 1) "
            "and leave some prompts for training (their sum below 1)."
        )
    return cleaned


def _prompts_from_dataset(
    ws: Workspace, dataset_id: str, split: str, dropped: Counter[str]
) -> tuple[list[tuple[list[dict[str, Any]], list[dict] | None]], dict[str, str]]:
    """Each example's conversation before its last assistant turn (a preference example's input), with its tools."""
    rows = read_split(ws, dataset_id, split)  # NotFoundError names list_datasets for an unknown id
    if not rows:
        raise UserError(f"Split {split!r} of {dataset_id} has no examples. Choose another split (train, validation, test).")
    path = Path(ws.store.datasets.get(dataset_id)["path"]) / f"{split}.jsonl"
    source = {"path": f"datasets://{dataset_id}/{split}.jsonl", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    found = []
    for row in rows:
        if "preferred_output" in row:
            messages, tools = row["input"]["messages"], row["input"].get("tools")
        else:
            messages, tools = row["messages"], row.get("tools")
            last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
            if last is None:
                dropped["no_assistant_message"] += 1
                continue
            messages = messages[:last]
        found.append((messages, tools))
    return found, source


def _distinct_prompts(
    raw: list[tuple[list[dict[str, Any]], list[dict] | None]], limit: int | None, dropped: Counter[str], redactions: Counter[str]
) -> list[_Prompt]:
    chosen: list[_Prompt] = []
    seen: set[str] = set()
    for index, (messages, tools) in enumerate(raw):
        if limit is not None and len(chosen) >= limit:
            dropped["over_limit"] += len(raw) - index
            break
        if not any(m.get("role") == "user" for m in messages):
            dropped["no_user_message"] += 1
            continue
        redacted, counts = redact_conversation(Conversation("prompt", [_message(m) for m in messages], "", 0, "constitutional", tools=tools))
        clean = [message_to_dict(m) for m in redacted.messages]
        prompt_id = hashlib.sha256(_canonical({"messages": clean, "tools": redacted.tools}).encode("utf-8")).hexdigest()
        if prompt_id in seen:
            dropped["duplicate_prompt"] += 1
            continue
        seen.add(prompt_id)
        redactions.update(counts)
        chosen.append(_Prompt(index, prompt_id, clean, redacted.tools))
    return chosen


def _message(data: dict[str, Any]) -> Message:
    calls = [ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in data.get("tool_calls") or []]
    return Message(data["role"], data.get("content") or "", calls, data.get("tool_call_id"), data.get("weight"))


def _critique_and_revise(run: _Run, principles: list[str], ask: Callable[[str, int | None, list[dict[str, Any]]], str]) -> None:
    # The model sees plain role/content turns (tool calls written as text), as in evaluation.
    conversation = [{"role": m["role"], "content": m["content"]} for m in to_plain_chat(run.prompt.messages)]
    run.original = ask("answer", None, conversation)
    for index, principle in enumerate(principles):
        critique_request = {"role": "user", "content": CRITIQUE_REQUEST.format(principle=principle)}
        with_answer = [*conversation, {"role": "assistant", "content": run.final}, critique_request]
        step = _Step(index, principle, ask("critique", index, with_answer))
        run.steps.append(step)
        revision_request = {"role": "user", "content": REVISION_REQUEST.format(principle=principle)}
        revision = _REVISION_LABEL_RE.sub("", ask("revise", index, [*with_answer, {"role": "assistant", "content": step.critique}, revision_request]), count=1).strip()
        if not revision:
            raise _StepFailed("revise", index, "revise_empty", "the reply held only a label and no rewritten answer")
        step.revision = revision


def _call_seed(seed: int, prompt_id: str, stage: str, principle_index: int | None) -> int:
    """A sampling seed per call: one seed for every call would draw the same random numbers each time (with a weak
    model, the same text for answer, critique and revision). Derived from the prompt, not from the call's position,
    so a prompt gets the same samples whatever other prompts are in the run."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{stage}:{principle_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1  # below 2**31: every provider takes it


def _ask(
    ws: Workspace, model: str, messages: list[dict[str, Any]], options: dict[str, Any], stage: str, principle_index: int | None, usage: Counter[str]
) -> str:
    try:
        reply = chat_router.chat(ws, model, messages, **options)
    except Exception as error:  # noqa: BLE001 - one prompt's failure is recorded and the others go on
        raise _StepFailed(stage, principle_index, f"{stage}_error", f"{type(error).__name__}: {error}", error) from error
    usage["prompt_tokens"] += int(reply.get("prompt_tokens") or 0)
    usage["completion_tokens"] += int(reply.get("completion_tokens") or 0)
    usage["replies_cut_at_max_tokens"] += reply.get("stop_reason") == "length"
    text = (reply.get("text") or "").strip()
    if not text:
        raise _StepFailed(stage, principle_index, f"{stage}_empty", "the model returned an empty reply")
    return text


def _clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redacted_record(run: _Run, redactions: Counter[str]) -> dict[str, Any]:
    """The run as stored: redacted as one conversation (prompt, answer, critiques, revisions) for shared placeholders."""
    produced = [text for text in [run.original, *(t for s in run.steps for t in (s.critique, s.revision))] if text is not None]
    carrier = Conversation("record", [*(_message(m) for m in run.prompt.messages), *(Message("assistant", t) for t in produced)], "", 0, "constitutional", tools=run.prompt.tools)
    redacted, counts = redact_conversation(carrier)
    redactions.update(counts)
    texts = iter(m.content for m in redacted.messages[len(run.prompt.messages):])
    messages = [message_to_dict(m) for m in redacted.messages[: len(run.prompt.messages)]]
    original = next(texts) if run.original is not None else None
    steps = []
    for step in run.steps:
        critique = next(texts)
        revision = next(texts) if step.revision is not None else None
        steps.append({"principle_index": step.principle_index, "principle": step.principle, "critique": critique, "revision": revision})
    user_turns = [m["content"] for m in messages if m["role"] == "user"]
    return {
        "prompt_id": run.prompt.prompt_id,
        "prompt_index": run.prompt.index,
        "prompt": user_turns[-1] if user_turns else "",
        "messages": messages,
        "tools": redacted.tools,
        "original": original,
        "steps": steps,
        "final": steps[-1]["revision"] if steps else original,
    }


def _sft_example(record: dict[str, Any]) -> dict[str, Any]:
    # Earlier assistant turns of a conversation are context, not what this dataset teaches: weight 0.
    messages = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in record["messages"]]
    example: dict[str, Any] = {"messages": [*messages, {"role": "assistant", "content": record["final"]}]}
    if record["tools"]:
        example["tools"] = record["tools"]
    return example


def _dpo_example(record: dict[str, Any]) -> dict[str, Any]:
    input_: dict[str, Any] = {"messages": [{k: v for k, v in m.items() if k != "weight"} for m in record["messages"]]}
    if record["tools"]:
        input_["tools"] = record["tools"]
    return {
        "input": input_,
        "preferred_output": [{"role": "assistant", "content": record["final"]}],
        "non_preferred_output": [{"role": "assistant", "content": record["original"]}],
    }


def _store(
    ws: Workspace,
    runs: list[_Run],
    principles: list[str],
    model: str,
    provider: str,
    options: dict[str, Any],
    source: dict[str, str],
    dropped: Counter[str],
    redactions: Counter[str],
    usage: Counter[str],
    calls: int,
    *,
    name: str | None,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    origin: dict[str, Any],
    limit: int | None,
) -> dict[str, Any]:
    done = [run for run in runs if run.failure is None]
    # One assignment for both datasets, so a prompt is in the same split of each.
    split_of = split_sessions([run.prompt.prompt_id for run in done], seed, validation_fraction, test_fraction)
    records: list[dict[str, Any]] = []
    sft: list[tuple[str, dict[str, Any]]] = []
    dpo: list[tuple[str, dict[str, Any]]] = []
    unchanged = 0
    for run in runs:
        record = _redacted_record(run, redactions)
        if run.failure is not None:
            records.append({**record, "split": None, "failure": run.failure})
            continue
        record["split"] = split_of[run.prompt.prompt_id]
        record["in_dpo"] = record["final"].strip() != record["original"].strip()
        records.append(record)
        sft.append((record["split"], _sft_example(record)))
        if record["in_dpo"]:
            dpo.append((record["split"], _dpo_example(record)))
        else:
            unchanged += 1  # preferred == non_preferred teaches nothing

    failures = Counter(run.failure["reason"] for run in runs if run.failure)
    failed_prompts = [
        {"prompt_index": run.prompt.index, "prompt_id": run.prompt.prompt_id, **run.failure}
        for run in runs if run.failure
    ][:MAX_REPORTED_FAILURES]
    file_bytes = b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n" for r in records)
    constitution: dict[str, Any] = {
        "principles": principles,
        "model": model,
        "provider": provider,
        "generation": options,
        "critique_request": CRITIQUE_REQUEST,
        "revision_request": REVISION_REQUEST,
        "prompts_read": len(runs),
        "succeeded": len(done),
        "failed": len(runs) - len(done),
        "failures": dict(sorted(failures.items())),
        "failed_prompts": failed_prompts,
        "revisions_unchanged": unchanged,
        "model_calls": calls,
        "usage": dict(usage),
        "examples_file": EXAMPLES_FILE,
    }
    successful = [r for r in records if "failure" not in r]
    if len(file_bytes) <= INLINE_EXAMPLES_BYTES:
        constitution["examples"] = [{k: v for k, v in r.items() if k not in ("messages", "tools")} for r in successful]

    base_name = name or "constitutional"
    total_read = len(runs) + sum(n for reason, n in dropped.items() if not reason.startswith("failed:"))

    def card_fields(method: str) -> dict[str, Any]:
        left_out = Counter(dropped)
        if method == "dpo" and unchanged:
            left_out["revision_unchanged"] += unchanged
        return {
            "conversations_read": total_read,
            "formats": {"constitutional": len(runs)},
            "dropped": dict(sorted(left_out.items())),
            "duplicates_removed": {"exact": dropped.get("duplicate_prompt", 0), "near": 0},
            "redactions": dict(sorted(redactions.items())),
            "unreadable": {"count": 0, "first": []},
            "sources": [source],
            "options": {
                "seed": seed,
                "validation_fraction": validation_fraction,
                "test_fraction": test_fraction,
                "method": method,
                "source": origin,
                "limit": limit,
                "model": model,
                **options,
            },
            "constitution": constitution,
        }

    extra = {EXAMPLES_FILE: file_bytes}
    sft_id, sft_card, sft_existed = store_examples(ws, sft, name=f"{base_name}-sft", method="sft", card_fields=card_fields("sft"), extra_files=extra)
    dpo_id = dpo_card = dpo_existed = None
    note = None
    if dpo:
        dpo_id, dpo_card, dpo_existed = store_examples(ws, dpo, name=f"{base_name}-dpo", method="dpo", card_fields=card_fields("dpo"), extra_files=extra)
    else:
        note = (
            "No revision differs from its first answer, so there is no preference pair and no DPO dataset was stored. "
            "Try principles the answers actually miss, a larger max_tokens, or a stronger model."
        )
    return {
        "sft_dataset_id": sft_id,
        "dpo_dataset_id": dpo_id,
        "counts": {"sft": sft_card["counts"], "dpo": dpo_card["counts"] if dpo_card else None},
        "already_existed": {"sft": sft_existed, "dpo": dpo_existed},
        "prompts_read": len(runs),
        "succeeded": len(done),
        "failed": len(runs) - len(done),
        "failures": dict(sorted(failures.items())),
        "failed_prompts": failed_prompts,
        "dropped": dict(sorted(dropped.items())),
        "revisions_unchanged": unchanged,
        "model_calls": calls,
        "usage": dict(usage),
        "redactions": dict(sorted(redactions.items())),
        "note": note,
    }
