"""The one async orchestration of a reply: placeholder -> prompt -> stream -> coalesced deltas
-> completed / stopped / failed, each outcome persisted once.

A reply runs in a task owned by this module, not by the socket that asked for it, so it keeps
going when that socket closes. Events reach every tab (in any process) through `fanout`. Stop
and snapshot requests reach a runner of this process directly, and, when the channel layer is
shared between processes (Redis), runners of other processes through a control group.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any
from uuid import UUID

from channels.layers import get_channel_layer
from django.conf import settings

from companion import dbthread
from conversations.fanout import publish, reaches_other_processes
from conversations.llm.base import ChatBackend, Completion, GenerationParams, TextDelta
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.factory import reply_cost
from conversations.llm.pacing import Pace, paced
from conversations.models import TurnStatus
from conversations.prompts import build_prompt, reply_limit
from conversations.services.replies import ReplyStart, reply_finish, reply_keep_alive
from conversations.text import storable
from conversations.tokens import default_estimator
from conversations.wire import event

log = logging.getLogger(__name__)
PROMPT_TOO_LONG = (
    "The character's card, your persona, the scene and your message together leave no room for "
    "a reply in the model's context window."
)

_runners: dict[UUID, ReplyRunner] = {}
# Set once the server has begun to stop: a reply asked for from then on is not started (the
# process would end with it "streaming"), it is stored as interrupted at once.
_closing = False
RESTARTING = "The server is restarting. Try again in a moment."


def control_group(conversation_id: UUID) -> str:
    return f"reply.{conversation_id.hex}"


async def request_stop(conversation_id: UUID) -> None:
    # A reply run by this process is stopped here, directly. With a layer shared between
    # processes the control group hears it too, in case that runner is an ending one and the
    # conversation's new reply runs in another process.
    runner = _runners.get(conversation_id)
    if runner is not None:
        runner.stop()
    layer = get_channel_layer()
    if not reaches_other_processes(layer):
        return
    try:
        await layer.group_send(control_group(conversation_id), {"type": "reply.stop"})
    except Exception:
        if runner is None:
            raise  # nobody was told: the client hears that it failed
        log.exception("could not pass a stop on %s to other processes", conversation_id)


async def request_snapshot(conversation_id: UUID, reply_channel: str) -> bool:
    """Ask the reply's runner for its text so far, sent to `reply_channel`; False when no
    snapshot will come. With an in-process layer that is known at once: no runner of this
    process writes the reply (it has just ended, or its process died), and no other can."""
    layer = get_channel_layer()
    if not reaches_other_processes(layer):
        runner = _runners.get(conversation_id)
        if runner is None:
            return False
        await layer.send(reply_channel, runner.snapshot())
        return True
    await layer.group_send(
        control_group(conversation_id), {"type": "reply.snapshot", "reply_channel": reply_channel}
    )
    return True


def start_reply(start: ReplyStart, backend: ChatBackend) -> ReplyRunner:
    """Run the reply in a task this module keeps a reference to until it ends."""
    runner = ReplyRunner(start, backend)
    _runners[start.conversation_id] = runner
    # Not urgent on the database thread, whatever started it: its end can wait for a moment.
    runner.task = asyncio.create_task(
        runner.run(), name=f"reply-{start.turn_id}", context=dbthread.ordinary_context()
    )

    def forget(_task: asyncio.Task[None]) -> None:
        # Only itself: the conversation's next reply may already have taken its place.
        if _runners.get(start.conversation_id) is runner:
            del _runners[start.conversation_id]

    runner.task.add_done_callback(forget)
    return runner


def running_reply(conversation_id: UUID) -> ReplyRunner | None:
    return _runners.get(conversation_id)


async def interrupt_replies(grace: float) -> None:
    """The server is shutting down: each reply of this process ends `interrupted`, keeping the
    text sent so far. Left running, its turn would stay "streaming" with nobody writing it, and
    its conversation busy until the stale limit. Sockets stay open meanwhile, and a reply asked
    for in the grace period is stored as interrupted too, and waited for."""
    global _closing
    _closing = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    cancelled: set[asyncio.Task[None]] = set()
    while True:
        running = {r.task: r for r in _runners.values() if r.task is not None and not r.task.done()}
        if not running or loop.time() >= deadline:
            return
        for task, runner in running.items():
            if not runner.started:
                # A task cancelled before its first step never runs its code, recording
                # included: told instead, it records itself when it starts.
                runner.closing = True
            elif task not in cancelled and not runner.closing:
                # Once: a second cancel would cut short the recording the first one began.
                task.cancel()
                cancelled.add(task)
        await asyncio.wait(set(running), timeout=deadline - loop.time())


def _joiner(prefix: str, text: str) -> str:
    """A continued reply needs a space where the old text ended mid-sentence without one."""
    if prefix and text and not prefix[-1].isspace() and not text[0].isspace():
        return " " if text[0].isalnum() or text[0] in "*\"“'(" else ""
    return ""


class ReplyRunner:
    """One reply. The task reading the model does the coalescing itself (no hop per delta);
    a flush timer covers pauses in the stream, and the outcome is persisted by `run`."""

    def __init__(self, start: ReplyStart, backend: ChatBackend) -> None:
        self.start = start
        self.backend = backend
        self.task: asyncio.Task[None] | None = None
        self.closing = _closing  # asked for while the server stops: not started
        self.started = False  # whether its task has begun (a cancel before then is lost)
        self.seq = start.next_seq  # the last number used: `reply.started`, in the start's events
        self.sent = start.prefix  # the text clients have been sent
        # The seq of the last event that changed `sent`. A snapshot carries this one, not
        # `self.seq`: once the outcome is stored `self.seq` is the outcome's number, and a tab
        # given the streamed text with that number would drop the outcome's event as old.
        self.sent_seq = self.seq
        self._pending: list[str] = []
        # Made here, so a stop that comes before the model's first delta is not missed.
        self._stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        # Events leave in seq order even when a timer's flush and the reader's overlap.
        self._publishing = asyncio.Lock()
        self._interval = settings.CHAT_FLUSH_INTERVAL_MS / 1000
        # A delta arriving this close before the next flush is due takes the pending text with
        # it, and the timer waits as long after: on a steady stream the reader flushes, not a
        # timer's task per frame, whichever of the two would have woken first.
        self._slack = self._interval / 4
        self._next_flush = 0.0
        self._first_flush = True
        # The model's last word, kept as soon as it is read: tidying the connection afterwards
        # (reading the body's end) must not turn a stop pressed meanwhile into a lost reply.
        self._completion: Completion | None = None

    async def run(self) -> None:
        self.started = True
        if self.closing:
            await self._finish_interrupted(RESTARTING)
            return
        layer = get_channel_layer()
        group = control_group(self.start.conversation_id)
        control: str | None = None
        listener: asyncio.Task[None] | None = None
        keep_alive: asyncio.Task[None] | None = None
        try:
            # Inside the `try`: with a shared layer these are round trips, and a server stopping
            # meanwhile must still find the reply recorded.
            try:
                # An in-process layer reaches no runner but those of `_runners`, which stops and
                # snapshots reach directly: no channel, group and listening task to set up.
                if reaches_other_processes(layer):
                    control = await layer.new_channel("reply.")
                    await layer.group_add(group, control)
                    listener = asyncio.create_task(self._listen(control))
            except Exception:
                # The reply runs all the same: a stop from this process reaches it directly
                # (`request_stop`); only other processes' stops and snapshots miss it.
                log.exception("reply %s: could not join its control group", self.start.turn_id)
                control = None
            keep_alive = asyncio.create_task(self._keep_alive())
            await self._generate()
        except asyncio.CancelledError:
            # Recorded at once (a stopping server gives it seconds, not more); a reply already
            # stored as ended is not changed by this.
            await asyncio.shield(self._finish_interrupted())
            raise
        except Exception:
            # Never leave the turn "streaming" (the conversation would stay busy until stale).
            log.exception("reply %s broke", self.start.turn_id)
            await self._record_failure(
                "upstream_unavailable",
                "Something went wrong while writing this reply.",
                retryable=True,
            )
        finally:
            if listener is not None:
                listener.cancel()
            if keep_alive is not None:
                keep_alive.cancel()
            if control is not None:
                try:
                    await layer.group_discard(group, control)
                except Exception:
                    log.exception("reply %s: could not leave its control group", self.start.turn_id)

    async def _keep_alive(self) -> None:
        """A reply outliving `CHAT_REPLY_STALE_SECONDS` must not be taken for a dead one (the
        next message would fail it and start a second reply): its turn is touched a few times
        per that period. Most replies end before the first touch, with no write."""
        interval = settings.CHAT_REPLY_STALE_SECONDS / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await dbthread.run(reply_keep_alive, turn_id=self.start.turn_id)
            except Exception:
                log.exception("reply %s: could not mark it alive", self.start.turn_id)

    def stop(self) -> None:
        if not self._stop.done():
            self._stop.set_result(None)

    async def _listen(self, control: str) -> None:
        layer = get_channel_layer()
        while True:
            message = await layer.receive(control)
            if message.get("type") == "reply.stop":
                self.stop()
            elif message.get("type") == "reply.snapshot":
                await layer.send(message["reply_channel"], self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The reply's text so far, for a tab that syncs while it is written."""
        return {
            "type": "reply.snapshot",
            "turn_id": self.start.turn_id,
            "name": self.start.speaker,
            "content": self.sent,
            "seq": self.sent_seq,
        }

    async def _publish_next(self, kind: str, **fields: Any) -> None:
        """Number and publish one event of the reply's text; the caller holds `_publishing`."""
        self.seq += 1
        # Before publishing, which may yield to a snapshot request: `sent` already holds it.
        self.sent_seq = self.seq
        await publish(self.start.conversation_id, [event(kind, self.seq, **fields)])

    async def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # `sent` and `seq` change together, under the lock: a snapshot taken while another
        # flush waits to publish must not hold text whose delta it will also receive.
        async with self._publishing:
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
            if self._first_flush:
                self._first_flush = False
                text = _joiner(self.sent, text) + text
            self.sent += text
            self._next_flush = asyncio.get_running_loop().time() + self._interval
            await self._publish_next("reply.delta", turn_id=self.start.turn_id, text=text)

    def _flush_on_timer(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reply %s: a flush failed", self.start.turn_id, exc_info=task.exception())

    async def _read(self, messages: Any, params: GenerationParams) -> Completion:
        """Stream the reply, sending coalesced deltas: the first at once, then about one per
        interval."""
        loop = asyncio.get_running_loop()
        # Text that arrives before the next frame is due waits for it in the stream, which then
        # wakes this task once per frame rather than once per token.
        pace = Pace()
        # Closed here, not by the garbage collector: that frees the HTTP connection (or the local
        # model's worker) at once, and any error in closing is seen.
        with paced(pace):
            async with contextlib.aclosing(self.backend.stream(messages, params)) as stream:
                async for item in stream:
                    if isinstance(item, TextDelta):
                        self._pending.append(storable(item.text))
                        if loop.time() >= self._next_flush - self._slack:
                            await self._flush()
                        elif self._timer is None:
                            self._timer = loop.call_at(
                                self._next_flush + self._slack, self._flush_on_timer
                            )
                        pace.hold_until = self._next_flush - self._slack
                        # Before this task's own timer (`_next_flush + _slack`): text held for it
                        # then joins the frame that timer would send without it.
                        pace.deliver_by = self._next_flush + self._slack / 2
                    elif isinstance(item, Completion):
                        self._completion = item
                        return item
        raise LLMError(ErrorCode.TRUNCATED)

    async def _generate(self) -> None:
        start = self.start
        if start.prompt is None:
            raise ValueError("a reply needs a prompt")
        prompt = build_prompt(start.prompt)
        limit = reply_limit(start.prompt, prompt)
        if not limit:
            # Sent anyway, a strict window refuses it or cuts it short, after retries.
            await self._fail(LLMError(ErrorCode.CONTEXT_TOO_LONG, PROMPT_TOO_LONG, retryable=False))
            return
        params = dataclasses.replace(start.params, max_tokens=limit)
        reader = asyncio.create_task(self._read(list(prompt.messages), params))
        completion: Completion | None = None
        error: LLMError | None = None
        try:
            waiting: set[asyncio.Future[Any]] = {reader, self._stop}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # `run` records the interruption; the model's stream closes meanwhile.
            reader.cancel()
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if reader.done():
            try:
                completion = reader.result()
            except LLMError as exc:
                error = exc
            except Exception:
                log.exception("reply %s failed", start.turn_id)
                error = LLMError(ErrorCode.UPSTREAM_UNAVAILABLE)
        elif self._completion is not None:
            # Stopped while the connection was being tidied: the reply was already whole.
            await _cancel(reader)
            completion = self._completion
        else:  # stopped
            await _cancel(reader)
        # A timer's flush may still be sending; its failure is logged by `_flush_done`.
        await asyncio.gather(*self._flushes, return_exceptions=True)
        await self._flush()
        if completion is not None:
            await self._complete(completion, prompt.estimated_tokens)
        elif error is not None:
            await self._fail(error)
        else:
            await self._stopped()

    async def _complete(self, completion: Completion, estimated_prompt_tokens: int) -> None:
        start = self.start
        # The backend's full text is authoritative; the deltas were its pieces.
        text = storable(completion.text)
        content = start.prefix + _joiner(start.prefix, text) + text
        usage = completion.usage
        total = usage.total
        if usage.prompt_tokens:
            default_estimator.learn(
                estimated_prompt_tokens=estimated_prompt_tokens,
                reported_prompt_tokens=usage.prompt_tokens,
            )
        seq = await dbthread.run(
            reply_finish,
            turn_id=start.turn_id,
            content=content,
            status=TurnStatus.COMPLETE,
            after_seq=self.seq,
            finish_reason=completion.finish_reason,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=total,
            cost_usd=reply_cost(usage),
            model_name=completion.model or self.backend.name,
        )
        if seq is None:
            return  # the conversation was deleted while the reply ran
        self.seq = seq
        await publish(
            start.conversation_id,
            [
                event(
                    "reply.completed",
                    seq,
                    turn_id=start.turn_id,
                    content=content,
                    finish_reason=completion.finish_reason,
                    usage={
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": total,
                    },
                )
            ],
        )

    async def _stopped(self) -> None:
        seq = await dbthread.run(
            reply_finish,
            turn_id=self.start.turn_id,
            content=self.sent,
            status=TurnStatus.STOPPED,
            after_seq=self.seq,
            finish_reason="stopped",
            model_name=self.backend.name,
        )
        if seq is None:
            return  # the conversation was deleted while the reply ran
        self.seq = seq
        await publish(
            self.start.conversation_id,
            [event("reply.stopped", seq, turn_id=self.start.turn_id, content=self.sent)],
        )

    async def _fail(self, error: LLMError) -> None:
        log.warning("reply %s failed: %s %s", self.start.turn_id, error.code, error.detail)
        await self._record_failure(str(error.code), error.message, retryable=error.retryable)

    async def _record_failure(self, code: str, message: str, *, retryable: bool) -> None:
        seq = await dbthread.run(
            reply_finish,
            turn_id=self.start.turn_id,
            content=self.sent,
            status=TurnStatus.FAILED,
            after_seq=self.seq,
            error_code=code,
            error_message=message,
            model_name=self.backend.name,
        )
        if seq is None:
            return  # the conversation was deleted while the reply ran
        self.seq = seq
        payload = {"code": code, "message": message, "retryable": retryable}
        await publish(
            self.start.conversation_id,
            [
                event(
                    "reply.failed",
                    seq,
                    turn_id=self.start.turn_id,
                    content=self.sent,
                    error=payload,
                )
            ],
        )

    async def _finish_interrupted(
        self, message: str = "The server stopped while writing this reply."
    ) -> None:
        self._pending.clear()
        try:
            await self._record_failure("interrupted", message, retryable=True)
        except Exception:
            log.exception("could not record interrupted reply %s", self.start.turn_id)


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel the model stream and give it a moment to close its connection or thread."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=5)
