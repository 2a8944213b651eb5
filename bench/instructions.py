"""`python -m bench.instructions REV`: the instructions the server executes per reply and per
delta, this checkout's against revision REV's, counted by valgrind's callgrind.

On a shared virtual machine a server's CPU time moves by a tenth from one run of the same code
to the next, so `make bench-ab` shows only changes of several percent. An instruction count does
not move with the machine: callgrind counts what each thread of the server executes (not the
kernel's work on its behalf). From round to round the same code's count moves by 1–2 % on the
event loop's thread and up to 4 % on the database thread, and both servers' move together. Both
servers run under callgrind (about twenty times slower), pinned to the server's core, against
one fake upstream, as in `bench.ab`. In each round, for each server in turn: its counts are
zeroed, it answers `--replies` short replies one after another, each on a new socket (the
benchmark's single stream), and its counts are dumped; then the same for `--long` replies of
`--words` words. Reported per round and as medians: instructions per short reply on the event
loop's thread and on the others (the database thread), and per delta on the event loop's thread
(the long replies' extra words). REV is checked out into a temporary worktree and run with this
checkout's virtualenv.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.ab import Side, two_servers
from bench.clients import collector_paused

SHORT_WORDS = 2
OUT_FILE = "callgrind.out"
# Under callgrind a server starts in tens of seconds rather than in one or two.
STARTUP_SECONDS = 600.0


def callgrind(data: Path) -> list[str]:
    """The command line a server runs under: counting per thread, dumping into `data`."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        "--dump-instr=no",
        f"--callgrind-out-file={data / OUT_FILE}",
    ]


def instructions(dump: str) -> int:
    """The instruction count of one thread's callgrind dump: its `summary:` line, the total
    `callgrind_annotate` shows (a `totals:` line, where there is one, can differ; it is read only
    when a dump has no summary)."""
    lines = dump.splitlines()
    for key in ("summary:", "totals:"):
        for line in lines:
            if line.startswith(key):
                return int(line[len(key) :].split()[0])
    raise ValueError("no summary line in the callgrind dump")


def dumped(data: Path, number: int) -> tuple[int, int]:
    """Instructions of the server's main thread (the event loop's) and of all its other threads
    in its `number`th dump."""
    loop, others = 0, 0
    for path in sorted(data.glob(f"{OUT_FILE}.{number}-*")):
        count = instructions(path.read_text())
        if path.name.endswith("-01"):
            loop += count
        else:
            others += count
    if not loop:
        raise RuntimeError(f"callgrind wrote no dump {number} in {data}")
    return loop, others


@dataclass
class Counted:
    side: Side
    dumps: int = 0

    def control(self, *args: str) -> None:
        assert self.side.server is not None
        subprocess.run(
            ["callgrind_control", *args, str(self.side.server.pid)],
            check=True,
            capture_output=True,
        )

    async def replies(self, count: int, words: int, tps: float) -> tuple[int, int]:
        """Instructions on the loop's thread and the others while answering `count` replies of
        `words` words one after another, each on a new socket."""
        self.control("--zero")
        for index in range(count):
            result = await self.side.reply(index % len(self.side.clients), words=words, tps=tps)
            if result.error:
                raise RuntimeError(f"{self.side.name}: {result.error}")
        self.control("--dump")
        self.dumps += 1
        assert self.side.data is not None
        return dumped(self.side.data, self.dumps)


async def measure(
    sides: list[Counted], args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    rounds: dict[str, list[dict[str, float]]] = {counted.side.name: [] for counted in sides}
    for counted in sides:  # warm up: imports, the upstream connection, the caches
        for index in range(10):
            await counted.side.reply(index, words=20, tps=args.tps)
    for number in range(args.rounds):
        for counted in sides if number % 2 == 0 else sides[::-1]:
            with collector_paused():
                loop, others = await counted.replies(args.replies, SHORT_WORDS, args.tps)
                long_loop, _ = await counted.replies(args.long, args.words, args.tps)
            per_reply = loop / args.replies
            row = {
                "loop_per_reply": per_reply,
                "others_per_reply": others / args.replies,
                "loop_per_delta": (long_loop / args.long - per_reply) / (args.words - SHORT_WORDS),
            }
            rounds[counted.side.name].append(row)
            shown = ", ".join(f"{key} {value:,.0f}" for key, value in row.items())
            print(f"round {number + 1} {counted.side.name}: {shown}", flush=True)
    return rounds


def report(rounds: dict[str, list[dict[str, float]]], rev: str) -> None:
    base, head = rounds["base"], rounds["checkout"]
    print(f"\ninstructions, medians over {len(head)} rounds ({rev} → this checkout)")
    for key, label in (
        ("loop_per_reply", "per short reply, event loop's thread"),
        ("others_per_reply", "per short reply, other threads (the database thread)"),
        ("loop_per_delta", "per delta, event loop's thread"),
    ):
        before = statistics.median(row[key] for row in base)
        after = statistics.median(row[key] for row in head)
        print(f"  {label}: {before:,.0f} → {after:,.0f} ({(after / before - 1) * 100:+.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the revision to compare this checkout with, e.g. HEAD~1")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--replies", type=int, default=30)
    parser.add_argument("--long", type=int, default=5)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50.0)
    args = parser.parse_args()
    count = max(args.replies, args.long, 10)
    with two_servers(args.rev, args.tps, count, wrapper=callgrind, wait=STARTUP_SECONDS) as (
        base,
        head,
    ):
        sides = [Counted(base), Counted(head)]
        rounds = uvloop.run(measure(sides, args))
        report(rounds, args.rev)


if __name__ == "__main__":
    main()
