"""`memory ...`: the agent memories on this machine (the find_memory tool's operation)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from model_customization.cli.common import command, console, table
from model_customization.operations.memory import FindMemoryRequest
from model_customization.workspace import Workspace

memory_app = typer.Typer(help="Agent memory on this machine: which agents, where, how much, whether it may be read.", no_args_is_help=True)


def _show_found(found: dict[str, Any]) -> None:
    if not found["locations"]:
        console.print(found["next_step"], markup=False, soft_wrap=True)
        return
    shown = table("agent", "format", "folder", "sessions", "bytes", "first", "last", "allowed", whole=("folder", "first", "last"))
    for location in found["locations"]:
        sessions = f"{location['sessions']:,}" + ("" if location["complete"] else "+")
        dates = [(location[key] or "")[:10] for key in ("first_date", "last_date")]
        shown.add_row(escape(location["agent"]), location["format"], escape(location["folder"]), sessions, f"{location['bytes']:,}", *dates, "yes" if location["allowed"] else "no")
    console.print(shown)
    for location in found["locations"]:
        if location["note"]:
            console.print(f"{location['folder']}: {location['note']}", markup=False, soft_wrap=True)
        if location["how_to_allow"]:
            console.print(location["how_to_allow"], markup=False, soft_wrap=True)


@command(memory_app, "find", request=FindMemoryRequest, render=_show_found)
def memory_find(ws: Workspace, request: FindMemoryRequest) -> dict[str, Any]:
    """List the agent memories on this machine, per agent and folder, and whether each may be read (same as the
    find_memory tool). Start here to specialise a model on your agents' memory."""
    from model_customization.memory.discovery import find_memory

    return find_memory(agent=request.agent).model_dump()
