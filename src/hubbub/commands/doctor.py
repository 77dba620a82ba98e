"""``hubbub doctor URL``: checks a hubbub deployment from where the user sits.

One line per check, in the order a call needs them: the server's name (DNS), a TCP
connection, TLS (chain, expiry, name), the WebSocket handshake and a join to a probe
room, the round trip to the server, the ICE servers it hands out, a STUN binding (the
public address it sees), a TURN allocation over each transport offered (UDP, TCP,
TLS) with the credentials the server minted, and a data channel between two local
peers forced through the relay, with its throughput. Each line has a verdict (``ok``,
``warn``, ``fail``, ``skip``) and, when it is not ok, what to fix. ``--json`` prints
the same for machines. The exit status is 1 when calls would fail from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import socket
import ssl
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hubbub.client.connection import websocket_url
from hubbub.commands.common import run_command
from hubbub.stun import binding_request, mapped_address

STEP_TIMEOUT = 5.0
"""Seconds one check may take before it is given up."""
PINGS = 5
"""Round trips over the WebSocket to measure the round-trip time with."""
RELAY_BYTES = 4 * 1024 * 1024
"""Bytes sent through the relay to measure its throughput (or RELAY_SECONDS' worth)."""
RELAY_SECONDS = 4.0
EXPIRY_WARNING_DAYS = 14
"""A certificate that expires sooner than this is a warning."""

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
BLOCKING = ("url", "dns", "tcp", "tls", "websocket", "join")
"""Checks without which nothing works: a failure of one ends the run."""


@dataclass
class Check:
    """The verdict of one check."""

    name: str
    status: str
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    url: str
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def calls_would_fail(self) -> bool:
        """Whether a call from here would not connect: the server cannot be reached
        or joined, the relay does not carry data, or there is no way to learn a
        public address at all (no STUN answer and no TURN allocation)."""
        by_name = {check.name: check for check in self.checks}
        if any(check.status == FAIL for check in self.checks if check.name in BLOCKING):
            return True
        if by_name.get("relay") is not None and by_name["relay"].status == FAIL:
            return True
        reached = [
            check
            for check in self.checks
            if check.name == "stun" or check.name.startswith("turn-")
            if check.status == OK
        ]
        return not reached

    @property
    def notes(self) -> list[str]:
        """What the checks together say about this network."""
        status = {check.name: check.status for check in self.checks}
        udp_dead = status.get("stun") == FAIL and status.get("turn-udp", FAIL) == FAIL
        stream_ok = OK in (status.get("turn-tcp"), status.get("turn-tls"))
        if udp_dead and stream_ok:
            return [
                "UDP does not get through from this network (a firewall?): calls go "
                "through TURN over TCP or TLS, with more delay and less throughput"
            ]
        return []

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "callsWouldFail": self.calls_would_fail,
            "notes": self.notes,
            "checks": [asdict(check) for check in self.checks],
        }

    def as_text(self) -> str:
        lines = [f"hubbub doctor {self.url}"]
        for check in self.checks:
            lines.append(f"  {check.status:<5} {check.name:<11} {check.detail}")
            if check.fix:
                lines.append(f"  {'':<5} {'':<11} fix: {check.fix}")
        lines.extend(f"note: {note}" for note in self.notes)
        warnings = sum(check.status == WARN for check in self.checks)
        if self.calls_would_fail:
            lines.append("verdict: calls would fail from here")
        else:
            noted = f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""
            lines.append(f"verdict: calls can connect from here{noted}")
        return "\n".join(lines)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check a hubbub server from here: reachability, TLS, STUN, TURN, relay",
        description="Check a hubbub deployment from where you sit: DNS, TCP, TLS, the "
        "WebSocket and a join, the round trip, the ICE servers it hands out, STUN, TURN "
        "over UDP, TCP and TLS, and a data channel through the relay. Exits 1 when "
        "calls would fail from here.",
    )
    doctor.add_argument("url", metavar="URL", help="the server: https://, http://, wss://, ws://")
    doctor.add_argument(
        "--token",
        default=os.environ.get("HUBBUB_TOKEN"),
        help="an access token, on servers that require one (env HUBBUB_TOKEN)",
    )
    doctor.add_argument(
        "--room",
        default=None,
        help="the room to join for the check (default: a new one, hubbub-doctor-<random>)",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument(
        "--ca", default=None, help="a PEM file of CA certificates to trust besides the system's"
    )
    doctor.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    doctor.set_defaults(command_name="doctor", run=lambda args: run_command(args, _doctor))


async def _doctor(args: argparse.Namespace) -> int:
    doctor = Doctor(args.url, token=args.token, room=args.room, ca=args.ca)
    report = await doctor.run()
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.as_text())
    sys.stdout.flush()
    return 1 if report.calls_would_fail else 0


class Doctor:
    """Runs the checks against one server URL."""

    def __init__(
        self, url: str, *, token: str | None = None, room: str | None = None, ca: str | None = None
    ) -> None:
        self.url = url
        self.token = token
        self.room = room or f"hubbub-doctor-{secrets.token_hex(4)}"
        self.ssl_context = ssl.create_default_context()
        if ca:
            self.ssl_context.load_verify_locations(ca)
        self.report = Report(url)
        self.ice_servers: list[dict[str, Any]] = []

    async def run(self) -> Report:
        steps = (
            self._url,
            self._dns,
            self._tcp,
            self._tls,
            self._websocket,
            self._stun,
            self._turn,
        )
        for step in steps:
            if any(c.status == FAIL for c in self.report.checks if c.name in BLOCKING):
                break
            await step()
        return self.report

    # -- reaching the server ------------------------------------------------------

    async def _url(self) -> None:
        try:
            self.ws_url = websocket_url(self.url)
        except ValueError as exc:
            self.report.add(Check("url", FAIL, str(exc), "give the URL the app connects to"))
            return
        parts = urlsplit(self.ws_url)
        self.secure = parts.scheme == "wss"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.secure else 80)

    async def _dns(self) -> None:
        try:
            ipaddress.ip_address(self.host)
            self.addresses = [self.host]
            self.report.add(Check("dns", OK, f"{self.host} is an address"))
            return
        except ValueError:
            pass
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            self.report.add(
                Check(
                    "dns",
                    FAIL,
                    f"{self.host} does not resolve: {_reason(exc)}",
                    "check the name, and the DNS records that point it at the server",
                )
            )
            return
        self.addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.report.add(
            Check(
                "dns",
                OK,
                f"{self.host} -> {', '.join(self.addresses)} ({_ms(time.monotonic() - started)})",
                data={"addresses": self.addresses},
            )
        )

    async def _tcp(self) -> None:
        errors = []
        for address in self.addresses:
            started = time.monotonic()
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    _, writer = await asyncio.open_connection(address, self.port)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{address}: {_reason(exc)}")
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            took = time.monotonic() - started
            self.address = address
            self.report.add(
                Check(
                    "tcp",
                    OK,
                    f"{_hostport(address, self.port)} in {_ms(took)}",
                    data={"seconds": took},
                )
            )
            return
        self.report.add(
            Check(
                "tcp",
                FAIL,
                f"port {self.port} is not reachable: " + "; ".join(errors),
                f"check that the server runs and that firewalls let TCP {self.port} through",
            )
        )

    async def _tls(self) -> None:
        if not self.secure:
            self.report.add(
                Check(
                    "tls",
                    WARN,
                    "plain http/ws: nothing is encrypted",
                    "serve https:// (--tls-cert, or a reverse proxy): browsers "
                    "give camera and microphone only to secure pages",
                )
            )
            return
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                _, writer = await asyncio.open_connection(
                    self.address, self.port, ssl=self.ssl_context, server_hostname=self.host
                )
        except ssl.SSLCertVerificationError as exc:
            self.report.add(
                Check(
                    "tls",
                    FAIL,
                    f"the certificate is refused: {exc.verify_message}",
                    "install a certificate for this name from a public CA "
                    "(fullchain.pem, with its intermediates), and renew it",
                )
            )
            return
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self.report.add(
                Check(
                    "tls",
                    FAIL,
                    f"no TLS handshake: {_reason(exc)}",
                    "check that this port serves TLS",
                )
            )
            return
        cert = writer.get_extra_info("peercert") or {}
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        expires = datetime.datetime.fromtimestamp(
            ssl.cert_time_to_seconds(cert["notAfter"]), datetime.UTC
        )
        days = (expires - datetime.datetime.now(datetime.UTC)).days
        issuer = dict(item[0] for item in cert.get("issuer", ())).get("organizationName") or (
            dict(item[0] for item in cert.get("issuer", ())).get("commonName", "?")
        )
        detail = f"certificate for {self.host} from {issuer}, valid {days} more days"
        if days < EXPIRY_WARNING_DAYS:
            self.report.add(
                Check("tls", WARN, detail, "renew the certificate", data={"days": days})
            )
        else:
            self.report.add(Check("tls", OK, detail, data={"days": days}))

    async def _websocket(self) -> None:
        protocols = ["hubbub"] + ([f"hubbub.token.{self.token}"] if self.token else [])
        started = time.monotonic()
        session = aiohttp.ClientSession()
        try:
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    ws = await session.ws_connect(
                        self.ws_url,
                        protocols=protocols,
                        ssl=self.ssl_context if self.secure else False,
                        autoping=True,
                    )
            except aiohttp.WSServerHandshakeError as exc:
                self.report.add(
                    Check(
                        "websocket",
                        FAIL,
                        f"handshake refused: HTTP {exc.status}",
                        _handshake_fix(exc.status),
                    )
                )
                return
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.report.add(
                    Check(
                        "websocket",
                        FAIL,
                        f"no WebSocket: {_reason(exc)}",
                        "a proxy in front must pass the Upgrade and Connection "
                        "headers (docs/deploy.md)",
                    )
                )
                return
            handshake = time.monotonic() - started
            self.report.add(Check("websocket", OK, f"upgraded in {_ms(handshake)}"))
            try:
                await self._join(ws)
                if self.report.checks[-1].status == OK:
                    await self._rtt(ws)
            finally:
                await ws.close()
        finally:
            await session.close()

    async def _join(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        join: dict[str, Any] = {"type": "join-room", "room": self.room}
        if self.token:
            join["token"] = self.token
        else:
            join["userId"] = self.room
        started = time.monotonic()
        await ws.send_str(json.dumps(join))
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while True:
                    message = await _receive(ws)
                    if message.get("type") in ("room-joined", "error"):
                        break
        except (TimeoutError, ConnectionError) as exc:
            self.report.add(Check("join", FAIL, f"no answer to join-room: {_reason(exc)}"))
            return
        if message["type"] == "error":
            self.report.add(
                Check(
                    "join",
                    FAIL,
                    f"refused: {message.get('code')}: {message.get('message', '')}",
                    "give a token that may join this room (--token, --room)"
                    if message.get("code") in ("unauthorized", "forbidden", "token-required")
                    else None,
                )
            )
            return
        self.ice_servers = list(message.get("iceServers") or [])
        self.report.add(
            Check("join", OK, f"joined {self.room} in {_ms(time.monotonic() - started)}")
        )
        self._ice_servers_check()

    async def _rtt(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        rtts = []
        for ref in range(1, PINGS + 1):
            started = time.monotonic()
            await ws.send_str(json.dumps({"type": "ping", "ref": ref}))
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    while (await _receive(ws)).get("type") != "pong":
                        pass
            except (TimeoutError, ConnectionError):
                break
            rtts.append(time.monotonic() - started)
        if not rtts:
            self.report.add(Check("rtt", WARN, "no pong to ping"))
            return
        median = statistics.median(rtts)
        self.report.add(
            Check(
                "rtt", OK, f"{_ms(median)} (median of {len(rtts)} pings)", data={"seconds": median}
            )
        )

    def _ice_servers_check(self) -> None:
        stun = [
            url for server in self.ice_servers for url in _urls(server) if url.startswith("stun")
        ]
        turn = [
            url for server in self.ice_servers for url in _urls(server) if url.startswith("turn")
        ]
        detail = f"{len(stun)} STUN, {len(turn)} TURN"
        data = {"stun": stun, "turn": turn}
        if not stun and not turn:
            self.report.add(
                Check(
                    "ice-servers",
                    WARN,
                    "none: calls connect only within one network",
                    "set --stun-port (on by default) or --stun-uri, and "
                    "--turn-uri with --turn-secret",
                    data=data,
                )
            )
        elif not turn:
            self.report.add(
                Check(
                    "ice-servers",
                    WARN,
                    detail + ": no TURN, so calls from "
                    "behind symmetric NATs and UDP-blocking firewalls fail",
                    "run coturn and give --turn-uri and --turn-secret (docs/deploy.md)",
                    data=data,
                )
            )
        else:
            self.report.add(Check("ice-servers", OK, detail, data=data))

    # -- STUN and TURN --------------------------------------------------------------

    async def _stun(self) -> None:
        uris = [u for s in self.ice_servers for u in _urls(s) if u.startswith("stun:")]
        for uri in uris[:2]:
            host, port = _uri_hostport(uri, 3478)
            try:
                seen = await _stun_binding(host, port)
            except (OSError, TimeoutError) as exc:
                self.report.add(
                    Check(
                        "stun",
                        FAIL,
                        f"{uri}: no answer ({_reason(exc)})",
                        "open UDP to this port in the server's firewall; a "
                        "network that drops UDP needs TURN over TCP or TLS",
                    )
                )
                continue
            self.report.add(
                Check(
                    "stun",
                    OK,
                    f"{uri}: your public address is {_hostport(*seen)}",
                    data={"address": list(seen)},
                )
            )

    async def _turn(self) -> None:
        turn_servers = [s for s in self.ice_servers if any(u.startswith("turn") for u in _urls(s))]
        if not turn_servers:
            return
        try:
            from aioice.turn import create_turn_endpoint  # noqa: F401
        except ImportError:
            self.report.add(
                Check("turn", SKIP, "TURN checks need the peer extra", "pip install 'hubbub[peer]'")
            )
            return
        working = None
        for server in turn_servers:
            for uri in _urls(server):
                if not uri.startswith("turn"):
                    continue
                kind = _turn_kind(uri)
                try:
                    relayed, took = await self._allocate(uri, server)
                except Exception as exc:
                    self.report.add(
                        Check(f"turn-{kind}", FAIL, f"{uri}: {_reason(exc)}", _turn_fix(kind, exc))
                    )
                    continue
                self.report.add(
                    Check(
                        f"turn-{kind}",
                        OK,
                        f"{uri}: relay {_hostport(*relayed)} in {_ms(took)}",
                        data={"relayed": list(relayed)},
                    )
                )
                working = working or (uri, server)
        if working is not None:
            await self._relay(*working)
        else:
            self.report.add(
                Check(
                    "relay",
                    FAIL,
                    "no TURN allocation succeeded: calls that need a relay fail",
                    "see the turn lines above",
                )
            )

    async def _allocate(self, uri: str, server: dict[str, Any]) -> tuple[tuple[str, int], float]:
        from aioice.turn import create_turn_endpoint

        scheme = uri.split(":", 1)[0]
        host, port = _uri_hostport(uri, 5349 if scheme == "turns" else 3478)
        transport = "tcp" if scheme == "turns" or "transport=tcp" in uri else "udp"
        started = time.monotonic()
        async with asyncio.timeout(STEP_TIMEOUT):
            turn, _ = await create_turn_endpoint(
                asyncio.DatagramProtocol,
                (host.strip("[]"), port),
                server.get("username"),
                server.get("credential"),
                ssl=self.ssl_context if scheme == "turns" else False,
                transport=transport,
            )
        took = time.monotonic() - started
        relayed = turn.get_extra_info("sockname")
        turn.close()
        return (str(relayed[0]), int(relayed[1])), took

    async def _relay(self, uri: str, server: dict[str, Any]) -> None:
        try:
            opened, throughput = await relay_data_channel(
                {**server, "urls": [uri]}, self.ssl_context
            )
        except Exception as exc:
            self.report.add(
                Check(
                    "relay",
                    FAIL,
                    f"no data channel through {uri}: {_reason(exc)}",
                    "the TURN server allocates but does not relay: check its "
                    "relay ports (min-port..max-port) in the firewall, and its "
                    "denied-peer-ip lines",
                )
            )
            return
        self.report.add(
            Check(
                "relay",
                OK,
                f"data channel through {uri} open in {opened:.2f} s, "
                f"{throughput * 8 / 1e6:.1f} Mbit/s",
                data={"openSeconds": opened, "bytesPerSecond": throughput},
            )
        )


async def relay_data_channel(
    server: dict[str, Any], ssl_context: ssl.SSLContext
) -> tuple[float, float]:
    """Two aiortc peers in this process, both relay-only through ``server``: seconds
    until their data channel opened, and the bytes a second it then carried."""
    from aiortc import (
        RTCConfiguration,
        RTCIceServer,
        RTCIceTransportPolicy,
        RTCPeerConnection,
    )

    from hubbub.peer.sctp import deepen_receive_buffers, delay_sacks

    config = RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        started = time.monotonic()
        channel = offerer.createDataChannel("hubbub-doctor")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        received = 0
        done = asyncio.Event()

        def on_message(message: bytes) -> None:
            nonlocal received
            received += len(message)
            if received >= RELAY_BYTES:
                done.set()

        answerer.on("datachannel", lambda incoming: incoming.on("message", on_message))

        async with asyncio.timeout(STEP_TIMEOUT * 4):
            await offerer.setLocalDescription(await offerer.createOffer())
            await answerer.setRemoteDescription(offerer.localDescription)
            await answerer.setLocalDescription(await answerer.createAnswer())
            await offerer.setRemoteDescription(answerer.localDescription)
            await opened.wait()
        open_seconds = time.monotonic() - started
        for pc in (offerer, answerer):
            if pc.sctp is not None:
                delay_sacks(pc.sctp)
                deepen_receive_buffers(pc.sctp)
        chunk = bytes(16 * 1024)
        drained = asyncio.Event()
        channel.bufferedAmountLowThreshold = 256 * 1024
        channel.on("bufferedamountlow", drained.set)
        began = time.monotonic()
        sent = 0
        # A slow uplink sends less in RELAY_SECONDS; it does not make the check longer.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RELAY_SECONDS):
                while sent < RELAY_BYTES and channel.readyState == "open":
                    if channel.bufferedAmount > 1024 * 1024:
                        drained.clear()
                        await drained.wait()
                    channel.send(chunk)
                    sent += len(chunk)
                await done.wait()
        elapsed = time.monotonic() - began
        return open_seconds, received / elapsed if elapsed > 0 else 0.0
    finally:
        await offerer.close()
        await answerer.close()


async def _stun_binding(host: str, port: int) -> tuple[str, int]:
    """The address a STUN server at ``host``:``port`` sees us at (retransmitted as RFC
    8489 has it, 500 ms then doubling, for at most STEP_TIMEOUT)."""
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(
        Receiver, remote_addr=(host.strip("[]"), port)
    )
    try:
        request, transaction_id = binding_request()
        async with asyncio.timeout(STEP_TIMEOUT):
            wait = 0.5
            while True:
                transport.sendto(request)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        while True:
                            seen = mapped_address(await answers.get(), transaction_id)
                            if seen is not None:
                                return seen
                wait *= 2
    finally:
        transport.close()


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive()
    if message.type is not aiohttp.WSMsgType.TEXT:
        raise ConnectionError(f"the server closed the connection ({ws.close_code})")
    parsed: dict[str, Any] = json.loads(message.data)
    return parsed


def _urls(server: dict[str, Any]) -> list[str]:
    urls = server.get("urls") or []
    return [urls] if isinstance(urls, str) else list(urls)


def _uri_hostport(uri: str, default_port: int) -> tuple[str, int]:
    rest = uri.split(":", 1)[1].split("?", 1)[0]
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        return host, int(after[1:]) if after.startswith(":") else default_port
    host, _, port = rest.partition(":")
    return host, int(port) if port else default_port


def _turn_kind(uri: str) -> str:
    if uri.startswith("turns:"):
        return "tls"
    return "tcp" if "transport=tcp" in uri else "udp"


def _turn_fix(kind: str, exc: BaseException) -> str:
    text = _reason(exc)
    if "401" in text or "Unauthorized" in text:
        return "hubbub's turn_secret must be coturn's static-auth-secret (use-auth-secret)"
    if kind == "udp":
        return "open UDP to this port (and the relay ports) in the TURN server's firewall"
    if kind == "tls":
        return "check the TURN server's certificate (cert, pkey) and its TLS port"
    return "open TCP to this port in the TURN server's firewall"


def _handshake_fix(status: int) -> str:
    return {
        401: "give a valid access token (--token)",
        403: "this origin or address is refused (allowed_origin), or the path is wrong",
        429: "too many connections from this address (max_connections_per_ip)",
        503: "the server is at its connection limit or shutting down",
    }.get(status, "check the URL's path: hubbub answers WebSockets at / and /ws")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {STEP_TIMEOUT:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
