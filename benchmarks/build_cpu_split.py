"""Where a dataset build's CPU goes, measured inside the running build (its workers included).

Usage: python benchmarks/build_cpu_split.py MEMORY_DIR

Builds MEMORY_DIR once, as `dataset build` does (default workers, a data home whose ledger exists), with each stage
of a worker's read wrapped in a CPU clock (process time, so the other processes sharing the cores do not count):
redaction, examples, exact keys, MinHash, canonical JSON, the source files' hashes; what is left of a worker's
time is reading and parsing the files. In the build process: counting the kept examples' tokens and writing the
sorted splits. Prints one JSON line of CPU seconds. (build_stages.py times the same stages in one process, one after
the other; this one sees what the pool does: each worker's own caches, the build process's share of the cores.)
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
import time
from typing import Any

from model_customization.datasets import build
from model_customization.workspace import Workspace

WORKER_STAGES = ("redact_conversation", "conversation_to_example", "exact_key", "minhash_of", "canonical_json", "_sha256_file")
PARENT_STAGES = ("_line_tokens", "_write_splits")
spent: collections.Counter[str] = collections.Counter()  # in whichever process runs the stage


def _clocked(name: str, fn: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - start

    return run


_real_read = build._read_in_worker


def _read_and_report(unit: Any) -> list[Any]:
    """A worker's read of one file, with its stages' CPU seconds as one more event (taken out before the merge)."""
    spent.clear()
    start = time.process_time()
    events = _real_read(unit)
    return [*events, ("cpu", dict(spent), time.process_time() - start)]


def main() -> None:
    for name in WORKER_STAGES + PARENT_STAGES:
        setattr(build, name, _clocked(name, getattr(build, name)))
    build._read_in_worker = _read_and_report  # before the fork: the workers run this one
    workers: collections.Counter[str] = collections.Counter()
    real_next = build._Reader._next

    def merge(self: Any) -> None:
        done = self.pending[0][0]
        if not isinstance(done, list):
            events = done.result()
            if events and events[-1][0] == "cpu":
                _, stages, total = events.pop()
                workers.update(stages)
                workers["total"] += total
        real_next(self)

    build._Reader._next = merge
    with tempfile.TemporaryDirectory() as home:
        # A home in use: its ledger made first, by another process (the build still opens it, as `dataset build` does).
        subprocess.run([sys.executable, "-c", "import sys; from model_customization.workspace import Workspace; Workspace.open(sys.argv[1]).store", home], check=True)
        ws = Workspace.open(home)
        spent.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        result = build.build_dataset(ws, [sys.argv[1]])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ws.store.close()
    staged = sum(v for k, v in workers.items() if k != "total")
    print(json.dumps({
        "wall_s": round(wall, 2),
        "workers_cpu_s": {
            "total": round(workers["total"], 2),
            **{name: round(workers[name], 2) for name in WORKER_STAGES},
            "reading and parsing (the rest)": round(workers["total"] - staged, 2),
        },
        "build_process_cpu_s": {
            "total": round(cpu, 2),
            **{name: round(spent[name], 2) for name in PARENT_STAGES},
            "the rest": round(cpu - sum(spent[name] for name in PARENT_STAGES), 2),
        },
        "dataset_id": result.dataset_id,
    }))


if __name__ == "__main__":
    main()
