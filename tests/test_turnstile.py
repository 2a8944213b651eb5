"""The turnstile of new sockets: a few set up at once, in the order they came, and a socket
coming back for its first `sync` before those that have not started."""

import asyncio

import pytest

from companion.turnstile import SLOTS, Setup


async def arrived(count):
    """`count` sockets, each holding a slot."""
    setups = [Setup() for _ in range(count)]
    for setup in setups:
        await asyncio.wait_for(setup.arrive(), 1)
    return setups


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def queued_behind_full_slots():
    """Every slot held, and one more socket waiting for a slot: (the held, it, its task)."""
    held = await arrived(SLOTS)
    setup = Setup()
    entering = asyncio.ensure_future(setup.arrive())
    await settle()
    assert not entering.done()
    return held, setup, entering


async def test_no_more_than_the_slots_are_set_up_at_once():
    held, late, entering = await queued_behind_full_slots()
    held[0].done()
    await asyncio.wait_for(entering, 1)
    late.done()
    for setup in held[1:]:
        setup.done()


async def test_waiting_sockets_are_let_in_in_the_order_they_came():
    held = await arrived(SLOTS)
    order = []

    async def arrive(name):
        setup = Setup()
        await setup.arrive()
        order.append(name)
        setup.done()

    tasks = [asyncio.ensure_future(arrive(name)) for name in ("first", "second", "third")]
    await settle()
    for setup in held:
        setup.done()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert order == ["first", "second", "third"]


async def test_a_socket_back_for_its_first_sync_goes_before_new_ones():
    held = await arrived(SLOTS)
    paused = held[0]
    paused.pause()  # accepted: its slot went to whoever waited (nobody), and is free
    newcomer = Setup()
    await asyncio.wait_for(newcomer.arrive(), 1)  # takes the free slot
    order = []

    async def arrive():
        setup = Setup()
        await setup.arrive()
        order.append("new")
        setup.done()

    async def resume():
        await paused.resume()
        order.append("returning")
        paused.done()

    new = asyncio.ensure_future(arrive())
    await settle()
    back = asyncio.ensure_future(resume())
    await settle()
    assert order == []
    newcomer.done()
    await asyncio.wait_for(asyncio.gather(new, back), 1)
    assert order == ["returning", "new"]
    held[1].done()


async def test_a_paused_socket_holds_no_slot():
    setups = await arrived(SLOTS)
    for setup in setups:
        setup.pause()
    # Every slot is free again: as many new sockets get in at once.
    others = await arrived(SLOTS)
    for setup in [*setups, *others]:
        setup.done()


async def test_done_and_pause_twice_give_back_one_slot_each_socket():
    setups = await arrived(SLOTS)
    setups[0].done()
    setups[0].done()
    setups[0].pause()
    # One slot came back, not three: a second newcomer still waits.
    first = await arrived(1)
    second = Setup()
    entering = asyncio.ensure_future(second.arrive())
    await settle()
    assert not entering.done()
    setups[1].done()
    await asyncio.wait_for(entering, 1)
    for setup in [*first, second]:
        setup.done()


async def test_a_finished_socket_no_longer_waits_to_resume():
    held = await arrived(SLOTS)
    finished = Setup()
    finished.done()  # say it sent a message first: its later syncs go on at once
    await asyncio.wait_for(finished.resume(), 1)
    for setup in held:
        setup.done()


@pytest.mark.parametrize(
    "order",
    [
        # It left the queue before a slot came back: the slot is free.
        ("cancel", "settle", "give back"),
        # A slot came back before the cancelled task ran again: the slot passed it by.
        ("cancel", "give back"),
        # The slot was handed over, then the task cancelled before it ran again: it passes it on.
        ("give back", "cancel"),
    ],
    ids=["left-first", "passed-by", "handed-over"],
)
async def test_a_socket_cancelled_while_waiting_leaves_no_slot_taken(order):
    held, _, entering = await queued_behind_full_slots()
    for step in order:
        if step == "cancel":
            entering.cancel()
        elif step == "settle":
            await settle()
        else:
            held[0].done()
    with pytest.raises(asyncio.CancelledError):
        await entering
    # The next socket gets the slot at once.
    await arrived(1)


async def test_a_socket_that_ended_while_waiting_gives_its_slot_back():
    held, setup, entering = await queued_behind_full_slots()
    setup.done()  # the socket closed meanwhile (from another task)
    held[0].done()
    await asyncio.wait_for(entering, 1)
    # It went straight on: the slot it got is free again.
    await arrived(1)


def test_each_event_loop_has_its_own_turnstile():
    async def fill():
        return await arrived(SLOTS)  # never given back

    asyncio.run(fill())
    # A loop that ended holding every slot leaves the next loop's turnstile empty.
    setups = asyncio.run(asyncio.wait_for(arrived(SLOTS), 1))
    assert len(setups) == SLOTS
