"""A real coturn on loopback, on ports of its own, for the duration of a test."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aioice import stun
from aioice.turn import TurnClientUdpProtocol, create_turn_endpoint

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "hubbub.test"


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (TURN listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


TEST_OPTIONS = [
    "--listening-ip=127.0.0.1",
    "--relay-ip=127.0.0.1",
    "--use-auth-secret",
    f"--realm={REALM}",
    "--no-tls",
    "--no-dtls",
    "--no-cli",
    "--fingerprint",
    # Both peers of a test are on loopback; production must refuse loopback peers.
    "--allow-loopback-peers",
]


@asynccontextmanager
async def coturn(
    secret: str, config: str | None = None, port: int | None = None
) -> AsyncIterator[int]:
    """Run ``turnserver`` on a free port (or ``port``) with ephemeral credentials
    checked against ``secret``; yield the port. With ``config`` (the text of a
    turnserver.conf) it runs that configuration instead of the test one, on loopback
    and free ports."""
    port = port or _free_port()
    relay_base = random.randrange(40_000, 60_000, 50)
    with tempfile.TemporaryDirectory(prefix="hubbub-coturn-") as workdir:
        common = [
            f"--listening-port={port}",
            f"--min-port={relay_base}",
            f"--max-port={relay_base + 49}",
            "--relay-threads=1",
            f"--pidfile={workdir}/turn.pid",
            f"--db={workdir}/turndb",
        ]
        if config is None:
            argv = ["-n", *TEST_OPTIONS, f"--static-auth-secret={secret}", *common]
        else:
            config_path = Path(workdir) / "turnserver.conf"
            config_path.write_text(config)
            argv = ["-c", str(config_path), "--listening-ip=127.0.0.1",
                    "--relay-ip=127.0.0.1", *common]  # fmt: skip
        log_path = Path(workdir) / "turn.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                TURNSERVER,
                *argv,
                "--log-file=stdout",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            await _wait_until_answering(port, process)
            yield port
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(5):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _wait_until_answering(port: int, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(15):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"turnserver exited with {process.returncode}")
            transport, protocol = await loop.create_datagram_endpoint(
                _BindingProbe, remote_addr=("127.0.0.1", port)
            )
            try:
                transport.sendto(bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)))
                try:
                    async with asyncio.timeout(0.3):
                        await protocol.answered.wait()
                    return
                except TimeoutError:
                    pass
            finally:
                transport.close()


class _BindingProbe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answered = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answered.set()


async def allocate(port: int, username: str, password: str) -> tuple[str, int]:
    """Ask the TURN server for a relay with these credentials; return its address,
    or raise ``aioice.stun.TransactionFailed`` with the server's refusal."""
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", port), username, password
    )
    try:
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        return relayed
    finally:
        transport.close()


async def bind_channel(port: int, username: str, password: str, peer: tuple[str, int]) -> None:
    """Allocate a relay, then ask for a channel to ``peer`` (which makes a
    permission for it); raise ``TransactionFailed`` if the server refuses. Nothing
    is sent to the peer."""
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", port)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server, username=username, password=password, lifetime=60, channel_refresh_time=50
        ),
        remote_addr=server,
    )
    try:
        await protocol.connect()
        await protocol.channel_bind(0x4000, peer)
    finally:
        if protocol.refresh_task is not None:
            protocol.refresh_task.cancel()
        transport.close()
