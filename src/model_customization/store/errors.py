"""What a failing ledger or data home means for the user: a damaged database, a read-only home, a full disk.

The database driver reports these as codes deep inside a traceback; each becomes a StorageError (a UserError) whose
message names the file, says what is wrong and what to do next. `ledger_error(...)` is installed on the store's
engine (SQLAlchemy's handle_error event), so every statement of every repository goes through it;
`home_os_error(...)` does the same for files written under the data home.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from model_customization.errors import UserError


class StorageError(UserError):
    """The ledger or the data home cannot be used as it is; the message says why and what to do."""


# SQLite's extended error names (sqlite3.Error.sqlite_errorname) and PostgreSQL's SQLSTATE codes, by what they mean.
_SQLITE_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_SQLITE_READ_ONLY = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")
_SQLITE_FULL = ("SQLITE_FULL",)
_SQLITE_IO = ("SQLITE_IOERR",)
_PG_FULL = ("53100",)  # disk_full
_PG_READ_ONLY = ("25006",)  # read_only_sql_transaction
_PG_DAMAGED = ("XX001", "XX002")  # data_corrupted, index_corrupted


def _kind(error: BaseException) -> str | None:
    name = getattr(error, "sqlite_errorname", None) or ""
    sqlstate = getattr(error, "sqlstate", None) or ""
    if name.startswith(_SQLITE_DAMAGED) or sqlstate in _PG_DAMAGED:
        return "damaged"
    if name.startswith(_SQLITE_FULL) or sqlstate in _PG_FULL:
        return "full"
    if name.startswith(_SQLITE_READ_ONLY) or sqlstate in _PG_READ_ONLY:
        return "read_only"
    if name.startswith(_SQLITE_IO):
        return "io"
    return None


def ledger_message(kind: str, where: str, detail: str) -> str:
    """The message for a ledger problem of `kind` (damaged, full, read_only, io) at `where` (a file or masked URL)."""
    if kind == "damaged":
        return (
            f"The ledger {where} is damaged ({detail}): it is not a readable database. Nothing was changed. Restore it "
            "from a backup; or, to start over, move it aside (the dataset and model folders stay, but the new ledger "
            "will not know them)."
        )
    if kind == "full":
        return (
            f"The disk holding the ledger {where} is full ({detail}). The change was not saved. Free some space on that "
            "disk (see `df` for the folder), then try again."
        )
    if kind == "read_only":
        return (
            f"The ledger {where} cannot be written ({detail}): the file or its folder is read-only for this user, or "
            "on a read-only file system. Make both writable by this user (e.g. chmod u+w), or use another data home "
            "(--home or MODEL_CUSTOMIZATION_HOME)."
        )
    return (
        f"The ledger {where} could not be read or written ({detail}): the disk may be full or failing. Check free "
        "space and the system log, then try again."
    )


def ledger_error(context: Any, where: str) -> None:
    """SQLAlchemy handle_error listener: raise a StorageError in place of a driver error we can explain."""
    original = context.original_exception
    kind = _kind(original)
    if kind is not None:
        detail = f"{type(original).__name__}: {' '.join(str(original).split())[:200]}"
        raise StorageError(ledger_message(kind, where, detail)) from None


_OS_KINDS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EROFS: "read_only", errno.EACCES: "read_only", errno.EPERM: "read_only"}


def home_os_error(error: OSError, home: Path) -> StorageError | None:
    """A StorageError for a write under the data home that failed because the disk is full or the home read-only;
    None for any other failure (and for any path outside the home: those are the caller's own files)."""
    kind = _OS_KINDS.get(error.errno or 0)
    if kind is None:
        return None
    target = error.filename if isinstance(error.filename, str) else None
    if target is None:
        if kind != "full":
            return None  # a refusal without a file name cannot be put down to the home
        # A write into an open file names no file; running out of space is the disk's, wherever the file was.
        return StorageError(
            f"A write failed: the disk is full ({error.strerror}). Nothing was stored. Free some space on the disk "
            f"holding the data home {home} (or the output folder you gave), then try again."
        )
    if not _inside(Path(target), home):
        return None
    if kind == "full":
        return StorageError(
            f"The disk holding the data home {home} is full (writing {target}: {error.strerror}). Nothing was stored. "
            "Free some space on that disk (see `df` for the folder), then try again."
        )
    return StorageError(
        f"The data home {home} is not writable by this user (writing {target}: {error.strerror}). Make it writable "
        "(e.g. chmod u+w), or use another data home (--home or MODEL_CUSTOMIZATION_HOME)."
    )


def _inside(path: Path, home: Path) -> bool:
    try:
        path.absolute().relative_to(home)
        return True
    except ValueError:
        return False


def refuse_emptied_ledger(database: Path, home: Path | None) -> None:
    """A StorageError when the SQLite ledger is an empty (0-byte) file while the data home holds data: SQLite would
    take it for a new ledger and every dataset, job and evaluation would look gone. A 0-byte file in an empty home
    is just a new ledger."""
    try:
        if database.stat().st_size != 0:
            return
    except FileNotFoundError:
        return
    held = _data_folders(home) if home is not None else []
    if held:
        raise StorageError(
            f"The ledger {database} is an empty file (0 bytes), but the data home holds {len(held)} folder(s) of data "
            f"({', '.join(held[:3])}{', ...' if len(held) > 3 else ''}): the ledger was truncated or replaced. Nothing "
            "was changed. Restore it from a backup. To start a new ledger anyway, delete the empty file: the folders "
            "stay, but the new ledger will not know them."
        )


def _data_folders(home: Path) -> list[str]:
    """The dataset, job and evaluation folders under the home (hidden staging folders left out)."""
    found = []
    for kind in ("datasets", "jobs", "evals"):
        parent = home / kind
        if parent.is_dir():
            found += [f"{kind}/{entry.name}" for entry in sorted(parent.iterdir()) if entry.is_dir() and not entry.name.startswith(".")]
    return found


def disk_os_error(error: OSError) -> StorageError | None:
    """For the adapters' last resort: a full disk or a read-only file system, wherever the write was, is never a bug
    of this server, and the user can act on it. None for anything else."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {error.filename}" if isinstance(error.filename, str) else ""
        return StorageError(f"The disk is full ({error.strerror}{where}). Nothing was stored. Free some space on that disk, then try again.")
    if error.errno == errno.EROFS:
        where = f" {error.filename}" if isinstance(error.filename, str) else ""
        return StorageError(
            f"The file system is read-only (writing{where}). Remount it writable, or use a data home on another disk "
            "(--home or MODEL_CUSTOMIZATION_HOME)."
        )
    return None
