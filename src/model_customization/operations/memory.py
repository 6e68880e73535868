"""find_memory: its input model and its answer, shared by the MCP tool, the `memory find` command and the domain
(memory/discovery.py builds the answer through these)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.operations.bounds import BoundedRequest


class FindMemoryRequest(BoundedRequest):
    agent: Annotated[
        str | None,
        Field(description="Only this agent's memory (e.g. 'Claude Code', case-insensitive); every agent when omitted."),
    ] = None


class MemoryLocation(DeferredModel):
    agent: str = Field(description="The agent whose memory this is.")
    format: str = Field(description="The memory format (build_dataset_from_memory detects it by itself).")
    title: str = Field(description="The format in words.")
    folder: str = Field(description="Where it is on this machine.")
    paths: list[str] = Field(
        description="What to pass as paths to build_dataset_from_memory: the folder, or, when it also holds credentials, its other entries."
    )
    sessions: int = Field(description="Sessions found (files or folders of the format; a store holding several counts each; for cass-memory, its outcome records). At least this many when complete is false.")
    files: int = Field(description="Files that hold them.")
    bytes: int = Field(description="Their size on disk.")
    first_date: str | None = Field(description="Oldest modification time of those files (ISO 8601, UTC).")
    last_date: str | None = Field(description="Newest modification time of those files (ISO 8601, UTC).")
    complete: bool = Field(description="False when counting stopped early (a very large folder): the counts are then lower bounds.")
    allowed: bool = Field(description="True when the folder is inside the allowed roots, so the tools may read it.")
    how_to_allow: str | None = Field(description="When not allowed: how the user can allow it (the tools never widen the roots themselves).")
    note: str | None = Field(None, description="What else to know: why counting stopped, links not followed.")


class MemoryFound(DeferredModel):
    locations: list[MemoryLocation] = Field(description="Each agent memory present on this machine, per agent and folder.")
    looked_in: list[str] = Field(description="Every folder looked in, present or not (the registered formats' locations for this system).")
    allowed_roots: list[str] = Field(description="The folders the tools may read now.")
    next_step: str = Field(description="What to do with this answer.")
