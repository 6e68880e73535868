"""Input models of the cloud providers' own operations: OpenAI training files, Bedrock provisioned throughput."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from model_customization.operations.bounds import BoundedRequest


class ListTrainingFilesRequest(BoundedRequest):
    limit: Annotated[int, Field(ge=1, le=100, description="Files per page.")] = 20
    after: Annotated[str | None, Field(description="next_after from the previous page; omit for the newest files.")] = None


class DeleteTrainingFileRequest(BoundedRequest):
    file_id: Annotated[str, Field(description="An OpenAI file id (file-...) from upload_training_file or list_training_files.")]


class ThroughputStatusRequest(BoundedRequest):
    model_id: Annotated[str, Field(description="A tuned Bedrock model that provision_throughput was called for.")]


class ReleaseThroughputRequest(BoundedRequest):
    model_id: Annotated[str, Field(description="A tuned Bedrock model whose provisioned throughput should be deleted.")]
