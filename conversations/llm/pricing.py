"""What a reply cost, from the usage it reported."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from conversations.llm.base import Usage

PER_MILLION = Decimal(1_000_000)
# Matches `Turn.cost_usd` (8 decimal places).
CENT_FRACTION = Decimal("0.00000001")


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens."""

    input_per_mtok: Decimal = Decimal("0")
    output_per_mtok: Decimal = Decimal("0")

    @classmethod
    def from_floats(cls, input_per_mtok: float, output_per_mtok: float) -> Prices:
        # Through str so that 0.30 stays 0.30 rather than its binary approximation.
        return cls(Decimal(str(input_per_mtok)), Decimal(str(output_per_mtok)))


def cost_usd(usage: Usage, prices: Prices) -> Decimal | None:
    """The cost in USD, or None when the reply reported no input/output split."""
    if usage.prompt_tokens is None and usage.completion_tokens is None:
        return None
    raw = (
        Decimal(usage.prompt_tokens or 0) * prices.input_per_mtok
        + Decimal(usage.completion_tokens or 0) * prices.output_per_mtok
    ) / PER_MILLION
    return raw.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP)
