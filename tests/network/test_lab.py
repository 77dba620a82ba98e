"""The lab itself: what its routers do to packets, and that it always goes away."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.network.lab import HUBBUB_ADDRESS, Lab, lab_namespaces, unavailable_reason

# Sends one UDP datagram to an echo server on the internet; prints the address the
# server saw it from (the NAT's mapping), or "lost".
PROBE = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.settimeout(2)
seen = []
for port in (int(sys.argv[1]), int(sys.argv[1]) + 1):
    s.sendto(b"where", ("{HUBBUB_ADDRESS}", port))
    try:
        seen.append(s.recv(100).decode())
    except TimeoutError:
        seen.append("lost")
print(" ".join(seen))
"""

ECHO = f"""
import socket, sys, threading
def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("{HUBBUB_ADDRESS}", port))
    while True:
        data, addr = s.recvfrom(100)
        s.sendto(f"{{addr[0]}}:{{addr[1]}}".encode(), addr)
for port in (5000, 5001):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

pytestmark = pytest.mark.network


async def _mapping(lab: Lab, kind: str) -> list[str]:
    site = lab.add_site("a", kind)
    echo = await lab.internet.spawn(
        sys.executable, "-c", ECHO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert echo.stdout is not None
        assert (await echo.stdout.readline()).strip() == b"ready"
        out = await asyncio.to_thread(site.hosts[0].run, sys.executable, "-c", PROBE, "5000")
        return out.split()
    finally:
        echo.kill()
        await echo.wait()


async def test_masquerade_keeps_one_mapping_for_every_destination(lab: Lab) -> None:
    first, second = await _mapping(lab, "masquerade")
    assert first == second == "203.0.113.21:40000"


async def test_a_symmetric_nat_maps_each_destination_anew(lab: Lab) -> None:
    first, second = await _mapping(lab, "symmetric")
    assert first.startswith("203.0.113.21:")
    assert second.startswith("203.0.113.21:")
    assert first != second


async def test_the_firewall_drops_udp(lab: Lab) -> None:
    assert await _mapping(lab, "udp-blocked") == ["lost", "lost"]


def test_the_lab_goes_away_when_a_test_fails() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    names: list[str] = []
    sleepers = []

    def failing_test() -> None:
        with Lab() as lab:
            site = lab.add_site("a", "symmetric", hosts=2)
            sleepers.append(site.hosts[1].popen("sleep", "60"))
            names.extend(namespace.name for namespace in lab.namespaces)
            assert set(names) <= set(lab_namespaces())
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    assert not set(names) & set(lab_namespaces())
    assert sleepers[0].wait(5) is not None  # killed with its namespace
