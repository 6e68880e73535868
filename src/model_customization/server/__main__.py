"""`python -m model_customization.server` (the `model-customization-server` command): the MCP server alone.

The same server as `model-customization serve`, started without the human CLI's libraries (typer, rich), which an
MCP client launching the server on every session would otherwise wait for.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model-customization-server", description="Run the model-customization MCP server.")
    parser.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio", help="stdio (default) or streamable-http")
    parser.add_argument("--host", default="127.0.0.1", help="address or name for streamable-http, judged by the addresses bound (any but loopback needs MODEL_CUSTOMIZATION_HTTP_TOKENS)")
    parser.add_argument("--port", type=int, default=8000, help="port for streamable-http")
    parser.add_argument("--allowed-host", action="append", default=[], help="another Host header to accept over streamable-http; repeatable")
    parser.add_argument("--home", default=None, help="data home (ledger, datasets, adapters); default $MODEL_CUSTOMIZATION_HOME")
    args = parser.parse_args(argv)
    from model_customization.errors import UserError

    try:
        run_server(args.transport, host=args.host, port=args.port, allowed_hosts=args.allowed_host, home=args.home)
    except UserError as error:  # a refused bind, an unusable config file: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_server(transport: str, *, host: str = "127.0.0.1", port: int = 8000, allowed_hosts: list[str] | tuple[str, ...] = (), home: str | None = None) -> None:
    """Start the server and serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    from model_customization.errors import UserError
    from model_customization.server.app import build_server
    from model_customization.workspace import Workspace

    if transport not in ("stdio", "streamable-http"):
        raise UserError(f"Unknown transport {transport!r}: use stdio or streamable-http.")
    # First the config file: its [env] may hold the settings read below (HTTP tokens).
    workspace = Workspace.open(home)
    if transport == "stdio":
        from model_customization.server.stdio_guard import run_stdio

        run_stdio(build_server(workspace, dispatch_at_start="soon"))
        return
    from model_customization.server.http import bind_listening_sockets, bound_addresses, http_access, read_timeout, serve_streamable_http

    # Decided before the server is built, so a refused bind starts nothing (no dispatch, nothing accepted), and
    # decided by the addresses actually bound, not by the name given.
    timeout_s = read_timeout()
    sockets = bind_listening_sockets(host, port)
    try:
        access = http_access(host, sockets[0].getsockname()[1], extra_allowed_hosts=allowed_hosts, bound=bound_addresses(sockets))
        print(access.describe(), file=sys.stderr)
        server = build_server(workspace, auth=access.auth, token_verifier=access.token_verifier, dispatch_at_start="soon")
        serve_streamable_http(server, access, sockets, timeout_s=timeout_s, ws=workspace)
    finally:
        for listener in sockets:
            listener.close()


if __name__ == "__main__":
    sys.exit(main())
