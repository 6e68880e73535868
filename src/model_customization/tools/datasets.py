"""MCP tools over datasets: build from memory, list."""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.operations.datasets import BuildDatasetRequest, DeleteDatasetRequest, InspectDatasetRequest, ListDatasetsRequest
from model_customization.tools.common import lazy_module, progress_reporter, run_domain, takes
from model_customization.workspace import Workspace

# imported on first use: the server's start-up stays short
build = lazy_module("model_customization.datasets.build")
inspection = lazy_module("model_customization.datasets.inspect")


class SplitCounts(DeferredModel):
    train: int
    validation: int
    test: int


class BuildDatasetResult(DeferredModel):
    dataset_id: str = Field(description="Id to pass to start_job and evaluate.")
    counts: SplitCounts
    dropped: dict[str, int] = Field(description="Conversations left out, by reason (e.g. no_assistant_message, exact_duplicate).")
    problem_count: int = Field(description="Unreadable lines or files; each is listed in problems (first 50).")
    problems: list[str] = Field(description="file:line: what was wrong, for lines that could not be read.")
    skipped_count: int = Field(0, description="Files a folder walk passed over on purpose (a suffix no memory format reads, a Markdown file no format recognises, a .git folder).")
    skipped: list[str] = Field(default_factory=list, description="file: why it was skipped (first 50).")
    already_existed: bool = Field(description="True when the same content was built before; nothing new was stored.")
    redactions: dict[str, int] = Field(description="Secrets and personal data replaced by placeholders, by kind.")
    resource_uri: str


class Finding(DeferredModel):
    split: str
    line: int = Field(description="Line in the split's JSONL file (or in the given file); 0 for the whole dataset.")
    severity: Literal["error", "warning"]
    code: str
    message: str


class SplitTokens(DeferredModel):
    examples: int
    total: int
    mean: float
    max: int
    p95: int


class InspectionResult(DeferredModel):
    source: str
    provider: str
    model: str
    valid: bool = Field(description="True when there is no error: a job may start.")
    errors: int
    warnings: int
    finding_counts: dict[str, int]
    findings: list[Finding] = Field(description="The first 50 findings, errors first.")
    counts: dict[str, int] = Field(description="Examples per split.")
    token_stats: dict[str, SplitTokens]
    tokenizer: str
    truncated_examples: int | None = None
    quote: dict[str, Any] = Field(description="Epochs, billed or trained tokens, estimated cost (USD) and, for local jobs, estimated seconds.")


class DatasetSummary(DeferredModel):
    dataset_id: str
    name: str
    counts: SplitCounts
    resource_uri: str


class DatasetList(DeferredModel):
    datasets: list[DatasetSummary]
    total: int
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null on the last page.")


class DeletedDataset(DeferredModel):
    dataset_id: str
    name: str
    deleted: bool
    files_removed: bool = Field(description="False when its folder could not be removed (doctor lists what is left).")
    bytes_freed: int
    forced: bool = Field(description="True when evaluations or agent suites still name it (deleted because force=true).")
    notes: list[str]


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(
        annotations=ToolAnnotations(title="Build a dataset from memory", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
    )
    @takes(BuildDatasetRequest)
    async def build_dataset_from_memory(request: BuildDatasetRequest, ctx: Context | None = None) -> BuildDatasetResult:
        """Turn agent memory (transcripts) into a stored, versioned training dataset.

        Use this first in the fine-tuning loop (find_memory shows which agents' memory this machine holds). Reads
        files or folders in every format the paths argument lists, detected per file: coding agents' transcripts,
        chat exports, fine-tuning files, trajectories and traces. Filters by outcome, turns, date, tool use and
        source; redacts secrets and personal data; removes exact and near
        duplicates; splits by session with a fixed seed. Unreadable lines are reported as file:line and the rest is
        kept; the card (resource_uri) counts everything left out and why. The same content always gets the same
        dataset_id. Free; seconds for typical memory. Next: inspect_dataset to validate and quote, then start_job.
        """
        report = progress_reporter(ctx)
        result = await run_domain(
            build.build_dataset_from_request, ws, request, progress=(lambda n, message: report(n, None, message)) if report else None
        )
        return BuildDatasetResult(
            dataset_id=result.dataset_id,
            counts=SplitCounts(**result.counts),
            dropped=result.dropped,
            problem_count=result.problem_count,
            problems=result.problems,
            skipped_count=result.skipped_count,
            skipped=result.skipped,
            already_existed=result.already_existed,
            redactions=result.card.get("redactions", {}),
            resource_uri=f"datasets://{result.dataset_id}",
        )

    @server.tool(annotations=ToolAnnotations(title="List datasets", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @takes(ListDatasetsRequest)
    async def list_datasets(request: ListDatasetsRequest) -> DatasetList:
        """List stored datasets, newest first, with their split sizes. Use it to find a dataset_id for start_job or evaluate.

        Free and read-only (reads this server's ledger). Next: inspect_dataset to validate and quote one, or read its
        card at datasets://{dataset_id}.
        """
        page = await run_domain(build.list_datasets_page, ws, request.limit, request.cursor)
        return DatasetList(
            datasets=[
                DatasetSummary(dataset_id=r["id"], name=r["name"], counts=SplitCounts(**r["counts"]), resource_uri=f"datasets://{r['id']}")
                for r in page["datasets"]
            ],
            total=page["total"],
            next_cursor=page["next_cursor"],
        )

    @server.tool(annotations=ToolAnnotations(title="Delete a dataset", read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))
    @takes(DeleteDatasetRequest)
    async def delete_dataset(request: DeleteDatasetRequest) -> DeletedDataset:
        """Delete a stored dataset: its examples, card and ledger entry. Cannot be undone (build it again from the same memory to get it back).

        Refused while a job trained on it (jobs keep their dataset as the lineage of their models), and, unless
        force=true, while evaluations or agent suites name it; the refusal lists them. Free and immediate. Use
        list_datasets first to be sure of the dataset_id.
        """
        return DeletedDataset(**await run_domain(build.delete_dataset, ws, request.dataset_id, request.force))

    @server.tool(annotations=ToolAnnotations(title="Validate and quote a dataset", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @takes(InspectDatasetRequest)
    async def inspect_dataset(request: InspectDatasetRequest) -> InspectionResult:
        """Check a dataset (or a file) for a provider and model, and say what a job on it would cost, without starting anything.

        Call this before start_job. It runs the format checks (with split and line for every finding), counts tokens
        with the model's real tokenizer offline (o200k/cl100k for OpenAI, the model's own for local), applies the
        per-example token limit and OpenAI's default epoch rule, and quotes billed tokens and dollars (prices dated), or
        for local jobs the trained tokens and an estimated time. Free; takes seconds.
        """
        return InspectionResult(**await run_domain(inspection.inspect_dataset, ws, **request.model_dump()))
