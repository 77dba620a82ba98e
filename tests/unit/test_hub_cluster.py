"""The hub as one node of a cluster, with no network: joins are claimed from a
scripted membership and answered by hand; messages to other nodes are recorded."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import msgspec
import pytest

from hubbub.auth import Admission, AuthMode
from hubbub.broker import (
    CallPlacement,
    CallRoute,
    ChatItem,
    ChatRun,
    ClaimOutcome,
    ClaimResult,
    Delivery,
    Located,
    Member,
    MembershipEvents,
    ModeRule,
    SessionFound,
    SessionState,
    SharedMedia,
)
from hubbub.media.modes import MediaSetting, Mode
from hubbub.protocol.messages import MediaFeed
from tests.tokens import token
from tests.unit.helpers import Harness
from tests.unit.test_auth import VERIFIER


class ScriptedCluster:
    """A broker and membership: local deliveries at once, the rest recorded;
    claims wait for ``answer()``."""

    def __init__(self) -> None:
        self.delivery: Delivery | None = None
        self.events: MembershipEvents | None = None
        self.claims: list[tuple[str, Member, bool]] = []
        self.released: list[tuple[str, Member]] = []
        self.last_seen: list[int | None] = []
        self.updated: list[tuple[str, Member]] = []
        self.remote: dict[str, dict[str, Member]] = {}
        self.to_room: list[tuple[str, dict[str, Any]]] = []
        self.to_remote: list[tuple[str, dict[str, Any]]] = []
        self.closes: list[tuple[str, int, bool]] = []
        self.finding: list[tuple[str, str, str]] = []
        self.taking: list[tuple[str, str, str]] = []
        self.given: list[tuple[str, str, str]] = []
        self.offers: list[tuple[str, str, str, str, str]] = []
        self.users_here: list[tuple[str, bool]] = []
        self.placed: list[tuple[str, str, str, dict[str, Any]]] = []
        self.calls_over: list[str] = []
        self.moves: list[tuple[str, str, str, str, str | int | None, str | None]] = []
        self.announced: tuple[bytes | None, bytes | None] = (None, None)
        self.senders: list[tuple[str, int, str | None]] = []
        self.feeds_shared: list[tuple[str, str, MediaFeed | None]] = []
        self.media_settings: list[tuple[str, MediaSetting | None]] = []
        self.done_with_media: list[str] = []

    # Broker
    def attach(self, delivery: Delivery) -> None:
        self.delivery = delivery

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        assert self.delivery is not None
        self.to_room.append((room, json.loads(payload)))
        self.delivery.deliver_to_room(room, payload, exclude)

    def publish_chat(self, room: str, run: ChatRun) -> None:
        assert self.delivery is not None
        self.delivery.deliver_chat(room, run)

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        assert self.delivery is not None
        if session_id.startswith("remote"):
            self.to_remote.append((session_id, json.loads(payload)))
        else:
            self.delivery.deliver_to_session(session_id, payload)

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        assert self.delivery is not None
        self.delivery.deliver_to_user(user_id, payload, exclude)

    # Membership
    def attach_members(self, events: MembershipEvents) -> None:
        self.events = events

    def new_session_id(self) -> str:  # pragma: no cover - the harness names sessions
        raise NotImplementedError

    def claim(
        self,
        room: str,
        member: Member,
        *,
        replace: bool,
        max_members: int,
        joined: bytes | None = None,
        left: bytes | None = None,
    ) -> None:
        self.claims.append((room, member, replace))
        self.announced = (joined, left)

    def release(self, room: str, member: Member, last_seen: int | None = None) -> None:
        self.released.append((room, member))
        self.last_seen.append(last_seen)

    def update(self, room: str, member: Member) -> None:
        self.updated.append((room, member))

    def remote_member(self, room: str, user_id: str) -> Member | None:
        return self.remote.get(room, {}).get(user_id)

    def remote_members(self, room: str) -> list[Member]:
        return list(self.remote.get(room, {}).values())

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        self.closes.append((member.session_id, code, announce))

    def user_here(self, user_id: str, here: bool) -> None:
        self.users_here.append((user_id, here))

    def place_call(self, call_id: str, caller: str, callee: str, ringing: bytes) -> None:
        self.placed.append((call_id, caller, callee, json.loads(ringing)))

    def call_over(self, call_id: str, caller: str, callee: str) -> None:
        self.calls_over.append(call_id)

    def count_senders(self, room: str, senders: int, rule: ModeRule | None, reason: str) -> None:
        # (a count that decides nothing: no reason)
        self.senders.append((room, senders, reason if rule is not None else None))

    def share_feed(self, room: str, user_id: str, feed: MediaFeed | None) -> None:
        self.feeds_shared.append((room, user_id, feed))

    def set_media_setting(self, room: str, setting: MediaSetting | None, rule: ModeRule) -> None:
        self.media_settings.append((room, setting))

    def media_done(self, room: str, handed_to: str | None = None) -> None:
        self.done_with_media.append(room if handed_to is None else f"{room} to {handed_to}")

    def call_move(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None = None,
    ) -> CallRoute:
        if not call_id.startswith("remote"):
            return CallRoute.HERE
        if call_id.startswith("remote-cut-off"):
            return CallRoute.UNREACHABLE
        self.moves.append((call_id, move, user_id, session_id, ref, room))
        return CallRoute.SENT

    def find_session(self, session_id: str, resume_token: str, asked_by: str) -> bool:
        if not session_id.startswith("remote"):
            return False
        self.finding.append((session_id, resume_token, asked_by))
        return True

    def take_session(self, room: str, session_id: str, taken_by: str) -> None:
        self.taking.append((room, session_id, taken_by))

    def give_session(self, session_id: str, resume_token: str, room: str, user_id: str) -> bool:
        self.given.append((session_id, room, user_id))
        return True

    def offer_session(
        self, asked_by: str, session_id: str, room: str = "", user_id: str = "", moved_to: str = ""
    ) -> None:
        self.offers.append((asked_by, session_id, room, user_id, moved_to))

    def answer(
        self,
        outcome: ClaimOutcome = ClaimOutcome.ADMITTED,
        *,
        before: list[Member] | None = None,
        replaced: Member | None = None,
    ) -> None:
        """``before``: the room's members before the claim (those Redis answers with,
        the claimant added if admitted)."""
        room, member, _ = self.claims.pop(0)
        members = [*(before or []), member] if outcome is ClaimOutcome.ADMITTED else before or []
        for other in before or []:
            self.remote.setdefault(room, {})[other.user_id] = other
        assert self.events is not None
        self.events.claim_answered(member.session_id, ClaimResult(outcome, members, replaced))


BOB = Member(user_id="bob", session_id="remote.bob", name="Bob")


@pytest.fixture
def cluster() -> ScriptedCluster:
    return ScriptedCluster()


@pytest.fixture
def h(cluster: ScriptedCluster) -> Harness:
    return Harness(broker=cluster, membership=cluster)


def join(h: Harness, name: str, room: str, user_id: str) -> None:
    h.send(name, {"type": "join-room", "room": room, "userId": user_id}, connect=True)


def test_a_join_waits_for_the_cluster_and_lists_members_on_other_nodes(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    assert h.take("alice") == []
    assert [(room, m.user_id) for room, m, _ in cluster.claims] == [("r", "alice")]
    # What the client sends meanwhile waits behind the join, in order.
    h.send("alice", {"type": "signal", "targetUserId": "bob", "signal": {"n": 1}})
    cluster.answer(before=[BOB])
    joined, *rest = h.take("alice")
    assert joined["type"] == "room-joined"
    assert joined["participants"] == [
        {"userId": "bob", "polite": True, "status": "online", "name": "Bob"},
    ]
    assert rest == []
    assert cluster.to_remote == [
        ("remote.bob", {"type": "signal", "signal": {"n": 1}, "fromUserId": "alice"})
    ]
    # user-joined reaches the other nodes with the claim itself, not after it.
    assert cluster.to_room == []
    joined_payload, left_payload = cluster.announced
    assert joined_payload is not None
    assert json.loads(joined_payload) == {
        "type": "user-joined",
        "userId": "alice",
        "polite": False,
        "status": "online",
    }
    assert left_payload is not None
    assert json.loads(left_payload) == {"type": "user-left", "userId": "alice"}


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (ClaimOutcome.TAKEN, "user-id-taken"),
        (ClaimOutcome.FULL, "room-full"),
        (ClaimOutcome.UNAVAILABLE, "cluster-unavailable"),
    ],
)
def test_a_refused_claim_is_an_error_and_changes_nothing(
    h: Harness, cluster: ScriptedCluster, outcome: ClaimOutcome, code: str
) -> None:
    join(h, "alice", "home", "alice")
    cluster.answer()
    h.take("alice")
    join(h, "alice", "r", "bob")
    cluster.answer(outcome)
    (error,) = h.take("alice")
    assert error["code"] == code
    assert h.clients["alice"].room is not None
    assert h.clients["alice"].room.name == "home"
    assert h.hub.rooms.get("r") is None


def test_an_id_held_on_another_node_for_a_resume_is_refused_saying_for_how_long_at_most(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "carl", "r", "bob")
    cluster.answer(ClaimOutcome.TAKEN, before=[BOB])
    (error,) = h.take("carl")
    assert error["code"] == "user-id-taken"
    assert "heldForMs" not in error  # connected there
    join(h, "carl", "r", "bob")
    cluster.answer(ClaimOutcome.TAKEN, before=[dataclasses.replace(BOB, reconnecting=True)])
    (error,) = h.take("carl")
    assert error["code"] == "user-id-taken"
    assert error["heldForMs"] == 30_000  # that node's grace, at most


def test_taking_a_remote_place_announces_the_leave_first_and_closes_it_there(
    cluster: ScriptedCluster,
) -> None:
    h = Harness(broker=cluster, membership=cluster, admission=Admission(AuthMode.OPEN, VERIFIER))
    join(h, "carol", "r", "carol")
    cluster.answer()
    h.take("carol")
    cluster.to_room.clear()
    h.send("alice", {"type": "join-room", "room": "r", "token": token("bob")}, connect=True)
    assert cluster.claims[0][2] is True  # a token may replace
    cluster.answer(replaced=BOB)
    # The other nodes heard both with the claim; this node's members hear them in
    # the same order.
    assert cluster.to_room == []
    assert [(m["type"], m["userId"]) for m in h.take("carol")] == [
        ("user-left", "bob"),
        ("user-joined", "bob"),
    ]
    assert cluster.closes == [("remote.bob", 4009, False)]


def test_leaving_gives_the_place_back(h: Harness, cluster: ScriptedCluster) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    h.send("alice", {"type": "leave-room"})
    assert [(room, m.user_id, m.session_id) for room, m in cluster.released] == [
        ("r", "alice", h.clients["alice"].session_id)
    ]


def test_a_place_granted_after_the_client_left_is_given_back(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    h.hub.disconnect(h.clients["alice"])
    cluster.answer()
    assert [m.user_id for _, m in cluster.released] == ["alice"]
    assert h.hub.rooms.get("r") is None


def test_members_gone_with_their_node_are_announced(h: Harness, cluster: ScriptedCluster) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer(before=[BOB])
    h.take("alice")
    assert cluster.events is not None
    cluster.events.members_changed("r", [], [BOB])
    cluster.events.members_changed("r", [BOB], [])
    hidden = Member(user_id="ghost", session_id="remote.ghost", hidden=True)
    cluster.events.members_changed("r", [hidden], [hidden])
    assert h.take("alice") == [
        {"type": "user-left", "userId": "bob"},
        {
            "type": "user-joined",
            "userId": "bob",
            "polite": False,
            "status": "online",
            "name": "Bob",
        },
    ]


def test_another_node_may_close_a_session_quietly(h: Harness, cluster: ScriptedCluster) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    join(h, "dave", "r", "dave")
    cluster.answer()
    h.take("alice")
    assert cluster.events is not None
    cluster.events.close_session(h.clients["dave"].session_id, 4009, "replaced", False)
    assert h.outbox.closed[h.clients["dave"].session_id] == (4009, "replaced")
    assert h.take("alice") == []
    assert [m.user_id for _, m in cluster.released] == ["dave"]


def test_chat_stored_by_another_node_reaches_the_next_joiners(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    assert cluster.events is not None
    assert cluster.delivery is not None
    relay = {"type": "chat", "message": "hi", "userId": "bob", "id": "x", "seq": 1, "ts": 5}
    cluster.delivery.deliver_chat(
        "r", [ChatItem(1, json.dumps(relay).encode(), BOB.session_id, None)]
    )
    assert h.take("alice")[-1] == relay
    join(h, "erin", "r", "erin")
    cluster.answer()
    joined = h.take("erin")[-1]
    assert joined["lastSeq"] == 1
    assert [m["message"] for m in joined["history"]] == ["hi"]
    assert cluster.events.local_members() == {
        "r": [
            Member("alice", h.clients["alice"].session_id),
            Member("erin", h.clients["erin"].session_id),
        ]
    }


def held_elsewhere(last_n: int, replay: list[dict[str, Any]], **fields: Any) -> SessionState:
    """alice's session remote.alice in room r, as another node hands it over."""
    return SessionState(
        session_id="remote.alice",
        room="r",
        user_id="alice",
        resume_token="t0k",
        identity_user_id=None,
        room_names=[],
        room_prefixes=[""],
        grants=["chat", "join", "screen", "signal"],
        last_n=last_n,
        replay=[json.dumps(m).encode() for m in replay],
        **fields,
    )


def chat(seq: int, user_id: str = "bob") -> ChatItem:
    relay = {"type": "chat", "message": str(seq), "userId": user_id, "id": f"m{seq}"}
    return ChatItem(seq, json.dumps({**relay, "seq": seq, "ts": seq}).encode(), "remote.b", None)


RESUME = {"type": "resume", "sessionId": "remote.alice", "resumeToken": "t0k", "lastN": 3}


def test_a_session_held_elsewhere_is_taken_and_resumed_here_with_all_it_missed(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "dave", "r", "dave")
    cluster.answer()
    h.take("dave")
    h.send("alice", {**RESUME, "ref": "r1"}, connect=True)
    new_id = h.clients["alice"].session_id
    assert cluster.finding == [("remote.alice", "t0k", new_id)]
    # What the client sends meanwhile waits, in order, until it is back.
    h.send("alice", {"type": "ping", "ref": "p1"})
    assert cluster.events is not None
    assert cluster.delivery is not None
    cluster.events.session_found(new_id, SessionFound(Located.THERE, "remote.alice", "r", "alice"))
    assert cluster.taking == [("r", "remote.alice", new_id)]
    # Before the mark: the other node's to deliver. After it: kept for the session.
    cluster.delivery.deliver_to_room("r", b'{"type":"before"}', None)
    cluster.events.taking("r", "remote.alice", new_id)
    cluster.delivery.deliver_to_room("r", b'{"type":"after"}', None)
    cluster.delivery.deliver_to_room("r", b'{"type":"its-own"}', "remote.alice")
    cluster.delivery.deliver_chat("r", [chat(1)])
    cluster.delivery.deliver_to_session(new_id, b'{"type":"chat-ack","seq":9}')
    assert h.take("alice") == []
    assert [m["type"] for m in h.take("dave")] == ["before", "after", "its-own", "chat"]
    sent_there = [{"type": "m", "i": i} for i in range(1, 6)]
    cluster.events.session_handed(new_id, held_elsewhere(5, sent_there, lost_for=2.0))
    wire = h.wire("alice")
    assert wire[0] == {
        "type": "resumed",
        "sessionId": new_id,
        "room": "r",
        "userId": "alice",
        "lastN": 8,
        "ref": "r1",
    }
    assert [(m["n"], m["type"], m.get("i", m.get("seq"))) for m in wire[1:]] == [
        (4, "m", 4),
        (5, "m", 5),
        (6, "after", None),
        (7, "chat", 1),
        (8, "chat-ack", 9),
        (9, "pong", None),  # what waited, after
    ]
    assert h.take("dave") == [
        {"type": "participant-updated", "userId": "alice", "connection": "connected"}
    ]
    # A member here from now on, under its user id, reachable as the user.
    assert h.hub.rooms.get("r").members["alice"].session_id == new_id
    assert ("alice", True) in cluster.users_here
    cluster.delivery.deliver_to_room("r", b'{"type":"live"}', None)
    assert [m["type"] for m in h.take("alice")][-1] == "live"


def test_chat_is_handed_by_seq_not_by_when_it_came(h: Harness, cluster: ScriptedCluster) -> None:
    join(h, "dave", "r", "dave")
    cluster.answer()
    assert cluster.events is not None
    assert cluster.delivery is not None
    cluster.delivery.deliver_chat("r", [chat(1), chat(2)])
    h.send("alice", RESUME, connect=True)
    new_id = h.clients["alice"].session_id
    cluster.events.session_found(new_id, SessionFound(Located.THERE, "remote.alice", "r", "alice"))
    cluster.events.taking("r", "remote.alice", new_id)
    cluster.delivery.deliver_chat("r", [chat(3), chat(4)])
    # The other node had given the session chat 1 (not 2, which came here first).
    cluster.events.session_handed(new_id, held_elsewhere(3, [{"type": "m"}] * 3, seq=1))
    assert [m.get("seq") for m in h.take("alice")[1:]] == [2, 3, 4]
    # And the other way: it had been given chat 3 already.
    h.send("erin", {**RESUME, "sessionId": "remote.erin"}, connect=True)
    erin_id = h.clients["erin"].session_id
    cluster.events.session_found(erin_id, SessionFound(Located.THERE, "remote.erin", "r", "erin"))
    cluster.events.taking("r", "remote.erin", erin_id)
    cluster.delivery.deliver_chat("r", [chat(5)])
    erin = held_elsewhere(3, [{"type": "m"}] * 3, seq=5)
    erin = msgspec.structs.replace(erin, session_id="remote.erin", user_id="erin")
    cluster.events.session_handed(erin_id, erin)
    assert [m.get("seq") for m in h.take("erin")[1:]] == []


def test_a_session_that_cannot_be_taken_is_said_so(h: Harness, cluster: ScriptedCluster) -> None:
    assert cluster.events is not None
    for name, located, reason in (
        ("bob", Located.UNKNOWN, "unknown-session"),
        ("carol", Located.NODE_GONE, "node-gone"),
    ):
        h.send(name, {**RESUME, "ref": name}, connect=True)
        cluster.events.session_found(h.clients[name].session_id, SessionFound(located))
        [refused] = h.take(name)
        assert (refused["code"], refused["reason"], refused["ref"]) == (
            "resume-failed",
            reason,
            name,
        )
        h.send(name, {"type": "join-room", "room": "r", "userId": name})
        assert cluster.claims[-1][1].user_id == name  # it may join afresh at once
    # Found, then gone before its state came.
    h.send("erin", RESUME, connect=True)
    erin = h.clients["erin"].session_id
    cluster.events.session_found(erin, SessionFound(Located.THERE, "remote.alice", "r", "alice"))
    cluster.events.session_handed(erin, None)
    assert [m["reason"] for m in h.take("erin")] == ["unknown-session"]
    assert len(h.hub.rooms) == 1  # r, for the joins on their way
    # An id that names no other node is this node's to answer, as ever.
    h.send("frank", {**RESUME, "sessionId": "s77"}, connect=True)
    assert [m["reason"] for m in h.take("frank")] == ["unknown-session"]


def test_this_nodes_session_is_cut_where_the_other_node_marked_and_forwarded(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    join(h, "dave", "r", "dave")
    cluster.answer()
    alice = h.clients["alice"]
    token = h.take("alice")[0]["resumeToken"]
    h.send("alice", {"type": "presence", "status": "busy"})
    h.take("alice")
    h.take("dave")
    assert cluster.events is not None
    assert cluster.delivery is not None
    cluster.events.session_asked(alice.session_id, "not-" + token, "remote.x")
    cluster.events.session_asked("s99", token, "remote.y")
    cluster.events.session_asked(alice.session_id, token, "remote.new")
    assert cluster.offers == [
        ("remote.x", alice.session_id, "", "", ""),
        ("remote.y", "s99", "", "", ""),
        ("remote.new", alice.session_id, "r", "alice", ""),
    ]
    state = cluster.events.session_cut("r", alice.session_id, "remote.new")
    assert state is not None
    assert (state.user_id, state.room, state.status, state.last_n) == ("alice", "r", "busy", 3)
    assert state.resume_token == token
    assert len(state.replay) == 3
    # Gone from here without a word: nobody left, no place given back. Its client is
    # on the other node: this connection (half-open) is closed.
    assert h.take("dave") == []
    assert h.outbox.closed[alice.session_id][0] == 4010
    assert alice.session_id not in h.hub.sessions
    assert "alice" not in h.hub.rooms.get("r").members
    assert cluster.released == []
    assert ("alice", False) in cluster.users_here
    # What still comes for it goes after it; whoever asks for it is sent there.
    cluster.delivery.deliver_to_session(alice.session_id, b'{"type":"signal"}')
    assert cluster.to_remote == [("remote.new", {"type": "signal"})]
    assert cluster.events.session_cut("r", alice.session_id, "remote.new") is None
    cluster.events.session_asked(alice.session_id, token, "remote.z")
    assert cluster.offers[-1] == ("remote.z", alice.session_id, "", "", "remote.new")


def test_a_stopping_node_hands_its_sessions_over_and_tells_their_clients_to_resume(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    alice = h.clients["alice"]
    h.take("alice")
    h.hub.stop_input()
    join(h, "bob", "r", "bob")
    cluster.answer()
    bob = h.clients["bob"]
    h.hub.stop_input()
    assert h.hub.hand_over_all(1000) == 2
    assert cluster.given == [(alice.session_id, "r", "alice"), (bob.session_id, "r", "bob")]
    assert h.hub.handing_over == 2
    assert h.wire("alice")[-1]["type"] != "reconnect"  # told once it is taken
    assert cluster.events is not None
    assert cluster.events.session_cut("r", alice.session_id, "remote.new") is not None
    [told] = h.wire("alice")[-1:]
    assert (told["type"], told["resume"], "n" in told) == ("reconnect", True, False)
    assert h.outbox.closed[alice.session_id][0] == 1001
    assert h.hub.handing_over == 1
    # bob's was not taken in time: his client joins afresh, and a late mark finds
    # nothing to cut.
    assert h.hub.announce_restart(1000) == 1
    told = h.wire("bob")[-1]
    assert (told["type"], told.get("resume", False)) == ("reconnect", False)
    assert cluster.events.session_cut("r", bob.session_id, "remote.late") is None
    assert h.hub.handing_over == 0


def test_a_session_adopted_from_a_stopping_node_waits_here_for_its_client(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "dave", "r", "dave")
    cluster.answer()
    h.take("dave")
    assert cluster.events is not None
    assert cluster.delivery is not None
    cluster.events.adopt("remote.alice", "t0k", "r", "alice")
    [(room, old, new_id)] = cluster.taking
    assert (room, old) == ("r", "remote.alice")
    cluster.events.taking("r", "remote.alice", new_id)
    cluster.events.session_asked(new_id, "t0k", "remote.elsewhere")
    assert cluster.offers == []  # answered once it is here
    cluster.delivery.deliver_to_room("r", b'{"type":"meanwhile"}', None)
    cluster.events.session_handed(new_id, held_elsewhere(5, [{"type": "m"}] * 5))
    # Connected there when its node stopped: now its connection is lost, for a while.
    assert h.take("dave")[-1] == {
        "type": "participant-updated",
        "userId": "alice",
        "connection": "reconnecting",
    }
    assert new_id in h.hub.detached
    # Another node asked for it while it was on its way here: offered now.
    assert cluster.offers == [("remote.elsewhere", new_id, "r", "alice", "")]
    # Its client comes back (with the id it knew), found here.
    h.send("back", {**RESUME, "ref": "r2"}, connect=True)
    back = h.clients["back"].session_id
    cluster.events.session_found(back, SessionFound(Located.HERE, new_id))
    wire = h.wire("back")
    assert (wire[0]["type"], wire[0]["sessionId"], wire[0]["lastN"]) == ("resumed", new_id, 6)
    assert [m["type"] for m in wire[1:]] == ["m", "m", "meanwhile"]
    assert h.take("dave") == [
        {"type": "participant-updated", "userId": "alice", "connection": "connected"}
    ]


def test_a_call_waits_for_the_clusters_word_then_rings_or_is_refused(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "a", "alice")
    cluster.answer()
    join(h, "bob", "b", "bob")
    cluster.answer()
    h.take("alice")
    h.take("bob")
    assert cluster.users_here == [("alice", True), ("bob", True)]
    # The callee may be connected on another node only: the cluster says.
    h.send("alice", {"type": "call-request", "targetUserId": "carol", "ref": 1})
    h.send("alice", {"type": "ping", "ref": "after"})
    assert h.take("alice") == []
    (call_id, caller, callee, incoming), *_ = cluster.placed
    assert (caller, callee, incoming["type"]) == ("alice", "carol", "call-incoming")
    assert cluster.events is not None
    cluster.events.call_placed(call_id, CallPlacement.BUSY)
    assert [(m["type"], m.get("code"), m["ref"]) for m in h.take("alice")] == [
        ("error", "busy", 1),
        ("pong", None, "after"),
    ]
    # Connected nowhere in the cluster: refused, and kept for the callee as a missed call.
    h.send("alice", {"type": "call-request", "targetUserId": "dora", "ref": 3})
    cluster.events.call_placed(cluster.placed[-1][0], CallPlacement.UNAVAILABLE)
    h.answer()
    assert [(m["code"], m["ref"]) for m in h.take("alice")] == [("user-unavailable", 3)]
    [missed] = [n for n in h.storage.notifications if n.user_id == "dora"]
    assert missed.payload["data"] == {"kind": "missed-call", "fromUserId": "alice"}
    # Placed: the callee's connections here ring too.
    h.send("alice", {"type": "call-request", "targetUserId": "bob", "ref": 2})
    call_id = cluster.placed[-1][0]
    cluster.events.call_placed(call_id, CallPlacement.PLACED)
    assert h.take("alice") == [
        {"type": "call-ringing", "callId": call_id, "targetUserId": "bob", "ref": 2}
    ]
    assert h.take("bob") == [{"type": "call-incoming", "callId": call_id, "fromUserId": "alice"}]
    h.send("alice", {"type": "call-cancel", "callId": call_id})
    assert cluster.calls_over == [call_id]
    h.hang_up("bob")
    assert cluster.users_here[-1] == ("bob", False)


def test_a_move_on_a_call_held_elsewhere_goes_there_and_so_does_its_end(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "bob", "b", "bob")
    cluster.answer()
    h.take("bob")
    bob = h.clients["bob"].session_id
    h.send("bob", {"type": "call-accept", "callId": "remote.c1", "ref": 5})
    assert cluster.moves == [("remote.c1", "accept", "bob", bob, 5, None)]
    assert h.take("bob") == []  # the answer comes from the call's node
    # The call's room, joined here and left: the call's node is told.
    join(h, "bob", "call-x", "bob")
    cluster.answer()
    assert cluster.moves[-1] == ("remote.c1", "left", "bob", bob, None, "b")
    h.take("bob")
    h.send("bob", {"type": "leave-room"})
    assert cluster.moves[-1] == ("remote.c1", "left", "bob", bob, None, "call-x")
    h.hang_up("bob")
    assert cluster.moves[-1] == ("remote.c1", "callee-gone", "bob", bob, None, None)
    # A call id of this node's that it does not hold is no call at all.
    h.send("carol", {"type": "join-room", "room": "c", "userId": "carol"}, connect=True)
    cluster.answer()
    h.take("carol")
    h.send("carol", {"type": "call-end", "callId": "c9"})
    assert [m.get("code") for m in h.take("carol")] == ["no-such-call"]
    # Another node's call, with Redis out of reach: said so, not lost in silence.
    h.send("carol", {"type": "call-accept", "callId": "remote-cut-off.c2", "ref": 8})
    assert [(m.get("code"), m["ref"]) for m in h.take("carol")] == [("cluster-unavailable", 8)]


def test_a_move_made_through_another_node_is_answered_there(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "a", "alice")
    cluster.answer()
    h.take("alice")
    h.send("alice", {"type": "call-request", "targetUserId": "bob"})
    call_id = cluster.placed[-1][0]
    assert cluster.events is not None
    cluster.events.call_placed(call_id, CallPlacement.PLACED)
    h.take("alice")
    cluster.events.call_moved(call_id, "cancel", "bob", "remote.bob", "x", None)
    assert cluster.to_remote[-1] == (
        "remote.bob",
        {
            "type": "error",
            "code": "forbidden",
            "message": "that is the other party's move",
            "ref": "x",
        },
    )
    cluster.events.call_moved(call_id, "accept", "bob", "remote.bob", 7, None)
    accepted = h.take("alice")[0]
    assert (accepted["type"], accepted["peerUserId"]) == ("call-accepted", "bob")
    to_bob = cluster.to_remote[-1]
    assert to_bob[0] == "remote.bob"
    assert (to_bob[1]["type"], to_bob[1]["ref"]) == ("call-accepted", 7)
    # The callee's node says its connection left another room: not the call's.
    cluster.events.call_moved(call_id, "left", "bob", "remote.bob", None, "lobby")
    cluster.events.call_moved(call_id, "callee-gone", "bob", "remote.other", None, None)
    assert h.take("alice") == []
    cluster.events.call_moved(call_id, "callee-gone", "bob", "remote.bob", None, None)
    ended = h.take("alice")[0]
    assert (ended["type"], ended["reason"]) == ("call-ended", "disconnected")
    assert cluster.calls_over == [call_id]


def test_a_ringing_call_is_missed_when_the_cluster_says_the_callee_is_gone(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "a", "alice")
    cluster.answer()
    h.take("alice")
    h.send("alice", {"type": "call-request", "targetUserId": "bob"})
    call_id = cluster.placed[-1][0]
    assert cluster.events is not None
    cluster.events.call_placed(call_id, CallPlacement.PLACED)
    h.take("alice")
    # Not the callee: nothing. The callee, no connection left anywhere: missed.
    cluster.events.call_moved(call_id, "callee-gone", "alice", "", None, None)
    assert h.take("alice") == []
    cluster.events.call_moved(call_id, "callee-gone", "bob", "", None, None)
    assert h.take("alice") == [{"type": "call-missed", "callId": call_id}]
    assert cluster.calls_over == [call_id]
    # Once answered, the cluster's word about the user does not end the call: its
    # connection in the call's does.
    h.send("alice", {"type": "call-request", "targetUserId": "bob"})
    call_id = cluster.placed[-1][0]
    cluster.events.call_placed(call_id, CallPlacement.PLACED)
    cluster.events.call_moved(call_id, "accept", "bob", "remote.bob", None, None)
    h.take("alice")
    cluster.events.call_moved(call_id, "callee-gone", "bob", "", None, None)
    assert h.take("alice") == []


def test_what_the_cluster_lists_of_a_member_follows_its_status_and_connection(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    h.send("alice", {"type": "presence", "status": "busy"})
    h.send("alice", {"type": "presence", "status": "busy"})  # no change: nothing to say
    assert [(room, m.user_id, m.status, m.reconnecting) for room, m in cluster.updated] == [
        ("r", "alice", "busy", False)
    ]
    joined = h.take("alice")[0]
    h.lose("alice")
    assert cluster.updated[-1][1].reconnecting is True
    h.send(
        "back",
        {
            "type": "resume",
            "sessionId": joined["sessionId"],
            "resumeToken": joined["resumeToken"],
            "lastN": 0,
        },
        connect=True,
    )
    assert (cluster.updated[-1][1].reconnecting, cluster.updated[-1][1].status) == (False, "busy")
    assert cluster.events is not None
    assert cluster.events.local_members()["r"][0].status == "busy"


def test_a_member_who_chatted_leaves_with_its_last_seen_time_for_every_node(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    cluster.answer()
    join(h, "bob", "r", "bob")
    cluster.answer()
    h.send("alice", {"type": "chat", "message": "hi"})
    h.send("alice", {"type": "leave-room"})
    h.send("bob", {"type": "leave-room"})
    assert cluster.last_seen == [h.storage_now_ms, None]  # bob said nothing


def test_remote_members_and_those_who_left_elsewhere_show_in_room_joined(
    h: Harness, cluster: ScriptedCluster
) -> None:
    join(h, "alice", "r", "alice")
    away = Member("bob", "remote.bob", status="away", reconnecting=True)
    cluster.answer(before=[away])
    assert cluster.events is not None
    cluster.events.seen("r", "carol", 1234)  # chatted and left through another node
    cluster.events.seen("elsewhere", "dave", 1)  # a room not here: nothing to keep
    join(h, "erin", "r", "erin")
    cluster.answer(before=[away, Member("alice", h.clients["alice"].session_id)])
    joined = h.take("erin")[-1]
    assert joined["participants"][0] == {
        "userId": "bob",
        "polite": True,
        "status": "away",
        "connection": "reconnecting",
    }
    assert joined["offline"] == [{"userId": "carol", "lastSeen": 1234}]


# -- calls through the media server, decided by the cluster ---------------------


def sfu_node(cluster: ScriptedCluster) -> Harness:
    from tests.unit.test_media import RecordingMedia

    return Harness(broker=cluster, membership=cluster, media=RecordingMedia())


def test_a_rooms_calls_are_the_clusters_word_newest_first(cluster: ScriptedCluster) -> None:
    h = sfu_node(cluster)
    h.send(
        "alice",
        {"type": "join-room", "room": "r", "userId": "alice", "features": ["sfu"]},
        connect=True,
    )
    bobs_feed = MediaFeed(user_id="bob", audio=True, video=True)
    _, claimant, _ = cluster.claims.pop(0)
    assert cluster.events is not None
    at_claim = SharedMedia(7, Mode.SFU, [bobs_feed])
    cluster.events.claim_answered(
        claimant.session_id,
        ClaimResult(ClaimOutcome.ADMITTED, [BOB, claimant], None, at_claim),
    )
    joined, *rest = h.take("alice")
    # The node's first member hears the room as the cluster had it at the claim.
    assert joined["mediaMode"] == "sfu"
    assert cluster.senders == [("r", 0, "setting")]
    assert rest == [
        {
            "type": "media-mode",
            "mode": "sfu",
            "feeds": [{"userId": "bob", "audio": True, "video": True}],
        }
    ]
    # Another node's word: older is dropped, newer applied.
    cluster.events.media_changed("r", SharedMedia(6, Mode.MESH, []))
    assert h.take("alice") == []
    cluster.events.media_changed("r", SharedMedia(8, Mode.SFU, []))
    assert h.take("alice") == [{"type": "media-feeds", "feeds": []}]
    cluster.events.media_changed("r", SharedMedia(9, Mode.MESH, [], reason="auto"))
    assert h.take("alice") == [{"type": "media-mode", "mode": "mesh", "reason": "auto"}]
    # This node tells the cluster what its members send; it decides nothing itself.
    h.send("alice", {"type": "media-sending", "active": True})
    assert cluster.senders[-1] == ("r", 1, "auto")
    assert h.take("alice") == []
    h.send("alice", {"type": "leave-room"})
    assert cluster.done_with_media == ["r"]


def test_a_feed_up_here_is_the_clusters_to_list(cluster: ScriptedCluster) -> None:
    from tests.unit.test_media import OFFER

    h = sfu_node(cluster)
    h.send(
        "alice",
        {"type": "join-room", "room": "r", "userId": "alice", "features": ["sfu"]},
        connect=True,
    )
    cluster.answer()
    cluster.events.media_changed("r", SharedMedia(1, Mode.SFU, []))  # type: ignore[union-attr]
    h.take("alice")
    h.send("alice", {"type": "media-publish", "jsep": OFFER, "ref": 1})
    h.events.feed_up("r", h.clients["alice"].session_id)
    feed = MediaFeed(user_id="alice", audio=True, video=True)
    assert cluster.feeds_shared == [("r", "alice", feed)]
    assert cluster.senders[-1] == ("r", 1, "auto")
    # Listed once the cluster says so, for every node alike.
    assert [m["type"] for m in h.take("alice")] == []
    cluster.events.media_changed("r", SharedMedia(2, Mode.SFU, [feed]))  # type: ignore[union-attr]
    assert h.take("alice") == [
        {"type": "media-feeds", "feeds": [{"userId": "alice", "audio": True, "video": True}]}
    ]
    # Its member leaves: the feed is withdrawn before the node is done with the room.
    h.send("alice", {"type": "leave-room"})
    assert cluster.feeds_shared[-1] == ("r", "alice", None)
    assert cluster.done_with_media == ["r"]


def test_a_member_cut_for_another_node_leaves_its_media_here_and_takes_what_it_said(
    cluster: ScriptedCluster,
) -> None:
    """Its connections to the media server are this node's: they go with it, and its
    feed leaves the cluster's list. That it takes part through the media server and
    sends goes with its state, for the other node to count."""
    from tests.unit.test_media import OFFER, RecordingMedia

    media = RecordingMedia()
    h = Harness(broker=cluster, membership=cluster, media=media)
    for user in ("alice", "dave"):
        h.send(
            user,
            {"type": "join-room", "room": "r", "userId": user, "features": ["sfu"]},
            connect=True,
        )
        cluster.answer()
    assert cluster.events is not None
    cluster.events.media_changed("r", SharedMedia(1, Mode.SFU, []))
    alice = h.clients["alice"].session_id
    h.send("alice", {"type": "media-sending", "active": True})
    h.send("alice", {"type": "media-publish", "jsep": OFFER, "ref": 1})
    h.events.feed_up("r", alice)
    feed = MediaFeed(user_id="alice", audio=True, video=True)
    assert cluster.feeds_shared == [("r", "alice", feed)]
    assert cluster.senders[-1] == ("r", 1, "auto")
    state = cluster.events.session_cut("r", alice, "remote.new")
    assert state is not None
    assert (state.sfu, state.sending) == (True, True)
    assert media.of("kick") == [("kick", "r", "alice", alice, ["publisher"])]
    assert cluster.feeds_shared[-1] == ("r", "alice", None)
    # dave sends nothing; alice's sending is in between two nodes' words: the count
    # decides nothing (the room's mode stays until someone's sending changes)
    assert cluster.senders[-1] == ("r", 0, None)
    assert cluster.done_with_media == []  # dave is still here
    dave = h.clients["dave"].session_id
    cluster.events.session_cut("r", dave, "remote.new2")
    assert cluster.done_with_media == ["r to remote.new2"]  # its count goes with it


def test_a_member_taken_from_another_node_is_told_to_start_its_calls_afresh(
    cluster: ScriptedCluster,
) -> None:
    """This node had nobody in the room: the mark says the room's calls go through
    the media server. After what it missed, the member hears it (its connections
    there were its old node's), and it counts as a sender here."""
    h = sfu_node(cluster)
    h.send("alice", {**RESUME, "ref": "r1"}, connect=True)
    new_id = h.clients["alice"].session_id
    assert cluster.events is not None
    cluster.events.session_found(new_id, SessionFound(Located.THERE, "remote.alice", "r", "alice"))
    bobs_feed = MediaFeed(user_id="bob", audio=True, video=True)
    cluster.events.taking("r", "remote.alice", new_id, SharedMedia(4, Mode.SFU, [bobs_feed]))
    state = held_elsewhere(5, [{"type": "m", "i": i} for i in range(1, 6)], sfu=True, sending=True)
    cluster.events.session_handed(new_id, state)
    wire = h.wire("alice")
    assert [(m["type"], m.get("n")) for m in wire] == [
        ("resumed", None),
        ("m", 4),
        ("m", 5),
        ("media-mode", 6),
    ]
    assert wire[-1] == {
        "type": "media-mode",
        "n": 6,
        "mode": "sfu",
        "feeds": [{"userId": "bob", "audio": True, "video": True}],
        "reason": "session-moved",
    }
    assert cluster.senders[-1] == ("r", 1, None)  # counted here, deciding nothing
    h.send("alice", {"type": "media-sending", "active": False})
    assert cluster.senders[-1] == ("r", 0, "auto")


def test_a_member_adopted_from_a_stopping_node_hears_to_start_afresh_when_it_is_back(
    cluster: ScriptedCluster,
) -> None:
    """A rolling restart: the stopping node hands the session here before its client
    comes back. The media-mode waits with what it missed, and comes after it."""
    h = sfu_node(cluster)
    assert cluster.events is not None
    cluster.events.adopt("remote.alice", "t0k", "r", "alice")
    h.answer()  # the room's history, loaded here first
    [(_, _, new_id)] = cluster.taking
    cluster.events.taking("r", "remote.alice", new_id, SharedMedia(2, Mode.SFU, []))
    cluster.events.session_handed(new_id, held_elsewhere(5, [{"type": "m"}] * 5, sfu=True))
    assert new_id in h.hub.detached
    h.send("back", {**RESUME, "ref": "r2"}, connect=True)
    back = h.clients["back"].session_id
    cluster.events.session_found(back, SessionFound(Located.HERE, new_id))
    wire = h.wire("back")
    assert [(m["type"], m.get("n")) for m in wire] == [
        ("resumed", None),
        ("m", 4),
        ("m", 5),
        ("media-mode", 6),
    ]
    assert wire[-1]["reason"] == "session-moved"
