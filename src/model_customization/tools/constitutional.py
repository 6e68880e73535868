"""MCP tool: generate constitutional training data (answer, critique and revise against principles)."""

# No `from __future__ import annotations` here: the Resolve(...) parameters name closures.

from typing import Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.operations.datasets import ConstitutionalDatasetRequest
from model_customization.jobs.spending import Consent
from model_customization.tools.common import lazy_module, progress_reporter, run_domain, takes
from model_customization.tools.spending import CostQuestion, client_can_elicit, elicitation_parameters, human_consent, question_for
from model_customization.workspace import Workspace

constitutional = lazy_module("model_customization.datasets.constitutional")  # imported on first use: start-up stays short


class ConstitutionalSplitCounts(DeferredModel):
    train: int
    validation: int
    test: int


class FailedPrompt(DeferredModel):
    prompt_index: int = Field(description="Position of the prompt among those read (0-based).")
    prompt_id: str = Field(description="sha256 of the redacted prompt; the same id as in the card's constitution records.")
    stage: Literal["answer", "critique", "revise"]
    principle_index: int | None = Field(description="Which principle (0-based) the critique or revision was for; null for the first answer.")
    reason: str = Field(description="e.g. answer_empty, critique_error, revise_empty.")
    detail: str


class ConstitutionalDatasetResult(DeferredModel):
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
    def generation_cost_question(
        ctx: Context,
        principles: list[str],
        model: str,
        prompts: list[str] | None = None,
        dataset_id: str | None = None,
        split: str = "train",
        limit: int | None = None,
        name: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
    ) -> CostQuestion | None:
        """Before generate_constitutional_dataset runs: the question a person must answer about its paid calls when
        they pass the budgets; None when the client cannot be asked or nothing needs asking."""
        if not client_can_elicit(ctx):
            return None

        def check() -> None:
            request = ConstitutionalDatasetRequest(
                principles=principles, model=model, prompts=prompts, dataset_id=dataset_id, split=split, limit=limit, name=name,
                max_tokens=max_tokens, temperature=temperature, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
            )
            constitutional.check_constitutional_spending(ws, request)

        return question_for(check)

    GenerationQuestion, GenerationAnswer = elicitation_parameters(generation_cost_question)

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
    async def generate_constitutional_dataset(
        request: ConstitutionalDatasetRequest, ctx: Context | None = None, cost_question: GenerationQuestion = None, cost_answer: GenerationAnswer = None
    ) -> ConstitutionalDatasetResult:
        """Make harmlessness (or any principle-driven) training data: a model answers each prompt, critiques its own answer against each principle and revises it.

        Stores two datasets: SFT (prompt + final revision) for start_job(method='sft') and DPO (revision preferred
        over the first answer) for start_job(method='dpo'). Both cards keep the principles and every critique and
        revision. Cost: 1 + 2 * len(principles) model calls per prompt (e.g. 3 principles x 100 prompts = 700 calls);
        with a cloud model each call is billed: the whole run is quoted first and runs within the operator's budgets
        or once the user confirms it (asked through elicitation when the client supports it); try a few prompts
        first with limit. A prompt whose call fails or
        comes back empty is reported in failures and left out. Prompts are redacted before they are sent. Next:
        inspect_dataset on either id, then start_job.
        """
        accepted = human_consent(cost_question, cost_answer, refused="Nothing generated")
        result = await run_domain(
            constitutional.generate_constitutional_dataset, ws, request, progress=progress_reporter(ctx), consent=Consent(human_usd=accepted)
        )
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
