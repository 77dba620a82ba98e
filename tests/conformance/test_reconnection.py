"""A lost connection (docs/protocol.md, "Reconnecting and resuming"): cut for real
(both TCP connections aborted, no close frame), the client resumes its session and
gets what it missed, each message once and in order; when the session is gone, it
joins afresh and fetches the chat it missed from the history, none of it twice.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Hubs, Sdk
from tests.conformance.network import WAIT, Hub, Member
from tests.faults.resuming import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_cut_connection_resumes_with_what_was_missed_once_in_order(
    sdk: Sdk, hub: Hub
) -> None:
    carol = await hub.member("team", "carol")
    alice = await sdk.join(hub, "team", "alice")
    await carol.chat_stored("c0", "c1")
    await alice.expect("chat", message="c1")

    alice.line.refusing = True  # the network stays down for a while
    alice.line.cut()
    await alice.expect("connection-lost", close_code=1006)  # no close frame
    await carol.expect("participant-updated", userId="alice", connection="reconnecting")
    await carol.chat_stored("c2", "c3")
    bob = await hub.member("team", "bob")
    await carol.chat_stored("c4")
    await alice.chat("while away")
    alice.line.refusing = False

    back = await alice.expect("back")
    assert back.data == {"how": "resumed", "refused": None}
    await alice.expect("chat-stored", message="while away")
    await carol.chat_stored("c5")
    await alice.expect("chat", message="c5")
    stored = await hub.stored("team")
    assert [(e["message"], e["seq"]) for e in alice.of("chat")] == [
        (text, seq) for seq, user, text, _ in stored if user == "carol"
    ]
    # what else happened meanwhile is told too, once, in its place
    told = [(e.kind, e.data.get("message") or e.data.get("user")) for e in alice.events]
    assert told.count(("member-joined", "bob")) == 1
    assert told.index(("chat", "c3")) < told.index(("member-joined", "bob"))
    assert told.index(("member-joined", "bob")) < told.index(("chat", "c4"))
    await bob.expect("chat", userId="alice", message="while away")
    assert [text for _, user, text, _ in stored if user == "carol"] == [f"c{k}" for k in range(6)]
    # one session throughout: the others never saw alice go
    await carol.expect("participant-updated", userId="alice", connection="connected")
    assert carol.seen("user-left") == []
    assert len(carol.seen("user-joined", userId="alice")) == 1  # the first join only
    assert [m["message"] for m in carol.seen("chat", userId="alice")] == ["while away"]
    assert [text for _, _, text, _ in stored].count("while away") == 1
    # (the first thing said on the new connection)
    assert alice.line.up("resume")[0] == next(f for f in alice.line.frames if f.connection == 2)


async def lose_the_session_by_the_grace_period(hub: Hub, carol: Member) -> Member:
    await carol.expect("user-left", userId="alice")
    return carol


async def lose_the_session_by_a_restart(hub: Hub, carol: Member) -> Member:
    await hub.shut_down()
    await hub.start_again()
    return await hub.member("team", "dave")


@pytest.mark.parametrize("seen_before", [0, 2])
@pytest.mark.parametrize(
    "session_lost", [lose_the_session_by_the_grace_period, lose_the_session_by_a_restart]
)
async def test_a_refused_resume_joins_afresh_and_fetches_the_missed_chat(
    sdk: Sdk, hubs: Hubs, seen_before: int, session_lost: object
) -> None:
    """Alice's network stays down until her session is gone; more chat is stored
    meanwhile than room-joined carries. She tries to resume, is refused, joins as a
    new member, and is told every message she missed, in order, and none she had seen."""
    hub = await hubs.start(resume_grace=1.0, history_on_join=3, max_history_page=4)
    carol = await hub.member("team", "carol")
    alice = await sdk.join(hub, "team", "alice")
    seen = [f"c{k}" for k in range(seen_before)]
    await carol.chat_stored(*seen)
    for text in seen:
        await alice.expect("chat", message=text)

    alice.line.refusing = True
    alice.line.cut()
    await alice.expect("connection-lost")
    other = await session_lost(hub, carol)  # type: ignore[operator]
    missed = [f"d{k}" for k in range(10)]
    await other.chat_stored(*missed)
    alice.line.refusing = False

    back = await alice.expect("back")
    assert back.data == {"how": "rejoined", "refused": "unknown-session"}
    await alice.expect("chat", message=missed[-1])
    await other.chat_stored("live")
    await alice.expect("chat", message="live")
    told = [(e["message"], e["seq"]) for e in alice.of("chat")]
    assert told == [(text, seq) for seq, text in enumerate([*seen, *missed, "live"], start=1)]
    resumes = alice.line.up("resume")
    assert len(resumes) == 1
    assert alice.line.down("error", code="resume-failed")[0].connection == resumes[0].connection


async def test_a_rejoin_refused_as_user_id_taken_keeps_trying_until_the_place_is_free(
    sdk: Sdk, hubs: Hubs
) -> None:
    """Alice's session is gone, and someone else joined under her name meanwhile (open
    mode): each rejoin is refused with user-id-taken, a refusal that passes with time.
    She keeps trying, with backoff, and is back once the name is free."""
    hub = await hubs.start(resume_grace=1.0)
    carol = await hub.member("team", "carol")
    alice = await sdk.join(hub, "team", "alice")
    alice.line.refusing = True
    alice.line.cut()
    await carol.expect("user-left", userId="alice")
    other_alice = await hub.member("team", "alice")
    alice.line.refusing = False

    await wait_for(lambda: len(alice.line.down("error", code="user-id-taken")) >= 3, WAIT)
    assert await alice.state() == "reconnecting"
    await other_alice.close()
    back = await alice.expect("back")
    assert back["how"] == "rejoined"
    assert alice.of("closed") == []
    # (carol saw her join, the other alice come and go, then her again)
    await wait_for(lambda: len(carol.seen("user-joined", userId="alice")) == 3, WAIT)
