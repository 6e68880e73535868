"""Build the MCP server: one workspace, the tools and the resources. Nothing heavy is imported here."""

from __future__ import annotations

import logging
import os
import threading
from typing import Literal

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from model_customization import __version__
from model_customization.resources import catalog
from model_customization.server.tool_registry import CACHE_FOLDER, DeferredToolsServer, ToolListCache
from model_customization.server import prompts
from model_customization.tools import constitutional, datasets, jobs, memory, models
from model_customization.tools import deploy as deploy_tools
from model_customization.tools import export as export_tools
from model_customization.tools import providers as provider_tools
from model_customization.workspace import Workspace

INSTRUCTIONS = """\
Fine-tune a model on your own memory. The loop: find_memory (which agents' transcripts are on this machine, and
which folders may be read) -> build_dataset_from_memory (transcripts -> dataset_id) ->
start_job (returns a job_id at once) -> check_job until succeeded (gives model_id) -> evaluate base vs tuned ->
prompt_model with the winner; export_model takes it to Ollama/llama.cpp. start_job also trains on OpenAI or
Bedrock (paid: dry_run=true quotes, the cost must fit the budget or be confirmed); generate_constitutional_dataset
turns prompts and principles into critiqued-and-revised SFT and DPO datasets. Datasets, jobs and evaluations are also readable as resources
(datasets://index, jobs://index, evals://{id}). deploy_model puts a winner behind an agent name (gated on an evaluation;
rollback_deployment undoes it; agents://{name} shows it) and prompt_model(agent=...) uses it."""


START_DISPATCH_DELAY_SECONDS = 1.0
logger = logging.getLogger(__name__)


def _dispatch_quietly(workspace: Workspace) -> None:
    from model_customization.jobs.orchestrator import dispatch

    try:
        dispatch(workspace)
    except Exception:  # noqa: BLE001 - the next check_job or list_jobs dispatches again
        logger.exception("dispatch at start-up failed; the next check_job or list_jobs tries again")


def build_server(
    ws: Workspace | None = None,
    home: str | os.PathLike[str] | None = None,
    *,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
    dispatch_at_start: Literal["now", "soon"] = "now",
) -> MCPServer:
    """auth and token_verifier (bearer tokens for streamable HTTP) come from server.http.http_access.

    At start, jobs whose worker died while no server ran resume, and queued jobs start if a slot is free: before
    this returns ("now"), or in the background a moment after ("soon", what `serve` uses: the server answers its
    client first; every check_job and list_jobs dispatches too, so nothing waits on it)."""
    workspace = ws or Workspace.open(home)
    if dispatch_at_start == "now":
        from model_customization.jobs.orchestrator import dispatch

        dispatch(workspace)
    else:
        timer = threading.Timer(START_DISPATCH_DELAY_SECONDS, _dispatch_quietly, args=(workspace,))
        timer.daemon = True
        timer.start()
    # Tools are built on first use and the tools/list answer is kept in the data home (server/tool_registry.py):
    # most of a cold start was the SDK generating schemas for every tool.
    server = DeferredToolsServer(
        name="model-customization",
        version=__version__,
        instructions=INSTRUCTIONS,
        auth=auth,
        token_verifier=token_verifier,
        tool_list_cache=ToolListCache(workspace.settings.home / CACHE_FOLDER),
    )
    memory.register(server, workspace)
    datasets.register(server, workspace)
    jobs.register(server, workspace)
    models.register(server, workspace)
    export_tools.register(server, workspace)
    constitutional.register(server, workspace)
    provider_tools.register(server, workspace)
    deploy_tools.register(server, workspace)
    catalog.register(server, workspace)
    prompts.register(server, workspace)
    server.seal_tool_list()
    return server
