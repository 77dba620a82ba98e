"""The ``signal`` values peers exchange (``docs/peer-protocol.md``), to and from aiortc.

Parsing is lenient where browsers and the seed's clients differ (an ``sdp`` given as
a bare string, a candidate line with or without its ``a=`` prefix) and strict
about the rest: a value that is not one of the known shapes is
:class:`BadSignal`, which the mesh logs and drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceCandidate, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

MAX_SDP_LENGTH = 256 * 1024
"""Characters: the longest session description accepted from a peer."""
MAX_PACKET_SIZE_LIMIT = 65536
"""Bytes: a ``maxPacketSize`` above this (or not a positive integer) is ignored."""


class BadSignal(ValueError):
    """A signal that is none of the shapes of the peer protocol."""


class UnknownSignal(BadSignal):
    """A signal of a type this peer does not use (``media-state``, say): ignored, as
    the peer protocol asks."""


@dataclass(frozen=True)
class Description:
    description: RTCSessionDescription
    max_packet_size: int | None = None
    """The largest SCTP packet the remote says it reads (``"sctp": {"maxPacketSize"}``),
    None when it says nothing (browsers do not)."""


@dataclass(frozen=True)
class Candidate:
    candidate: RTCIceCandidate | None
    """None marks the end of the remote's candidates."""


Signal = Description | Candidate


def description_signal(
    description: RTCSessionDescription, *, max_packet_size: int | None = None
) -> dict[str, Any]:
    signal: dict[str, Any] = {
        "type": description.type,
        "sdp": {"type": description.type, "sdp": description.sdp},
    }
    if max_packet_size is not None:
        signal["sctp"] = {"maxPacketSize": max_packet_size}
    return signal


def parse_signal(value: Any) -> Signal:
    if not isinstance(value, dict):
        raise BadSignal("a signal is a JSON object")
    kind = value.get("type")
    if kind in ("offer", "answer"):
        sdp = value.get("sdp")
        if isinstance(sdp, dict):
            if sdp.get("type", kind) != kind:
                raise BadSignal(f"an {kind} signal that holds an {str(sdp.get('type'))[:16]}")
            sdp = sdp.get("sdp")
        if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_LENGTH:
            raise BadSignal(f"the {kind} has no usable sdp")
        return Description(
            RTCSessionDescription(sdp=sdp, type=kind), _max_packet_size(value.get("sctp"))
        )
    if kind == "ice-candidate":
        return Candidate(_parse_candidate(value.get("candidate")))
    raise UnknownSignal(f"unknown signal type {str(kind)[:32]!r}")


def _max_packet_size(sctp: Any) -> int | None:
    # an extension a peer may leave out: a value that cannot be used is as if absent
    size = sctp.get("maxPacketSize") if isinstance(sctp, dict) else None
    if isinstance(size, int) and not isinstance(size, bool) and 0 < size <= MAX_PACKET_SIZE_LIMIT:
        return size
    return None


def _parse_candidate(init: Any) -> RTCIceCandidate | None:
    if init is None:
        return None
    if not isinstance(init, dict):
        raise BadSignal("candidate is an RTCIceCandidateInit object")
    line = init.get("candidate")
    if line is None or line == "":
        return None
    if not isinstance(line, str) or len(line) > 1024:
        raise BadSignal("candidate.candidate is a candidate line")
    line = line.removeprefix("a=").removeprefix("candidate:")
    if len(line.split()) < 8:
        raise BadSignal("unreadable candidate line")
    try:
        candidate = candidate_from_sdp(line)
    except (ValueError, IndexError) as exc:
        raise BadSignal("unreadable candidate line") from exc
    mid = init.get("sdpMid")
    index = init.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if isinstance(index, int) else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0
    return candidate
