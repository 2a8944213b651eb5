"""`python -m companion.serve` runs daphne's Twisted reactor on uvloop's event loop, with TCP
connections that write at once, websockets whose settings are shared and applications that
receive through `ApplicationQueue`."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, daphne_env, start_daphne, stop_process

CHECK = """
import asyncio
from companion.serve import install
install()
import daphne.cli
import daphne.server
import uvloop
from twisted.internet import reactor, tcp
from companion.tcp import PromptWriteServer
from companion.wsfactory import WebSocketFactory
from companion.appqueue import Server
assert isinstance(daphne.server.twisted_loop, uvloop.Loop), type(daphne.server.twisted_loop)
assert daphne.server.WebSocketFactory is WebSocketFactory
assert daphne.cli.CommandLineInterface.server_class is Server
assert reactor._asyncioEventloop is daphne.server.twisted_loop
assert tcp.Port.transport is PromptWriteServer, tcp.Port.transport
print("ok")
"""


def test_daphne_runs_on_uvloop_with_prompt_writes_shared_settings_and_light_queues():
    # A fresh interpreter: daphne makes its loop once, when `daphne.server` is first imported.
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


FROZEN = """
import gc
import companion.asgi
frozen = gc.get_freeze_count()
live = {id(o) for o in gc.get_objects()}
assert frozen > 10_000, frozen
assert id(companion.asgi.application) not in live
assert gc.get_threshold()[0] >= 10_000, gc.get_threshold()
print("ok")
"""


def test_what_the_app_loads_is_kept_out_of_the_collectors_passes_and_passes_are_rarer():
    # gc.get_objects() lists only what the collector still walks; the app was frozen out of it.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "companion.settings"}
    done = subprocess.run(
        [sys.executable, "-c", FROZEN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _policies(pid: int) -> list[int]:
    return [os.sched_getscheduler(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux's per-thread policies")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("setting", "policy"),
    [("true", getattr(os, "SCHED_BATCH", -1)), ("false", getattr(os, "SCHED_OTHER", -1))],
)
def test_the_servers_threads_run_under_the_policy_its_setting_asks_for(setting, policy):
    # No model is reached: the page asked for is served by Django alone.
    server = start_daphne(daphne_env("http://127.0.0.1:9", SERVER_SCHED_BATCH=setting))
    try:
        # The view runs on a thread the server starts only now, once its reactor runs.
        response = httpx.get(f"{server.url}/accounts/login/", timeout=30)
        assert response.status_code == 200
        policies = _policies(server.proc.pid)
        assert len(policies) > 1
        assert set(policies) == {policy}
    finally:
        stop_process(server)
