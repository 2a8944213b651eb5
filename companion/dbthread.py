"""The one thread that websocket consumers reach the database on, serving a user's action in an
open conversation before the setting up of new sockets.

Channels runs every `database_sync_to_async` step of every socket on one thread (asgiref's
`SyncToAsync.single_thread_executor`), first come, first served. When many sockets open at once
(a crowd arriving, or every page reconnecting after a restart), each brings a handshake read, an
ownership check and a `sync`, and a message sent on an already open socket waited behind all of
them before its reply could start. This executor keeps two queues on that one thread: steps
taken inside `urgent()` (the consumer marks the actions of a frame) run first; the rest keep
their order. While both wait, an ordinary step runs after every `URGENT_RUN` urgent ones in a
row, so sockets keep opening and replies keep finishing under any load.

It stays one thread: Django's connections are per thread, and every step of a socket still
runs on the same connection as before.

`run` is how the consumers take a step to that thread: what `database_sync_to_async` does for
them, without asgiref's per-call machinery, which cost about as much as the thread switch itself
(on the benchmark's machine a step took ~150 µs of CPU through it and ~85 µs through `run`, and
a socket takes five steps from its handshake to its reply's end). Nor does it go through
`run_in_executor`: the thread settles the caller's own asyncio future, with no
`concurrent.futures.Future` (a lock and a condition each) chained to it by callbacks on both
threads; a step that does nothing took 42 µs of CPU that way and 31–34 µs this way.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, SyncToAsync
from channels.db import database_sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
T = TypeVar("T")
URGENT_RUN = 4

_urgent: contextvars.ContextVar[bool] = contextvars.ContextVar("database_urgent", default=False)
_Work = tuple["Future[Any] | _LoopFuture", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Database steps started inside this block go before ordinary ones on the thread."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


def ordinary_context() -> contextvars.Context:
    """A copy of the current context in which database steps are ordinary again: for a task
    started by an urgent action that lives on after it (a reply's own end is not urgent)."""
    context = contextvars.copy_context()
    context.run(_urgent.set, False)
    return context


class PriorityExecutor(Executor):
    """One worker thread; urgent work first, each queue in the order it was submitted."""

    def __init__(self, name: str = "database") -> None:
        self._name = name
        self._urgent: deque[_Work] = deque()
        self._ordinary: deque[_Work] = deque()
        # Urgent steps run in a row while ordinary ones wait.
        self._passed = 0
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        self._queue((future, fn, args, kwargs))
        return future

    def _queue(self, work: _Work) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            queue = self._urgent if _urgent.get() else self._ordinary
            queue.append(work)
            if self._thread is None:
                # A daemon, so that an idle worker does not keep the process from exiting;
                # `install` has the work already queued finished at exit.
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()

    def queued(self) -> tuple[int, int]:
        """How many urgent and ordinary steps wait (not counting the one running)."""
        with self._ready:
            return len(self._urgent), len(self._ordinary)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._ready:
            self._closed = True
            if cancel_futures:
                for queue in (self._urgent, self._ordinary):
                    while queue:
                        queue.popleft()[0].cancel()
            self._ready.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _next(self) -> _Work | None:
        if self._urgent and (not self._ordinary or self._passed < URGENT_RUN):
            if self._ordinary:
                self._passed += 1
            return self._urgent.popleft()
        self._passed = 0
        return self._ordinary.popleft() if self._ordinary else None

    def _work(self) -> None:
        while True:
            with self._ready:
                while not (self._urgent or self._ordinary or self._closed):
                    self._ready.wait()
                work = self._next()
            if work is None:
                return  # closed, and nothing is left
            future, fn, args, kwargs = work
            del work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
                del result  # not kept alive until the next step
            del future, fn, args, kwargs


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`await database_sync_to_async(fn)(*args, **kwargs)`, on this module's executor: the
    same thread, a copy of the caller's context, Django's stale connections closed before and
    after. A cancelled caller stops waiting at once, as there; a step already running finishes.
    Where asgiref would pick another thread (a caller inside `async_to_sync`, or inside a
    `ThreadSensitiveContext`), it is asgiref that runs the step."""
    loop = asyncio.get_running_loop()
    executor = SyncToAsync.single_thread_executor
    if (
        not isinstance(executor, PriorityExecutor)
        or getattr(AsyncToSync.executors, "current", None) is not None
        or SyncToAsync.thread_sensitive_context.get(None) is not None
        or loop in AsyncToSync.loop_thread_executors
    ):
        step: T = await database_sync_to_async(fn)(*args, **kwargs)
        return step
    waiter: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()
    executor._queue((_LoopFuture(loop, waiter), _step, (loop, context, fn, args, kwargs), {}))
    return await waiter


class _LoopFuture:
    """What the worker needs of a `concurrent.futures.Future`, settling an asyncio future of
    the caller's loop instead. A caller that was cancelled before its step started has it
    skipped, as `run_in_executor` does; a step already running finishes, its outcome dropped."""

    __slots__ = ("loop", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.waiter = waiter

    def set_running_or_notify_cancel(self) -> bool:
        # Read from the worker thread: at worst a cancel that lands just now lets the step run,
        # the same as one landing a moment later.
        return not self.waiter.cancelled()

    def set_result(self, result: Any) -> None:
        self._settle(_resolve, result)

    def set_exception(self, exc: BaseException) -> None:
        self._settle(_reject, exc)

    def cancel(self) -> None:
        self._settle(_cancel, None)

    def _settle(self, settle: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
        # A closed loop raises: nobody waits for this step any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(settle, self.waiter, value)


def _resolve(waiter: asyncio.Future[Any], result: Any) -> None:
    if not waiter.done():
        waiter.set_result(result)


def _reject(waiter: asyncio.Future[Any], exc: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(exc)


def _cancel(waiter: asyncio.Future[Any], _: None) -> None:
    waiter.cancel()


def _step(
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    # As asgiref's handler leaves them: an `async_to_sync` inside the step runs on this loop.
    local = SyncToAsync.threadlocal
    local.main_event_loop, local.main_event_loop_pid = loop, os.getpid()
    close_old_connections()
    try:
        return context.run(fn, *args, **kwargs)
    finally:
        close_old_connections()


def install() -> None:
    """Make it the thread of asgiref's thread-sensitive steps outside a request's own context:
    the steps of Channels' consumers and middleware. Django's HTTP requests keep their own."""
    if not isinstance(SyncToAsync.single_thread_executor, PriorityExecutor):
        executor = PriorityExecutor()
        # asgiref declares a ThreadPoolExecutor; it only ever hands the executor to
        # `loop.run_in_executor`, which needs no more than `submit`.
        SyncToAsync.single_thread_executor = executor  # type: ignore[assignment]
        # As the standard executors do at exit: the steps already asked for are finished (its
        # daemon thread would otherwise be stopped wherever it was).
        atexit.register(executor.shutdown)
