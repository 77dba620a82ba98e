"""1,000 clients come back by themselves after a restart (SIGTERM, then start again).

docs/protocol.md ("Shutdown") promises: each client is told when to come back
(``reconnect``, spread over ``reconnect_spread`` seconds), its connection is closed
with 1001, and the process exits within 5 s. Here all 1,000 are back in their rooms
within RESTART_BOUND seconds of the new process listening, with no error at all.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import time

import aiohttp

from tests.faults.resuming import ResumingClient, wait_for
from tests.process import hubbub_serve

CLIENTS = 1000
ROOM_SIZE = 10
SPREAD = 3.0
RESTART_BOUND = SPREAD + 30.0
"""Seconds after the new process listens by which every client must be back: the
spread, then generous room for 1,000 handshakes and joins on a busy 2-core machine
(docs/protocol.md gives the figure measured)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def enough_file_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_a_thousand_clients_come_back_after_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The server and the clients each hold a socket per connection, and the
    # server process inherits this limit.
    enough_file_descriptors(4 * CLIENTS + 256)
    port = free_port()
    args = (
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
        "--max-connections-per-ip",
        str(4 * CLIENTS),
        "--max-http-connections-per-ip",
        str(4 * CLIENTS),
        "--reconnect-spread",
        str(SPREAD),
    )
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        clients = [
            ResumingClient(http, f"http://127.0.0.1:{port}", f"room-{i // ROOM_SIZE}", f"user-{i}")
            for i in range(CLIENTS)
        ]
        try:
            async with hubbub_serve(*args) as (_url, process):
                for batch in range(0, CLIENTS, 100):
                    for client in clients[batch : batch + 100]:
                        client.start()
                    started = clients[: batch + 100]
                    await wait_for(lambda s=started: all(c.ready.is_set() for c in s), 60)
                stopping = time.monotonic()
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    code = await process.wait()
                exited_after = time.monotonic() - stopping
            assert code == 0
            told = [c for c in clients if c.close_codes and c.close_codes[-1] == 1001]
            assert len(told) == CLIENTS
            async with hubbub_serve(*args) as (_url, _process):
                listening = time.monotonic()
                await wait_for(lambda: all(c.ready.is_set() for c in clients), RESTART_BOUND)
                back_after = time.monotonic() - listening
        finally:
            await asyncio.gather(*(client.stop() for client in clients))
    print(
        f"exited {exited_after:.1f} s after SIGTERM; {CLIENTS} clients back "
        f"{back_after:.1f} s after the restart (spread {SPREAD:g} s)"
    )
    # The 5 s bound is held by test_process.py with twenty clients: with 1,000 on a
    # machine that runs the whole suite, the exit time is a figure (printed), not a test.
    for client in clients:
        assert client.fresh_joins == 2
        assert client.refused_resumes == []
        assert client.errors == []
        assert client.violations == []
