"""Cheap-tool latency of the real stdio server, alone and while 40 calls at once try to read FIFOs, a character
device and oversized files (issue 17, denial of service).

    PYTHONPATH=src .venv/bin/python benchmarks/dos_attack.py [--calls 60] [--attackers 40]

Each phase starts a fresh server (`python -m model_customization.server`) on a fresh data home. The cheap calls
(list_datasets and list_models, alternating) are sent one after another, --interval apart; in the attack phase, 40 attack calls are
in flight at once, each attacker sending its next one `--pace` seconds after the last (0: at once, a flood). A cheap call not answered within --timeout
seconds counts as timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class Server:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, home: Path, env: dict[str, str]) -> Server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "model_customization.server", "--home", str(home),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **env}, limit=64 << 20,
        )  # fmt: skip
        server = cls(process)
        await server.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}})
        await server.notify("notifications/initialized")
        return server

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            waiter = self.waiting.pop(message.get("id"), None) if "id" in message else None
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    async def notify(self, method: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        await self.process.stdin.drain()

    async def request(self, method: str, params: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.process.stdin is not None
        request_id = next(self.ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = waiter
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n")
        await self.process.stdin.drain()
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self.waiting.pop(request_id, None)

    async def call(self, name: str, arguments: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments}, timeout)

    async def stop(self) -> None:
        self.reader.cancel()
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def attack_files(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The calls an attacker repeats: FIFOs (no writer ever comes), /dev/zero's kind, files over the size limit."""
    fifo = folder / "pipe.jsonl"
    os.mkfifo(fifo)
    fifo_yaml = folder / "pipe.yaml"
    os.mkfifo(fifo_yaml)
    zero = folder / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    big = folder / "big.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "hi " * 100}], "reference": "hello"}) + "\n"
    big.write_text(line * 20_000)  # about 6.5 MB, over the 1 MiB limit the server runs with
    return [
        ("inspect_dataset", {"path": str(fifo)}),
        ("evaluate", {"models": ["SmolLM2-135M-Instruct", "gpt-4o-mini"], "suite": str(fifo_yaml)}),
        ("set_agent_suite", {"agent": "bot", "suite": str(zero)}),
        ("inspect_dataset", {"path": str(big)}),
        ("set_agent_suite", {"agent": "bot", "suite": str(big)}),
        ("build_dataset_from_memory", {"paths": [str(fifo)]}),
    ]


async def cheap_latencies(server: Server, calls: int, timeout: float, interval: float = 0.0) -> tuple[list[float], int]:
    latencies: list[float] = []
    timed_out = 0
    for number in range(calls):
        name = "list_datasets" if number % 2 == 0 else "list_models"
        started = time.perf_counter()
        try:
            reply = await server.call(name, {}, timeout)
        except TimeoutError:
            timed_out += 1
            continue
        assert not reply["result"].get("isError"), reply
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(interval)
    return latencies, timed_out


async def phase(attack: bool, calls: int, attackers: int, timeout: float, pace: float, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dos-bench-") as scratch:
        root = Path(scratch)
        (root / "files").mkdir()
        attacks = attack_files(root / "files")
        env = {
            "MODEL_CUSTOMIZATION_ALLOWED_ROOTS": os.pathsep.join([str(root), "/dev"]),  # /dev too: a careless operator
            "MODEL_CUSTOMIZATION_MAX_FILE_BYTES": "1MiB",
        }
        server = await Server.start(root / "home", env)
        answered = refused_by_kind = 0
        stop = asyncio.Event()

        async def attacker(index: int) -> None:
            nonlocal answered, refused_by_kind
            for turn in itertools.count():
                if stop.is_set():
                    return
                name, arguments = attacks[(index + turn) % len(attacks)]
                sent = time.perf_counter()
                try:
                    reply = await server.call(name, arguments, timeout)
                except TimeoutError:
                    continue
                answered += 1
                text = json.dumps(reply)
                refused_by_kind += any(word in text for word in ("a FIFO", "a character device", "more than the limit", "not a regular file"))
                await asyncio.sleep(max(0.0, pace - (time.perf_counter() - sent)))  # each attacker: one call per `pace` s

        try:
            await cheap_latencies(server, 4, timeout)  # warm-up: the tools are built on first use
            tasks = [asyncio.create_task(attacker(i)) for i in range(attackers)] if attack else []
            if attack:
                await asyncio.sleep(0.5)  # all attack calls in flight
            started = time.perf_counter()
            latencies, timed_out = await cheap_latencies(server, calls, timeout, interval)
            elapsed = time.perf_counter() - started
            stop.set()
            for task in tasks:
                task.cancel()
            alive_after = server.process.returncode is None
        finally:
            await server.stop()
    ordered = sorted(latencies)
    return {
        "phase": (f"under attack ({attackers} in flight, each resent {'at once' if pace == 0 else f'every {pace:g} s'})" if attack else "alone"),
        "cheap_calls": calls,
        "answered": len(latencies),
        "timed_out": timed_out,
        "p50_ms": round(statistics.median(ordered), 1) if ordered else None,
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
        "attack_calls_answered": answered,
        "attack_calls_refused_by_kind_or_size": refused_by_kind,
        "seconds": round(elapsed, 1),
        "server_alive": alive_after,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=60, help="cheap calls per phase")
    parser.add_argument("--attackers", type=int, default=40, help="attack calls kept in flight")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between one attacker's calls (0: resend at once, a flood)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between one cheap call's answer and the next call")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a call counts as timed out")
    args = parser.parse_args()
    for attack in (False, True):
        print(json.dumps(await phase(attack, args.calls, args.attackers, args.timeout, args.pace, args.interval)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
