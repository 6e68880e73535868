"""Who may talk to the server over streamable HTTP: bearer tokens, Host/Origin checks, and the bind-address rule.

Loopback binds (127.0.0.0/8, ::1, localhost) are served without tokens unless tokens are configured; when they are,
every request needs one, loopback or not (a token set in the environment is never silently ignored). Any other bind
address refuses to start without tokens. Tokens come from MODEL_CUSTOMIZATION_HTTP_TOKENS (comma-separated), each
either the token itself or `sha256:<hex digest>` of it, so a config file need not hold the plain token. Only
SHA-256 digests are kept in memory; presented tokens are hashed and compared in constant time, and never logged.
Tokens belong in the Authorization header: one sent in a URL's query string is never accepted, and the access log
writes every query value as *** (hide_query_values_in_access_log), so a token or key pasted into a URL is not kept.

Host/Origin validation (DNS rebinding) always runs: the accepted Host values come from the bind address and port,
plus MODEL_CUSTOMIZATION_HTTP_ALLOWED_HOSTS / `serve --allowed-host` (a reverse proxy's name, say).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from model_customization.errors import UserError

TOKENS_ENV = "MODEL_CUSTOMIZATION_HTTP_TOKENS"
ALLOWED_HOSTS_ENV = "MODEL_CUSTOMIZATION_HTTP_ALLOWED_HOSTS"
HASH_PREFIX = "sha256:"
# Short tokens can be guessed online; 16 characters of a random token is already ~80+ bits.
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
MCP_PATH = "/mcp"


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


def allowed_host_values(host: str, port: int, extra_hosts: Iterable[str] = ()) -> list[str]:
    """Host header values a request may carry: the bind address with its port (every loopback name for a
    loopback or wildcard bind, and this machine's name for a wildcard bind), plus the extra names."""
    if is_loopback(host):
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
    token_verifier: StaticTokenVerifier | None
    auth: AuthSettings | None
    transport_security: TransportSecuritySettings

    @property
    def url(self) -> str:
        return f"http://{_public_host(self.host)}:{self.port}{MCP_PATH}"

    def describe(self) -> str:
        """One line for the operator (stderr): where, whether tokens are needed, which Host values pass. No secrets."""
        tokens = f"required ({len(self.token_verifier)} configured)" if self.token_verifier else "not required (loopback only)"
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


def http_access(host: str, port: int, *, extra_allowed_hosts: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> HttpAccess:
    """Decide the access rules for serving on host:port; refuses (UserError) a non-loopback bind without tokens."""
    environ = os.environ if environ is None else environ
    digests = token_digests(environ.get(TOKENS_ENV))
    hide_query_values_in_access_log()  # before uvicorn logs its first request
    if not digests and not is_loopback(host):
        raise UserError(
            f"Refusing to serve streamable HTTP on {host}: an address other than loopback (127.0.0.1, ::1, localhost) "
            f"needs bearer tokens. Set {TOKENS_ENV} to one or more comma-separated tokens (or sha256:<hex> of each) "
            "and have clients send 'Authorization: Bearer <token>', or bind to 127.0.0.1."
        )
    extra_hosts = [*(environ.get(ALLOWED_HOSTS_ENV, "").split(",")), *extra_allowed_hosts]
    host_values = allowed_host_values(host, port, extra_hosts)
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
    return HttpAccess(host=host, port=port, token_verifier=verifier, auth=auth, transport_security=security)
