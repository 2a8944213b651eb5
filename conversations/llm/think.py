"""Drop a leading `<think>…</think>` block from streamed text, even when its tags are split
across deltas."""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"

_UNDECIDED, _THINKING, _AFTER, _PASS = range(4)


class ThinkStripper:
    """Once the reply is known not to open with `<think>`, text passes straight through."""

    __slots__ = ("_buffer", "_state")

    def __init__(self) -> None:
        self._state = _UNDECIDED
        self._buffer = ""

    def feed(self, text: str) -> str:
        if self._state == _PASS:
            return text
        self._buffer += text
        if self._state == _UNDECIDED:
            head = self._buffer.lstrip()
            if head.startswith(OPEN):
                self._state = _THINKING
                self._buffer = head[len(OPEN) :]
            elif OPEN.startswith(head):
                return ""  # still could be the opening tag (or only whitespace so far)
            else:
                return self._release()
        if self._state == _THINKING:
            end = self._buffer.find(CLOSE)
            if end < 0:
                # Keep only what could still hold the start of the closing tag.
                self._buffer = self._buffer[-(len(CLOSE) - 1) :]
                return ""
            self._state = _AFTER
            self._buffer = self._buffer[end + len(CLOSE) :]
        # The answer after the block usually starts with blank lines; they are not content.
        rest = self._buffer.lstrip()
        if not rest:
            self._buffer = ""
            return ""
        return self._release(rest)

    def flush(self) -> str:
        """End of reply: text held back while undecided was real text after all."""
        if self._state == _UNDECIDED:
            return self._release()
        self._buffer = ""
        return ""

    def _release(self, text: str | None = None) -> str:
        out = self._buffer if text is None else text
        self._buffer = ""
        self._state = _PASS
        return out
