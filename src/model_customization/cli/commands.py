"""The typer application: every command group of the human CLI (see the package's docstring)."""

from __future__ import annotations

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
