"""Paging for list tools and commands: a page of rows plus an opaque cursor naming where the next page starts.

The cursor holds the sort key of the last row shown (not an offset), so a row added meanwhile never shifts the
next page: newest-first lists get new rows on a page already read, oldest-first lists get them at the end.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from model_customization.errors import UserError

Row = TypeVar("Row")


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps({"list": kind, "after": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list[Any]:
    """The sort key a cursor from encode_cursor(kind, ...) holds; a UserError for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(value, dict) or not isinstance(value.get("after"), list):
            raise ValueError("not a cursor")
    except (ValueError, UnicodeError, binascii.Error):
        raise UserError(
            f"The cursor {cursor[:60]!r} is not one this server gave out. Pass the next_cursor of the previous {kind} page "
            "exactly, or leave cursor out to start from the first page."
        ) from None
    if value.get("list") != kind:
        raise UserError(f"That cursor belongs to a {value.get('list')!r} list, not to {kind}. Use the next_cursor of the previous {kind} page.")
    return value["after"]


def page_rows(
    rows: Sequence[Row], key: Callable[[Row], Sequence[Any]], *, kind: str, limit: int, cursor: str | None, newest_first: bool
) -> tuple[list[Row], str | None]:
    """(the page, next_cursor or None at the end) of rows already sorted by key (descending when newest_first)."""
    if limit < 1:
        raise UserError(f"limit must be at least 1 (got {limit}).")
    remaining = list(rows)
    if cursor is not None:
        after = tuple(decode_cursor(kind, cursor))
        try:
            remaining = [r for r in remaining if (tuple(key(r)) < after if newest_first else tuple(key(r)) > after)]
        except TypeError:  # a key of another shape (a hand-made cursor): not ours
            raise UserError(f"The cursor {cursor[:60]!r} does not fit the {kind} list. Leave cursor out to start from the first page.") from None
    shown = remaining[:limit]
    more = len(remaining) > limit
    return shown, (encode_cursor(kind, key(shown[-1])) if more else None)
