"""Token estimates for a model without a public tokenizer, and learning from its usage."""

from conversations.tokens import (
    CALL_OVERHEAD_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    TokenEstimator,
    raw_estimate,
)


def test_latin_text_is_about_four_characters_a_token():
    assert raw_estimate("abcd" * 25) == 25


def test_chinese_text_is_about_one_and_a_half_characters_a_token():
    assert raw_estimate("鲁迅原名周树人") == 7 / 1.5


def test_accented_latin_text_is_counted_as_latin():
    assert raw_estimate("déjà vu, café") == len("déjà vu, café") / 4


def test_mixed_text_counts_each_script_at_its_own_rate():
    assert raw_estimate("鲁迅 said hi") == 2 / 1.5 + len(" said hi") / 4


def test_counts_round_up_and_messages_carry_an_overhead():
    est = TokenEstimator()

    assert est.count("abcde") == 2
    assert est.count("") == 0
    assert est.message("abcd") == 1 + MESSAGE_OVERHEAD_TOKENS


def test_learning_moves_the_scale_slowly_towards_what_was_billed():
    est = TokenEstimator()

    est.learn(
        estimated_prompt_tokens=CALL_OVERHEAD_TOKENS + 100,
        reported_prompt_tokens=CALL_OVERHEAD_TOKENS + 150,
    )

    assert est.scale == 1.05
    assert est.count("abcd" * 100) == 105


def test_one_wild_report_cannot_swing_the_scale_far():
    est = TokenEstimator()

    est.learn(estimated_prompt_tokens=CALL_OVERHEAD_TOKENS + 100, reported_prompt_tokens=100_000)

    assert est.scale == 1.1


def test_tiny_prompts_teach_nothing():
    est = TokenEstimator()

    est.learn(estimated_prompt_tokens=CALL_OVERHEAD_TOKENS + 5, reported_prompt_tokens=500)
    est.learn(estimated_prompt_tokens=CALL_OVERHEAD_TOKENS + 100, reported_prompt_tokens=150)

    assert est.scale == 1.0
