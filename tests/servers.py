"""Real servers for tests: daphne (or the fake M2-her) in a subprocess on a loopback port,
reading the pytest-django test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
# daphne as `make run` starts it (on uvloop); append its arguments.
DAPHNE = [sys.executable, "-m", "companion.serve"]
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_offset: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_since_mark(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def mark(self) -> None:
        self.log_offset = self.log_path.stat().st_size


def start_process(name: str, args: list[str], env: dict[str, str], port: int) -> ServerProcess:
    # The servers keep Django's guard against sync ORM calls from async code.
    env = {k: v for k, v in env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    log_path = Path(tempfile.mkstemp(prefix=f"companion-{name}-", suffix=".log")[1])
    log = log_path.open("wb")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    server = ServerProcess(name=name, proc=proc, port=port, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_since_mark()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    stop_process(server)
    raise RuntimeError(f"{name} did not listen on {port}:\n{server.log_since_mark()}")


def stop_process(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        try:
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    server.log_path.unlink(missing_ok=True)


def database_url() -> str:
    """The test database, as a URL the server subprocess can open."""
    from django.conf import settings
    from django.db import connections

    db = settings.DATABASES["default"]
    vendor = connections["default"].vendor
    if vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if vendor == "postgresql":
        user = quote(str(db.get("USER") or ""), safe="")
        password = quote(str(db.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(str(db['NAME']), safe='')}"
    raise RuntimeError(f"browser tests do not support {db['ENGINE']}")


def daphne_env(model_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test daphne: the test database, the fake model at `model_url`."""
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_DEBUG": "true",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LLM_BACKEND": "m2her",
        "M2HER_API_KEY": "test-key",
        "M2HER_BASE_URL": model_url,
        **extra,
    }


def start_daphne(env: dict[str, str], name: str = "daphne") -> ServerProcess:
    port = free_port()
    args = [*DAPHNE, "-b", "127.0.0.1", "-p", str(port), "companion.asgi:application"]
    return start_process(name, args, env, port)
