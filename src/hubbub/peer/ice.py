"""Which path a peer connection took: its selected ICE candidate pair, in the words
of the W3C statistics (``RTCIceCandidateStats``: ``candidateType``, ``protocol``,
``relayProtocol``), as a browser's ``getStats()`` reports them.

aiortc keeps the pair in aioice's connection (one component: everything is bundled);
this reads it there, and says nothing (None) on an aiortc or aioice that is not as
expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IceCandidate:
    """One end of the selected pair."""

    candidate_type: str
    """``host``, ``srflx`` (the address a NAT gave us, found with STUN), ``prflx``
    (learnt from the other's checks) or ``relay`` (a TURN server's)."""
    address: str
    port: int
    protocol: str
    """``udp`` or ``tcp``: how the candidate itself sends."""
    relay_protocol: str | None = None
    """For a local ``relay`` candidate: how we reach the TURN server (``udp``,
    ``tcp`` or ``tls``)."""


@dataclass(frozen=True)
class IcePair:
    local: IceCandidate
    remote: IceCandidate

    @property
    def relayed(self) -> bool:
        """Whether the media go through a TURN server (ours or the other's)."""
        return "relay" in (self.local.candidate_type, self.remote.candidate_type)

    def describe(self) -> str:
        """``srflx 203.0.113.21:4000 -> srflx 203.0.113.22:4001``, with the relay's
        protocol when there is one (``relay/tcp``)."""

        def side(candidate: IceCandidate) -> str:
            kind = candidate.candidate_type
            if candidate.relay_protocol:
                kind += "/" + candidate.relay_protocol
            return f"{kind} {candidate.address}:{candidate.port}"

        return f"{side(self.local)} -> {side(self.remote)}"


def selected_pair(pc: Any) -> IcePair | None:
    """The candidate pair ``pc`` (an aiortc ``RTCPeerConnection``) sends over, once
    ICE has chosen one; None before, or when aiortc is not as expected."""
    try:
        transports = [t.transport for t in pc.getTransceivers() if t.sender.transport]
        if pc.sctp is not None:
            transports.append(pc.sctp.transport)
        for dtls in transports:
            connection = dtls.transport._connection
            pair = connection._nominated.get(1)
            if pair is None:
                continue
            local, remote = pair.local_candidate, pair.remote_candidate
            relay_protocol = None
            if local.type == "relay":
                relay_protocol = "tls" if connection.turn_ssl else connection.turn_transport
            return IcePair(
                local=IceCandidate(
                    local.type, local.host, local.port, local.transport.lower(), relay_protocol
                ),
                remote=IceCandidate(
                    remote.type, pair.remote_addr[0], remote.port, remote.transport.lower()
                ),
            )
    except (AttributeError, KeyError, TypeError):
        return None
    return None


def avoid_relaying_into_lans(pc: Any) -> int:
    """Keep the TURN relay of ``pc`` (an aiortc ``RTCPeerConnection``) from checking
    the other's LAN addresses; the number of ICE connections this was done to (once
    each).

    The other lists its host addresses, which are its LAN's when it sits behind a
    NAT. A pair of our relay with such an address asks the TURN server to send to a
    private address of another network, which it cannot reach: coturn then fails
    the send (``network unreachable``) and closes the whole allocation, with no
    word to the client, whose every later check through that relay is lost (the
    calls of two peers behind symmetric NATs never connected). An address is taken
    to be behind a NAT when the other also says what the internet sees of it (a
    server-reflexive candidate, or a relay candidate's related address) and that is
    another address. Such pairs are dropped before they are checked, also when the
    telling candidate comes later (trickled); the other pairs are left as they are.
    """
    done = 0
    for connection in _ice_connections(pc):
        if getattr(connection, "_hubbub_relay_pruning", False):
            continue
        pair_remote = connection._pair_remote_candidate

        def pairing(remote: Any, connection: Any = connection, original: Any = pair_remote) -> None:
            original(remote)
            _drop_relay_pairs_into_lans(connection)

        connection._pair_remote_candidate = pairing
        connection._hubbub_relay_pruning = True
        _drop_relay_pairs_into_lans(connection)
        done += 1
    return done


def _ice_connections(pc: Any) -> list[Any]:
    connections = []
    try:
        transports = [t.receiver.transport for t in pc.getTransceivers()]
        if pc.sctp is not None:
            transports.append(pc.sctp.transport)
        for dtls in transports:
            connection = getattr(getattr(dtls, "transport", None), "_connection", None)
            if connection is not None and connection not in connections:
                connections.append(connection)
    except AttributeError:
        return []
    return [c for c in connections if hasattr(c, "_pair_remote_candidate")]


def _drop_relay_pairs_into_lans(connection: Any) -> None:
    from aioice.ice import CandidatePair

    try:
        remote = connection._remote_candidates
        seen_outside = {c.host for c in remote if c.type == "srflx"} | {
            c.related_address
            for c in remote
            if c.type == "relay" and c.related_address not in (None, "0.0.0.0", "::")
        }
        if not seen_outside:
            return
        waiting = (CandidatePair.State.FROZEN, CandidatePair.State.WAITING)
        connection._check_list[:] = [
            pair
            for pair in connection._check_list
            if not (
                pair.state in waiting
                and pair.local_candidate.type == "relay"
                and pair.remote_candidate.type == "host"
                and pair.remote_candidate.host not in seen_outside
            )
        ]
    except (AttributeError, TypeError):
        return
