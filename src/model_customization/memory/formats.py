"""The registry of memory formats: each importer module declares how to recognise its inputs and how to read them.

Adding a format touches its own module and one line in `detect.py` (the FORMATS list). A format is recognised by
one or more sniffers; each returns a score of fit, a number from 0 (not this format) to 1 (certainly this format),
or a bool (True counts as 1). Detection asks every sniffer and picks the best score, so a loose sniffer (any
``messages`` list looks like OpenAI chat) loses to a precise one (a Gemini CLI session's ``messages`` with
``type: "gemini"``) whatever their order; on equal scores the earlier format in FORMATS wins.

- ``sniff_line``: one parsed JSON Lines line (JSONL formats; judged on a file's first readable lines).
- ``sniff_document``: the parsed document of a ``.json``/``.af``/``.traj`` file (whole-document formats).
- ``sniff_file``: the path itself, for formats that are not JSON (Markdown, SQLite): judge by name and first bytes,
  never by reading a large file whole.
- ``sniff_folder``: a folder, for formats whose unit is a folder (several files make up the sessions in it). A
  claimed folder is imported whole by ``iterate(folder)`` and its files are not walked one by one.

The descriptive fields (``title``, ``agent``, ``where``, ``kept``, ``outcome_signals``, ``locations``) are what the
README's formats table, the tools' argument descriptions, the prompts, docs/reference.md and ``find_memory`` say
about the format: they are written once, here, by the format's module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import Record

Score = float | bool
# The suffixes JSON formats carry; formats with other files (".md", ".db", ".vscdb") list theirs in `suffixes`.
JSON_LINE_SUFFIXES = (".jsonl",)
JSON_DOCUMENT_SUFFIXES = (".json", ".af", ".traj")


@dataclass(frozen=True)
class MemoryFormat:
    name: str
    iterate: Callable[..., Iterator[Record]]  # (path, **options): a file, or a folder for folder formats
    sniff_line: Callable[[Any], Score] | None = None
    sniff_document: Callable[[Any], Score] | None = None
    sniff_file: Callable[[Path], Score] | None = None
    sniff_folder: Callable[[Path], Score] | None = None
    options: frozenset[str] = frozenset()  # keyword options `iterate` accepts (e.g. include_thinking)
    suffixes: tuple[str, ...] = ()  # file suffixes beyond the JSON ones that a folder walk should offer this format
    database: bool = False  # a SQLite store read row by row: the size limit meant for files read as text does not apply
    side_file: bool = False  # files that accompany another format's (an export's feedback.json): recognised, yield nothing
    # For people: what the format is and where it lives.
    title: str = ""  # "Codex CLI rollouts"
    agent: str | None = None  # the agent whose memory this is ("Codex CLI"); None for dataset and trace formats
    where: str = ""  # where the agent or tool keeps it: "~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl"
    kept: str = ""  # what an import keeps: "user and assistant turns, tool calls with results, reasoning on request"
    outcome_signals: str = ""  # what the source says about how a session went ("" when nothing)
    # Folders (home-relative, "~/..." or absolute with ~ expanded; globs allowed) where the agent keeps this memory:
    # find_memory looks there, and the default allowed roots cover them. Only transcript folders, never credentials.
    locations: tuple[str, ...] = ()
    # File names the agent writes into the project it works on (Aider's .aider.chat.history.md), not into a folder of
    # its own: find_memory looks for them in the working directory and the folders above it.
    project_files: tuple[str, ...] = ()
    # find_memory: how many sessions one claimed file or folder holds, without importing it (None: one). A SQLite
    # store or an Aider history holds many; a rollout file holds one.
    count_sessions: Callable[[Path], int] | None = None

    def describe(self) -> str:
        """One line for argument descriptions and prompts: "codex_cli (Codex CLI rollouts, ~/.codex/sessions)"."""
        detail = ", ".join(part for part in (self.title, self.where) if part)
        return f"{self.name} ({detail})" if detail else self.name


def score(sniff: Callable[[Any], Score] | None, value: Any) -> float:
    """A sniffer's verdict as a number in [0, 1]; a sniffer that trips over odd input simply does not recognise it."""
    if sniff is None:
        return 0.0
    try:
        verdict = sniff(value)
    except Exception:  # noqa: BLE001 - see the docstring
        return 0.0
    if verdict is True:
        return 1.0
    if not verdict:
        return 0.0
    try:
        return max(0.0, min(1.0, float(verdict)))
    except (TypeError, ValueError):
        return 0.0
