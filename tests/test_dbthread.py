"""The consumers' database thread: urgent steps first, ordinary ones in order and never starved,
all on one thread; and `run`, the consumers' way to it."""

import asyncio
import contextvars
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from channels.db import database_sync_to_async
from django.db import connection

from companion import dbthread
from companion.dbthread import URGENT_RUN, PriorityExecutor

# `run` looks at the thread's database connection before and after each step, as Channels does.
reaches_the_database = pytest.mark.django_db(transaction=True)


@pytest.fixture
def executor():
    executor = PriorityExecutor()
    yield executor
    executor.shutdown(cancel_futures=True)


def hold(executor):
    """Occupy the executor's thread until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def blocker():
        started.set()
        release.wait(10)

    future = executor.submit(blocker)
    assert started.wait(5)
    return release, future


def test_urgent_steps_run_before_ordinary_ones_queued_earlier(executor):
    order: list[str] = []
    release, _ = hold(executor)
    futures = [executor.submit(order.append, f"ordinary {i}") for i in range(2)]
    with dbthread.urgent():
        futures += [executor.submit(order.append, f"urgent {i}") for i in range(2)]
    futures.append(executor.submit(order.append, "ordinary 2"))
    assert executor.queued() == (2, 3)
    release.set()
    for future in futures:
        future.result(5)
    assert order == ["urgent 0", "urgent 1", "ordinary 0", "ordinary 1", "ordinary 2"]


def test_ordinary_steps_still_run_while_urgent_ones_keep_coming(executor):
    order: list[str] = []
    release, _ = hold(executor)
    futures = [executor.submit(order.append, f"o{i}") for i in range(2)]
    with dbthread.urgent():
        futures += [executor.submit(order.append, f"u{i}") for i in range(2 * URGENT_RUN + 2)]
    release.set()
    for future in futures:
        future.result(5)
    urgent = [f"u{i}" for i in range(2 * URGENT_RUN + 2)]
    run = URGENT_RUN
    assert order == [*urgent[:run], "o0", *urgent[run : 2 * run], "o1", *urgent[2 * run :]]


def test_every_step_runs_on_one_thread_and_errors_reach_their_caller(executor):
    def fail():
        raise ValueError("broken step")

    idents = [executor.submit(threading.get_ident)]
    broken = executor.submit(fail)
    with dbthread.urgent():
        idents.append(executor.submit(threading.get_ident))
    idents.append(executor.submit(threading.get_ident))
    with pytest.raises(ValueError, match="broken step"):
        broken.result(5)
    assert len({future.result(5) for future in idents}) == 1
    assert threading.get_ident() not in {future.result(5) for future in idents}


def test_a_cancelled_step_is_skipped_and_shutdown_refuses_new_ones(executor):
    order: list[str] = []
    release, _ = hold(executor)
    skipped = executor.submit(order.append, "cancelled")
    kept = executor.submit(order.append, "kept")
    assert skipped.cancel()
    release.set()
    kept.result(5)
    assert order == ["kept"]
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(order.append, "late")


def test_a_task_started_by_an_urgent_action_is_ordinary_in_its_own_context(executor):
    with dbthread.urgent():
        inherited = asyncio.run(_submit_later(executor, None))
        own = asyncio.run(_submit_later(executor, dbthread.ordinary_context()))
    assert inherited == (1, 0)
    assert own == (0, 1)


async def _submit_later(executor, context):
    release, blocked = hold(executor)
    try:
        task = asyncio.create_task(_submit(executor), context=context)
        await task
        return executor.queued()
    finally:
        release.set()
        blocked.result(5)


async def _submit(executor):
    executor.submit(int)


async def test_channels_steps_run_on_it_and_urgent_ones_go_first():
    """Installed when Django starts: asgiref's thread-sensitive steps outside a request (every
    database step of a consumer) queue on it."""
    executor = SyncToAsync.single_thread_executor
    assert isinstance(executor, PriorityExecutor)
    order: list[str] = []
    release, blocked = hold(executor)
    ordinary = asyncio.ensure_future(sync_to_async(order.append)("ordinary"))
    with dbthread.urgent():
        urgent = asyncio.ensure_future(sync_to_async(order.append)("urgent"))
    async with asyncio.timeout(5):
        while executor.queued()[0] < 1 or executor.queued()[1] < 1:
            await asyncio.sleep(0.001)
    release.set()
    blocked.result(5)
    await asyncio.gather(ordinary, urgent)
    assert order == ["urgent", "ordinary"]


def test_steps_already_asked_for_finish_before_the_process_exits(tmp_path):
    done = tmp_path / "done"
    script = (
        "import pathlib, time\n"
        "from asgiref.sync import SyncToAsync\n"
        "from companion import dbthread\n"
        "dbthread.install()\n"
        "def slow():\n"
        "    time.sleep(0.3)\n"
        f"    pathlib.Path({str(done)!r}).write_text('stored')\n"
        "SyncToAsync.single_thread_executor.submit(int)\n"
        "SyncToAsync.single_thread_executor.submit(slow)\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=30)
    assert done.read_text() == "stored"


@reaches_the_database
async def test_run_takes_a_step_where_channels_would_and_in_the_same_order():
    executor = SyncToAsync.single_thread_executor
    assert isinstance(executor, PriorityExecutor)
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    marker.set("the caller's")
    order: list[str] = []

    def step(name: str, *, suffix: str) -> tuple[int, str]:
        order.append(name + suffix)
        return threading.get_ident(), marker.get()

    release, blocked = hold(executor)
    ordinary = asyncio.ensure_future(dbthread.run(step, "ordinary", suffix="!"))
    with dbthread.urgent():
        urgent = asyncio.ensure_future(dbthread.run(step, "urgent", suffix="!"))
    async with asyncio.timeout(5):
        while executor.queued() != (1, 1):
            await asyncio.sleep(0.001)
    release.set()
    blocked.result(5)
    (ident, seen), (urgent_ident, _) = await asyncio.gather(ordinary, urgent)
    channels_ident = await database_sync_to_async(threading.get_ident)()

    assert order == ["urgent!", "ordinary!"]
    assert ident == urgent_ident == channels_ident != threading.get_ident()
    assert seen == "the caller's"


@reaches_the_database
async def test_run_raises_the_steps_error_to_its_caller():
    def fail(text: str) -> None:
        raise ValueError(text)

    with pytest.raises(ValueError, match="broken step"):
        await dbthread.run(fail, "broken step")


@reaches_the_database
async def test_a_cancelled_caller_stops_waiting_at_once_and_a_queued_step_never_runs():
    executor = SyncToAsync.single_thread_executor
    assert isinstance(executor, PriorityExecutor)
    ran: list[str] = []
    release, blocked = hold(executor)
    queued = asyncio.ensure_future(dbthread.run(ran.append, "queued"))
    async with asyncio.timeout(5):
        while executor.queued() != (0, 1):
            await asyncio.sleep(0.001)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    blocked.result(5)
    await dbthread.run(ran.append, "next")
    assert ran == ["next"]


@reaches_the_database
async def test_a_step_already_running_finishes_when_its_caller_is_cancelled():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(5)
        finished.set()

    running = asyncio.ensure_future(dbthread.run(slow))
    async with asyncio.timeout(5):
        while not started.is_set():
            await asyncio.sleep(0.001)
    running.cancel()
    async with asyncio.timeout(1):  # not held up by the step
        with pytest.raises(asyncio.CancelledError):
            await running
    assert not finished.is_set()
    release.set()
    await dbthread.run(int)  # the thread is free again once the step is over
    assert finished.is_set()


@reaches_the_database
async def test_inside_a_thread_sensitive_context_run_goes_where_asgiref_goes():
    async with ThreadSensitiveContext():
        channels_ident = await database_sync_to_async(threading.get_ident)()
        ident = await dbthread.run(threading.get_ident)
    database_thread = await dbthread.run(threading.get_ident)
    assert ident == channels_ident != database_thread


@reaches_the_database
async def test_stale_connections_are_looked_at_around_every_step():
    # Django clears this flag on every look at a connection's health (`close_old_connections`);
    # django-stubs do not declare it.
    def use_and_mark() -> None:
        connection.ensure_connection()
        connection.health_check_done = True  # type: ignore[attr-defined]

    def marked() -> bool:
        return bool(connection.health_check_done)  # type: ignore[attr-defined]

    await dbthread.run(use_and_mark)
    assert not await dbthread.run(marked)
