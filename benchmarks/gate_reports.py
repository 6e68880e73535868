"""Dump inspect_dataset's full reports for a fixed set of inputs, to compare the gate before and after a change.

Usage: python benchmarks/gate_reports.py HOME OUT.jsonl [EXTRA.jsonl ...] [--only-extra] [--force-pool]

HOME is a data home that keeps the two datasets this builds (the demo memory; every shared memory sample), so a
second run compares the same stored datasets. Inputs: those two datasets, every JSONL file under tests/ and
/work/shared (as path=), and any EXTRA files; targets: openai (gpt-4.1-mini), bedrock and together (their default
models) and local (the embedded model; stored datasets and fixtures only, not EXTRA files, which may be large).
Reports list every finding (not only the first 50). --force-pool: every input goes through the gate's pool of two
workers, in ranges of about 4 KB cut from scans of 512-byte blocks (so lines span blocks and ranges). Each report is written as one JSON line {"input", "target", "report" or "error"}; `diff` two outputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", "/work/shared"))
TARGETS = {"openai": "gpt-4.1-mini", "bedrock": None, "together": None, "local": None}


def main() -> None:
    only_extra = "--only-extra" in sys.argv
    force_pool = "--force-pool" in sys.argv
    args = [a for a in sys.argv[1:] if a not in ("--only-extra", "--force-pool")]
    home, out, extra = Path(args[0]), Path(args[1]), [Path(p).resolve() for p in args[2:]]
    roots = [str(REPO), str(SHARED.resolve()), *(str(p.parent) for p in extra)]
    os.environ["MODEL_CUSTOMIZATION_ALLOWED_ROOTS"] = os.pathsep.join(roots + [os.environ.get("MODEL_CUSTOMIZATION_ALLOWED_ROOTS", "")])
    from model_customization.datasets.build import build_dataset
    from model_customization.datasets import inspect as inspect_module
    from model_customization.datasets.inspect import inspect_dataset
    from model_customization.demo_data import demo_memory_paths
    from model_customization.workspace import Workspace

    inspect_module.MAX_FINDINGS = 10**9  # every finding, in the report's order, not only the first 50
    if force_pool:
        from model_customization.datasets import tokens

        tokens.PARALLEL_MIN_BYTES, tokens.BATCH_BYTES, tokens._SCAN_BYTES = 0, 4096, 512
        tokens._worker_count = lambda: 2
    ws = Workspace.open(str(home))
    ids_file = home / "gate_reports_datasets.json"
    if ids_file.exists():
        dataset_ids = json.loads(ids_file.read_text())
    else:
        demo = build_dataset(ws, demo_memory_paths(), name="demo", seed=0, validation_fraction=0.1, test_fraction=0.15)
        samples = build_dataset(ws, [str(SHARED / "fixtures" / "memory-samples")], name="samples", seed=0, validation_fraction=0.1, test_fraction=0.1)
        dataset_ids = {"demo": demo.dataset_id, "samples": samples.dataset_id}
        ids_file.write_text(json.dumps(dataset_ids))
    fixtures = sorted({p.resolve() for root in (REPO / "tests", SHARED) for p in root.rglob("*.jsonl")})
    inputs: list[tuple[str, dict, bool]] = []
    if not only_extra:
        inputs += [(f"dataset:{name}", {"dataset_id": ds}, True) for name, ds in dataset_ids.items()]
        inputs += [(str(p), {"path": str(p)}, True) for p in fixtures]
    inputs += [(str(p), {"path": str(p)}, False) for p in extra]
    with out.open("w") as handle:
        for label, where, small in inputs:
            for target, model in TARGETS.items():
                if target == "local" and not small:
                    continue
                try:
                    record = {"report": inspect_dataset(ws, provider=target, model=model, **where)}
                except Exception as error:  # the refusal is part of the behaviour compared
                    record = {"error": f"{type(error).__name__}: {error}"}
                handle.write(json.dumps({"input": label, "target": target, **record}, sort_keys=True, default=str) + "\n")
                handle.flush()


if __name__ == "__main__":
    main()
