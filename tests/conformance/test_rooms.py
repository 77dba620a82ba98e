"""Joining a room: the room as it is, then who comes and goes, in order."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Sdk
from tests.conformance.network import Hub

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_join_tells_the_room_then_who_comes_and_goes(sdk: Sdk, hub: Hub) -> None:
    carol = await hub.member("team", "carol")
    alice = await sdk.join(hub, "team", "alice")
    joined = alice.of("joined")[0]
    assert joined["user"] == "alice"
    assert joined["participants"] == ["carol"]
    await carol.expect("user-joined", userId="alice")

    bob = await hub.member("team", "bob")
    await alice.expect("member-joined", user="bob")
    assert await alice.participants() == ["bob", "carol"]
    await bob.close()
    await alice.expect("member-left", user="bob")
    assert await alice.participants() == ["carol"]
    assert [(e.kind, e.data.get("user")) for e in alice.events] == [
        ("joined", "alice"),
        ("member-joined", "bob"),
        ("member-left", "bob"),
    ]

    await alice.leave()
    await carol.expect("user-left", userId="alice")
