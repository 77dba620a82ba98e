"""The gate's count of the connections that are not WebSockets, per address."""

from __future__ import annotations

from typing import Any

from hubbub.core import Limits
from hubbub.server.handshake import HandshakeGate


def _gate(bound: int, proxies: list[str] | None = None) -> HandshakeGate:
    admission: Any = None  # not asked: no handshake is checked here
    return HandshakeGate(Limits(max_http_connections_per_ip=bound), admission, [], proxies or [])


def test_an_address_holds_at_most_the_bound_and_a_closed_one_frees_its_place() -> None:
    gate = _gate(2)
    first, second = gate.http_opened("192.0.2.1"), gate.http_opened("192.0.2.1")
    assert first == second == "192.0.2.1"
    assert gate.http_opened("192.0.2.1") is None
    assert gate.http_opened("192.0.2.2") == "192.0.2.2"  # another address: its own count
    gate.http_closed(first)
    assert gate.http_opened("192.0.2.1") == "192.0.2.1"
    for key in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
        gate.http_closed(key)
    assert not gate.http_by_address  # nothing left behind


def test_ipv6_counts_by_its_slash_64_and_a_mapped_ipv4_as_ipv4() -> None:
    gate = _gate(1)
    assert gate.http_opened("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert gate.http_opened("2001:db8:1:2::ffff") is None  # the same /64
    assert gate.http_opened("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert gate.http_opened("::ffff:198.51.100.7") == "198.51.100.7"
    assert gate.http_opened("198.51.100.7") is None


def test_a_trusted_proxy_and_a_connection_without_an_address_are_not_counted() -> None:
    gate = _gate(1, proxies=["203.0.113.9"])
    for _ in range(3):
        assert gate.http_opened("203.0.113.9") == ""
        assert gate.http_opened("-") == ""
    gate.http_closed("")
    assert not gate.http_by_address
