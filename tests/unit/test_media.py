"""Rooms' modes and calls through the media server, in the core alone: the requests it
hands the bridge, and what members are told."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.auth.grants import ANY_ROOM, Grant, Identity
from hubbub.core import Limits
from hubbub.core.media import CLOSE_AFTER_MESH
from hubbub.media import ForwardedStream, Jsep, SubscriberOffer
from hubbub.media.modes import MediaSetting, Mode, next_mode
from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.messages import Ref
from tests.unit.helpers import Harness

OFFER = {"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 x\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\n"}
SFU = ["sfu"]


class RecordingMedia:
    """The bridge's requests, recorded; a test answers them through the hub."""

    available = True

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []

    def kinds(self) -> list[str]:
        return [request[0] for request in self.requests]

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [request for request in self.requests if request[0] == kind]

    def publish(self, room: str, session_id: str, user_id: str, offer: Jsep, ref: Ref) -> None:
        self.requests.append(("publish", room, session_id, user_id, offer, ref))

    def configure(self, room: str, session_id: str, changes: Any, offer: Any, ref: Ref) -> None:
        self.requests.append(("configure", room, session_id, changes, offer, ref))

    def subscribe(self, room: str, session_id: str, connection: str, feeds: Any, ref: Ref) -> None:
        self.requests.append(("subscribe", room, session_id, connection, feeds, ref))

    def unsubscribe(
        self, room: str, session_id: str, connection: str, feeds: Any, ref: Ref
    ) -> None:
        self.requests.append(("unsubscribe", room, session_id, connection, feeds, ref))

    def answer(self, room: str, session_id: str, connection: str, answer: Jsep, ref: Ref) -> None:
        self.requests.append(("answer", room, session_id, connection, answer, ref))

    def select_layer(self, *args: Any) -> None:
        self.requests.append(("layer", *args))

    def trickle(self, room: str, session_id: str, connection: str, candidate: Any) -> None:
        self.requests.append(("trickle", room, session_id, connection, candidate))

    def hang_up(self, room: str, session_id: str, connection: str) -> None:
        self.requests.append(("hang-up", room, session_id, connection))

    def kick(self, room: str, user_id: str, session_id: str, connections: list[str]) -> None:
        self.requests.append(("kick", room, user_id, session_id, connections))

    def close_room(self, room: str) -> None:
        self.requests.append(("close-room", room))


def sfu_harness(**options: Any) -> tuple[Harness, RecordingMedia]:
    media = RecordingMedia()
    return Harness(media=media, **options), media


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [message["type"] for message in messages]


def publish(h: Harness, media: RecordingMedia, name: str, room: str = "r") -> None:
    """``name`` publishes and its feed comes up."""
    h.send(name, {"type": "media-publish", "jsep": OFFER, "ref": 7})
    session_id = h.clients[name].session_id
    h.events.media_answered(session_id, "publisher", Jsep("answer", "v=0\r\n"), 7)
    h.events.feed_up(room, session_id)


def test_the_mode_table() -> None:
    auto, mesh, sfu = MediaSetting.AUTO, MediaSetting.MESH, MediaSetting.SFU
    assert next_mode(auto, Mode.MESH, 4, 4, sfu_available=True) is Mode.MESH
    assert next_mode(auto, Mode.MESH, 5, 4, sfu_available=True) is Mode.SFU
    assert next_mode(auto, Mode.SFU, 3, 4, sfu_available=True) is Mode.SFU
    assert next_mode(auto, Mode.SFU, 2, 4, sfu_available=True) is Mode.MESH
    assert next_mode(auto, Mode.MESH, 9, 4, sfu_available=False) is Mode.MESH
    assert next_mode(sfu, Mode.MESH, 0, 4, sfu_available=True) is Mode.SFU
    assert next_mode(sfu, Mode.MESH, 0, 4, sfu_available=False) is Mode.MESH
    assert next_mode(mesh, Mode.SFU, 9, 4, sfu_available=True) is Mode.MESH
    # A low threshold does not flap: 2 senders move it, 1 brings it back.
    assert next_mode(auto, Mode.MESH, 2, 1, sfu_available=True) is Mode.SFU
    assert next_mode(auto, Mode.SFU, 2, 1, sfu_available=True) is Mode.SFU
    assert next_mode(auto, Mode.SFU, 1, 1, sfu_available=True) is Mode.MESH


def test_without_a_media_server_a_room_stays_a_mesh() -> None:
    h = Harness(mesh_max_participants=1)
    for name in ("a", "b", "c"):
        h.join(name, "r", name, features=SFU)
        h.send(name, {"type": "media-sending", "active": True})
    assert all("media-mode" not in types(h.take(name)) for name in ("a", "b", "c"))
    h.send("a", {"type": "media-publish", "jsep": OFFER, "ref": 1})
    assert h.take("a")[0]["code"] == "wrong-media-mode"


def test_the_fifth_sender_moves_the_call_and_a_seed_client_is_told() -> None:
    h, _ = sfu_harness()
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        h.join(name, "r", name, features=SFU)
    h.join("seed", "r", "seed")
    for name in names[:4]:
        h.send(name, {"type": "media-sending", "active": True})
    assert all("media-mode" not in types(h.take(name)) for name in names)
    h.send("e", {"type": "media-sending", "active": True})
    for name in names:
        modes = [m for m in h.take(name) if m["type"] == "media-mode"]
        assert modes == [{"type": "media-mode", "mode": "sfu", "feeds": [], "reason": "auto"}]
    told = h.take("seed")
    assert [m.get("code") for m in told] == ["sfu-required"]
    h.send("seed", {"type": "signal", "targetUserId": "a", "signal": {"sdp": "x"}, "ref": 3})
    refusal = h.take("seed")[0]
    assert (refusal["code"], refusal["ref"]) == ("sfu-required", 3)
    assert h.take("a") == []
    # A member who joins now hears the mode after room-joined; a seed client, the error.
    h.join("f", "r", "f", features=SFU)
    assert types(h.take("f")) == ["media-mode"]
    h.join("seed2", "r", "seed2")
    assert [m.get("code") for m in h.take("seed2")] == ["sfu-required"]


def test_publishing_is_relayed_and_the_feed_announced_once_up() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.join("a", "r", "alice", features=SFU)
    h.join("b", "r", "bob", features=SFU)
    h.take("a"), h.take("b")
    h.send("a", {"type": "media-publish", "jsep": OFFER, "ref": 7})
    (request,) = media.of("publish")
    assert request[1:4] == ("r", h.clients["a"].session_id, "alice")
    assert request[4] == Jsep("offer", OFFER["sdp"])
    h.events.media_answered(h.clients["a"].session_id, "publisher", Jsep("answer", "v=0\r\n"), 7)
    assert h.take("a") == [
        {"type": "media-answer", "connection": "publisher", "jsep": ANSWER, "ref": 7}
    ]
    assert h.take("b") == []
    h.events.feed_up("r", h.clients["a"].session_id)
    feeds = {"type": "media-feeds", "feeds": [{"userId": "alice", "audio": True, "video": True}]}
    assert h.take("a") == [feeds]
    assert h.take("b") == [feeds]


def test_publishing_needs_the_grant() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    viewer = Identity("viewer", ANY_ROOM, frozenset({Grant.JOIN, Grant.CHAT, Grant.SIGNAL}))
    h.connect("v", identity=viewer)
    h.join("v", "r", "viewer", features=SFU)
    h.take("v")
    h.send("v", {"type": "media-publish", "jsep": OFFER, "ref": 1})
    assert h.take("v")[0]["code"] == "forbidden"
    h.send("v", {"type": "media-sending", "active": True, "ref": 2})
    assert h.take("v")[0]["code"] == "forbidden"
    assert media.requests == []


def test_a_member_subscribes_only_to_feeds_of_its_own_room() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.join("a", "r", "alice", features=SFU)
    h.join("m", "other", "mallory", features=SFU)
    publish(h, media, "m", "other")
    h.take("a"), h.take("m")
    for feeds in (["mallory"], ["alice"], ["nobody"]):
        h.send("a", {"type": "media-subscribe", "feeds": feeds, "ref": 4})
        refusal = h.take("a")[0]
        assert (refusal["code"], refusal["ref"]) == ("no-such-feed", 4)
    h.send("a", {"type": "media-subscribe", "connection": "publisher", "feeds": ["x"]})
    assert h.take("a")[0]["code"] == "bad-message"
    assert media.of("subscribe") == []


def test_subscribing_is_relayed_with_the_offer_and_answer() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.join("a", "r", "alice", features=SFU)
    h.join("b", "r", "bob", features=SFU)
    publish(h, media, "a")
    h.take("a"), h.take("b")
    h.send("b", {"type": "media-subscribe", "feeds": ["alice", "alice"], "ref": 5})
    bob = h.clients["b"].session_id
    assert media.of("subscribe") == [("subscribe", "r", bob, "main", ["alice"], 5)]
    streams = (ForwardedStream("0", "audio", "alice"), ForwardedStream("1", "video", "alice"))
    h.events.media_offered(bob, "main", SubscriberOffer(Jsep("offer", "v=0\r\n"), streams), 5)
    (offer,) = h.take("b")
    assert (offer["type"], offer["ref"]) == ("media-offer", 5)
    assert offer["streams"][1] == {"mid": "1", "kind": "video", "userId": "alice", "active": True}
    h.send("b", {"type": "media-answer", "connection": "main", "jsep": ANSWER})
    assert media.of("answer")[0][1:4] == ("r", bob, "main")
    h.send("b", {"type": "media-answer", "connection": "other", "jsep": ANSWER, "ref": 6})
    assert h.take("b")[0]["code"] == "media-refused"
    h.send(
        "b", {"type": "media-configure", "connection": "main", "userId": "alice", "substream": 0}
    )
    assert media.of("layer") == [("layer", "r", bob, "main", "alice", 0, None, None)]
    candidate = {"candidate": "candidate:1 1 udp 1 198.51.100.1 9 typ host", "sdpMLineIndex": 0}
    h.send("b", {"type": "media-candidate", "connection": "main", "candidate": candidate})
    h.send("b", {"type": "media-candidate", "connection": "main", "candidate": None})
    assert [r[4] for r in media.of("trickle")] == [candidate, None]


def test_bad_descriptions_are_refused() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU, limits=Limits(max_sdp_length=100))
    h.join("a", "r", "alice", features=SFU)
    h.take("a")
    h.send("a", {"type": "media-publish", "jsep": ANSWER, "ref": 1})
    assert h.take("a")[0]["code"] == "bad-message"
    h.send("a", {"type": "media-publish", "jsep": {"type": "offer", "sdp": "x" * 101}})
    assert h.take("a")[0]["code"] == "too-large"
    h.send("a", {"type": "media-publish", "jsep": {"type": "pranswer", "sdp": ""}})
    assert h.take("a")[0]["code"] == "bad-message"
    h.send("a", {"type": "media-subscribe", "connection": "no spaces", "feeds": ["b"]})
    assert h.take("a")[0]["code"] == "bad-message"
    assert media.requests == []


def test_a_member_has_a_bounded_number_of_connections() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU, limits=Limits(max_media_connections=2))
    h.join("a", "r", "alice", features=SFU)
    h.join("b", "r", "bob", features=SFU)
    publish(h, media, "a")
    h.take("b")
    h.send("b", {"type": "media-subscribe", "connection": "one", "feeds": ["alice"]})
    h.send("b", {"type": "media-subscribe", "connection": "two", "feeds": ["alice"]})
    h.send("b", {"type": "media-subscribe", "connection": "three", "feeds": ["alice"]})
    assert [m.get("code") for m in h.take("b")] == ["rate-limited"]
    assert len(media.of("subscribe")) == 2


def test_a_removed_member_is_kicked_from_the_media_server() -> None:
    admin = Identity("boss", ANY_ROOM, frozenset(Grant), verified=True)
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.connect("boss", identity=admin)
    h.join("boss", "r", "boss", features=SFU)
    h.join("a", "r", "alice", features=SFU)
    publish(h, media, "a")
    h.send("a", {"type": "media-subscribe", "connection": "main", "feeds": ["alice"]})
    h.take("boss")
    h.send("boss", {"type": "remove-participant", "userId": "alice"})
    alice = h.clients["a"].session_id
    assert media.of("kick") == [("kick", "r", "alice", alice, ["publisher"])]
    assert {"type": "media-feeds", "feeds": []} in h.take("boss")


def test_the_last_member_out_closes_the_media_room() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.join("a", "r", "alice", features=SFU)
    publish(h, media, "a")
    h.send("a", {"type": "leave-room"})
    assert media.kinds()[-2:] == ["kick", "close-room"]
    assert h.hub.media.rooms == {}


def test_back_to_mesh_at_two_senders_and_the_media_room_closes_later() -> None:
    h, media = sfu_harness()
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        h.join(name, "r", name, features=SFU)
        h.send(name, {"type": "media-sending", "active": True})
    publish(h, media, "a")
    for name in names:
        h.take(name)
    h.send("e", {"type": "media-sending", "active": False})
    h.send("d", {"type": "media-sending", "active": False})
    assert all("media-mode" not in types(h.take(name)) for name in names)
    h.send("c", {"type": "media-sending", "active": False})
    for name in names:
        assert {"type": "media-mode", "mode": "mesh", "reason": "auto"} in h.take(name)
    assert "close-room" not in media.kinds()
    h.clock.now += CLOSE_AFTER_MESH
    h.hub.tick()
    assert media.kinds()[-1] == "close-room"
    assert h.hub.media.rooms["r"].feeds == {}


def test_a_lost_media_server_restarts_the_call() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.join("a", "r", "alice", features=SFU)
    h.join("b", "r", "bob", features=SFU)
    publish(h, media, "a")
    h.take("a"), h.take("b")
    h.events.media_lost(["r", "gone"])
    lost = {"type": "media-mode", "mode": "sfu", "feeds": [], "reason": "media-server-lost"}
    assert h.take("a") == [lost]
    assert h.take("b") == [lost]
    # Its connections are gone with it: publishing again starts afresh.
    h.send("a", {"type": "media-unpublish"})
    assert media.of("hang-up") == []
    h.events.media_failed(h.clients["a"].session_id, "publisher", ErrorCode.MEDIA_UNAVAILABLE, 9)
    assert h.take("a")[0] == {
        "type": "error",
        "code": "media-unavailable",
        "message": "the media server cannot be reached now; try again shortly",
        "ref": 9,
    }


def test_a_connection_the_media_server_closed_is_told() -> None:
    h, media = sfu_harness(media_mode=MediaSetting.SFU)
    h.join("a", "r", "alice", features=SFU)
    h.join("b", "r", "bob", features=SFU)
    publish(h, media, "a")
    h.take("a"), h.take("b")
    h.events.media_closed("r", h.clients["a"].session_id, "publisher")
    assert h.take("a") == [
        {"type": "media-feeds", "feeds": []},
        {"type": "media-closed", "connection": "publisher"},
    ]
    assert h.take("b") == [{"type": "media-feeds", "feeds": []}]


@pytest.mark.parametrize("available", [True, False])
def test_a_backend_sets_a_rooms_mode(available: bool) -> None:
    media = RecordingMedia()
    media.available = available
    h = Harness(media=media)
    h.join("a", "r", "alice", features=SFU)
    h.take("a")
    assert h.hub.set_media_mode("r", MediaSetting.SFU) == ("sfu" if available else "mesh")
    if available:
        assert h.take("a") == [
            {"type": "media-mode", "mode": "sfu", "feeds": [], "reason": "setting"}
        ]
    assert h.hub.set_media_mode("r", None) == "mesh"
    assert h.hub.set_media_mode("empty", MediaSetting.SFU) == ("sfu" if available else "mesh")
