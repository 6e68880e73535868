"""The models taking part in an evaluation (answering or judging) and how one of them is called.

What an evaluation needs to know of a model's provider is asked of the provider registry here, in one place: whether
the model runs on this machine (answers in batches, one at a time, with token probabilities), what the model is
called in results, and how much room a judge model is given to answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from model_customization.providers.chat import chat, chat_with_provider, check_chat_model
from model_customization.providers.registry import get_provider, is_paid, runs_locally
from model_customization.workspace import Workspace

# A cloud judge stops after "Score: N"; the room is for models that think before they answer. A local judge gets
# little room, as it would otherwise ramble for the whole allowance on CPU.
JUDGE_MAX_TOKENS = {"local": 32, "cloud": 1024}


@dataclass(frozen=True)
class Participant:
    model_id: str  # the key in outputs and summary: canonical for local models, as given for cloud ones
    provider: str
    name: str  # what that provider is called with

    @property
    def is_local(self) -> bool:
        """Runs on this machine: generates in batches, one generation at a time, and exposes token probabilities."""
        return runs_locally(self.provider)

    @property
    def judge_max_tokens(self) -> int:
        return JUDGE_MAX_TOKENS["local" if self.is_local else "cloud"]


def resolve_participant(ws: Workspace, model: str) -> Participant:
    """The participant a model name stands for; an unknown local model or a missing key is a UserError now."""
    provider, name = check_chat_model(ws, model)
    return Participant(get_provider(provider).evaluation_key(ws, model, name), provider, name)


# (participant, messages, max_tokens) -> the chat router's answer {text, seconds, prompt_tokens, ...}; a case's
# answer call also passes its tools as the keyword `tools` (judges never do).
CallFn = Callable[..., dict[str, Any]]


def tools_keyword(tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """{"tools": tools} for a case with tools, else nothing: a call without tools looks as it always did (to a
    provider's chat, or a stand-in for it)."""
    return {"tools": tools} if tools else {}


def direct_call(ws: Workspace) -> CallFn:
    """One greedy call through the chat router, with no rate limit or retry (the runner's own call adds those)."""

    def call(participant: Participant, messages: list[dict[str, Any]], max_tokens: int, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if not is_paid(participant.provider):
            return chat_with_provider(ws, participant.provider, participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0, **tools_keyword(tools))
        # A paid call on its own: quoted, approved by the budgets and counted like a prompt.
        return chat(ws, f"{participant.provider}:{participant.name}", messages, max_tokens=max_tokens, temperature=0.0, seed=0, **tools_keyword(tools))

    return call
