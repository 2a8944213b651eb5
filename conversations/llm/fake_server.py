"""A fake M2-her API for tests and benchmarks, on plain asyncio with minimal HTTP/1.1.

It serves the three wire styles with deterministic replies and scripted faults
(`fake_replies.FAULTS`), paces deltas at a token rate, keeps connections alive, and records
what it received so tests can assert the wire body:

    async with FakeM2her() as server:        # an ephemeral loopback port
        backend = m2her_backend(base_url=server.base_url, api_key="k")
        ...
        assert server.requests[-1].body["messages"][0]["role"] == "system"
"""

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from conversations.llm.fake_replies import ERROR_FAULTS, Scenario, error_reply, parse_scenario
from conversations.llm.fake_scripts import Step, chat_script, dumps, responses_script, whole_body

STYLES = {
    "/v1/chat/completions": "chat_completions",
    "/v1/text/chatcompletion_v2": "chatcompletion_v2",
    "/v1/responses": "responses",
}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required"}
_REASONS |= {404: "Not Found", 429: "Too Many Requests", 529: "Overloaded"}
_KEPT_FAULT_FREE = ("words", "tps", "end", "done")
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    completed: bool = False
    disconnected: bool = False


class FakeM2her:
    """The server; use it as an async context manager, or `in_thread()` from sync code."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens_per_second: float = 0.0,
        api_key: str = "",
        keep_requests: int = 1000,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tokens_per_second = tokens_per_second
        self.api_key = api_key
        self.ssl = ssl
        self.requests: deque[ReceivedRequest] = deque(maxlen=keep_requests)
        self._attempts: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._ids = 0
        self.connections = 0  # TCP connections accepted (a reused one counts once)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._connection,
            self.host,
            self.port,
            limit=MAX_HEADER_BYTES,
            backlog=1024,
            ssl=self.ssl,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        await self.start()
        if self._server is not None:
            await self._server.serve_forever()

    async def __aenter__(self) -> FakeM2her:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[FakeM2her]:
        """Run a server on its own event loop in a thread (for sync tests and commands)."""
        server = cls(**kwargs)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="fake-m2her", daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                request = await self._read_request(reader, writer)
                if request is None or not await self._respond(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> ReceivedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            await self._send_json(writer, 413, {"error": {"message": "body too large"}})
            return None
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        return ReceivedRequest(method, path.split("?", 1)[0], headers, body)

    async def _respond(
        self, request: ReceivedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        self.requests.append(request)
        self._ids += 1
        style = STYLES.get(request.path)
        body = request.body
        if style is None or request.method != "POST":
            return await self._send_json(writer, 404, {"error": {"message": "not found"}})
        if not isinstance(body, dict):
            error = {"error": {"message": "invalid json (2013)", "type": "bad_request_error"}}
            return await self._send_json(writer, 400, error)
        scenario = self._scenario(request)
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            scenario.faults["auth"] = ""
        if scenario.has("slow_first_byte"):
            await asyncio.sleep(scenario.number("slow_first_byte", 1.0))
        for fault in ERROR_FAULTS:
            if scenario.has(fault):
                status, payload = error_reply(style, fault, scenario)
                extra = {}
                if fault == "rate_limit":
                    extra["Retry-After"] = scenario.faults["rate_limit"] or "1"
                return await self._send_json(writer, status, payload, extra)
        rid = f"{self._ids:032x}" if style != "responses" else f"resp_{self._ids:032x}"
        if scenario.has("error_in_200"):
            code = int(scenario.number("error_in_200", 1000))
            payload = {"id": rid, "base_resp": {"status_code": code, "status_msg": "failed"}}
            return await self._send_json(writer, 200, payload)
        if not body.get("stream") or scenario.has("json_reply"):
            answer = whole_body(style, scenario, body, rid)
            kept = await self._send_json(writer, 200, answer)
            request.completed = True
            return kept
        if style == "responses":
            steps = responses_script(scenario, body, rid)
        else:
            steps = chat_script(style, scenario, body, rid)
        rate = scenario.number("tps", self.tokens_per_second)
        return await self._stream(request, steps, rate, reader, writer)

    def _scenario(self, request: ReceivedRequest) -> Scenario:
        scenario = parse_scenario(request.body, request.headers.get("x-fake-scenario", ""))
        if scenario.has("fail"):
            key = f"{request.path} {scenario.user_text} {sorted(scenario.faults.items())}"
            self._attempts[key] = attempt = self._attempts.get(key, 0) + 1
            if attempt > scenario.number("fail", 1):
                kept = {k: v for k, v in scenario.faults.items() if k in _KEPT_FAULT_FREE}
                scenario = Scenario(faults=kept, user_text=scenario.user_text)
        return scenario

    async def _stream(
        self,
        request: ReceivedRequest,
        steps: Iterator[Step],
        rate: float,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        interval = 1.0 / rate if rate > 0 else 0.0
        loop = asyncio.get_running_loop()
        # Deltas keep to a fixed schedule from the first one, as a model's output does: a late
        # wake-up is caught up rather than pushing every later delta back.
        due: float | None = None
        for kind, payload in steps:
            if kind == "cut":
                writer.transport.abort()
                return False
            if kind == "sleep":
                await asyncio.sleep(payload)
                if due is not None:
                    due = loop.time()
                continue
            if kind == "delta":
                if due is None:
                    due = loop.time()
                elif interval:
                    due += interval
                    await asyncio.sleep(max(due - loop.time(), 0.0))
            if reader.at_eof() or writer.transport.is_closing():
                request.disconnected = True
                return False
            writer.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        request.completed = True
        return True

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
    ) -> bool:
        data = dumps(payload)
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        return True
