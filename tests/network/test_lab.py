"""The lab itself: what its routers do to packets, and that it always goes away."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.network.lab import HUBBUB_ADDRESS, Lab, Shape, lab_namespaces, unavailable_reason

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


# Sends a train of datagrams to the echo server and reads what comes back: round
# trips, losses, and the rate the replies came at.
TRAIN = f"""
import socket, statistics, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
rtts = []
for n in range(200):
    sent = time.monotonic()
    s.sendto(b"p" * 100, ("{HUBBUB_ADDRESS}", 5000))
    try:
        s.recv(2000)
        rtts.append(time.monotonic() - sent)
    except TimeoutError:
        pass
# a burst of 3 MB: how fast it arrives is the link's rate
s.settimeout(0.5)
payload = b"b" * 1400
began = time.monotonic()
for n in range(2200):
    s.sendto(payload, ("{HUBBUB_ADDRESS}", 5001))
got, first, last = 0, None, None
while True:
    try:
        s.recv(2000)
    except TimeoutError:
        break
    last = time.monotonic()
    first = first or last
    got += 1
print(statistics.median(rtts), 200 - len(rtts), got, (last - first) if got > 1 else 0)
"""

SINK = f"""
import socket, sys, threading
def echo(port, reply):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("{HUBBUB_ADDRESS}", port))
    while True:
        data, addr = s.recvfrom(2000)
        s.sendto(data[:reply], addr)
threading.Thread(target=echo, args=(5000, 2000), daemon=True).start()
threading.Thread(target=echo, args=(5001, 1400), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


async def test_a_shaped_uplink_delays_loses_and_limits(lab: Lab) -> None:
    shape = Shape(delay=0.020, loss=0.02, rate_mbit=20, queue_bytes=4_000_000)
    site = lab.add_site("a", "masquerade", uplink=shape)
    sink = await lab.internet.spawn(
        sys.executable, "-c", SINK, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert sink.stdout is not None
        assert (await sink.stdout.readline()).strip() == b"ready"
        out = await asyncio.to_thread(site.hosts[0].run, sys.executable, "-c", TRAIN)
    finally:
        sink.kill()
        await sink.wait()
    rtt, lost, burst_back, burst_seconds = (float(v) for v in out.split())
    assert 0.040 <= rtt < 0.060, rtt  # 20 ms each way
    # 2 % each way: about 4 of 200 round trips lost (0 to 16 is 4 standard deviations)
    assert 0 < lost <= 16, lost
    # the burst comes back at the link's rate (20 Mbit/s: 1.2 s for 3 MB), less its losses
    assert 2000 <= burst_back <= 2200, burst_back
    rate = burst_back * 1442 * 8 / burst_seconds / 1e6
    assert 16 <= rate <= 21, rate
