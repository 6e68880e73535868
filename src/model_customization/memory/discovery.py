"""find_memory: which agents' memory is on this machine, where, how much, and whether the tools may read it.

Everything comes from the format registry (detect.FORMATS): each format with an ``agent`` declares the folders where
that agent keeps its transcripts (``locations``, home-relative, globs allowed). For each one present, the folder is
walked and the files (or, for folder formats, the folders) the format claims are counted, with their bytes and the
oldest and newest modification times. A folder that also holds credentials (OpenCode keeps auth.json beside its
sessions) is read through its other entries (paths), never as a whole. The allowed flag says whether the tools may read the folder now; when not,
how_to_allow gives the exact setting that would allow it (the tools never widen the roots themselves).

It must stay fast on a large home and read nothing it should not:
- a file is judged by its name and first lines (JSON Lines) or, when small, its parsed document; nothing is
  imported, and a large document is counted by its name alone;
- each location gets a budget of directory entries and seconds; past it, counting stops and the counts are lower
  bounds (complete: false, with a note);
- symbolic links are followed only when they lead to a place inside the same location; the others are counted in
  the note and never opened;
- files whose names say they hold credentials (auth, oauth, credentials, tokens, keys) are skipped before they are
  opened or named, even inside an agent's folder.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from glob import glob, has_magic
from pathlib import Path

from model_customization.operations.memory import MemoryFound, MemoryLocation
from model_customization.paths import (
    allowed_roots,
    credential_free_parts,
    how_to_allow,
    is_allowed,
)
from model_customization.timestamps import utc_iso

from .detect import FORMATS
from .formats import JSON_DOCUMENT_SUFFIXES, JSON_LINE_SUFFIXES, MemoryFormat, score

MAX_ENTRIES_PER_LOCATION = 50_000  # directory entries looked at in one location
MAX_SECONDS_PER_LOCATION = 5.0
PEEK_LINES = 20  # JSON Lines: judged on the first readable lines...
PEEK_BYTES = 1024 * 1024  # ...within this many bytes (most files are claimed on their first line)
MAX_SNIFFED_DOCUMENT_BYTES = 8 * 1024 * 1024  # a larger JSON document is counted by its name alone
CLAIM_SCORE = 0.5  # a sniffer's score from which a file counts as the format's (loose evidence stays below)
# File names (not folder names: a project may be called "oauth-service") that say a file holds credentials.
CREDENTIAL_NAME = re.compile(r"auth|credential|token|secret|passw|api[-_]?key|\.pem$|\.key$|^\.env", re.IGNORECASE)


@dataclass
class _Tally:
    sessions: int = 0
    files: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    complete: bool = True
    links_not_followed: int = 0
    by_name_only: int = 0
    stopped_because: str | None = None
    seen_folders: set[Path] = field(default_factory=set)

    def add_file(self, stat: os.stat_result) -> None:
        self.files += 1
        self.bytes += stat.st_size
        self.first = stat.st_mtime if self.first is None else min(self.first, stat.st_mtime)
        self.last = stat.st_mtime if self.last is None else max(self.last, stat.st_mtime)


def find_memory(home: Path | None = None, agent: str | None = None) -> MemoryFound:
    """Each agent memory present under `home` (default: the user's home), per agent and folder."""
    home = Path(home).expanduser() if home is not None else Path.home()
    roots = allowed_roots()
    found: list[MemoryLocation] = []
    looked_in: list[str] = []
    for fmt in FORMATS:
        if not fmt.agent or (agent and fmt.agent.lower() != agent.strip().lower()):
            continue
        for location in fmt.locations:
            if not _for_this_system(location):
                continue
            for folder in _expand(location, home):
                looked_in.append(str(folder))
                if folder.is_dir() or folder.is_file():  # a location that is a link stands for its target
                    _list(fmt, folder, roots, found)
        for folder in _project_folders(home) if fmt.project_files else []:
            for name in fmt.project_files:
                looked_in.append(str(folder / name))
                if (folder / name).is_file():
                    _list(fmt, folder / name, roots, found)
    return MemoryFound(locations=found, looked_in=looked_in, allowed_roots=[str(root) for root in roots], next_step=_next_step(found, agent))


def _list(fmt: MemoryFormat, folder: Path, roots: list[Path], found: list[MemoryLocation]) -> None:
    """Count what `fmt` claims in `folder` (a folder or one file) and add it to `found` when there is anything."""
    tally = _count(fmt, folder)
    if tally.files == 0 and tally.sessions == 0:
        return
    # A folder that also holds credentials (OpenCode's auth.json) is read through its other entries.
    parts = credential_free_parts(folder)
    outside = [part for part in parts if not is_allowed(part, roots)]
    allowed = bool(parts) and not outside
    found.append(
        MemoryLocation(
            agent=fmt.agent or fmt.name,
            format=fmt.name,
            title=fmt.title or fmt.name,
            folder=str(folder),
            paths=[str(part) for part in parts],
            sessions=tally.sessions,
            files=tally.files,
            bytes=tally.bytes,
            first_date=utc_iso(tally.first) if tally.first is not None else None,
            last_date=utc_iso(tally.last) if tally.last is not None else None,
            complete=tally.complete,
            allowed=allowed,
            how_to_allow=None if allowed or not outside else how_to_allow(outside),
            note=_note(tally),
        )
    )


def _project_folders(home: Path) -> list[Path]:
    """The working directory and the folders above it, short of the home folder and the file system's root: where an
    agent that writes into the project (Aider, at the repository's top) keeps its history."""
    folders: list[Path] = []
    stop = {home.resolve(), Path(home.resolve().anchor)}
    current = Path.cwd().resolve()
    while current not in stop and current.parent != current:
        folders.append(current)
        current = current.parent
    return folders


def _for_this_system(location: str) -> bool:
    """macOS keeps application data under ~/Library/Application Support, Windows under ~/AppData; formats list all."""
    if "/Library/Application Support/" in location:
        return sys.platform == "darwin"
    if "/AppData/" in location:
        return sys.platform == "win32"
    return True


def _expand(location: str, home: Path) -> list[Path]:
    text = str(home / location[2:]) if location.startswith("~/") else os.path.expanduser(location)
    if has_magic(text):
        return [Path(match) for match in sorted(glob(text))] or [Path(text)]
    return [Path(text)]


def _count(fmt: MemoryFormat, location: Path) -> _Tally:
    tally = _Tally()
    deadline = time.monotonic() + MAX_SECONDS_PER_LOCATION
    if location.is_file():
        if not CREDENTIAL_NAME.search(location.name) and _claims(fmt, location, tally):
            _add_session_file(fmt, location, tally)
        return tally
    real_location = location.resolve()
    pending = [location]
    entries = 0
    while pending:
        folder = pending.pop()
        real_folder = folder.resolve()
        if real_folder in tally.seen_folders:
            continue
        tally.seen_folders.add(real_folder)
        if fmt.sniff_folder is not None and score(fmt.sniff_folder, folder) >= CLAIM_SCORE:
            _add_session_folder(fmt, folder, tally, deadline)
            continue
        try:
            listing = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in listing:
            entries += 1
            if entries > MAX_ENTRIES_PER_LOCATION or time.monotonic() > deadline:
                tally.complete = False
                tally.stopped_because = f"after {entries - 1:,} entries" if entries > MAX_ENTRIES_PER_LOCATION else f"after {MAX_SECONDS_PER_LOCATION:g} s"
                return tally
            path = Path(entry.path)
            try:
                if CREDENTIAL_NAME.search(entry.name) and not entry.is_dir(follow_symlinks=False):
                    continue  # never opened, never named
                if entry.is_symlink():
                    target = path.resolve()
                    if not (target == real_location or target.is_relative_to(real_location)):
                        tally.links_not_followed += 1
                        continue
                if entry.is_dir():
                    pending.append(path)
                elif entry.is_file() and _claims(fmt, path, tally):
                    _add_session_file(fmt, path, tally)
            except OSError:
                continue
    return tally


def _add_session_file(fmt: MemoryFormat, path: Path, tally: _Tally) -> None:
    try:
        tally.add_file(path.stat())
    except OSError:
        return
    tally.sessions += _sessions_in(fmt, path)


def _add_session_folder(fmt: MemoryFormat, folder: Path, tally: _Tally, deadline: float) -> None:
    """A folder the format claims whole: one unit (or count_sessions of it); its files' sizes and dates."""
    tally.sessions += _sessions_in(fmt, folder)
    real_folder = folder.resolve()
    for parent, _folders, names in os.walk(folder):  # links to folders are not followed by os.walk
        for name in names:
            if CREDENTIAL_NAME.search(name):
                continue
            path = Path(parent) / name
            try:
                if path.is_symlink() and not path.resolve().is_relative_to(real_folder):
                    tally.links_not_followed += 1
                    continue
                tally.add_file(path.stat())
            except OSError:
                continue
        if time.monotonic() > deadline:
            tally.complete = False
            tally.stopped_because = f"after {MAX_SECONDS_PER_LOCATION:g} s"
            return


def _sessions_in(fmt: MemoryFormat, path: Path) -> int:
    if fmt.count_sessions is None:
        return 1
    try:
        return max(0, int(fmt.count_sessions(path)))
    except Exception:  # noqa: BLE001 - a store that cannot be counted still shows up, as one
        return 1


def _claims(fmt: MemoryFormat, path: Path, tally: _Tally) -> bool:
    """Whether the format takes the file for its own, judged cheaply (see the module docstring)."""
    suffix = path.suffix.lower()
    by_path = fmt.sniff_file is not None and (not fmt.suffixes or suffix in fmt.suffixes)
    if by_path and score(fmt.sniff_file, path) >= CLAIM_SCORE:
        return True
    by_lines = fmt.sniff_line is not None and (suffix in JSON_LINE_SUFFIXES or suffix in fmt.suffixes)
    if by_lines and any(score(fmt.sniff_line, obj) >= CLAIM_SCORE for obj in _first_objects(path)):
        return True
    if fmt.sniff_document is not None and suffix in JSON_DOCUMENT_SUFFIXES:
        try:
            size = path.stat().st_size
        except OSError:
            return False
        if size > MAX_SNIFFED_DOCUMENT_BYTES:
            tally.by_name_only += 1
            return True
        try:
            document = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return False
        return score(fmt.sniff_document, document) >= CLAIM_SCORE
    return False


def _first_objects(path: Path) -> Iterator[object]:
    """The file's first parsable JSON lines, read one at a time (the caller stops at the first that convinces it),
    within PEEK_LINES lines and PEEK_BYTES bytes."""
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        budget = PEEK_BYTES
        for _ in range(PEEK_LINES):
            raw = handle.readline(budget)
            if not raw:
                return
            budget -= len(raw)
            if raw.strip():
                try:
                    yield json.loads(raw.decode("utf-8-sig"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                    pass  # a broken line, or one cut at the byte budget
            if budget <= 0:
                return


def _note(tally: _Tally) -> str | None:
    parts = []
    if not tally.complete:
        parts.append(f"stopped counting {tally.stopped_because}: at least this much")
    if tally.by_name_only:
        parts.append(f"{tally.by_name_only} large file(s) counted by name, not opened")
    if tally.links_not_followed:
        parts.append(f"{tally.links_not_followed} symbolic link(s) leading out of the folder not followed")
    return "; ".join(parts) or None


def _next_step(found: list[MemoryLocation], agent: str | None) -> str:
    if not found:
        whose = f"{agent}'s memory" if agent else "agent memory"
        return f"No {whose} was found in the usual places (looked_in). Ask the user where their transcripts are."
    if any(location.allowed for location in found):
        return (
            "Build a dataset from an allowed location: call build_dataset_from_memory with its paths (and "
            'outcome "successful" to learn only from sessions that went well). For a folder that is not allowed, show '
            "the user its how_to_allow; never change the allowed roots yourself."
        )
    return "None of these folders is allowed yet: show the user how_to_allow for the one they want to learn from; never change the allowed roots yourself."
