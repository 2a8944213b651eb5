"""`python -m bench.ab REV`: this checkout's server against revision REV's, side by side.

Two full runs of `make bench` on a shared machine differ by 10–25 %, more than most single
changes. Here both servers run at once, pinned to the same core, each with its own database,
against one fake upstream; every round measures both, a minute apart at most, and the rounds
alternate which goes first, so the machine's drift falls on both. A round is, per server:
`--singles` replies one after another (each on a new socket, as the benchmark's single stream),
`--burst` replies started together, as many new sockets opening while ten open ones each send a
message, and, unless `--streams 0`, that many concurrent 50-token/s streams. It prints every
round, then each measure's medians and in how many rounds this checkout came out lower. REV is checked out into a temporary worktree and run with this
checkout's virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
import websockets

from bench import procs
from bench.clients import StreamResult, client_reply, collector_paused, open_idle, reply_on
from bench.run import LOAD_CORE, SERVER_CORE, ms, pct, run_json, summarise

# Short replies for the time to first delta: it does not depend on their length.
FIRST_DELTA_WORDS = 2
# Sockets already open that each send a message while a crowd of new sockets opens, one every
# `CHAT_GAP` seconds from the crowd's start.
CHATTERS = 10
CHAT_GAP = 0.02
MEASURES = (
    ("single_p50_ms", "one reply's time to first delta (p50)"),
    ("burst_p99_ms", "replies started together, time to first delta (p99)"),
    ("burst_from_connect_p99_ms", "replies started together, from connecting (p99)"),
    ("crowd_chat_p90_ms", "a reply on an open socket while a crowd opens, first delta (p90)"),
    ("crowd_ready_p99_ms", "the crowd's sockets ready, from connecting (p99)"),
    ("streams_lag_p99_ms", "concurrent streams, delivery lag (p99)"),
    ("cpu_us_per_delta", "concurrent streams, server CPU per delta (µs)"),
    ("cpu_ms_per_reply", "singles and burst, server CPU per reply (ms)"),
)


@dataclass
class Side:
    name: str
    root: Path
    port: int = 0
    data: Path | None = None  # its database, media and logs
    clients: list[dict[str, Any]] = field(default_factory=list)
    server: procs.Proc | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)

    async def reply(
        self, index: int, *, words: int, tps: float, delay: float = 0.0
    ) -> StreamResult:
        await asyncio.sleep(delay)
        return await client_reply(self.port, self.clients[index], words=words, tps=tps)

    def cpu(self) -> float:
        """The server's threads' CPU time, to the nanosecond (`/proc/PID/stat` counts in 10 ms
        ticks, too coarse for a round's share)."""
        assert self.server is not None
        total = 0
        for task in Path(f"/proc/{self.server.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended meanwhile
        return total / 1e9


async def measure_round(side: Side, args: argparse.Namespace) -> dict[str, float]:
    cpu = side.cpu()
    singles = [
        await side.reply(i % len(side.clients), words=FIRST_DELTA_WORDS, tps=args.tps)
        for i in range(args.singles)
    ]
    burst = await asyncio.gather(
        *(side.reply(i, words=FIRST_DELTA_WORDS, tps=args.tps) for i in range(args.burst))
    )
    await asyncio.sleep(0.2)  # the burst's replies end and their sockets close
    replies = args.singles + args.burst
    one, together = summarise(singles), summarise(list(burst))
    row = {
        "single_p50_ms": one["ttfd_p50_ms"],
        "burst_p99_ms": together["ttfd_p99_ms"],
        "burst_from_connect_p99_ms": together["from_connect_p99_ms"],
        "cpu_ms_per_reply": round((side.cpu() - cpu) / replies * 1000, 3),
    }
    errors = one["errors"] + together["errors"]
    chat_p90, ready_p99, crowd_errors = await crowd_round(side, args)
    row["crowd_chat_p90_ms"], row["crowd_ready_p99_ms"] = chat_p90, ready_p99
    errors += crowd_errors
    if args.streams:
        spread = args.words / args.tps  # streams start over one reply's time, as `make bench`
        cpu = side.cpu()
        streams = await asyncio.gather(
            *(
                side.reply(i, words=args.words, tps=args.tps, delay=spread * i / args.streams)
                for i in range(args.streams)
            )
        )
        summary = summarise(list(streams))
        row["streams_lag_p99_ms"] = summary["lag_p99_ms"]
        row["cpu_us_per_delta"] = round((side.cpu() - cpu) / max(summary["words"], 1) * 1e6, 1)
        errors += summary["errors"]
    if errors:
        row["errors"] = errors
    return row


async def crowd_round(side: Side, args: argparse.Namespace) -> tuple[float, float, int]:
    """`args.burst` new sockets open (connect and sync) at once while `CHATTERS` open ones each
    send a message: the chatters' time to first delta (p90) and how long the crowd's sockets
    took to be ready (p99), in milliseconds, and how many chatters' replies failed."""
    base = f"127.0.0.1:{side.port}"

    async def opened(client: dict[str, Any]) -> websockets.ClientConnection:
        url = f"ws://{base}/ws/conversations/{client['conversation']}/"
        return await open_idle(url, f"http://{base}", client["cookie"])

    async def arrive(client: dict[str, Any]) -> tuple[websockets.ClientConnection, float]:
        started = time.perf_counter()
        ws = await opened(client)
        return ws, time.perf_counter() - started

    async def chat(index: int, ws: websockets.ClientConnection) -> StreamResult:
        await asyncio.sleep(CHAT_GAP * (index + 1))
        return await reply_on(ws, words=FIRST_DELTA_WORDS, tps=args.tps)

    chatters = [await opened(c) for c in side.clients[args.burst : args.burst + CHATTERS]]
    crowd = asyncio.gather(*(arrive(c) for c in side.clients[: args.burst]))
    chats = await asyncio.gather(*(chat(i, ws) for i, ws in enumerate(chatters)))
    arrived = await crowd
    for ws in [*chatters, *(ws for ws, _ in arrived)]:
        await ws.close()
    await asyncio.sleep(0.2)  # their sockets close
    first = [r.ttfd for r in chats if r.ttfd is not None]
    failed = sum(1 for r in chats if r.error or r.ttfd is None)
    return ms(pct(first, 90)), ms(pct([took for _, took in arrived], 99)), failed


async def compare(sides: list[Side], args: argparse.Namespace) -> None:
    for side in sides:  # warm up: imports, the upstream connections, the caches
        await asyncio.gather(*(side.reply(i, words=20, tps=args.tps) for i in range(10)))
    for number in range(args.rounds):
        for side in sides if number % 2 == 0 else sides[::-1]:
            with collector_paused():
                row = await measure_round(side, args)
            side.rounds.append(row)
            shown = ", ".join(f"{key} {value}" for key, value in row.items())
            print(f"round {number + 1} {side.name}: {shown}", flush=True)


def report(base: Side, head: Side, rev: str) -> None:
    print(f"\nmedians over {len(head.rounds)} rounds ({rev} → this checkout)")
    for key, label in MEASURES:
        before = [row[key] for row in base.rounds if key in row]
        after = [row[key] for row in head.rounds if key in row]
        if not before or not after:
            continue
        lower = sum(1 for b, a in zip(before, after, strict=True) if a < b)
        print(
            f"  {label}: {statistics.median(before):.2f} → {statistics.median(after):.2f}"
            f" (lower in {lower} of {len(after)} rounds)"
        )


def start_side(
    side: Side,
    work: Path,
    fake_port: int,
    count: int,
    *,
    wrapper: Sequence[str] = (),
    wait: float = 30.0,
) -> None:
    """Migrate and fill the side's own database, then start its server (run under `wrapper`,
    a command line that the server's own is appended to, when one is given)."""
    side.data = work
    env = procs.server_env(work, fake_port)
    env["DATABASE_URL"] = f"sqlite:///{work}/bench.sqlite3"  # each its own, whatever the run's
    py = sys.executable
    subprocess.run(
        [py, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=side.root, check=True
    )
    side.clients = run_json("bench.prepare", env, str(count), cwd=side.root)["clients"]
    side.port = procs.free_port()
    daphne = [py, "-m", "companion.serve", "-b", "127.0.0.1", "-p", str(side.port)]
    side.server = procs.start(
        f"daphne-{side.name}",
        [*wrapper, *daphne, "companion.asgi:application"],
        env,
        core=SERVER_CORE,
        port=side.port,
        logs=work,
        cwd=side.root,
        wait=wait,
    )


@contextlib.contextmanager
def two_servers(
    rev: str,
    tps: float,
    count: int,
    *,
    wrapper: Callable[[Path], Sequence[str]] = lambda data: (),
    wait: float = 30.0,
) -> Iterator[tuple[Side, Side]]:
    """REV's server and this checkout's, each with its own database of `count` signed-in
    clients, against one fake upstream streaming `tps` tokens a second; the caller is pinned
    to the load's core. `wrapper` gives the command line each server runs under, from its side's
    own directory. Stopped and removed afterwards (the logs are kept if the caller failed)."""
    work = Path(tempfile.mkdtemp(prefix="companion-ab-"))
    base = Side("base", work / "base")
    head = Side("checkout", procs.ROOT)
    sides = [base, head]
    fake: procs.Proc | None = None
    finished = False
    try:
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(base.root), rev],
            cwd=procs.ROOT,
            check=True,
        )
        # The settings read `.env` where it exists (it is not committed): both servers alike.
        if (procs.ROOT / ".env").exists():
            shutil.copy(procs.ROOT / ".env", base.root / ".env")
        fake_port = procs.free_port()
        upstream = ["bench.fake_upstream", "--port", str(fake_port), "--tokens-per-second"]
        fake = procs.start(
            "fake_m2her",
            [sys.executable, "-m", *upstream, str(tps)],
            procs.server_env(work, fake_port),
            core=LOAD_CORE,
            port=fake_port,
            logs=work,
        )
        for side in sides:
            data = work / f"data-{side.name}"
            data.mkdir()
            start_side(side, data, fake_port, count, wrapper=wrapper(data), wait=wait)
        procs.pin_self(LOAD_CORE)
        yield base, head
        finished = True
    finally:
        for side in sides:
            if side.server is not None:
                side.server.stop()
        if fake is not None:
            fake.stop()
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(base.root)], cwd=procs.ROOT, check=False
        )
        if finished:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"the servers' logs are in {work}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the revision to compare this checkout with, e.g. HEAD~1")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    args = parser.parse_args()
    count = max(args.burst + CHATTERS, args.streams, 10)
    with two_servers(args.rev, args.tps, count) as (base, head):
        uvloop.run(compare([base, head], args))
        report(base, head, args.rev)


if __name__ == "__main__":
    main()
