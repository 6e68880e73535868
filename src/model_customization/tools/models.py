"""MCP tools that use models: prompt one, evaluate several."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.evaluation.runner import evaluate as run_evaluation
from model_customization.providers.local.inference import generate
from model_customization.providers.local.models import EMBEDDED_MODEL
from model_customization.tools.common import progress_reporter, run_domain
from model_customization.workspace import Workspace


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptResult(BaseModel):
    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class ModelScores(BaseModel):
    exact_match: float
    normalized_exact_match: float
    token_f1: float


class EvaluationResult(BaseModel):
    eval_id: str
    dataset_id: str
    split: str
    cases: int
    models: list[str]
    scores: dict[str, ModelScores] = Field(description="Mean of each metric per model (0-1, higher is better).")
    resource_uri: str = Field(description="Read it for per-case outputs.")


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="Prompt a model", read_only_hint=True, idempotent_hint=False, open_world_hint=False))
    async def prompt_model(
        model: Annotated[str, Field(description=f"A tuned model_id (ft-...) from check_job, '{EMBEDDED_MODEL}', or a path to a Hugging Face model folder.")] = EMBEDDED_MODEL,
        prompt: Annotated[str | None, Field(description="A single user message. Give this or messages.")] = None,
        messages: Annotated[list[ChatMessage] | None, Field(description="A whole conversation, ending with a user message.")] = None,
        system: Annotated[str | None, Field(description="A system message put before the conversation.")] = None,
        max_tokens: Annotated[int, Field(ge=1, le=4096)] = 256,
        temperature: Annotated[float, Field(ge=0, le=2, description="0 = greedy (repeatable).")] = 0.0,
        seed: Annotated[int, Field(ge=0)] = 0,
    ) -> PromptResult:
        """Get one answer from a base or tuned local model, to try it out or use it.

        Runs on this machine; the first call to a model loads it (a few seconds). Use evaluate for a measured
        comparison rather than single prompts.
        """
        if (prompt is None) == (messages is None):
            raise ToolError("Give exactly one of prompt (a single user message) or messages (a conversation).")
        conversation = [{"role": "system", "content": system}] if system else []
        conversation += [{"role": "user", "content": prompt}] if prompt is not None else [m.model_dump() for m in messages or []]
        result = await run_domain(generate, ws, model, conversation, max_tokens=max_tokens, temperature=temperature, seed=seed)
        return PromptResult(**result)

    @server.tool(annotations=ToolAnnotations(title="Evaluate models", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    async def evaluate(
        dataset_id: str,
        models: Annotated[list[str], Field(min_length=2, description=f"Two or more: e.g. ['{EMBEDDED_MODEL}', 'ft-...'].")],
        split: Annotated[Literal["train", "validation", "test"], Field(description="Held-out test split by default.")] = "test",
        max_tokens: Annotated[int, Field(ge=1, le=2048)] = 64,
        limit: Annotated[int | None, Field(ge=1, description="Evaluate only the first N cases.")] = None,
        ctx: Context | None = None,
    ) -> EvaluationResult:
        """Compare models on a dataset's held-out examples: exact match, normalised exact match and token F1.

        Each case prompts every model with the conversation up to its last assistant turn (greedy) and scores the
        answer against that turn. Takes about a second per case per model for the embedded model on CPU; progress
        is reported. The result is stored: read resource_uri for per-case outputs.
        """
        result = await run_domain(
            run_evaluation, ws, dataset_id, models, split=split, max_tokens=max_tokens, limit=limit, progress=progress_reporter(ctx)
        )
        return EvaluationResult(
            eval_id=result["id"],
            dataset_id=result["dataset_id"],
            split=result["split"],
            cases=result["cases"],
            models=result["models"],
            scores={m: ModelScores(**s) for m, s in result["summary"].items()},
            resource_uri=result["resource_uri"],
        )
