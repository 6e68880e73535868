"""Imported by the fork server a dataset build's worker pool starts from (datasets/build.py, _Reader): it loads
what every worker needs once, so that the workers forked from the server share it instead of each loading its own
(the o200k tables, detect-secrets' plugins, the tables of texts found clean and of long texts' counts). Importing it anywhere else only costs that load."""

from __future__ import annotations

import model_customization.datasets.build  # noqa: F401  (the workers' code, and through it redaction and dedupe)
from model_customization.datasets.tokens import _counter, share_long_counts

_counter("o200k_base")  # the tokenizer the workers count with
share_long_counts()  # and the long texts' counts they give each other
import numpy  # noqa: E402, F401  (the MinHash the workers compute)
from model_customization.datasets.redaction import load_detect_secrets, share_clean_texts  # noqa: E402

load_detect_secrets()  # with the requests it imports: ~12 MB and 0.15 s each worker would spend on its own
share_clean_texts()  # the texts one worker found clean, every worker of every build from this server knows
