"""The front-ends' codecs: the bytes the reference servers send, field for field, and
decoders that raise nothing but ProtocolError whatever the frame."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.protocol import peerjs, tracker, y_webrtc
from hubbub.protocol.errors import ProtocolError


def test_peerjs_bytes_are_the_reference_servers() -> None:
    # JSON.stringify of {type, src, dst, payload}, in that order; no payload: left out.
    raw = msgspec.Raw(b'{"sdp":"v=0","connectionId":"dc_1"}')
    assert peerjs.relayed("OFFER", "a", "b", raw) == (
        b'{"type":"OFFER","src":"a","dst":"b","payload":{"sdp":"v=0","connectionId":"dc_1"}}'
    )
    assert (
        peerjs.relayed("LEAVE", "a", "b", peerjs.ABSENT) == b'{"type":"LEAVE","src":"a","dst":"b"}'
    )
    assert peerjs.expire("b", "a") == b'{"type":"EXPIRE","src":"b","dst":"a"}'
    assert peerjs.OPEN == b'{"type":"OPEN"}'
    assert peerjs.ID_TAKEN_MESSAGE == b'{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}'
    assert peerjs.error(peerjs.INVALID_KEY) == (
        b'{"type":"ERROR","payload":{"msg":"Invalid key provided"}}'
    )


def test_peerjs_decodes_what_the_client_sends() -> None:
    assert peerjs.decode('{"type":"HEARTBEAT"}', 32) is peerjs.HEARTBEAT
    relay = peerjs.decode('{"type":"CANDIDATE","dst":"b","payload":{"candidate":{}}}', 32)
    assert isinstance(relay, peerjs.Relay)
    assert (relay.type, relay.dst, bytes(relay.payload)) == ("CANDIDATE", "b", b'{"candidate":{}}')


@pytest.mark.parametrize(
    "peer_id", ["a", "abc", "a-b", "a_b", "a b", "A1-b2_c3", "8f14e45f-ceea-467f-a0e6-4ab2e3c1a9f0"]
)
def test_peerjs_ids_the_client_accepts(peer_id: str) -> None:
    assert peerjs.valid_id(peer_id, 64)


@pytest.mark.parametrize("peer_id", ["", "-a", "a-", "a--b", "a.b", "é", "a\nb", "a" * 65])
def test_peerjs_ids_refused(peer_id: str) -> None:
    assert not peerjs.valid_id(peer_id, 64)


def test_y_webrtc_bytes() -> None:
    data = msgspec.Raw(b'{"to":"p2","from":"p1","type":"signal","signal":{}}')
    assert y_webrtc.published("doc", data, 3) == (
        b'{"type":"publish","topic":"doc","data":{"to":"p2","from":"p1","type":"signal",'
        b'"signal":{}},"clients":3}'
    )
    assert y_webrtc.PONG == b'{"type":"pong"}'
    assert json.loads(y_webrtc.error("forbidden", "no", "doc")) == {
        "type": "error",
        "code": "forbidden",
        "message": "no",
        "topic": "doc",
    }


def test_tracker_bytes_are_the_reference_servers() -> None:
    # The reference's key order: complete, incomplete, action, interval, info_hash.
    assert tracker.announce_reply("\u00ff" * 20, 1, 2, 120) == (
        b'{"complete":1,"incomplete":2,"action":"announce","interval":120,"info_hash":"'
        + "\u00ff".encode() * 20
        + b'"}'
    )
    offered = tracker.Offer(msgspec.Raw(b'"o"'), msgspec.Raw(b'{"type":"offer"}'))
    assert tracker.offer(offered, "p" * 20, "i" * 20) == (
        b'{"action":"announce","offer":{"type":"offer"},"offer_id":"o","peer_id":"'
        + b"p" * 20
        + b'","info_hash":"'
        + b"i" * 20
        + b'"}'
    )
    assert tracker.failure("invalid info_hash") == b'{"failure reason":"invalid info_hash"}'


def test_tracker_binary_strings_become_hex_rooms() -> None:
    frame = json.dumps(
        {"action": "announce", "info_hash": "\u0000\u00ff" * 10, "peer_id": "p" * 20}
    )
    message = tracker.decode(frame, 32)
    assert isinstance(message, tracker.Announce)
    assert message.swarm == "tracker:" + "00ff" * 10
    assert message.peer == "70" * 20
    assert message.event == "update"
    with pytest.raises(tracker.TrackerError, match="invalid peer_id"):
        tracker.decode(
            json.dumps({"action": "announce", "info_hash": "i" * 20, "peer_id": "€" * 20}), 32
        )


frames = st.one_of(
    st.text(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "type",
                        "dst",
                        "payload",
                        "topics",
                        "topic",
                        "data",
                        "action",
                        "info_hash",
                        "peer_id",
                        "offers",
                        "answer",
                        "to_peer_id",
                        "offer_id",
                        "event",
                        "left",
                    ]
                ),
                children,
                max_size=6,
            )
        ),
        max_leaves=20,
    ).map(json.dumps),
)


@given(frames)
def test_the_decoders_raise_nothing_but_protocol_errors(frame: str) -> None:
    for decode in (peerjs.decode, y_webrtc.decode, tracker.decode):
        with contextlib.suppress(ProtocolError):
            decode(frame, 8)
