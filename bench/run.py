"""`make bench`: the fake M2-her upstream and the load on one core, daphne alone on the other.

Measures added time to first delta, delivery lag under concurrent streams (against the floor:
the same clients reading the fake upstream directly, in the same run), server CPU per delta,
memory per idle websocket, queries per reply, opening a 5,000-turn conversation, and the local
model. Writes bench/results/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench import procs
from bench.clients import (
    StreamResult,
    app_stream,
    client_reply,
    collector_paused,
    floor_stream,
    open_idle,
)
from bench.report import write_report

SERVER_CORE, LOAD_CORE = 0, 1


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q / 100 * len(ordered)), len(ordered) - 1)]


def ms(value: float) -> float:
    return round(value * 1000, 2)


def summarise(results: list[StreamResult]) -> dict[str, Any]:
    ttfd = [r.ttfd for r in results if r.ttfd is not None]
    from_connect = [r.from_connect for r in results if r.from_connect is not None]
    lags = [lag for r in results for lag in r.lags]
    return {
        "streams": len(results),
        "errors": sum(1 for r in results if r.error or r.ttfd is None),
        "first_error": next((r.error for r in results if r.error), ""),
        "ttfd_p50_ms": ms(pct(ttfd, 50)),
        "ttfd_p99_ms": ms(pct(ttfd, 99)),
        "from_connect_p50_ms": ms(pct(from_connect, 50)),
        "from_connect_p99_ms": ms(pct(from_connect, 99)),
        "lag_p50_ms": ms(pct(lags, 50)),
        "lag_p99_ms": ms(pct(lags, 99)),
        "frames": sum(r.frames for r in results),
        "words": sum(r.words for r in results),
    }


class Bench:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], data: dict[str, Any]) -> None:
        self.args = args
        self.env = env
        self.clients = data["clients"]
        self.long_conversation = data["long_conversation"]
        self.http_base = f"http://127.0.0.1:{args.port}"
        self.fake_base = env["M2HER_BASE_URL"]
        self.origin = self.http_base
        self.server: procs.Proc | None = None
        self.fake: procs.Proc | None = None

    def ws_url(self, conversation: str) -> str:
        return f"ws://127.0.0.1:{self.args.port}/ws/conversations/{conversation}/"

    async def app(
        self, count: int, *, words: int, spread: float, offset: int = 0
    ) -> list[StreamResult]:
        async def one(i: int) -> StreamResult:
            await asyncio.sleep(spread * i / max(count, 1))
            client = self.clients[offset + i]
            return await client_reply(self.args.port, client, words=words, tps=self.args.tps)

        with collector_paused():
            return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def floor(self, count: int, *, words: int, spread: float) -> list[StreamResult]:
        host, port = self.fake_base.removeprefix("http://").split(":")

        async def one(i: int) -> StreamResult:
            await asyncio.sleep(spread * i / max(count, 1))
            try:
                return await floor_stream(host, int(port), words=words, tps=self.args.tps)
            except Exception as exc:
                return StreamResult(error=repr(exc)[:300])

        with collector_paused():
            return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def single_stream(self) -> dict[str, Any]:
        app, floor = [], []
        for _ in range(self.args.single):
            floor += await self.floor(1, words=20, spread=0)
            app += await self.app(1, words=20, spread=0)
        a, f = summarise(app), summarise(floor)
        return {
            "app": a,
            "floor": f,
            "added_ttfd_p50_ms": round(a["ttfd_p50_ms"] - f["ttfd_p50_ms"], 2),
        }

    async def burst(self, count: int) -> dict[str, Any]:
        floor = summarise(await self.floor(count, words=20, spread=0))
        app = summarise(await self.app(count, words=20, spread=0))
        return {
            "app": app,
            "floor": floor,
            "added_ttfd_p99_ms": round(app["ttfd_p99_ms"] - floor["ttfd_p99_ms"], 2),
        }

    def load_cpu_seconds(self) -> float:
        """CPU of the load side: these clients and the fake upstream (they share one core)."""
        assert self.fake is not None
        return time.process_time() + self.fake.cpu_seconds()

    async def concurrent(self, count: int, words: int | None = None) -> dict[str, Any]:
        assert self.server is not None
        words = words or self.args.words
        # Streams start over one full reply's time whatever this phase's reply length, so a
        # phase of short replies has the same start rate as the main one.
        spread = self.args.words / self.args.tps
        floor = summarise(await self.floor(count, words=words, spread=spread))
        spy = self.profiler(f"daphne-profile-{count}.txt") if self.args.profile else None
        cpu_before, load_before = self.server.cpu_seconds(), self.load_cpu_seconds()
        wall = time.perf_counter()
        app = summarise(await self.app(count, words=words, spread=spread))
        wall = time.perf_counter() - wall
        cpu = self.server.cpu_seconds() - cpu_before
        load = self.load_cpu_seconds() - load_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(30)
        return {
            "app": app,
            "floor": floor,
            "server_cpu_s": round(cpu, 3),
            "server_cpu_share": round(cpu / wall, 3),
            "load_cpu_share": round(load / wall, 3),
            "cpu_us_per_upstream_delta": round(cpu / max(app["words"], 1) * 1e6, 1),
            "cpu_us_per_ws_frame": round(cpu / max(app["frames"], 1) * 1e6, 1),
        }

    def profiler(self, name: str) -> subprocess.Popen[bytes]:
        """Sample the server's stacks (py-spy, on the load core) while a phase runs."""
        assert self.server is not None
        spy = Path(sys.executable).parent / "py-spy"
        out = procs.ROOT / "bench" / "results" / name
        args = [str(spy), "record", "--format", "raw", "--rate", "200", "--nonblocking"]
        return subprocess.Popen(
            [*args, "--pid", str(self.server.pid), "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def idle_memory(self, count: int) -> dict[str, Any]:
        assert self.server is not None
        await asyncio.sleep(1)
        before = self.server.rss_kib()
        sockets = []
        for start in range(0, count, 100):
            batch = [
                open_idle(self.ws_url(c["conversation"]), self.origin, c["cookie"])
                for c in (
                    self.clients[i % len(self.clients)]
                    for i in range(start, min(start + 100, count))
                )
            ]
            sockets += await asyncio.gather(*batch)
        await asyncio.sleep(2)
        after = self.server.rss_kib()
        await asyncio.gather(*(ws.close() for ws in sockets))
        return {
            "sockets": len(sockets),
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_socket": round((after - before) / max(len(sockets), 1), 1),
        }

    async def long_conversation_open(self) -> dict[str, Any]:
        cookie = self.clients[0]["cookie"]
        url = f"{self.http_base}/chats/{self.long_conversation}/"
        api = f"{self.http_base}/api/conversations/{self.long_conversation}/turns/"
        timings: dict[str, list[float]] = {"page": [], "api": []}
        async with httpx.AsyncClient(headers={"Cookie": cookie}, timeout=30) as client:
            for _ in range(self.args.single):
                for key, target in (("page", url), ("api", api)):
                    started = time.perf_counter()
                    response = await client.get(target)
                    timings[key].append(time.perf_counter() - started)
                    if response.status_code != 200:
                        return {"error": f"{target} answered {response.status_code}"}
        return {f"{k}_p50_ms": ms(statistics.median(v)) for k, v in timings.items()}

    async def long_conversation_reply(self) -> dict[str, Any]:
        """One stream's time to first delta in the 5,000-turn conversation (a start reads only
        the history its prompt can hold)."""
        url, cookie = self.ws_url(self.long_conversation), self.clients[0]["cookie"]
        results: list[StreamResult] = []
        with collector_paused():
            for _ in range(self.args.single):
                results += await app_stream(url, self.origin, cookie, words=20, tps=self.args.tps)
        summary = summarise(results)
        return {"reply_ttfd_p50_ms": summary["ttfd_p50_ms"], "reply_errors": summary["errors"]}


def run_json(
    module: str, env: dict[str, str], *extra: str, cwd: Path = procs.ROOT
) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", module, *extra],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", default="100,200,300,400")
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--single", type=int, default=20)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="sample the server with py-spy in each streams phase"
    )
    args = parser.parse_args()
    if args.quick:
        args.streams, args.burst, args.idle, args.single, args.words = "20", 10, 100, 3, 40
    counts = [int(n) for n in args.streams.split(",")]
    work = Path(tempfile.mkdtemp(prefix="companion-bench-"))
    logs = procs.ROOT / "bench" / "results"
    logs.mkdir(exist_ok=True)
    args.port, fake_port = procs.free_port(), procs.free_port()
    env = procs.server_env(work, fake_port)
    py = sys.executable
    subprocess.run(
        [py, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=procs.ROOT, check=True
    )
    subprocess.run(
        [py, "manage.py", "collectstatic", "--noinput", "-v0"], env=env, cwd=procs.ROOT, check=True
    )
    data = run_json("bench.prepare", env, str(max([*counts, args.burst])))
    fake = procs.start(
        "fake_m2her",
        [
            py,
            "-m",
            "bench.fake_upstream",
            "--port",
            str(fake_port),
            "--tokens-per-second",
            str(args.tps),
        ],
        env,
        core=LOAD_CORE,
        port=fake_port,
        logs=logs,
    )
    results: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items()},
        # Timed on the server's core before daphne starts, while it is quiet.
        "machine": {
            "cores": os.cpu_count(),
            **run_json("bench.reference", env, str(SERVER_CORE)),
        },
    }
    bench = Bench(args, env, data)
    bench.fake = fake
    try:
        daphne = [
            py,
            "-m",
            os.environ.get("BENCH_SERVER", "companion.serve"),
            "-b",
            "127.0.0.1",
            "-p",
            str(args.port),
        ]
        daphne.append("companion.asgi:application")
        bench.server = procs.start(
            "daphne",
            daphne,
            env,
            core=SERVER_CORE,
            port=args.port,
            logs=logs,
        )
        procs.pin_self(LOAD_CORE)

        async def phase(name: str, work: Any) -> Any:
            try:
                return await work
            except Exception as exc:  # a phase that breaks is reported, the others still run
                return {"error": repr(exc)[:500]}

        async def measure() -> None:
            # Warm up: first requests import modules and open connections.
            await bench.app(min(10, len(bench.clients)), words=20, spread=0)
            await bench.floor(10, words=20, spread=0)
            # First: after the heavier phases the process holds freed memory that new sockets
            # reuse, and its growth would understate what a socket costs.
            results["idle_memory"] = await phase("idle", bench.idle_memory(args.idle))
            results["single_stream"] = await phase("single", bench.single_stream())
            results["burst"] = await phase("burst", bench.burst(args.burst))
            results["concurrent"] = {}
            for n in counts:
                row = await phase("concurrent", bench.concurrent(n))
                results["concurrent"][str(n)] = row
                if n == 100:
                    # The same 100 streams with 10x shorter replies, straight after: the two
                    # split the server's CPU into a cost per stream (connect, sync, start and
                    # finish a reply) and a cost per delta.
                    results["short_replies"] = await phase(
                        "short", bench.concurrent(100, words=max(args.words // 10, 2))
                    )
                app = row.get("app", {})
                if (
                    "error" in row
                    or app.get("errors", 0) > n * 0.05
                    or app.get("lag_p99_ms", 0) > 2000
                ):
                    break  # past saturation: larger counts only take longer to say the same
            results["long_conversation"] = await phase("long", bench.long_conversation_open())
            results["long_conversation"].update(
                await phase("long reply", bench.long_conversation_reply())
            )

        uvloop.run(measure())
        results["queries_per_reply"] = run_json("bench.queries", env)
    finally:
        if bench.server is not None:
            bench.server.stop()
        fake.stop()
    if not args.skip_local:
        os.sched_setaffinity(0, {0, 1})
        results["local_model"] = run_json("bench.local_model", env)
    write_report(results, logs)


if __name__ == "__main__":
    main()
