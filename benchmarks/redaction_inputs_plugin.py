"""A pytest plugin that records every text and conversation the tests hand to redaction, for redaction_identity.py.

Usage: REDACTION_INPUTS=/tmp/inputs.pkl PYTHONPATH=src:benchmarks python -m pytest -p redaction_inputs_plugin tests/...
Writes a pickle {"texts": [...], "conversations": [...]} (texts deduplicated, in first-seen order) at the end.
"""

from __future__ import annotations

import os
import pickle

from model_customization.datasets import redaction

_texts: dict[str, None] = {}
_conversations: list = []
_original_text = redaction._Redactor.text
_original_conversation = redaction.redact_conversation


def _recording_text(self, text):  # type: ignore[no-untyped-def]
    if self.depth == 0 and isinstance(text, str):
        _texts.setdefault(text, None)
    return _original_text(self, text)


def _recording_conversation(conv):  # type: ignore[no-untyped-def]
    _conversations.append(pickle.loads(pickle.dumps(conv)))
    return _original_conversation(conv)


redaction._Redactor.text = _recording_text  # type: ignore[method-assign]
redaction.redact_conversation = _recording_conversation  # type: ignore[assignment]


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    path = os.environ.get("REDACTION_INPUTS")
    if path:
        with open(path, "wb") as handle:
            pickle.dump({"texts": list(_texts), "conversations": _conversations}, handle)
