"""What runs inside the Hugging Face job: our own local worker, on the shipped dataset, reporting through its log.

    python -m model_customization.providers.hf_jobs.remote --repo OWNER/NAME --run runs/<job_id> [--resume-from PATH]

It makes a data home of its own in a temporary folder, puts the dataset (the stored files, as shipped to the
repository) and a job row with the job's hyperparameters into it, and runs the unchanged local worker
(`python -m model_customization.providers.local.worker`) in a subprocess. While the worker trains, this supervisor
reads the worker's ledger and prints one `MC-PROGRESS {json}` line per new metric, event and status change to
stdout (the job's log, which the server reads back), and uploads each new checkpoint folder to the repository. When
the worker succeeds the adapter folder goes to `<run>/adapter/`. A resumed run first downloads the checkpoint
named by --resume-from into the worker's checkpoint folder, where the worker finds and continues it.

Reads HF_TOKEN (a job secret) and HF_ENDPOINT from the environment; prints neither.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROGRESS_PREFIX = "MC-PROGRESS "
POLL_SECONDS = 0.25  # how often the ledger is read for news; a fast run keeps only its newest two checkpoints, briefly
SHIPPED_BASE_PREFIX = "shipped:"  # a base model folder uploaded to the repository: "shipped:base/<hash>"


def say(kind: str, **values: Any) -> None:
    print(PROGRESS_PREFIX + json.dumps({"kind": kind, **values}, separators=(",", ":"), default=str), flush=True)


def _api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/"), token=os.environ.get("HF_TOKEN") or None)


def _download_folder(api: Any, repo: str, prefix: str, target: Path) -> Path:
    """The repository's files under `prefix`, as the folder `target` (created)."""
    staging = Path(tempfile.mkdtemp(prefix="dl-", dir=target.parent if target.parent.is_dir() else None))
    api.snapshot_download(repo_id=repo, allow_patterns=[f"{prefix}/*"], local_dir=staging)
    source = staging / prefix
    if not source.is_dir():
        raise SystemExit(f"the repository {repo} has no folder {prefix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _linked_copy(folder: Path) -> Path:
    """A copy of `folder`'s files (a checkpoint: flat) made of hard links, in a new temporary folder beside it (the same
    file system); a copy where links cannot be made. Its files stay whole when the original is deleted."""
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=folder.parent))
    copy = staging / folder.name
    try:
        shutil.copytree(folder, copy, copy_function=_link_or_copy)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return copy


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class Supervisor:
    """Reads the worker's ledger and tells the log what is new; uploads new checkpoints."""

    def __init__(self, ws: Any, api: Any, repo: str, run: str, job_id: str) -> None:
        self.ws, self.api, self.repo, self.run, self.job_id = ws, api, repo, run, job_id
        self.events_seen: int | None = None
        self.metrics_seen = 0
        self.uploaded: set[str] = set()
        self.last_progress: tuple[Any, ...] | None = None

    def report(self) -> None:
        jobs = self.ws.store.jobs
        events = jobs.events(self.job_id, None)
        start = 0 if self.events_seen is None else self.events_seen
        for event in events[start:]:
            say("event", level=event["level"], message=event["message"])
        self.events_seen = len(events)
        metrics = jobs.metrics(self.job_id)
        for row in metrics[self.metrics_seen:]:
            say("metric", **{k: row.get(k) for k in ("step", "epoch", "train_loss", "validation_loss", "learning_rate", "tokens_per_second", "reward_mean", "reward_std", "kl", "validation_reward")})
        self.metrics_seen = len(metrics)
        job = jobs.get(self.job_id) or {}
        progress = (job.get("status"), job.get("step"), job.get("total_steps"), job.get("eta_seconds"))
        if progress != self.last_progress:
            say("progress", status=progress[0], step=progress[1], total_steps=progress[2], eta_seconds=progress[3])
            self.last_progress = progress

    def upload_checkpoints(self) -> None:
        folder = self.ws.settings.jobs_dir / self.job_id / "checkpoints"
        for checkpoint in sorted(folder.glob("step-*")) if folder.is_dir() else []:
            complete = all((checkpoint / name).is_file() for name in ("state.json", "adapter.safetensors", "optimizer.pt"))
            if checkpoint.name in self.uploaded or not complete:
                continue
            path = f"{self.run}/checkpoints/{checkpoint.name}"
            snapshot = None
            try:
                # Uploaded from hard links made now: training prunes all but its newest checkpoints, and on a fast
                # GPU it would delete this one while it is still being sent (then no checkpoint ever arrived).
                snapshot = _linked_copy(checkpoint)
                self.api.upload_folder(repo_id=self.repo, folder_path=str(snapshot), path_in_repo=path, commit_message=f"checkpoint {checkpoint.name}")
            except Exception as error:  # noqa: BLE001 - pruned before it was linked, or a network blip: the next one will do
                say("event", level="warning", message=f"checkpoint {checkpoint.name} not uploaded: {type(error).__name__}")
                continue
            finally:
                if snapshot is not None:
                    shutil.rmtree(snapshot.parent, ignore_errors=True)
            self.uploaded.add(checkpoint.name)
            say("checkpoint", step=int(checkpoint.name[5:]), path=path, epoch_end=(checkpoint / "epoch-end").is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_customization.providers.hf_jobs.remote")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--run", required=True, help="the job's folder in the repository: runs/<job_id>")
    parser.add_argument("--resume-from", default=None, help="a checkpoint folder in the repository to continue from")
    arguments = parser.parse_args(argv)
    api = _api()

    home = Path(tempfile.mkdtemp(prefix="mc-remote-"))
    # A data home of its own, and only it readable: the worker's path fence then admits the shipped files.
    os.environ.update({
        "MODEL_CUSTOMIZATION_HOME": str(home),
        "MODEL_CUSTOMIZATION_ALLOWED_ROOTS": str(home),
        "MODEL_CUSTOMIZATION_MODEL_CACHE": str(home / "models"),
    })
    from model_customization.workspace import Workspace

    ws = Workspace.open(home)
    spec = json.loads(Path(api.hf_hub_download(repo_id=arguments.repo, filename=f"{arguments.run}/job.json", local_dir=home / "spec")).read_text(encoding="utf-8"))
    job_id, dataset_id = spec["job_id"], spec["dataset_id"]

    dataset_dir = _download_folder(api, arguments.repo, f"datasets/{dataset_id}", ws.settings.datasets_dir / dataset_id)
    card = json.loads((dataset_dir / "card.json").read_text(encoding="utf-8"))
    counts = {split: sum(1 for line in (dataset_dir / f"{split}.jsonl").open(encoding="utf-8") if line.strip()) for split in ("train", "validation", "test") if (dataset_dir / f"{split}.jsonl").is_file()}
    ws.store.datasets.add({"id": dataset_id, "name": card.get("name") or dataset_id, "created_at": time.time(), "path": str(dataset_dir), "counts": counts, "card": card})
    say("event", level="info", message=f"dataset {dataset_id} downloaded ({', '.join(f'{n} {s}' for s, n in counts.items())})")

    base_model = spec["base_model"]
    if base_model.startswith(SHIPPED_BASE_PREFIX):
        folder = base_model[len(SHIPPED_BASE_PREFIX):]
        base_model = str(_download_folder(api, arguments.repo, folder, home / "base" / Path(folder).name))
        say("event", level="info", message=f"base model downloaded from {folder}")

    if arguments.resume_from:
        name = Path(arguments.resume_from).name
        _download_folder(api, arguments.repo, arguments.resume_from, ws.settings.jobs_dir / job_id / "checkpoints" / name)
        say("event", level="info", message=f"checkpoint {name} downloaded to continue from")

    ws.store.jobs.add({
        "id": job_id, "provider": "local", "base_model": base_model, "dataset_id": dataset_id, "method": spec["method"],
        "hyperparameters": spec["hyperparameters"], "status": "queued", "attempts": 0, "queued_at": time.time(),
    })
    supervisor = Supervisor(ws, api, arguments.repo, arguments.run, job_id)
    worker = subprocess.Popen([sys.executable, "-m", "model_customization.providers.local.worker", str(home), job_id])
    while worker.poll() is None:
        time.sleep(POLL_SECONDS)
        supervisor.report()
        supervisor.upload_checkpoints()
    supervisor.report()
    supervisor.upload_checkpoints()
    job = ws.store.jobs.get(job_id) or {}
    if job.get("status") != "succeeded":
        say("failed", error=job.get("error") or f"the worker exited with code {worker.returncode}")
        return 1
    adapter = ws.settings.jobs_dir / job_id / "adapter"
    api.upload_folder(repo_id=arguments.repo, folder_path=str(adapter), path_in_repo=f"{arguments.run}/adapter", commit_message=f"adapter of {job_id}")
    say("adapter", path=f"{arguments.run}/adapter", files=sorted(p.name for p in adapter.iterdir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
