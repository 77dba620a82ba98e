"""The server's media bridge over several media servers (in-memory twins): each room
pinned to the least loaded one that is up, requests of one member in order, and the
rooms of a media server that goes moved to another."""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.media import Jsep, SubscriberOffer
from hubbub.media.memory import MemoryMediaServer
from hubbub.media.placements import LocalPlacements, Placement
from hubbub.protocol.errors import ErrorCode
from hubbub.server.media import MediaBridge

OFFER = Jsep("offer", "v=0\r\nm=audio 9 x\r\nm=video 9 x\r\n")


class Hub:
    """What the bridge tells the hub, recorded."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    def _note(self, *what: Any) -> None:
        self.told.append(what)
        self.changed.set()

    def media_answered(self, session_id: str, connection: str, answer: Jsep, ref: Any) -> None:
        self._note("answered", session_id, connection, ref)

    def media_offered(
        self, session_id: str, connection: str, offer: SubscriberOffer, ref: Any
    ) -> None:
        self._note("offered", session_id, connection, [s.feed for s in offer.streams], ref)

    def media_failed(self, session_id: str, connection: str, code: ErrorCode, ref: Any) -> None:
        self._note("failed", session_id, connection, code, ref)

    def feed_up(self, room: str, session_id: str) -> None:
        self._note("feed-up", room, session_id)

    def media_closed(self, room: str, session_id: str, connection: str) -> None:
        self._note("closed", room, session_id, connection)

    def media_lost(self, rooms: list[str]) -> None:
        self._note("lost", sorted(rooms))

    async def until(self, what: tuple[Any, ...]) -> None:
        async with asyncio.timeout(5):
            while what not in self.told:
                self.changed.clear()
                await self.changed.wait()


async def bridge_of(*names: str) -> tuple[MediaBridge, list[MemoryMediaServer], Hub]:
    servers = [MemoryMediaServer(name) for name in names]
    bridge = MediaBridge(list(servers))
    hub = Hub()
    bridge.attach(hub)
    await bridge.start()
    return bridge, servers, hub


async def test_rooms_go_to_the_least_loaded_media_server() -> None:
    bridge, (one, two), hub = await bridge_of("one", "two")
    bridge.publish("a", "s1", "ann", OFFER, 1)
    await hub.until(("feed-up", "a", "s1"))
    bridge.publish("b", "s2", "bob", OFFER, 2)
    await hub.until(("feed-up", "b", "s2"))
    assert (bridge.pinned("a"), bridge.pinned("b")) == ("one", "two")
    # A room stays where it is, whatever the load.
    bridge.publish("a", "s3", "cat", OFFER, 3)
    await hub.until(("feed-up", "a", "s3"))
    bridge.subscribe("a", "s1", "main", ["cat"], 4)
    await hub.until(("offered", "s1", "main", ["cat", "cat"], 4))
    assert bridge.pinned("a") == "one"
    assert one.load() == 3
    assert two.load() == 1
    await bridge.stop()


async def test_a_lost_media_server_moves_its_rooms() -> None:
    bridge, (one, _two), hub = await bridge_of("one", "two")
    bridge.publish("a", "s1", "ann", OFFER, 1)
    await hub.until(("feed-up", "a", "s1"))
    one.crash()
    assert ("lost", ["a"]) in hub.told
    assert bridge.pinned("a") is None
    assert not await bridge.health()
    # The members publish again: the room is made on the media server that is up.
    bridge.publish("a", "s1", "ann", OFFER, 2)
    await hub.until(("answered", "s1", "publisher", 2))
    assert bridge.pinned("a") == "two"
    assert bridge.moved == 1
    await bridge.stop()


async def test_with_no_media_server_up_requests_fail_as_unavailable() -> None:
    bridge, (one,), hub = await bridge_of("one")
    one.crash()
    bridge.publish("a", "s1", "ann", OFFER, 7)
    await hub.until(("failed", "s1", "publisher", ErrorCode.MEDIA_UNAVAILABLE, 7))
    one.restore()
    bridge.publish("a", "s1", "ann", OFFER, 8)
    await hub.until(("answered", "s1", "publisher", 8))
    await bridge.stop()


async def test_a_members_requests_run_in_the_order_it_made_them() -> None:
    bridge, (one,), hub = await bridge_of("one")
    bridge.publish("a", "s1", "ann", OFFER, 1)
    # The candidate is for the connection the publish makes: it waits for it.
    bridge.trickle(
        "a", "s1", "publisher", {"candidate": "candidate:1 1 udp 1 198.51.100.1 9 typ host"}
    )
    bridge.trickle("a", "s1", "publisher", None)
    await hub.until(("feed-up", "a", "s1"))
    await asyncio.sleep(0)
    assert [candidate for _, _, candidate in one.trickled][-1] is None
    assert len(one.trickled) == 2
    bridge.kick("a", "ann", "s1", ["publisher"])
    bridge.close_room("a")
    await asyncio.sleep(0.05)
    assert one.stats().rooms == 0
    await bridge.stop()


class SlowPlacements(LocalPlacements):
    """A lone node's placements, whose releases wait until let go (as a release
    through Redis takes a round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def release(self, room: str, placement: Placement) -> bool:
        await self.go.wait()
        return await super().release(room, placement)


async def test_a_room_asked_for_again_while_its_close_is_under_way_is_there() -> None:
    server = MemoryMediaServer("one")
    placements = SlowPlacements()
    bridge = MediaBridge([server], placements)
    hub = Hub()
    bridge.attach(hub)
    await bridge.start()
    bridge.publish("a", "s1", "ann", OFFER, 1)
    await hub.until(("feed-up", "a", "s1"))
    bridge.close_room("a")  # its release waits
    bridge.publish("a", "s2", "bob", OFFER, 2)  # the room is needed again meanwhile
    await asyncio.sleep(0.05)
    placements.go.set()
    await hub.until(("feed-up", "a", "s2"))
    bridge.subscribe("a", "s3", "main", ["bob"], 3)
    await hub.until(("offered", "s3", "main", ["bob", "bob"], 3))
    assert server.stats().rooms == 1
    await bridge.stop()


class OrphanedPlacements(LocalPlacements):
    """Placements with rooms that a dead node left, as a cluster's say."""

    def __init__(self, orphans: list[tuple[str, Placement]], taken_elsewhere: set[str]) -> None:
        super().__init__()
        self.left = orphans
        self.taken_elsewhere = taken_elsewhere

    async def orphans(self) -> list[tuple[str, Placement]]:
        return list(self.left)

    async def take_orphan(self, room: str, placement: Placement) -> bool:
        self.left.remove((room, placement))
        return room not in self.taken_elsewhere


async def test_rooms_a_dead_node_left_are_removed_where_this_node_reaches_them() -> None:
    one, two = MemoryMediaServer("one"), MemoryMediaServer("two")
    # As the dead node made them (the twin is one process: made through it here).
    for server, room in ((one, "left"), (one, "taken"), (two, "elsewhere")):
        await server.start()
        await server.create_room(room, publishers=4, room_id=f"{room}~1", secret=f"{room}-s")
    orphans = [
        ("left", Placement("one", "left~1", "left-s")),
        ("taken", Placement("one", "taken~1", "taken-s")),
        ("elsewhere", Placement("two", "elsewhere~1", "elsewhere-s")),
        ("unknown", Placement("three", "unknown~1", "unknown-s")),
    ]
    placements = OrphanedPlacements(list(orphans), taken_elsewhere={"taken"})
    bridge = MediaBridge([one], placements, orphan_sweep=0.05)  # "two" is not this node's
    bridge.attach(Hub())
    await bridge.start()
    async with asyncio.timeout(5):  # swept by itself
        while bridge.orphans_removed < 1:  # noqa: ASYNC110 - the sweep has no event
            await asyncio.sleep(0.01)
    assert one.stats().rooms == 1  # "taken" is another node's to remove
    assert two.stats().rooms == 1  # for a node that reaches it
    assert [room for room, _ in placements.left] == ["elsewhere", "unknown"]
    assert await bridge.remove_orphans() == 0
    await bridge.stop()
