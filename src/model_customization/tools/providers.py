"""MCP tools over what a cloud provider holds for us: OpenAI training files and Bedrock provisioned throughput."""

# No `from __future__ import annotations` here: provision_throughput's Resolve(ask_to_buy) names a closure, so its
# annotations must be evaluated where they are written.
from typing import Annotated, Literal

from mcp.server.elicitation import AcceptedElicitation, DeclinedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.errors import NotFoundError, UserError
from model_customization.providers.registry import find_provider
from model_customization.operations.cloud import (
    DeleteTrainingFileRequest,
    ListTrainingFilesRequest,
    ReleaseThroughputRequest,
    ThroughputStatusRequest,
)
from model_customization.tools.common import run_domain, takes
from model_customization.tools.spending import NotAsked, client_can_elicit
from model_customization.workspace import Workspace

PRICING_PAGE = "aws.amazon.com/bedrock/pricing"


# --- OpenAI training files ----------------------------------------------------------------------------------------
class UploadedTrainingFile(DeferredModel):
    file_id: str = Field(description="OpenAI's file id (file-...), usable as a fine-tuning job's training or validation file.")
    filename: str = Field(description="The name on OpenAI; it carries the content's sha256 and size, so the upload can be found again.")
    bytes: int
    sha256: str = Field(description="sha256 of the uploaded JSONL: the same dataset split always gives the same bytes.")
    dataset_id: str
    split: str
    examples: int = Field(description="Examples in the split, one JSONL line each.")
    reused: bool = Field(description="True when no bytes were sent: a file with this exact content was already on OpenAI.")
    how: Literal["uploaded", "reused", "found"] = Field(
        description="uploaded: sent now; reused: this data home uploaded it before; found: in OpenAI's file list (another data home or an interrupted upload)."
    )


class TrainingFileSummary(DeferredModel):
    file_id: str
    filename: str
    bytes: int
    created_at: str | None
    status: str | None = Field(description="OpenAI's processing status (processed, error ...), when it reports one.")
    sha256: str | None = Field(description="The content's sha256 for files this tool uploaded; None for files uploaded some other way.")
    uploaded_from_this_data_home: bool


class TrainingFilePage(DeferredModel):
    files: list[TrainingFileSummary] = Field(description="Fine-tune files, newest first.")
    has_more: bool
    next_after: str | None = Field(description="Pass as after= to get the next page; None on the last page.")


class DeletedTrainingFile(DeferredModel):
    file_id: str
    deleted: bool


# --- Bedrock provisioned throughput ---------------------------------------------------------------------------------
class Throughput(DeferredModel):
    model_id: str
    provisioned_model_arn: str = Field(description="What Bedrock bills and what prompt_model sends requests to.")
    provisioned_model_name: str | None
    status: str | None = Field(description="Bedrock's word: Creating, InService, Updating or Failed.")
    model_units: int | None
    desired_model_units: int | None = None
    commitment: str | None = Field(description="None (hourly, no term), OneMonth or SixMonths.")
    commitment_expires_at: str | None = None
    failure_message: str | None = None
    billing: str | None = Field(None, description="How it is billed (set when this call bought it).")
    note: str | None = Field(None, description="Set when nothing new was bought because the model already had throughput.")
    next: str | None = None


class ReleasedThroughput(DeferredModel):
    model_id: str
    released: str = Field(description="The ARN of the provisioned throughput that was deleted.")
    note: str


class ThroughputConfirmation(DeferredModel):
    confirm: bool = Field(description="Buy the provisioned throughput and accept its hourly bill.")


def _openai_files():
    """providers.openai.files, imported on first use so that server start-up stays short."""
    from model_customization.providers.openai import files

    return files


def _bedrock_training():
    """providers.bedrock.training, imported on first use (it brings the renderers and the Bedrock helpers)."""
    from model_customization.providers.bedrock import training

    return training


def _needs_purchase(ws: Workspace, model_id: str) -> bool:
    """True when provision_throughput's refusal can only be about the cost.

    The input schema already bounds model_units and commitment, so a tuned Bedrock model that has no throughput yet
    passes every other check; anything else (unknown model, another provider, already provisioned) keeps the
    domain's own answer and is never put to the user.
    """
    row = ws.store.models.get(model_id)
    details = (row or {}).get("details") or {}
    provider = find_provider(row["provider"]) if row else None
    return provider is not None and provider.can("provision") and bool(details.get("model_arn")) and not details.get("provisioned_model_arn")


def _purchase_question(model_id: str, model_units: int, commitment: str | None) -> str:
    term = f"a {commitment} commitment, billed for the whole term even if released early" if commitment else "no commitment"
    return (
        f"Buy Amazon Bedrock provisioned throughput for the tuned model {model_id}: {model_units} model unit(s), {term}. "
        f"It is billed by the hour for each model unit from now until it is released, whether or not it is used "
        f"(hourly price: {PRICING_PAGE}). Buy it?"
    )


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="Upload a training file to OpenAI", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    async def upload_training_file(
        dataset_id: Annotated[str, Field(description="From build_dataset_from_memory or list_datasets.")],
        split: Annotated[Literal["train", "validation", "test"], Field(description="Which split of the dataset to upload.")] = "train",
    ) -> UploadedTrainingFile:
        """Upload one split of a dataset to OpenAI as a fine-tuning file (JSONL in OpenAI's chat format); returns its file_id.

        The same content is never uploaded twice: the file is known by the sha256 of its bytes, so a repeated call,
        another data home, or a retry after a dropped connection reuses the copy already on OpenAI (reused=true).
        start_job(provider='openai') uploads what it needs by itself; use this to check a dataset is accepted by
        OpenAI before paying for a job, or to use the file elsewhere. Needs OPENAI_API_KEY. Uploading is free, but
        stored files count against the organisation's storage. Next: list_training_files shows what is there,
        delete_training_file removes a file.
        """
        return UploadedTrainingFile(**await run_domain(_openai_files().upload_dataset_file, ws, dataset_id, split))

    @server.tool(annotations=ToolAnnotations(title="List OpenAI training files", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    @takes(ListTrainingFilesRequest)
    async def list_training_files(request: ListTrainingFilesRequest) -> TrainingFilePage:
        """List the fine-tune files on OpenAI for this API key, newest first, one page at a time.

        Each file shows its size, status, the sha256 of its content when this tool uploaded it, and whether this data
        home uploaded it. Free and read-only; needs OPENAI_API_KEY. When has_more is true, call again with
        after=next_after for the next page. Next:
        delete_training_file(file_id) removes a file that is no longer needed (jobs that used it keep their results).
        """
        page = await run_domain(_openai_files().list_files, ws, request.limit, request.after)
        summaries = [TrainingFileSummary(file_id=f["id"], **{k: v for k, v in f.items() if k in TrainingFileSummary.model_fields}) for f in page["files"]]
        return TrainingFilePage(files=summaries, has_more=page["has_more"], next_after=page["next_after"])

    @server.tool(annotations=ToolAnnotations(title="Delete an OpenAI training file", read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True))
    @takes(DeleteTrainingFileRequest)
    async def delete_training_file(request: DeleteTrainingFileRequest) -> DeletedTrainingFile:
        """Delete a training file on OpenAI for good, and forget it here so a later upload of the same content sends it again.

        Fine-tuning jobs and tuned models made from the file are not affected. It cannot be undone: the file must be
        uploaded again (upload_training_file) to train on it. Free (it ends the file's storage on OpenAI); needs
        OPENAI_API_KEY. Refused, with nothing deleted, for an id OpenAI does not know: list_training_files shows the
        files there are.
        """
        try:
            result = await run_domain(_openai_files().delete_file, ws, request.file_id)
        except ToolError as error:
            if isinstance(error.__cause__, NotFoundError):  # the domain names its own function; name the tool instead
                raise ToolError(f"OpenAI has no file {request.file_id!r} for this key; nothing was deleted. list_training_files shows the files there are.") from error
            raise
        return DeletedTrainingFile(file_id=result["id"], deleted=result["deleted"])

    def ask_to_buy(ctx: Context, model_id: str, model_units: int = 1, commitment: str | None = None, confirm: bool = False) -> Elicit[ThroughputConfirmation] | NotAsked:
        """Before provision_throughput runs: the hourly bill is put to the user (MCP elicitation) when the client can be asked.

        A resolver, so it works on both protocol generations (a mid-call request on older ones, an input-required
        round trip on 2026-07-28 and later). Nothing is asked when confirm=true or when there is nothing to buy.
        """
        argument_counts = confirm and ws.settings.allow_argument_confirmation
        if argument_counts or not client_can_elicit(ctx) or not _needs_purchase(ws, model_id):
            return NotAsked()
        return Elicit(_purchase_question(model_id, model_units, commitment), ThroughputConfirmation)

    @server.tool(annotations=ToolAnnotations(title="Buy Bedrock provisioned throughput", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    async def provision_throughput(
        model_id: Annotated[str, Field(description="A tuned Bedrock model: the model_id of a succeeded start_job(provider='bedrock').")],
        model_units: Annotated[int, Field(ge=1, le=100, description="Model units to buy; each is billed by the hour.")] = 1,
        commitment: Annotated[
            Literal["OneMonth", "SixMonths"] | None,
            Field(description="Omit for hourly billing with no term (release it any time); a commitment is cheaper per hour but billed for the whole term."),
        ] = None,
        confirm: Annotated[
            bool,
            Field(description="Counts only where the operator allowed argument confirmation; otherwise the user is asked through elicitation."),
        ] = False,
        purchase_answer: Annotated[ElicitationResult[ThroughputConfirmation], Resolve(ask_to_buy)] = None,
    ) -> Throughput:
        """Buy Amazon Bedrock provisioned throughput for a tuned Bedrock model (Nova, Llama, ...): how prompt_model reaches it.

        It costs money by the hour for every model unit, from creation until release_throughput deletes it, whether
        or not it is used. So the user is asked through elicitation when the client supports it; otherwise the call
        is refused with the terms (confirm=true stands in for the user only where the operator allowed argument
        confirmation). A model that already has throughput gets its status back and nothing new is bought. Needs AWS
        credentials and MODEL_CUSTOMIZATION_BEDROCK_REGION. Next: poll throughput_status until status is
        InService, then prompt_model(model=model_id); release_throughput when done, to stop the bill.
        """
        asked = purchase_answer is not None and not (isinstance(purchase_answer, AcceptedElicitation) and isinstance(purchase_answer.data, NotAsked))
        confirmed_by = "argument"
        if asked:
            if not (isinstance(purchase_answer, AcceptedElicitation) and purchase_answer.data.confirm):
                if isinstance(purchase_answer, AcceptedElicitation):
                    action = "accepted without confirming"
                else:
                    action = "declined" if isinstance(purchase_answer, DeclinedElicitation) else "cancelled"
                raise ToolError(f"Not provisioned: the user did not confirm the hourly cost ({action}). Nothing was bought.")
            confirm, confirmed_by = True, "elicitation"
        try:
            return Throughput(
                **await run_domain(_bedrock_training().provision_throughput, ws, model_id, model_units=model_units, commitment=commitment, confirm=confirm, confirmed_by=confirmed_by)
            )
        except ToolError as refusal:
            if not confirm and isinstance(refusal.__cause__, UserError) and _needs_purchase(ws, model_id):
                # The only refusal left for such a model is the cost: the agent must ask its user, not decide.
                raise ToolError(f"{refusal} Ask the user first: it is their money, and nothing was bought.") from refusal.__cause__
            raise

    @server.tool(annotations=ToolAnnotations(title="Check Bedrock provisioned throughput", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True))
    @takes(ThroughputStatusRequest)
    async def throughput_status(request: ThroughputStatusRequest) -> Throughput:
        """Show the state of a tuned Bedrock model's provisioned throughput as Bedrock reports it now.

        status goes Creating -> InService (ready: prompt_model(model=model_id) uses it); Failed comes with
        failure_message. Also shows the model units and any commitment term with its end. While it exists it is
        billed by the hour: release_throughput stops the bill. Refused for a model without throughput, naming
        provision_throughput.
        """
        return Throughput(**await run_domain(_bedrock_training().throughput_status, ws, request.model_id))

    @server.tool(annotations=ToolAnnotations(title="Release Bedrock provisioned throughput", read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True))
    @takes(ReleaseThroughputRequest)
    async def release_throughput(request: ReleaseThroughputRequest) -> ReleasedThroughput:
        """Delete a tuned Bedrock model's provisioned throughput: its hourly billing stops and the model can no longer be prompted.

        The tuned model itself stays (provision_throughput buys throughput again). Throughput under a commitment term
        cannot be deleted before the term ends; Bedrock's refusal says so. A throughput already deleted at Bedrock is
        forgotten here too. Releasing is free and stops the bill; prompting the model again needs a new purchase.
        Next: throughput_status to confirm it is gone, or provision_throughput to buy it again.
        """
        return ReleasedThroughput(**await run_domain(_bedrock_training().release_throughput, ws, request.model_id))
