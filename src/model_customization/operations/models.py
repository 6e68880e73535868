"""Input models of the model operations: prompt one, list them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from model_customization.operations.bounds import BoundedRequest, LongText
from model_customization.providers.local.models import EMBEDDED_MODEL


class ChatMessage(BoundedRequest):
    role: Literal["system", "user", "assistant"]
    content: LongText


class ListModelsRequest(BoundedRequest):
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many models per page.")] = 50
    cursor: Annotated[str | None, Field(description="The next_cursor of the previous page; omit for the first page.")] = None


class PromptModelRequest(BoundedRequest):
    model: Annotated[
        str | None,
        Field(
            description=(
                f"Local: '{EMBEDDED_MODEL}' (default), a tuned model_id (ft-...) from check_job, or a path to a Hugging Face "
                "model folder. Cloud: an OpenAI model (gpt-4o-mini, o4-mini, ft:...), a Claude model (claude-sonnet-5), "
                "a Bedrock model id or ARN. A prefix openai:, anthropic:, bedrock: or local: forces the provider. "
                "Leave it out when giving agent."
            )
        ),
    ] = None
    prompt: Annotated[LongText | None, Field(description="A single user message. Give this or messages.")] = None
    messages: Annotated[list[ChatMessage] | None, Field(description="A whole conversation, ending with a user message.")] = None
    system: Annotated[LongText | None, Field(description="A system message put before the conversation.")] = None
    max_tokens: Annotated[int, Field(ge=1, le=4096, description="Longest answer, in tokens; stop_reason is length when it is reached.")] = 256
    temperature: Annotated[float, Field(ge=0, le=2, description="0 = greedy (repeatable). Claude models take none: leave it at 0 for them.")] = 0.0
    seed: Annotated[int, Field(ge=0, description="Sampling seed for local models (OpenAI treats it as a hint).")] = 0
    agent: Annotated[str | None, Field(description="Answer with the model deployed to this agent (see deploy_model) instead of naming a model.")] = None
    task: Annotated[str | None, Field(description="With agent: the task tag whose model to use; falls back to the agent's default model.")] = None

    def conversation(self) -> list[dict[str, str]]:
        """The messages sent: the system message, then the prompt as one user message or the given conversation."""
        conversation = [{"role": "system", "content": self.system}] if self.system else []
        if self.prompt is not None:
            return conversation + [{"role": "user", "content": self.prompt}]
        return conversation + [m.model_dump() for m in self.messages or []]
