"""Input models of the OpenAI-compatible endpoint's operations (chat completions; files and fine-tuning jobs).

They follow OpenAI's request bodies field by field, so an unchanged OpenAI client can send them; fields OpenAI
clients send that change nothing here (user, store, metadata on a chat, service_tier ...) are accepted and ignored,
while fields whose meaning cannot be honoured (n > 1, logprobs, a JSON response format) are refused by the domain
with the field named.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from model_customization.deferred_model import DeferredModel
from model_customization.operations.bounds import MAX_FIELD_CHARS

Name = Annotated[str, StringConstraints(max_length=MAX_FIELD_CHARS)]


class ChatCompletionRequest(DeferredModel):
    model_config = ConfigDict(extra="ignore")

    model: Name
    messages: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)]
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    seed: int | None = None
    stop: str | Annotated[list[Name], Field(max_length=4)] | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    tools: Annotated[list[dict[str, Any]] | None, Field(max_length=128)] = None
    tool_choice: str | dict[str, Any] | None = None
    n: Annotated[int | None, Field(ge=1, le=128)] = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None


SUPERVISED = "supervised"
PREFERENCE = "dpo"


class FineTuningMethod(DeferredModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: dict[str, Any] | None = None
    dpo: dict[str, Any] | None = None


class CreateFineTuningJobRequest(DeferredModel):
    model_config = ConfigDict(extra="ignore")

    model: Name
    training_file: Name
    validation_file: Name | None = None
    method: FineTuningMethod | None = None
    hyperparameters: dict[str, Any] | None = None  # the deprecated top-level form, read as supervised's
    suffix: Annotated[str | None, StringConstraints(max_length=64)] = None
    seed: Annotated[int | None, Field(ge=0, le=2_147_483_647)] = None
    metadata: Annotated[dict[str, Annotated[str, StringConstraints(max_length=512)]] | None, Field(max_length=16)] = None
    integrations: list[dict[str, Any]] | None = None
