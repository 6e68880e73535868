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
import sys
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: `serve` starts without typer, rich and every command group
        from model_customization.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    arguments = sys.argv[1:]
    # `model-customization serve` is what uvx configurations launch on every session: it goes straight to the server's
    # own entry point (the same options), so the client does not wait for the human CLI's libraries to load.
    if arguments[:1] == ["serve"] and not {"--help", "-h"} & set(arguments[1:]):
        from model_customization.server.__main__ import main as serve

        sys.exit(serve(arguments[1:]))
    from model_customization.cli.commands import app

    app()


if __name__ == "__main__":
    main()
