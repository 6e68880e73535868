"""MCP tools over datasets: build from memory, list."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.datasets.build import build_dataset
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
    resource_uri: str


class DatasetSummary(BaseModel):
    dataset_id: str
    name: str
    counts: SplitCounts
    resource_uri: str


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]
    total: int


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(
        annotations=ToolAnnotations(title="Build a dataset from memory", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
    )
    async def build_dataset_from_memory(
        paths: Annotated[list[str], Field(description="Memory files or folders: OpenAI chat JSONL files and/or Claude Code transcripts (*.jsonl; folders are searched recursively).", min_length=1)],
        name: Annotated[str | None, Field(description="A readable name for the dataset.")] = None,
        seed: Annotated[int, Field(description="Seed of the train/validation/test split.", ge=0)] = 0,
        validation_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        ctx: Context | None = None,
    ) -> BuildDatasetResult:
        """Turn agent memory (transcripts) into a stored, versioned training dataset.

        Use this first in the fine-tuning loop. Reads OpenAI chat fine-tuning JSONL and Claude Code transcript JSONL
        (a file, several files or folders), keeps every conversation that has something to learn, removes exact
        duplicates, and splits by session into train/validation/test with a fixed seed. Unreadable lines are
        reported as file:line and the rest is kept. The same content always gets the same dataset_id. Costs nothing
        and takes seconds. Next: start_job with the dataset_id (it needs at least 10 training examples).
        """
        report = progress_reporter(ctx)
        result = await run_domain(
            build_dataset,
            ws,
            paths,
            name=name,
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            progress=(lambda n, message: report(n, None, message)) if report else None,
        )
        return BuildDatasetResult(
            dataset_id=result.dataset_id,
            counts=SplitCounts(**result.counts),
            dropped=result.dropped,
            problem_count=result.problem_count,
            problems=result.problems,
            already_existed=result.already_existed,
            resource_uri=f"datasets://{result.dataset_id}",
        )

    @server.tool(annotations=ToolAnnotations(title="List datasets", read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    async def list_datasets(limit: Annotated[int, Field(ge=1, le=500)] = 50) -> DatasetList:
        """List stored datasets, newest first, with their split sizes. Use it to find a dataset_id for start_job or evaluate."""
        rows = await run_domain(ws.ledger.list_datasets)
        return DatasetList(
            datasets=[
                DatasetSummary(dataset_id=r["id"], name=r["name"], counts=SplitCounts(**r["counts"]), resource_uri=f"datasets://{r['id']}")
                for r in rows[:limit]
            ],
            total=len(rows),
        )
