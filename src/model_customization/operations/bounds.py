"""Bounds on what a caller can send: every string field of every operation's request has a length limit, so nothing
a caller sets (a dataset name, an id, a path, a cursor) can be stored and returned at any size.

One rule for all of them (BoundedRequest's str_max_length), and one wider type for the fields that carry a prompt's
text (LongText), which is then held to the model's own context where it is used.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, StringConstraints

from model_customization.deferred_model import DeferredModel

# A name, an id, a cursor or a path (PATH_MAX is 4096 bytes on Linux): nothing a caller names needs more.
MAX_FIELD_CHARS = 4096
# A prompt, a system message or a message's text: about 250k tokens, past every model's context we know of.
MAX_TEXT_CHARS = 1_000_000

LongText = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]


class BoundedRequest(DeferredModel):
    """Base of every operation's request: each string field (in lists and dicts too) is at most MAX_FIELD_CHARS
    characters unless typed LongText."""

    model_config = ConfigDict(str_max_length=MAX_FIELD_CHARS)
