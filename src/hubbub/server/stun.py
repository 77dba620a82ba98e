"""The STUN server ``hubbub serve`` runs beside its HTTP port: UDP, binding only
(the messages themselves are :mod:`hubbub.stun.message`).

Answers are rate-limited twice. Each client address (an IPv4 address, an IPv6 /64)
has its own token bucket, so that one client cannot make the server answer it (or a
victim whose address it forges) more than :data:`RATE_PER_ADDRESS` times a second;
and the server as a whole answers at most :data:`RATE_TOTAL` a second, so that
requests forged from many addresses at once still cost a bounded amount of outgoing
traffic. What is over either budget is dropped without an answer, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from hubbub.core.session import TokenBucket
from hubbub.server.handshake import address_key
from hubbub.stun.message import answer_datagram

log = logging.getLogger("hubbub.stun")

RATE_PER_ADDRESS = 20.0
"""Answers a second to one address (an IPv4 address, an IPv6 /64)."""
BURST_PER_ADDRESS = 100
"""Answers one address may have at once after a quiet while (a NAT before a whole
office gathers for many calls at once)."""
RATE_TOTAL = 5000.0
"""Answers a second from the whole server."""
BURST_TOTAL = 10_000
MAX_TRACKED_ADDRESSES = 100_000
"""Client addresses whose budgets are kept; past it the least recently heard from
is forgotten (and gets a full budget when it comes back)."""


@dataclass
class StunCounters:
    """What the STUN server has done since it started."""

    answered: int = 0
    ignored: int = 0
    """Datagrams that were not a STUN request (or whose answer would be too long)."""
    rate_limited: int = 0


class StunProtocol(asyncio.DatagramProtocol):
    """Answers binding requests on one UDP socket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.counters = StunCounters()
        self._clock = clock
        self._budgets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._total = TokenBucket(RATE_TOTAL, BURST_TOTAL, clock())
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if not self.allowed(host):
            self.counters.rate_limited += 1
            return
        try:
            answer = answer_datagram(data, (host, port))
        except ValueError:  # an address this module cannot put in an answer
            answer = None
        if answer is None:
            self.counters.ignored += 1
            return
        if self.transport is not None:
            self.transport.sendto(answer, addr)
            self.counters.answered += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("event=stun-error detail=%r", str(exc))

    def allowed(self, host: str) -> bool:
        """Spend one answer from ``host``'s budget and the server's."""
        now = self._clock()
        key = address_key(host)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = TokenBucket(RATE_PER_ADDRESS, BURST_PER_ADDRESS, now)
            if len(self._budgets) > MAX_TRACKED_ADDRESSES:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(key)
        return budget.take(now) and self._total.take(now)


class StunServer:
    """The UDP socket and its protocol; :meth:`start` binds, :meth:`stop` closes."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.protocol = StunProtocol()
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        """Bind and serve; the port (the real one when ``port`` is 0). Raises
        OSError when the port cannot be had."""
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (
            await loop.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
            )
        )[0]
        # bound here, not by the loop: uvloop leaks the transport of a failed bind
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        transport, _ = await loop.create_datagram_endpoint(lambda: self.protocol, sock=sock)
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
