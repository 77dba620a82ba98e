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
from aioice.turn import create_turn_endpoint

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


@asynccontextmanager
async def coturn(secret: str) -> AsyncIterator[int]:
    """Run ``turnserver`` with ephemeral credentials checked against ``secret``;
    yield its port. Relays to loopback peers are allowed here only because both
    peers of the test are on loopback; production must refuse them."""
    port = _free_port()
    relay_base = random.randrange(40_000, 60_000, 50)
    with tempfile.TemporaryDirectory(prefix="hubbub-coturn-") as workdir:
        log_path = Path(workdir) / "turn.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                TURNSERVER,
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                f"--min-port={relay_base}",
                f"--max-port={relay_base + 49}",
                "--use-auth-secret",
                f"--static-auth-secret={secret}",
                f"--realm={REALM}",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--fingerprint",
                "--allow-loopback-peers",
                "--relay-threads=1",
                f"--pidfile={workdir}/turn.pid",
                f"--db={workdir}/turndb",
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
