"""``hubbub doctor`` from inside the lab's networks: what it finds behind a symmetric
NAT and behind a firewall that drops UDP, against the lab's hubbub and coturn."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.network.lab import Host, Lab, Shape
from tests.network.services import ROOT, coturn, hubbub

pytestmark = pytest.mark.network


async def _doctor(
    host: Host, url: str, ca: Path, within_s: float = 120
) -> tuple[int, dict[str, Any]]:
    process = await host.spawn(
        sys.executable, "-m", "hubbub", "doctor", url, "--ca", str(ca), "--json",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(within_s):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        raise AssertionError(f"doctor still running after {within_s} s: {stderr!r}") from None
    assert process.returncode is not None, stderr
    return process.returncode, json.loads(stdout)


def _status(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


async def test_behind_nats_and_firewalls(lab: Lab, tmp_path: Path) -> None:
    symmetric = lab.add_site("a", "symmetric").hosts[0]
    blocked = lab.add_site("b", "udp-blocked").hosts[0]
    with coturn(lab) as certificate, hubbub(lab, tmp_path) as url:
        (code, seen), (blocked_code, blocked_seen) = await asyncio.gather(
            _doctor(symmetric, url, certificate.ca), _doctor(blocked, url, certificate.ca)
        )
    status = _status(seen)
    assert code == 0, seen
    for name in ("stun", "turn-udp", "turn-tcp", "turn-tls", "relay"):
        assert status[name] == "ok", seen
    (stun,) = [check for check in seen["checks"] if check["name"] == "stun"]
    assert stun["data"]["address"][0] == "203.0.113.21"  # its router's public address
    assert seen["notes"] == []

    status = _status(blocked_seen)
    assert blocked_code == 0, blocked_seen  # TURN over TCP and TLS still carry calls
    assert status["stun"] == status["turn-udp"] == "fail"
    assert status["turn-tcp"] == status["turn-tls"] == status["relay"] == "ok"
    (note,) = blocked_seen["notes"]
    assert note.startswith("UDP does not get through from this network")


async def test_calls_would_fail_behind_a_udp_firewall_without_turn(
    lab: Lab, tmp_path: Path
) -> None:
    blocked = lab.add_site("b", "udp-blocked").hosts[0]
    with coturn(lab) as certificate, hubbub(lab, tmp_path, turn=False) as url:
        code, seen = await _doctor(blocked, url, certificate.ca)
    assert code == 1
    assert seen["callsWouldFail"] is True
    assert _status(seen)["stun"] == "fail"


async def test_the_relay_check_ends_in_its_own_time_on_a_slow_uplink(
    lab: Lab, tmp_path: Path
) -> None:
    """At 0.1 Mbit/s the relay's send buffer takes a minute to drain: the check
    times what gets through in its own time (``RELAY_SECONDS``) and ends."""
    slow = lab.add_site(
        "a", "masquerade", uplink=Shape(delay=0.01, loss=0.0, rate_mbit=0.1, queue_bytes=25_000)
    )
    with coturn(lab) as certificate, hubbub(lab, tmp_path) as url:
        code, seen = await _doctor(slow.hosts[0], url, certificate.ca, within_s=45)
    assert code == 0, seen
    assert _status(seen)["relay"] == "ok", seen
