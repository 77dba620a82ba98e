"""A small internet on one machine, for calls that cross NATs and firewalls.

Linux network namespaces joined by veth pairs: an *internet* (a bridge on
203.0.113.0/24) where the servers live, and *sites*, each a router with a LAN behind
it (198.51.100.0/24 cut in /27s) and one or more hosts on that LAN::

                       internet 203.0.113.0/24 (servers: .10 hubbub, .11 coturn)
              ┌──────────────────────┴───────────────────────┐
       router a 203.0.113.21                          router b 203.0.113.22
       NAT / firewall (nftables)                      NAT / firewall (nftables)
              │ LAN 198.51.100.0/27                          │ LAN 198.51.100.32/27
       host a1 198.51.100.10                          host b1 198.51.100.42

Every address is in a documentation range, inside namespaces this module made; no
namespace has a route to anything else, so nothing leaves the machine. The internet
has no route to the sites' LANs: a server that sends to one of their addresses fails
at once (``network unreachable``), as a server does out there when its upstream
answers so for a private address. A site's
router is one of:

- ``masquerade``: endpoint-independent mapping (nftables ``masquerade``, which keeps
  the source port), as home routers do; STUN finds the address the others reach.
- ``symmetric``: a new public port for every destination, and anew once the router
  forgets its mappings (``masquerade fully-random``; ``random`` alone derives the port
  from the connection, so a flushed router would map it the same again): what STUN
  finds is useless to a peer, only a TURN relay gets through.
- ``udp-blocked``: ``masquerade``, and every UDP packet dropped both ways, as an
  office firewall does: TURN over TCP or TLS is the only way.

A site's uplink can be shaped (:class:`Shape`: delay, loss, rate, queue; see
:mod:`tests.network.link` for why not ``tc netem``); :meth:`Lab.flush_nat` forgets a
router's NAT mappings (``conntrack -F``).

Everything is removed when the lab closes: the processes started in its namespaces
are killed and the namespaces deleted, also when a test fails. Labs left by a run
that was killed outright (their names carry the pid) are removed by the next one.
Needs root (CI runs as root), ``ip``, ``nft``, ``conntrack`` and ``/dev/net/tun``
(``scripts/system-deps.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "hubbub-lab"
"""Every lab namespace's name starts with this, then the pid of the run that made it."""

INTERNET_PREFIX = "203.0.113"
HUBBUB_ADDRESS = "203.0.113.10"
TURN_ADDRESS = "203.0.113.11"
LAN_PREFIX = "198.51.100"
LAN_SIZE = 32
"""Addresses in each site's LAN (a /27)."""

NAT_KINDS = ("masquerade", "symmetric", "udp-blocked")

TOOLS = {"ip": "/usr/sbin/ip", "nft": "/usr/sbin/nft", "conntrack": "/usr/sbin/conntrack"}

_NAME = re.compile(rf"^{PREFIX}(\d+)-")
_sequence = itertools.count(1)


class LabUnavailable(Exception):
    """This machine cannot make a lab (not root, or a tool is missing)."""


def unavailable_reason() -> str | None:
    """Why no lab can be made here, or None."""
    if sys.platform != "linux":
        return "the network lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, nftables)"
    missing = [name for name, path in TOOLS.items() if not Path(path).exists()]
    if missing:
        return f"the network lab needs {', '.join(missing)}: run scripts/system-deps.sh"
    return None


def _run(*argv: str, input: str | None = None, check: bool = True) -> str:
    result = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def lab_namespaces() -> list[str]:
    """The names of every lab namespace on this machine."""
    listed = _run(TOOLS["ip"], "netns", "list", check=False)
    names = (line.split()[0] for line in listed.splitlines() if line.strip())
    return [name for name in names if name.startswith(PREFIX)]


_STARTED: dict[str, list[subprocess.Popen[Any]]] = {}
"""The processes started in each namespace with ``Namespace.popen``: one that had not
entered its namespace yet when the lab closed (``ip netns exec`` still starting, on a
busy machine) is not among the namespace's pids, and is killed from here."""


def remove_namespace(name: str) -> None:
    """Kill what runs in namespace ``name``, then delete it."""
    for process in _STARTED.pop(name, []):
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
    for _ in range(50):
        pids = _run(TOOLS["ip"], "netns", "pids", name, check=False).split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)
    _run(TOOLS["ip"], "netns", "delete", name, check=False)


def remove_stale_labs() -> list[str]:
    """Remove the labs of runs that are gone (killed before they could clean up)."""
    removed = []
    for name in lab_namespaces():
        match = _NAME.match(name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            remove_namespace(name)
            removed.append(name)
        except PermissionError:
            pass  # alive, someone else's
    return removed


@dataclass
class Namespace:
    """One network namespace of the lab."""

    name: str

    def argv(self, *argv: str, user: str | None = None) -> list[str]:
        """``argv`` as run inside this namespace (as ``user``, if given)."""
        inside = [TOOLS["ip"], "netns", "exec", self.name]
        if user is not None:
            entry = pwd.getpwnam(user)
            inside += ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                       "--clear-groups", "--"]  # fmt: skip
        return [*inside, *argv]

    def run(self, *argv: str, input: str | None = None, check: bool = True) -> str:
        """Run a command inside the namespace and return its output."""
        return _run(*self.argv(*argv), input=input, check=check)

    def ip(self, *args: str) -> str:
        return _run(TOOLS["ip"], "-n", self.name, *args)

    async def spawn(
        self,
        *argv: str,
        user: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        **options: Any,
    ) -> asyncio.subprocess.Process:
        """Start ``argv`` inside the namespace (killed when the lab closes)."""
        return await asyncio.create_subprocess_exec(
            *self.argv(*argv, user=user), env=env, cwd=cwd, **options
        )

    def popen(self, *argv: str, user: str | None = None, **options: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace (killed when the lab closes)."""
        process = subprocess.Popen(self.argv(*argv, user=user), **options)
        _STARTED.setdefault(self.name, []).append(process)
        return process


@dataclass
class Host(Namespace):
    """A machine on a site's LAN."""

    address: str = ""
    site: Site | None = None


@dataclass(frozen=True)
class Shape:
    """A shaped uplink (:mod:`tests.network.link`), the same each way."""

    delay: float = 0.020
    """Seconds one way: a round trip through the link takes twice this."""
    loss: float = 0.005
    """Share of frames lost at random."""
    rate_mbit: float = 100.0
    queue_bytes: int = 500_000
    """The bottleneck's queue: about one round trip of 40 ms at 100 Mbit/s."""

    def describe(self) -> str:
        return (
            f"{2 * self.delay * 1000:g} ms round trip, {self.loss * 100:g} % loss each way, "
            f"{self.rate_mbit:g} Mbit/s, {self.queue_bytes // 1000} kB queue"
        )


@dataclass
class Site:
    """A router (NAT, firewall) with a LAN and the hosts on it."""

    name: str
    router: Namespace
    kind: str
    public_address: str
    lan_gateway: str
    hosts: list[Host] = field(default_factory=list)
    wan_device: str = "wan"
    internet_port: str = ""
    """The device on the internet's bridge that leads to this router."""
    uplink: Shape | None = None


class Lab:
    """An internet with servers' addresses, and sites added with :meth:`add_site`.

    ::

        with Lab() as lab:
            a = lab.add_site("a", "symmetric")
            b = lab.add_site("b", "symmetric")
            await lab.internet.spawn("turnserver", ...)
            await a.hosts[0].spawn(sys.executable, "-m", "...")
    """

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise LabUnavailable(reason)
        self.id = f"{PREFIX}{os.getpid()}-{next(_sequence)}"
        self.namespaces: list[Namespace] = []
        self.sites: dict[str, Site] = {}
        self._links: list[subprocess.Popen[str]] = []
        self.internet = self._namespace("net")
        self._closed = False

    # -- building ---------------------------------------------------------------

    def _namespace(self, role: str) -> Namespace:
        namespace = Namespace(f"{self.id}-{role}")
        _run(TOOLS["ip"], "netns", "add", namespace.name)
        self.namespaces.append(namespace)
        namespace.ip("link", "set", "lo", "up")
        return namespace

    def __enter__(self) -> Lab:
        try:
            self._build_internet()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _build_internet(self) -> None:
        net = self.internet
        net.ip("link", "add", "internet", "type", "bridge")
        net.ip("link", "set", "internet", "up")
        for address in (HUBBUB_ADDRESS, TURN_ADDRESS):
            net.ip("addr", "add", f"{address}/24", "dev", "internet")
        # coturn listens on 443 as nobody (TURN over TLS where only HTTPS gets out)
        net.run("sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0")

    def add_site(
        self,
        name: str,
        kind: str = "masquerade",
        hosts: int = 1,
        uplink: Shape | None = None,
    ) -> Site:
        """A router of ``kind`` (:data:`NAT_KINDS`) on the internet, with ``hosts``
        hosts on its LAN (named ``<name>1``, ``<name>2``...), its uplink shaped as
        ``uplink`` says (else a plain veth pair)."""
        if kind not in NAT_KINDS:
            raise ValueError(f"kind: one of {NAT_KINDS}")
        index = len(self.sites)
        if index >= 8 or name in self.sites:
            raise ValueError("at most 8 sites, each with its own name")
        router = self._namespace(f"{name}r")
        public = f"{INTERNET_PREFIX}.{21 + index}"
        base = index * LAN_SIZE
        site = Site(
            name=name,
            router=router,
            kind=kind,
            public_address=public,
            lan_gateway=f"{LAN_PREFIX}.{base + 1}",
            internet_port=f"to-{name}",
        )
        # the uplink: router's "wan" <-> internet's "to-<name>", on its bridge
        if uplink is None:
            _run(TOOLS["ip"], "link", "add", "wan", "netns", router.name, "type", "veth",
                 "peer", "name", site.internet_port, "netns", self.internet.name)  # fmt: skip
        else:
            self._shaped_link(router, site.internet_port, uplink)
        site.uplink = uplink
        self.internet.ip("link", "set", site.internet_port, "master", "internet", "up")
        router.ip("addr", "add", f"{public}/24", "dev", "wan")
        router.ip("link", "set", "wan", "up")
        # the LAN: a bridge in the router, one veth per host
        router.ip("link", "add", "lan", "type", "bridge")
        router.ip("addr", "add", f"{site.lan_gateway}/27", "dev", "lan")
        router.ip("link", "set", "lan", "up")
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.run(TOOLS["nft"], "-f", "-", input=_router_rules(kind))
        for number in range(1, hosts + 1):
            host_namespace = self._namespace(f"{name}{number}")
            address = f"{LAN_PREFIX}.{base + 9 + number}"
            port = f"h{number}"
            _run(TOOLS["ip"], "link", "add", port, "netns", router.name, "type", "veth",
                 "peer", "name", "eth0", "netns", host_namespace.name)  # fmt: skip
            router.ip("link", "set", port, "master", "lan", "up")
            host_namespace.ip("addr", "add", f"{address}/27", "dev", "eth0")
            host_namespace.ip("link", "set", "eth0", "up")
            host_namespace.ip("route", "add", "default", "via", site.lan_gateway)
            site.hosts.append(Host(host_namespace.name, address=address, site=site))
        self.sites[name] = site
        return site

    def _shaped_link(self, router: Namespace, internet_port: str, shape: Shape) -> None:
        """TAP devices "wan" in the router and ``internet_port`` in the internet, with
        a :mod:`tests.network.link` process between them."""
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.network.link", "wan", router.name, internet_port,
             self.internet.name, "--delay", str(shape.delay), "--loss", str(shape.loss),
             "--rate-mbit", str(shape.rate_mbit), "--queue-bytes", str(shape.queue_bytes)],
            cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._links.append(process)
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the shaped link did not start")

    # -- changing it while it runs ------------------------------------------------

    def flush_nat(self, site: Site) -> None:
        """Forget every NAT mapping of ``site``'s router (as a router that restarts
        or times its mappings out): the next packets out get new public ports."""
        site.router.run(TOOLS["conntrack"], "-F", check=False)

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process in the lab and delete its namespaces (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for process in self._links:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for namespace in reversed(self.namespaces):
            remove_namespace(namespace.name)


def _router_rules(kind: str) -> str:
    """The router's nftables ruleset (``fwd`` is an nft keyword: chains are named
    otherwise)."""
    nat = "masquerade fully-random" if kind == "symmetric" else "masquerade"
    rules = [
        "table ip router {",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f'    oifname "wan" {nat}',
        "  }",
        "  chain forwarding {",
        "    type filter hook forward priority filter; policy accept;",
    ]
    if kind == "udp-blocked":
        rules.append("    meta l4proto udp drop")
    rules += [
        "  }",
        # what comes to the router itself from outside and answers nothing it sent is
        # dropped silently (no ICMP), as home routers do
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        '    iifname "wan" ct state established,related accept',
        '    iifname "wan" drop',
        "  }",
        "}",
    ]
    return "\n".join(rules) + "\n"
