"""The websocket consumer: a thin adapter between frames and `actions` / `streaming`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from companion import dbthread, wsframes
from conversations import actions, fanout, streaming
from conversations.admission import conversation_id_for_socket
from conversations.exceptions import SocketRefused
from conversations.models import Conversation
from conversations.protocol import ProtocolError, Sync, parse_client_message
from conversations.services.replies import ChatActionError
from conversations.signout import (
    CLOSE_NOT_FOUND,
    CLOSE_SIGNED_OUT,
    CloseMessage,
    closes,
    socket_session_id,
    user_group,
)
from conversations.sync import SyncState, sync_state

SNAPSHOT_TIMEOUT = 2.0

log = logging.getLogger(__name__)


class ConversationConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    conversation_id: UUID
    user_id: int
    # Highest seq sent to this client: from connecting it gets every new event; a `sync` then
    # moves this to the state it answers with.
    sent_seq = 0
    # While a sync is being answered, events wait here and follow the `sync.state` in order.
    syncing = False
    pending_sync: SyncState | None = None
    buffered: list[tuple[int, str]]
    snapshot_timer: asyncio.Task[None] | None = None
    # The user's group, which hears when the session signs out, the password changes, the
    # account is deactivated or the conversation deleted; and which session this socket is of.
    revocation_group: str | None = None
    session_id: str | None = None
    # Events are written straight to daphne's connection where it can (`companion.wsframes`).
    write_texts: wsframes.TextWriter | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Here rather than in `disconnect`, which is skipped when the consumer dies of an
            # error or is cancelled: the socket must leave the subscribers either way.
            if hasattr(self, "conversation_id"):
                await fanout.unsubscribe(self.conversation_id, self)
            if self.revocation_group is not None:
                await self.channel_layer.group_discard(self.revocation_group, self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' own, less its check for stale database connections before every message:
        that check is a step on the one database thread (queued behind every reply's start) per
        frame, and here it checks nothing more than each database step already does. This
        consumer reaches the database only through `dbthread.run`, which runs the same check
        around every step."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Channels' own, less the same check for stale database connections (a step on the
        database thread, through asgiref, for every socket that closes), for the same reason."""
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self._set_up()
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        session = self.scope.get("session")
        self.session_id = socket_session_id(session)
        # Joined before the user's standing is read again: a close sent from now on reaches this
        # socket, and what one sent since the handshake said is found by the read below.
        self.revocation_group = user_group(user.pk)
        await self.channel_layer.group_add(self.revocation_group, self.channel_name)
        try:
            self.conversation_id = await dbthread.run(
                conversation_id_for_socket,
                conversation_id=self.scope["url_route"]["kwargs"]["conversation_id"],
                user_id=user.pk,
                session_key=getattr(session, "session_key", None),
            )
        except SocketRefused as refused:
            self._set_up()
            await self.close(code=refused.code)
            return
        self.user_id = user.pk
        self.buffered = []
        self.write_texts = wsframes.text_writer(self.base_send)
        await fanout.subscribe(self.conversation_id, self)
        # Until its first `sync` comes, the slot serves other sockets.
        setup = self.scope.get("setup")
        if setup is not None:
            setup.pause()

    def _set_up(self) -> None:
        """This socket is set up (or refused): its slot of the turnstile goes to the next."""
        setup = self.scope.get("setup")
        if setup is not None:
            setup.done()

    async def sockets_close(self, message: CloseMessage) -> None:
        """Closed as a new socket would be refused now: signed out (in another tab, say, or by a
        password change elsewhere), deactivated, or its conversation deleted."""
        if not hasattr(self, "conversation_id"):
            return  # refused when it connected, and closing already
        if closes(message, session_id=self.session_id, conversation_hex=self.conversation_id.hex):
            await self.close(code=message["code"])

    async def disconnect(self, code: int) -> None:
        # Leaving the conversation's subscribers happens in `__call__`, however the socket ends.
        if self.snapshot_timer is not None:
            self.snapshot_timer.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "conversation_id"):
            return
        try:
            message = parse_client_message(text_data)
            if isinstance(message, Sync):
                await self._begin_sync(message.after_seq)
            else:
                self._set_up()  # a client that does not sync first
                # What a user does in an open conversation goes before other sockets' setting up.
                with dbthread.urgent():
                    await actions.perform(
                        message=message, user_id=self.user_id, conversation_id=self.conversation_id
                    )
        except (ProtocolError, ChatActionError) as exc:
            await self.send_json({"type": "error", "code": exc.code, "message": exc.message})
        except Conversation.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)  # deleted while this socket was open
        except Exception:
            # The socket stays usable, and the client is told; the log has the details.
            log.exception("a frame on conversation %s failed", self.conversation_id)
            await self.send_json(
                {
                    "type": "error",
                    "code": "server_error",
                    "message": "Something went wrong on the server. Try again.",
                }
            )

    async def deliver(self, frames: Sequence[tuple[int, str]]) -> None:
        """Events for this conversation (called by `fanout`, from the task that made them)."""
        if self.syncing:
            self.buffered.extend(frames)
        else:
            await self._send_events(frames)

    async def _send_events(self, frames: Sequence[tuple[int, str]]) -> None:
        """The events this client has not been sent yet, in one write where it can."""
        texts = []
        for seq, text in frames:
            if seq > self.sent_seq:
                self.sent_seq = seq
                texts.append(text)
        if texts and (self.write_texts is None or not self.write_texts(texts)):
            for text in texts:
                await self.send(text_data=text)

    async def _begin_sync(self, after_seq: int) -> None:
        if self.pending_sync is not None:
            # An earlier sync still waits for its snapshot: every sync gets an answer, so that
            # one is answered now with what it read (this one asks for the snapshot afresh).
            await self._finish_sync(self.pending_sync, None)
        setup = self.scope.get("setup")
        if setup is not None:
            await setup.resume()  # only a socket's first sync waits: a later one goes on
        self.syncing = True
        try:
            state = await dbthread.run(
                sync_state, conversation_id=self.conversation_id, after_seq=after_seq
            )
        except BaseException:
            self.syncing = False
            raise
        finally:
            self._set_up()
        if state.streaming_turn_id is None:
            await self._finish_sync(state, None)
            return
        # The text generated so far lives with the runner (maybe in another process): ask it.
        self.pending_sync = state
        try:
            coming = await streaming.request_snapshot(self.conversation_id, self.channel_name)
        except Exception:
            # The layer is unreachable: answered from the database, not left waiting for good.
            log.exception("could not ask for a snapshot on %s", self.conversation_id)
            coming = False
        if not coming:
            await self._finish_sync(state, None)
            return
        self.snapshot_timer = asyncio.create_task(self._snapshot_timeout())

    async def _snapshot_timeout(self) -> None:
        await asyncio.sleep(SNAPSHOT_TIMEOUT)
        await self.channel_layer.send(self.channel_name, {"type": "reply.snapshot.missing"})

    async def reply_snapshot(self, message: dict[str, Any]) -> None:
        # One asked for by a sync answered since is older than what this socket has been sent:
        # the pending sync waits for its own.
        if self.pending_sync is not None and message["seq"] >= self.sent_seq:
            await self._finish_sync(self.pending_sync, message)

    async def reply_snapshot_missing(self, message: dict[str, Any]) -> None:
        if self.pending_sync is not None:
            await self._finish_sync(self.pending_sync, None)

    async def _finish_sync(self, state: SyncState, snapshot: dict[str, Any] | None) -> None:
        if self.snapshot_timer is not None:
            self.snapshot_timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.snapshot_timer
            self.snapshot_timer = None
        streaming_state = None
        seq = state.seq
        if snapshot is not None:
            seq = max(seq, snapshot["seq"])
            streaming_state = {
                "turn_id": snapshot["turn_id"],
                "name": snapshot["name"],
                "content": snapshot["content"],
            }
        elif state.streaming_turn_id is not None:
            streaming_state = {
                "turn_id": state.streaming_turn_id,
                "name": state.streaming_name,
                "content": state.streaming_content,
            }
        self.pending_sync = None
        self.sent_seq = seq
        await self.send_json(
            {
                "type": "sync.state",
                "seq": seq,
                "turns": state.turns,
                "complete": state.complete,
                "streaming": streaming_state,
            }
        )
        # Still syncing: events arriving while these are sent join the queue behind them.
        while self.buffered:
            frames, self.buffered = self.buffered, []
            await self._send_events(frames)
        self.syncing = False
