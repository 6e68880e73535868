"""MCP tools over fine-tuning jobs: start, check, cancel, list."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.jobs import orchestrator
from model_customization.jobs.plots import loss_curve_png
from model_customization.providers.local.hyperparameters import LocalHyperparameters
from model_customization.providers.local.models import EMBEDDED_MODEL
from model_customization.tools.common import run_domain
from model_customization.workspace import Workspace


class JobEvent(BaseModel):
    at: str | None
    level: str
    message: str


class JobStatus(BaseModel):
    job_id: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    provider: str
    base_model: str
    dataset_id: str
    method: str
    step: int
    total_steps: int | None
    epoch: float | None
    train_loss: float | None
    validation_loss: float | None
    eta_seconds: float | None = Field(description="Estimated seconds left while running.")
    error: str | None
    model_id: str | None = Field(description="The tuned model's id once the job succeeded: pass it to prompt_model or evaluate.")
    created_at: str | None
    finished_at: str | None
    hyperparameters: dict[str, Any]
    queue_position: int | None = Field(None, description="While queued: 1 = next to start.")
    events: list[JobEvent] = Field(description="The latest events, oldest first.")
    resource_uri: str


class JobSummary(BaseModel):
    job_id: str
    status: str
    provider: str
    base_model: str
    dataset_id: str
    step: int
    total_steps: int | None
    model_id: str | None
    created_at: str | None


class JobList(BaseModel):
    jobs: list[JobSummary]


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="Start a fine-tuning job", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    async def start_job(
        dataset_id: Annotated[str | None, Field(description="From build_dataset_from_memory or list_datasets. Not needed with resume.")] = None,
        provider: Annotated[Literal["local"], Field(description="'local': LoRA training on this machine (free).")] = "local",
        base_model: Annotated[str, Field(description=f"'{EMBEDDED_MODEL}' (embedded default) or a path to a Hugging Face causal LM folder.")] = EMBEDDED_MODEL,
        method: Annotated[Literal["sft", "dpo"], Field(description="'sft': supervised, loss on the assistant turns; 'dpo': preference pairs (a dataset built with method='dpo').")] = "sft",
        hyperparameters: Annotated[LocalHyperparameters | None, Field(description="Omit for sensible defaults.")] = None,
        resume: Annotated[str | None, Field(description="A failed or cancelled job_id: put it back in the queue, continuing from its last checkpoint.")] = None,
        continue_from: Annotated[str | None, Field(description="A tuned model_id (ft-...) whose adapter this job starts from (same base, rank and target modules).")] = None,
    ) -> JobStatus:
        """Start fine-tuning a model on a dataset; returns at once with a job_id while training runs in the background.

        Local jobs train a LoRA adapter on this machine's CPU (or GPU) in a separate worker process that keeps
        going if the server restarts, and save a checkpoint every checkpoint_interval_steps and at each epoch end.
        One local job trains at a time by default; others wait with status queued (queue_position says where).
        The embedded SmolLM2-135M-Instruct trains about 100 short examples per minute on 2 CPU cores. Refused, with
        nothing recorded, when the dataset has fewer than 10 training examples, the base model is unknown or not a
        causal LM, or it has no chat template. resume=<job_id> continues a failed or cancelled job from its
        checkpoint (a job whose worker dies is resumed automatically). Next: poll check_job until status is
        succeeded, then evaluate or prompt_model with its model_id. cancel_job stops it.
        """
        return JobStatus(**await run_domain(
            orchestrator.start_job,
            ws,
            dataset_id,
            provider=provider,
            base_model=base_model,
            method=method,
            hyperparameters=hyperparameters.model_dump(exclude_unset=True) if hyperparameters else None,
            resume=resume,
            continue_from=continue_from,
        ))

    @server.tool(annotations=ToolAnnotations(title="Check a job", read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    async def check_job(
        job_id: str,
        events: Annotated[int, Field(ge=0, le=200, description="How many recent events to include.")] = 5,
        include_loss_curve: Annotated[bool, Field(description="Also return the loss curve (train/validation loss, learning rate per step) as a PNG image.")] = False,
    ) -> Annotated[CallToolResult, JobStatus]:
        """Show a job's status, progress (step/total, epoch, ETA), latest train and validation loss and recent events.

        Poll it every 10-30 seconds while a job runs. When status is succeeded, model_id names the tuned model for
        evaluate and prompt_model; when failed, error says why. include_loss_curve=true adds the loss curve as an
        image (also readable as resource jobs://{job_id}/loss.png); ask for it now and then, not on every poll.
        """
        status = JobStatus(**await run_domain(orchestrator.check_job, ws, job_id, events))
        # Built by hand so an image can travel beside the structured output; the text block is the same JSON.
        content: list[TextContent | ImageContent] = [TextContent(type="text", text=status.model_dump_json(indent=2))]
        if include_loss_curve:
            try:
                png = await run_domain(loss_curve_png, ws, job_id)
                content.append(Image(data=png, format="png").to_image_content())
            except ToolError as error:  # no metrics yet: the status is still the answer, the note says why no image
                content.append(TextContent(type="text", text=f"No loss curve: {error}"))
        return CallToolResult(content=content, structured_content=status.model_dump(mode="json"))

    @server.tool(annotations=ToolAnnotations(title="Cancel a job", read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))
    async def cancel_job(job_id: str) -> JobStatus:
        """Stop a queued or running job at once: its worker process is ended and the job marked cancelled.

        Its last checkpoint is kept: start_job(resume=job_id) continues from there. Refused for a job that has
        already ended.
        """
        return JobStatus(**await run_domain(orchestrator.cancel_job, ws, job_id))

    @server.tool(annotations=ToolAnnotations(title="List jobs", read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    async def list_jobs(
        status: Annotated[Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Field(description="Only jobs in this status.")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> JobList:
        """List fine-tuning jobs, newest first, with status, progress and the tuned model_id of finished ones.

        Filter by status (e.g. running) to find what is in flight. Use check_job on one job for losses, ETA and events.
        """
        rows = await run_domain(orchestrator.list_jobs, ws, status, limit)
        return JobList(jobs=[JobSummary(**r) for r in rows])
