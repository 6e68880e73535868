"""Opening a file a caller named, safely: only a regular file is ever read, and never more than the size limit.

A FIFO blocks its reader until a writer comes (forever, usually), a character device such as /dev/zero never ends,
and a socket cannot be read at all; each would hold one of the server's worker threads for good. So a file is
opened without blocking (O_NONBLOCK: opening a FIFO returns at once) and its kind and size are judged on the
descriptor actually opened, not on the name checked before (which a swap could have changed since). Everything
other than a regular file is refused with its kind, and a regular file over the limit is refused with its size,
before one byte of it is read.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from model_customization.errors import UserError
from model_customization.paths import MAX_FILE_BYTES_ENV, check_opened, memory_limits

# The config file is read before the config's own limits apply; no real config comes near this.
MAX_CONFIG_FILE_BYTES = 1 << 20


class NotARegularFile(UserError):
    """A path that names a FIFO, a device, a socket or a folder: never opened for reading."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class FileTooLarge(UserError):
    """A regular file past the size limit: refused before it is read."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


def kind_of_mode(mode: int) -> str:
    """A file mode's kind in words, as paths.file_kind says it."""
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "a special file"


def _limit_hint(limit_setting: str | None) -> str:
    return f"raise {limit_setting} or max_file_bytes in the config file to read it" if limit_setting else "make it smaller"


def open_regular_file(
    path: str | os.PathLike[str], *, what: str = "File", max_bytes: int | None = None, limit_setting: str | None = MAX_FILE_BYTES_ENV, fenced: bool = False
) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file of at most `max_bytes` (default: the memory limit,
    paths.memory_limits); NotARegularFile or FileTooLarge otherwise, FileNotFoundError/PermissionError as open gives
    them. `fenced`: the file actually opened must also lie inside the allowed roots (paths.FenceError otherwise), so a
    link swapped in after the name was checked is refused. The caller closes the handle (use it in a with statement)."""
    limit = memory_limits().max_file_bytes if max_bytes is None else max_bytes
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting; O_NOCTTY: a terminal device never
    # becomes the server's controlling terminal by being named.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        if fenced:
            check_opened(descriptor, path, what=what)
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = kind_of_mode(info.st_mode)
            raise NotARegularFile(f"{what} {path} is {kind}, not a regular file; only regular files are read. Give the path of a file.", kind)
        if info.st_size > limit:
            raise FileTooLarge(f"{what} {path} holds {info.st_size:,} bytes, more than the limit of {limit:,}; not read ({_limit_hint(limit_setting)}).", info.st_size, limit)
        os.set_blocking(descriptor, True)  # a regular file: ordinary reads from here on
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_bytes(
    path: str | os.PathLike[str], *, what: str = "File", max_bytes: int | None = None, limit_setting: str | None = MAX_FILE_BYTES_ENV, fenced: bool = False
) -> bytes:
    """The whole of a regular file of at most `max_bytes` (see open_regular_file). A file that grows past the limit
    while being read is refused too: at most the limit plus one byte is ever held."""
    limit = memory_limits().max_file_bytes if max_bytes is None else max_bytes
    with open_regular_file(path, what=what, max_bytes=limit, limit_setting=limit_setting, fenced=fenced) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"{what} {path} grew past the limit of {limit:,} bytes while being read; not read ({_limit_hint(limit_setting)}).", len(data), limit)
    return data

