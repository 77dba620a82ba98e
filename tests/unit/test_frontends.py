"""The front-ends in the core, with no network: PeerJS, y-webrtc and tracker frames
in, their bytes out, over hubbub's rooms, membership, waiting and timers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hubbub.auth import Admission, AuthMode, TokenVerifier, VerificationKeys
from hubbub.core import Limits, Session
from hubbub.core.frontends import FrontendSettings
from hubbub.protocol import peerjs, tracker, y_webrtc
from hubbub.protocol.errors import CloseCode
from tests.tokens import SECRET, token
from tests.unit.helpers import Harness

DECODE = {"peerjs": peerjs.decode, "y-webrtc": y_webrtc.decode, "tracker": tracker.decode}


class Frontend(Harness):
    """A hub whose clients are front-end clients, named by their link."""

    def __init__(self, limits: Limits | None = None, **options: Any) -> None:
        options.setdefault("frontends", FrontendSettings(peerjs_keys=("peerjs", "app")))
        super().__init__(limits, **options)
        self.protocols: dict[str, str] = {}

    def peer(self, name: str, peer_id: str, token: str = "tok", key: str = "peerjs") -> Session:
        session = self.hub.open_peerjs(name, key, peer_id, token)
        self.clients[name], self.protocols[name] = session, "peerjs"
        return session

    def y(self, name: str, identity: Any = None) -> Session:
        session = self.hub.open_y_webrtc(name, identity)
        self.clients[name], self.protocols[name] = session, "y-webrtc"
        return session

    def tracker(self, name: str, identity: Any = None) -> Session:
        session = self.hub.open_tracker(name, identity)
        self.clients[name], self.protocols[name] = session, "tracker"
        return session

    def frame(self, name: str, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        protocol = self.protocols[name]
        self.hub.receive_frontend(self.clients[name], text, DECODE[protocol], protocol)

    def got(self, name: str) -> list[dict[str, Any]]:
        """What went out on the client's link, in order."""
        return [{k: v for k, v in message.items() if k != "n"} for message in self.wire(name)]


def announce(peer: str, info_hash: str = "i" * 20, **extra: Any) -> dict[str, Any]:
    return {"action": "announce", "info_hash": info_hash, "peer_id": peer * 20, **extra}


def offer(n: int) -> dict[str, Any]:
    return {"offer_id": f"{n}" * 20, "offer": {"type": "offer", "sdp": f"sdp-{n}"}}


# -- PeerJS ---------------------------------------------------------------------------


def test_peerjs_opens_relays_with_src_set_and_refuses_a_taken_id() -> None:
    h = Frontend()
    h.peer("a", "alice")
    h.peer("b", "bob")
    assert h.got("a") == [{"type": "OPEN"}]
    assert h.got("b") == [{"type": "OPEN"}]
    h.frame("a", {"type": "OFFER", "dst": "bob", "src": "mallory", "payload": {"sdp": "x"}})
    assert h.got("b") == [{"type": "OFFER", "src": "alice", "dst": "bob", "payload": {"sdp": "x"}}]
    h.frame("b", {"type": "ANSWER", "dst": "alice", "payload": {"sdp": "y"}})
    assert h.got("a") == [{"type": "ANSWER", "src": "bob", "dst": "alice", "payload": {"sdp": "y"}}]
    # Another connection with the id and another token: refused and closed.
    h.peer("c", "bob", token="other")
    assert h.got("c") == [{"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}]
    assert h.outbox.closed_links["c"] == CloseCode.NORMAL
    assert h.hub.rooms.get("peerjs:peerjs").members["bob"] is h.clients["b"]


def test_peerjs_the_holders_own_token_takes_the_id_over_without_open() -> None:
    h = Frontend()
    h.peer("old", "alice", token="t1")
    h.got("old")
    h.peer("new", "alice", token="t1")
    assert h.got("new") == []  # the reference server sends no OPEN on a swap
    assert h.outbox.closed_links["old"] == CloseCode.REPLACED
    assert h.hub.rooms.get("peerjs:peerjs").members["alice"] is h.clients["new"]


@pytest.mark.parametrize(
    ("key", "peer_id", "tok", "message"),
    [
        ("", "alice", "t", peerjs.INVALID_WS_PARAMETERS),
        ("peerjs", "", "t", peerjs.INVALID_WS_PARAMETERS),
        ("peerjs", "alice", "", peerjs.INVALID_WS_PARAMETERS),
        ("nope", "alice", "t", peerjs.INVALID_KEY),
        ("peerjs", "-alice", "t", peerjs.INVALID_ID),
        ("peerjs", "a" * 65, "t", peerjs.INVALID_ID),
        ("peerjs", "al\u0000ice", "t", peerjs.INVALID_ID),
    ],
)
def test_peerjs_refuses_bad_parameters_with_the_reference_servers_words(
    key: str, peer_id: str, tok: str, message: str
) -> None:
    h = Frontend()
    h.peer("a", peer_id, token=tok, key=key)
    assert h.got("a") == [{"type": "ERROR", "payload": {"msg": message}}]
    assert "a" in h.outbox.closed_links
    assert h.hub.frontends.refused["peerjs"] == 1


def test_peerjs_keys_are_apart() -> None:
    h = Frontend()
    h.peer("a", "alice", key="peerjs")
    h.peer("b", "alice", key="app")
    assert h.got("b") == [{"type": "OPEN"}]
    h.frame("a", {"type": "OFFER", "dst": "bob", "payload": {}})
    h.peer("bob-elsewhere", "bob", key="app")
    assert h.got("bob-elsewhere") == [{"type": "OPEN"}]  # nothing kept for it there


def test_peerjs_keeps_messages_for_an_absent_peer_then_hands_them_over() -> None:
    h = Frontend()
    h.peer("a", "alice")
    h.frame("a", {"type": "OFFER", "dst": "bob", "payload": {"n": 1}})
    h.frame("a", {"type": "CANDIDATE", "dst": "bob", "payload": {"n": 2}})
    h.frame("a", {"type": "LEAVE", "dst": "bob"})  # never kept
    h.clock.now += 2
    h.peer("b", "bob")
    assert h.got("b") == [
        {"type": "OPEN"},
        {"type": "OFFER", "src": "alice", "dst": "bob", "payload": {"n": 1}},
        {"type": "CANDIDATE", "src": "alice", "dst": "bob", "payload": {"n": 2}},
    ]
    h.clock.now += 10
    h.hub.tick()
    assert h.got("a") == [{"type": "OPEN"}]  # handed over: nothing expires


def test_peerjs_what_an_absent_peer_was_sent_expires_with_one_expire_per_sender() -> None:
    h = Frontend()
    h.peer("a", "alice")
    h.peer("c", "carol")
    for _ in range(3):
        h.frame("a", {"type": "CANDIDATE", "dst": "bob", "payload": {}})
    h.frame("c", {"type": "OFFER", "dst": "bob", "payload": {}})
    h.got("a"), h.got("c")
    h.clock.now += 4.9
    h.hub.tick()
    assert h.got("a") == []
    h.clock.now += 0.2
    h.hub.tick()
    assert h.got("a") == [{"type": "EXPIRE", "src": "bob", "dst": "alice"}]
    assert h.got("c") == [{"type": "EXPIRE", "src": "bob", "dst": "carol"}]
    h.peer("b", "bob")
    assert h.got("b") == [{"type": "OPEN"}]  # expired: gone
    assert h.hub.frontends.peerjs.expired == 2


def test_peerjs_keeps_at_most_so_many_messages_for_one_absent_peer() -> None:
    from hubbub.core.peerjs import MAX_QUEUED

    h = Frontend(Limits(message_burst=1000, message_rate=1000))
    h.peer("a", "alice")
    for n in range(MAX_QUEUED + 10):
        h.frame("a", {"type": "CANDIDATE", "dst": "bob", "payload": {"n": n}})
    assert h.hub.frontends.peerjs.queued == MAX_QUEUED


def test_peerjs_a_silent_client_is_closed_after_the_alive_timeout() -> None:
    h = Frontend(frontends=FrontendSettings(peerjs_alive_timeout=60))
    h.peer("a", "alice")
    h.clock.now += 50
    h.frame("a", {"type": "HEARTBEAT"})
    h.clock.now += 50
    h.hub.tick()
    assert "a" not in h.outbox.closed_links
    h.clock.now += 11
    h.hub.tick()
    assert h.outbox.closed_links["a"] == CloseCode.NORMAL


@pytest.mark.parametrize(
    "frame",
    ["not json", "[]", '{"type":"NOPE"}', '{"type":"OFFER","payload":{}}', "[" * 100 + "]" * 100],
)
def test_peerjs_a_bad_frame_gets_an_error_and_nothing_else(frame: str) -> None:
    h = Frontend()
    h.peer("a", "alice")
    h.got("a")
    h.frame("a", frame)
    [error] = h.got("a")
    assert error["type"] == "ERROR"
    assert error["payload"]["msg"]
    assert "a" not in h.outbox.closed_links


def _token_mode() -> Frontend:
    verifier = TokenVerifier(VerificationKeys.load(SECRET, None))
    return Frontend(admission=Admission(AuthMode.TOKEN, verifier))


def test_peerjs_in_token_mode_needs_a_token_for_its_id_and_takes_the_id_back() -> None:
    h = _token_mode()
    h.peer("random", "alice", token="abc123")  # PeerJS's own random token
    assert h.got("random") == [{"type": "ERROR", "payload": {"msg": peerjs.INVALID_TOKEN}}]
    h.peer("wrong", "alice", token=token("bob", "peerjs:*"))
    [error] = h.got("wrong")
    assert error["payload"]["msg"].startswith(peerjs.INVALID_TOKEN)
    h.peer("room", "alice", token=token("alice", "peerjs:app"))
    assert h.got("room")[0]["type"] == "ERROR"  # the token grants another key
    h.peer("first", "alice", token=token("alice", "peerjs:*"))
    assert h.got("first") == [{"type": "OPEN"}]
    h.peer("reload", "alice", token=token("alice", "peerjs:*"))
    assert h.got("reload") == [{"type": "OPEN"}]
    assert h.outbox.closed_links["first"] == CloseCode.REPLACED


def test_peerjs_a_flood_is_refused_in_peerjs_form() -> None:
    h = Frontend(Limits(message_rate=1, message_burst=2))
    h.peer("a", "alice")
    h.peer("b", "bob")
    h.got("a")
    for _ in range(4):
        h.frame("a", {"type": "CANDIDATE", "dst": "bob", "payload": {}})
    got = h.got("a")
    assert [m["type"] for m in got] == ["ERROR"]
    assert "slow down" in got[0]["payload"]["msg"]
    assert len(h.got("b")) == 3  # OPEN and the two within the budget


def test_hubbub_clients_may_not_join_a_front_ends_room() -> None:
    h = Frontend()
    h.connect("web")
    h.send("web", {"type": "join-room", "room": "peerjs:peerjs", "userId": "x"})
    [error] = h.take("web")
    assert error["code"] == "forbidden"


# -- y-webrtc ----------------------------------------------------------------------------


def test_y_webrtc_publish_reaches_every_subscriber_with_clients_counted() -> None:
    h = Frontend()
    for name in ("one", "two", "three"):
        h.y(name)
    h.frame("one", {"type": "subscribe", "topics": ["doc", "other", 5]})
    h.frame("two", {"type": "subscribe", "topics": ["doc"]})
    h.frame("three", {"type": "subscribe", "topics": ["other"]})
    h.frame("one", {"type": "publish", "topic": "doc", "data": {"type": "announce", "from": "p1"}})
    sent = {
        "type": "publish",
        "topic": "doc",
        "data": {"type": "announce", "from": "p1"},
        "clients": 2,
    }
    assert h.got("one") == [sent]
    assert h.got("two") == [sent]
    assert h.got("three") == []
    assert h.hub.rooms.get("y-webrtc:doc") is not None
    h.frame("two", {"type": "unsubscribe", "topics": ["doc"]})
    h.frame("one", {"type": "publish", "topic": "doc", "data": "blob"})
    assert h.got("one") == [{"type": "publish", "topic": "doc", "data": "blob", "clients": 1}]
    assert h.got("two") == []
    h.frame("two", {"type": "ping"})
    assert h.got("two") == [{"type": "pong"}]


def test_y_webrtc_refuses_a_publish_to_a_topic_not_subscribed_and_bad_frames() -> None:
    h = Frontend()
    h.y("one")
    h.frame("one", {"type": "publish", "topic": "doc", "data": {}})
    [error] = h.got("one")
    assert error == {
        "type": "error",
        "code": "not-in-room",
        "message": "subscribe to the topic to publish to it",
        "topic": "doc",
    }
    h.frame("one", "{")
    h.frame("one", {"type": "what"})
    assert [m["code"] for m in h.got("one")] == ["bad-json", "unknown-type"]


def test_y_webrtc_a_connection_subscribes_to_so_many_topics_and_the_rest_is_refused() -> None:
    h = Frontend(Limits(max_topics_per_connection=2))
    h.y("one")
    h.frame("one", {"type": "subscribe", "topics": ["a", "b", "c"]})
    [error] = h.got("one")
    assert (error["code"], error["topic"]) == ("too-many-rooms", "c")
    h.frame("one", {"type": "unsubscribe", "topics": ["a"]})
    h.frame("one", {"type": "subscribe", "topics": ["c"]})
    assert h.got("one") == []


def test_y_webrtc_the_end_of_a_connection_ends_its_subscriptions() -> None:
    h = Frontend()
    h.y("one")
    h.frame("one", {"type": "subscribe", "topics": ["a", "b"]})
    assert len(h.hub.sessions) == 3
    h.hang_up("one")
    assert h.hub.sessions == {}
    assert len(h.hub.rooms) == 0


def test_y_webrtc_with_a_token_only_its_rooms_topics() -> None:
    h = _token_mode()
    identity = h.hub.admission.identify(token("alice", "y-webrtc:team-*"))
    h.y("one", identity)
    h.frame("one", {"type": "subscribe", "topics": ["team-notes", "secret"]})
    [error] = h.got("one")
    assert (error["code"], error["topic"]) == ("forbidden", "secret")
    assert h.hub.rooms.get("y-webrtc:team-notes") is not None


def test_y_webrtc_a_full_topic_refuses_the_next_subscriber() -> None:
    h = Frontend(Limits(max_participants=1))
    h.y("one")
    h.y("two")
    h.frame("one", {"type": "subscribe", "topics": ["doc"]})
    h.frame("two", {"type": "subscribe", "topics": ["doc"]})
    [error] = h.got("two")
    assert error["code"] == "room-full"


# -- tracker ------------------------------------------------------------------------------


def test_tracker_hands_each_offer_to_another_peer_and_routes_the_answer_back() -> None:
    h = Frontend()
    for name in ("a", "b", "c"):
        h.tracker(name)
        h.frame(name, announce(name, event="started", left=1 if name != "c" else 0))
    assert h.got("a") == [
        {
            "complete": 0,
            "incomplete": 1,
            "action": "announce",
            "interval": 120,
            "info_hash": "i" * 20,
        }
    ]
    assert h.got("c")[0]["complete"] == 1
    h.got("b")
    h.frame("a", announce("a", offers=[offer(1), offer(2), offer(3)]))
    assert h.got("a") == [
        {
            "complete": 1,
            "incomplete": 2,
            "action": "announce",
            "interval": 120,
            "info_hash": "i" * 20,
        }
    ]
    b, c = h.got("b"), h.got("c")
    assert (len(b), len(c)) == (1, 1)  # three offers, two other peers: one each
    assert {b[0]["offer_id"], c[0]["offer_id"]} <= {"1" * 20, "2" * 20, "3" * 20}
    assert b[0]["offer_id"] != c[0]["offer_id"]
    assert (b[0]["peer_id"], b[0]["info_hash"]) == ("a" * 20, "i" * 20)
    h.frame(
        "b",
        announce("b", to_peer_id="a" * 20, answer={"type": "answer"}, offer_id=b[0]["offer_id"]),
    )
    assert h.got("b") == []  # no reply to an answer
    assert h.got("a") == [
        {
            "action": "announce",
            "answer": {"type": "answer"},
            "offer_id": b[0]["offer_id"],
            "peer_id": "b" * 20,
            "info_hash": "i" * 20,
        }
    ]
    assert h.hub.frontends.tracker.offers == 2
    assert h.hub.frontends.tracker.answers == 1


def test_tracker_stopped_and_the_end_of_a_connection_leave_the_swarm() -> None:
    h = Frontend()
    h.tracker("a")
    h.tracker("b")
    h.frame("a", announce("a", event="started"))
    h.frame("b", announce("b", event="started"))
    h.frame("a", announce("a", info_hash="j" * 20, event="started"))
    h.frame("a", announce("a", event="stopped"))
    h.got("a"), h.got("b")
    h.frame("b", announce("b", offers=[offer(1)]))
    assert h.got("a") == []  # a is no longer in the swarm
    h.hang_up("a")
    assert h.hub.rooms.get("tracker:" + ("j" * 20).encode().hex()) is None


def test_tracker_refuses_in_its_own_words() -> None:
    h = Frontend()
    h.tracker("a")
    h.tracker("b")
    h.frame("a", {"action": "announce", "info_hash": "short", "peer_id": "a" * 20})
    h.frame("a", {"action": "dance"})
    h.frame("a", "nope")
    h.frame("a", announce("a", event="sideways"))
    assert h.got("a") == [
        {"failure reason": "invalid info_hash"},
        {"failure reason": "invalid action in WS request: dance"},
        {"failure reason": "invalid request: not JSON"},
        {"action": "announce", "failure reason": "invalid event", "info_hash": "i" * 20},
    ]
    h.frame("a", announce("a", event="started"))
    h.frame("b", announce("a", event="started"))  # a's peer_id, another connection
    assert h.got("b") == [
        {
            "action": "announce",
            "failure reason": "peer_id is in use in this swarm",
            "info_hash": "i" * 20,
        }
    ]


def test_tracker_scrape_counts_a_swarm() -> None:
    h = Frontend()
    h.tracker("a")
    h.frame("a", announce("a", event="started", left=0))
    h.frame("a", {"action": "scrape", "info_hash": ["i" * 20, "k" * 20]})
    assert h.got("a")[-1] == {
        "action": "scrape",
        "files": {
            "i" * 20: {"complete": 1, "incomplete": 0, "downloaded": 1},
            "k" * 20: {"complete": 0, "incomplete": 0, "downloaded": 0},
        },
        "flags": {"min_request_interval": 120},
    }


def test_front_end_members_are_hidden_and_admins_can_remove_them() -> None:
    h = Frontend()
    h.tracker("a")
    h.frame("a", announce("a", event="started"))
    room = "tracker:" + ("i" * 20).encode().hex()
    member = h.hub.rooms.get(room).members["61" * 20]
    assert member.hidden
    assert h.hub.remove_participant(room, "61" * 20)
    assert h.outbox.closed_links["a"] == CloseCode.REMOVED


def test_relaying_needs_the_signal_grant_in_every_front_end() -> None:
    h = _token_mode()
    quiet = token("watcher", ["peerjs:*", "y-webrtc:*", "tracker:*"], grants=["join"])
    h.peer("p", "watcher", token=quiet)
    h.peer("q", "other", token=token("other", "peerjs:*"))
    assert h.got("p") == [{"type": "OPEN"}]
    h.frame("p", {"type": "OFFER", "dst": "other", "payload": {}})
    assert h.got("p") == [{"type": "ERROR", "payload": {"msg": "this needs the 'signal' grant"}}]
    assert h.got("q") == [{"type": "OPEN"}]

    identity = h.hub.admission.identify(quiet)
    h.y("y", identity)
    h.frame("y", {"type": "subscribe", "topics": ["doc"]})
    h.frame("y", {"type": "publish", "topic": "doc", "data": 1})
    [error] = h.got("y")
    assert (error["code"], error["topic"]) == ("forbidden", "doc")

    h.tracker("t", identity)
    h.frame("t", announce("t", event="started"))
    assert h.got("t")[0]["incomplete"] == 1  # announcing, and being counted, is allowed
    h.frame("t", announce("t", offers=[offer(1)]))
    assert h.got("t") == [
        {
            "action": "announce",
            "failure reason": "offers and answers need the 'signal' grant",
            "info_hash": "i" * 20,
        }
    ]
