"""The human CLI: the same domain functions the MCP tools call, with rich output and progress bars.

`model-customization demo` runs the whole loop on the shipped demo memory; `model-customization serve` starts the
MCP server (stdio by default). Every command takes --json (stdout is then exactly one JSON document; progress and
messages go to stderr). Exit codes: 0 success; 1 the operation failed or was refused as asked (message printed);
2 usage error (typer); 3 not found (an unknown id or path); 4 needs a confirmation (a cost over budget: confirm it).

One module per command group; cli/common.py holds the `command` decorator every command is registered with (the
workspace, errors and exit codes, --json, and flags made from an operation's input model).
"""

from __future__ import annotations

import os

import typer

from model_customization.cli import server
from model_customization.cli.agents import agent_app
from model_customization.cli.datasets import dataset_app
from model_customization.cli.evaluation import eval_app
from model_customization.cli.files import files_app
from model_customization.cli.jobs import job_app
from model_customization.cli.memory import memory_app
from model_customization.cli.models import model_app

app = typer.Typer(help="Turn agent memory into fine-tuned models: datasets, LoRA jobs, evaluation, prompting, MCP server.", no_args_is_help=True)
server.register(app)
app.add_typer(memory_app, name="memory")
app.add_typer(dataset_app, name="dataset")
app.add_typer(job_app, name="job")
app.add_typer(eval_app, name="eval")
app.add_typer(model_app, name="model")
app.add_typer(files_app, name="files")
app.add_typer(agent_app, name="agent")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app()


if __name__ == "__main__":
    main()
