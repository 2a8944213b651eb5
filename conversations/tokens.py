"""Token estimation for M2-her, which publishes no tokenizer.

About 1.5 CJK characters or 4 other characters make a token, plus a fixed overhead per call.
The estimator keeps a correction factor learnt from the `usage` that replies report.
"""

from __future__ import annotations

import math
import re
import threading

CALL_OVERHEAD_TOKENS = 180
MESSAGE_OVERHEAD_TOKENS = 4
_CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff00-\uffef]"
)


def raw_estimate(text: str) -> float:
    if text.isascii():
        # Most text is, and the history's turns are estimated several times per reply: the
        # check is a scan in C where the search would build a list of matches.
        return len(text) / 4
    cjk = len(_CJK.findall(text))
    return cjk / 1.5 + (len(text) - cjk) / 4


class TokenEstimator:
    """Estimates tokens; `learn` nudges a scale factor towards the provider's real counts."""

    def __init__(self, scale: float = 1.0) -> None:
        self._scale = scale
        self._lock = threading.Lock()

    @property
    def scale(self) -> float:
        return self._scale

    def count(self, text: str) -> int:
        return math.ceil(raw_estimate(text) * self._scale)

    def message(self, text: str) -> int:
        return self.count(text) + MESSAGE_OVERHEAD_TOKENS

    def learn(self, *, estimated_prompt_tokens: int, reported_prompt_tokens: int) -> None:
        """Blend in the ratio between a prompt's estimate and what the provider billed."""
        variable_estimate = estimated_prompt_tokens - CALL_OVERHEAD_TOKENS
        variable_reported = reported_prompt_tokens - CALL_OVERHEAD_TOKENS
        if variable_estimate < 20 or variable_reported <= 0:
            return
        ratio = variable_reported / (variable_estimate / self._scale)
        ratio = min(max(ratio, 0.5), 2.0)
        with self._lock:
            # A slow moving average: one odd reply must not swing the budget.
            self._scale = round(0.9 * self._scale + 0.1 * ratio, 4)


default_estimator = TokenEstimator()
