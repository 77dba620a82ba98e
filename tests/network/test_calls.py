"""Calls across the lab's networks: in each topology, two Python peers, two Chromium
pages and a page with a Python peer connect, over the kind of path that topology
leaves them (their selected ICE candidate pair), and data goes both ways.

One lab per topology, with its coturn and hubbub, serves the three pairings."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from tests.network.browser import lab_page
from tests.network.lab import TURN_ADDRESS, Host, Lab, unavailable_reason
from tests.network.services import TURN_PORT, TURN_SECRET, TURNS_PORT, coturn, hubbub, python_peer

WAIT = 60.0

pytestmark = pytest.mark.network


@dataclass(frozen=True)
class Topology:
    """Two peers' sites, what the server hands out, and the path they must take."""

    name: str
    sites: tuple[str, str] | None
    """The NAT kinds of the two peers' sites; None: both hosts on one LAN."""
    hubbub_args: tuple[str, ...]
    path: str
    """``host`` (LAN addresses), ``srflx`` (through the NATs' mappings, to the other's
    public address: aiortc names its local end by its base, ``host``, as it pairs
    from there; a browser names it ``srflx`` or ``prflx``), or ``relay`` (a TURN
    relay at one end at least)."""
    relay_protocol: str | None = None
    """How the first peer must reach the TURN server (it can do no other way)."""


def _turn(uri: str) -> tuple[str, ...]:
    return ("--turn-uri", uri, "--turn-secret", TURN_SECRET)


# hubbub's own STUN server is handed out in each (no --stun-uri)
TOPOLOGIES = [
    Topology("one LAN", None, (), path="host"),
    Topology("two home NATs", ("masquerade", "masquerade"), (), path="srflx"),
    Topology(
        "two symmetric NATs",
        ("symmetric", "symmetric"),
        _turn(f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=udp"),
        path="relay",
    ),
    Topology(
        "UDP blocked, TURN over TCP",
        ("udp-blocked", "masquerade"),
        _turn(f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=tcp"),
        path="relay",
        relay_protocol="tcp",
    ),
    Topology(
        "UDP blocked, TURN over TLS on 443",
        ("udp-blocked", "masquerade"),
        _turn(f"turns:{TURN_ADDRESS}:{TURNS_PORT}?transport=tcp"),
        path="relay",
        relay_protocol="tls",
    ),
]


@dataclass
class Network:
    topology: Topology
    lab: Lab
    url: str
    first: Host
    second: Host
    ca: Path
    turn_certificate: Path


@pytest.fixture(scope="module", params=TOPOLOGIES, ids=lambda t: t.name)
def network(request: pytest.FixtureRequest) -> Iterator[Network]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    topology: Topology = request.param
    with tempfile.TemporaryDirectory(prefix="hubbub-lab-") as workdir, Lab() as lab:
        if topology.sites is None:
            site = lab.add_site("a", "masquerade", hosts=2)
            first, second = site.hosts
        else:
            first = lab.add_site("a", topology.sites[0]).hosts[0]
            second = lab.add_site("b", topology.sites[1]).hosts[0]
        with (
            coturn(lab) as certificate,
            hubbub(lab, Path(workdir), *topology.hubbub_args, turn=False) as url,
        ):
            yield Network(topology, lab, url, first, second, certificate.ca, certificate.cert)


def check_pair(pair: dict[str, Any] | None, topology: Topology) -> None:
    """The first peer's selected pair is of the kind the topology leaves."""
    assert pair is not None
    local, remote = pair["local"], pair["remote"]
    kinds = (local["candidate_type"], remote["candidate_type"])
    if topology.path == "host":
        assert kinds == ("host", "host"), pair
    elif topology.path == "srflx":
        assert local["candidate_type"] in ("host", "srflx", "prflx"), pair
        assert remote["candidate_type"] in ("srflx", "prflx"), pair
        assert remote["address"].startswith("203.0.113."), pair  # the other's NAT
    else:
        assert "relay" in kinds, pair
    if topology.relay_protocol is not None:
        assert local["candidate_type"] == "relay", pair
        assert local["relay_protocol"] == topology.relay_protocol, pair


async def test_python_peers_connect(network: Network) -> None:
    room = "python-python"
    async with (
        python_peer(network.first, network.url, "p1", room=room, ca=network.ca) as p1,
        python_peer(network.second, network.url, "p2", room=room, ca=network.ca) as p2,
    ):
        one, _ = await asyncio.gather(
            p1.ask({"cmd": "connect", "to": "p2", "timeout": WAIT}),
            p2.ask({"cmd": "connect", "to": "p1", "timeout": WAIT}),
        )
        check_pair(one["pair"], network.topology)
        echoed = await p1.ask({"cmd": "echo", "to": "p2", "text": "across"})
        assert echoed["reply"] == "echoed:across"


@pytest.mark.browser
async def test_browsers_connect(network: Network) -> None:
    async with (
        async_playwright() as playwright,
        lab_page(playwright, network.first, network.url, network.turn_certificate) as one,
        lab_page(playwright, network.second, network.url, network.turn_certificate) as two,
    ):
        await one.evaluate("enter('browsers', 'w1')")
        await two.evaluate("enter('browsers', 'w2')")
        await one.wait_for_function("connectedTo('w2')", timeout=WAIT * 1000)
        check_pair(await one.evaluate("selectedPair()"), network.topology)
        assert await one.evaluate("echo('w2', 'across')") == "echoed:across"
        assert await two.evaluate("echo('w1', 'back')") == "echoed:back"


@pytest.mark.browser
async def test_a_browser_and_a_python_peer_connect(network: Network) -> None:
    room = "browser-python"
    async with (
        async_playwright() as playwright,
        lab_page(playwright, network.first, network.url, network.turn_certificate) as page,
        python_peer(network.second, network.url, "py", room=room, ca=network.ca) as python,
    ):
        await page.evaluate(f"enter('{room}', 'web')")
        await python.ask({"cmd": "connect", "to": "web", "timeout": WAIT})
        await page.wait_for_function("connectedTo('py')", timeout=WAIT * 1000)
        check_pair(await page.evaluate("selectedPair()"), network.topology)
        assert await page.evaluate("echo('py', 'to python')") == "echoed:to python"
        echoed = await python.ask({"cmd": "echo", "to": "web", "text": "to the page"})
        assert echoed["reply"] == "echoed:to the page"
