"""Print dataset ids (and the card minus timestamps/paths) for builds of the demo data and the shared samples.

Usage: python benchmarks/check_ids.py > ids.json ; run before and after a change to build.py and diff the outputs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from model_customization.datasets.build import build_dataset
from model_customization.demo_data import demo_memory_paths
from model_customization.errors import UserError
from model_customization.workspace import Workspace

SAMPLES = Path(__file__).resolve().parents[1] / "shared" / "fixtures" / "memory-samples"
if not SAMPLES.exists():
    SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "memory-samples"


def main() -> None:
    inputs = {"demo": [str(p) for p in demo_memory_paths()]}
    for folder in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        inputs[folder.name] = [str(folder)]
    inputs["all-samples"] = [str(p) for p in sorted(SAMPLES.iterdir()) if p.is_dir()]
    configs = [
        {},
        {"example_mode": "turns"},
        {"method": "dpo"},
        {"redact": False, "near_duplicate_threshold": None, "seed": 3},
        {"validation_fraction": 0.3, "test_fraction": 0.2},
    ]
    out = {}
    for name, paths in inputs.items():
        for i, cfg in enumerate(configs):
            with tempfile.TemporaryDirectory() as home:
                ws = Workspace.open(home)
                try:
                    result = build_dataset(ws, paths, **cfg)
                except UserError as error:
                    out[f"{name}/{i}"] = f"UserError: {str(error)[:80]}"
                    continue
                card = dict(result.card)
                card["options"] = {k: v for k, v in card["options"].items() if k != "paths"}
                card["sources"] = len(card["sources"])
                folder = ws.settings.datasets_dir / result.dataset_id
                files = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in sorted(folder.iterdir())}
                out[f"{name}/{i}"] = {"id": result.dataset_id, "counts": result.counts, "dropped": result.dropped, "card": card, "files": files}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
