"""How right a build's near-duplicate decisions are: the true Jaccard similarity of every pair it dropped.

Usage: python benchmarks/near_duplicate_truth.py MEMORY_PATH [MEMORY_PATH ...]

Builds in one process (so every signature is made here), records the text behind each MinHash signature, and for
each example dropped as a near duplicate computes the exact Jaccard similarity of its shingle set and its kept
partner's. Prints one JSON line: the dataset id, what was dropped, and those similarities, sorted. Run it with
PYTHONPATH pointing at two checkouts' src to compare two MinHash schemes on the same memory. Holds the text of every
kept example in memory: meant for measuring, not for building.
"""

from __future__ import annotations

import json
import sys
import tempfile

from model_customization.datasets import build, dedupe
from model_customization.datasets.dedupe import shingles
from model_customization.workspace import Workspace


def main() -> None:
    text_of_signature: dict[int, str] = {}
    signatures = []  # kept alive, so that no id() is reused while its text is looked up
    make_signature = build.minhash_of

    def recording(text: str, *args, **kwargs):
        signature = make_signature(text, *args, **kwargs)
        text_of_signature[id(signature)] = text
        signatures.append(signature)
        return signature

    kept_text: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []  # (text, key of the kept partner)
    decide = dedupe.NearDuplicateFilter.duplicate_of

    def deciding(self, key, text, signature=None):
        partner = decide(self, key, text, signature)
        seen = text_of_signature.pop(id(signature)) if text is None else text
        if partner is None:
            kept_text[key] = seen
        else:
            dropped.append((seen, partner))
        return partner

    build.minhash_of = recording
    dedupe.NearDuplicateFilter.duplicate_of = deciding
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(home)
        try:
            result = build.build_dataset(ws, sys.argv[1:], workers=1)
        finally:
            ws.store.close()
    similarities = []
    for text, partner in dropped:
        mine, theirs = shingles(text), shingles(kept_text[partner])
        similarities.append(round(len(mine & theirs) / len(mine | theirs), 3))
    print(json.dumps({"dataset_id": result.dataset_id, "dropped": result.dropped, "true_jaccard_of_dropped": sorted(similarities)}))


if __name__ == "__main__":
    main()
