"""Streamable HTTP under load, and cold start against a bare MCPServer.

Load: one server (`model-customization serve --transport streamable-http` on 127.0.0.1) over a fresh data home
holding the demo dataset and a few finished local jobs (rows written straight into the ledger, with events and
metrics). --clients MCP sessions (SDK streamable HTTP clients) run at once, each making --calls calls that cycle
through check_job (a finished job), list_jobs, resources/read jobs://index and datasets://index. The clients are
spread over --client-processes processes so the client side does not queue behind one Python thread. An error is
an exception or an is_error result; afterwards the ledger must hold the same jobs, unchanged (no worker started).

Cold start: wall time from spawning the process to the answer of the first tools/list, over stdio, for
`python -m model_customization serve` against a script that builds an MCPServer with one tool; alternated, after
one unrecorded warm-up of each. The client speaks newline-delimited JSON-RPC on the pipes itself.

    python benchmarks/http_load.py [--clients 50] [--calls 100] [--client-processes 2] [--rounds 10] [--skip-load] [--skip-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BARE_SERVER = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="bare")

    @server.tool()
    def ping(text: str) -> str:
        \"\"\"Echo the text.\"\"\"
        return text

    server.run("stdio")
    """
)

# The client half of the load test, run in --client-processes processes; prints one JSON line of results.
LOAD_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import anyio
    from mcp import Client

    url, clients, calls, job_ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    latencies, errors, messages = [], 0, []

    async def one_client(index):
        global errors
        async with Client(url) as client:
            for call in range(calls):
                kind = (index + call) % 4
                started = time.perf_counter()
                try:
                    if kind == 0:
                        result = await client.call_tool("check_job", {"job_id": job_ids[(index + call) % len(job_ids)]})
                        ok = not result.is_error
                    elif kind == 1:
                        result = await client.call_tool("list_jobs", {})
                        ok = not result.is_error
                    else:
                        uri = "jobs://index" if kind == 2 else "datasets://index"
                        contents = (await client.read_resource(uri)).contents
                        ok = bool(json.loads(contents[0].text))
                    if not ok:
                        messages.append(str(result.content)[:200])
                except Exception as error:
                    ok = False
                    messages.append(repr(error)[:200])
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1

    async def main():
        async with anyio.create_task_group() as group:
            for index in range(clients):
                group.start_soon(one_client, index)

    started = time.perf_counter()
    anyio.run(main)
    print(json.dumps({"latencies": latencies, "errors": errors, "messages": messages[:5], "wall": time.perf_counter() - started}))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_home(home: Path) -> list[str]:
    """The demo dataset and five finished local jobs (with events and metrics), written straight to the ledger."""
    from model_customization.datasets.build import build_dataset
    from model_customization.demo_data import demo_memory_paths
    from model_customization.workspace import Workspace

    ws = Workspace.open(home)
    dataset_id = build_dataset(ws, demo_memory_paths()).dataset_id
    job_ids = []
    for number, status in enumerate(["succeeded", "succeeded", "succeeded", "failed", "cancelled"]):
        job_id = f"job-bench{number}"
        now = time.time()
        ws.store.jobs.add(
            {"id": job_id, "provider": "local", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset_id": dataset_id, "method": "sft",
             "hyperparameters": {"n_epochs": 1}, "status": status, "total_steps": 10, "started_at": now, "finished_at": now}
        )
        for step in range(1, 11):
            ws.store.jobs.add_metric(job_id, step=step, epoch=step / 10, train_loss=2.0 / step)
            ws.store.jobs.add_event(job_id, f"step {step}/10")
        ws.store.jobs.update(job_id, step=10, error="worker ran out of memory (benchmark row)" if status == "failed" else None)
        job_ids.append(job_id)
    ws.store.close()
    return job_ids


def _job_snapshot(home: Path) -> list[tuple]:
    from model_customization.workspace import Workspace

    ws = Workspace.open(home)
    rows = [(j["id"], j["status"], j["worker_pid"], j["step"], j["attempts"]) for j in ws.store.jobs.all()]
    ws.store.close()
    return sorted(rows)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_load(home: Path, job_ids: list[str], clients: int, calls: int, processes: int) -> dict:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODEL_CUSTOMIZATION_HTTP_TOKENS"}
    log_path = home.parent / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(port), "--home", str(home)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        before = _job_snapshot(home)
        shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        started = time.perf_counter()
        workers = [
            subprocess.Popen([sys.executable, "-c", LOAD_CLIENT, f"http://127.0.0.1:{port}/mcp", str(share), str(calls), json.dumps(job_ids)], stdout=subprocess.PIPE, text=True)
            for share in shares if share
        ]
        results = [json.loads(worker.communicate(timeout=1800)[0].strip().splitlines()[-1]) for worker in workers]
        wall = time.perf_counter() - started
        after = _job_snapshot(home)
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = [value for result in results for value in result["latencies"]]
    return {
        "clients": clients,
        "calls_per_client": calls,
        "client_processes": len(workers),
        "calls": len(latencies),
        "errors": sum(result["errors"] for result in results),
        "error_samples": [message for result in results for message in result["messages"]][:5],
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
        "max_ms": round(1000 * max(latencies), 1),
        "wall_s": round(wall, 2),
        "calls_per_s": round(len(latencies) / wall, 1),
        "jobs_unchanged": before == after,
    }


def time_to_first_tools_list(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds from spawn to the tools/list answer, CPU seconds the process used in all), speaking JSON-RPC over the
    process's stdio. CPU seconds (user + system, to its exit) depend much less than wall time on other work sharing
    the machine; they include the process's shutdown after the answer, the same for every command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1)
    try:
        def send(message: dict) -> None:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()

        def answer(request_id: int) -> dict:
            for line in process.stdout:
                message = json.loads(line)
                if message.get("id") == request_id:
                    return message
            raise RuntimeError(f"{command} closed stdout before answering request {request_id}")

        send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cold-start", "version": "0"}}})
        answer(1)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = answer(2)["result"]["tools"]
        elapsed = time.perf_counter() - started
        assert tools, "tools/list answered with no tools"
    finally:
        process.stdin.close()
        process.terminate()
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0  # reaped here: keep Popen from waiting for it again
    return elapsed, usage.ru_utime + usage.ru_stime


def run_cold_start(home: Path, rounds: int) -> dict:
    """Bare MCPServer, our server entry point (what MCP clients launch) and the CLI's `serve`, alternated each round.

    Our server keeps its tools/list answer in <home>/cache (server/tool_registry.py): `server` and `cli_serve` start
    with it in place, as every start after a home's first does; `server_first_start` removes it before each start."""
    # PYTHONDONTWRITEBYTECODE (set on some development machines) would make every start compile our modules from
    # source, while the SDK's came compiled with its install: an installed package has its .pyc files too.
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_CUSTOMIZATION_HTTP_TOKENS", "PYTHONDONTWRITEBYTECODE")}
    server = [sys.executable, "-m", "model_customization.server", "--home", str(home)]
    commands = {
        "bare": [sys.executable, "-c", BARE_SERVER],
        "server": server,
        "cli_serve": [sys.executable, "-m", "model_customization", "serve", "--home", str(home)],
        "server_first_start": server,
    }

    def start(name: str) -> tuple[float, float]:
        if name == "server_first_start":
            shutil.rmtree(home / "cache", ignore_errors=True)
        return time_to_first_tools_list(commands[name], env)

    for name in commands:  # warm-ups: file cache and .pyc files
        start(name)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name in commands:
            wall, used = start(name)
            times[name].append(wall)
            cpu[name].append(used)
    bare, bare_cpu = statistics.median(times["bare"]), statistics.median(cpu["bare"])
    report: dict = {"rounds": rounds, "bare_median_s": round(bare, 3), "bare_median_cpu_s": round(bare_cpu, 3)}
    for name in ("server", "cli_serve", "server_first_start"):
        report[f"{name}_median_s"] = round(statistics.median(times[name]), 3)
        report[f"{name}_ratio_of_medians"] = round(statistics.median(times[name]) / bare, 2)
        report[f"{name}_median_round_ratio"] = round(statistics.median(o / b for o, b in zip(times[name], times["bare"])), 2)
        report[f"{name}_median_cpu_s"] = round(statistics.median(cpu[name]), 3)
        report[f"{name}_cpu_ratio_of_medians"] = round(statistics.median(cpu[name]) / bare_cpu, 2)
    report["seconds"] = {name: [round(t, 3) for t in values] for name, values in times.items()}
    report["cpu_seconds"] = {name: [round(t, 3) for t in values] for name, values in cpu.items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="http-load-") as folder:
        home = Path(folder) / "home"
        job_ids = seed_home(home)
        report = {"machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start"}
        if not args.skip_load:
            report["load"] = run_load(home, job_ids, args.clients, args.calls, args.client_processes)
            print(json.dumps({"load": report["load"]}), flush=True)
        if not args.skip_cold:
            report["cold_start"] = run_cold_start(home, args.rounds)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
