"""MCP tool over the agent memories on this machine: find_memory."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from model_customization.operations.memory import FindMemoryRequest, MemoryFound
from model_customization.tools.common import lazy_module, run_domain, takes
from model_customization.workspace import Workspace

# imported on first use: the server's start-up stays short
discovery = lazy_module("model_customization.memory.discovery")


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="Find agent memory on this machine", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @takes(FindMemoryRequest)
    async def find_memory(request: FindMemoryRequest) -> MemoryFound:
        """List the coding agents' memories (transcripts) on this machine: per agent and folder, the format, how many
        sessions, bytes, the first and last date, and whether the folder is inside the allowed roots (if not,
        how_to_allow says exactly what the user can set; never widen the roots yourself).

        Start here when asked to specialise yourself (or another agent) on its memory: pick the allowed folders to
        learn from, then call build_dataset_from_memory with them as paths. Covers every agent whose format this
        server reads (Claude Code and the others registered), plus cass-memory's session outcomes. Free, read-only
        and fast: files are judged by name and first lines, never imported, credentials are never opened, and a very
        large folder is counted up to a limit (complete: false).
        """
        return await run_domain(discovery.find_memory, None, request.agent)
