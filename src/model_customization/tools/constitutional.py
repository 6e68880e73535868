"""MCP tool: generate constitutional training data (answer, critique and revise against principles)."""

from __future__ import annotations

from typing import Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.operations.datasets import ConstitutionalDatasetRequest
from model_customization.tools.common import lazy_module, progress_reporter, run_domain, takes
from model_customization.workspace import Workspace

constitutional = lazy_module("model_customization.datasets.constitutional")  # imported on first use: start-up stays short


class ConstitutionalSplitCounts(BaseModel):
    train: int
    validation: int
    test: int


class FailedPrompt(BaseModel):
    prompt_index: int = Field(description="Position of the prompt among those read (0-based).")
    prompt_id: str = Field(description="sha256 of the redacted prompt; the same id as in the card's constitution records.")
    stage: Literal["answer", "critique", "revise"]
    principle_index: int | None = Field(description="Which principle (0-based) the critique or revision was for; null for the first answer.")
    reason: str = Field(description="e.g. answer_empty, critique_error, revise_empty.")
    detail: str


class ConstitutionalDatasetResult(BaseModel):
    sft_dataset_id: str = Field(description="Supervised dataset: each prompt with its final revised answer. Train it with start_job(method='sft').")
    dpo_dataset_id: str | None = Field(description="Preference dataset: final revision preferred over the first answer. Train it with start_job(method='dpo'). Null when no revision differed from its answer.")
    sft_counts: ConstitutionalSplitCounts
    dpo_counts: ConstitutionalSplitCounts | None
    prompts_read: int = Field(description="Distinct prompts sent to the model.")
    succeeded: int = Field(description="Prompts answered, critiqued and revised against every principle.")
    failed: int = Field(description="Prompts left out because a model call failed or came back empty.")
    failures: dict[str, int] = Field(description="Failed prompts by reason.")
    failed_prompts: list[FailedPrompt] = Field(description="The first failed prompts, with the step and reason.")
    dropped: dict[str, int] = Field(description="Prompts not used, by reason (duplicate_prompt, no_user_message, over_limit, failed:<reason>).")
    revisions_unchanged: int = Field(description="Prompts whose final revision equals the first answer: in the SFT dataset, not in the DPO one.")
    model_calls: int
    usage: dict[str, int] = Field(description="Tokens used over all calls, and how many replies were cut at max_tokens.")
    redactions: dict[str, int] = Field(description="Secrets and personal data replaced by placeholders, by kind.")
    already_existed: dict[str, bool | None] = Field(description="Per dataset: true when the same content was stored before.")
    sft_resource_uri: str = Field(description="The SFT dataset's card; its `constitution` section holds the principles and every critique and revision.")
    dpo_resource_uri: str | None
    note: str | None = None


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(
        annotations=ToolAnnotations(
            title="Generate a constitutional dataset",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,  # a hosted model may answer differently (and bills again) on a second call
            open_world_hint=True,  # cloud models are called when the model names one
        ),
    )
    @takes(ConstitutionalDatasetRequest)
    async def generate_constitutional_dataset(request: ConstitutionalDatasetRequest, ctx: Context | None = None) -> ConstitutionalDatasetResult:
        """Make harmlessness (or any principle-driven) training data: a model answers each prompt, critiques its own answer against each principle and revises it.

        Stores two datasets: SFT (prompt + final revision) for start_job(method='sft') and DPO (revision preferred
        over the first answer) for start_job(method='dpo'). Both cards keep the principles and every critique and
        revision. Cost: 1 + 2 * len(principles) model calls per prompt (e.g. 3 principles x 100 prompts = 700 calls);
        with a cloud model each call is billed, so try a few prompts first with limit. A prompt whose call fails or
        comes back empty is reported in failures and left out. Prompts are redacted before they are sent. Next:
        inspect_dataset on either id, then start_job.
        """
        result = await run_domain(constitutional.generate_constitutional_dataset, ws, request, progress=progress_reporter(ctx))
        dpo_id = result["dpo_dataset_id"]
        return ConstitutionalDatasetResult(
            sft_dataset_id=result["sft_dataset_id"],
            dpo_dataset_id=dpo_id,
            sft_counts=ConstitutionalSplitCounts(**result["counts"]["sft"]),
            dpo_counts=ConstitutionalSplitCounts(**result["counts"]["dpo"]) if result["counts"]["dpo"] else None,
            prompts_read=result["prompts_read"],
            succeeded=result["succeeded"],
            failed=result["failed"],
            failures=result["failures"],
            failed_prompts=[FailedPrompt(**f) for f in result["failed_prompts"][:20]],
            dropped=result["dropped"],
            revisions_unchanged=result["revisions_unchanged"],
            model_calls=result["model_calls"],
            usage=result["usage"],
            redactions=result["redactions"],
            already_existed=result["already_existed"],
            sft_resource_uri=f"datasets://{result['sft_dataset_id']}",
            dpo_resource_uri=f"datasets://{dpo_id}" if dpo_id else None,
            note=result["note"],
        )
