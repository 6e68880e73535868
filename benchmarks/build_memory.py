"""Build a dataset from a memory folder and report wall time, throughput and peak RSS.

Usage: python benchmarks/build_memory.py MEMORY_DIR [--home HOME] [--mode conversation|turns]

Runs build_dataset once in this process (run it as its own process, so the peak RSS is the build's) in a fresh
data home (a temporary one unless --home is given), then prints one JSON line: input bytes and files, wall
seconds, MB/s (input MB / wall), peak RSS of this process and of its waited-for children (ru_maxrss), counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from model_customization.datasets.build import build_dataset
from model_customization.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("memory")
    parser.add_argument("--home")
    parser.add_argument("--mode", default="conversation", choices=("conversation", "turns"))
    args = parser.parse_args()
    files = [p for p in Path(args.memory).rglob("*.jsonl")]
    size = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(args.home or tmp)
        start = time.perf_counter()
        result = build_dataset(ws, [args.memory], example_mode=args.mode)
        wall = time.perf_counter() - start
        out_bytes = sum(p.stat().st_size for p in (ws.settings.datasets_dir / result.dataset_id).glob("*.jsonl"))
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "input_mb": round(size / 1e6, 1),
        "files": len(files),
        "wall_s": round(wall, 1),
        "mb_per_s": round(size / 1e6 / wall, 2),
        "peak_rss_mb": round(self_kb / 1024, 1),
        "children_peak_rss_mb": round(children_kb / 1024, 1),
        "dataset_id": result.dataset_id,
        "counts": result.counts,
        "dropped": result.dropped,
        "output_mb": round(out_bytes / 1e6, 1),
    }))


if __name__ == "__main__":
    main()
