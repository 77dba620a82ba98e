"""One contract, every membership: the in-memory twin of a lone node and a Redis node.

The hub asks the same questions either way (who may take a place in a room, whether a
call can ring); an answer comes back through its MembershipEvents, at once from the
twin, a moment later from Redis. What only a cluster can show (members on other nodes,
a node that dies) is in tests/broker/test_redis.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

from hubbub.broker import (
    CallPlacement,
    CallRoute,
    ClaimOutcome,
    ClaimResult,
    Located,
    Member,
    ModeRule,
    SessionFound,
    SharedMedia,
)
from hubbub.media.modes import MediaSetting, Mode
from hubbub.protocol.messages import MediaFeed
from tests.broker.conftest import MembershipFactory, Recorder, eventually

_numbers = itertools.count(1)


def fresh(name: str) -> str:
    """A room or user name no other test (on the shared Redis) has used."""
    return f"{name}-{next(_numbers)}-contract"


async def claimed(
    membership: object, recorder: Recorder, room: str, member: Member, **options: object
) -> ClaimResult:
    arguments: dict[str, object] = {"replace": False, "max_members": 10, **options}
    membership.claim(room, member, **arguments)  # type: ignore[attr-defined]
    result: ClaimResult = await eventually(lambda: recorder.claims.get(member.session_id))
    return result


def member(membership: object, user_id: str) -> Member:
    return Member(user_id=user_id, session_id=membership.new_session_id())  # type: ignore[attr-defined]


async def test_a_place_is_taken_once(make_membership: MembershipFactory) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    alice = member(membership, "alice")
    result = await claimed(membership, recorder, room, alice)
    assert result.outcome is ClaimOutcome.ADMITTED
    assert [m.user_id for m in result.members] == ["alice"]
    assert result.replaced is None
    other = member(membership, "alice")
    refused = await claimed(membership, recorder, room, other)
    assert refused.outcome is ClaimOutcome.TAKEN


async def test_members_come_in_join_order_with_what_they_joined_with(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    alice = Member("alice", membership.new_session_id(), name="Alice", status="away")
    await claimed(membership, recorder, room, alice)
    bob = member(membership, "bob")
    result = await claimed(membership, recorder, room, bob)
    assert [(m.user_id, m.name, m.status) for m in result.members] == [
        ("alice", "Alice", "away"),
        ("bob", None, "online"),
    ]


async def test_a_token_takes_the_place_of_the_same_user(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    old = member(membership, "alice")
    await claimed(membership, recorder, room, old)
    new = member(membership, "alice")
    result = await claimed(membership, recorder, room, new, replace=True)
    assert result.outcome is ClaimOutcome.ADMITTED
    assert result.replaced is not None
    assert result.replaced.session_id == old.session_id
    assert [m.session_id for m in result.members] == [new.session_id]
    # The replaced member's release gives back nothing: the place is the newcomer's.
    membership.release(room, old)
    third = member(membership, "alice")
    assert (await claimed(membership, recorder, room, third)).outcome is ClaimOutcome.TAKEN


async def test_a_full_room_refuses_but_a_replacement_fits(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    await claimed(membership, recorder, room, member(membership, "alice"), max_members=1)
    full = await claimed(membership, recorder, room, member(membership, "bob"), max_members=1)
    assert full.outcome is ClaimOutcome.FULL
    again = member(membership, "alice")
    replaced = await claimed(membership, recorder, room, again, replace=True, max_members=1)
    assert replaced.outcome is ClaimOutcome.ADMITTED


async def test_a_released_place_is_free_again(make_membership: MembershipFactory) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    alice = member(membership, "alice")
    await claimed(membership, recorder, room, alice)
    membership.release(room, alice)
    again = member(membership, "alice")
    result = await claimed(membership, recorder, room, again)
    assert result.outcome is ClaimOutcome.ADMITTED
    assert [m.session_id for m in result.members] == [again.session_id]


async def test_this_nodes_members_are_never_remote(make_membership: MembershipFactory) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    await claimed(membership, recorder, room, member(membership, "alice"))
    assert membership.remote_member(room, "alice") is None
    assert membership.remote_members(room) == []


async def test_a_call_rings_only_a_free_connected_callee(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    alice, bob, carol, dave = (fresh(name) for name in ("alice", "bob", "carol", "dave"))
    for user in (alice, bob, carol):
        membership.user_here(user, True)

    async def place(caller: str, callee: str) -> tuple[str, CallPlacement]:
        call_id = membership.new_session_id()
        membership.place_call(call_id, caller, callee, b'{"type":"call-incoming"}')
        outcome: CallPlacement = await eventually(lambda: recorder.placed.get(call_id))
        return call_id, outcome

    call, outcome = await place(alice, bob)
    assert outcome is CallPlacement.PLACED
    assert (await place(carol, bob))[1] is CallPlacement.BUSY
    assert (await place(alice, carol))[1] is CallPlacement.ALREADY_IN_CALL
    assert (await place(carol, dave))[1] is CallPlacement.UNAVAILABLE
    membership.call_over(call, alice, bob)
    assert (await place(carol, bob))[1] is CallPlacement.PLACED
    membership.user_here(dave, True)
    membership.user_here(dave, False)
    assert (await place(alice, dave))[1] is CallPlacement.UNAVAILABLE


async def test_this_nodes_calls_and_sessions_stay_here(make_membership: MembershipFactory) -> None:
    membership, recorder = await make_membership()
    call_id = membership.new_session_id()
    route = membership.call_move(call_id, "accept", "bob", membership.new_session_id(), 1)
    assert route is CallRoute.HERE
    assert recorder.moves == []
    # A session id of this node that is not here: unknown at once, or found here (it
    # did not move elsewhere), for the hub to say it is unknown.
    own = membership.new_session_id()
    if membership.find_session(own, "token", "s1"):
        found = await eventually(lambda: recorder.found.get("s1"))
        assert found == SessionFound(Located.HERE, own)
    else:
        await asyncio.sleep(0.1)
        assert recorder.found == {}


async def test_session_ids_are_unique(make_membership: MembershipFactory) -> None:
    membership, _ = await make_membership()
    assert len({membership.new_session_id() for _ in range(1000)}) == 1000


async def test_the_calls_node_learns_when_its_callee_is_connected_nowhere(
    make_membership: MembershipFactory,
) -> None:
    """Either the membership knows at once that the callee has no other connection
    (the hub ends the call itself), or it tells the call's node once it has none."""
    membership, recorder = await make_membership()
    alice, bob = fresh("alice"), fresh("bob")
    membership.user_here(alice, True)
    membership.user_here(bob, True)
    call_id = membership.new_session_id()
    membership.place_call(call_id, alice, bob, b'{"type":"call-incoming"}')
    assert await eventually(lambda: recorder.placed.get(call_id)) is CallPlacement.PLACED
    membership.user_here(bob, False)
    if membership.connected_elsewhere(bob):
        assert await eventually(lambda: recorder.moves) == [(call_id, "callee-gone", bob, "")]
    else:
        await asyncio.sleep(0.2)
        assert recorder.moves == []


async def test_a_members_status_and_connection_change_what_its_room_lists(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("room")
    alice = member(membership, "alice")
    await claimed(membership, recorder, room, alice)
    membership.update(room, dataclasses.replace(alice, status="busy", reconnecting=True))
    # Another session of the same user id is not her: nothing changes.
    membership.update(room, Member("alice", membership.new_session_id(), status="away"))
    result = await claimed(membership, recorder, room, member(membership, "bob"))
    assert [(m.user_id, m.status, m.reconnecting) for m in result.members] == [
        ("alice", "busy", True),
        ("bob", "online", False),
    ]


# -- calls through the media server ----------------------------------------------

RULE = ModeRule(MediaSetting.AUTO, mesh_max=4, sfu_available=True)


async def media_after(recorder: Recorder, room: str, count: int) -> SharedMedia:
    """What the room's calls were said to be once ``count`` changes were told."""
    told: list[SharedMedia] = await eventually(
        lambda: len(recorder.media.get(room, [])) >= count and recorder.media[room]
    )
    return told[count - 1]


async def test_a_rooms_mode_follows_its_senders_with_a_gap(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("call")
    await claimed(membership, recorder, room, member(membership, "alice"))
    membership.count_senders(room, 1, RULE, "setting")
    membership.count_senders(room, 5, RULE, "auto")
    # (A cluster node hears the whole first: it is new to the room.)
    sfu = await eventually(
        lambda: next((m for m in recorder.media.get(room, []) if m.mode is Mode.SFU), None)
    )
    assert sfu.reason == "auto"
    before = len(recorder.media[room])
    membership.count_senders(room, 3, RULE, "auto")  # above the gap: stays
    membership.count_senders(room, 2, RULE, "auto")
    mesh = await media_after(recorder, room, before + 1)
    assert mesh.mode is Mode.MESH
    assert mesh.version > sfu.version
    await asyncio.sleep(0.2)
    assert len(recorder.media[room]) == before + 1, "the count of 3 changed nothing"


async def test_a_count_that_decides_nothing_leaves_the_mode_to_the_next_that_does(
    make_membership: MembershipFactory,
) -> None:
    """A session that moves between nodes changes two nodes' counts one after the
    other: those counts decide nothing (the room would dip in between)."""
    membership, recorder = await make_membership()
    room = fresh("call")
    await claimed(membership, recorder, room, member(membership, "alice"))
    membership.count_senders(room, 5, RULE, "auto")
    await eventually(
        lambda: next((m for m in recorder.media.get(room, []) if m.mode is Mode.SFU), None)
    )
    before = len(recorder.media[room])
    membership.count_senders(room, 1, None, "auto")
    await asyncio.sleep(0.2)
    assert len(recorder.media[room]) == before, "a count of 1 that decides nothing decided"
    membership.count_senders(room, 1, RULE, "auto")
    assert (await media_after(recorder, room, before + 1)).mode is Mode.MESH


async def test_feeds_are_listed_for_the_room_until_withdrawn(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("call")
    await claimed(membership, recorder, room, member(membership, "alice"))
    membership.count_senders(room, 0, RULE, "setting")
    feed = MediaFeed(user_id="alice", audio=True, video=True, simulcast=True)
    membership.share_feed(room, "alice", feed)
    listed = await eventually(
        lambda: [m for m in recorder.media.get(room, []) if m.feeds == [feed]]
    )
    membership.share_feed(room, "alice", None)
    gone = await eventually(
        lambda: [m for m in recorder.media.get(room, []) if m.version > listed[0].version]
    )
    assert gone[-1].feeds == []


async def test_a_rooms_setting_holds_before_its_first_member(
    make_membership: MembershipFactory,
) -> None:
    membership, recorder = await make_membership()
    room = fresh("call")
    membership.set_media_setting(room, MediaSetting.SFU, RULE)
    await claimed(membership, recorder, room, member(membership, "alice"))
    membership.count_senders(room, 0, RULE, "setting")
    told = await media_after(recorder, room, 1)
    assert (told.mode, told.setting) == (Mode.SFU, MediaSetting.SFU)
    membership.set_media_setting(room, None, RULE)  # back to auto, with no sender
    back = await media_after(recorder, room, 2)
    assert (back.mode, back.setting) == (Mode.MESH, None)
    membership.media_done(room)
