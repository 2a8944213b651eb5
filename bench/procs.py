"""Start, pin, watch and stop the processes of a benchmark run."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.popen.poll() is None:
            # SIGINT first: daphne shuts down cleanly and py-spy writes its profile.
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)


def server_env(work: Path, fake_port: int) -> dict[str, str]:
    """The environment of a benchmarked server (and of its set-up commands): its own SQLite
    database and media under `work`, the fake upstream on `fake_port`, no rate limits."""
    return {
        **os.environ,
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{work}/bench.sqlite3"),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LLM_BACKEND": "m2her",
        "M2HER_API_KEY": "bench",
        "M2HER_BASE_URL": f"http://127.0.0.1:{fake_port}",
        "CHAT_MESSAGES_PER_MINUTE": "1000000",
        "CHAT_CONCURRENT_REPLIES_PER_USER": "1000",
        "LOG_LEVEL": "WARNING",
        "MEDIA_ROOT": str(work / "media"),
    }


def start(
    name: str,
    args: list[str],
    env: dict[str, str],
    *,
    core: int,
    port: int,
    logs: Path,
    cwd: Path = ROOT,
    wait: float = 30.0,
) -> Proc:
    """Run `args` pinned to one core, in its own process group, and wait (up to `wait`
    seconds) for its port."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            ["taskset", "-c", str(core), *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Proc(name, popen, log)
    try:
        wait_for_port(port, wait)
    except RuntimeError:
        proc.stop()
        sys.stderr.write(log.read_text()[-4000:])
        raise
    return proc


def pin_self(core: int) -> None:
    os.sched_setaffinity(0, {core})
