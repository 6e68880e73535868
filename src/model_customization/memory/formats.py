"""The registry of memory formats: each importer module declares how to recognise its files and how to read them.

Adding a format touches its own module and one line in `detect.py`. JSONL formats are recognised by their first
readable lines (`sniff_line` gets one parsed line); whole-document formats (`.json`, `.af`, ...) by the parsed
document (`sniff_document`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import Record


@dataclass(frozen=True)
class MemoryFormat:
    name: str
    iterate: Callable[[Path], Iterator[Record]]
    sniff_line: Callable[[Any], bool] | None = None
    sniff_document: Callable[[Any], bool] | None = None
    options: frozenset[str] = frozenset()  # keyword options `iterate` accepts (e.g. include_thinking)
