"""Writing folders so a crash never leaves half of one, and locks shared by processes on one data home."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from model_customization.paths import descriptor_path


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


class FolderRefused(Exception):
    """fenced_folder found a folder it may not write: a link appeared in the path, or an existing target holds
    files it was not told it may replace. The message says which; callers turn it into their own UserError."""


_REPLACED = "the folder the export was going into was removed or replaced while it was written (nothing was moved into place); try again."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def fenced_folder(
    target: Path,
    *,
    within: Path,
    allowed: Callable[[Path], bool],
    replaceable: Callable[[Path], Sequence[str]],
    mode: int = 0o755,
) -> Iterator[Path]:
    """Like atomic_folder, for a folder whose path a caller chose: nothing is written anywhere but where `target` was
    checked to be, even if folders on its way are swapped for symbolic links meanwhile, and nothing is deleted that
    this writer did not create.

    `target` is a real path below the real folder `within` (a root it was checked against). Every folder from
    `within` down is opened without following links (a link found there is refused: it was not there when the
    path was checked), missing ones are created by descriptor, and each one opened must satisfy `allowed`. The
    yielded path reaches the staging folder through its descriptor (/proc/self/fd/N on Linux), so writes land in
    the folder created whatever its name leads to later. An existing `target` is replaced only when
    `replaceable(old)` names every file in it (the files an earlier write created); those files are deleted, and
    a folder still holding anything else afterwards is kept, renamed `<name>.old-<time>`."""
    relative = target.relative_to(within)
    if not relative.parts:
        raise FolderRefused(f"{target} is a root folder itself; choose a folder inside it.")
    parent_fd = _open_fenced_parent(within, relative.parts[:-1], allowed)
    staging_name = f".{target.name}.tmp-{secrets.token_hex(6)}"
    staging_fd = -1
    try:
        try:
            os.mkdir(staging_name, 0o700, dir_fd=parent_fd)
            staging_fd = os.open(staging_name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:  # the folder opened was removed (or renamed over) since: write nothing
            raise FolderRefused(_REPLACED) from None
        os.fchmod(staging_fd, mode)
        via_descriptor = Path(f"/proc/self/fd/{staging_fd}")
        staging = via_descriptor if _reaches_itself(via_descriptor, staging_fd) else target.parent / staging_name
        try:
            yield staging
            _swap_into_place(parent_fd, staging_name, target, allowed, replaceable)
        except BaseException:
            shutil.rmtree(staging_name, dir_fd=parent_fd, ignore_errors=True)  # by descriptor: never follows a link
            raise
    finally:
        if staging_fd >= 0:
            os.close(staging_fd)
        os.close(parent_fd)


def _open_fenced_parent(within: Path, parts: Sequence[str], allowed: Callable[[Path], bool]) -> int:
    """A descriptor of within/parts..., each folder opened without following links and created when missing."""
    fd = os.open(within, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_opened(fd, within, allowed)
        for part in parts:
            child = _open_or_make_folder(fd, part)
            os.close(fd)
            fd = child
            _check_opened(fd, None, allowed)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_or_make_folder(fd: int, part: str) -> int:
    """A descriptor of the folder `part` inside the open folder `fd`, made when missing; never through a link."""
    try:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass  # made meanwhile: opened (and checked) like any other
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            raise FolderRefused(
                f"{part!r} on the way to the output folder became a symbolic link, a file or nothing while it was being "
                "opened (it was a folder when the path was checked); nothing was written."
            ) from None
        raise


def _check_opened(fd: int, named: Path | None, allowed: Callable[[Path], bool]) -> None:
    real = descriptor_path(fd, named)
    if real is None or not allowed(real):
        raise FolderRefused("a folder on the way to the output folder is no longer where it was checked to be (was a link swapped in?); nothing was written.")


def _reaches_itself(path: Path, fd: int) -> bool:
    """Whether `path` (a /proc/self/fd entry) opens the very folder `fd` is, so it can stand for it."""
    try:
        seen, opened = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (seen.st_dev, seen.st_ino) == (opened.st_dev, opened.st_ino)


def _swap_into_place(parent_fd: int, staging_name: str, target: Path, allowed: Callable[[Path], bool], replaceable: Callable[[Path], Sequence[str]]) -> None:
    _check_opened(parent_fd, None, allowed)  # the folder the export lands in is still inside the fence
    name = target.name
    try:
        os.rename(staging_name, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        return
    except FileNotFoundError:
        raise FolderRefused(_REPLACED) from None
    except OSError as error:
        if error.errno == errno.ENOTDIR:  # a file or a link where the folder should go
            raise FolderRefused(f"{target} exists and is not a folder; choose another output folder.") from None
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    # The target exists (a folder rename over an empty folder succeeds above): replace it only if it is an earlier
    # write's, with nothing else in it, and then delete only the files that write made.
    try:
        old_fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        raise FolderRefused(f"{target} exists and is not a folder (or is a link); choose another output folder.") from None
    try:
        owned = set(replaceable(Path(f"/proc/self/fd/{old_fd}") if _reaches_itself(Path(f"/proc/self/fd/{old_fd}"), old_fd) else target))
        others = [entry for entry in _files_below(old_fd) if entry not in owned]
        if others:
            raise FolderRefused(
                f"{target} holds files an earlier export did not write ({', '.join(sorted(others)[:3])}{'...' if len(others) > 3 else ''}); "
                "they are never replaced or deleted. Choose an empty or new output folder, or move them away."
            )
        aside = f".{name}.old-{secrets.token_hex(6)}"
        os.rename(name, aside, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        try:
            os.rename(staging_name, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except BaseException:
            os.rename(aside, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)  # put the old one back
            raise
        for relative in sorted(owned, key=lambda p: -p.count("/")):
            _unlink_below(old_fd, relative)
        _remove_empty_folders(old_fd)
        try:
            os.rmdir(aside, dir_fd=parent_fd)
        except OSError:  # something was put there meanwhile: kept, where its owner can see it
            os.rename(aside, f"{name}.old-{time.strftime('%Y%m%dT%H%M%S')}", src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    finally:
        os.close(old_fd)


def _files_below(fd: int, prefix: str = "") -> list[str]:
    """The relative paths of everything but folders below an open folder, walked by descriptor (links not followed)."""
    found: list[str] = []
    for entry in os.scandir(fd):
        relative = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            try:
                found += _files_below(child, f"{relative}/")
            finally:
                os.close(child)
        else:
            found.append(relative)
    return found


def _unlink_below(fd: int, relative: str) -> None:
    *folders, leaf = relative.split("/")
    opened: list[int] = []
    try:
        current = fd
        for folder in folders:
            current = os.open(folder, _DIR_FLAGS, dir_fd=current)
            opened.append(current)
        os.unlink(leaf, dir_fd=current)
    except OSError:
        pass  # already gone, or not what was listed: left alone
    finally:
        for handle in opened:
            os.close(handle)


def _remove_empty_folders(fd: int) -> None:
    for entry in list(os.scandir(fd)):
        if entry.is_dir(follow_symlinks=False):
            child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            try:
                _remove_empty_folders(child)
            finally:
                os.close(child)
            try:
                os.rmdir(entry.name, dir_fd=fd)
            except OSError:
                pass  # not empty: someone else's file is in it
