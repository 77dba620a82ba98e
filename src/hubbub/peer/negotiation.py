"""Perfect negotiation, as a table: what a peer does with a description it receives.

Sans-I/O: :func:`decide` looks at the peer's role and state and names the move;
:class:`~hubbub.peer.mesh.Peer` carries it out on aiortc. Roles come from the
server (``docs/peer-protocol.md``): of two members, the earlier one is impolite.

aiortc has no rollback (``setLocalDescription({"type": "rollback"})``). Where the
pattern has the polite peer roll back its own offer, a Python peer instead drops
its peer connection and answers the other's offer on a fresh one
(:attr:`Move.REPLACE_AND_ACCEPT`). A Python peer only makes offers before its
connection is up (everything it sends is in the first offer), so what it drops
never carried anything.
"""

from __future__ import annotations

from enum import Enum


class Move(Enum):
    ACCEPT = "accept"
    """Apply the offer and answer it."""
    REPLACE_AND_ACCEPT = "replace-and-accept"
    """Polite side of a collision: drop our pending offer (a fresh peer connection
    stands in for rollback), then accept."""
    IGNORE = "ignore"
    """Impolite side of a collision, or an answer to no offer of ours: drop it, and
    the candidates that follow it."""
    APPLY_ANSWER = "apply-answer"
    """The answer to our pending offer."""


class NegotiationError(Exception):
    """A description of a kind perfect negotiation has no move for."""


# (description type, collision, polite) -> move. A collision is an offer that
# arrives while we have an offer out (``signalingState`` is not ``stable``, or an
# offer is being made).
TRANSITIONS: dict[tuple[str, bool, bool], Move] = {
    ("offer", False, False): Move.ACCEPT,
    ("offer", False, True): Move.ACCEPT,
    ("offer", True, False): Move.IGNORE,
    ("offer", True, True): Move.REPLACE_AND_ACCEPT,
    ("answer", False, False): Move.IGNORE,
    ("answer", False, True): Move.IGNORE,
    ("answer", True, False): Move.APPLY_ANSWER,
    ("answer", True, True): Move.APPLY_ANSWER,
}


def decide(
    description_type: str, *, polite: bool, signaling_state: str, making_offer: bool
) -> Move:
    """The move for an incoming description of ``description_type``.

    For an answer, "collision" means we have an offer out (``have-local-offer``):
    an answer in any other state answers nothing of ours and is ignored.
    """
    if description_type == "offer":
        busy = making_offer or signaling_state != "stable"
    elif description_type == "answer":
        busy = signaling_state == "have-local-offer"
    else:
        raise NegotiationError(f"no move for a description of type {description_type!r}")
    return TRANSITIONS[(description_type, busy, polite)]
