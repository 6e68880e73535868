"""MCP tools over datasets: build from memory, list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.datasets.filters import ConversationFilter
from model_customization.tools.common import progress_reporter, run_domain
from model_customization.workspace import Workspace


class SplitCounts(BaseModel):
    train: int
    validation: int
    test: int


class BuildDatasetResult(BaseModel):
    dataset_id: str = Field(description="Id to pass to start_job and evaluate.")
    counts: SplitCounts
    dropped: dict[str, int] = Field(description="Conversations left out, by reason (e.g. no_assistant_message, exact_duplicate).")
    problem_count: int = Field(description="Unreadable lines or files; each is listed in problems (first 50).")
    problems: list[str] = Field(description="file:line: what was wrong, for lines that could not be read.")
    already_existed: bool = Field(description="True when the same content was built before; nothing new was stored.")
    redactions: dict[str, int] = Field(description="Secrets and personal data replaced by placeholders, by kind.")
    resource_uri: str


class Finding(BaseModel):
    split: str
    line: int = Field(description="Line in the split's JSONL file (or in the given file); 0 for the whole dataset.")
    severity: Literal["error", "warning"]
    code: str
    message: str


class SplitTokens(BaseModel):
    examples: int
    total: int
    mean: float
    max: int
    p95: int


class InspectionResult(BaseModel):
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


class DatasetSummary(BaseModel):
    dataset_id: str
    name: str
    counts: SplitCounts
    resource_uri: str


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]
    total: int
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null on the last page.")


class DeletedDataset(BaseModel):
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
    async def build_dataset_from_memory(
        paths: Annotated[list[str], Field(description="Memory files or folders: OpenAI chat JSONL files and/or Claude Code transcripts (*.jsonl; folders are searched recursively).", min_length=1)],
        name: Annotated[str | None, Field(description="A readable name for the dataset.")] = None,
        seed: Annotated[int, Field(description="Seed of the train/validation/test split.", ge=0)] = 0,
        validation_fraction: Annotated[float, Field(ge=0, lt=1, description="Share of sessions held out for validation loss.")] = 0.1,
        test_fraction: Annotated[float, Field(ge=0, lt=1, description="Share of sessions held out for evaluate (the test split).")] = 0.1,
        method: Annotated[Literal["sft", "dpo"], Field(description="sft: conversations; dpo: preference pairs (OpenAI preference files, ChatGPT regenerations rated up vs down, best vs worst rewarded attempts at one task).")] = "sft",
        example_mode: Annotated[Literal["conversation", "turns"], Field(description="conversation: one example per session, every assistant turn learned; turns: one example per assistant turn.")] = "conversation",
        outcome: Annotated[Literal["any", "successful", "failed"], Field(description="Keep sessions by outcome (errors, rejections, interruptions, rewards, ratings).")] = "any",
        min_turns: Annotated[int | None, Field(ge=0, description="Keep sessions with at least this many turns (user requests the assistant answered).")] = None,
        max_turns: Annotated[int | None, Field(ge=0, description="Keep sessions with at most this many turns.")] = None,
        since: Annotated[datetime | None, Field(description="Keep sessions started at or after this time (ISO 8601).")] = None,
        until: Annotated[datetime | None, Field(description="Keep sessions started at or before this time.")] = None,
        tool_calls: Annotated[Literal["any", "with", "without"], Field(description="Keep sessions with or without tool calls.")] = "any",
        sources: Annotated[list[str] | None, Field(description="Glob patterns on source paths, file names or format names (e.g. 'claude_code', '*/project-x/*').")] = None,
        redact: Annotated[bool, Field(description="Replace secrets and personal data with typed placeholders before storing (on by default).")] = True,
        near_duplicate_threshold: Annotated[float | None, Field(gt=0, le=1, description="MinHash Jaccard threshold for near-duplicates; null keeps them.")] = 0.85,
        ctx: Context | None = None,
    ) -> BuildDatasetResult:
        """Turn agent memory (transcripts) into a stored, versioned training dataset.

        Use this first in the fine-tuning loop. Reads (files or folders, format detected per file): Claude Code
        transcripts, OpenAI chat and preference JSONL, ChatGPT exports, ShareGPT, the MCP memory server's graph,
        Letta agent files, tau-bench / ToolBench / SWE-agent trajectories and OpenTelemetry GenAI spans. Filters by
        outcome, turns, date, tool use and source; redacts secrets and personal data; removes exact and near
        duplicates; splits by session with a fixed seed. Unreadable lines are reported as file:line and the rest is
        kept; the card (resource_uri) counts everything left out and why. The same content always gets the same
        dataset_id. Free; seconds for typical memory. Next: inspect_dataset to validate and quote, then start_job.
        """
        from model_customization.datasets.build import build_dataset  # loaded on first use: start-up stays short

        report = progress_reporter(ctx)
        try:
            filters = ConversationFilter(outcome=outcome, min_turns=min_turns, max_turns=max_turns, since=since, until=until, tool_calls=tool_calls, sources=sources)
        except ValueError as error:
            raise ToolError(f"Invalid filter: {error}.") from error
        result = await run_domain(
            build_dataset,
            ws,
            paths,
            name=name,
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            method=method,
            example_mode=example_mode,
            filters=filters,
            redact=redact,
            near_duplicate_threshold=near_duplicate_threshold,
            progress=(lambda n, message: report(n, None, message)) if report else None,
        )
        return BuildDatasetResult(
            dataset_id=result.dataset_id,
            counts=SplitCounts(**result.counts),
            dropped=result.dropped,
            problem_count=result.problem_count,
            problems=result.problems,
            already_existed=result.already_existed,
            redactions=result.card.get("redactions", {}),
            resource_uri=f"datasets://{result.dataset_id}",
        )

    @server.tool(annotations=ToolAnnotations(title="List datasets", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    async def list_datasets(
        limit: Annotated[int, Field(ge=1, le=500, description="At most this many datasets, newest first.")] = 50,
        cursor: Annotated[str | None, Field(description="The next_cursor of the previous page; omit for the first page.")] = None,
    ) -> DatasetList:
        """List stored datasets, newest first, with their split sizes. Use it to find a dataset_id for start_job or evaluate.

        Free and read-only (reads this server's ledger). Next: inspect_dataset to validate and quote one, or read its
        card at datasets://{dataset_id}.
        """
        from model_customization.datasets.build import list_datasets_page  # loaded on first use

        page = await run_domain(list_datasets_page, ws, limit, cursor)
        return DatasetList(
            datasets=[
                DatasetSummary(dataset_id=r["id"], name=r["name"], counts=SplitCounts(**r["counts"]), resource_uri=f"datasets://{r['id']}")
                for r in page["datasets"]
            ],
            total=page["total"],
            next_cursor=page["next_cursor"],
        )

    @server.tool(annotations=ToolAnnotations(title="Delete a dataset", read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))
    async def delete_dataset(
        dataset_id: Annotated[str, Field(description="The dataset to delete (list_datasets shows them).")],
        force: Annotated[bool, Field(description="Delete it even though evaluations or agent suites name it (their stored results stay readable).")] = False,
    ) -> DeletedDataset:
        """Delete a stored dataset: its examples, card and ledger entry. Cannot be undone (build it again from the same memory to get it back).

        Refused while a job trained on it (jobs keep their dataset as the lineage of their models), and, unless
        force=true, while evaluations or agent suites name it; the refusal lists them. Free and immediate. Use
        list_datasets first to be sure of the dataset_id.
        """
        from model_customization.datasets.build import delete_dataset as remove_dataset  # loaded on first use

        return DeletedDataset(**await run_domain(remove_dataset, ws, dataset_id, force))

    @server.tool(annotations=ToolAnnotations(title="Validate and quote a dataset", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    async def inspect_dataset(
        dataset_id: Annotated[str | None, Field(description="A stored dataset (from build_dataset_from_memory or list_datasets).")] = None,
        path: Annotated[str | None, Field(description="Or a JSONL file of OpenAI-format training examples to check as it is.")] = None,
        provider: Annotated[Literal["openai", "bedrock", "local"], Field(description="The provider whose format, limits and prices apply.")] = "openai",
        model: Annotated[str | None, Field(description="e.g. gpt-4.1-mini (OpenAI) or SmolLM2-135M-Instruct (local); a default per provider when omitted.")] = None,
        epochs: Annotated[int | None, Field(ge=1, le=100, description="Omit for the provider's default rule.")] = None,
        max_seq_length: Annotated[int, Field(ge=16, le=32768, description="Local jobs: longer examples are truncated.")] = 512,
    ) -> InspectionResult:
        """Check a dataset (or a file) for a provider and model, and say what a job on it would cost, without starting anything.

        Call this before start_job. It runs the format checks (with split and line for every finding), counts tokens
        with the model's real tokenizer offline (o200k/cl100k for OpenAI, the model's own for local), applies the
        per-example token limit and OpenAI's default epoch rule, and quotes billed tokens and dollars (prices dated), or
        for local jobs the trained tokens and an estimated time. Free; takes seconds.
        """
        from model_customization.datasets.inspect import inspect_dataset as run_inspection  # loaded on first use

        result = await run_domain(
            run_inspection, ws, dataset_id=dataset_id, path=path, provider=provider, model=model, epochs=epochs, max_seq_length=max_seq_length
        )
        return InspectionResult(**result)
