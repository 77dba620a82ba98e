"""Lost connections, the grace period and resume, in the core: no network, a hand clock."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.auth import Admission, AuthMode, TokenVerifier, VerificationKeys
from hubbub.core import Limits
from hubbub.core.session import IllegalTransition, LinkState
from hubbub.protocol import ErrorCode
from tests.tokens import SECRET, token
from tests.unit.helpers import Harness

VERIFIER = TokenVerifier(VerificationKeys.load(SECRET, None))


def two_in_a_room(h: Harness) -> dict[str, Any]:
    """alice (client "a") and bob ("b") in room "r"; returns bob's room-joined."""
    h.join("a", "r", "alice")
    joined = h.join("b", "r", "bob")
    h.take("a")
    return joined


def resume(h: Harness, name: str, joined: dict[str, Any], last_n: int, **extra: Any) -> None:
    h.connect(name)
    h.send(
        name,
        {
            "type": "resume",
            "sessionId": joined["sessionId"],
            "resumeToken": joined["resumeToken"],
            "lastN": last_n,
            **extra,
        },
    )


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


class TestNumbering:
    def test_every_message_of_a_session_is_numbered_from_one_without_gaps(self) -> None:
        h = Harness()
        h.connect("a")
        h.send("a", {"type": "ping"})
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.send("b", {"type": "chat", "message": "hi"})
        h.send("b", {"type": "signal", "targetUserId": "alice", "signal": {}})
        wire = h.wire("a")
        assert [m["n"] for m in wire] == [1, 2, 3, 4, 5]
        assert types(wire) == ["pong", "room-joined", "user-joined", "chat", "signal"]
        assert [m["n"] for m in h.wire("b")] == [1, 2]  # room-joined, chat-ack

    def test_room_joined_gives_a_secret_resume_token_per_session(self) -> None:
        h = Harness()
        a = h.join("a", "r", "alice")
        b = h.join("b", "r", "bob")
        assert len(a["resumeToken"]) >= 24
        assert a["resumeToken"] != b["resumeToken"]

    def test_the_buffer_keeps_the_last_messages_by_count_and_by_bytes(self) -> None:
        h = Harness(Limits(resume_buffer_messages=3, resume_buffer_bytes=1000))
        session = h.connect("a")
        for _ in range(5):
            session.number(b"{}")
        assert (session.first_held, session.last_n, len(session.replay)) == (3, 5, 3)
        session.number(b"{" + b" " * 700 + b"}")
        session.number(b"{" + b" " * 700 + b"}")
        assert len(session.replay) == 1  # two of those do not fit in 1000 bytes
        assert session.replay_bytes == 702
        assert session.held_after(6) == [session.replay[0]]
        assert session.held_after(5) is None

    def test_a_broadcast_is_held_once_not_copied_per_member(self) -> None:
        h = Harness()
        two_in_a_room(h)
        h.join("c", "r", "carol")
        h.send("c", {"type": "chat", "message": "one payload"})
        a, b = h.clients["a"], h.clients["b"]
        assert a.replay[-1] is b.replay[-1]


class TestLostConnection:
    def test_a_clean_close_is_a_leave_at_once(self) -> None:
        h = Harness()
        two_in_a_room(h)
        h.hang_up("b")
        assert h.take("a") == [{"type": "user-left", "userId": "bob"}]
        assert h.hub.detached == {}

    def test_a_lost_connection_keeps_the_place_and_the_room_sees_it_reconnecting(self) -> None:
        h = Harness()
        two_in_a_room(h)
        h.lose("b")
        assert h.take("a") == [
            {"type": "participant-updated", "userId": "bob", "connection": "reconnecting"}
        ]
        assert h.hub.rooms.get("r").members["bob"] is h.clients["b"]
        joined = h.join("c", "r", "carol")
        assert [(p["userId"], p.get("connection")) for p in joined["participants"]] == [
            ("alice", None),
            ("bob", "reconnecting"),
        ]

    def test_after_the_grace_period_it_leaves(self) -> None:
        h = Harness(Limits(resume_grace=30))
        two_in_a_room(h)
        h.lose("b")
        h.take("a")
        h.clock.now += 29
        h.hub.tick()
        assert h.take("a") == []
        h.clock.now += 1
        h.hub.tick()
        assert h.take("a") == [{"type": "user-left", "userId": "bob"}]
        assert h.clients["b"].session_id not in h.hub.sessions
        assert h.hub.detached == {}

    def test_a_session_not_in_a_room_ends_at_once(self) -> None:
        h = Harness()
        session = h.connect("a")
        h.lose("a")
        assert session.state is LinkState.ENDED
        assert h.hub.sessions == {}

    def test_a_session_whose_join_waits_for_the_store_ends_at_once(self) -> None:
        h = Harness(auto=False)
        h.connect("a")
        h.send("a", {"type": "join-room", "room": "r", "userId": "alice"})
        h.lose("a")
        h.answer()
        assert h.take("a") == []
        assert h.hub.sessions == {}

    def test_messages_sent_during_the_grace_period_are_numbered_and_kept(self) -> None:
        h = Harness()
        two_in_a_room(h)
        h.wire("b")
        h.lose("b")
        h.send("a", {"type": "chat", "message": "are you there?"})
        h.send("a", {"type": "signal", "targetUserId": "bob", "signal": {"k": 1}})
        bob = h.clients["b"]
        assert bob.last_n == 3  # room-joined, then the chat and the signal
        held = bob.held_after(1)
        assert held is not None
        assert [p[:15] for p in held] == [
            b'{"type":"chat",',
            b'{"type":"signal',
        ]
        assert h.wire("b") == []

    def test_the_slot_is_taken_during_the_grace_period_in_open_mode_and_says_how_long(
        self,
    ) -> None:
        """The refusal says how long the id is held for a resume: a client that
        restarted after a crash knows how long to wait for its old session to end."""
        h = Harness()
        two_in_a_room(h)
        h.connect("c")
        h.send("c", {"type": "join-room", "room": "r", "userId": "bob"})
        [refused] = h.take("c")
        assert refused["code"] == "user-id-taken"
        assert "heldForMs" not in refused  # held by a connected member: not for a resume
        h.lose("b")
        h.clock.now += 12.5
        h.connect("b2")
        h.send("b2", {"type": "join-room", "room": "r", "userId": "bob"})
        [refused] = h.take("b2")
        assert refused["code"] == "user-id-taken"
        assert refused["heldForMs"] == 17_500  # what is left of the 30 s grace
        h.clock.now += 17.5
        h.hub.tick(h.clock.now)
        h.send("b2", {"type": "join-room", "room": "r", "userId": "bob"})
        assert "room-joined" in types(h.take("b2"))

    def test_a_token_for_the_same_user_takes_the_place_of_a_detached_session(self) -> None:
        h = Harness(admission=Admission(AuthMode.TOKEN, VERIFIER))
        h.join("a", "r", token=token("alice"))
        h.join("b", "r", token=token("bob"))
        h.take("a")
        h.lose("b")
        h.take("a")
        h.join("b2", "r", token=token("bob"))
        assert types(h.take("a")) == ["user-left", "user-joined"]
        assert h.clients["b"].session_id not in h.hub.sessions
        assert h.hub.detached == {}

    def test_an_admin_removing_a_detached_member_ends_it_for_good(self) -> None:
        h = Harness(admission=Admission(AuthMode.TOKEN, VERIFIER))
        h.join("a", "r", token=token("alice", grants=["join", "admin"]))
        joined = h.join("b", "r", token=token("bob"))
        h.take("a")
        h.lose("b")
        h.take("a")
        assert h.hub.remove_participant("r", "bob")
        assert h.take("a") == [{"type": "user-left", "userId": "bob"}]
        resume(h, "b2", joined, 1)
        assert h.take("b2")[0]["reason"] == "unknown-session"

    def test_ending_the_room_ends_its_detached_members(self) -> None:
        h = Harness()
        two_in_a_room(h)
        h.lose("b")
        assert h.hub.end_room("r") == 2
        assert h.clients["b"].session_id not in h.hub.sessions
        assert h.hub.detached == {}

    def test_a_hidden_member_comes_and_goes_unannounced(self) -> None:
        h = Harness(admission=Admission(AuthMode.TOKEN, VERIFIER))
        h.join("a", "r", token=token("alice"))
        joined = h.join("b", "r", token=token("bot", grants=["join", "hidden"]))
        h.lose("b")
        resume(h, "b2", joined, 1)
        assert h.take("a") == []
        assert types(h.take("b2")) == ["resumed"]


class TestResume:
    def test_resume_replays_what_was_missed_in_order_exactly_once_then_goes_live(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        first = h.wire("b")
        assert [m["n"] for m in first] == [1]
        h.send("a", {"type": "chat", "message": "one"})  # n=2, bob saw it
        assert h.wire("b")[0]["n"] == 2
        h.send("a", {"type": "chat", "message": "two"})  # n=3, lost on the way
        h.lose("b")
        h.take("a")
        h.send("a", {"type": "chat", "message": "three"})  # n=4, kept
        h.send("a", {"type": "signal", "targetUserId": "bob", "signal": {"s": 1}})  # n=5
        resume(h, "b2", joined, 2, ref="r1")
        wire = h.wire("b2")
        assert wire[0] == {
            "type": "resumed",
            "sessionId": joined["sessionId"],
            "room": "r",
            "userId": "bob",
            "lastN": 5,
            "ref": "r1",
        }
        assert [(m["n"], m["type"]) for m in wire[1:]] == [(3, "chat"), (4, "chat"), (5, "signal")]
        assert [m.get("message") for m in wire[1:3]] == ["two", "three"]
        assert h.take("a")[-1:] == [
            {"type": "participant-updated", "userId": "bob", "connection": "connected"}
        ]
        h.send("a", {"type": "chat", "message": "live"})
        assert h.wire("b2") == [
            {
                "n": 6,
                "type": "chat",
                "message": "live",
                "userId": "alice",
                "id": "m4",
                "seq": 4,
                "ts": h.storage.now_ms,
            }
        ]
        # the resumed session is bob's, in his room, under his id
        h.send("b2", {"type": "chat", "message": "back"})
        assert [m["userId"] for m in h.take("a") if m["type"] == "chat"] == ["bob"]
        assert h.clients["b2"] is h.clients["b"]
        assert h.hub.detached == {}

    def test_resume_with_nothing_missed_replays_nothing(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.lose("b")
        resume(h, "b2", joined, 1)
        assert types(h.wire("b2")) == ["resumed"]

    def test_a_wrong_token_is_refused_like_an_unknown_session_and_changes_nothing(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.lose("b")
        h.take("a")
        resume(h, "x", {**joined, "resumeToken": "guess" + joined["resumeToken"][5:]}, 1)
        resume(h, "y", {**joined, "sessionId": "nope"}, 1)
        [wrong_token] = h.take("x")
        [unknown] = h.take("y")
        for refusal in (wrong_token, unknown):
            assert refusal["code"] == "resume-failed"
            assert refusal["reason"] == "unknown-session"
        assert wrong_token["message"] == unknown["message"]
        assert h.take("a") == []
        resume(h, "b2", joined, 1)  # the right one still works
        assert types(h.take("b2")) == ["resumed"]

    def test_resume_after_the_grace_period_fails_and_a_fresh_join_works(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.lose("b")
        h.clock.now += 31
        h.hub.tick()
        resume(h, "b2", joined, 1)
        assert h.take("b2")[0]["reason"] == "unknown-session"
        assert h.join("b2", "r", "bob")["userId"] == "bob"

    def test_an_overrun_during_the_grace_period_ends_the_session_early(self) -> None:
        h = Harness(Limits(resume_buffer_messages=4))
        joined = two_in_a_room(h)
        h.lose("b")
        h.take("a")
        for i in range(4):
            h.clock.now += 1
            h.send("a", {"type": "chat", "message": f"m{i}"})
        h.hub.tick()  # n 2..5, all sent since the loss, are there
        assert h.clients["b"].session_id in h.hub.detached
        h.send("a", {"type": "chat", "message": "one too many"})
        h.hub.tick()
        assert h.clients["b"].session_id not in h.hub.sessions
        assert types(h.take("a")) == ["chat-ack"] * 5 + ["user-left"]
        resume(h, "b2", joined, 1)
        assert h.take("b2")[0]["reason"] == "unknown-session"

    def test_a_resume_from_too_far_back_fails_with_overrun_and_frees_the_place(self) -> None:
        h = Harness(Limits(resume_buffer_messages=2))
        joined = two_in_a_room(h)
        for i in range(3):
            h.clock.now += 1
            h.send("a", {"type": "chat", "message": f"m{i}"})
        # The old connection still looks alive (half-open); the client has n=1 only.
        resume(h, "b2", joined, 1)
        [refusal] = h.take("b2")
        assert (refusal["code"], refusal["reason"]) == ("resume-failed", "overrun")
        assert h.outbox.closed_links["b"] == 4010
        assert types(h.take("a"))[-1] == "user-left"
        assert h.join("b2", "r", "bob")["userId"] == "bob"

    def test_a_half_open_old_connection_is_closed_and_the_new_one_takes_over(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.send("a", {"type": "chat", "message": "one"})
        resume(h, "b2", joined, 1)  # the old connection never reported a loss
        assert h.outbox.closed_links["b"] == 4010
        wire = h.wire("b2")
        assert [(m.get("n"), m["type"]) for m in wire] == [(None, "resumed"), (2, "chat")]
        # the old connection's disconnect, when it comes, changes nothing
        stub = h.clients["b"]
        h.hub.disconnect(stub, lost=True)
        assert h.hub.rooms.get("r").members["bob"] is h.clients["b2"]
        h.send("a", {"type": "chat", "message": "two"})
        assert [m["n"] for m in h.wire("b2")] == [3]

    def test_resume_twice_from_two_new_connections_the_last_one_wins(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.lose("b")
        h.send("a", {"type": "chat", "message": "one"})
        resume(h, "b2", joined, 1)
        assert [m.get("n") for m in h.wire("b2")] == [None, 2]
        resume(h, "b3", joined, 1)
        assert h.outbox.closed_links["b2"] == 4010
        assert [m.get("n") for m in h.wire("b3")] == [None, 2]
        h.send("a", {"type": "chat", "message": "two"})
        assert [m["n"] for m in h.wire("b3")] == [3]
        assert h.wire("b2") == []

    def test_resume_on_a_connection_already_in_a_room_is_refused(self) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.lose("b")
        resume(h, "b2", joined, 1)
        h.take("b2")
        h.send("b2", {"type": "resume", **{k: joined[k] for k in ("sessionId", "resumeToken")}})
        assert h.take("b2")[0]["code"] == "bad-message"  # lastN missing
        h.send(
            "b2",
            {
                "type": "resume",
                "sessionId": joined["sessionId"],
                "resumeToken": joined["resumeToken"],
                "lastN": 1,
            },
        )
        assert h.take("b2")[0]["code"] == "already-in-room"

    @pytest.mark.parametrize("last_n", [-1, 99])
    def test_a_last_n_the_session_never_sent_is_refused(self, last_n: int) -> None:
        h = Harness()
        joined = two_in_a_room(h)
        h.lose("b")
        resume(h, "b2", joined, last_n)
        assert h.take("b2")[0]["code"] == "bad-message"
        resume(h, "b3", joined, 1)
        assert types(h.take("b3")) == ["resumed"]

    def test_a_handshake_token_for_another_user_cannot_resume(self) -> None:
        h = Harness(admission=Admission(AuthMode.TOKEN, VERIFIER))
        h.join("a", "r", token=token("alice"))
        joined = h.join("b", "r", token=token("bob"))
        h.lose("b")
        h.hub.connect("m", VERIFIER.verify(token("mallory")))
        h.clients["m"] = next(s for s in h.hub.sessions.values() if s.link == "m")
        h.send(
            "m",
            {
                "type": "resume",
                "sessionId": joined["sessionId"],
                "resumeToken": joined["resumeToken"],
                "lastN": 1,
            },
        )
        assert h.take("m")[0]["code"] == "forbidden"
        resume(h, "b2", joined, 1)  # without a token, the resume token suffices
        assert types(h.take("b2")) == ["resumed"]

    def test_chat_sent_again_after_a_resume_is_stored_once(self) -> None:
        h = Harness(auto=False)
        joined = h.join_now("a", "r", "alice")
        joined = h.join_now("b", "r", "bob")
        h.take("a")
        h.send("b", {"type": "chat", "message": "hello", "clientId": "c1"})
        h.lose("b")
        h.answer()  # stored while bob was away: the ack waits in the buffer
        assert [m["message"] for m in h.take("a") if m["type"] == "chat"] == ["hello"]
        resume(h, "b2", joined, 1)
        h.answer()
        wire = h.wire("b2")
        assert types(wire) == ["resumed", "chat-ack"]
        # a client that had not seen the ack sends it again: stored once, acked as duplicate
        h.send("b2", {"type": "chat", "message": "hello", "clientId": "c1"})
        h.answer()
        [ack] = h.take("b2")[-1:]
        assert ack["duplicate"] is True
        assert ack["seq"] == 1
        assert [m["type"] for m in h.take("a")] == ["participant-updated"]
        assert len(h.storage.messages["r"]) == 1

    def test_chat_sent_again_after_a_fresh_join_is_stored_once(self) -> None:
        h = Harness()
        two_in_a_room(h)
        h.send("b", {"type": "chat", "message": "hello", "clientId": "c1"})
        h.hang_up("b")
        h.take("a")
        h.join("b2", "r", "bob")
        h.send("b2", {"type": "chat", "message": "hello", "clientId": "c1"})
        [ack] = h.take("b2")
        assert ack["duplicate"] is True
        assert types(h.take("a")) == ["user-joined"]
        assert len(h.storage.messages["r"]) == 1


def test_a_restart_tells_every_client_when_to_come_back_spread_out() -> None:
    h = Harness(rng=random.Random(7))
    two_in_a_room(h)
    h.lose("b")
    h.connect("c")
    assert h.hub.announce_restart(3000) == 2  # not the detached session
    delays = [h.take(name)[-1]["afterMs"] for name in ("a", "c")]
    assert all(0 <= delay <= 3000 for delay in delays)
    assert delays[0] != delays[1]
    h.hub.stop_input()
    h.send("a", {"type": "ping"})
    assert h.take("a") == []


def test_the_state_machine_refuses_moves_it_does_not_have() -> None:
    h = Harness()
    session = h.connect("a")
    session.move(LinkState.ENDED)
    with pytest.raises(IllegalTransition):
        session.move(LinkState.CONNECTED)


steps = st.one_of(
    st.builds(lambda user: ("join", user), st.sampled_from(["alice", "bob", "carol", "mallory"])),
    st.just(("chat",)),
    st.just(("lose",)),
    st.just(("hang-up",)),
    st.just(("leave",)),
    st.just(("resume",)),
    st.builds(lambda seconds: ("wait", seconds), st.sampled_from([1, 10, 40])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]), steps), max_size=40))
def test_any_sequence_of_losses_and_resumes_keeps_the_hub_consistent(plan: list) -> None:
    """Every client sees its session's numbers in order, without a gap or a repeat,
    across resumes; the hub's sessions, rooms and detached sessions agree."""
    h = Harness(Limits(resume_buffer_messages=8))
    tokens: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}  # session id -> last n its client got
    generation = dict.fromkeys(("c1", "c2", "c3"), 0)

    def link(name: str) -> str:
        return f"{name}.{generation[name]}"

    def drain(name: str) -> None:
        for message in h.outbox.wire.pop(link(name), []):
            session_id = h.clients[link(name)].session_id
            if message["type"] == "room-joined":
                tokens[name] = message
            if message["type"] == "resumed":
                continue
            assert message["n"] == seen.get(session_id, 0) + 1, (name, message)
            seen[session_id] = message["n"]
            if message["type"] == "error":
                assert message["code"] in {code.value for code in ErrorCode}

    for name in generation:
        h.connect(link(name))
    for name, step in plan:
        h.clock.now += 0.05
        kind = step[0]
        current = link(name)
        if kind == "join":
            h.send(current, {"type": "join-room", "room": "r", "userId": step[1]})
        elif kind == "chat":
            h.send(current, {"type": "chat", "message": "x"})
        elif kind == "leave":
            h.send(current, {"type": "leave-room"})
        elif kind in ("lose", "hang-up"):
            h.hub.disconnect(h.clients[current], lost=kind == "lose")
            generation[name] += 1
            h.connect(link(name))
        elif kind == "resume" and name in tokens:
            joined = tokens[name]
            last = seen.get(joined["sessionId"], 0)
            h.send(
                link(name),
                {
                    "type": "resume",
                    "sessionId": joined["sessionId"],
                    "resumeToken": joined["resumeToken"],
                    "lastN": last,
                },
            )
        elif kind == "wait":
            h.clock.now += step[1]
            h.hub.tick()
        for other in generation:
            drain(other)
    for room in h.hub.rooms:
        for user_id, member in room.members.items():
            assert member.room is room
            assert member.user_id == user_id
            assert not member.closed
            assert member.session_id in h.hub.sessions
    for session_id, session in h.hub.detached.items():
        assert session.state is LinkState.DETACHED
        assert session.link is None
        assert h.hub.sessions[session_id] is session
    for session in h.hub.sessions.values():
        assert session.state is not LinkState.ENDED
