"""Jobs: start (validate everything first, then record and queue), check, cancel, resume, list.

Nothing reaches the ledger until every check has passed, so a refused job leaves no trace. Local jobs wait in a
queue (at most `max_local_jobs` run at once, in the order they were queued) and each runs in a detached worker.
A worker that dies without reporting is noticed by the next dispatch and its job resumes from its last checkpoint.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import secrets
import time
from typing import Any

from model_customization.datasets.build import get_dataset
from model_customization.errors import ConfirmationNeeded, NotFoundError, TransientError, UserError
from model_customization.store.status import TERMINAL_STATUSES, this_host
from model_customization.jobs.processes import spawn_worker, stop_worker, worker_alive
from model_customization.jobs.spending import Consent, approve_spend, commit_spend
from model_customization.operations.jobs import JobEvent, JobList, JobStatus, JobSummary
from model_customization.providers.base import Provider, idempotency_key as default_key
from model_customization.providers.registry import describe_choices, find_provider, get_provider, providers
from model_customization.storage import file_lock
from model_customization.workspace import Workspace
from model_customization.timestamps import iso_or_none

MIN_TRAIN_EXAMPLES = 10
METHODS = ("sft", "dpo", "kto", "grpo")
MIN_GRPO_PROMPTS = 2  # GRPO learns from a verifier, not from demonstrations: a handful of cases is a start
MAX_AUTOMATIC_RESUMES = 3  # a worker that keeps dying (e.g. killed for memory) must not be restarted forever
ACTIVE_STATUSES = ("queued", "running")
# Polling a cloud job: a transient failure (timeout, 5xx, dropped connection, rate limit) is retried this many times
# in one check, waiting 1, 2 ... s (at most POLL_MAX_BACKOFF_SECONDS), each retry and a give-up a job event. Kept
# short: the waits hold up check_job and list_jobs, and the next check polls again anyway.
POLL_ATTEMPTS = 3
POLL_BACKOFF_SECONDS = 1.0  # MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS overrides it (tests: 0)
POLL_MAX_BACKOFF_SECONDS = 2.0


def _training_provider(name: str) -> Provider:
    provider = find_provider(name)
    if provider is None or not provider.can("train"):
        raise UserError(f"Unknown provider {name!r}. Use {describe_choices('train')}.")
    return provider


def _queued_here(job: dict[str, Any]) -> bool:
    """A job trained by this machine's worker queue: its provider runs locally (not a remote job to poll)."""
    provider = find_provider(job["provider"])
    return provider is not None and provider.runs_locally


def start_job(
    ws: Workspace,
    dataset_id: str | None = None,
    *,
    provider: str = "local",
    base_model: str | None = None,
    method: str = "sft",
    hyperparameters: dict[str, Any] | None = None,
    resume: str | None = None,
    continue_from: str | None = None,
    idempotency_key: str | None = None,
    options: dict[str, Any] | None = None,
    dry_run: bool = False,
    confirm_cost_usd: float | None = None,
    human_usd: float | None = None,
    human_via: str = "elicitation",
    suite: str | None = None,
    agent: str | None = None,
) -> dict[str, Any]:
    """Validate, record and queue a job (or put a stopped one back in the queue with `resume`); returns its status.

    Providers that run elsewhere go through the spending guard and an idempotency key (see _start_cloud_job); one
    that runs locally is queued for a worker on this machine. dry_run validates and quotes, and starts nothing.
    method='grpo' takes its cases from `suite` (a suite file) or the suite `agent` is judged on, stored as a dataset
    whose test split is held out (evaluation/rewards.py), or from such a dataset's id.
    """
    if resume:
        if suite or agent:
            raise UserError("A resumed job keeps its own cases; omit suite and agent.")
        return _resume(ws, resume, base_model=base_model, hyperparameters=hyperparameters, dataset_id=dataset_id)
    if method not in METHODS:
        raise UserError(f"Method {method!r} is not supported. Use method='sft' (supervised), 'dpo' (preference pairs), 'kto' (sessions labelled by outcome) or 'grpo' (rewards from a suite).")
    if (suite or agent) and method != "grpo":
        raise UserError("suite and agent give the reward of a method='grpo' job; an sft, dpo or kto job trains on a dataset_id.")
    if not dataset_id and not (suite or agent):
        if method == "grpo":
            raise UserError("A GRPO job needs its reward: suite=<a .jsonl or .yaml suite file>, agent=<an agent with a suite set by set_agent_suite>, or the dataset_id of a GRPO dataset.")
        raise UserError("start_job needs a dataset_id (from build_dataset_from_memory or list_datasets), or resume=<job_id>.")
    trainer = _training_provider(provider)
    if trainer.methods and method not in trainer.methods:  # a provider that declares no methods decides in check_available
        # Before anything is read, stored or uploaded: a provider that cannot train this way is told so at once.
        takers = ", ".join(p.name for p in providers("train") if method in p.methods)
        raise UserError(f"{trainer.title} jobs take method {' or '.join(repr(m) for m in trainer.methods)}, not {method!r}; {takers} can.")
    judged = method == "grpo" and bool((hyperparameters or {}).get("judge_model"))
    if judged and not trainer.runs_locally:
        # The judge is called from the training loop, which needs the judge's key and this ledger's spending approval:
        # neither goes to another provider's machines.
        local = ", ".join(p.name for p in providers("train") if p.runs_locally and "grpo" in p.methods)
        raise UserError(f"judge_model is called from a GRPO job trained on this machine ({local}); a {trainer.title} job cannot call it. Leave judge_model out, or use provider={local.split(', ')[0]!r}.")
    if method == "grpo" and not dataset_id:
        from model_customization.evaluation.rewards import suite_dataset

        # The base, the hyperparameters (holdout_fraction, seed, weights) and, for a local job, the chat template are
        # checked before the suite's cases are stored as a dataset.
        hp_given = trainer.parse_hyperparameters(method, hyperparameters)
        checked_base = trainer.check_available(ws, base_model, method)
        if trainer.runs_locally:
            trainer.check_training(ws, checked_base, hp_given, continue_from)
        if judged:
            _check_judge(ws, hp_given)  # the judge's name and key are checked before the cases are stored
        # With a judge, a case with no check of its own (a rubric, or nothing) is rewarded by the judge.
        weights = {**(hp_given["reward_weights"] or {}), "judge": hp_given["judge_weight"]} if judged else hp_given["reward_weights"]
        dataset_id = suite_dataset(ws, suite=suite, agent=agent, holdout_fraction=hp_given["holdout_fraction"], seed=hp_given["seed"], weights=weights,
            validation_fraction=hp_given.get("validation_fraction", 0.0),
        )
    if not trainer.runs_locally:
        return _start_cloud_job(
            ws, dataset_id, provider=trainer, base_model=base_model, method=method, hyperparameters=hyperparameters,
            key=idempotency_key, options=options or {}, dry_run=dry_run,
            consent=Consent(human_usd=human_usd, human_via=human_via, argument_usd=confirm_cost_usd),
        )
    if idempotency_key or options or ((confirm_cost_usd is not None or human_usd is not None) and not judged):
        remote = ", ".join(p.name for p in _remote_trainers())
        raise UserError(
            f"idempotency_key, provider options and confirm_cost_usd apply to cloud providers ({remote}) and to a GRPO job's paid judge_model; "
            f"this {trainer.name} job is free. Omit them."
        )
    _check_dataset_for(ws, dataset_id, method)
    canonical_base = trainer.check_available(ws, base_model, method)
    hp = trainer.parse_hyperparameters(method, hyperparameters)
    trainer.check_training(ws, canonical_base, hp, continue_from)
    if dry_run:
        quote = trainer.quote(ws, dataset_id, canonical_base, method, hp)
        return _dry_run_summary(trainer.name, canonical_base, dataset_id, method, hp, quote)

    job_id = "job-" + secrets.token_hex(6)
    details = None
    if judged:  # approved and counted before the job exists: a refusal records nothing
        consent = Consent(human_usd=human_usd, human_via=human_via, argument_usd=confirm_cost_usd)
        details = _approve_judge(ws, job_id, trainer.quote(ws, dataset_id, canonical_base, method, hp), consent)
    ws.store.jobs.add(
        {
            "id": job_id,
            "provider": trainer.name,
            "base_model": canonical_base,
            "dataset_id": dataset_id,
            "method": method,
            "hyperparameters": hp,
            "status": "queued",
            "continue_from": continue_from,
            "launcher": ws.settings.worker_launcher,
            "attempts": 0,
            "queued_at": time.time(),
            "details": details,
        }
    )
    if details and JUDGE_SPENDING in details:
        approved = details[JUDGE_SPENDING]
        ws.store.jobs.add_event(
            job_id, f"judge calls approved ({approved['approved_by']}): at most {approved['quoted_usd']} USD to {approved['provider']}; each call draws from it before it is sent"
        )
    dispatch(ws)
    return check_job(ws, job_id)


JUDGE_SPENDING = "judge_spending"  # the job's details key the worker draws its judge calls from (grpo_judge.py)


def _check_judge(ws: Workspace, hp: dict[str, Any]) -> None:
    """Refuse an unknown judge model or one whose key is missing, before anything is stored."""
    from model_customization.evaluation.participants import resolve_participant

    resolve_participant(ws, hp["judge_model"])


def _approve_judge(ws: Workspace, job_id: str, quote: dict[str, Any], consent: Consent) -> dict[str, Any] | None:
    """The spending guard for a GRPO job's paid judge: its quoted calls approved (budgets, a person, or an allowed
    argument) and recorded under the ledger's spending lock; the job's details then hold what its worker may draw."""
    judge = quote["judge"]
    if not judge["paid"] or judge["cost_bound_usd"] == 0:
        return None
    spend_id = f"{job_id}-judge"
    approval = commit_spend(ws, spend_id, judge["provider"], judge["cost_bound_usd"], consent, what="GRPO job's judge calls")
    approved = approval.committed_usd if judge["cost_bound_usd"] is not None else None  # None: a person accepted an unknown price
    return {
        JUDGE_SPENDING: {
            "spend_id": spend_id, "provider": judge["provider"], "model": judge["model"], "quoted_usd": judge["cost_bound_usd"],
            "approved_usd": approved, "approved_by": approval.approved_by, "drawn_usd": 0.0, "billed_usd": 0.0, "calls": 0, "unpriced_calls": 0,
        }
    }


def confirmation_needed(
    ws: Workspace,
    dataset_id: str | None,
    *,
    provider: str,
    base_model: str | None = None,
    method: str = "sft",
    hyperparameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    confirm_cost_usd: float | None = None,
) -> Any:
    """The ConfirmationNeeded that start_job would raise for these arguments, or None (free, within budget, already
    created, or refused for another reason that start_job itself will report). Records nothing."""
    trainer = find_provider(provider)
    if trainer is None or not trainer.can("train") or not trainer.paid or not dataset_id:
        return None
    try:
        hp = trainer.parse_hyperparameters(method, hyperparameters)
        known = ws.store.jobs.by_idempotency_key(provider, idempotency_key or default_key(dataset_id, base_model or "default", method, hp))
        if known and known["remote_id"]:
            return None
        quote = start_job(ws, dataset_id, provider=provider, base_model=base_model, method=method, hyperparameters=hyperparameters, dry_run=True)["quote"]
        approve_spend(ws, provider, quote.get("estimated_cost_usd"), Consent(argument_usd=confirm_cost_usd))
    except ConfirmationNeeded as needed:
        return needed
    except UserError:
        return None
    return None


def _check_dataset_for(ws: Workspace, dataset_id: str, method: str) -> dict[str, Any]:
    dataset = get_dataset(ws, dataset_id)
    dataset_method = dataset["card"].get("method", "sft")
    if dataset_method != method:
        raise UserError(
            f"Dataset {dataset_id} holds {dataset_method} examples but the job's method is {method}. "
            f"Start the job with method='{dataset_method}', or build a {method} dataset with build_dataset_from_memory(method='{method}')."
        )
    n_train = dataset["counts"].get("train", 0)
    if method == "grpo" and n_train < MIN_GRPO_PROMPTS:
        raise UserError(f"Dataset {dataset_id} has {n_train} training cases; GRPO needs at least {MIN_GRPO_PROMPTS}. Add cases to the suite or lower holdout_fraction (or validation_fraction).")
    if method != "grpo" and n_train < MIN_TRAIN_EXAMPLES:
        raise UserError(
            f"Dataset {dataset_id} has {n_train} training examples; at least {MIN_TRAIN_EXAMPLES} are needed. "
            "Add more memory files and call build_dataset_from_memory again."
        )
    return dataset


def _dry_run_summary(provider: str, base_model: str, dataset_id: str, method: str, hyperparameters: dict[str, Any], quote: dict[str, Any]) -> dict[str, Any]:
    return JobStatus(
        job_id=None, status="dry_run", provider=provider, base_model=base_model, dataset_id=dataset_id, method=method, step=0,
        total_steps=None, epoch=None, train_loss=None, validation_loss=None, eta_seconds=quote.get("estimated_seconds"), error=None,
        model_id=None, created_at=None, finished_at=None, hyperparameters=hyperparameters, quote=quote,
        events=[JobEvent(at=None, level="info", message="dry run: validated and quoted; nothing was started or spent")], resource_uri=None,
    ).model_dump()


def _remote_trainers() -> list[Provider]:
    return [p for p in providers("train") if not p.runs_locally]


def _check_options(cloud: Provider, options: dict[str, Any]) -> None:
    """Refuse, before anything is quoted, approved or recorded, options this provider's jobs do not take."""
    refused = sorted(name for name, value in options.items() if value is not None and name not in cloud.job_options)
    if refused:
        takers = " or ".join(p.name for p in providers("train") if set(refused) & p.job_options) or "no provider here"
        takes = ", ".join(sorted(cloud.job_options)) or "none"
        raise UserError(
            f"Option(s) {', '.join(refused)} apply to {takers} jobs; a {cloud.title} job takes {takes}{cloud.job_options_note}. Leave them out."
        )


def _start_cloud_job(
    ws: Workspace,
    dataset_id: str,
    *,
    provider: Provider,
    base_model: str | None,
    method: str,
    hyperparameters: dict[str, Any] | None,
    key: str | None,
    options: dict[str, Any],
    dry_run: bool,
    consent: Consent,
) -> dict[str, Any]:
    """Availability, dataset and hyperparameters first (nothing spent), then the idempotency key, the quote and the
    spending guard; the job row and the approved spend are written before the provider uploads or creates anything."""
    cloud, provider = provider, provider.name
    _check_options(cloud, options)
    hp = cloud.parse_hyperparameters(method, hyperparameters)
    key = key or default_key(dataset_id, base_model or "default", method, hp)
    known = ws.store.jobs.by_idempotency_key(provider, key)
    if known and known["remote_id"] and not dry_run:
        ws.store.jobs.add_event(known["id"], "start_job called again with the same idempotency key: this job is the answer, nothing new was created")
        return check_job(ws, known["id"])

    canonical_base = cloud.check_available(ws, base_model, method)
    _check_dataset_for(ws, dataset_id, method)
    quote = cloud.quote(ws, dataset_id, canonical_base, method, hp)
    if dry_run:
        return _dry_run_summary(provider, canonical_base, dataset_id, method, hp, quote)

    remote = cloud.find_existing(ws, key)
    if known and known["status"] not in TERMINAL_STATUSES:
        job_id = known["id"]  # an earlier start_job stopped between recording and submitting: carry on with it
    else:
        job_id = "job-" + secrets.token_hex(6)
    details = {"options": options, "quote": quote}
    if remote:
        # Created by an earlier call whose reply was lost: adopt it, no new spend.
        if not known or known["id"] != job_id:
            ws.store.jobs.add(_cloud_row(job_id, provider, canonical_base, dataset_id, method, hp, key, details))
        ws.store.jobs.update(job_id, remote_id=remote["remote_id"], remote_status=remote.get("remote_status"), details={**details, **(remote.get("details") or {})})
        ws.store.jobs.add_event(job_id, f"found {provider} job {remote['remote_id']} created earlier with the same idempotency key; adopted, nothing new created")
        return check_job(ws, job_id)

    # Approved and counted under the ledger's spending lock before the job row exists: a refusal records nothing.
    approval = commit_spend(ws, job_id, provider, quote.get("estimated_cost_usd"), consent)
    if not known or known["id"] != job_id:
        ws.store.jobs.add(_cloud_row(job_id, provider, canonical_base, dataset_id, method, hp, key, details))
    ws.store.jobs.add_event(job_id, f"cost approved ({approval.approved_by}): quote {quote.get('estimated_cost_usd')} USD, committed {approval.committed_usd} USD")
    job = _require_job(ws, job_id)
    try:
        submitted = cloud.submit(ws, job)
    except Exception as error:
        # Nothing was created remotely (or the provider refused): the job fails with the reason and costs nothing.
        message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        ws.store.jobs.finish(job_id, "failed", error=message)
        ws.store.spending.set_actual(job_id, 0.0)
        ws.store.jobs.add_event(job_id, f"not created at {provider}: {message}", "error")
        if isinstance(error, UserError):
            raise
        raise UserError(f"{provider} did not create the job ({message}). check_job {job_id} shows the record; start_job again retries with the same idempotency key.") from error
    merged = {**(_require_job(ws, job_id).get("details") or {}), **(submitted.get("details") or {})}
    ws.store.jobs.update(job_id, remote_id=submitted["remote_id"], remote_status=submitted.get("remote_status"), details=merged)
    ws.store.jobs.add_event(job_id, f"created at {provider} as {submitted['remote_id']}")
    return check_job(ws, job_id)


def _cloud_row(job_id: str, provider: str, base_model: str, dataset_id: str, method: str, hp: dict[str, Any], key: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job_id, "provider": provider, "base_model": base_model, "dataset_id": dataset_id, "method": method,
        "hyperparameters": hp, "status": "validating", "idempotency_key": key, "details": details, "attempts": 0,
    }


def _refresh_cloud(ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
    """Bring a cloud job up to date from its provider; a provider that cannot be reached leaves the last known state."""
    if _queued_here(job) or not job.get("remote_id"):
        return job
    if job["status"] in TERMINAL_STATUSES and job.get("model_id") is not None or job["status"] in ("failed", "cancelled"):
        return job
    provider = find_provider(job["provider"])
    if provider is None:
        ws.store.jobs.add_event(job["id"], f"could not refresh: provider {job['provider']!r} is not installed here; showing the last known state", "warning")
        return job
    shown = provider.title
    for attempt in range(1, POLL_ATTEMPTS + 1):
        try:
            provider.refresh(ws, _require_job(ws, job["id"]))
            break
        except TransientError as error:
            # A network blip, a timeout, a 5xx or a rate limit: wait and poll again; the job is never failed for it.
            if attempt == POLL_ATTEMPTS:
                ws.store.jobs.add_event(
                    job["id"],
                    f"{shown} still unreachable after {POLL_ATTEMPTS} attempts ({error}); the job keeps its last known "
                    f"state ({job['status']}) and the next check_job polls again",
                    "warning",
                )
                break
            delay = poll_retry_delay(attempt, error.retry_after)
            ws.store.jobs.add_event(job["id"], f"{shown} unreachable: retrying in {delay:g} s (attempt {attempt + 1}/{POLL_ATTEMPTS}): {error}", "warning")
            time.sleep(delay)
        except UserError as error:
            ws.store.jobs.add_event(job["id"], f"could not refresh from {shown}: {error}", "warning")
            break
        except Exception as error:  # noqa: BLE001 - a failure while polling must not break check_job or list_jobs
            ws.store.jobs.add_event(job["id"], f"could not refresh from {shown} ({type(error).__name__}); showing the last known state", "warning")
            break
    return _require_job(ws, job["id"])


def poll_retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before poll attempt+1: what the provider asked for (Retry-After), else doubling from POLL_BACKOFF_SECONDS."""
    if retry_after is not None:
        return min(retry_after, POLL_MAX_BACKOFF_SECONDS)
    try:
        base = max(0.0, float(os.environ.get("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", POLL_BACKOFF_SECONDS)))
    except ValueError:
        base = POLL_BACKOFF_SECONDS
    return min(base * 2 ** (attempt - 1), POLL_MAX_BACKOFF_SECONDS)


def _resume(ws: Workspace, job_id: str, *, base_model: str, hyperparameters: dict[str, Any] | None, dataset_id: str | None) -> dict[str, Any]:
    from model_customization.providers.local.train import latest_checkpoint

    job = _require_job(ws, job_id)
    if job["status"] == "succeeded":
        raise UserError(f"Job {job_id} already succeeded (model {job['model_id']}); there is nothing to resume. Use continue_from={job['model_id']!r} to train it further.")
    if job["status"] in ACTIVE_STATUSES:
        raise UserError(f"Job {job_id} is already {job['status']}; check_job follows it.")
    if hyperparameters:
        raise UserError("A resumed job keeps its own hyperparameters (its checkpoint was made with them). Omit hyperparameters, or start a new job.")
    if dataset_id and dataset_id != job["dataset_id"]:
        raise UserError(f"Job {job_id} trains on {job['dataset_id']}, not {dataset_id}; a resumed job keeps its dataset. Omit dataset_id.")
    provider = get_provider(job["provider"])
    if not provider.runs_locally:
        return _resume_cloud(ws, job)
    if base_model and not provider.means_default_base(base_model) and provider.check_available(ws, base_model, job["method"]) != job["base_model"]:
        raise UserError(
            f"Job {job_id}'s checkpoint is an adapter for {job['base_model']}; it does not fit {base_model}. Omit base_model to resume."
        )
    checkpoint = latest_checkpoint(ws, job_id)
    _requeue(ws, job, f"resume asked for: continuing from checkpoint {checkpoint.name}" if checkpoint else "resume asked for: no checkpoint was saved, so training starts over")
    dispatch(ws)
    return check_job(ws, job_id)


def _resume_cloud(ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
    job = _refresh_cloud(ws, job)
    if job["status"] != "paused":
        raise UserError(f"Job {job['id']} is {job['status']} at {job['provider']}; only a paused cloud job can be resumed. Start a new job instead.")
    get_provider(job["provider"]).resume(ws, job)
    ws.store.jobs.add_event(job["id"], "resume asked for")
    return check_job(ws, job["id"])


def pause_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = _refresh_cloud(ws, _require_job(ws, job_id))
    provider = get_provider(job["provider"])
    if provider.runs_locally:
        raise UserError(f"{provider.title} jobs are not paused: cancel_job stops one and keeps its checkpoint, and start_job(resume=job_id) continues it.")
    if job["status"] in TERMINAL_STATUSES:
        raise UserError(f"Job {job_id} has already ended ({job['status']}); there is nothing to pause.")
    provider.pause(ws, job)
    ws.store.jobs.add_event(job_id, "pause asked for")
    return check_job(ws, job_id)


def _requeue(ws: Workspace, job: dict[str, Any], message: str) -> None:
    ws.store.jobs.update(
        job["id"], status="queued", worker_pid=None, worker_host=None, lease_expires_at=None, error=None, finished_at=None, eta_seconds=None, queued_at=time.time()
    )
    ws.store.jobs.add_event(job["id"], message)


@contextmanager
def _queue_lock(ws: Workspace):
    # The server, the CLI and finishing workers all dispatch: one at a time, or two could fill the same slot. The
    # ledger's own lock extends that to servers with other data homes, or on other machines, sharing the ledger.
    with file_lock(ws.settings.home / ".queue.lock"), ws.store.exclusive("dispatch"):
        yield


def _reserved(job: dict[str, Any], now: float) -> bool:
    """Reserved by a dispatcher (this machine's or another's) whose worker has not been recorded yet."""
    return not job["worker_pid"] and bool(job.get("worker_host")) and (job.get("lease_expires_at") or 0) >= now


def dispatch(ws: Workspace) -> list[str]:
    """Notice dead workers (resuming their jobs), then launch queued jobs while fewer than the limit run.

    Called when a job is started, checked or listed, when the server starts and when a worker finishes, so the
    queue moves without a scheduler process. Returns the ids of the jobs launched.
    """
    launched = []
    host = this_host()
    with _queue_lock(ws):
        active = [j for j in ws.store.jobs.all() if j["status"] in ACTIVE_STATUSES and _queued_here(j)]
        for job in active:
            if job["worker_pid"] or job.get("worker_host"):
                _notice_dead_worker(ws, job)
        jobs_now = [ws.store.jobs.get(j["id"]) for j in active]
        now = time.time()
        # max_local_jobs is per machine: count this machine's workers (and its reservations not launched yet).
        running = [
            j for j in jobs_now
            if j and j["status"] in ACTIVE_STATUSES and (j["worker_pid"] or _reserved(j, now)) and (j.get("worker_host") or host) == host
        ]
        waiting = sorted(
            (j for j in jobs_now if j and j["status"] == "queued" and not j["worker_pid"] and not _reserved(j, now)),
            key=lambda j: (j["queued_at"] or j["created_at"]),
        )
        free_slots = max(0, ws.settings.max_local_jobs - len(running))
        for job in waiting:
            if free_slots <= 0:
                break
            # Atomic: of several servers dispatching the same queue, exactly one reserves the job and launches it.
            if not ws.store.jobs.reserve(job["id"], host):
                continue
            free_slots -= 1
            try:
                pid = spawn_worker(ws.settings.home, job["id"], ws.settings.jobs_dir / job["id"] / "worker.log", launcher=job.get("launcher"))
            except OSError as error:
                ws.store.jobs.finish(job["id"], "failed", error=f"could not start the worker: {error}")
                continue
            ws.store.jobs.attach_worker(job["id"], pid, host)
            ws.store.jobs.add_event(job["id"], f"worker process {pid} launched on {host}")
            launched.append(job["id"])
    return launched


class QueueReporter:
    """What a local worker tells the queue (providers/local/worker.py JobReporter): how its job failed, and that its
    slot is free, so the next queued job starts without waiting for anyone to poll."""

    def job_failed(self, ws: Workspace, job_id: str, message: str) -> None:
        if ws.store.jobs.finish(job_id, "failed", error=message):
            ws.store.jobs.add_event(job_id, f"failed: {message}", "error")

    def slot_freed(self, ws: Workspace) -> None:
        dispatch(ws)


def _require_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = ws.store.jobs.get(job_id)
    if not job:
        raise NotFoundError(f"Job {job_id!r} not found. Call list_jobs to see known jobs.")
    return job


def _notice_dead_worker(ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
    """A worker that vanished without reporting (killed, out of memory, machine restarted): resume its job from the
    last checkpoint, up to MAX_AUTOMATIC_RESUMES launches; after that the job fails with the reason."""
    if job["status"] in TERMINAL_STATUSES or not (job["worker_pid"] or job.get("worker_host")):
        return job
    if not job["worker_pid"]:
        # Reserved by a dispatcher that never recorded a worker (it died in between): queued again once its lease ends.
        if (job.get("lease_expires_at") or 0) < time.time() and ws.store.jobs.release(job["id"]):
            ws.store.jobs.add_event(job["id"], f"the reservation by {job['worker_host']} ran out before a worker started; back in the queue", "warning")
        return ws.store.jobs.get(job["id"]) or job
    elsewhere = job.get("worker_host") not in (None, this_host())
    if elsewhere:
        # Another machine's worker: its process cannot be seen from here, only whether it keeps renewing its lease.
        if (job.get("lease_expires_at") or 0) >= time.time():
            return job
    elif worker_alive(job["worker_pid"], job["id"]):
        return job
    # The worker may have finished (or renewed its lease) between our read and the check: read again before judging.
    fresh = ws.store.jobs.get(job["id"]) or job
    if fresh["status"] in TERMINAL_STATUSES or fresh["worker_pid"] != job["worker_pid"]:
        return fresh
    if elsewhere and (fresh.get("lease_expires_at") or 0) >= time.time():
        return fresh
    from model_customization.providers.local.train import latest_checkpoint

    log = ws.settings.jobs_dir / job["id"] / "worker.log"
    if elsewhere:
        lost = f"the worker process {job['worker_pid']} on {job['worker_host']} stopped renewing its lease; taken over by {this_host()}"
    else:
        lost = f"the worker process {job['worker_pid']} ended without reporting a result (log: {log})"
    if (fresh["attempts"] or 1) < MAX_AUTOMATIC_RESUMES:
        checkpoint = latest_checkpoint(ws, job["id"])
        where = f"from checkpoint {checkpoint.name}" if checkpoint else "from the start (no checkpoint yet)"
        ws.store.jobs.add_event(job["id"], lost, "warning")
        _requeue(ws, fresh, f"resuming {where}, launch {(fresh['attempts'] or 1) + 1} of {MAX_AUTOMATIC_RESUMES}")
    else:
        message = f"{lost}; it was launched {fresh['attempts']} times, so it is not resumed again. start_job with resume={job['id']!r} tries once more"
        if ws.store.jobs.finish(job["id"], "failed", error=message):
            ws.store.jobs.add_event(job["id"], message, "error")
    return ws.store.jobs.get(job["id"]) or fresh


def queue_position(ws: Workspace, job: dict[str, Any]) -> int | None:
    """1 for the next job to start; None for a job that is not waiting."""
    if job["status"] != "queued" or job["worker_pid"]:
        return None
    waiting = [j for j in ws.store.jobs.all("queued") if not j["worker_pid"]]
    waiting.sort(key=lambda j: (j["queued_at"] or j["created_at"]))
    return next((i for i, j in enumerate(waiting, start=1) if j["id"] == job["id"]), None)


def summarize_job(ws: Workspace, job: dict[str, Any], events: int = 5) -> dict[str, Any]:
    """check_job's answer (operations.jobs.JobStatus) for a job row, with its latest `events`."""
    details = job.get("details") or {}
    return JobStatus(
        job_id=job["id"], status=job["status"], provider=job["provider"], base_model=job["base_model"], dataset_id=job["dataset_id"],
        method=job["method"], step=job["step"] or 0, total_steps=job["total_steps"], epoch=job["epoch"], train_loss=job["train_loss"],
        validation_loss=job["validation_loss"], eta_seconds=None if job["status"] in TERMINAL_STATUSES else job["eta_seconds"],
        error=job["error"], model_id=job["model_id"], created_at=iso_or_none(job["created_at"]), finished_at=iso_or_none(job["finished_at"]),
        hyperparameters=job["hyperparameters"], queue_position=queue_position(ws, job), remote_id=job.get("remote_id"),
        remote_status=job.get("remote_status"), quote=details.get("quote"), spend=_spend_summary(ws, job), checkpoints=details.get("checkpoints"),
        events=[_event(e) for e in ws.store.jobs.events(job["id"], events)], resource_uri=f"jobs://{job['id']}",
        notice=_notice(job), rewards=_latest_rewards(ws, job),
    ).model_dump()


def _latest_rewards(ws: Workspace, job: dict[str, Any]) -> dict[str, float] | None:
    """A GRPO job's newest step: its sampled answers' mean reward and spread, and the KL to the reference; with
    validation cases, the newest and the best validation reward (the best step's adapter is the one kept)."""
    if job["method"] != "grpo":
        return None
    metrics = ws.store.jobs.metrics(job["id"])
    rows = [m for m in metrics if m.get("reward_mean") is not None]
    if not rows:
        return None
    last = max(rows, key=lambda m: m["step"])
    summary = {"reward_mean": last["reward_mean"], "reward_std": last["reward_std"], "kl": last["kl"]}
    validations = [m for m in metrics if m.get("validation_reward") is not None]
    if validations:
        summary["validation_reward"] = max(validations, key=lambda m: m["step"])["validation_reward"]
        summary["best_validation_reward"] = max(m["validation_reward"] for m in validations)
    return summary


def _notice(job: dict[str, Any]) -> str | None:
    """The provider's warning about the job's tuned model, else its base model (a shutdown date), if any."""
    provider = find_provider(job["provider"])
    if provider is None:
        return None
    return (job["model_id"] and provider.model_notice(job["model_id"])) or provider.model_notice(job["base_model"])


def _event(row: dict[str, Any]) -> JobEvent:
    return JobEvent(at=iso_or_none(row["at"]), level=row["level"], message=row["message"])


def _spend_summary(ws: Workspace, job: dict[str, Any]) -> dict[str, Any] | None:
    provider = find_provider(job["provider"])
    if provider is not None and not provider.paid:
        return None
    row = ws.store.spending.for_job(job["id"])
    if not row:
        return None
    return {"quoted_usd": row["quoted_usd"], "committed_usd": row["committed_usd"], "actual_usd": row["actual_usd"], "approved_by": row["approved_by"]}


def check_job(ws: Workspace, job_id: str, events: int = 5) -> dict[str, Any]:
    job = _require_job(ws, job_id)
    if _queued_here(job):
        dispatch(ws)
    else:
        _refresh_cloud(ws, job)
    return summarize_job(ws, _require_job(ws, job_id), events)


def cancel_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = _require_job(ws, job_id)
    if job["status"] in TERMINAL_STATUSES:
        raise UserError(f"Job {job_id} has already ended ({job['status']}); there is nothing to cancel. check_job shows its result.")
    if not _queued_here(job):
        if not job.get("remote_id"):
            ws.store.jobs.finish(job_id, "cancelled")
            ws.store.jobs.add_event(job_id, "cancelled before it was created at the provider")
            return check_job(ws, job_id)
        get_provider(job["provider"]).cancel(ws, job)
        ws.store.jobs.add_event(job_id, f"cancel asked of {job['provider']}")
        return check_job(ws, job_id)
    # Record the cancellation first, so a worker finishing at this moment cannot mark the job succeeded after it.
    ws.store.jobs.finish(job_id, "cancelled")
    # A worker on another machine (a server sharing the ledger) cannot be signalled from here: it sees the
    # cancellation at its next lease renewal and stops itself.
    elsewhere = job["worker_pid"] and job.get("worker_host") not in (None, this_host())
    stopped = stop_worker(job["worker_pid"], job_id) if job["worker_pid"] and not elsewhere else True
    from model_customization.providers.local.train import latest_checkpoint

    checkpoint = latest_checkpoint(ws, job_id)
    kept = f"; checkpoint {checkpoint.name} kept (start_job with resume={job_id!r} continues from it)" if checkpoint else ""
    if elsewhere:
        said = f"cancelled; worker process {job['worker_pid']} on {job['worker_host']} stops at its next lease renewal"
    else:
        said = f"cancelled; worker process {job['worker_pid']} stopped" if stopped else f"cancelled, but worker process {job['worker_pid']} did not stop"
    ws.store.jobs.add_event(job_id, said + kept, "info" if stopped else "error")
    return check_job(ws, job_id)


def list_jobs(ws: Workspace, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    return list_jobs_page(ws, status, limit)["jobs"]


def list_jobs_page(ws: Workspace, status: str | None = None, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """{jobs, next_cursor}: jobs newest first, one page at a time (see paging.py). Dispatches first and refreshes
    unfinished cloud jobs, so the statuses are current."""
    from model_customization.paging import page_rows

    dispatch(ws)
    for job in ws.store.jobs.all():
        if not _queued_here(job) and job["status"] not in TERMINAL_STATUSES:
            _refresh_cloud(ws, job)

    def key(row: dict[str, Any]) -> tuple[float, str]:
        return (row["created_at"], row["id"])

    rows = sorted(ws.store.jobs.all(status), key=key, reverse=True)
    shown, next_cursor = page_rows(rows, key, kind="jobs", limit=limit, cursor=cursor, newest_first=True)
    jobs = [
        JobSummary(
            job_id=r["id"], status=r["status"], provider=r["provider"], base_model=r["base_model"], dataset_id=r["dataset_id"],
            step=r["step"] or 0, total_steps=r["total_steps"], model_id=r["model_id"], created_at=iso_or_none(r["created_at"]),
        )
        for r in shown
    ]
    return JobList(jobs=jobs, next_cursor=next_cursor).model_dump()


def list_job_events(ws: Workspace, job_id: str, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """{job_id, events, next_cursor}: every event of a job, oldest first, one page at a time (see paging.py)."""
    from model_customization.paging import decode_cursor, encode_cursor

    _require_job(ws, job_id)
    if limit < 1:
        raise UserError(f"limit must be at least 1 (got {limit}).")
    after_id = None
    if cursor is not None:
        after = decode_cursor("job events", cursor)
        if len(after) != 2 or after[0] != job_id or not isinstance(after[1], int):
            raise UserError(f"That cursor belongs to another job's events (or is not ours); use the next_cursor of the previous page of {job_id}'s events.")
        after_id = after[1]
    rows = ws.store.jobs.events_after(job_id, after_id, limit + 1)  # one more than shown: is there a next page?
    shown = rows[:limit]
    return {
        "job_id": job_id,
        "events": [_event(e).model_dump() for e in shown],
        "next_cursor": encode_cursor("job events", [job_id, shown[-1]["id"]]) if len(rows) > limit else None,
    }


def wait_for_job(ws: Workspace, job_id: str, timeout: float, poll: float = 1.0, on_poll=None) -> dict[str, Any]:
    """Poll until the job ends (for the CLI demo and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        summary = check_job(ws, job_id)
        if on_poll:
            on_poll(summary)
        if summary["status"] in TERMINAL_STATUSES or time.monotonic() > deadline:
            return summary
        time.sleep(poll)
