"""One input model per operation: the arguments an operation takes, declared once.

Each operation the MCP server and the CLI both offer has a pydantic model here (`BuildDatasetRequest`,
`PromptModelRequest`, ...): field names, types, defaults, constraints and descriptions. Three adapters read it:

- the MCP tool: `tools.common.takes(Request)` turns `async def tool(request: Request, ctx=None)` into a function whose
  signature has one parameter per field (Annotated with the field's constraints and description), so the SDK
  publishes the same inputSchema it published when the parameters were written out by hand, and the tool body gets
  one validated `Request`;
- the CLI: `cli.common.command(group, "name", request=Request, positional=(...), flags={...})` makes one typer
  option per field (bool -> --x/--no-x, list -> a repeatable option, Literal -> a choice, a number's bounds -> a
  range, a nested model or dict -> JSON, an optional value that defaults to something else -> "none" turns it off)
  and hands the command the validated `Request`; `positional` names the fields given as arguments, `flags` keeps an
  older flag name (e.g. `sources` -> `--source/--sources`);
- the domain: a function that takes the request (e.g. `datasets.build.build_dataset_from_request`), or the adapter
  passes `**request.model_dump()` to a domain function whose keyword arguments are the fields.

start_job (`operations/jobs.py`) has one model too, with two fields typed from the provider registry when the tools
are registered (`start_job_request()`); `job start` keeps its own flags (--epochs, --suffix, ... are the command line's
form of hyperparameters and options) and validates them into the same `StartJobRequest` (`command(..., builds=...)`).

To move another operation (the other job tools, evaluate, export) onto it: declare its model here, decorate the tool
body with `takes(Model)` and the CLI command with `command(..., request=Model)`, then delete the written-out
parameters. The models import only pydantic and light project modules: the MCP server imports them at start-up.
"""
