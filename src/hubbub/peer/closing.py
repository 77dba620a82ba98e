"""Closing an aiortc peer connection from a task that may be cancelled.

aiortc closes a connection by itself once its DTLS transports are closed (the other
side closed first), in a task of its own; a ``close()`` called meanwhile awaits that
close's future directly, so a cancel of the caller cancels the future, and aiortc's
own close then fails setting it (``InvalidStateError``, "Task exception was never
retrieved"). Every close of a peer connection in hubbub.peer goes through here.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close ``pc``; a cancel of the caller leaves the close (aiortc's own or this
    one) to finish."""
    await asyncio.shield(pc.close())
