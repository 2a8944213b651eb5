"""State kept for each running event loop."""

import asyncio

from companion.perloop import PerLoop


def test_one_made_for_each_loop_and_kept_while_it_runs():
    made = []

    def factory():
        made.append(object())
        return made[-1]

    state = PerLoop(factory)

    async def twice():
        return state.get(), state.get()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1]
    assert second[0] is second[1]
    assert first[0] is not second[0]
    assert len(made) == 2
