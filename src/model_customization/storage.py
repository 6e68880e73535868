"""Writing folders so a crash never leaves half of one, and locks shared by processes on one data home."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success it replaces `target` in one rename, so a reader sees
    the old folder or the new one and never half of one. On failure the staging folder is removed and `target` is
    left as it was. `mode` sets the folder's permissions (mkdtemp makes it private to its owner)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        if mode is not None:
            staging.chmod(mode)
        yield staging
        if target.exists():
            # A folder cannot be renamed over a non-empty one: move the old one aside first, then delete it.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old / target.name, target)  # put the old one back
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file whole: into a hidden sibling first, then renamed over `path`, so a reader never sees half of it."""
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}-", delete=False)
    try:
        with handle:
            handle.write(data)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (server, CLI, workers) held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
