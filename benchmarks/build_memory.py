"""Build a dataset from a memory folder and report wall time, throughput and peak RSS.

Usage: python benchmarks/build_memory.py MEMORY_DIR [--home HOME] [--mode conversation|turns] [--workers N] [--floor] [--no-memory]
       [--new-ledger]

Runs build_dataset once in this process (run it as its own process, so the peak RSS is the build's) in a fresh
data home (a temporary one unless --home is given), then prints one JSON line: input bytes and files, wall
seconds, MB/s (input MB / wall), CPU seconds of the build summed over its processes (less skewed than the wall
when other work shares the machine: on N idle cores the wall cannot be below cpu_s / N), peak RSS of this process (ru_maxrss), the peak over time of the RSS and of the PSS
summed over this process and all its descendants but the sampler (the build's workers; sampled every 50 ms from /proc:
RSS counts pages a worker shares with the process it was forked from once per process, PSS splits them), counts.
--workers sets the build's worker processes (default: the product's default). --in-thread builds from a second thread, as the server does (its pool then starts from a fork server). --floor first runs
baseline_build_floor.py on the same folder in a child process and adds its result and the ratio of the walls.
The home's ledger is made first, in a child process, as any earlier command on that home would have made it: the
build then opens a ledger that exists, as `dataset build` does on a home in use (importing SQLAlchemy, no migration).
--new-ledger leaves that out, so that the build also makes the ledger (Alembic's migrations: ~0.25 CPU-s more).
--no-memory leaves the sampler out: reading smaps_rollup of three processes every 50 ms takes about a tenth of a core,
which on 2 cores lengthens the build's wall (by ~0.2 s of 1.3 s on 52.9 MB); the floor runs without one, so the
walls compared with it are taken with --no-memory, and the memory in a run of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except OSError:
            pass
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in kB, (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            fields = dict(line.split(":", 1) for line in handle if line[:4] in ("Rss:", "Pss:"))
        return int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def sample(pid: int) -> None:
    """Run in a child process (python build_memory.py --sample PID): sample PID's tree every 50 ms until stdin closes,
    then print the peaks. A process, not a thread, so that the build runs in a process with one thread, as the CLI."""
    peak_rss = peak_pss = most = 0
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print("started", flush=True)
    while not done.wait(0.05):
        pids = _descendants(pid)
        pids.remove(os.getpid()) if os.getpid() in pids else None
        sizes = [_memory_kb(p) for p in pids]
        peak_rss = max(peak_rss, sum(r for r, _ in sizes))
        peak_pss = max(peak_pss, sum(p for _, p in sizes))
        most = max(most, len(pids))
    print(json.dumps({"peak_rss_kb": peak_rss, "peak_pss_kb": peak_pss, "processes": most}))


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended (the build's workers, once the
    pool is shut down; the floor's run ended before the build started and is taken off by the caller's difference)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    if sys.argv[1:2] == ["--sample"]:
        sample(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("memory")
    parser.add_argument("--home")
    parser.add_argument("--mode", default="conversation", choices=("conversation", "turns"))
    parser.add_argument("--workers", type=int)
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--in-thread", action="store_true", help="build in a second thread, as the server does")
    parser.add_argument("--new-ledger", action="store_true", help="the build makes the home's ledger (a home never used before)")
    parser.add_argument("--no-memory", action="store_true", help="no sampler: the wall of a build nothing else shares the cores with")
    args = parser.parse_args()
    # Imported here, not at the top: the sampler runs this file too, and importing the product there would take CPU
    # from the build it measures.
    from model_customization.datasets.build import build_dataset
    from model_customization.workspace import Workspace

    floor = None
    if args.floor:
        script = Path(__file__).resolve().parent / "baseline_build_floor.py"
        floor = json.loads(subprocess.run([sys.executable, str(script), args.memory], check=True, capture_output=True, text=True).stdout)
    files = [p for p in Path(args.memory).rglob("*.jsonl")]
    size = sum(p.stat().st_size for p in files)
    sampler = None
    if not args.no_memory:
        sampler = subprocess.Popen([sys.executable, __file__, "--sample", str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        sampler.stdout.readline()  # it has started (its own start-up is not the build's time)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.new_ledger:
            prepare = "import sys; from model_customization.workspace import Workspace; Workspace.open(sys.argv[1]).store"
            subprocess.run([sys.executable, "-c", prepare, args.home or tmp], check=True)
        ws = Workspace.open(args.home or tmp)
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        if args.in_thread:
            box: list = []
            worker = threading.Thread(target=lambda: box.append(build_dataset(ws, [args.memory], example_mode=args.mode, workers=args.workers)))
            worker.start()
            worker.join()
            result = box[0]
        else:
            result = build_dataset(ws, [args.memory], example_mode=args.mode, workers=args.workers)
        wall = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before  # before the sampler ends: its own time is not the build's
        out_bytes = sum(p.stat().st_size for p in (ws.settings.datasets_dir / result.dataset_id).glob("*.jsonl"))
    peaks = json.loads(sampler.communicate("")[0]) if sampler else None
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "input_mb": round(size / 1e6, 1),
        "files": len(files),
        "in_thread": args.in_thread,
        "workers": args.workers if args.workers is not None else os.environ.get("MODEL_CUSTOMIZATION_BUILD_WORKERS", "default"),
        "wall_s": round(wall, 2),
        "mb_per_s": round(size / 1e6 / wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(self_kb / 1024, 1),
        "children_peak_rss_mb": round(children_kb / 1024, 1),
        **({
            "peak_rss_sum_mb": round(peaks["peak_rss_kb"] / 1024, 1),
            "peak_pss_sum_mb": round(peaks["peak_pss_kb"] / 1024, 1),
            "processes": peaks["processes"],
        } if peaks else {}),
        **({"floor": floor, "wall_vs_floor": round(wall / floor["wall_s"], 2)} if floor else {}),
        "dataset_id": result.dataset_id,
        "counts": result.counts,
        "dropped": result.dropped,
        "output_mb": round(out_bytes / 1e6, 1),
    }))


if __name__ == "__main__":
    main()
