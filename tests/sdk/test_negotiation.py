"""The perfect negotiation table and the signal parser, without a network."""

from __future__ import annotations

import pytest
from aiortc import RTCSessionDescription

from hubbub.peer.negotiation import Move, NegotiationError, decide
from hubbub.peer.signals import (
    BadSignal,
    Candidate,
    Description,
    description_signal,
    parse_signal,
)


@pytest.mark.parametrize(
    ("kind", "polite", "state", "making", "move"),
    [
        ("offer", False, "stable", False, Move.ACCEPT),
        ("offer", True, "stable", False, Move.ACCEPT),
        ("offer", False, "have-local-offer", False, Move.IGNORE),
        ("offer", False, "stable", True, Move.IGNORE),
        ("offer", True, "have-local-offer", False, Move.REPLACE_AND_ACCEPT),
        ("answer", False, "have-local-offer", False, Move.APPLY_ANSWER),
        ("answer", True, "stable", False, Move.IGNORE),
    ],
)
def test_moves(kind: str, polite: bool, state: str, making: bool, move: Move) -> None:
    assert decide(kind, polite=polite, signaling_state=state, making_offer=making) is move


def test_no_move_for_other_descriptions() -> None:
    with pytest.raises(NegotiationError):
        decide("pranswer", polite=True, signaling_state="stable", making_offer=False)


def test_signals_in_browser_and_seed_shapes() -> None:
    offer = parse_signal({"type": "offer", "sdp": {"type": "offer", "sdp": "v=0\r\n"}})
    assert isinstance(offer, Description)
    assert offer.description.type == "offer"
    bare = parse_signal({"type": "answer", "sdp": "v=0\r\n"})
    assert isinstance(bare, Description)
    line = "candidate:1 1 udp 2122260223 192.0.2.2 54400 typ host generation 0"
    candidate = parse_signal(
        {"type": "ice-candidate", "candidate": {"candidate": line, "sdpMid": "0"}}
    )
    assert isinstance(candidate, Candidate)
    assert candidate.candidate is not None
    assert (candidate.candidate.ip, candidate.candidate.port) == ("192.0.2.2", 54400)
    assert candidate.candidate.sdpMid == "0"
    for end in (None, {"candidate": ""}):
        parsed = parse_signal({"type": "ice-candidate", "candidate": end})
        assert isinstance(parsed, Candidate)
        assert parsed.candidate is None


@pytest.mark.parametrize(
    "bad",
    [
        "offer",
        {"type": "teleport"},
        {"type": "offer"},
        {"type": "offer", "sdp": {"type": "answer", "sdp": "v=0"}},
        {"type": "offer", "sdp": "x" * 300_000},
        {"type": "ice-candidate", "candidate": {"candidate": "candidate:1 1 udp"}},
        {"type": "ice-candidate", "candidate": {"candidate": "candidate:a b c d e f g h"}},
        {"type": "ice-candidate", "candidate": 7},
    ],
)
def test_bad_signals_are_refused_by_name(bad: object) -> None:
    with pytest.raises(BadSignal):
        parse_signal(bad)


def test_descriptions_say_how_large_a_packet_the_peer_reads() -> None:
    offer = RTCSessionDescription(sdp="v=0\r\n", type="offer")
    signal = description_signal(offer, max_packet_size=16384)
    assert signal == {
        "type": "offer",
        "sdp": {"type": "offer", "sdp": "v=0\r\n"},
        "sctp": {"maxPacketSize": 16384},
    }
    parsed = parse_signal(signal)
    assert isinstance(parsed, Description)
    assert parsed.max_packet_size == 16384
    assert "sctp" not in description_signal(offer)
    # an extension: what cannot be used is as if it were not there
    for sctp in (None, "big", {"maxPacketSize": "16384"}, {"maxPacketSize": True},
                 {"maxPacketSize": 0}, {"maxPacketSize": 1 << 20}, {}):  # fmt: skip
        parsed = parse_signal({**signal, "sctp": sctp})
        assert isinstance(parsed, Description)
        assert parsed.max_packet_size is None
