from decimal import Decimal

from conversations.llm.base import Usage
from conversations.llm.pricing import Prices, cost_usd

M2HER = Prices.from_floats(0.30, 1.20)


def test_cost_adds_input_and_output_at_their_own_prices():
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000)

    assert cost_usd(usage, M2HER) == Decimal("0.90000000")


def test_a_typical_reply_costs_a_fraction_of_a_cent_to_eight_places():
    usage = Usage(prompt_tokens=176, completion_tokens=23)

    assert cost_usd(usage, M2HER) == Decimal("0.00008040")


def test_missing_half_of_the_usage_counts_as_zero():
    assert cost_usd(Usage(completion_tokens=10), M2HER) == Decimal("0.00001200")


def test_no_split_usage_has_no_cost():
    assert cost_usd(Usage(total_tokens=73), M2HER) is None
    assert cost_usd(Usage(), M2HER) is None


def test_free_backends_cost_nothing():
    assert cost_usd(Usage(prompt_tokens=5000, completion_tokens=5000), Prices()) == 0
