"""Every close code the server sends (``CloseCode``): after a final one
(``FINAL_CLOSE_CODES``) the client stops, and says so by the code's name; after any
other it reconnects and is back in its room. The same holds when the close ends an
attempt to reconnect (docs/protocol.md, "A client's reconnect loop").

Where the server sends the code itself, it is made to, for real: an admin removes
the member or ends the room through the HTTP API (4003, 4004), the same token joins
from elsewhere (4009), another connection resumes the session (4010), the client
floods (1008) or sends a frame over the server's limit (1009), the server shuts down
(1001). The codes only a misbehaving client would get (a broken frame...) come from
the relay, closing the client's connection as the server would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hubbub.protocol.errors import FINAL_CLOSE_CODES, CloseCode
from tests.conformance.conftest import Hubs, Sdk
from tests.conformance.drivers import RECONNECT_MIN, ClientDriver
from tests.conformance.network import Hub, Member
from tests.tokens import token

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOM = "team"
ALICE_TOKEN = token("alice", ROOM)
NO_RETURN = 5 * RECONNECT_MIN
"""Seconds after which a client that was going to reconnect would have tried (its
first attempt waits at most ``RECONNECT_MIN``), with room for a busy machine."""


async def remove_participant(hub: Hub, alice: ClientDriver) -> None:
    await hub.api("DELETE", f"/api/rooms/{ROOM}/participants/alice")


async def end_room(hub: Hub, alice: ClientDriver) -> None:
    await hub.api("DELETE", f"/api/rooms/{ROOM}")


async def join_with_the_same_token(hub: Hub, alice: ClientDriver) -> None:
    assert alice.line.up("join-room")[0].message["token"] == ALICE_TOKEN
    await hub.member(ROOM, "alice", token=ALICE_TOKEN)


async def resume_on_another_connection(hub: Hub, alice: ClientDriver) -> None:
    other = await Member.connect(hub.url, "alice")
    hub.members.append(other)
    await other.resume(*alice.line.session())


async def flood(hub: Hub, alice: ClientDriver) -> None:
    for k in range(8):
        await alice.chat(f"flood {k}")


async def send_a_frame_too_big(hub: Hub, alice: ClientDriver) -> None:
    await alice.chat("x" * 5000)


async def shut_the_server_down(hub: Hub, alice: ClientDriver) -> None:
    await hub.shut_down()
    await hub.start_again()


Cause = Callable[[Hub, ClientDriver], Awaitable[None]]

CAUSES: dict[int, tuple[Cause, dict[str, Any], dict[str, Any]]] = {
    # code: (what makes the server send it, the server's settings, the client's options)
    CloseCode.GOING_AWAY: (shut_the_server_down, {}, {}),
    CloseCode.POLICY_VIOLATION: (
        flood,
        {"message_rate": 1.0, "message_burst": 1, "flood_disconnect_after": 3},
        {},
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        send_a_frame_too_big,
        {"max_frame_bytes": 2048},
        {"long_chat": True},
    ),
    CloseCode.REMOVED: (remove_participant, {}, {}),
    CloseCode.ROOM_ENDED: (end_room, {}, {}),
    CloseCode.REPLACED: (join_with_the_same_token, {}, {"token": ALICE_TOKEN}),
    CloseCode.RESUMED_ELSEWHERE: (resume_on_another_connection, {}, {}),
}
"""The codes the server is made to send; the others come from the relay."""


@pytest.mark.parametrize("code", [int(code) for code in CloseCode])
async def test_a_close_code_stops_the_client_or_is_reconnected_after(
    sdk: Sdk, hubs: Hubs, code: int
) -> None:
    cause, settings, options = CAUSES.get(code, (None, {}, {}))
    hub = await hubs.start(**settings)
    alice = await sdk.join(hub, ROOM, "alice", **options)
    if cause is None:
        await alice.line.close(code)
    else:
        await cause(hub, alice)
    await expect_the_rule(hub, alice, code, connections=1)
    assert alice.line.closes[0] == ("relay" if cause is None else "hub", code)
    if code == CloseCode.GOING_AWAY:
        # sessions do not outlive the server: back as a new member, no resume tried
        assert alice.line.up("resume") == []


@pytest.mark.parametrize(
    "code",
    [
        CloseCode.REPLACED,
        CloseCode.RESUMED_ELSEWHERE,
        CloseCode.REMOVED,
        CloseCode.PROTOCOL_ERROR,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SLOW_CONSUMER,
    ],
)
async def test_a_close_code_that_ends_a_reconnection_attempt_has_the_same_effect(
    sdk: Sdk, hub: Hub, code: int
) -> None:
    """The connection is cut; the client's next connection is closed with ``code``
    as soon as it says hello (its resume)."""
    alice = await sdk.join(hub, ROOM, "alice")
    alice.line.close_hello_with = code
    alice.line.cut()
    await expect_the_rule(hub, alice, code, connections=2)


async def expect_the_rule(hub: Hub, alice: ClientDriver, code: int, connections: int) -> None:
    """After a close with ``code`` on the ``connections``-th connection: the client
    stopped with the code's name, or it is back in its room."""
    final = FINAL_CLOSE_CODES.get(CloseCode(code))
    if final is not None:
        closed = await alice.expect("closed")
        assert closed.data == {"name": final, "code": code}
        assert alice.close_reason() == final
        await asyncio.sleep(NO_RETURN)
        assert alice.line.connections == connections
        assert await alice.state() == "closed"
        assert alice.of("back") == []
        return
    await alice.expect("back")
    if connections == 1:  # the client saw the code itself, not a connection lost
        assert alice.of("connection-lost")[0].data["close_code"] == code, alice.events
    assert await alice.state() == "open"
    assert alice.of("closed") == []
    newcomer = await hub.member(ROOM, "zoe")
    assert "alice" in [member["userId"] for member in newcomer.joined["participants"]]
    await alice.expect("member-joined", user="zoe")
    await newcomer.chat_stored("welcome back")
    await alice.expect("chat", message="welcome back")
    assert "alice" in await hub.members_of(ROOM)
