"""The HTTP side of the remote backends: one pooled client per event loop, silence deadlines,
and what transport failures mean."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.netbackend import asyncio_transport

# Idle connections kept for the next replies. Each release and each request re-plans the pool,
# and the plan asks every idle connection whether it is still usable (`LinearConnectionPool`):
# with 300 replies streaming, a plan took ~30 µs with 20 idle, ~80 µs with 100. Beyond 20 idle, a
# finished reply's connection is closed rather than kept.
KEEPALIVE_CONNECTIONS = 20


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout: float = 10.0
    first_byte_timeout: float = 60.0
    idle_timeout: float = 30.0
    # A whole exchange, however lively: keep-alive comments alone never end a reply otherwise.
    reply_timeout: float = 600.0
    max_retries: int = 2
    retry_after_cap: float = 20.0
    retry_base_delay: float = 0.5
    max_connections: int = 500


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing a response sets."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


@dataclass(frozen=True)
class _PostTemplate:
    url: httpx.URL
    headers: httpx.Headers
    extensions: dict[str, Any]


_POST_TEMPLATES = 16


class ModelClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that keeps no cookies.

    One client carries every user's requests, so a cookie the model service set on one reply (a
    load balancer's affinity, a session) would go out with everyone's next requests; the service
    is authenticated by its API key alone. Not reading them also saves httpx's work on every
    response (adapting it to `http.cookiejar`'s request and response types and parsing its
    headers again), which was ~4 % of a short reply's CPU on the benchmark.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()
        self._posts: dict[tuple[str, tuple[tuple[str, str], ...]], _PostTemplate] = {}

    def post_request(self, url: str, headers: Mapping[str, str], content: bytes) -> httpx.Request:
        """`build_request("POST", url, content=content, headers=headers)`, with what it merges
        from the client (its base URL, headers and timeouts) worked out once per URL and
        headers: every reply is such a request, and the merging cost more than the rest of
        building it (parsing the URL alone ~20 µs)."""
        key = (url, tuple(headers.items()))
        template = self._posts.get(key)
        if template is None:
            built = self.build_request("POST", url, headers=headers)
            merged, given = httpx.Headers(built.headers), httpx.Headers(headers)
            # Left for each request to add, as it does when built: its own length (this one
            # has no body), and the host, which it puts first.
            for automatic in ("Content-Length", "Host"):
                if automatic not in given:
                    merged.pop(automatic, None)
            template = _PostTemplate(built.url, merged, built.extensions)
            if len(self._posts) < _POST_TEMPLATES:  # a bounded set: one per backend in use
                self._posts[key] = template
        return httpx.Request(
            "POST",
            template.url,
            content=content,
            headers=template.headers,  # copied by the request, which then adds its length
            extensions=template.extensions,  # likewise copied
        )

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("the model client keeps no cookies")


class ClientPool:
    """One `httpx.AsyncClient` per running event loop (a client cannot cross loops)."""

    def __init__(
        self, settings: HttpSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        # Tests replay recorded streams through `httpx.MockTransport` here.
        self._transport = transport
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ModelClient]
        self._clients = weakref.WeakKeyDictionary()

    def get(self) -> ModelClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            s = self._settings
            # The watchdog enforces first-byte and idle limits; httpx's read timeout is a backstop.
            backstop = 2 * max(s.first_byte_timeout, s.idle_timeout)
            limits = httpx.Limits(
                max_connections=s.max_connections,
                max_keepalive_connections=min(s.max_connections, KEEPALIVE_CONNECTIONS),
                keepalive_expiry=30.0,
            )
            client = ModelClient(
                timeout=httpx.Timeout(
                    connect=s.connect_timeout, read=backstop, write=backstop, pool=backstop
                ),
                limits=limits,
                follow_redirects=False,
                transport=self._transport or asyncio_transport(limits=limits),
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the current loop's client."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


# How soon a watchdog past its deadline looks again for a wait to end.
_RECHECK = 0.05


class Watchdog:
    """Cancels the reading task when the upstream stays silent too long.

    The first wait (connect, headers, first chunk) may last `first_byte`; later waits `idle`;
    and no wait goes on past `total` from the start. Only waiting on the network is ended: a
    slow consumer never trips it. One timer per stream is re-armed lazily, so each chunk costs
    two attribute writes, not a timer.
    """

    __slots__ = (
        "_deadline",
        "_handle",
        "_idle",
        "_limit",
        "_loop",
        "_since",
        "_task",
        "fired",
        "overran",
    )

    def __init__(self, first_byte: float, idle: float, total: float = float("inf")) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._limit = first_byte
        self._idle = idle
        self._deadline = self._loop.time() + total
        self._since: float | None = None
        self.fired = False
        self.overran = False  # fired for the whole exchange's limit, not for a silence
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            min(self._loop.time() + first_byte, self._deadline), self._check
        )

    def waiting(self) -> None:
        # A wait under way keeps its start: once the headers are in, the first chunk's wait is
        # the rest of the first-byte limit, not a new one.
        if self._since is None:
            self._since = self._loop.time()

    def received(self) -> None:
        self._since = None
        if self._limit != self._idle:
            # The first chunk is in: from now on the (usually shorter) idle limit applies.
            self._limit = self._idle
            if self._handle is not None:
                self._handle.cancel()
                due = min(self._loop.time() + self._idle, self._deadline)
                self._handle = self._loop.call_at(due, self._check)

    def timed_out(self) -> bool:
        """After a CancelledError: True when this watchdog caused it (and nobody else did)."""
        return self.fired and self._task is not None and self._task.uncancel() == 0

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        overran = now >= self._deadline
        if since is None:
            # Not waiting, so nothing to end yet: looked at again a limit later or at the
            # deadline, and soon after while past it (the next wait is then ended at once).
            due = now + _RECHECK if overran else min(now + self._limit, self._deadline)
            self._handle = self._loop.call_at(due, self._check)
        elif overran or now - since >= self._limit:
            self._handle = None
            self.fired = True
            self.overran = overran and now - since < self._limit
            if self._task is not None:
                self._task.cancel()
        else:
            self._handle = self._loop.call_at(min(since + self._limit, self._deadline), self._check)


def transport_error(exc: httpx.HTTPError, *, started: bool) -> LLMError:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return LLMError(ErrorCode.TIMEOUT, detail=detail)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return LLMError(ErrorCode.BAD_REQUEST, detail=detail)
    if started:
        return LLMError(ErrorCode.TRUNCATED, detail=detail)
    return LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail=detail)
