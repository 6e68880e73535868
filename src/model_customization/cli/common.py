"""What every CLI command shares: the data home, errors and exit codes, --json, and flags made from a request model.

`command(group, "name", ...)` is the CLI's run_domain. The decorated function takes the workspace first (unless
workspace=False), then its own typer parameters, and returns its result; the decorator adds --home and --json, opens
the workspace, turns a UserError into its exit code and message, and prints the result: as one JSON document with
--json, else through `render` (or the `Output.text` the command returned, when its text depends on the call).

With `request=Model` (a model of model_customization.operations), the command's flags are made from the model's
fields and the function receives one validated `request`:

- the flag is --field-name, unless `flags` gives other names (older spellings stay: `{"sources": ("--source", "--sources")}`);
- a field in `positional` is an argument instead (in the order given);
- bool -> --x/--no-x; list[...] -> a repeatable option; Literal[...] -> its choices; datetime -> ISO 8601;
- an optional field whose default is not None (near_duplicate_threshold) also takes the word "none", which is null;
- a dict -> a repeatable KEY=VALUE option (values read as JSON when they parse: n_epochs=3), or one JSON object;
- any other type (a nested model, a list of models) -> JSON text, or what `converters[field]` makes of the text;
- the field's description is the help, its default the default; its constraints are checked by the model, and a
  value they refuse is a usage error (exit 2) naming the flag.

Exit codes: 0 success; 1 the operation failed or was refused as asked (message printed); 2 usage error; 3 not found
(an unknown id or path); 4 needs a confirmation (a cost over budget: confirm it).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from model_customization.config import ConfigError
from model_customization.errors import ConfirmationNeeded, NotFoundError, UserError
from model_customization.store.errors import disk_os_error
from model_customization.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

HomeOption = typer.Option(None, "--home", envvar="MODEL_CUSTOMIZATION_HOME", help="Data home (ledger, datasets, adapters).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
LimitOption = typer.Option(50, min=1, max=500, help="Rows per page.")
CursorOption = typer.Option(None, help="The next page: the cursor the previous page printed (next_cursor with --json).")

EXIT_FAILED = 1  # the operation failed, or a user error: the message says what to change
EXIT_NOT_FOUND = 3  # an id or path that does not exist
EXIT_CONFIRM = 4  # refused until someone confirms (a paid job over budget, provisioned throughput's billing)

# Whether the running command prints JSON: progress bars and the demo's narration then keep off stdout.
_json_output: contextvars.ContextVar[bool] = contextvars.ContextVar("json_output", default=False)


def exit_code(error: Exception) -> int:
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ConfirmationNeeded):
        return EXIT_CONFIRM
    return EXIT_FAILED


def fail(error: Exception) -> typing.NoReturn:
    # escaped: messages quote lists and JSON ("[...]") that rich would read as markup; unwrapped so they copy whole
    err_console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(exit_code(error))


def open_workspace(home: Optional[Path]) -> Workspace:
    try:
        return Workspace.open(home)  # applies the config file (config.py)
    except ConfigError as error:
        fail(error)


def interactive() -> bool:
    """Whether a person can answer a question on this terminal (tests patch this)."""
    return sys.stdin.isatty()


def json_output() -> bool:
    return _json_output.get()


def text_console() -> Console:
    """Where narration goes: stdout, or stderr while stdout carries the JSON alone."""
    return err_console if json_output() else console


# --- output helpers ---------------------------------------------------------------------------------------------
def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def show_fields(result: dict[str, Any]) -> None:
    for key, value in result.items():
        if value is not None:
            console.print(f"{key}: {value}", markup=False, soft_wrap=True)  # ARNs stay on one line to copy


def more(next_cursor: Optional[str]) -> None:
    """The next page's cursor, on stderr (stdout holds the table) so that it never mixes with the listed rows."""
    if next_cursor:
        err_console.print(f"more: --cursor {next_cursor}", markup=False, soft_wrap=True)


def table(*columns: str, whole: tuple[str, ...] = (), title: Optional[str] = None) -> Table:
    """A table whose `whole` columns (ids to copy) are never cut; the others fold to fit the terminal."""
    shown = Table(title=title)
    for column in columns:
        shown.add_column(column, no_wrap=column in whole, overflow="fold")
    return shown


def usd(amount: Optional[float]) -> str:
    return "unknown" if amount is None else f"${amount:,.2f}"


def json_or_text(raw: str) -> Any:
    """A command-line value as JSON when it parses (3, 0.5, true, "x"), else the text itself (auto)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def pairs(values: Optional[list[str]], option: str, *, parse_json: bool) -> dict[str, Any]:
    """KEY=VALUE options (repeatable) as a dict; a repeated key or a missing '=' is refused."""
    found: dict[str, Any] = {}
    for item in values or []:
        key, separator, value = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise UserError(f"{option} takes KEY=VALUE (e.g. {option} n_epochs=3); got {item!r}.")
        if key in found:
            raise UserError(f"{option} {key} is given twice; give each key once.")
        found[key] = json_or_text(value) if parse_json else value
    return found


def progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=err_console
    )


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Optional[Callable[[float, Optional[float], str], None]]]:
    """A progress callback (done, total, note) drawing a bar on stderr; None with --json (stdout carries the JSON alone)."""
    if json_output():
        yield None
        return
    with progress() as bar:
        task = bar.add_task(description, total=None, note="")
        yield lambda done, total, note: bar.update(task, completed=done, total=total, note=note)


@dataclass
class Output:
    """A result whose text depends on the call: `value` is printed as JSON with --json, else `text()` runs; then
    `then()` runs in both cases (a file written after the result is shown; its UserError fails as usual)."""

    value: Any
    text: Callable[[], None]
    then: Optional[Callable[[], None]] = None


class Verbatim(str):
    """A result printed as it is, with or without --json (eval show --markdown)."""


# --- flags from a request model ---------------------------------------------------------------------------------
def _bare(annotation: Any) -> Any:
    """The type under `Annotated[...]` (constraints such as LongText's length are checked by the model, not typer)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is list:
        return list[_bare(typing.get_args(annotation)[0])]
    return annotation


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of `X | None`, constraints set aside."""
    annotation = _bare(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [_bare(member) for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) < len(typing.get_args(annotation)):
            return (members[0] if len(members) == 1 else Union[tuple(members)]), True
    return annotation, False


def _plain(annotation: Any) -> bool:
    """Types typer reads by itself: text, numbers, booleans, dates, paths and Literal choices."""
    return annotation in (str, int, float, bool, datetime, Path) or typing.get_origin(annotation) is Literal


def _none_or(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        return None if raw.strip().lower() in ("none", "null") else kind(raw)

    return parse


@dataclass
class _Flag:
    """How one field of a request model appears on the command line."""

    name: str
    parameter: inspect.Parameter
    shown: str  # in messages: --flag, or NAME for an argument
    from_text: Optional[Callable[[Any], Any]] = None  # a JSON, KEY=VALUE or converter field: the text becomes the value here
    repeatable: bool = False


def _flag(name: str, field: Any, *, positional: bool, names: Sequence[str] | None, converter: Optional[Callable[[str], Any]]) -> _Flag:
    kind, optional = _without_none(field.annotation)
    required = field.is_required()
    default = ... if required else field.get_default(call_default_factory=True)
    dashed = name.replace("_", "-")
    help_text = field.description
    from_text = None
    repeatable = False
    options: dict[str, Any] = {}
    if converter is not None:
        annotation, from_text = str, converter
        cli_default = ... if required else None
    elif typing.get_origin(kind) is list and _plain(typing.get_args(kind)[0]):
        annotation, repeatable = list[typing.get_args(kind)[0]], True
        cli_default = ... if required else None
    elif kind is bool:
        annotation, cli_default = bool, default
        names = names or (f"--{dashed}/--no-{dashed}",)
    elif _plain(kind) and optional and default is not None:
        annotation, cli_default = str, str(default)
        options["parser"] = _none_or(kind)
        help_text = f"{help_text} On the command line, none is null." if help_text else "none: null."
    elif _plain(kind):
        annotation, cli_default = (Optional[kind] if optional or default is None else kind), default
    elif typing.get_origin(kind) is dict:
        # repeatable KEY=VALUE (the value read as JSON when it parses, else as text), or one JSON object
        annotation, repeatable = list[str], True
        cli_default = ... if required else None
        from_text = _key_values(names[0] if names else f"--{dashed}")
        help_text = f"{help_text} KEY=VALUE, repeatable, or one JSON object." if help_text else "KEY=VALUE, repeatable, or one JSON object."
    else:
        annotation, cli_default = str, (... if required else None)
        from_text = _json_value(names[0] if names else f"--{dashed}")
    if positional:
        info = typer.Argument(cli_default, help=help_text, **options)
    else:
        info = typer.Option(cli_default, *(names or (f"--{dashed}",)), help=help_text, **options)
    if cli_default is None and annotation is not bool:
        annotation = Optional[annotation]
    parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)
    shown = name.upper() if positional else (names[0].split("/")[0] if names else f"--{dashed}")
    return _Flag(name, parameter, shown, from_text, repeatable)


def _json_value(flag: str) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return json.loads(raw)
        except ValueError as error:
            raise UserError(f"{flag} takes JSON ({error}); got {raw[:80]!r}.") from None

    return parse


def _key_values(flag: str) -> Callable[[list[str]], Any]:
    def parse(given: list[str]) -> Any:
        if len(given) == 1 and given[0].lstrip().startswith("{"):
            return _json_value(flag)(given[0])
        return pairs(given, flag, parse_json=True)

    return parse


def request_flags(
    model: type[BaseModel],
    *,
    positional: Sequence[str] = (),
    flags: Mapping[str, Sequence[str]] | None = None,
    converters: Mapping[str, Callable[[str], Any]] | None = None,
) -> list[_Flag]:
    """The command-line form of each field of `model`: positional fields first (in the order given), then options."""
    flags, converters = flags or {}, converters or {}
    unknown = (set(positional) | set(flags) | set(converters)) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    order = [*positional, *(name for name in model.model_fields if name not in positional)]
    return [
        _flag(name, model.model_fields[name], positional=name in positional, names=flags.get(name), converter=converters.get(name))
        for name in order
    ]


def _request(model: type[BaseModel], cli_flags: list[_Flag], values: dict[str, Any]) -> BaseModel:
    given: dict[str, Any] = {}
    for flag in cli_flags:
        value = values.pop(flag.name)
        if flag.repeatable and not value:
            continue  # no occurrence: the field's default
        if flag.from_text is not None:
            if value is None:
                continue
            value = flag.from_text(list(value) if flag.repeatable else value)
        given[flag.name] = value
    try:
        return model.model_validate(given)
    except ValidationError as error:
        shown = {flag.name: flag.shown for flag in cli_flags}
        problems = [f"{shown.get(issue['loc'][0], 'arguments') if issue['loc'] else 'arguments'}: {issue['msg']}" for issue in error.errors()]
        raise typer.BadParameter("; ".join(problems)) from None  # a usage error: exit code 2


def command(
    group: typer.Typer,
    name: str,
    *,
    request: type[BaseModel] | None = None,
    builds: type[BaseModel] | None = None,
    positional: Sequence[str] = (),
    flags: Mapping[str, Sequence[str]] | None = None,
    converters: Mapping[str, Callable[[str], Any]] | None = None,
    render: Callable[[Any], None] | None = None,
    failed: Callable[[Any], bool] | None = None,
    workspace: bool = True,
    takes_json: bool = True,
    help: Optional[str] = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as `group name` (see the module docstring).

    render prints the result as text (default: one `key: value` line per field); failed(result) true exits with 1
    after the result is printed (an invalid dataset, a failed job). workspace=False: no --home is added and the
    function gets no workspace; takes_json=False: no --json."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(function)
        own = list(inspect.signature(function).parameters.values())
        if workspace:
            own = own[1:]  # the workspace, given by the decorator
        if request is not None:
            own = [parameter for parameter in own if parameter.name != "request"]
        cli_flags = request_flags(request, positional=positional, flags=flags, converters=converters) if request is not None else []
        parameters = [flag.parameter for flag in cli_flags]
        parameters += [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(parameter.name, parameter.annotation)) for parameter in own]
        if workspace:
            parameters.append(inspect.Parameter("home", inspect.Parameter.KEYWORD_ONLY, default=HomeOption, annotation=Optional[Path]))
        if takes_json:
            parameters.append(inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=JsonOption, annotation=bool))

        @functools.wraps(function)
        def run(**values: Any) -> None:
            as_json = values.pop("as_json", False) if takes_json else False
            home = values.pop("home", None) if workspace else None  # without a workspace, --home is the command's own
            token = _json_output.set(as_json)
            try:
                try:
                    if request is not None:
                        values["request"] = _request(request, cli_flags, values)
                    result = function(open_workspace(home), **values) if workspace else function(**values)
                except UserError as error:
                    fail(error)
                except OSError as error:
                    explained = disk_os_error(error)  # a full disk or a read-only file system: a message, no traceback
                    if explained is None:
                        raise
                    fail(explained)
                _print(result, as_json, render)
                if isinstance(result, Output) and result.then is not None:
                    try:
                        result.then()
                    except UserError as error:
                        fail(error)
            finally:
                _json_output.reset(token)
            if failed is not None and failed(result.value if isinstance(result, Output) else result):
                raise typer.Exit(EXIT_FAILED)

        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        del run.__wrapped__  # typer reads the signature above, not the function's own
        run.request_model = request  # type: ignore[attr-defined]  # tests compare the flags with the model's fields
        run.builds_request = builds  # type: ignore[attr-defined]  # a command with flags of its own that validates them into this model
        group.command(name, help=help)(run)
        return function

    return decorate


def _print(result: Any, as_json: bool, render: Callable[[Any], None] | None) -> None:
    if result is None:
        return
    if isinstance(result, Verbatim):
        print(result)
    elif isinstance(result, Output):
        print_json(result.value) if as_json else result.text()
    elif as_json:
        print_json(result)
    else:
        (render or show_fields)(result)


def with_terminal_consent(run: Callable[[float | None], Any], *, may_ask: bool, refused: str) -> Any:
    """Run a paid operation; when it needs a person to approve its cost, ask the one at this terminal (stdin a TTY,
    not --yes) and run it again with the amount they accepted (math.inf: an unknown price they accepted). A script
    gets the refusal, which says what the operator can do."""
    import math

    import typer

    from model_customization.errors import ConfirmationNeeded, UserError

    try:
        return run(None)
    except ConfirmationNeeded as needed:
        if not may_ask:
            # The domain names tool arguments; on the command line they are options.
            message = str(needed).replace("confirm_cost_usd=", "--confirm-cost-usd ").replace("confirm_cost_usd", "--confirm-cost-usd")
            raise ConfirmationNeeded(f"{message} (Not asked: no terminal, or --yes.)", quote_usd=needed.quote_usd, question=needed.question) from needed
        if not typer.confirm(needed.question, default=False, err=True):
            raise UserError(f"{refused}: you did not confirm the cost. Nothing was sent to a provider or spent.") from needed
        return run(math.inf if needed.quote_usd is None else needed.quote_usd)
