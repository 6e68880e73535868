"""Which files a caller may make the server read or write: only those inside the allowed roots.

An MCP client (or a prompt injected into one) can name any path; without a fence, build_dataset or inspect_dataset
would read ~/.ssh or /etc for it. A path is allowed when its real path (every symbolic link followed, `..` removed)
lies inside an allowed root, so `..`, absolute paths elsewhere and links pointing out are all refused the same way.

Roots: $MODEL_CUSTOMIZATION_ALLOWED_ROOTS (os.pathsep-separated) or the config file's allowed_roots, which replace
the defaults: the working directory and the folders where coding agents keep their memory (DEFAULT_AGENT_MEMORY_DIRS).
The package's own demo data is always readable and never written (a read-only root). The CLI enforces the same roots: its default (the working
directory) covers a user pointing it at their own files, and the config file or variable adds others.

Size limits ($MODEL_CUSTOMIZATION_MAX_FILE_BYTES, $MODEL_CUSTOMIZATION_MAX_LINE_BYTES, or the config file) keep one
huge memory file or line from exhausting the server's memory: such a file or line is reported, never read whole.

Three rules hold whatever the roots are:
- Credentials are never read or written (DENIED_PATHS, DENIED_FOLDER_NAMES, credential-looking file names, the
  config file): with the working directory a parent of the home folder, ~/.ssh would otherwise lie inside a root.
- What is checked is what is used: a name checked and then opened can be swapped for a symbolic link in between, so
  files are opened first and the descriptor's real path is checked (open_fenced), and walks check every folder they
  open the same way (iter_files_within_roots). Writers create folders by descriptor (storage.fenced_folder).
- A refusal says the same thing whether the path exists, cannot be read or is outside, and never names where a link
  leads (/proc/self/fd/N, /proc/self/exe and /etc/localtime would otherwise tell a caller what they point to).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from platformdirs import user_data_dir

from model_customization.config import ALLOWED_ROOTS_ENV, CONFIG_ENV, CONFIG_FILE_NAME, HOME_ENV, MAX_FILE_BYTES_ENV, MAX_LINE_BYTES_ENV
from model_customization.errors import UserError

# Where coding agents keep transcripts and memory. Narrow on purpose: ~/.claude as a whole also holds credentials.
# The memory formats' own `locations` (memory/formats.py) are added to these (default_agent_memory_dirs).
DEFAULT_AGENT_MEMORY_DIRS = (
    "~/.claude/projects",  # Claude Code transcripts, one folder per project
    "~/.claude/transcripts",  # older Claude Code versions
    "~/.codex/sessions",  # Codex CLI rollouts
    "~/.codex/archived_sessions",
    "~/.letta",  # Letta agent files (.af) and exports
    "~/.gemini/tmp",  # Gemini CLI chat logs
)
# Files and folders beside agent memory that hold credentials or keys: no default root may contain one of them (a
# location that would stands for its other entries), whatever a format declares.
CREDENTIAL_PATHS = (
    "~/.claude/.credentials.json",
    "~/.claude.json",
    "~/.codex/auth.json",
    "~/.gemini/oauth_creds.json",
    "~/.gemini/google_accounts.json",
    "~/.local/share/opencode/auth.json",
    "~/.cass-memory/config.json",
    "~/.config/gcloud",
    "~/.aws",
    "~/.ssh",
    "~/.netrc",
    "~/.git-credentials",
    "~/.docker/config.json",
)
# Never read or written, whatever the roots: credential folders and files (CREDENTIAL_PATHS and more) ...
DENIED_PATHS = (
    *CREDENTIAL_PATHS,
    "~/.gnupg",
    "~/.kube/config",
    "~/.pgpass",
    "~/.pypirc",
    "~/.npmrc",
    "~/.config/gh/hosts.yml",
    "~/.azure",
    "~/.password-store",
    "~/.local/share/keyrings",
)
# ... and, anywhere (another user's home, a copied backup), folders and file names that say they hold credentials.
DENIED_FOLDER_NAMES = frozenset({".ssh", ".gnupg", ".aws", ".azure", ".password-store", "keyrings"})
_CREDENTIAL_FILE_NAME = re.compile(
    r"(^|[._-])credentials?([._-]|$)|^auth\.json$|oauth_creds|client_secret|^\.netrc$|^\.pgpass$|^\.pypirc$"
    r"|^id_(rsa|dsa|ecdsa|ed25519)(_sk)?(\.pub)?$|\.(pem|key|p12|pfx|kdbx)$",
    re.IGNORECASE,
)
DEMO_DATA_DIR = Path(__file__).resolve().parent / "demo_data"  # shipped with the package: always readable, never written
READ_ONLY_ROOTS = (DEMO_DATA_DIR,)
DEFAULT_MAX_FILE_BYTES = 1 << 30  # 1 GiB
DEFAULT_MAX_LINE_BYTES = 64 << 20  # 64 MiB
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


@dataclass(frozen=True)
class MemoryLimits:
    max_file_bytes: int
    max_line_bytes: int


def allowed_roots() -> list[Path]:
    """The allowed roots as real paths (a root that is itself a symbolic link counts as the folder it points to)."""
    configured = os.environ.get(ALLOWED_ROOTS_ENV, "").strip()
    if configured:
        given = [part for part in configured.split(os.pathsep) if part.strip()]
    else:
        given = [*_working_directory(), *default_agent_memory_dirs()]
    roots: list[Path] = []
    for raw in [*given, str(DEMO_DATA_DIR)]:
        root = Path(raw.strip()).expanduser().resolve()
        if root not in roots:
            roots.append(root)
    return roots


def default_agent_memory_dirs() -> list[str]:
    """DEFAULT_AGENT_MEMORY_DIRS and every registered memory format's locations (globs matched on this machine). A
    location that holds a credentials file (CREDENTIAL_PATHS, the config file) stands for its other entries, one level
    down (OpenCode keeps auth.json beside its sessions); the home folder itself is never one."""
    # Imported here, not at the top: memory/detect.py imports this module.
    from model_customization.memory.detect import FORMATS

    declared = [*DEFAULT_AGENT_MEMORY_DIRS, *(location for fmt in FORMATS for location in fmt.locations)]
    home = Path.home().resolve()
    secrets = _credential_paths()
    found: list[str] = []
    for location in dict.fromkeys(declared):
        expanded = os.path.expanduser(location)
        for candidate in sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]:
            if Path(candidate).resolve() != home:
                found += [str(part) for part in credential_free_parts(Path(candidate), secrets)]
    return found


def _credential_paths() -> list[Path]:
    return [Path(p).expanduser().resolve() for p in CREDENTIAL_PATHS] + sorted(_config_files())


def holds_credentials(path: Path, secrets: Sequence[Path] | None = None) -> bool:
    """Whether a path is a credentials file or folder (CREDENTIAL_PATHS, the config file), or lies above one."""
    real = Path(path).resolve()
    return any(secret == real or secret.is_relative_to(real) for secret in (_credential_paths() if secrets is None else secrets))


def credential_free_parts(folder: Path, secrets: Sequence[Path] | None = None) -> list[Path]:
    """The folder itself when it holds no credentials; otherwise its entries that hold none (one level down; none when
    the folder does not exist or is itself a credentials path)."""
    folder = Path(folder)
    secrets = _credential_paths() if secrets is None else secrets
    if not holds_credentials(folder, secrets):
        return [folder]
    if folder.is_symlink() or not folder.is_dir() or folder.resolve() in secrets:
        return []
    try:
        entries = sorted(Path(entry.path) for entry in os.scandir(folder))
    except OSError:
        return []
    return [entry for entry in entries if not holds_credentials(entry, secrets)]


def _working_directory() -> list[str]:
    """The working directory as a default root, unless it is / or the home folder itself: a client such as Claude
    Desktop starts servers in /, and neither should open every file (~/.ssh included) to a caller."""
    cwd = Path.cwd().resolve()
    if cwd.parent == cwd or cwd == Path.home().resolve():
        return []
    return [str(cwd)]


def memory_limits() -> MemoryLimits:
    return MemoryLimits(_size(MAX_FILE_BYTES_ENV, DEFAULT_MAX_FILE_BYTES), _size(MAX_LINE_BYTES_ENV, DEFAULT_MAX_LINE_BYTES))


def parse_size(text: str) -> int:
    """Bytes from "1048576", "64MiB", "1 GiB", "500MB"; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]I?B|B)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(text)
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def _size(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse_size(raw)
        if value < 1:
            raise ValueError(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r}: expected a size of at least 1 byte, e.g. 1048576, 64MiB or 1GiB.") from None
    return value


MAX_NAME_BYTES = 255  # NAME_MAX and PATH_MAX of Linux and macOS file systems
MAX_PATH_BYTES = 4096


def resolve_user_path(path: str | os.PathLike[str], *, what: str = "Path") -> tuple[Path, Path]:
    """(the path with ~ expanded, its real path) for a path a caller typed; a UserError for one no file can have.

    A NUL byte, text that is not valid Unicode, a name longer than the file system allows or ~user for an unknown
    user would otherwise surface as ValueError, OSError or RuntimeError from deep inside pathlib."""
    text = os.fspath(path)
    shown = repr(text if len(text) <= 120 else text[:120] + "...")
    try:
        given = Path(text).expanduser()
        real = given.resolve()
        # resolve() does not mind a name no file can have; every later stat() would fail with ENAMETOOLONG.
        if len(os.fsencode(real)) > MAX_PATH_BYTES or any(len(os.fsencode(part)) > MAX_NAME_BYTES for part in real.parts):
            raise UserError(f"{what} {shown} is longer than a file system allows ({MAX_NAME_BYTES} bytes a name, {MAX_PATH_BYTES} in all); check the path.")
        return given, real
    except RuntimeError:  # ~name for a user this machine does not know, or a loop of symbolic links
        if not text.startswith("~"):
            raise UserError(f"{what} {shown} leads through a loop of symbolic links; give a path without one.") from None
        raise UserError(f"{what} {shown} starts with ~ for a user this machine does not know; give the full path.") from None
    except UnicodeError:
        raise UserError(f"{what} {shown} is not valid Unicode text (it holds a lone surrogate); send the path as UTF-8.") from None
    except ValueError:  # an embedded NUL byte
        raise UserError(f"{what} {shown} holds a NUL character, which no file name can; check the path.") from None
    except OSError as error:  # e.g. ENAMETOOLONG
        raise UserError(f"{what} {shown} cannot be used as a path ({error.strerror or 'invalid'}); give a shorter, existing path.") from None


class FenceError(UserError):
    """A file refused when opened (open_fenced): the file actually opened is outside the allowed roots, holds
    credentials, or is not a regular file. A reader reports it for that file and goes on with the others."""


def check_readable(path: str | os.PathLike[str], *, what: str = "Path") -> Path:
    """The real path of `path` if it lies inside an allowed root and holds no credentials; a UserError naming the
    path and the roots otherwise.

    Checked before existence, and a path outside gets the same refusal whatever it is (missing, unreadable, a link
    loop, a link into /proc), so a refused caller learns nothing about it. A check alone does not keep a file from
    being swapped for a link afterwards: read through open_fenced, which checks the file actually opened."""
    roots = allowed_roots()
    real = _checked_real_path(path, what, roots, "copy the files into one of them")
    if real in _config_files():
        raise UserError(f"{what} {path} is the config file, which may hold API keys; it is never read as data.")
    if is_denied(real):
        raise UserError(_denied_message(what, path))
    return real


def check_writable_dir(path: str | os.PathLike[str], *, home: Path, what: str = "Output folder") -> Path:
    """The real path of a folder to write, if inside the data home or a writable allowed root (the package's demo
    data is read-only) and not a credentials path; a UserError otherwise."""
    roots = writable_roots(home)
    real = _checked_real_path(path, what, roots, "choose a folder inside one of them")
    if is_denied(real):
        raise UserError(_denied_message(what, path))
    if _inside(real, list(READ_ONLY_ROOTS)):
        raise UserError(f"{what} {path} is refused: it lies inside the package's demo data, which is read-only. Choose a folder inside {', '.join(str(r) for r in roots)}.")
    return real


def writable_roots(home: Path) -> list[Path]:
    """Where the server may write: the data home and the allowed roots, less the read-only ones (READ_ONLY_ROOTS)."""
    found = [Path(home).resolve()]
    for root in allowed_roots():
        if root not in READ_ONLY_ROOTS and root not in found:
            found.append(root)
    return found


def may_write(real: Path, home: Path) -> bool:
    """Whether a real path may be written: inside a writable root, outside every read-only root, no credentials."""
    return _inside(real, writable_roots(home)) and not _inside(real, list(READ_ONLY_ROOTS)) and not is_denied(real)


def may_read(real: Path, roots: Sequence[Path] | None = None) -> bool:
    """Whether a real path may be read: inside an allowed root and no credentials."""
    fence = _current_fence()
    return _inside(real, fence.roots if roots is None else roots) and not is_denied(real, fence.denied)


@dataclass(frozen=True)
class _Fence:
    key: tuple[str | None, ...]
    roots: tuple[Path, ...]
    denied: tuple[Path, ...]
    made_at: float


_FENCE_TTL_S = 2.0
_fence_cache: list[_Fence] = []


def _current_fence() -> _Fence:
    """The allowed roots and the denied paths, kept for a moment: every file a build opens is checked against them,
    and computing the default roots (globs over the agents' folders) takes far longer than opening a file. A change
    of the variables or folders they come from is seen at once."""
    key = (os.environ.get(ALLOWED_ROOTS_ENV), os.environ.get(CONFIG_ENV), os.environ.get(HOME_ENV), os.environ.get("HOME"), os.getcwd())
    now = time.monotonic()
    if _fence_cache and _fence_cache[0].key == key and now - _fence_cache[0].made_at < _FENCE_TTL_S:
        return _fence_cache[0]
    fence = _Fence(key, tuple(allowed_roots()), tuple(_denied_paths()), now)
    _fence_cache[:] = [fence]
    return fence


def is_denied(real: Path, denied: Sequence[Path] | None = None) -> bool:
    """Whether a real path is, or lies inside, a credentials path (DENIED_PATHS, the config file, a folder named as
    DENIED_FOLDER_NAMES anywhere), or has a name that says it holds credentials. Wins over every root."""
    real = Path(real)
    if _inside(real, _current_fence().denied if denied is None else denied):
        return True
    return any(part in DENIED_FOLDER_NAMES for part in real.parts) or bool(_CREDENTIAL_FILE_NAME.search(real.name))


def _denied_paths() -> list[Path]:
    found: list[Path] = []
    for raw in DENIED_PATHS:
        expanded = Path(raw).expanduser()
        for form in (Path(os.path.abspath(expanded)), expanded.resolve()):  # a link to a key is as secret as the key
            if form not in found:
                found.append(form)
    return found + sorted(_config_files())


def _checked_real_path(path: str | os.PathLike[str], what: str, roots: Sequence[Path], instead: str) -> Path:
    """The real path of `path` when it lies inside `roots`; the one refusal for every path outside otherwise."""
    try:
        given, real = resolve_user_path(path, what=what)
    except UserError:
        lexical = _lexical_path(path)
        if lexical is not None and not _inside(lexical, roots):
            raise UserError(_outside_message(what, path, Path(lexical), roots, instead)) from None
        raise
    if not _inside(real, roots):
        raise UserError(_outside_message(what, path, given, roots, instead))
    return real


def _lexical_path(path: str | os.PathLike[str]) -> Path | None:
    """The absolute path as written (no link followed), or None for text no path can be."""
    try:
        return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    except (ValueError, RuntimeError, UnicodeError, OSError):
        return None


def descriptor_path(fd: int, opened_as: str | os.PathLike[str] | None = None) -> Path | None:
    """The real path of the file or folder an open descriptor refers to, whatever its name was changed to since; None
    when it has none (deleted, a pipe) or the system cannot tell.

    Linux reads /proc/self/fd; macOS asks fcntl(F_GETPATH); elsewhere the name it was opened as counts only when its
    real path is still the very file (same device and inode)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = None
    if target is not None:
        return Path(target) if target.startswith("/") and not target.endswith(" (deleted)") else None
    get_path = getattr(fcntl, "F_GETPATH", None)
    if get_path is not None:
        try:
            return Path(os.fsdecode(fcntl.fcntl(fd, get_path, bytes(1024)).rstrip(b"\0")))
        except OSError:
            return None
    if opened_as is None:
        return None
    try:
        real = os.path.realpath(opened_as)
        opened, named = os.fstat(fd), os.stat(real)
    except OSError:
        return None
    return Path(real) if (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino) else None


def check_opened(fd: int, path: str | os.PathLike[str], *, what: str = "File") -> None:
    """FenceError unless the file or folder open on `fd` (whatever name led to it) lies inside the allowed roots and
    holds no credentials."""
    real = descriptor_path(fd, path)
    if real is None or not may_read(real):
        raise FenceError(_outside_message(what, path, Path(os.path.abspath(path)), allowed_roots(), "copy the files into one of them", opened=True))


def open_fenced(path: str | os.PathLike[str], *, what: str = "File") -> BinaryIO:
    """Open a file for binary reading, checking the file actually opened (not the name, which a link swapped in after
    a check would redirect): its real path lies inside the allowed roots, holds no credentials, and it is a regular
    file (a FIFO or a device is never read). A FenceError otherwise; OSError as open() gives it."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        check_opened(fd, path, what=what)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FenceError(f"{what} {path} is not a regular file ({_mode_kind(mode)}): only regular files are read.")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_fenced(path: str | os.PathLike[str], *, what: str = "File") -> bytes:
    """A whole file's bytes, read through open_fenced."""
    with open_fenced(path, what=what) as handle:
        return handle.read()


# Folders a walk never enters: version-control data, dependencies and caches hold no agent memory, and a project
# folder's .git alone can hold many thousand files. Each is reported as skipped, by name.
SKIPPED_FOLDER_NAMES = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


def iter_files_within_roots(
    folder: Path,
    suffixes: Sequence[str],
    *,
    claim_folder: Callable[[Path], bool] | None = None,
    skipped: list[tuple[Path, str]] | None = None,
    passed_folders: dict[Path, str] | None = None,
) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for each file with one of `suffixes` below `folder`, sorted; (path, reason) for each symbolic
    link below it (to a file or a folder) that points outside the allowed roots, which is not followed.

    Links to folders inside the roots are followed (each real folder once, so link cycles end). A folder that
    `claim_folder` accepts is yielded as (folder, None) instead of being entered (a format whose unit is a folder).
    Files passed over for their suffix, and folders never entered (SKIPPED_FOLDER_NAMES), are appended to `skipped`
    as (path, reason) when a list is given. `passed_folders`: real folders never entered, with the reason reported
    (a build passes its own data home: its datasets and work files are not memory)."""
    roots = allowed_roots()
    passed = passed_folders or {}
    denied = _denied_paths()
    found: list[tuple[Path, str | None]] = []
    visited: set[Path] = set()
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        # The folder is opened first and the folder actually opened is checked: a name checked and then listed could
        # have been swapped for a link to anywhere in between. Its entries are then looked at relative to it.
        try:
            fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # unreadable (or vanished) folder: nothing to import from it, as before
        try:
            real_current = descriptor_path(fd, current)
            if real_current is None or not _inside(real_current, roots) or is_denied(real_current, denied):
                found.append((current, f"refused: the folder opened is not inside the allowed roots, or holds credentials (was a link swapped in?); not read ({_how_to_add()})"))
                continue
            if real_current in visited:
                continue
            visited.add(real_current)
            if real_current in passed:
                if skipped is not None:
                    skipped.append((current, passed[real_current]))
                continue
            try:
                entries = sorted(os.scandir(fd), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                entry_path = current / entry.name
                try:
                    is_link = entry.is_symlink()
                    is_dir = entry.is_dir()  # follows the link
                    is_file = entry.is_file()
                except OSError:
                    continue
                real_entry = Path(os.path.realpath(real_current / entry.name)) if is_link else real_current / entry.name
                if is_denied(real_entry, denied):
                    if skipped is not None:
                        skipped.append((entry_path, "holds credentials (by its name or place): never read, whatever the allowed roots"))
                    continue
                if is_link:
                    relevant = is_dir or entry_path.suffix.lower() in suffixes
                    if relevant and not _inside(real_entry, roots):
                        found.append((entry_path, f"symbolic link to a place outside the allowed roots; not followed ({_how_to_add()})"))
                        continue
                if is_dir:
                    if entry.name in SKIPPED_FOLDER_NAMES:
                        if skipped is not None:
                            skipped.append((entry_path, f"folder not entered ({entry.name} holds no agent memory)"))
                    elif claim_folder is not None and claim_folder(entry_path):
                        found.append((entry_path, None))
                    else:
                        pending.append(entry_path)
                elif is_file and entry_path.suffix.lower() in suffixes:
                    found.append((entry_path, None))
                elif is_file and skipped is not None:
                    suffix = entry_path.suffix.lower()
                    skipped.append((entry_path, f"no memory format reads {suffix} files" if suffix else "no memory format reads files without a suffix"))
                elif not is_file and skipped is not None:
                    skipped.append((entry_path, f"not a regular file ({file_kind(entry_path)}): only regular files are read"))
        finally:
            os.close(fd)
    found.sort(key=lambda item: item[0])  # Path order, as the rglob this replaces gave
    yield from found


def file_kind(path: Path) -> str:
    """What a path that is not a regular file is, in words (a FIFO would block a reader forever, a device never ends)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a broken link or unreadable entry"
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def iter_limited_lines(handle: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes | int]]:
    """(line number, line bytes) for each line of a binary file; (line number, length) instead for a line longer than
    max_line_bytes, which is skipped in chunks and never held in memory whole."""
    chunk = 1 << 20
    line_no = 0
    while True:
        raw = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) <= max_line_bytes or raw.endswith(b"\n"):
            yield line_no, raw  # (a line of exactly the limit plus its newline fits)
            continue
        length = len(raw)
        while not raw.endswith(b"\n"):
            raw = handle.readline(chunk)
            if not raw:
                break
            length += len(raw)
        yield line_no, length - (1 if raw.endswith(b"\n") else 0)


def overlong_line_message(length: int, limit: int) -> str:
    return f"line of {length} bytes is longer than the limit of {limit} bytes; skipped (raise {MAX_LINE_BYTES_ENV} or max_line_bytes in the config file to read it)"


def oversized_file_message(size: int, limit: int) -> str:
    return f"file of {size} bytes is larger than the limit of {limit} bytes; skipped (raise {MAX_FILE_BYTES_ENV} or max_file_bytes in the config file to read it)"


def _inside(real: Path, roots: Sequence[Path]) -> bool:
    # As text: every file a build opens is checked, and Path.is_relative_to is slow. Both sides are absolute paths
    # without '..' (real paths, or abspath'd).
    text = str(real)
    return any(text == str(root) or text.startswith(str(root).rstrip("/") + "/") for root in roots)


def _config_files() -> set[Path]:
    """Every file that may be this installation's config file (it may hold API keys)."""
    homes = [os.environ.get(HOME_ENV) or "", user_data_dir("model-customization")]
    found = {(Path(home).expanduser() / CONFIG_FILE_NAME).resolve() for home in homes if home}
    if os.environ.get(CONFIG_ENV):
        found.add(Path(os.environ[CONFIG_ENV]).expanduser().resolve())
    return found


def is_allowed(path: Path, roots: Sequence[Path] | None = None) -> bool:
    """Whether a path's real path is inside an allowed root."""
    return _inside(Path(path).resolve(), allowed_roots() if roots is None else roots)


def how_to_allow(paths: Sequence[Path]) -> str:
    """The exact settings that would allow `paths` (a folder, or the parts of one that hold no credentials): the
    variable (which replaces the defaults, so it keeps the roots allowed now) or the config file's allowed_roots."""
    current = [str(root) for root in allowed_roots() if root != DEMO_DATA_DIR]
    added = [str(path) for path in paths if str(Path(path).resolve()) not in current]
    value = os.pathsep.join([*current, *added])
    listed = ", ".join(json.dumps(root) for root in [*current, *added])
    where = os.environ.get(CONFIG_ENV) or str(Path(os.environ.get(HOME_ENV) or user_data_dir("model-customization")).expanduser() / CONFIG_FILE_NAME)
    return (
        f"{', '.join(added)} {'is' if len(added) == 1 else 'are'} outside the allowed roots. To allow {'it' if len(added) == 1 else 'them'}, "
        f"set {ALLOWED_ROOTS_ENV}={value} in the server's environment (it replaces the default roots, so keep those you "
        f"use), or put allowed_roots = [{listed}] in the config file ({where}); then restart the server."
    )


def _how_to_add() -> str:
    return f"to allow a folder, add it to {ALLOWED_ROOTS_ENV} (separated by {os.pathsep!r}) or to allowed_roots in the config file"


def _outside_message(what: str, raw: str | os.PathLike[str], given: Path, roots: Sequence[Path], instead: str, *, opened: bool = False) -> str:
    # Where a link leads is never named (it is the answer a prober wants: /proc/self/fd/N, /proc/self/exe), and the
    # reasons depend only on the path as written and the roots, never on whether something outside exists.
    lexical = Path(os.path.abspath(given))
    if opened:
        why = "the file opened is not inside the allowed roots, or holds credentials (was a link swapped in?)"
    elif _inside(lexical, roots):
        why = "it leads through a symbolic link to a place outside the allowed roots"
    elif ".." in given.parts:
        why = "'..' takes it outside the allowed roots"
    else:
        why = "it is outside the allowed roots"
    return (
        f"{what} {raw} is refused: {why}. Allowed roots: {', '.join(str(r) for r in roots)}. "
        f"{instead[0].upper()}{instead[1:]}, or {_how_to_add()}."
    )


def _denied_message(what: str, raw: str | os.PathLike[str]) -> str:
    return (
        f"{what} {raw} is refused: it is a credentials file or folder (keys, tokens, passwords), which the server never "
        "reads or writes, whatever the allowed roots. Copy the memory you mean elsewhere, without the credentials."
    )


def _mode_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"
