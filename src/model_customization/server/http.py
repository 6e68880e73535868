"""Who may talk to the server over streamable HTTP: bearer tokens, Host/Origin checks, and the bind-address rule.

Loopback binds (127.0.0.0/8, ::1) are served without tokens unless tokens are configured; when they are,
every request needs one, loopback or not (a token set in the environment is never silently ignored). Any other bind
address refuses to start without tokens. Tokens come from MODEL_CUSTOMIZATION_HTTP_TOKENS (comma-separated), each
either the token itself or `sha256:<hex digest>` of it, so a config file need not hold the plain token. Only
SHA-256 digests are kept in memory; presented tokens are hashed and compared in constant time, and never logged.
Tokens belong in the Authorization header: one sent in a URL's query string is never accepted, and the access log
writes every query value as *** (hide_query_values_in_access_log), so a token or key pasted into a URL is not kept.

Host/Origin validation (DNS rebinding) always runs: the accepted Host values come from the bind address and port,
plus MODEL_CUSTOMIZATION_HTTP_ALLOWED_HOSTS / `serve --allowed-host` (a reverse proxy's name, say).

Whether a bind is loopback is decided by the addresses actually bound, never by the name given: the sockets are
bound first (bind_listening_sockets) and handed to uvicorn, so `--host localhost` on a machine whose hosts file maps
localhost to 0.0.0.0 is judged as the wildcard bind it is.

Slow clients are timed out: a request must arrive whole (headers and body) within MODEL_CUSTOMIZATION_HTTP_READ_TIMEOUT
seconds of the connection opening or of the previous response (SlowClientTimeout), or the connection is closed; a
few dozen clients sending half a request would otherwise hold connections (and memory) forever.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from model_customization.errors import UserError

TOKENS_ENV = "MODEL_CUSTOMIZATION_HTTP_TOKENS"
ALLOWED_HOSTS_ENV = "MODEL_CUSTOMIZATION_HTTP_ALLOWED_HOSTS"
READ_TIMEOUT_ENV = "MODEL_CUSTOMIZATION_HTTP_READ_TIMEOUT"
DEFAULT_READ_TIMEOUT_S = 30.0  # a whole MCP request (bodies are capped by the SDK) arrives well within this
KEEP_ALIVE_TIMEOUT_S = 5  # uvicorn's default, said out loud: an idle kept-alive connection is closed after it
HASH_PREFIX = "sha256:"
# Short tokens can be guessed online; 16 characters of a random token is already ~80+ bits.
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
MCP_PATH = "/mcp"
API_PATH = "/v1"  # the OpenAI-compatible API (api/), under the same access rules


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine: every address it resolves to is loopback.
    A name is resolved, never trusted (a hosts file may map localhost to 0.0.0.0)."""
    addresses = resolve_bind_addresses(host)
    return bool(addresses) and all(_is_loopback_address(address) for address in addresses)


def resolve_bind_addresses(host: str, port: int = 0) -> list[str]:
    """The IP addresses a listening socket for `host` would be bound to (none when it does not resolve)."""
    if not host.strip("[]"):
        return []
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def _is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to, bound now, so the access rules can be decided by
    what was bound (http_access(bound=...)) and uvicorn serves exactly these sockets. UserError when none binds."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as error:
        raise UserError(f"Cannot serve on {host!r}: the name does not resolve ({getattr(error, 'strerror', None) or error}); give an address such as 127.0.0.1.") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys((i[0], i[1], i[2], i[3], i[4]) for i in infos):
            listener = socket.socket(family, kind, proto)
            sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # each family its own socket
            # one port for every address of the name
            listener.bind((address[0], sockets[0].getsockname()[1], *address[2:]) if port == 0 and len(sockets) > 1 else address)
            listener.listen(2048)
            listener.setblocking(False)
    except OSError as error:
        for listener in sockets:
            listener.close()
        raise UserError(f"Cannot listen on {host}:{port}: {error.strerror or error}. Choose another --port, or stop what is using it.") from None
    return sockets


def bound_addresses(sockets: Sequence[socket.socket]) -> list[str]:
    """The IP addresses the sockets are actually bound to."""
    return list(dict.fromkeys(str(listener.getsockname()[0]) for listener in sockets))


def read_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a client has to send a whole request (MODEL_CUSTOMIZATION_HTTP_READ_TIMEOUT, default 30)."""
    raw = (os.environ if environ is None else environ).get(READ_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_READ_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 3600:
        raise UserError(f"{READ_TIMEOUT_ENV}={raw!r}: expected a number of seconds above 0 and at most 3600, e.g. 30.")
    return value


def _url_host(host: str) -> str:
    """A host as it appears in a URL or Host header: IPv6 literals in brackets."""
    bare = host.strip("[]")
    try:
        return f"[{bare}]" if ipaddress.ip_address(bare).version == 6 else bare
    except ValueError:
        return host.lower()


def _public_host(host: str) -> str:
    """The name clients use for a bind address: this machine's name for a wildcard bind."""
    return socket.gethostname().lower() if host in WILDCARD_ADDRESSES else _url_host(host)


def token_digests(raw: str | None) -> list[bytes]:
    """The SHA-256 digests of the configured tokens (plain tokens or `sha256:<hex>` entries), in order."""
    digests: list[bytes] = []
    for position, entry in enumerate((raw or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        if entry.lower().startswith(HASH_PREFIX):
            hex_digest = entry[len(HASH_PREFIX):].strip()
            try:
                digest = bytes.fromhex(hex_digest)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                # the entry is a hash, not a secret, but quoting it would not help more than its position
                raise UserError(f"{TOKENS_ENV}: entry {position} starts with 'sha256:' but is not 64 hex digits; give sha256:<hex of sha256(token)>.")
            digests.append(digest)
        else:
            if len(entry) < MIN_TOKEN_LENGTH:
                raise UserError(
                    f"{TOKENS_ENV}: entry {position} is shorter than {MIN_TOKEN_LENGTH} characters; use a long random token "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')."
                )
            digests.append(hashlib.sha256(entry.encode()).digest())
    return digests


class StaticTokenVerifier:
    """The SDK's TokenVerifier for a fixed set of bearer tokens, known only by their SHA-256 digests."""

    def __init__(self, digests: Iterable[bytes]) -> None:
        self._digests = tuple(digests)
        if not self._digests:
            raise ValueError("StaticTokenVerifier needs at least one token digest")

    def __len__(self) -> int:
        return len(self._digests)

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        matched: bytes | None = None
        # every digest is compared, so the time taken does not tell which (or whether an early) one matched
        for digest in self._digests:
            if hmac.compare_digest(digest, presented):
                matched = digest
        if matched is None:
            return None
        # The client id names the token by a short fingerprint of its digest: sessions stay bound to one token,
        # and an operator can tell which configured token a session used without the token itself.
        return AccessToken(token=token, client_id=f"token-{matched.hex()[:8]}", scopes=[])


def allowed_host_values(host: str, port: int, extra_hosts: Iterable[str] = (), *, loopback: bool | None = None) -> list[str]:
    """Host header values a request may carry: the bind address with its port (every loopback name for a
    loopback or wildcard bind, and this machine's name for a wildcard bind), plus the extra names. `loopback` is
    whether the sockets bound are all loopback (resolved from `host` when not given)."""
    if is_loopback(host) if loopback is None else loopback:
        names = list(LOOPBACK_NAMES)
        if _url_host(host) not in names:
            names.append(_url_host(host))
    elif host in WILDCARD_ADDRESSES:
        names = [*LOOPBACK_NAMES, socket.gethostname().lower()]
    else:
        names = [_url_host(host)]
    values = [f"{name}:{port}" for name in names]
    if port == 80:  # clients leave out the default port
        values += names
    for extra in extra_hosts:
        extra = extra.strip().lower()
        if not extra:
            continue
        name, separator, maybe_port = extra.rpartition(":")
        if separator and maybe_port.isdigit() and not name.endswith(":"):
            values.append(extra)
        else:
            # a name without a port: trusted on any port (a proxy on 443 sends no port at all)
            values += [_url_host(extra), f"{_url_host(extra)}:*"]
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class HttpAccess:
    """Everything the streamable HTTP transport needs to decide who gets in."""

    host: str
    port: int
    bound: tuple[str, ...]  # the addresses the decision was made on
    token_verifier: StaticTokenVerifier | None
    auth: AuthSettings | None
    transport_security: TransportSecuritySettings

    @property
    def url(self) -> str:
        return f"http://{_public_host(self.host)}:{self.port}{MCP_PATH}"

    def describe(self) -> str:
        """One line for the operator (stderr): where, whether tokens are needed, which Host values pass. No secrets."""
        tokens = f"required ({len(self.token_verifier)} configured)" if self.token_verifier else f"not required (bound to loopback only: {', '.join(self.bound)})"
        hosts = ", ".join(self.transport_security.allowed_hosts)
        return f"streamable HTTP on {self.url}; bearer tokens {tokens}; accepted Host headers: {hosts}"


class _QueryValuesHidden(logging.Filter):
    """Rewrites uvicorn's access lines ("client", "METHOD", "path?query", "version", status) with every query value
    written as ***: a client that puts its token (or any key) in the URL must not get it kept in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            path, _, query = args[2].partition("?")
            hidden = "&".join(part.partition("=")[0] + "=***" if "=" in part else "***" for part in query.split("&") if part)
            record.args = (*args[:2], f"{path}?{hidden}", *args[3:])
        return True


def hide_query_values_in_access_log() -> None:
    """Install the filter on uvicorn's access logger (once; uvicorn's own logging setup keeps a logger's filters)."""
    access_logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _QueryValuesHidden) for f in access_logger.filters):
        access_logger.addFilter(_QueryValuesHidden())


def http_access(
    host: str,
    port: int,
    *,
    extra_allowed_hosts: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    bound: Sequence[str] | None = None,
) -> HttpAccess:
    """Decide the access rules for serving on host:port; refuses (UserError) a non-loopback bind without tokens.

    `bound` is the addresses the listening sockets were actually bound to; without it, those `host` resolves to."""
    environ = os.environ if environ is None else environ
    digests = token_digests(environ.get(TOKENS_ENV))
    hide_query_values_in_access_log()  # before uvicorn logs its first request
    addresses = tuple(resolve_bind_addresses(host, port) if bound is None else bound)
    loopback = bool(addresses) and all(_is_loopback_address(address) for address in addresses)
    if not digests and not loopback:
        where = f" (it resolves to {', '.join(addresses)})" if addresses and ", ".join(addresses) != host.strip("[]") else ""
        raise UserError(
            f"Refusing to serve streamable HTTP on {host}{where}: an address other than loopback (127.0.0.1, ::1, localhost) "
            f"needs bearer tokens. Set {TOKENS_ENV} to one or more comma-separated tokens (or sha256:<hex> of each) "
            "and have clients send 'Authorization: Bearer <token>', or bind to 127.0.0.1."
        )
    extra_hosts = [*(environ.get(ALLOWED_HOSTS_ENV, "").split(",")), *extra_allowed_hosts]
    host_values = allowed_host_values(host, port, extra_hosts, loopback=loopback)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=host_values,
        allowed_origins=[f"{scheme}://{value}" for value in host_values for scheme in ("http", "https")],
    )
    verifier = StaticTokenVerifier(digests) if digests else None
    auth = None
    if verifier is not None:
        base = f"http://{_public_host(host)}:{port}"
        # No separate authorization server issues these tokens (they are handed out by the operator), so the
        # server names itself as issuer; the verifier checks tokens itself, hence no RFC 8707 resource check.
        auth = AuthSettings(issuer_url=base, resource_server_url=f"{base}{MCP_PATH}", required_scopes=None, validate_token_resource=False)
    return HttpAccess(host=host, port=port, bound=addresses, token_verifier=verifier, auth=auth, transport_security=security)


def serve_streamable_http(server: Any, access: HttpAccess, sockets: Sequence[socket.socket], *, timeout_s: float | None = None, ws: Any = None) -> None:
    """Serve the MCP server's streamable HTTP app on the sockets bound already, slow clients timed out; with a
    workspace, the OpenAI-compatible API at /v1 beside /mcp."""
    import anyio
    import uvicorn

    app = server.streamable_http_app(transport_security=access.transport_security, host=access.host)
    if ws is not None:
        mount_openai_api(app, ws, access)
    config = uvicorn.Config(
        app,
        http=slow_client_protocol(read_timeout() if timeout_s is None else timeout_s),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        log_level=server.settings.log_level.lower(),
    )
    anyio.run(uvicorn.Server(config).serve, list(sockets))


def mount_openai_api(app: Any, ws: Any, access: HttpAccess) -> None:
    """Mount /v1 (api/) inside the MCP app, so the SDK's token middleware, which wraps the whole app, authenticates
    its requests too; /v1 then applies /mcp's rules: the same Host/Origin lists, and a token whenever tokens are on."""
    from starlette.routing import Mount

    from model_customization.api.access import SameAccessAsMcp
    from model_customization.api.app import build_v1_app

    metadata_url = None
    if access.auth is not None and access.auth.resource_server_url is not None:
        from mcp.server.auth.routes import build_resource_metadata_url

        metadata_url = str(build_resource_metadata_url(access.auth.resource_server_url))
    guarded = SameAccessAsMcp(build_v1_app(ws), access.transport_security, tokens_required=access.token_verifier is not None, resource_metadata_url=metadata_url)
    app.router.routes.append(Mount(API_PATH, app=guarded))


def slow_client_protocol(timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose request has not arrived whole within `timeout_s` of the
    connection opening or of the previous response. A request that did arrive whole is never cut off while the
    server works on it or streams its answer (an SSE stream, a long tool call)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class SlowClientTimeout(H11Protocol):
        _read_deadline: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_read_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_read_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
            super().connection_lost(exc)

        def _arm_read_deadline(self) -> None:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
            self._read_deadline = self.loop.call_later(timeout_s, self._read_deadline_passed)

        def _read_deadline_passed(self) -> None:
            self._read_deadline = None
            if self.transport.is_closing() or self.conn.their_state is h11.DONE:
                return  # closed already, or the request is whole and being answered
            self.logger.info("closing a connection from %s: no whole request within %.0f s", self.client and self.client[0], timeout_s)
            self.transport.close()

    return SlowClientTimeout
