"""Calls across the lab's networks: in each topology the peers connect, and over the
kind of path that topology leaves them (their selected ICE candidate pair)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.network.lab import TURN_ADDRESS, Lab
from tests.network.services import TURN_PORT, TURN_SECRET, TURNS_PORT, coturn, hubbub, python_peer

WAIT = 60.0


@dataclass(frozen=True)
class Topology:
    """Two peers' sites, what the server hands out, and the path they must take."""

    name: str
    sites: tuple[str, str] | None
    """The NAT kinds of the two peers' sites; None: both hosts on one LAN."""
    hubbub_args: tuple[str, ...]
    local: str
    """The first peer's candidate type in the selected pair. ``srflx``: through the
    NATs' mappings (aiortc names the local end by its base, ``host``, as it pairs
    from there; a browser names it ``srflx`` or ``prflx``), to the other's public
    address."""
    relay_protocol: str | None = None
    """How the first peer reaches the TURN server, when it relays."""


STUN: tuple[str, ...] = ()
"""hubbub's own STUN server, handed out by default."""


def _turn(uri: str) -> tuple[str, ...]:
    return ("--turn-uri", uri, "--turn-secret", TURN_SECRET)


TOPOLOGIES = [
    Topology("one LAN", None, STUN, local="host"),
    Topology("two home NATs", ("masquerade", "masquerade"), STUN, local="srflx"),
    Topology(
        "two symmetric NATs",
        ("symmetric", "symmetric"),
        (*STUN, *_turn(f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=udp")),
        local="relay",
        relay_protocol="udp",
    ),
    Topology(
        "UDP blocked, TURN over TCP",
        ("udp-blocked", "masquerade"),
        (*STUN, *_turn(f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=tcp")),
        local="relay",
        relay_protocol="tcp",
    ),
    Topology(
        "UDP blocked, TURN over TLS on 443",
        ("udp-blocked", "masquerade"),
        (*STUN, *_turn(f"turns:{TURN_ADDRESS}:{TURNS_PORT}?transport=tcp")),
        local="relay",
        relay_protocol="tls",
    ),
]


def _hosts(lab: Lab, topology: Topology) -> tuple[Any, Any]:
    if topology.sites is None:
        site = lab.add_site("a", "masquerade", hosts=2)
        return site.hosts[0], site.hosts[1]
    first = lab.add_site("a", topology.sites[0])
    second = lab.add_site("b", topology.sites[1])
    return first.hosts[0], second.hosts[0]


def _check_pair(pair: dict[str, Any], topology: Topology) -> None:
    local, remote = pair["local"], pair["remote"]
    if topology.local == "srflx":
        assert local["candidate_type"] in ("host", "srflx", "prflx"), pair
        assert not local["address"].startswith("203.0.113."), pair  # behind its NAT
    else:
        assert local["candidate_type"] == topology.local, pair
    assert local["relay_protocol"] == topology.relay_protocol, pair
    if topology.local == "host":
        assert remote["candidate_type"] == "host", pair
    elif topology.local == "srflx":
        # the other's public address, as it listed it or as its checks showed it
        assert remote["candidate_type"] in ("srflx", "prflx"), pair
        assert remote["address"].startswith("203.0.113."), pair


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda t: t.name)
async def test_python_peers_connect(lab: Lab, tmp_path: Path, topology: Topology) -> None:
    first, second = _hosts(lab, topology)
    with (
        coturn(lab) as certificate,
        hubbub(lab, tmp_path / "hub", *topology.hubbub_args, turn=False) as url,
    ):
        async with (
            python_peer(first, url, "p1", ca=certificate.ca) as p1,
            python_peer(second, url, "p2", ca=certificate.ca) as p2,
        ):
            one, _ = await asyncio.gather(
                p1.ask({"cmd": "connect", "to": "p2", "timeout": WAIT}),
                p2.ask({"cmd": "connect", "to": "p1", "timeout": WAIT}),
            )
            _check_pair(one["pair"], topology)
            echoed = await p1.ask({"cmd": "echo", "to": "p2", "text": "across"})
            assert echoed["reply"] == "echoed:across"
