"""Evaluate two or more models on a dataset's held-out split or a suite file: plan, generate, score, judge, store.

Local models answer greedily in batches (repeatable, and fast on CPU); cloud models answer through the chat router
one case at a time at temperature 0, several at once, spaced to each provider's requests-per-minute limit and retried
after transient failures. Every finished piece (an answer, a judge's verdict, a reference likelihood) is stored in
the ledger as it comes, so an interrupted run resumes with only what is missing. The pieces around it:
suites.py (the cases and their metrics), judges.py (the 1-10 and pairwise judges), results.py (per-model summaries
and comparisons, reading a stored evaluation back) and report.py (the folder served as `evals://{id}`).
"""

from __future__ import annotations

import functools
import inspect
import os
import random
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from model_customization.datasets.build import get_dataset
from model_customization.datasets.redaction import redact_record
from model_customization.errors import NotFoundError, TransientError, UserError
from model_customization.evaluation.judges import PAIRWISE_SYSTEM, judge_answer, judge_pair, pairwise_summary, parse_judge_rating, parse_pairwise_choice
from model_customization.evaluation.limits import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from model_customization.evaluation.metrics import MEASUREMENTS, METRICS
from model_customization.evaluation.participants import Participant, resolve_participant, tools_keyword
from model_customization.evaluation.perplexity import reference_log_likelihoods
from model_customization.evaluation.pricing import CHAT_PRICES_READ_ON, CHAT_PRICES_SOURCE, PRICES_ENV, answer_cost_usd
from model_customization.evaluation.report import write_evaluation_folder
from model_customization.evaluation.results import comparisons, confidence_intervals, costs, get_evaluation, metric_means
from model_customization.evaluation.suites import case_rows, case_tools, cases_fingerprint, dataset_cases, cases_sha256, load_suite, score_answer, suite_metrics
from model_customization.paths import resolve_user_path
from model_customization.evaluation.judges import judge_messages, pairwise_messages
from model_customization.jobs.spending import NO_CONSENT, Allowance, Consent, approve_spend, authorize_chat_operation
from model_customization.providers.chat import chat_quote_usd, chat_with_provider
from model_customization.providers.registry import is_paid
from model_customization.providers.local.inference import generate_greedy_batch
from model_customization.workspace import Workspace

# Names other modules and tests import from here, where they lived before the runner was split.
__all__ = [
    "DEFAULT_CONCURRENCY", "MAX_CONCURRENCY", "PAIRWISE_SYSTEM", "Participant", "cases_fingerprint", "evaluate", "evaluate_async",
    "get_evaluation", "load_suite", "parse_judge_rating", "parse_pairwise_choice", "requests_per_minute",
]

ProgressFn = Callable[[int, int, str], "None | Awaitable[None]"]
SPLITS = ("train", "validation", "test")

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


def evaluate(ws: Workspace, dataset_id: str | None = None, models: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
    """Run an evaluation to the end from plain synchronous code (the CLI, scripts, tests); `options` are
    evaluate_async's keyword arguments."""
    return anyio.run(functools.partial(evaluate_async, ws, dataset_id, models, **options))


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
    consent: Consent = NO_CONSENT,
) -> dict[str, Any]:
    """Evaluate `models` on a dataset's split or a suite, or continue the interrupted evaluation `resume`.

    Its paid calls (cloud answers, a cloud judge's ratings, a pairwise judge's two calls per case per pair) are quoted
    together before anything is recorded or sent, and run only once the spending guard approved the quote (the
    budgets, or `consent`); each call then draws its own upper bound from that approval.

    Up to `concurrency` provider calls run at once (local generation runs one batch at a time: it already uses every
    core); each finished piece is stored in the ledger as it comes, so a run stopped by an error, a cancellation or a
    crash resumes with only what is missing. progress(done, total, note) may be a plain or an async function.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise UserError(f"concurrency must be from 1 to {MAX_CONCURRENCY} (got {concurrency}).")
    asked = {
        "dataset_id": dataset_id,
        "models": list(models) if models else None,
        "split": split,
        "max_tokens": max_tokens,
        "limit": limit,
        "batch_size": batch_size,
        "judge": judge,
        "primary_metric": primary_metric,
        "suite": suite,
        "pairwise_judge": pairwise_judge,
    }
    prepared = await anyio.to_thread.run_sync(_prepare, ws, asked, resume, consent)
    if isinstance(prepared, dict):  # resume of an evaluation that had finished: its stored report
        return prepared
    try:
        await _Run(ws, prepared, progress, concurrency).execute()
    finally:
        if prepared.allowance is not None:
            await anyio.to_thread.run_sync(prepared.allowance.close)
    return await anyio.to_thread.run_sync(_finish, ws, prepared)


def quote_evaluation(ws: Workspace, asked: dict[str, Any], resume: str | None) -> tuple[str, float | None]:
    """(the paid providers, the most the evaluation's paid calls can cost) for evaluate_async's arguments; records
    nothing. A resumed run is quoted as a whole (its stored pieces are not looked at here)."""
    if resume is not None:
        row = ws.store.evaluations.get(resume)
        if not row or not row.get("plan") or row["status"] == "succeeded":
            return "", 0.0
        prepared = _plan(ws, resume, row["plan"])
    else:
        if not asked["models"] or len(asked["models"]) < 2:
            return "", 0.0
        suite = asked["suite"]
        plan = {**asked, "suite": str(resolve_user_path(suite, what="Suite file")[1]) if suite is not None else None}
        prepared = _plan(ws, "ev-quote", plan)
    return _paid_calls_quote(prepared)


def check_evaluation_spending(ws: Workspace, asked: dict[str, Any], resume: str | None, consent: Consent = NO_CONSENT) -> None:
    """Raise ConfirmationNeeded when evaluate_async with these arguments would need a person (nothing is recorded)."""
    providers, quote = quote_evaluation(ws, asked, resume)
    if quote != 0:
        approve_spend(ws, providers, quote, consent, what="evaluation's paid calls", by_argument=False)


def _paid_calls_quote(prepared: _Prepared) -> tuple[str, float | None]:
    """Every paid call the run still has to make, each at its upper bound: answers (prompt + max_tokens), judge
    ratings and pairwise verdicts (both orders), with each answer taken at max_tokens of up to 8 bytes."""
    max_tokens = prepared.plan["max_tokens"]
    longest_answer = "x" * (max_tokens * 8)
    providers: set[str] = set()
    total, unknown = 0.0, False

    def add(participant: Participant, messages: list[dict[str, Any]], tokens: int, tools: list[dict[str, Any]] | None = None) -> None:
        nonlocal total, unknown
        if not is_paid(participant.provider):
            return
        providers.add(participant.provider)
        bound = chat_quote_usd(participant.provider, participant.name, messages, tokens, tools)
        if bound is None:
            unknown = True
        else:
            total += bound

    for row in prepared.results:
        rubric = row.get("expects", {}).get("rubric")
        for participant in prepared.participants:
            if participant.model_id not in row["outputs"]:
                add(participant, row["prompt"], max_tokens, case_tools(row))
            if prepared.judge_by is not None and participant.model_id not in row.get("judged", {}):
                judge = prepared.judge_by
                add(judge, judge_messages(row["prompt"], row["reference"], longest_answer, rubric), judge.judge_max_tokens)
        if prepared.pairwise_by is not None:
            for candidate in prepared.participants[1:]:
                if candidate.model_id not in row.get("pairwise", {}):
                    judge = prepared.pairwise_by
                    messages = pairwise_messages(row["prompt"], row["reference"], longest_answer, longest_answer, rubric)
                    add(judge, messages, judge.judge_max_tokens)
                    add(judge, messages, judge.judge_max_tokens)  # asked again with the answers swapped
    return "+".join(sorted(providers)), (None if unknown else round(total, 8))


def _authorize(ws: Workspace, prepared: _Prepared, consent: Consent) -> None:
    providers, quote = _paid_calls_quote(prepared)
    if quote != 0:
        prepared.allowance = authorize_chat_operation(ws, providers, quote, consent, what="evaluation's paid calls", kind=f"{prepared.eval_id}-run")


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
    allowance: Allowance | None = None  # what the paid calls draw from (None: none of them costs anything)


def _prepare(ws: Workspace, asked: dict[str, Any], resume: str | None, consent: Consent = NO_CONSENT) -> _Prepared | dict[str, Any]:
    """A new evaluation laid out, its paid calls approved, and recorded as running; or the one `resume` names with the
    pieces it has stored. A refused cost records nothing."""
    if resume is not None:
        return _prepare_resume(ws, resume, asked, consent)
    if not asked["models"] or len(asked["models"]) < 2:
        raise UserError("evaluate compares models: give at least two, e.g. the base model and the tuned model_id from check_job.")
    suite = asked["suite"]
    plan = {**asked, "suite": str(resolve_user_path(suite, what="Suite file")[1]) if suite is not None else None}
    prepared = _plan(ws, "ev-" + secrets.token_hex(6), plan)
    _authorize(ws, prepared, consent)
    # The ledger's dataset_id column is required: a suite run records where its cases came from instead.
    source = plan["dataset_id"] if plan["dataset_id"] is not None else f"suite:{prepared.suite_path}"
    ws.store.evaluations.add(
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


def _prepare_resume(ws: Workspace, eval_id: str, asked: dict[str, Any], consent: Consent = NO_CONSENT) -> _Prepared | dict[str, Any]:
    row = ws.store.evaluations.get(eval_id)
    if not row:
        raise NotFoundError(f"Evaluation {eval_id!r} not found; list_evaluations (or evals://index) shows them. Start a new one without resume.")
    if row["status"] == "succeeded":
        return {**get_evaluation(ws, eval_id, cases=0), "resource_uri": f"evals://{eval_id}", "resumed": False}
    plan = row.get("plan")
    if not plan:
        raise UserError(f"Evaluation {eval_id} was made by an older version that kept no plan, so it cannot be resumed; run evaluate again without resume.")
    suite = asked["suite"]
    given = {"dataset_id": asked["dataset_id"], "models": asked["models"], "suite": str(resolve_user_path(suite, what="Suite file")[1]) if suite else None}
    for key, value in given.items():
        if value is not None and value != plan.get(key):
            raise UserError(f"resume continues {eval_id} as it was started ({key}={plan.get(key)!r}); leave {key} out, or start a new evaluation without resume.")
    prepared = _plan(ws, eval_id, plan)
    if prepared.plan["cases_sha256"] != plan.get("cases_sha256"):
        raise UserError(f"The cases of {eval_id} changed since it started (was its suite file edited?), so its stored answers no longer fit; start a new evaluation.")
    by_case = {r["case"]: r for r in prepared.results}
    for piece in ws.store.evaluations.results(eval_id):
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
    _authorize(ws, prepared, consent)
    ws.store.evaluations.update(eval_id, status="running", error=None)
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
    if suite_cases is None and dataset_id is not None:
        get_dataset(ws, dataset_id)
        suite_cases = dataset_cases(ws, dataset_id, split)  # a GRPO dataset's cases carry their own checks
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
    participants = [resolve_participant(ws, m) for m in models]
    seen: dict[tuple[str, str], str] = {}
    for given, participant in zip(models, participants):
        key = (participant.provider, participant.name)
        if key in seen:
            raise UserError(f"{seen[key]!r} and {given!r} are the same model; list each model once.")
        seen[key] = given
    judge_by = resolve_participant(ws, plan["judge"]) if plan["judge"] is not None else None
    pairwise_by = resolve_participant(ws, plan["pairwise_judge"]) if plan["pairwise_judge"] is not None else None

    results = case_rows(ws, dataset_id, split, suite_cases, plan["limit"])
    if not results:
        if suite_path is not None:
            raise UserError(f"Suite {suite_path} has no cases to evaluate on (or limit is 0).")
        raise UserError(f"Dataset {dataset_id} has no {split} examples to evaluate on. Build it with a test_fraction above 0.")
    return _Prepared(
        eval_id=eval_id,
        plan={**plan, "cases_sha256": cases_sha256(results)},
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
        self.pending: list[tuple[int, str, dict[str, Any]]] = []
        self.flush_lock = anyio.Lock()
        self.failure: BaseException | None = None
        cases, models = len(prepared.results), len(prepared.participants)
        local_models = sum(1 for p in prepared.participants if p.is_local)
        scored = sum(1 for r in prepared.results if r["reference"] is not None)
        self.total = (
            cases * models * (2 if prepared.judge_by else 1) + (cases * (models - 1) if prepared.pairwise_by else 0) + scored * local_models
        )
        self.done = prepared.stored_pieces
        self.last_report = 0.0
        self.answered: dict[str, int] = {}  # answers held per model, counted once and then kept up to date
        # Redaction leaves these exact strings alone: stored pieces and the report refer to models by them.
        self.model_ids = [p.model_id for p in (*prepared.participants, prepared.judge_by, prepared.pairwise_by) if p is not None]

    # --- provider calls (in worker threads) --------------------------------------------------------------------
    def call(self, participant: Participant, messages: list[dict[str, Any]], max_tokens: int, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One answer, spaced to the provider's rate limit; a transient failure is retried with growing waits.
        `tools`: the case's tools, offered to the model (providers/chat.py chat_with_provider)."""
        if participant.is_local:
            with self.local_lock:
                return chat_with_provider(self.ws, participant.provider, participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0, **tools_keyword(tools))
        gate = self.gates.setdefault(participant.provider, _ProviderGate(requests_per_minute(participant.provider)))
        for attempt in range(self.retries + 1):
            gate.wait_turn()
            try:
                return chat_with_provider(
                    self.ws, participant.provider, participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0, allowance=self.prepared.allowance,
                    **tools_keyword(tools),
                )
            except TransientError as error:
                if attempt == self.retries:
                    raise
                wait = error.retry_after if error.retry_after is not None else min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**attempt)
                gate.hold(wait * random.uniform(1.0, 1.25))  # a little jitter so waiting calls do not return in one burst
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
                await anyio.to_thread.run_sync(functools.partial(self.ws.store.evaluations.update, prepared.eval_id, status="interrupted", error=reason))
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
            if participant.is_local:
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
                answers = generate_greedy_batch(
                    self.ws, participant.name, [r["prompt"] for r in rows], max_tokens=max_tokens, batch_size=len(rows), tools=[case_tools(r) for r in rows]
                )
            return [self._output(participant, row, answer) for row, answer in zip(rows, answers)]

        outputs = await anyio.to_thread.run_sync(generate, limiter=self.threads)
        for row, output in zip(rows, outputs):
            self._store_answer(participant, row, output)
        await self._advance(len(rows), f"{participant.model_id}: {self._answered(participant)}/{len(self.prepared.results)} cases")

    async def _local_likelihood(self, participant: Participant, rows: list[dict[str, Any]]) -> None:
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
            return self._output(participant, row, self.call(participant, row["prompt"], self.prepared.plan["max_tokens"], **tools_keyword(case_tools(row))))

        try:
            output = await anyio.to_thread.run_sync(answer, limiter=self.threads)
        except UserError as error:
            raise type(error)(f"{participant.model_id} could not answer case {row['case']}: {error}") from error
        self._store_answer(participant, row, output)
        await self._advance(1, f"{participant.model_id}: {self._answered(participant)}/{len(self.prepared.results)} cases")

    @staticmethod
    def _output(participant: Participant, row: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        """An answer with its scores, tokens and cost (in the worker thread: scoring can take a moment)."""
        output = score_answer(answer, row)
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
                # Pieces hold answers (and the judges' reasons): redacted before they reach the ledger.
                batch = [(case, unit, redact_record(payload, self.model_ids)[0]) for case, unit, payload in batch]
                await anyio.to_thread.run_sync(self.ws.store.evaluations.add_results, self.prepared.eval_id, batch)


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
            "comparisons": [pairwise_summary(results, model_ids[0], candidate) for candidate in model_ids[1:]],
        }
    with_checks = prepared.suite_path is not None or any("expects" in row for row in results)
    summary_metrics = [*prepared.scored_metrics, *MEASUREMENTS] if with_checks else list(METRICS)
    summary = {p.model_id: {**metric_means(results, p.model_id, summary_metrics, judged=judge_by is not None), **costs(results, p)} for p in prepared.participants}
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
        "confidence_intervals": {m: confidence_intervals(results, m, prepared.comparable) for m in model_ids},
        "comparisons": comparisons(results, model_ids, prepared.primary_metric) if prepared.primary_metric is not None else [],
        "prices": {"read_on": CHAT_PRICES_READ_ON, "source": CHAT_PRICES_SOURCE, "override": PRICES_ENV},
    }
    # A folder left by a run that crashed after writing it but before the ledger knew is replaced whole.
    report = write_evaluation_folder(prepared.folder, report, results)  # redacted as stored, and so shown
    ws.store.evaluations.update(prepared.eval_id, status="succeeded", summary=summary, error=None)
    return {**report, "resource_uri": f"evals://{prepared.eval_id}", "resumed": prepared.stored_pieces > 0}
