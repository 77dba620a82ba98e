"""What is checked before a WebSocket upgrade is accepted.

In order: the connection limits (total, then per client address), the browser's
``Origin`` against the allow-list, and an access token offered in
``Sec-WebSocket-Protocol``. A refusal is an HTTP answer with a documented status
and a JSON body (``{"error": {"code", "message"}}``); a browser sees only that the
connection failed, so a client that wants the reason shows its token in
``join-room`` instead.

Why ``Sec-WebSocket-Protocol``: it is the one header a browser lets a page set on
a WebSocket, and unlike a URL it is not written to access logs. The client offers
``hubbub`` and ``hubbub.token.<jwt>``; the server answers ``hubbub``, never the
token.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from hubbub.auth import Admission, Identity, TokenError
from hubbub.core import Limits
from hubbub.server.upgrade import UpgradeRequest

SUBPROTOCOL = "hubbub"
TOKEN_SUBPROTOCOL_PREFIX = "hubbub.token."


class Refusal(Exception):
    """A refused handshake: the HTTP status and the error code and message of its
    JSON body (``docs/protocol.md``, handshake refusals)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class HandshakeGate:
    """Admits or refuses WebSocket handshakes, and counts open connections: the
    WebSockets of each client address, and apart from them the connections of each
    peer address that are not WebSockets (yet): those waiting for their request head,
    and those serving HTTP, kept alive between requests."""

    def __init__(
        self,
        limits: Limits,
        admission: Admission,
        allowed_origins: list[str],
        trusted_proxies: list[str],
    ) -> None:
        self._limits = limits
        self._admission = admission
        self._origins = {origin.lower() for origin in allowed_origins}
        self._proxies = {_normal_ip(proxy) for proxy in trusted_proxies}
        self.open_by_address: Counter[str] = Counter()
        self.open_total = 0
        self.http_by_address: Counter[str] = Counter()
        """Connections that are not WebSockets, by the key of their peer's address."""

    def client_address(self, request: UpgradeRequest) -> str:
        """The client's IP address; behind a trusted proxy, the one it reports."""
        peer = request.remote
        if ":" in peer:  # IPv4 from the kernel is in its normal form already
            peer = _normal_ip(peer)
        if peer not in self._proxies:
            return peer
        hops = request.header_items("x-forwarded-for")
        reporter = peer
        for hop in reversed(hops):
            address = _normal_ip(hop)
            if address not in self._proxies:
                # not an address ("unknown", or text passed on as written): neither it
                # nor what was written before it can be counted; the proxy that wrote it can
                return address if _is_ip(address) else reporter
            reporter = address
        return peer

    def check(self, request: UpgradeRequest, address: str) -> Identity | None:
        """Refuse the handshake with a :class:`Refusal`, or return the identity
        its token proves (None without a token)."""
        limits = self._limits
        if self.open_total >= limits.max_connections:
            raise Refusal(503, "connection-limit", "the server is at its connection limit")
        if self.open_by_address[address_key(address)] >= limits.max_connections_per_ip:
            raise Refusal(429, "address-connection-limit", "too many connections from this address")
        origin = request.header("origin")
        if self._origins and origin is not None and origin.lower() not in self._origins:
            raise Refusal(403, "origin-not-allowed", "this origin may not connect")
        return self._token_identity(request)

    def _token_identity(self, request: UpgradeRequest) -> Identity | None:
        offered = request.header_items("sec-websocket-protocol")
        tokens = [item for item in offered if item.startswith(TOKEN_SUBPROTOCOL_PREFIX)]
        if not tokens:
            return None
        if SUBPROTOCOL not in offered or len(tokens) > 1:
            # Without "hubbub" to answer with, the only protocol left to echo
            # would be the token itself.
            raise Refusal(
                400,
                "subprotocol-required",
                f"offer '{SUBPROTOCOL}' and one '{TOKEN_SUBPROTOCOL_PREFIX}<token>'",
            )
        try:
            return self._admission.identify(tokens[0].removeprefix(TOKEN_SUBPROTOCOL_PREFIX))
        except TokenError as error:
            raise Refusal(401, error.code.value, error.message) from None

    def opened(self, address: str) -> None:
        self.open_total += 1
        self.open_by_address[address_key(address)] += 1

    def closed(self, address: str) -> None:
        self.open_total -= 1
        _count_down(self.open_by_address, address_key(address))

    def http_opened(self, peer: str) -> str | None:
        """A new connection from ``peer`` (the address its socket is connected to;
        "-" when there is none): the key it is counted under until
        :meth:`http_closed` (empty when it is not counted: a trusted proxy's
        connections are many clients'), or None when the address holds
        ``max_http_connections_per_ip`` connections that are not WebSockets already
        (it is then refused)."""
        if ":" in peer:  # IPv4 from the kernel is in its normal form already
            peer = _normal_ip(peer)
        if peer == "-" or peer in self._proxies:
            return ""
        key = address_key(peer)
        count = self.http_by_address[key]
        if count >= self._limits.max_http_connections_per_ip:
            return None
        self.http_by_address[key] = count + 1
        return key

    def http_closed(self, key: str) -> None:
        """A connection counted by :meth:`http_opened` under ``key`` is gone, or is a
        WebSocket now (counted by :meth:`opened` from then on)."""
        if key:
            _count_down(self.http_by_address, key)


def _count_down(counts: Counter[str], key: str) -> None:
    """One fewer under ``key``; a key that comes to none goes (the counts stay as
    small as what is open)."""
    left = counts[key] - 1
    if left > 0:
        counts[key] = left
    else:
        del counts[key]


def address_key(address: str) -> str:
    """What the per-address limit counts: an IPv4 address, or an IPv6 /64 (one
    subscriber's network: a client that has one has 2**64 addresses to spread over)."""
    if ":" not in address:  # IPv4 (or not an address): counted as it is
        return address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _normal_ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
