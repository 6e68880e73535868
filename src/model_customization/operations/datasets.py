"""Input models of the dataset operations: build from memory, inspect, list, delete, constitutional data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from model_customization.operations.bounds import BoundedRequest, LongText
from model_customization.providers.registry import provider_names

Split = Literal["train", "validation", "test"]


def _memory_paths(schema: dict) -> None:
    # From the format registry when the schema is built, so a new format is named without editing this text.
    from model_customization.memory.catalog import paths_description

    schema["description"] = paths_description()


def _training_providers(schema: dict) -> None:
    # Filled in when a schema is built, not written out here: a provider an installed package adds is offered too.
    schema["enum"] = provider_names("train")


TrainingProvider = Annotated[str, Field(json_schema_extra=_training_providers)]


class BuildDatasetRequest(BoundedRequest):
    paths: Annotated[
        list[str],
        Field(description="Memory files or folders (folders are searched recursively).", min_length=1, json_schema_extra=_memory_paths),
    ]
    name: Annotated[str | None, Field(description="A readable name for the dataset.")] = None
    seed: Annotated[int, Field(description="Seed of the train/validation/test split.", ge=0)] = 0
    validation_fraction: Annotated[float, Field(ge=0, lt=1, description="Share of sessions held out for validation loss.")] = 0.1
    test_fraction: Annotated[float, Field(ge=0, lt=1, description="Share of sessions held out for evaluate (the test split).")] = 0.1
    method: Annotated[
        Literal["sft", "dpo", "kto"],
        Field(description="sft: conversations; dpo: preference pairs (OpenAI preference files, ChatGPT regenerations rated up vs down, best vs worst rewarded attempts at one task); kto: every session with an outcome signal, labelled desirable or undesirable (verdicts, ratings, rewards, an agent's errors, rejections and interruptions)."),
    ] = "sft"
    reward_threshold: Annotated[
        float, Field(description="kto: a session's reward at or above this is desirable, below it undesirable (0.5: the midpoint of 0-1 rewards).")
    ] = 0.5
    transcript_signals: Annotated[
        bool,
        Field(description="kto: label sessions that have no verdict, rating or reward by their transcript (tool errors, rejections, interruptions: undesirable; an agent's clean session: desirable). false: drop them."),
    ] = True
    example_mode: Annotated[
        Literal["conversation", "turns"],
        Field(description="conversation: one example per session, every assistant turn learned; turns: one example per assistant turn."),
    ] = "conversation"
    outcome: Annotated[Literal["any", "successful", "failed"], Field(description="Keep sessions by outcome (errors, rejections, interruptions, rewards, ratings).")] = "any"
    min_turns: Annotated[int | None, Field(ge=0, description="Keep sessions with at least this many turns (user requests the assistant answered).")] = None
    max_turns: Annotated[int | None, Field(ge=0, description="Keep sessions with at most this many turns.")] = None
    since: Annotated[datetime | None, Field(description="Keep sessions started at or after this time (ISO 8601).")] = None
    until: Annotated[datetime | None, Field(description="Keep sessions started at or before this time.")] = None
    tool_calls: Annotated[Literal["any", "with", "without"], Field(description="Keep sessions with or without tool calls.")] = "any"
    sources: Annotated[
        list[str] | None, Field(description="Glob patterns on source paths, file names or format names (e.g. 'claude_code', '*/project-x/*').")
    ] = None
    redact: Annotated[bool, Field(description="Replace secrets and personal data with typed placeholders before storing (on by default).")] = True
    # One meaning everywhere: null (the CLI: none) keeps near-duplicates; 0 is refused rather than read as "off".
    near_duplicate_threshold: Annotated[
        float | None, Field(gt=0, le=1, description="MinHash Jaccard threshold for near-duplicates; null keeps them.")
    ] = 0.85


class InspectDatasetRequest(BoundedRequest):
    dataset_id: Annotated[str | None, Field(description="A stored dataset (from build_dataset_from_memory or list_datasets).")] = None
    path: Annotated[str | None, Field(description="Or a JSONL file of OpenAI-format training examples to check as it is.")] = None
    provider: Annotated[TrainingProvider, Field(description="The provider whose format, limits and prices apply.")] = "openai"
    model: Annotated[
        str | None, Field(description="e.g. gpt-4.1-mini (OpenAI) or SmolLM2-135M-Instruct (local); a default per provider when omitted.")
    ] = None
    epochs: Annotated[int | None, Field(ge=1, le=100, description="Omit for the provider's default rule.")] = None
    max_seq_length: Annotated[int, Field(ge=16, le=32768, description="Local jobs: longer examples are truncated.")] = 512


class ListDatasetsRequest(BoundedRequest):
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many datasets, newest first.")] = 50
    cursor: Annotated[str | None, Field(description="The next_cursor of the previous page; omit for the first page.")] = None


class DeleteDatasetRequest(BoundedRequest):
    dataset_id: Annotated[str, Field(description="The dataset to delete (list_datasets shows them).")]
    force: Annotated[bool, Field(description="Delete it even though evaluations or agent suites name it (their stored results stay readable).")] = False


class ConstitutionalDatasetRequest(BoundedRequest):
    principles: Annotated[
        list[str],
        Field(description="Principles every answer should satisfy, one sentence each (e.g. 'The answer must not help anyone cause harm.').", min_length=1),
    ]
    model: Annotated[
        str,
        Field(
            description="The model that answers, critiques and revises: 'SmolLM2-135M-Instruct', a tuned ft-... id, a model folder, or a cloud model such as 'openai:gpt-4.1-mini' or 'anthropic:claude-sonnet-4-5'."
        ),
    ]
    prompts: Annotated[list[LongText] | None, Field(description="User messages to answer. Give this or dataset_id.")] = None
    dataset_id: Annotated[str | None, Field(description="Or a stored dataset: each example's conversation before its last assistant turn is a prompt.")] = None
    split: Annotated[Split, Field(description="Which split of dataset_id to read.")] = "train"
    limit: Annotated[int | None, Field(ge=1, description="Use at most this many distinct prompts (keeps cost bounded).")] = None
    name: Annotated[str | None, Field(description="A readable name; the datasets are named <name>-sft and <name>-dpo.")] = None
    max_tokens: Annotated[int, Field(ge=1, le=4096, description="Longest reply per model call.")] = 256
    temperature: Annotated[float, Field(ge=0, le=2, description="0 = greedy (repeatable for local models).")] = 0.0
    seed: Annotated[int, Field(ge=0, description="Seed of sampling and of the train/validation/test split.")] = 0
    validation_fraction: Annotated[float, Field(ge=0, lt=1, description="Share of prompts held out for validation loss.")] = 0.1
    test_fraction: Annotated[float, Field(ge=0, lt=1, description="Share of prompts held out for evaluate (the test split).")] = 0.1
