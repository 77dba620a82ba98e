"""The hub as one node of a cluster, with no network: joins are claimed from a
scripted membership and answered by hand; messages to other nodes are recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hubbub.auth import Admission, AuthMode
from hubbub.broker import ClaimOutcome, ClaimResult, Delivery, Member, MembershipEvents
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
        self.remote: dict[str, dict[str, Member]] = {}
        self.to_room: list[tuple[str, dict[str, Any]]] = []
        self.to_remote: list[tuple[str, dict[str, Any]]] = []
        self.closes: list[tuple[str, int, bool]] = []
        self.announced: tuple[bytes | None, bytes | None] = (None, None)

    # Broker
    def attach(self, delivery: Delivery) -> None:
        self.delivery = delivery

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        assert self.delivery is not None
        self.to_room.append((room, json.loads(payload)))
        self.delivery.deliver_to_room(room, payload, exclude)

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        assert self.delivery is not None
        if session_id.startswith("remote"):
            self.to_remote.append((session_id, json.loads(payload)))
        else:
            self.delivery.deliver_to_session(session_id, payload)

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

    def release(self, room: str, member: Member) -> None:
        self.released.append((room, member))

    def remote_member(self, room: str, user_id: str) -> Member | None:
        return self.remote.get(room, {}).get(user_id)

    def remote_members(self, room: str) -> list[Member]:
        return list(self.remote.get(room, {}).values())

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        self.closes.append((member.session_id, code, announce))

    def answer(
        self,
        outcome: ClaimOutcome = ClaimOutcome.ADMITTED,
        *,
        before: list[Member] | None = None,
        replaced: Member | None = None,
    ) -> None:
        room, member, _ = self.claims.pop(0)
        members = [*(before or []), member] if outcome is ClaimOutcome.ADMITTED else []
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
    relay = {"type": "chat", "message": "hi", "userId": "bob", "id": "x", "seq": 7, "ts": 5}
    cluster.events.chat_seen("r", json.dumps(relay).encode())
    join(h, "erin", "r", "erin")
    cluster.answer()
    joined = h.take("erin")[-1]
    assert joined["lastSeq"] == 7
    assert [m["message"] for m in joined["history"]] == ["hi"]
    assert cluster.events.local_members() == {
        "r": [
            Member("alice", h.clients["alice"].session_id),
            Member("erin", h.clients["erin"].session_id),
        ]
    }
