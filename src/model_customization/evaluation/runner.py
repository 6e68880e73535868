"""Evaluate two or more models on a dataset's held-out split: generate, score, optionally judge, store.

Each case's prompt is the conversation up to its last assistant turn and the reference is that turn. Local models
answer greedily in batches (repeatable, and fast on CPU); cloud models (OpenAI, Anthropic, Bedrock) answer through
the chat router one case at a time at temperature 0. Every answer gets the string metrics; with a judge, a model of
any provider also rates each answer against the reference from 1 to 10 (stored as judge_score = (n-1)/9). A reply
the judge cannot be understood from, or a judge call that fails, is recorded on that case and counted, never dropped.
Per-case outputs go to `cases.jsonl` in the evaluation's folder and the per-model means to the ledger; both are
served as `evals://{id}`.

Instead of a dataset, a suite file (JSONL or YAML) lists cases: `messages` and any of `reference`, `json_schema`,
`regex`, `contains`, `expected_tool_call` and `rubric`; each answer gets every metric its case provides for
(metrics.score_case), and a rubric is shown to the judge. A pairwise judge compares the first model's answer with
each other model's on every case twice, with the answers in both positions, so a judge that favours a position
cannot make a winner: a win counts only when both orders agree, anything else is a tie.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from model_customization.datasets.build import get_dataset, read_split
from model_customization.datasets.examples import prompt_and_reference
import anyio

from model_customization.errors import NotFoundError, TransientError, UserError
from model_customization.evaluation.metrics import MEASUREMENTS, METRICS, score_case
from model_customization.evaluation.pricing import CHAT_PRICES_READ_ON, CHAT_PRICES_SOURCE, PRICES_ENV, answer_cost_usd
from model_customization.evaluation.statistics import compare, mean_ci, paired_difference
from model_customization.paths import resolve_user_path
from model_customization.providers.chat import chat_with_provider, check_chat_model
from model_customization.providers.local.inference import generate_greedy_batch
from model_customization.workspace import Workspace

ProgressFn = Callable[[int, int, str], "None | Awaitable[None]"]
SPLITS = ("train", "validation", "test")

from model_customization.evaluation.limits import DEFAULT_CONCURRENCY, MAX_CONCURRENCY  # noqa: E402 - re-exported
# Transient provider failures (rate limits, timeouts, server errors) are retried this many times, waiting what the
# provider asked for or 1, 2, 4... seconds (at most a minute); MODEL_CUSTOMIZATION_EVAL_RETRIES overrides the count.
RETRIES_ENV = "MODEL_CUSTOMIZATION_EVAL_RETRIES"
DEFAULT_RETRIES = 4
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
RPM_ENV_PREFIX = "MODEL_CUSTOMIZATION_RPM_"  # + OPENAI, ANTHROPIC, BEDROCK: requests per minute allowed
# Finished pieces reach the ledger in small batches this often: an interruption loses at most this much work.
FLUSH_SECONDS = 0.25
PROGRESS_SECONDS = 0.2  # at most this often a progress notification, and always the last one

# The judge sees the end of the conversation, the reference and the answer, each cut to a bounded size: the cost of
# a judge call should not grow with a long transcript.
JUDGE_CONTEXT_CHARS = 6000
JUDGE_ANSWER_CHARS = 3000
# A cloud judge stops after "Score: N"; the room is for models that think before they answer. A local judge gets
# little room, as it would otherwise ramble for the whole allowance on CPU.
JUDGE_MAX_TOKENS = {"local": 32, "cloud": 1024}
JUDGE_SYSTEM = (
    "You grade answers. You are shown the end of a conversation, the reference answer that was given at that point, "
    "and a candidate answer. Judge how well the candidate would serve the user in place of the reference: correct "
    "facts and decisions first, then completeness, then the expected format. Wording may differ from the reference.\n"
    "Reply with one line, exactly: Score: N\n"
    "where N is a whole number from 1 (wrong, unusable or empty) to 10 (as good as the reference)."
    " When a rubric is given, grade by it; when no reference is given, judge the answer on its own merits."
)
PAIRWISE_SYSTEM = (
    "You compare two answers given at the same point of a conversation: answer A and answer B. Decide which would "
    "serve the user better: correct facts and decisions first, then completeness, then the expected format. A "
    "reference answer or a rubric, when shown, says what a good answer is. Their order and length say nothing about "
    "their quality.\n"
    "Reply with one line, exactly: Winner: A, Winner: B, or Winner: tie"
)
# The keys a suite case may have besides messages, and an optional name for it.
SUITE_EXPECTATIONS = ("reference", "json_schema", "regex", "contains", "expected_tool_call", "rubric")
SUITE_KEYS = ("messages", *SUITE_EXPECTATIONS, "id")
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Participant:
    model_id: str  # the key in outputs and summary: canonical for local models, as given for cloud ones
    provider: str
    name: str  # what that provider is called with


def evaluate(
    ws: Workspace,
    dataset_id: str | None = None,
    models: Sequence[str] | None = None,
    *,
    split: str = "test",
    max_tokens: int = 64,
    limit: int | None = None,
    batch_size: int = 8,
    judge: str | None = None,
    progress: ProgressFn | None = None,
    primary_metric: str | None = None,
    suite: str | Path | None = None,
    pairwise_judge: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    resume: str | None = None,
) -> dict[str, Any]:
    """Run an evaluation to the end (see evaluate_async) from plain synchronous code: the CLI, scripts, tests."""
    return anyio.run(
        functools.partial(
            evaluate_async, ws, dataset_id, models, split=split, max_tokens=max_tokens, limit=limit, batch_size=batch_size,
            judge=judge, progress=progress, primary_metric=primary_metric, suite=suite, pairwise_judge=pairwise_judge,
            concurrency=concurrency, resume=resume,
        )
    )


async def evaluate_async(
    ws: Workspace,
    dataset_id: str | None = None,
    models: Sequence[str] | None = None,
    *,
    split: str = "test",
    max_tokens: int = 64,
    limit: int | None = None,
    batch_size: int = 8,
    judge: str | None = None,
    progress: ProgressFn | None = None,
    primary_metric: str | None = None,
    suite: str | Path | None = None,
    pairwise_judge: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    resume: str | None = None,
) -> dict[str, Any]:
    """Evaluate `models` on a dataset's split or a suite, or continue the interrupted evaluation `resume`.

    Up to `concurrency` provider calls run at once (local generation runs one batch at a time: it already uses every
    core); each finished piece is stored in the ledger as it comes, so a run stopped by an error, a cancellation or a
    crash resumes with only what is missing. progress(done, total, note) may be a plain or an async function.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise UserError(f"concurrency must be from 1 to {MAX_CONCURRENCY} (got {concurrency}).")
    prepared = await anyio.to_thread.run_sync(
        functools.partial(
            _prepare, ws, dataset_id, models, split=split, max_tokens=max_tokens, limit=limit, batch_size=batch_size,
            judge=judge, primary_metric=primary_metric, suite=suite, pairwise_judge=pairwise_judge, resume=resume,
        )
    )
    if isinstance(prepared, dict):  # resume of an evaluation that had finished: its stored report
        return prepared
    await _Run(ws, prepared, progress, concurrency).execute()
    return await anyio.to_thread.run_sync(_finish, ws, prepared)


@dataclass
class _Prepared:
    eval_id: str
    plan: dict[str, Any]
    participants: list[Participant]
    judge_by: Participant | None
    pairwise_by: Participant | None
    results: list[dict[str, Any]]
    scored_metrics: list[str]
    comparable: list[str]
    primary_metric: str | None
    suite_path: Path | None
    folder: Path
    stored_pieces: int = 0


def _prepare(
    ws: Workspace,
    dataset_id: str | None,
    models: Sequence[str] | None,
    *,
    split: str,
    max_tokens: int,
    limit: int | None,
    batch_size: int,
    judge: str | None,
    primary_metric: str | None,
    suite: str | Path | None,
    pairwise_judge: str | None,
    resume: str | None,
) -> _Prepared | dict[str, Any]:
    if resume is not None:
        return _prepare_resume(ws, resume, dataset_id, models, suite)
    if not models or len(models) < 2:
        raise UserError("evaluate compares models: give at least two, e.g. the base model and the tuned model_id from check_job.")
    plan = {
        "dataset_id": dataset_id,
        "models": list(models),
        "split": split,
        "max_tokens": max_tokens,
        "limit": limit,
        "batch_size": batch_size,
        "judge": judge,
        "primary_metric": primary_metric,
        "suite": str(resolve_user_path(suite, what="Suite file")[1]) if suite is not None else None,
        "pairwise_judge": pairwise_judge,
    }
    prepared = _plan(ws, "ev-" + secrets.token_hex(6), plan)
    # The ledger's dataset_id column is required: a suite run records where its cases came from instead.
    source = dataset_id if dataset_id is not None else f"suite:{prepared.suite_path}"
    ws.ledger.add_evaluation(
        {
            "id": prepared.eval_id,
            "dataset_id": source,
            "models": [p.model_id for p in prepared.participants],
            "status": "running",
            "summary": {},
            "path": str(prepared.folder),
            "plan": prepared.plan,
        }
    )
    return prepared


def _prepare_resume(ws: Workspace, eval_id: str, dataset_id: str | None, models: Sequence[str] | None, suite: str | Path | None) -> _Prepared | dict[str, Any]:
    row = ws.ledger.get_evaluation(eval_id)
    if not row:
        raise NotFoundError(f"Evaluation {eval_id!r} not found; list_evaluations (or evals://index) shows them. Start a new one without resume.")
    if row["status"] == "succeeded":
        return {**get_evaluation(ws, eval_id, cases=0), "resource_uri": f"evals://{eval_id}", "resumed": False}
    plan = row.get("plan")
    if not plan:
        raise UserError(f"Evaluation {eval_id} was made by an older version that kept no plan, so it cannot be resumed; run evaluate again without resume.")
    asked = {"dataset_id": dataset_id, "models": list(models) if models else None, "suite": str(resolve_user_path(suite, what="Suite file")[1]) if suite else None}
    for key, value in asked.items():
        if value is not None and value != plan.get(key):
            raise UserError(f"resume continues {eval_id} as it was started ({key}={plan.get(key)!r}); leave {key} out, or start a new evaluation without resume.")
    prepared = _plan(ws, eval_id, plan)
    if prepared.plan["cases_sha256"] != plan.get("cases_sha256"):
        raise UserError(f"The cases of {eval_id} changed since it started (was its suite file edited?), so its stored answers no longer fit; start a new evaluation.")
    by_case = {r["case"]: r for r in prepared.results}
    for piece in ws.ledger.evaluation_results(eval_id):
        row_ = by_case.get(piece["case_index"])
        if row_ is None:
            continue
        kind, _, model_id = piece["unit"].partition(":")
        payload = piece["payload"]
        if kind == "answer":
            row_["outputs"].setdefault(model_id, {}).update(payload)
        elif kind == "judge":
            row_.setdefault("judged", {})[model_id] = payload
        elif kind == "pairwise":
            row_.setdefault("pairwise", {})[model_id] = payload
        elif kind == "likelihood":
            row_.setdefault("likelihood", {})[model_id] = payload
        prepared.stored_pieces += 1
    ws.ledger.update_evaluation(eval_id, status="running", error=None)
    return prepared


def _plan(ws: Workspace, eval_id: str, plan: dict[str, Any]) -> _Prepared:
    """Check what was asked and lay out the cases; nothing is generated or paid for here."""
    models, dataset_id, split, suite = plan["models"], plan["dataset_id"], plan["split"], plan["suite"]
    if len(set(models)) != len(models):
        raise UserError(f"The same model is listed twice in {list(models)}; list each model once.")
    if (dataset_id is None) == (suite is None):
        raise UserError("Give either dataset_id (evaluate on its test split) or suite (a JSONL or YAML file of cases), not both.")
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if plan["batch_size"] < 1:
        raise UserError(f"batch_size must be at least 1 (got {plan['batch_size']}).")
    suite_path = Path(suite) if suite is not None else None
    suite_cases = load_suite(suite_path) if suite_path is not None else None
    scored_metrics = suite_metrics(suite_cases) if suite_cases is not None else list(METRICS)
    comparable = [*scored_metrics, "judge_score"] if plan["judge"] is not None else list(scored_metrics)
    primary_metric = plan["primary_metric"]
    if primary_metric is None:
        primary_metric = "token_f1" if "token_f1" in comparable else (comparable[0] if comparable else None)
    elif primary_metric not in comparable:
        hint = " (judge_score needs a judge)" if primary_metric == "judge_score" else ""
        offered = ", ".join(comparable) or "none: the suite's cases give nothing to score; add a judge or expectations"
        raise UserError(f"Unknown primary_metric {primary_metric!r}{hint}; use one of {offered}.")
    if dataset_id is not None:
        get_dataset(ws, dataset_id)
    # Refuse unknown local models and missing keys before anything is generated or paid for.
    participants = [_participant(ws, m) for m in models]
    seen: dict[tuple[str, str], str] = {}
    for given, participant in zip(models, participants):
        key = (participant.provider, participant.name)
        if key in seen:
            raise UserError(f"{seen[key]!r} and {given!r} are the same model; list each model once.")
        seen[key] = given
    judge_by = _participant(ws, plan["judge"]) if plan["judge"] is not None else None
    pairwise_by = _participant(ws, plan["pairwise_judge"]) if plan["pairwise_judge"] is not None else None

    results = _case_rows(ws, dataset_id, split, suite_cases, plan["limit"])
    if not results:
        if suite_path is not None:
            raise UserError(f"Suite {suite_path} has no cases to evaluate on (or limit is 0).")
        raise UserError(f"Dataset {dataset_id} has no {split} examples to evaluate on. Build it with a test_fraction above 0.")
    fingerprint = _fingerprint(results)
    return _Prepared(
        eval_id=eval_id,
        plan={**plan, "cases_sha256": fingerprint},
        participants=participants,
        judge_by=judge_by,
        pairwise_by=pairwise_by,
        results=results,
        scored_metrics=scored_metrics,
        comparable=comparable,
        primary_metric=primary_metric,
        suite_path=suite_path,
        folder=ws.settings.evals_dir / eval_id,
    )


def _case_rows(ws: Workspace, dataset_id: str | None, split: str, suite_cases: list[dict[str, Any]] | None, limit: int | None) -> list[dict[str, Any]]:
    """The cases laid out for a run: prompt, reference, a suite case's expectations, and room for the outputs."""
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
        split_cases = [prompt_and_reference(example) for example in read_split(ws, dataset_id, split)]
        results = [{"case": index, "prompt": prompt, "reference": reference, "outputs": {}} for index, (prompt, reference) in enumerate(split_cases)]
    return results[: max(limit, 0)] if limit is not None else results


def _fingerprint(results: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps([[r["prompt"], r["reference"], r.get("expects")] for r in results], sort_keys=True).encode()).hexdigest()


def cases_fingerprint(ws: Workspace, *, dataset_id: str | None = None, split: str = "test", suite: str | Path | None = None) -> dict[str, Any]:
    """{cases, cases_sha256} of a dataset split or a suite file as they are now: an evaluation whose plan has the same
    sha256 (and no limit) was run on exactly these cases."""
    if (dataset_id is None) == (suite is None):
        raise UserError("Give either dataset_id or suite.")
    if dataset_id is not None:
        get_dataset(ws, dataset_id)
    suite_cases = load_suite(resolve_user_path(suite, what="Suite file")[1]) if suite is not None else None
    results = _case_rows(ws, dataset_id, split, suite_cases, None)
    if not results:
        raise UserError(f"{suite or dataset_id} has no cases to evaluate on.")
    return {"cases": len(results), "cases_sha256": _fingerprint(results)}


class _ProviderGate:
    """Spaces one provider's calls to its requests-per-minute limit and holds them all back after a rate-limit reply.

    Called from worker threads; the waits happen outside the lock so that other providers' calls go on."""

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.next_start = 0.0
        self.held_until = 0.0
        self.lock = threading.Lock()

    def wait_turn(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start, self.held_until)
            self.next_start = start + self.interval
        if start > now:
            time.sleep(start - now)

    def hold(self, seconds: float) -> None:
        with self.lock:
            self.held_until = max(self.held_until, time.monotonic() + seconds)


def requests_per_minute(provider: str) -> float | None:
    """The operator's limit for a provider from MODEL_CUSTOMIZATION_RPM_<PROVIDER> (e.g. ..._RPM_OPENAI=500); None: no limit."""
    name = RPM_ENV_PREFIX + provider.upper()
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UserError(f"{name}={raw!r}: expected the number of requests per minute allowed, above 0 (e.g. 500).")
    return value


def _retries() -> int:
    raw = os.environ.get(RETRIES_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRIES
    if not raw.isdigit():
        raise UserError(f"{RETRIES_ENV}={raw!r}: expected how many times to retry a failed provider call, 0 or more.")
    return int(raw)


class _Run:
    """Generates, judges and stores the missing pieces of one evaluation, several at a time."""

    def __init__(self, ws: Workspace, prepared: _Prepared, progress: ProgressFn | None, concurrency: int) -> None:
        self.ws = ws
        self.prepared = prepared
        self.progress = progress
        self.threads = anyio.CapacityLimiter(concurrency)
        self.local_lock = threading.Lock()  # one local generation at a time: each already uses every core
        self.gates: dict[str, _ProviderGate] = {}
        self.retries = _retries()
        self.retried = 0
        self.pending: list[tuple[int, str, dict[str, Any]]] = []
        self.flush_lock = anyio.Lock()
        self.failure: BaseException | None = None
        cases, models = len(prepared.results), len(prepared.participants)
        local_models = sum(1 for p in prepared.participants if p.provider == "local")
        scored = sum(1 for r in prepared.results if r["reference"] is not None)
        self.total = (
            cases * models * (2 if prepared.judge_by else 1) + (cases * (models - 1) if prepared.pairwise_by else 0) + scored * local_models
        )
        self.done = prepared.stored_pieces
        self.last_report = 0.0
        self.answered: dict[str, int] = {}  # answers held per model, counted once and then kept up to date

    # --- provider calls (in worker threads) --------------------------------------------------------------------
    def call(self, participant: Participant, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
        """One answer, spaced to the provider's rate limit; a transient failure is retried with growing waits."""
        if participant.provider == "local":
            with self.local_lock:
                return chat_with_provider(self.ws, "local", participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0)
        gate = self.gates.setdefault(participant.provider, _ProviderGate(requests_per_minute(participant.provider)))
        for attempt in range(self.retries + 1):
            gate.wait_turn()
            try:
                return chat_with_provider(self.ws, participant.provider, participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0)
            except TransientError as error:
                if attempt == self.retries:
                    raise
                wait = error.retry_after if error.retry_after is not None else min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**attempt)
                gate.hold(wait * random.uniform(1.0, 1.25))  # a little jitter so waiting calls do not return in one burst
                self.retried += 1
        raise AssertionError("unreachable")

    # --- the run ---------------------------------------------------------------------------------------------
    async def execute(self) -> None:
        prepared = self.prepared
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(self._flush_every, FLUSH_SECONDS)
                await self._phase(self._answer_tasks())
                if prepared.judge_by or prepared.pairwise_by:
                    await self._phase(self._judge_tasks())
                background.cancel_scope.cancel()
        except BaseException as raised:
            error = raised
            while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:  # the task group wraps what the phase raised
                error = error.exceptions[0]
            with anyio.CancelScope(shield=True):
                await self._flush()
                stored = self.done
                reason = str(error) if isinstance(error, UserError) else f"stopped ({type(error).__name__})"
                await anyio.to_thread.run_sync(functools.partial(self.ws.ledger.update_evaluation, prepared.eval_id, status="interrupted", error=reason))
            if isinstance(error, UserError):
                raise type(error)(
                    f"{error} Evaluation {prepared.eval_id} stopped with {stored} of {self.total} pieces done and stored: "
                    f"once the cause is fixed, evaluate with resume={prepared.eval_id!r} continues where it stopped."
                ) from error
            if error is not raised:
                raise error from None
            raise
        await self._flush()

    async def _phase(self, tasks: list[Callable[[], Awaitable[None]]]) -> None:
        async with anyio.create_task_group() as group:
            for task in tasks:
                group.start_soon(self._guarded, task, group.cancel_scope)
        if self.failure is not None:
            raise self.failure

    async def _guarded(self, task: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await task()
        except Exception as error:  # the first failure stops the phase; what finished is kept
            if self.failure is None:
                self.failure = error
            scope.cancel()

    def _answer_tasks(self) -> list[Callable[[], Awaitable[None]]]:
        prepared, tasks = self.prepared, []
        for participant in prepared.participants:
            missing = [r for r in prepared.results if participant.model_id not in r["outputs"]]
            if participant.provider == "local":
                size = prepared.plan["batch_size"]
                tasks += [functools.partial(self._local_batch, participant, missing[i : i + size]) for i in range(0, len(missing), size)]
                # Perplexity of the references: a local model exposes its token probabilities.
                unscored = [r for r in prepared.results if r["reference"] is not None and participant.model_id not in r.get("likelihood", {})]
                tasks += [functools.partial(self._local_likelihood, participant, unscored[i : i + size]) for i in range(0, len(unscored), size)]
            else:
                tasks += [functools.partial(self._cloud_answer, participant, row) for row in missing]
        return tasks

    def _judge_tasks(self) -> list[Callable[[], Awaitable[None]]]:
        prepared, tasks = self.prepared, []
        if prepared.judge_by:
            for participant in prepared.participants:
                tasks += [functools.partial(self._judge, participant, r) for r in prepared.results if participant.model_id not in r.get("judged", {})]
        if prepared.pairwise_by:
            for candidate in prepared.participants[1:]:
                tasks += [functools.partial(self._pairwise, candidate, r) for r in prepared.results if candidate.model_id not in r.get("pairwise", {})]
        return tasks

    async def _local_batch(self, participant: Participant, rows: list[dict[str, Any]]) -> None:
        max_tokens = self.prepared.plan["max_tokens"]

        def generate() -> list[dict[str, Any]]:
            with self.local_lock:
                answers = generate_greedy_batch(self.ws, participant.name, [r["prompt"] for r in rows], max_tokens=max_tokens, batch_size=len(rows))
            return [self._output(participant, row, answer) for row, answer in zip(rows, answers)]

        outputs = await anyio.to_thread.run_sync(generate, limiter=self.threads)
        for row, output in zip(rows, outputs):
            self._store_answer(participant, row, output)
        await self._advance(len(rows), f"{participant.model_id}: {self._answered(participant)}/{len(self.prepared.results)} cases")

    async def _local_likelihood(self, participant: Participant, rows: list[dict[str, Any]]) -> None:
        from model_customization.evaluation.perplexity import reference_log_likelihoods

        def score() -> list[dict[str, Any]]:
            with self.local_lock:
                return reference_log_likelihoods(self.ws, participant.name, [(r["prompt"], r["reference"]) for r in rows], batch_size=len(rows))

        scores = await anyio.to_thread.run_sync(score, limiter=self.threads)
        for row, likelihood in zip(rows, scores):
            row.setdefault("likelihood", {})[participant.model_id] = likelihood
            self.pending.append((row["case"], f"likelihood:{participant.model_id}", likelihood))
        await self._advance(len(rows), f"{participant.model_id}: reference likelihoods")

    async def _cloud_answer(self, participant: Participant, row: dict[str, Any]) -> None:
        def answer() -> dict[str, Any]:
            return self._output(participant, row, self.call(participant, row["prompt"], self.prepared.plan["max_tokens"]))

        try:
            output = await anyio.to_thread.run_sync(answer, limiter=self.threads)
        except UserError as error:
            raise type(error)(f"{participant.model_id} could not answer case {row['case']}: {error}") from error
        self._store_answer(participant, row, output)
        await self._advance(1, f"{participant.model_id}: {self._answered(participant)}/{len(self.prepared.results)} cases")

    @staticmethod
    def _output(participant: Participant, row: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        """An answer with its scores, tokens and cost (in the worker thread: scoring can take a moment)."""
        output = _scored(answer, row)
        output["prompt_tokens"] = answer.get("prompt_tokens")
        output["completion_tokens"] = answer.get("completion_tokens")
        output["cost_usd"] = answer_cost_usd(participant.provider, participant.name, answer.get("prompt_tokens"), answer.get("completion_tokens"))
        return output

    def _store_answer(self, participant: Participant, row: dict[str, Any], output: dict[str, Any]) -> None:
        self._answered(participant)
        self.answered[participant.model_id] += 1
        row["outputs"][participant.model_id] = output
        self.pending.append((row["case"], f"answer:{participant.model_id}", output))

    def _answered(self, participant: Participant) -> int:
        return self.answered.setdefault(participant.model_id, sum(1 for r in self.prepared.results if participant.model_id in r["outputs"]))

    async def _judge(self, participant: Participant, row: dict[str, Any]) -> None:
        judge_by = self.prepared.judge_by
        assert judge_by is not None
        verdict = await anyio.to_thread.run_sync(
            functools.partial(
                judge_answer, self.ws, judge_by, row["prompt"], row["reference"], row["outputs"][participant.model_id]["text"],
                rubric=row.get("expects", {}).get("rubric"), call=self.call,
            ),
            limiter=self.threads,
        )
        row.setdefault("judged", {})[participant.model_id] = verdict
        self.pending.append((row["case"], f"judge:{participant.model_id}", verdict))
        await self._advance(1, f"judge {judge_by.model_id} on {participant.model_id}: case {row['case'] + 1}/{len(self.prepared.results)}")

    async def _pairwise(self, candidate: Participant, row: dict[str, Any]) -> None:
        pairwise_by, baseline = self.prepared.pairwise_by, self.prepared.participants[0].model_id
        assert pairwise_by is not None
        verdict = await anyio.to_thread.run_sync(
            functools.partial(
                judge_pair, self.ws, pairwise_by, row["prompt"], row["reference"], row["outputs"][baseline]["text"],
                row["outputs"][candidate.model_id]["text"], rubric=row.get("expects", {}).get("rubric"), call=self.call,
            ),
            limiter=self.threads,
        )
        entry = {"baseline": baseline, "candidate": candidate.model_id, **verdict}
        row.setdefault("pairwise", {})[candidate.model_id] = entry
        self.pending.append((row["case"], f"pairwise:{candidate.model_id}", entry))
        await self._advance(1, f"pairwise judge {pairwise_by.model_id}, {baseline} vs {candidate.model_id}: case {row['case'] + 1}/{len(self.prepared.results)}")

    # --- progress and storage --------------------------------------------------------------------------------
    async def _advance(self, count: int, note: str) -> None:
        self.done += count
        now = time.monotonic()
        if self.progress is None or (now - self.last_report < PROGRESS_SECONDS and self.done < self.total):
            return
        self.last_report = now
        reported = self.progress(self.done, self.total, note)
        if inspect.isawaitable(reported):
            await reported

    async def _flush_every(self, seconds: float) -> None:
        while True:
            await anyio.sleep(seconds)
            await self._flush()

    async def _flush(self) -> None:
        async with self.flush_lock:
            batch, self.pending = self.pending, []
            if batch:
                await anyio.to_thread.run_sync(self.ws.ledger.add_evaluation_results, self.prepared.eval_id, batch)


def _finish(ws: Workspace, prepared: _Prepared) -> dict[str, Any]:
    """Summaries, statistics and the report files of a run whose pieces are all done; marks it succeeded."""
    results = prepared.results
    for row in results:  # judge ratings and reference likelihoods sit next to the answer they belong to
        for model_id, verdict in row.pop("judged", {}).items():
            row["outputs"][model_id].update(verdict)
        for model_id, likelihood in row.pop("likelihood", {}).items():
            row["outputs"][model_id].update(reference_nll=likelihood["nll"], reference_tokens=likelihood["reference_tokens"])
    model_ids = [p.model_id for p in prepared.participants]
    judge_by, pairwise_by = prepared.judge_by, prepared.pairwise_by
    pairwise_report = None
    if pairwise_by:
        pairwise_report = {
            "judge": pairwise_by.model_id,
            "provider": pairwise_by.provider,
            "rule": "each case judged in both orders; a win counts only when both orders agree, anything else is a tie",
            "comparisons": [_pairwise_summary(results, model_ids[0], candidate) for candidate in model_ids[1:]],
        }
    summary_metrics = [*prepared.scored_metrics, *MEASUREMENTS] if prepared.suite_path is not None else list(METRICS)
    summary = {p.model_id: {**_summary(results, p.model_id, summary_metrics, judged=judge_by is not None), **_costs(results, p)} for p in prepared.participants}
    plan = prepared.plan
    report = {
        "id": prepared.eval_id,
        "dataset_id": plan["dataset_id"],
        "suite": str(prepared.suite_path) if prepared.suite_path is not None else None,
        "split": plan["split"] if plan["dataset_id"] is not None else None,
        "models": model_ids,
        "cases": len(results),
        "summary": summary,
        "judge": {"model": judge_by.model_id, "provider": judge_by.provider, "scale": "1-10, judge_score = (n-1)/9"} if judge_by else None,
        "pairwise": pairwise_report,
        "primary_metric": prepared.primary_metric,
        "confidence_intervals": {m: _confidence_intervals(results, m, prepared.comparable) for m in model_ids},
        "comparisons": _comparisons(results, model_ids, prepared.primary_metric) if prepared.primary_metric is not None else [],
        "prices": {"read_on": CHAT_PRICES_READ_ON, "source": CHAT_PRICES_SOURCE, "override": PRICES_ENV},
    }
    final_dir = prepared.folder
    ws.settings.evals_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{prepared.eval_id}-", dir=ws.settings.evals_dir))
    try:
        (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        with (staging / "cases.jsonl").open("w", encoding="utf-8") as handle:
            for row in results:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        _write_human_report(staging, report, results)
        if final_dir.exists():  # a run that crashed after writing its folder but before the ledger knew
            shutil.rmtree(final_dir)
        os.replace(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    ws.ledger.update_evaluation(prepared.eval_id, status="succeeded", summary=summary, error=None)
    return {**report, "resource_uri": f"evals://{prepared.eval_id}", "resumed": prepared.stored_pieces > 0}


def _write_human_report(folder: Path, report: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """report.md and chart.png next to the JSON; a chart that cannot be drawn must not lose the evaluation."""
    from model_customization.evaluation.report import write_report_files

    try:
        write_report_files(folder, report, results)
    except UserError:
        pass  # nothing to chart (e.g. a suite with no 0-1 metric): the Markdown and JSON still stand


def _costs(results: list[dict[str, Any]], participant: Participant) -> dict[str, Any]:
    """Latency and what the answers cost: mean and 95th percentile seconds, token totals, USD (None when unknown)."""
    outputs = [r["outputs"][participant.model_id] for r in results]
    seconds = sorted(o["seconds"] for o in outputs if o.get("seconds") is not None)
    costs = [o.get("cost_usd") for o in outputs]
    tokens = {key: [o.get(key) for o in outputs] for key in ("prompt_tokens", "completion_tokens")}
    scored = [o for o in outputs if o.get("reference_nll") is not None]
    tokens_scored = sum(o["reference_tokens"] for o in scored)
    return {
        # exp(mean negative log-likelihood per reference token): local models only, where token probabilities are known.
        "perplexity": round(math.exp(sum(o["reference_nll"] for o in scored) / tokens_scored), 4) if tokens_scored else None,
        "latency_seconds": round(fmean(seconds), 4) if seconds else None,
        "latency_p95_seconds": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 4) if seconds else None,
        "prompt_tokens": sum(tokens["prompt_tokens"]) if all(t is not None for t in tokens["prompt_tokens"]) else None,
        "completion_tokens": sum(tokens["completion_tokens"]) if all(t is not None for t in tokens["completion_tokens"]) else None,
        "cost_usd": round(sum(costs), 6) if all(c is not None for c in costs) else None,
    }


def _participant(ws: Workspace, model: str) -> Participant:
    provider, name = check_chat_model(ws, model)
    return Participant(name if provider == "local" else model.strip(), provider, name)


def _scored(answer: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A suite case gets every metric it provides for; a dataset case the reference metrics."""
    if "expects" in row:
        scores = score_case(answer, row["expects"])
    else:
        scores = {name: fn(answer["text"], row["reference"]) for name, fn in METRICS.items()}
    return {"text": answer["text"], "seconds": answer["seconds"], **scores}


def _summary(results: list[dict[str, Any]], model_id: str, metric_names: list[str], *, judged: bool) -> dict[str, Any]:
    """Mean of each metric over the cases that have it (a suite's cases need not all provide the same checks)."""
    outputs = [r["outputs"][model_id] for r in results]
    summary: dict[str, Any] = {}
    for name in metric_names:
        values = [o[name] for o in outputs if o.get(name) is not None]
        summary[name] = round(fmean(values), 4) if values else None
    if judged:
        scores = [o["judge_score"] for o in outputs if o.get("judge_score") is not None]
        summary["judge_score"] = round(fmean(scores), 4) if scores else None  # mean over the cases judged
        summary["judged_cases"] = len(scores)
        summary["judge_errors"] = sum(1 for o in outputs if o.get("judge_error"))
    return summary


def _confidence_intervals(results: list[dict[str, Any]], model_id: str, metric_names: list[str]) -> dict[str, Any]:
    """95% bootstrap interval of each metric's mean, over the cases that have a score for it."""
    intervals = {}
    for name in metric_names:
        values = [r["outputs"][model_id].get(name) for r in results]
        intervals[name] = mean_ci([v for v in values if v is not None])
    return intervals


def _comparisons(results: list[dict[str, Any]], model_ids: list[str], metric: str) -> list[dict[str, Any]]:
    """Each later model against the first on `metric`, paired over the cases every model has a score for."""
    paired_cases = [r for r in results if all(r["outputs"][m].get(metric) is not None for m in model_ids)]
    scores = {m: [r["outputs"][m][metric] for r in paired_cases] for m in model_ids}
    return [{"baseline": c["baseline"], "candidate": c["candidate"], "metric": metric, **c} for c in compare(scores, baseline=model_ids[0])]


# --- the judge -----------------------------------------------------------------------------------------------
def _conversation_and_guides(prompt: list[dict[str, Any]], reference: str | None, rubric: str | None) -> str:
    lines = [f"{m.get('role', 'user').capitalize()}: {m.get('content') or ''}" for m in prompt]
    conversation = "\n\n".join(lines)
    if len(conversation) > JUDGE_CONTEXT_CHARS:
        conversation = "[... earlier turns cut]\n" + conversation[-JUDGE_CONTEXT_CHARS:]
    text = f"<conversation>\n{conversation}\n</conversation>\n\n"
    if reference is not None:
        text += f"<reference_answer>\n{_cut(reference)}\n</reference_answer>\n\n"
    if rubric:
        text += f"<rubric>\n{_cut(rubric)}\n</rubric>\n\n"
    return text


def judge_messages(prompt: list[dict[str, Any]], reference: str | None, answer: str, rubric: str | None = None) -> list[dict[str, str]]:
    """The rubric conversation sent to the judge for one answer."""
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {
            "role": "user",
            "content": (
                _conversation_and_guides(prompt, reference, rubric)
                + f"<candidate_answer>\n{_cut(answer) or '(empty)'}\n</candidate_answer>\n\n"
                "Rate the candidate answer. Reply with one line: Score: N (N from 1 to 10)."
            ),
        },
    ]


def pairwise_messages(prompt: list[dict[str, Any]], reference: str | None, answer_a: str, answer_b: str, rubric: str | None = None) -> list[dict[str, str]]:
    """The conversation sent to a pairwise judge for one order of two answers."""
    return [
        {"role": "system", "content": PAIRWISE_SYSTEM},
        {
            "role": "user",
            "content": (
                _conversation_and_guides(prompt, reference, rubric)
                + f"<answer_a>\n{_cut(answer_a) or '(empty)'}\n</answer_a>\n\n"
                + f"<answer_b>\n{_cut(answer_b) or '(empty)'}\n</answer_b>\n\n"
                "Which answer is better? Reply with one line: Winner: A, Winner: B, or Winner: tie."
            ),
        },
    ]


_LABELLED = re.compile(r"\b(?:score|rating|grade)\b[^0-9\n]{0,12}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\W*(-?\d+(?:\.\d+)?)\W*$")


def parse_judge_rating(reply: str) -> int:
    """The 1-10 rating in a judge's reply ("Score: 8", "**Score:** 8/10", "7 out of 10", "9"); ValueError says why not."""
    text = (reply or "").strip()
    if not text:
        raise ValueError("the judge's reply was empty")
    found = [m.group(1) for m in _LABELLED.finditer(text)] or [m.group(1) for m in _OUT_OF_TEN.finditer(text)]
    if not found and (bare := _BARE_NUMBER.match(text)):
        found = [bare.group(1)]
    if not found:
        raise ValueError("the judge's reply has no 'Score: N'")
    values = {float(v) for v in found}
    if len(values) > 1:
        raise ValueError(f"the judge's reply gives conflicting scores ({', '.join(dict.fromkeys(found))})")
    value = values.pop()
    if not value.is_integer():
        raise ValueError(f"the judge gave {found[0]}, not a whole number from 1 to 10")
    if not 1 <= value <= 10:
        raise ValueError(f"the judge gave {int(value)}, outside 1-10")
    return int(value)


CallFn = Callable[[Participant, list[dict[str, Any]], int], dict[str, Any]]


def _direct_call(ws: Workspace) -> CallFn:
    def call(participant: Participant, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
        return chat_with_provider(ws, participant.provider, participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0)

    return call


def judge_answer(
    ws: Workspace,
    judge: Participant,
    prompt: list[dict[str, Any]],
    reference: str | None,
    answer: str,
    *,
    rubric: str | None = None,
    call: CallFn | None = None,
) -> dict[str, Any]:
    """{judge_score (0-1) | None, judge_rating (1-10) | None, judge_reply, judge_error} for one answer.

    A judge that refuses the request is recorded on the case; one that is only unavailable for now (TransientError,
    after the caller's retries) stops the run, so that a resumed evaluation asks again rather than count an error."""
    max_tokens = JUDGE_MAX_TOKENS["local" if judge.provider == "local" else "cloud"]
    messages = judge_messages(prompt, reference, answer, rubric)
    try:
        reply = (call or _direct_call(ws))(judge, messages, max_tokens)
    except TransientError:
        raise
    except UserError as error:
        return {"judge_score": None, "judge_rating": None, "judge_reply": None, "judge_error": f"judge call failed: {error}"}
    try:
        rating = parse_judge_rating(reply["text"])
    except ValueError as error:
        return {"judge_score": None, "judge_rating": None, "judge_reply": reply["text"], "judge_error": str(error)}
    return {"judge_score": round((rating - 1) / 9, 4), "judge_rating": rating, "judge_reply": reply["text"], "judge_error": None}


_WINNER = re.compile(r"\b(?:winner|better(?: answer)?|choice|verdict)\b\W{0,6}(A|B|tie|neither|equal)\b", re.IGNORECASE)
_BARE_CHOICE = re.compile(r"^\W*(A|B|tie)\W*$", re.IGNORECASE)


def parse_pairwise_choice(reply: str) -> str:
    """"A", "B" or "tie" from a pairwise judge's reply ("Winner: B", "**Winner:** A", "tie"); ValueError says why not."""
    text = (reply or "").strip()
    if not text:
        raise ValueError("the judge's reply was empty")
    found = [m.group(1) for m in _WINNER.finditer(text)]
    if not found and (bare := _BARE_CHOICE.match(text)):
        found = [bare.group(1)]
    if not found:
        raise ValueError("the judge's reply has no 'Winner: A', 'Winner: B' or 'Winner: tie'")
    choices = {c.upper() if len(c) == 1 else "tie" for c in found}
    if len(choices) > 1:
        raise ValueError(f"the judge's reply names more than one winner ({', '.join(dict.fromkeys(found))})")
    return choices.pop()


def judge_pair(
    ws: Workspace,
    judge: Participant,
    prompt: list[dict[str, Any]],
    reference: str | None,
    baseline_answer: str,
    candidate_answer: str,
    *,
    rubric: str | None = None,
    call: CallFn | None = None,
) -> dict[str, Any]:
    """Ask the judge twice, baseline first then candidate first. Returns each order's reply, parsed choice and error,
    and the winner ("baseline", "candidate" or "tie"): a model wins only when it is chosen in both orders."""
    max_tokens = JUDGE_MAX_TOKENS["local" if judge.provider == "local" else "cloud"]
    orders = {"baseline_first": (baseline_answer, candidate_answer, "baseline", "candidate"), "candidate_first": (candidate_answer, baseline_answer, "candidate", "baseline")}
    record: dict[str, Any] = {}
    picks = []
    for order, (answer_a, answer_b, model_a, model_b) in orders.items():
        messages = pairwise_messages(prompt, reference, answer_a, answer_b, rubric)
        entry: dict[str, Any] = {"reply": None, "choice": None, "error": None}
        try:
            entry["reply"] = (call or _direct_call(ws))(judge, messages, max_tokens)["text"]
            entry["choice"] = parse_pairwise_choice(entry["reply"])
        except TransientError:
            raise
        except UserError as error:
            entry["error"] = f"judge call failed: {error}"
        except ValueError as error:
            entry["error"] = str(error)
        record[order] = entry
        picks.append({"A": model_a, "B": model_b, "tie": "tie"}.get(entry["choice"] or "", None))
    record["winner"] = picks[0] if picks[0] == picks[1] and picks[0] in ("baseline", "candidate") else "tie"
    return record


def _pairwise_summary(results: list[dict[str, Any]], baseline: str, candidate: str) -> dict[str, Any]:
    """Wins, losses and ties of the candidate against the baseline, with a sign test and a verdict on them."""
    winners = [r["pairwise"][candidate]["winner"] for r in results]
    errors = sum(1 for r in results for order in ("baseline_first", "candidate_first") if r["pairwise"][candidate][order]["error"])
    # A win is 1 for its model and 0 for the other; a tie 0 for both: the paired difference is then +1, -1 or 0.
    baseline_points = [1.0 if w == "baseline" else 0.0 for w in winners]
    candidate_points = [1.0 if w == "candidate" else 0.0 for w in winners]
    test = paired_difference(baseline_points, candidate_points, name_a=baseline, name_b=candidate)
    return {
        "baseline": baseline,
        "candidate": candidate,
        "wins": test["wins_b"],
        "losses": test["wins_a"],
        "ties": test["ties"],
        "judge_errors": errors,
        "n": test["n"],
        "mean_difference": test["mean_difference"],
        "low": test["low"],
        "high": test["high"],
        "sign_test_p": test["sign_test_p"],
        "significant": test["significant"],
        "verdict": test["verdict"],
    }


# --- suite files -----------------------------------------------------------------------------------------------
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
    from model_customization.paths import check_readable

    check_readable(path, what="Suite file")  # inside the allowed roots (paths.py), links followed
    if not path.is_file():
        raise UserError(f"Suite file {path} not found. Give the path of a .jsonl or .yaml file of cases.")
    suffix = path.suffix.lower()
    raw = path.read_bytes()
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
        _check_suite_case(case, where)
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
        from model_customization.evaluation.metrics import _schema_validator

        try:
            _schema_validator(json.dumps(case["json_schema"], sort_keys=True))
        except UserError as error:
            raise UserError(f"{where}: {error}") from None
    call = case.get("expected_tool_call")
    if "expected_tool_call" in case and not (isinstance(call, dict) and isinstance(call.get("name"), str)):
        raise UserError(f"{where}: expected_tool_call must be {{name, arguments}}.")


def _cut(text: str) -> str:
    return text if len(text) <= JUDGE_ANSWER_CHARS else text[:JUDGE_ANSWER_CHARS] + " [... cut]"


def get_evaluation(ws: Workspace, eval_id: str, cases: int = 20) -> dict[str, Any]:
    row = ws.ledger.get_evaluation(eval_id)
    if not row:
        raise NotFoundError(f"Evaluation {eval_id!r} not found. Run evaluate to create one.")
    if row["status"] != "succeeded":
        plan = row.get("plan") or {}
        return {
            "id": eval_id,
            "status": row["status"],
            "error": row.get("error"),
            "dataset_id": plan.get("dataset_id"),
            "suite": plan.get("suite"),
            "models": row["models"],
            "pieces_stored": len(ws.ledger.evaluation_results(eval_id)),
            "next_step": f"evaluate with resume={eval_id!r} continues it" if row["status"] == "interrupted" else "it is still running",
        }
    folder = Path(row["path"])
    report = {**json.loads((folder / "report.json").read_text(encoding="utf-8")), "status": "succeeded"}
    with (folder / "cases.jsonl").open(encoding="utf-8") as handle:
        report["per_case"] = [json.loads(line) for _, line in zip(range(cases), handle)]
    return report
