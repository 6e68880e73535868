"""A Together LoRA adapter brought home, so the tuned model also runs (prompt_model, evaluate) and exports here.

When a LoRA job completes on a base model that the local provider can load, the adapter is downloaded
(GET /finetune/download?ft_id=…&checkpoint=adapter: a tar archive, gzip or zstd compressed), unpacked with tarfile's
"data" filter (no links out, no absolute paths), checked to be a PEFT LoRA adapter, kept under the job's folder and
registered as a local tuned model (ft-<job>) with the same lineage. The only Together-tunable base the local provider
can load offline is the embedded SmolLM2-135M-Instruct (under any org prefix, e.g. HuggingFaceTB/…); other bases
(Llama, Qwen … at Together) have no local copy, so their adapters stay at Together and the job says why.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.together.client import api_message, refusal, sdk, together_client
from model_customization.workspace import Workspace

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MAX_ADAPTER_BYTES = 2 * 1024**3  # a LoRA adapter of a model we can load here is far smaller


def local_base_for(together_model: str) -> str | None:
    """The local provider's name for a Together base model it can load, or None."""
    from model_customization.providers.local.models import EMBEDDED_MODEL, is_embedded

    name = together_model.rsplit("/", 1)[-1]
    name = name.removesuffix("-Reference")  # Together's name for the unquantised reference weights
    return EMBEDDED_MODEL if is_embedded(name) else None


def _archive_bytes(response: Any) -> tuple[bytes, str]:
    data = response.read()
    if len(data) > MAX_ADAPTER_BYTES:
        raise UserError(f"Together sent {len(data):,} bytes for an adapter; more than the {MAX_ADAPTER_BYTES:,} accepted here.")
    return data, str(response.headers.get("content-type") or "")


def _open_tar(data: bytes) -> tarfile.TarFile:
    if data[:4] == b"\x28\xb5\x2f\xfd":  # zstd frame
        try:
            import zstandard
        except ModuleNotFoundError:
            raise UserError("Together sent the adapter zstd-compressed; install zstandard (pip install zstandard) to unpack it here.") from None
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def unpack_adapter(data: bytes, target: Path) -> Path:
    """Unpack an adapter archive into target (replaced); returns target. UserError when it holds no LoRA adapter."""
    with tempfile.TemporaryDirectory(prefix="together-adapter-") as scratch:
        try:
            with _open_tar(data) as archive:
                archive.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise UserError(f"Together's adapter archive could not be unpacked ({type(error).__name__}: {error}).") from None
        configs = sorted(Path(scratch).rglob("adapter_config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise UserError("Together's download holds no adapter_config.json: it is not a LoRA adapter.")
        folder = configs[0].parent
        config = json.loads(configs[0].read_text(encoding="utf-8"))
        if str(config.get("peft_type", "")).upper() != "LORA":
            raise UserError(f"Together's adapter is of type {config.get('peft_type')!r}, not LoRA.")
        if not any((folder / name).is_file() for name in ADAPTER_FILES):
            raise UserError("Together's adapter archive has a configuration but no weights (adapter_model.safetensors).")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, target)
    return target


def bring_adapter_home(ws: Workspace, client: Any, job: dict[str, Any], remote: Any) -> dict[str, Any] | None:
    """Download and register the adapter of a completed job when its base runs here; returns what happened (None:
    a failure worth trying again on the next check)."""
    together = sdk()  # a missing SDK is a UserError naming the extra

    details = (ws.store.jobs.get(job["id"]) or job).get("details") or {}
    if (details.get("training_type") or {}).get("type") == "Full":
        return {"status": "skipped", "reason": "full fine-tuning has no adapter; the model runs at Together only"}
    local_base = local_base_for(job["base_model"])
    if local_base is None:
        return {"status": "skipped", "reason": f"{job['base_model']} cannot be loaded on this machine; the model runs at Together only"}
    try:
        response = client.fine_tuning.content(ft_id=remote.id, checkpoint="adapter")
        data, _ = _archive_bytes(response)
    except together.APIError as error:
        ws.store.jobs.add_event(job["id"], f"could not download the adapter from Together ({api_message(error)}); it stays at Together", "warning")
        return None
    from model_customization.providers.local.train import tuned_model_id

    try:
        adapter_dir = unpack_adapter(data, ws.settings.jobs_dir / job["id"] / "adapter")
    except UserError as error:
        ws.store.jobs.add_event(job["id"], f"the adapter Together sent is not usable here: {error}", "warning")
        return {"status": "failed", "reason": str(error)}
    local_id = tuned_model_id(job["id"])
    if ws.store.models.get(local_id) is None:
        ws.store.models.add({
            "id": local_id, "provider": "local", "kind": "tuned", "base_model": local_base, "path": str(adapter_dir),
            "job_id": job["id"], "dataset_id": job["dataset_id"],
            "details": {"downloaded_from": "together", "together_job_id": remote.id, "together_model": job.get("model_id") or details.get("model_output_name")},
        })
    ws.store.jobs.add_event(job["id"], f"adapter downloaded from Together ({len(data):,} bytes): {local_id} runs here on {local_base} (prompt_model, evaluate, export_model)")
    return {"status": "downloaded", "local_model_id": local_id, "path": str(adapter_dir), "bytes": len(data)}


def remote_checkpoints(ws: Workspace, job_id: str) -> dict[str, Any]:
    """The checkpoints Together kept for a job (ours by job id, or Together's ft-… id), by step. Each name
    '<together job id>:<step>' is what Together's from_checkpoint takes to continue training from it."""
    together = sdk()  # a missing SDK is a UserError naming the extra

    row = ws.store.jobs.get(job_id)
    if row is not None:
        if row["provider"] != "together" or not row.get("remote_id"):
            raise UserError(f"Job {job_id} is not a submitted Together job.")
        remote_id = row["remote_id"]
    elif job_id.startswith("ft-"):
        remote_id = job_id
    else:
        raise NotFoundError(f"No job {job_id!r}: give one of ours (list_jobs) or Together's ft-… id.")
    try:
        listed = together_client().fine_tuning.list_checkpoints(remote_id).data or []
    except together.NotFoundError:
        raise NotFoundError(f"Together has no job {remote_id} for this key.") from None
    except together.APIError as error:
        raise refusal(f"list the checkpoints of {remote_id}", error) from None
    checkpoints = [
        {"step": c.step, "checkpoint_type": c.checkpoint_type, "created_at": c.created_at, "name": f"{remote_id}:{c.step}", "fine_tuned_model_checkpoint": None}
        for c in listed
    ]
    return {"job_id": remote_id, "checkpoints": sorted(checkpoints, key=lambda c: c["step"])}
