"""Delayed SACKs and deeper socket buffers for aiortc's SCTP, on our own peer
connections only.

aiortc's SCTP answers every packet that carries data with a SACK of its own: one
packet back for every packet in, each encrypted, sent, received, decrypted and
parsed in Python. RFC 9260 (section 6.2) asks a receiver for a SACK for at least
every second packet, within 200 ms. :func:`delay_sacks` makes one of our transports
do that: an in-order packet is acknowledged with the next one, or after
``SACK_DELAY`` at the latest; a gap or a duplicate is still acknowledged at once,
so the sender's fast retransmit is as quick as before. On a bulk transfer this
halves the packets the receiver sends and the sender reads (15 to 35 % less CPU
per MB on both sides; see ``docs/python.md``).

It is set on each transport (an instance attribute), never on aiortc's class, so
other aiortc users in the same process are left as they are; on an aiortc whose
SCTP does not look as expected it does nothing.

:func:`deepen_receive_buffers` gives the UDP sockets under a transport a receive
buffer as deep as the SCTP receive window (aiortc's is 1 MiB). With the system's
default (208 KiB on Linux), a sender whose window has opened outruns a receiver that
is busy for a moment: datagrams are dropped, retransmitted, and the window halves
(measured between two peers on loopback: a third of the SACKs reported a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

log = logging.getLogger("hubbub.peer")

SACK_EVERY = 2
"""Packets: in-order data packets acknowledged by one SACK (RFC 9260 allows 2)."""
SACK_DELAY = 0.02
"""Seconds: longest wait before a lone in-order packet is acknowledged (RFC: 0.2)."""

UDP_RECEIVE_BUFFER = 1024 * 1024
"""Bytes: the receive buffer asked for on each UDP socket of our peer connections
(the system caps it at ``net.core.rmem_max``)."""

_NEEDED = ("_send_sack", "_sack_misordered", "_sack_duplicates", "_sack_needed", "_loop")


def delay_sacks(transport: Any) -> bool:
    """Make ``transport`` (an ``RTCSctpTransport``) acknowledge every second packet;
    True once done (also when it was done before), False when aiortc's SCTP is not
    as this expects."""
    if getattr(transport, "_hubbub_delayed_sacks", False):
        return True
    if not all(hasattr(transport, name) for name in _NEEDED):
        log.debug("aiortc's SCTP is not as expected: SACKs are left undelayed")
        return False
    _DelayedSacks(transport)
    return True


class _DelayedSacks:
    """Stands in for ``transport._send_sack``, which aiortc calls once for each
    packet that asks for a SACK."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.send_now = transport._send_sack  # the class's method, bound
        self.unacknowledged = 0
        self.timer: asyncio.TimerHandle | None = None
        transport._send_sack = self.send_sack
        transport._hubbub_delayed_sacks = True

    async def send_sack(self) -> None:
        transport = self.transport
        if not transport._sack_misordered and not transport._sack_duplicates:
            self.unacknowledged += 1
            if self.unacknowledged < SACK_EVERY:
                if self.timer is None:
                    self.timer = transport._loop.call_later(SACK_DELAY, self._late)
                return  # _sack_needed stays set: the next packet sends it
        await self._send()

    async def _send(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.unacknowledged = 0
        await self.send_now()

    def _late(self) -> None:
        self.timer = None
        if self.transport._sack_needed:
            task = asyncio.ensure_future(self._send_late())
            task.add_done_callback(_ignore_result)

    async def _send_late(self) -> None:
        # the connection may have gone in the meantime: nothing left to acknowledge
        with contextlib.suppress(ConnectionError):
            if self.transport._sack_needed:
                await self._send()


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("a delayed SACK was not sent: %s", task.exception())


def deepen_receive_buffers(transport: Any) -> int:
    """Ask for :data:`UDP_RECEIVE_BUFFER` on the UDP sockets under ``transport`` (an
    ``RTCSctpTransport``); the number of sockets changed (0 when aiortc or aioice is
    not as expected, or once done)."""
    if getattr(transport, "_hubbub_receive_buffers", False):
        return 0
    try:
        protocols = list(transport.transport.transport._connection._protocols)
    except (AttributeError, TypeError):
        log.debug("aioice is not as expected: socket buffers are left as they are")
        return 0
    changed = 0
    for protocol in protocols:
        udp = getattr(protocol, "transport", None)
        sock = udp.get_extra_info("socket") if udp is not None else None
        if sock is None:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            changed += 1
    transport._hubbub_receive_buffers = bool(protocols)
    return changed
