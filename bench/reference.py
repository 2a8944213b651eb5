"""A fixed pure-Python workload, timed on one core: the benchmark's figures compare across
machines only through it (the same code has measured twice as slow on one machine of this kind
as on another).

The work is of the kind the server does per frame: JSON in and out, dicts, small calls.
`python -m bench.reference CORE` prints {"reference_ms": best of five}.
"""

from __future__ import annotations

import json
import os
import sys
import time

EVENT = {"type": "reply.delta", "seq": 1234, "turn_id": 98765, "text": "word " * 3}


def workload() -> int:
    total = 0
    for seq in range(20_000):
        event = dict(EVENT, seq=seq)
        total += len(json.loads(json.dumps(event))["text"])
        total += sum(range(40))
    return total


def main() -> None:
    if len(sys.argv) > 1:
        os.sched_setaffinity(0, {int(sys.argv[1])})
    times = []
    for _ in range(5):
        started = time.perf_counter()
        workload()
        times.append(time.perf_counter() - started)
    print(json.dumps({"reference_ms": round(min(times) * 1000, 1)}))


if __name__ == "__main__":
    main()
