"""``kill -9`` of the server in the middle of a chat storm, then a restart on the
same data: what was acknowledged is there, once, with no gap in the numbers."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp

from tests.faults.resuming import ResumingClient, running, wait_for
from tests.process import hubbub_serve
from tests.wsclient import Client

USERS = ["ana", "ben", "cai", "dev"]
LOOSE_LIMITS = ("--message-rate", "5000", "--message-burst", "5000")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def whole_history(url: str, room: str) -> list[dict[str, Any]]:
    """Every stored message of the room, oldest first, read as a client reads it."""
    async with await Client.connect(url) as reader:
        joined = await reader.join(room, "auditor")
        messages = list(joined["history"])
        while messages and messages[0]["seq"] > 1:
            await reader.send({"type": "history", "beforeSeq": messages[0]["seq"]})
            page = await reader.expect("history", timeout=30)
            if not page["messages"]:
                break
            messages = page["messages"] + messages
        return messages


async def test_kill_9_loses_no_acknowledged_message_and_doubles_none(tmp_path: Path) -> None:
    port = free_port()
    args = ("--port", str(port), "--data-dir", str(tmp_path), *LOOSE_LIMITS)
    storming = True

    async def storm(client: ResumingClient) -> None:
        while storming:
            await client.send_chat(f"{client.user_id} at {len(client.unacked)}")
            await asyncio.sleep(0.002)

    async with aiohttp.ClientSession() as http:
        clients = [ResumingClient(http, f"http://127.0.0.1:{port}", "storm", u) for u in USERS]
        async with running(clients), hubbub_serve(*args) as (_url, process):
            await wait_for(lambda: all(c.ready.is_set() for c in clients), 30)
            storms = [asyncio.create_task(storm(client)) for client in clients]
            await wait_for(lambda: sum(len(c.acked) for c in clients) >= 400, 60)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            acked_before = {cid: seq for c in clients for cid, seq in c.acked.items()}
            storming = False
            await asyncio.gather(*storms)
            sent = sum(len(c.acked) + len(c.unacked) for c in clients)
            unacked_at_crash = sent - len(acked_before)
            async with hubbub_serve(*args) as (url, _process):
                # The clients come back by themselves, join afresh, send the rest again.
                await wait_for(lambda: all(not c.unacked and c.ready.is_set() for c in clients), 60)
                stored = await whole_history(url, "storm")

    seqs = [m["seq"] for m in stored]
    assert seqs == list(range(1, len(stored) + 1)), "a gap or a repeat in the numbers"
    client_ids = [m["clientId"] for m in stored]
    assert len(client_ids) == len(set(client_ids)), "a message stored twice"
    by_client_id = {m["clientId"]: m["seq"] for m in stored}
    for client_id, seq in acked_before.items():
        assert by_client_id.get(client_id) == seq, client_id
    # What was sent and never acknowledged before the crash was sent again, and
    # is there once too.
    assert len(stored) == sent
    for client in clients:
        assert client.violations == []
        assert set(client.refused_resumes) <= {"unknown-session"}
        assert client.errors == []
    print(
        f"acked before the kill={len(acked_before)} unacked={unacked_at_crash} stored={len(stored)}"
    )
