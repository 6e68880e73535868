"""MCP tools over fine-tuning jobs: start, check, cancel, list."""

# No `from __future__ import annotations` here: start_job's Resolve(ask_about_cost) names a closure, so its
# annotations must be evaluated where they are written.
from typing import Annotated, Any

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.providers.registry import find_provider
from model_customization.operations.jobs import (
    CancelJobRequest,
    JobEvent,
    JobEventPage,
    JobList,
    JobStatus,
    JobSummary,
    ListJobEventsRequest,
    ListJobsRequest,
    PauseJobRequest,
    StartJobRequest,
    start_job_request,
)
from model_customization.tools.common import lazy_module, run_domain, takes, truncate_text
from model_customization.tools.spending import CostQuestion, client_can_elicit, elicitation_parameters, human_consent
from model_customization.workspace import Workspace

# Imported on first use: the orchestrator brings in the ledger (SQLAlchemy), which a starting server need not wait for.
orchestrator = lazy_module("model_customization.jobs.orchestrator")


def _argument_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else dict(value)


def _shortened(status: dict[str, Any]) -> dict[str, Any]:
    """check_job's answer with each long text (an error, an event) cut, pointing at where the whole text is."""
    job_id = status.get("job_id")
    if not job_id:
        return status
    where = f"read the resource jobs://{job_id}/events (every event, whole)"
    events = [{**e, "message": truncate_text(e["message"], where)} for e in status.get("events") or []]
    return {**status, "events": events, "error": truncate_text(status.get("error"), f"read the resource jobs://{job_id}")}


def register(server: MCPServer, ws: Workspace) -> None:
    Request = start_job_request()  # provider and hyperparameters typed from the provider registry
    default_provider = Request.model_fields["provider"].default

    def job_cost_question(
        ctx: Context,
        dataset_id: str | None = None,
        provider: str = default_provider,
        base_model: str | None = None,
        method: str = "sft",
        hyperparameters: Any = None,
        resume: str | None = None,
        idempotency_key: str | None = None,
        dry_run: bool = False,
        confirm_cost_usd: float | None = None,
    ) -> CostQuestion | None:
        """Before start_job runs: the question a person must answer about a paid job over budget, when the client can
        be asked (None otherwise, or when nothing needs asking)."""
        chosen = find_provider(provider)
        if chosen is None or not chosen.paid or dry_run or resume or not client_can_elicit(ctx):
            return None
        needed = orchestrator.confirmation_needed(
            ws, dataset_id, provider=provider, base_model=base_model, method=method, hyperparameters=_argument_dict(hyperparameters),
            idempotency_key=idempotency_key, confirm_cost_usd=confirm_cost_usd,
        )
        return CostQuestion(needed.question, needed.quote_usd) if needed else None

    QuestionParameter, AnswerParameter = elicitation_parameters(job_cost_question)

    @server.tool(annotations=ToolAnnotations(title="Start a fine-tuning job", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    @takes(Request)
    async def start_job(
        request: StartJobRequest,
        cost_question: QuestionParameter = None,
        cost_answer: AnswerParameter = None,
    ) -> JobStatus:
        """Start fine-tuning a model on a dataset; returns at once with a job_id while training runs in the background.

        Local jobs train a LoRA adapter on this machine's CPU (or GPU) in a separate worker process that keeps
        going if the server restarts, and save a checkpoint every checkpoint_interval_steps and at each epoch end.
        One local job trains at a time by default; others wait with status queued (queue_position says where).
        The embedded SmolLM2-135M-Instruct trains about 100 short examples per minute on 2 CPU cores. Refused, with
        nothing recorded, when the dataset has fewer than 10 training examples, the base model is unknown or not a
        causal LM, or it has no chat template. resume=<job_id> continues a failed or cancelled job from its
        checkpoint (a job whose worker dies is resumed automatically).
        method='grpo' (local, hf-jobs) learns from a verifier instead of demonstrations: give suite=<file> or
        agent=<name>; its cases are the prompts and their checks (regex, contains, JSON Schema, expected tool call,
        reference) the reward; a share is held out as the dataset's test split for evaluate. check_job's rewards
        show the latest step's mean reward, spread and KL.
        Cloud jobs (openai, bedrock) cost money: availability is checked before anything is uploaded, and the quote
        (dry_run=true shows it) must fit the operator's budgets or be confirmed by the user, whom the server asks
        through elicitation when the client supports it (confirm_cost_usd counts only where the operator allowed
        argument confirmation); a retry with the same idempotency key never creates a second job.
        Next: poll check_job until status is succeeded, then evaluate or prompt_model with its model_id. cancel_job stops it.
        """
        arguments = request.domain_arguments()
        accepted = human_consent(cost_question, cost_answer, refused="Not started")
        if accepted is not None:
            arguments["human_usd"] = accepted
        return JobStatus(**await run_domain(orchestrator.start_job, ws, request.dataset_id, **arguments))

    @server.tool(annotations=ToolAnnotations(title="Pause a cloud job", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    @takes(PauseJobRequest)
    async def pause_job(request: PauseJobRequest) -> JobStatus:
        """Pause a running OpenAI fine-tuning job (it keeps its progress); start_job(resume=job_id) continues it.

        Use it to stop a cloud job's training (and its further cost) while keeping the option to finish it later;
        pausing itself is free. Local jobs are stopped with cancel_job instead (their checkpoint is kept). Next:
        check_job shows it paused; start_job(resume=job_id) continues it.
        """
        return JobStatus(**await run_domain(orchestrator.pause_job, ws, request.job_id))

    @server.tool(annotations=ToolAnnotations(title="Check a job", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    async def check_job(
        job_id: Annotated[str, Field(description="A job_id from start_job or list_jobs.")],
        events: Annotated[int, Field(ge=0, le=200, description="How many recent events to include.")] = 5,
        include_loss_curve: Annotated[bool, Field(description="Also return the loss curve (train/validation loss, learning rate per step) as a PNG image.")] = False,
    ) -> Annotated[CallToolResult, JobStatus]:
        """Show a job's status, progress (step/total, epoch, ETA), latest train and validation loss and recent events.

        Poll it every 10-30 seconds while a job runs. When status is succeeded, model_id names the tuned model for
        evaluate and prompt_model; when failed, error says why. include_loss_curve=true adds the loss curve as an
        image (also readable as resource jobs://{job_id}/loss.png); ask for it now and then, not on every poll.
        Free and read-only (a cloud job's status is fetched from its provider, at no charge).
        """
        status = JobStatus(**_shortened(await run_domain(orchestrator.check_job, ws, job_id, events)))
        # Built by hand so an image can travel beside the structured output; the text block is the same JSON.
        content: list[TextContent | ImageContent] = [TextContent(type="text", text=status.model_dump_json(indent=2))]
        if include_loss_curve:
            try:
                from model_customization.jobs.plots import loss_curve_png  # loaded on first use

                png = await run_domain(loss_curve_png, ws, job_id)
                content.append(Image(data=png, format="png").to_image_content())
            except ToolError as error:  # no metrics yet: the status is still the answer, the note says why no image
                content.append(TextContent(type="text", text=f"No loss curve: {error}"))
        return CallToolResult(content=content, structured_content=status.model_dump(mode="json"))

    @server.tool(annotations=ToolAnnotations(title="Cancel a job", read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True))
    @takes(CancelJobRequest)
    async def cancel_job(request: CancelJobRequest) -> JobStatus:
        """Stop a queued or running job at once: its worker process is ended and the job marked cancelled.

        Use it when a job is wrong (bad data, a loss that does not fall) or no longer needed. Free; a cloud job is
        cancelled at its provider too (training it already did there may still be billed). Its last checkpoint is
        kept: start_job(resume=job_id) continues from there. Refused for a job that has already ended.
        """
        return JobStatus(**await run_domain(orchestrator.cancel_job, ws, request.job_id))

    @server.tool(annotations=ToolAnnotations(title="List jobs", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    @takes(ListJobsRequest)
    async def list_jobs(request: ListJobsRequest) -> JobList:
        """List fine-tuning jobs, newest first, with status, progress and the tuned model_id of finished ones.

        Filter by status (e.g. running) to find what is in flight. Free and read-only. Next: check_job on one job for
        losses, ETA and events.
        """
        page = await run_domain(orchestrator.list_jobs_page, ws, request.status, request.limit, request.cursor)
        return JobList(jobs=[JobSummary(**r) for r in page["jobs"]], next_cursor=page["next_cursor"])

    @server.tool(annotations=ToolAnnotations(title="List a job's events", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @takes(ListJobEventsRequest)
    async def list_job_events(request: ListJobEventsRequest) -> JobEventPage:
        """Page through all of a job's events, oldest first: worker launches, epochs, checkpoints, warnings, errors, the result.

        check_job shows only the latest few; use this to read a job's whole history (e.g. why it failed or was resumed).
        next_cursor is null on the last page; a running job adds events later (call again with the cursor that led
        to the last page to see them). Free and read-only (reads the ledger; no provider is called).
        """
        page = await run_domain(orchestrator.list_job_events, ws, request.job_id, request.limit, request.cursor)
        where = "read the resource jobs://" + request.job_id + "/events (every event, whole)"
        events = [JobEvent(**{**e, "message": truncate_text(e["message"], where)}) for e in page["events"]]
        return JobEventPage(job_id=page["job_id"], events=events, next_cursor=page["next_cursor"])
