"""One input model per operation: the MCP tool's arguments and the CLI command's options are both made from it.

Replaces the parity table the CLI and the tools used to be policed with: there is nothing left to compare but that
each side is made from the model, and that a tool and its command use the same one."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import pytest
import typer
import typer.main
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from model_customization.cli import app
from model_customization.operations.datasets import BuildDatasetRequest

ADDED_BY_THE_CLI = {"home", "as_json"}  # --home and --json, on every command
# Tools whose arguments are still written out in the tool (their model is the next step, see operations/__init__.py).
NOT_YET_A_MODEL = {
    "check_job", "evaluate", "export_model",
    "provision_throughput", "upload_training_file",
}  # fmt: skip


def _commands(group: typer.Typer, prefix: str = "") -> dict[str, Any]:
    """Every command's callback by its path ("dataset build"), as registered with cli.common.command."""
    found = {f"{prefix}{info.name}".strip(): info.callback for info in group.registered_commands}
    for sub in group.registered_groups:
        found.update(_commands(sub.typer_instance, f"{prefix}{sub.name} "))
    return found


def _click_command(path: str) -> Any:
    command: Any = typer.main.get_command(app)
    for part in path.split():
        command = command.commands[part]
    return command


@pytest.fixture(scope="module")
def published_tools() -> dict[str, Any]:
    """Each tool's function (with the request model `takes` gave it) and its published inputSchema."""
    import tempfile

    from mcp import Client

    from model_customization.server.app import build_server
    from model_customization.workspace import Workspace

    async def listed() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as home:
            ws = Workspace.open(Path(home))
            try:
                server = build_server(ws=ws)
                async with Client(server) as client:
                    schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
                return {name: (server._tool_manager.get_tool(name).fn, schema) for name, schema in schemas.items()}
            finally:
                ws.store.close()

    return anyio.run(listed)


def test_every_command_made_from_a_model_takes_exactly_its_fields():
    from_models = {path: callback.request_model for path, callback in _commands(app).items() if getattr(callback, "request_model", None)}
    assert {"dataset build", "dataset inspect", "dataset list", "dataset delete", "dataset constitutional", "model prompt", "model list",
            "model deploy", "agent deploy", "agent rollback", "agent suite", "job pause", "job cancel", "job list", "job events"} <= set(from_models)  # fmt: skip
    for path, model in from_models.items():
        names = {parameter.name for parameter in _click_command(path).params}
        assert names - ADDED_BY_THE_CLI == set(model.model_fields), f"{path}: its options are not the fields of {model.__name__}"


def test_every_tool_made_from_a_model_publishes_exactly_its_schema(published_tools):
    for name, (function, schema) in published_tools.items():
        model = getattr(function, "request_model", None)
        if model is None:
            assert name in NOT_YET_A_MODEL, f"{name} writes its arguments out: give it an input model (operations/) and tools.common.takes"
            continue
        expected = model.model_json_schema()
        assert schema["properties"] == expected["properties"], name
        assert schema.get("required", []) == expected.get("required", []), name
        assert schema.get("$defs") == expected.get("$defs"), name


def test_a_tool_and_its_command_share_one_model(published_tools):
    commands = {callback.request_model: path for path, callback in _commands(app).items() if getattr(callback, "request_model", None)}
    # A command that keeps flags of its own (job start: --epochs, --suffix, ...) validates them into the shared model.
    built = {callback.builds_request: path for path, callback in _commands(app).items() if getattr(callback, "builds_request", None)}
    for name, (function, _) in published_tools.items():
        model = getattr(function, "request_model", None)
        if model is None:
            continue
        # start_job's tool model is the shared StartJobRequest with provider and hyperparameters typed from the registry
        shared = next((base for base in model.__mro__ if base in built), None)
        assert model in commands or shared is not None, f"the {name} tool's model {model.__name__} has no CLI command"


def test_job_start_refuses_what_start_job_refuses(tmp_path):
    """The command's flags go through start_job's input model: the same values are refused, before anything runs."""
    home = ["--home", str(tmp_path / "home")]
    for flags, field in ((["--method", "ppo"], "--method"), (["--idempotency-key", "k" * 65], "--idempotency-key"), (["--confirm-cost-usd", "-1"], "--confirm-cost-usd")):
        result = runner.invoke(app, ["job", "start", "ds-x", *flags, *home])
        assert result.exit_code == 2, (flags, result.output)
        assert field in result.output, (flags, result.output)


# --- the flags a model makes ------------------------------------------------------------------------------------

runner = CliRunner()


class Options(BaseModel):
    suffix: str | None = None


class StartRequest(BaseModel):
    """A model of the shape start_job's will have, for the mechanism's own test below."""

    dataset_id: Annotated[str, Field(description="The dataset.")]
    provider: Annotated[Literal["local", "openai"], Field(description="Where it trains.")] = "local"
    hyperparameters: Annotated[dict[str, int | float | str] | None, Field(description="The provider's own.")] = None
    options: Annotated[Options | None, Field(description="Cloud options.")] = None
    dry_run: bool = False


def test_flags_follow_the_field_types():
    build = {p.name: p for p in _click_command("dataset build").params}
    assert build["paths"].param_type_name == "argument" and build["paths"].nargs == -1  # a required list given positionally
    assert build["redact"].opts == ["--redact"] and build["redact"].secondary_opts == ["--no-redact"]  # bool -> --x/--no-x
    assert set(build["sources"].opts) == {"--source", "--sources"} and build["sources"].multiple  # list -> repeatable, old names kept
    assert typing.get_args(build["method"].type_descriptor.annotation) == ("sft", "dpo", "kto")  # Literal -> choices
    assert build["seed"].default == 0 and build["near_duplicate_threshold"].default == "0.85"  # the model's defaults


def test_a_value_the_model_refuses_is_a_usage_error_naming_the_flag(ws):
    home = str(ws.settings.home)
    refused = runner.invoke(app, ["dataset", "build", "memory.jsonl", "--test-fraction", "1.5", "--home", home])
    assert refused.exit_code == 2 and "--test-fraction" in refused.output
    refused = runner.invoke(app, ["dataset", "list", "--limit", "0", "--home", home])
    assert refused.exit_code == 2 and "--limit" in refused.output


def test_none_switches_near_duplicate_removal_off_on_the_command_line_as_null_does_in_the_tool():
    flags = {p.name: p for p in _click_command("dataset build").params}
    parse = flags["near_duplicate_threshold"].type_descriptor.parameter_info.parser
    assert parse("none") is None and parse("null") is None and parse("0.9") == 0.9
    assert BuildDatasetRequest(paths=["x"], near_duplicate_threshold=None).near_duplicate_threshold is None


def test_a_model_makes_the_flags_of_a_command_of_its_own():
    """The mechanism on a model of its own: what the lead applies to start_job (a dict of hyperparameters, a nested
    options model, a Literal provider)."""
    from model_customization.cli.common import command

    group = typer.Typer()
    received: list[StartRequest] = []

    @command(group, "start", request=StartRequest, positional=("dataset_id",), flags={"hyperparameters": ("--hp",)}, workspace=False)
    def start(request: StartRequest) -> dict[str, Any]:
        received.append(request)
        return request.model_dump()

    @group.callback()
    def root() -> None:
        pass  # a group, so that the command keeps its name

    result = runner.invoke(group, ["start", "ds-1", "--provider", "openai", "--hp", "n_epochs=3", "--hp", "beta=0.1", "--options", '{"suffix": "x"}', "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert received[-1] == StartRequest(dataset_id="ds-1", provider="openai", hyperparameters={"n_epochs": 3, "beta": 0.1}, options=Options(suffix="x"), dry_run=True)
    assert runner.invoke(group, ["start", "ds-1", "--hp", '{"n_epochs": 2}']).exit_code == 0 and received[-1].hyperparameters == {"n_epochs": 2}
    repeated = runner.invoke(group, ["start", "ds-1", "--hp", "a=1", "--hp", "a=2"])
    assert repeated.exit_code == 1 and "given twice" in repeated.output
    wrong = runner.invoke(group, ["start", "ds-1", "--provider", "azure"])
    assert wrong.exit_code == 2
    assert runner.invoke(group, ["start", "ds-1", "--options", "not json"]).exit_code == 1


def test_a_command_without_a_workspace_keeps_its_own_home_option(monkeypatch, tmp_path):
    from model_customization.server import __main__ as server_main

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(server_main, "run_server", lambda transport, **options: started.append({"transport": transport, **options}))
    result = runner.invoke(app, ["serve", "--home", str(tmp_path), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert started == [{"transport": "stdio", "host": "127.0.0.1", "port": 8123, "allowed_hosts": (), "home": str(tmp_path)}]
