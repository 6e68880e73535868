"""How long format detection and a folder walk take, for the detection of a given commit beside this tree's.

Usage: python benchmarks/detect_formats.py MEMORY_DIR [--before-src PATH_TO_OTHER_SRC] [--rounds 3]

Judges every file below MEMORY_DIR with detect_format (and, for this tree, walks the folder the way iter_memory
does, folder formats asked about every subfolder), best of --rounds, and prints one JSON line per code base:
files, seconds, files per second, and the formats found. With --before-src (the src folder of a checkout of an
older commit, e.g. made with `git worktree add /tmp/before 6654a2e`), the older detection runs in a child process
on the same files, so both numbers come from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

_CHILD = """
import json, sys, time
from collections import Counter
from pathlib import Path
from model_customization.memory.detect import detect_format
files = [Path(p) for p in json.loads(sys.stdin.read())]
rounds = int(sys.argv[1])
best = None
for _ in range(rounds):
    start = time.perf_counter()
    found = Counter(detect_format(f) for f in files)
    wall = time.perf_counter() - start
    best = wall if best is None else min(best, wall)
print(json.dumps({"seconds": round(best, 3), "formats": {str(k): v for k, v in found.items()}}))
"""


def _timed(src: Path, files: list[Path], rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(rounds)], input=json.dumps([str(f) for f in files]), capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("memory", type=Path)
    parser.add_argument("--before-src", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(p for p in args.memory.rglob("*") if p.is_file())
    here = Path(__file__).resolve().parents[1] / "src"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    runs = [("this tree", here)] + ([("before", args.before_src)] if args.before_src else [])
    for label, src in runs:
        result = _timed(src, files, args.rounds)
        result.update(code=label, files=len(files), files_per_second=round(len(files) / result["seconds"]) if result["seconds"] else None, machine=machine)
        print(json.dumps(result))
    # The walk as iter_memory makes it (folder formats asked about every subfolder), without importing anything.
    sys.path.insert(0, str(here))
    from model_customization.memory.detect import _claims_folder, _memory_suffixes
    from model_customization.paths import iter_files_within_roots

    best = None
    for _ in range(args.rounds):
        start = time.perf_counter()
        skipped: list = []
        walked = list(iter_files_within_roots(args.memory, _memory_suffixes(), claim_folder=_claims_folder, skipped=skipped))
        wall = time.perf_counter() - start
        best = wall if best is None else min(best, wall)
    print(json.dumps({"code": "this tree: walk only", "entries": len(walked), "skipped": len(skipped), "seconds": round(best, 3), "machine": machine}))


if __name__ == "__main__":
    main()
