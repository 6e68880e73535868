"""MCP tool that exports a tuned local model for Ollama, llama.cpp, LM Studio or transformers."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.providers.local.export_formats import FORMATS
from model_customization.tools.common import progress_reporter, run_domain
from model_customization.workspace import Workspace


class ExportedFile(DeferredModel):
    path: str = Field(description="Relative to output_dir.")
    format: str
    bytes: int
    purpose: str


class ExportResult(DeferredModel):
    model_id: str
    base_model: str
    output_dir: str
    formats: list[str] = Field(description="What was written, including formats another one needed (ollama needs a GGUF).")
    gguf_type: str | None
    files: list[ExportedFile]
    total_bytes: int
    ollama_command: str | None = Field(description="Run it where Ollama is installed to create the model (when 'ollama' was exported).")
    notes: list[str]
    seconds: float


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="Export a tuned model", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    async def export_model(
        model_id: Annotated[str, Field(description="A tuned model id (ft-...) from check_job or list_jobs.")],
        formats: Annotated[
            list[str],
            Field(
                min_length=1,
                description="One or more of: " + "; ".join(f"'{name}' = {text}" for name, text in FORMATS.items()) + ".",
                json_schema_extra={"items": {"type": "string", "enum": list(FORMATS)}},
            ),
        ] = ["ollama"],  # noqa: B006 - pydantic copies defaults
        output_dir: Annotated[str | None, Field(description="Folder to write; default <data home>/exports/<model_id>. An earlier export there is replaced; a folder with other files is refused.")] = None,
        gguf_type: Annotated[Literal["f32", "f16"], Field(description="Precision of GGUF files: f32 is exact, f16 half the size.")] = "f32",
        ctx: Context | None = None,
    ) -> ExportResult:
        """Export a tuned local model so it runs outside this server: Ollama, llama.cpp, LM Studio or transformers.

        'ollama' writes a Modelfile whose FROM is the exact base the adapter was trained on (the embedded model's
        own Q4_1 GGUF plus the adapter as GGUF, or for other bases the merged GGUF), a chat TEMPLATE that renders
        exactly what the model saw in training, and its stop tokens; run the returned ollama_command. GGUF formats
        need a Llama-architecture base (the embedded SmolLM2 is one). Everything lands in one folder, written
        atomically. Free, local CPU time and disk only: adapter formats take seconds; merged formats of the embedded
        model take under a minute and about 540 MB each in f32. The result lists every file with its size and
        purpose. Unknown model: use check_job or list_jobs for the model_id of a succeeded job. Next: run
        ollama_command where Ollama is installed and compare its answers with prompt_model's.
        """
        from model_customization.providers.local.export import export_model as run_export

        result = await run_domain(run_export, ws, model_id, formats, output_dir, gguf_type=gguf_type, progress=progress_reporter(ctx))
        return ExportResult(**result)
