"""Calls through one Janus across a cluster: two hubbub nodes on one real Redis, in
front of one real Janus of the test's own. A room's members on both nodes see each
other's video through the same room there, the room's mode is decided once for both
nodes, and the last node done with the room removes it from Janus (a live node does,
when the last one was killed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.media.janus import JanusMediaServer
from tests.cluster.nodes import GONE_WITHIN, NODE_TIMEOUT, cluster
from tests.conftest import ServerFactory
from tests.janus import JanusLab, janus_lab, needs_janus
from tests.media.test_sfu_server import Member, media_of, member, sfu_settings
from tests.wsclient import Client

pytestmark = needs_janus()


@pytest.fixture
async def lab() -> AsyncIterator[JanusLab]:
    async with janus_lab() as running:
        yield running


async def janus_asked(lab: JanusLab, body: dict[str, Any]) -> dict[str, Any]:
    """What the VideoRoom plugin on the lab's Janus answers ``body``."""
    janus = JanusMediaServer(lab.url, api_secret=lab.api_secret, admin_key=lab.admin_key)
    await janus.start()
    try:
        return dict(await janus._control_request(body))
    finally:
        await janus.close()


async def janus_rooms(lab: JanusLab) -> list[str]:
    """The VideoRoom rooms on the lab's Janus, its private ones included."""
    data = await janus_asked(lab, {"request": "list", "admin_key": lab.admin_key})
    return [str(room["room"]) for room in data.get("list") or []]


async def closed(*members: Member) -> None:
    for side in members:
        with contextlib.suppress(Exception):
            await side.close()
            await side.client.close()


async def test_members_on_two_nodes_see_each_other_through_one_janus_room(
    lab: JanusLab, start_hub: ServerFactory, redis_url: str
) -> None:
    settings = replace(sfu_settings(lab), broker=redis_url)
    first = await start_hub(settings)
    second = await start_hub(settings)
    before = set(await janus_rooms(lab))
    alice = await member(first, "across", "alice")
    bob = await member(second, "across", "bob")
    try:
        assert (await alice.expect("media-mode"))["mode"] == "sfu"
        assert (await bob.expect("media-mode"))["mode"] == "sfu"
        await alice.publish()
        await bob.publish()
        await bob.feeds_with("alice")
        await alice.feeds_with("bob")
        await bob.subscribe("alice")
        await alice.subscribe("bob")
        await bob.frame()
        await alice.frame()
        # One room on Janus for both nodes, and both say it is on the one Janus.
        assert len(set(await janus_rooms(lab)) - before) == 1
        for url in (first, second):
            assert (await media_of(url, "across"))["server"] == lab.url
        # Alice leaves through her node: Bob's node lists her feed no more.
        await alice.close()
        await alice.client.close()
        while True:
            feeds = await bob.expect("media-feeds")
            if [f["userId"] for f in feeds["feeds"]] == ["bob"]:
                break
        assert len(set(await janus_rooms(lab)) - before) == 1, "Bob's node still uses it"
        await bob.close()
        await bob.client.close()
        async with asyncio.timeout(10):
            while set(await janus_rooms(lab)) - before:  # noqa: ASYNC110 - Janus has no event for it
                await asyncio.sleep(0.1)
    finally:
        await closed(alice, bob)


async def test_a_rooms_mode_is_one_for_both_nodes(
    lab: JanusLab, start_hub: ServerFactory, redis_url: str
) -> None:
    settings = replace(
        sfu_settings(lab, media_mode="auto", mesh_max_participants=2), broker=redis_url
    )
    first = await start_hub(settings)
    second = await start_hub(settings)
    alice = await member(first, "modes", "alice")
    bob = await member(second, "modes", "bob")
    carol = await member(first, "modes", "carol")
    everyone = (alice, bob, carol)
    try:
        for side in everyone:
            await side.client.send({"type": "media-sending", "active": True})
        # Three senders on two nodes, past 2: the room moves to the SFU on both.
        for side in everyone:
            assert (await side.expect("media-mode"))["mode"] == "sfu"
        # Down to two: back to a mesh on both, once.
        await carol.client.send({"type": "leave-room"})
        for side in (alice, bob):
            told = await side.expect("media-mode")
            assert told["mode"] == "mesh"
        for url in (first, second):
            assert (await media_of(url, "modes"))["mode"] == "mesh"
        # A backend sets the room's mode through either node: both follow.
        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"{second}/api/rooms/modes/media",
                json={"mode": "sfu"},
                headers={"Authorization": "Bearer test-api-key"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
        for side in (alice, bob):
            assert (await side.expect("media-mode"))["mode"] == "sfu"
        assert (await media_of(first, "modes"))["setting"] == "sfu"
    finally:
        await closed(*everyone)


async def test_nodes_that_would_choose_different_instances_use_the_rooms_one(
    start_hub: ServerFactory, redis_url: str
) -> None:
    """Two Janus instances, equally loaded, listed in a different order by each node:
    each node alone would pick its first. The room's placement is the first node's,
    and the second takes it."""
    secrets = {"api_secret": "shared-api-secret", "admin_key": "shared-admin-key"}
    async with janus_lab(**secrets) as one, janus_lab(**secrets) as two:
        base = replace(sfu_settings(one), broker=redis_url)
        first = await start_hub(replace(base, janus_url=[one.url, two.url]))
        second = await start_hub(replace(base, janus_url=[two.url, one.url]))
        alice = await member(first, "pinned", "alice")
        bob = await member(second, "pinned", "bob")
        try:
            await alice.publish()
            await bob.feeds_with("alice")
            await bob.subscribe("alice")
            await bob.frame()
            placed = {(await media_of(url, "pinned"))["server"] for url in (first, second)}
            assert placed == {one.url}
            assert await janus_rooms(two) == []
        finally:
            await closed(alice, bob)


async def test_janus_killed_under_a_room_on_two_nodes_is_back_for_both(
    lab: JanusLab, start_hub: ServerFactory, redis_url: str
) -> None:
    settings = replace(sfu_settings(lab), broker=redis_url)
    first = await start_hub(settings)
    second = await start_hub(settings)
    alice = await member(first, "crash", "alice")
    bob = await member(second, "crash", "bob")
    try:
        await alice.publish()
        await bob.feeds_with("alice")
        await bob.subscribe("alice")
        await bob.frame()
        lab.kill()
        for side in (alice, bob):
            while (await side.expect("media-mode"))["reason"] != "media-server-lost":
                pass
            await side.close()
        await lab.start()
        started = asyncio.get_running_loop().time()
        # Both nodes make the room again on the Janus that is back (the first to come
        # makes it, the other takes it as it is), and each one's member publishes.
        await asyncio.gather(alice.republish(), bob.republish())
        await bob.feeds_with("alice")
        await alice.feeds_with("bob")
        await bob.subscribe("alice")
        await alice.subscribe("bob")
        await asyncio.gather(alice.frame(), bob.frame())
        assert asyncio.get_running_loop().time() - started < 5.0
        assert len(await janus_rooms(lab)) == 1
    finally:
        await closed(alice, bob)


async def test_a_room_whose_last_node_is_killed_goes_from_janus(
    lab: JanusLab, redis_url: str, tmp_path: Path
) -> None:
    """The node that alone used a room on Janus is killed (no goodbye, no release):
    once the survivor finds it dead, the room it left there is removed."""
    args = [*lab.serve_args(), "--media-mode", "sfu"]
    async with cluster(2, redis_url, tmp_path, *args) as (survivor, doomed):
        before = set(await janus_rooms(lab))
        alice = await member(doomed.url, "orphan", "alice")
        try:
            await alice.publish()  # the room is made on Janus for it
            async with asyncio.timeout(10):
                while not set(await janus_rooms(lab)) - before:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            doomed.kill()
            killed_at = asyncio.get_running_loop().time()
            # Found dead within GONE_WITHIN, then a sweep every NODE_TIMEOUT.
            async with asyncio.timeout(GONE_WITHIN + NODE_TIMEOUT + 10):
                while set(await janus_rooms(lab)) - before:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            took = asyncio.get_running_loop().time() - killed_at
            assert took < GONE_WITHIN + NODE_TIMEOUT + 3, took
            assert any(b"event=media-orphan-removed" in line for line in survivor.log)
        finally:
            await closed(alice)


async def janus_publishers(lab: JanusLab, room_id: str) -> list[str]:
    """The publishers in a room on the lab's Janus, by display name, sorted."""
    data = await janus_asked(lab, {"request": "listparticipants", "room": room_id})
    return sorted(str(p.get("display")) for p in data.get("participants") or [])


async def test_a_member_whose_session_moves_to_another_node_calls_on_from_there(
    lab: JanusLab, start_hub: ServerFactory, redis_url: str
) -> None:
    """Bob's client resumes through the other node (his session moves there): what he
    had on Janus went with his old node (which removes it: no ghost publisher), and
    the new node tells him to start afresh. He publishes through it, Alice sees him
    again, and when he leaves, his feed goes for good."""
    settings = replace(sfu_settings(lab), broker=redis_url)
    first = await start_hub(settings)
    second = await start_hub(settings)
    before = set(await janus_rooms(lab))
    alice = await member(second, "moving", "alice")
    bob = Member(await Client.connect(first), "bob")
    joined = await bob.client.join("moving", "bob", features=["sfu"])
    try:
        await alice.publish()
        await bob.publish()
        await alice.feeds_with("bob")
        await alice.subscribe("bob")
        await alice.frame()
        [room_id] = set(await janus_rooms(lab)) - before
        assert await janus_publishers(lab, room_id) == ["alice", "bob"]

        # His client comes back through the other node (the old connection is cut).
        old = bob.client
        bob.client = await Client.connect(second)
        bob.client.last_n = old.last_n  # (it checks the numbers that follow)
        resume = {"sessionId": joined["sessionId"], "resumeToken": joined["resumeToken"]}
        await bob.client.send({"type": "resume", **resume, "lastN": old.last_n})
        resumed = await bob.expect("resumed")
        assert (resumed["userId"], resumed["room"]) == ("bob", "moving")
        assert resumed["sessionId"] != joined["sessionId"]  # a session of the new node
        mode = await bob.expect("media-mode")
        assert (mode["mode"], mode["reason"]) == ("sfu", "session-moved")
        async with asyncio.timeout(10):
            while await janus_publishers(lab, room_id) != ["alice"]:  # noqa: ASYNC110 - Janus has no event for it
                await asyncio.sleep(0.1)
        while [f["userId"] for f in (await alice.expect("media-feeds"))["feeds"]] != ["alice"]:
            pass

        await bob.close()
        await bob.republish()
        await alice.feeds_with("bob")
        alice.track_came.clear()
        await alice.subscribe("bob", connection="again")  # his new feed
        await alice.frame()
        assert await janus_publishers(lab, room_id) == ["alice", "bob"]

        await bob.client.send({"type": "leave-room"})
        while [f["userId"] for f in (await alice.expect("media-feeds"))["feeds"]] != ["alice"]:
            pass
        async with asyncio.timeout(10):
            while await janus_publishers(lab, room_id) != ["alice"]:  # noqa: ASYNC110 - Janus has no event for it
                await asyncio.sleep(0.1)
        await old.close()
    finally:
        await closed(alice, bob)
