"""Which files a caller may make the server read or write: only those inside the allowed roots.

An MCP client (or a prompt injected into one) can name any path; without a fence, build_dataset or inspect_dataset
would read ~/.ssh or /etc for it. A path is allowed when its real path (every symbolic link followed, `..` removed)
lies inside an allowed root, so `..`, absolute paths elsewhere and links pointing out are all refused the same way.

Roots: $MODEL_CUSTOMIZATION_ALLOWED_ROOTS (os.pathsep-separated) or the config file's allowed_roots, which replace
the defaults: the working directory and the folders where coding agents keep their memory (DEFAULT_AGENT_MEMORY_DIRS).
The package's own demo data is always readable. The CLI enforces the same roots: its default (the working
directory) covers a user pointing it at their own files, and the config file or variable adds others.

Size limits ($MODEL_CUSTOMIZATION_MAX_FILE_BYTES, $MODEL_CUSTOMIZATION_MAX_LINE_BYTES, or the config file) keep one
huge memory file or line from exhausting the server's memory: such a file or line is reported, never read whole.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from platformdirs import user_data_dir

from model_customization.config import ALLOWED_ROOTS_ENV, CONFIG_ENV, CONFIG_FILE_NAME, HOME_ENV, MAX_FILE_BYTES_ENV, MAX_LINE_BYTES_ENV
from model_customization.errors import UserError

# Where coding agents keep transcripts and memory. Narrow on purpose: ~/.claude as a whole also holds credentials.
DEFAULT_AGENT_MEMORY_DIRS = (
    "~/.claude/projects",  # Claude Code transcripts, one folder per project
    "~/.claude/transcripts",  # older Claude Code versions
    "~/.codex/sessions",  # Codex CLI rollouts
    "~/.codex/archived_sessions",
    "~/.letta",  # Letta agent files (.af) and exports
    "~/.gemini/tmp",  # Gemini CLI chat logs
)
DEMO_DATA_DIR = Path(__file__).resolve().parent / "demo_data"  # shipped with the package: always readable
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
        given = [*_working_directory(), *DEFAULT_AGENT_MEMORY_DIRS]
    roots: list[Path] = []
    for raw in [*given, str(DEMO_DATA_DIR)]:
        root = Path(raw.strip()).expanduser().resolve()
        if root not in roots:
            roots.append(root)
    return roots


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
    except RuntimeError:  # ~name for a user this machine does not know
        raise UserError(f"{what} {shown} starts with ~ for a user this machine does not know; give the full path.") from None
    except UnicodeError:
        raise UserError(f"{what} {shown} is not valid Unicode text (it holds a lone surrogate); send the path as UTF-8.") from None
    except ValueError:  # an embedded NUL byte
        raise UserError(f"{what} {shown} holds a NUL character, which no file name can; check the path.") from None
    except OSError as error:  # e.g. ENAMETOOLONG
        raise UserError(f"{what} {shown} cannot be used as a path ({error.strerror or 'invalid'}); give a shorter, existing path.") from None


def check_readable(path: str | os.PathLike[str], *, what: str = "Path") -> Path:
    """The real path of `path` if it lies inside an allowed root; a UserError naming the path and the roots otherwise.

    Checked before existence, so a refused caller cannot learn whether a file outside the roots exists."""
    given, real = resolve_user_path(path, what=what)
    roots = allowed_roots()
    if not _inside(real, roots):
        raise UserError(_outside_message(what, path, given, real, roots, "copy the files into one of them"))
    if real in _config_files():
        raise UserError(f"{what} {path} is the config file, which may hold API keys; it is never read as data.")
    return real


def check_writable_dir(path: str | os.PathLike[str], *, home: Path, what: str = "Output folder") -> Path:
    """The real path of a folder to write, if inside the data home or an allowed root; a UserError otherwise."""
    given, real = resolve_user_path(path, what=what)
    roots = [Path(home).resolve(), *allowed_roots()]
    if not _inside(real, roots):
        raise UserError(_outside_message(what, path, given, real, roots, "choose a folder inside one of them"))
    return real


# Folders a walk never enters: version-control data, dependencies and caches hold no agent memory, and a project
# folder's .git alone can hold many thousand files. Each is reported as skipped, by name.
SKIPPED_FOLDER_NAMES = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


def iter_files_within_roots(
    folder: Path,
    suffixes: Sequence[str],
    *,
    claim_folder: Callable[[Path], bool] | None = None,
    skipped: list[tuple[Path, str]] | None = None,
) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for each file with one of `suffixes` below `folder`, sorted; (path, reason) for each symbolic
    link below it (to a file or a folder) that points outside the allowed roots, which is not followed.

    Links to folders inside the roots are followed (each real folder once, so link cycles end). A folder that
    `claim_folder` accepts is yielded as (folder, None) instead of being entered (a format whose unit is a folder).
    Files passed over for their suffix, and folders never entered (SKIPPED_FOLDER_NAMES), are appended to `skipped`
    as (path, reason) when a list is given."""
    roots = allowed_roots()
    found: list[tuple[Path, str | None]] = []
    visited: set[Path] = set()
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        real_current = current.resolve()
        if real_current in visited:
            continue
        visited.add(real_current)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: nothing to import from it, as before
        for entry in entries:
            entry_path = Path(entry.path)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir()  # follows the link
                is_file = entry.is_file()
            except OSError:
                continue
            if is_link:
                target = entry_path.resolve()
                relevant = is_dir or entry_path.suffix.lower() in suffixes
                if relevant and not _inside(target, roots):
                    found.append((entry_path, f"symbolic link to {target}, outside the allowed roots; not followed ({_how_to_add()})"))
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
    return any(real == root or real.is_relative_to(root) for root in roots)


def _config_files() -> set[Path]:
    """Every file that may be this installation's config file (it may hold API keys)."""
    homes = [os.environ.get(HOME_ENV) or "", user_data_dir("model-customization")]
    found = {(Path(home).expanduser() / CONFIG_FILE_NAME).resolve() for home in homes if home}
    if os.environ.get(CONFIG_ENV):
        found.add(Path(os.environ[CONFIG_ENV]).expanduser().resolve())
    return found


def _how_to_add() -> str:
    return f"to allow a folder, add it to {ALLOWED_ROOTS_ENV} (separated by {os.pathsep!r}) or to allowed_roots in the config file"


def _outside_message(what: str, raw: str | os.PathLike[str], given: Path, real: Path, roots: Sequence[Path], instead: str) -> str:
    lexical = Path(os.path.abspath(given))
    if _inside(lexical, roots) and lexical != real:
        why = f"it leads through a symbolic link to {real}, which is outside the allowed roots"
    elif ".." in given.parts:
        why = f"'..' takes it to {real}, which is outside the allowed roots"
    else:
        why = f"{real} is outside the allowed roots"
    return (
        f"{what} {raw} is refused: {why}. Allowed roots: {', '.join(str(r) for r in roots)}. "
        f"{instead[0].upper()}{instead[1:]}, or {_how_to_add()}."
    )
