"""``hubbub serve`` as a real process: start-up, options, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from tests.process import hubbub_serve
from tests.wsclient import Client

API_KEY = "process-test-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LOOSE = ("--message-rate", "5000", "--message-burst", "5000")


async def test_sigterm_closes_every_connection_with_1001_and_exits_quickly() -> None:
    async with hubbub_serve() as (url, process):
        clients = [await Client.connect(url) for _ in range(20)]
        try:
            for i, client in enumerate(clients):
                await client.join(f"room-{i % 3}", f"user-{i}")
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            codes = await asyncio.gather(*(_close_code_skipping_joins(c) for c in clients))
            assert codes == [1001] * len(clients)
            async with asyncio.timeout(30):
                assert await process.wait() == 0
            # docs/protocol.md, "Shutdown": the process exits within 5 s (it gives the
            # clients 2 s to answer its close). Twenty clients leave room for a busy
            # machine inside that bound (test_restart_storm.py times 1,000).
            assert time.monotonic() - started < 5
        finally:
            for client in clients:
                await client.close()


async def all_messages(url: str, room: str) -> list[dict]:
    """Every stored message of ``room``, through the HTTP API's pages."""
    messages: list[dict] = []
    before = ""
    async with aiohttp.ClientSession() as http:
        while True:
            page_url = f"{url}/api/rooms/{room}/messages?limit=100{before}"
            async with http.get(page_url, headers=AUTH) as response:
                page = (await response.json())["messages"]
            if not page:
                return messages
            messages = page + messages
            before = f"&beforeSeq={page[0]['seq']}"


async def _close_code_skipping_joins(client: Client) -> int | None:
    return await client.closed_with()


async def test_limit_options_reach_the_server() -> None:
    async with (
        hubbub_serve("--max-chat-length", "5") as (url, _),
        await Client.connect(url) as a,
        await Client.connect(url) as b,
    ):
        await a.join("r", "a")
        await b.join("r", "b")
        await a.expect("user-joined")
        await b.send({"type": "chat", "message": "123456"})
        await b.expect_error("too-large")


async def test_serve_raises_its_open_files_limit_and_says_what_it_allows() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 1024)
    log: list[bytes] = []
    # The server starts with a low soft limit (as many systems give), and the hard
    # limit of this process; each connection is one open file.
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        async with (
            hubbub_serve("--max-connections", str(hard + 1), log=log) as (url, _),
            await Client.connect(url) as client,
        ):
            await client.join("r", "a")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    text = b"".join(log).decode()
    assert f"event=open-files limit={hard} hard={hard} connections={hard - 64}" in text
    # fewer than max_connections: the log says so, and where to read how to raise it
    assert "event=open-files-low" in text
    assert "docs/deploy.md" in text


def test_a_bad_option_is_refused_with_its_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--max-frame-bytes", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "max_frame_bytes must be positive" in result.stderr


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubbub", "--version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout.startswith("hubbub ")


def test_config_prints_the_effective_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubbub", "config", "--port", "9999"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"HUBBUB_MAX_CHAT_LENGTH": "77", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "port = 9999" in lines
    assert "max_chat_length = 77" in lines


async def test_at_sigterm_accepted_chat_is_stored_and_acknowledged_before_the_close(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    data = ("--data-dir", str(tmp_path), "--api-key", API_KEY, *LOOSE)
    sent: list[str] = []
    acked: dict[str, int] = {}
    async with hubbub_serve(*data) as (url, process):
        async with await Client.connect(url) as client:
            await client.join("r", "writer")

            async def write() -> None:
                # at a pace the server keeps up with, and on through SIGTERM
                for i in range(2000):
                    sent.append(f"c{i}")
                    await client.send({"type": "chat", "message": sent[-1], "clientId": sent[-1]})
                    await asyncio.sleep(0.002)

            writing = asyncio.create_task(write())
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            while True:
                message = await client.recv()
                if message["type"] == "chat-ack":
                    acked[message["clientId"]] = message["seq"]
                    continue
                assert message["type"] == "reconnect", message
                break
            assert await client.closed_with() == 1001
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writing
            # after SIGTERM nothing new is let in: the listening socket is closed
            with pytest.raises(aiohttp.ClientConnectorError):
                await Client.connect(url)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    assert acked, "nothing was acknowledged before SIGTERM"
    print(f"{len(acked)} of {len(sent)} acknowledged before the close")

    async with hubbub_serve(*data) as (url, _process):
        stored = await all_messages(url, "r")
        # what was stored was acknowledged before the close, and nothing else was
        assert {m["clientId"]: m["seq"] for m in stored} == acked
        # what was not is taken when sent again, after the acknowledged ones
        async with await Client.connect(url) as client:
            await client.join("r", "writer")
            for client_id in sent:
                await client.send({"type": "chat", "message": client_id, "clientId": client_id})
            again = [await client.expect("chat-ack") for _ in sent]
        assert len(await all_messages(url, "r")) == len(sent)
    assert [a["seq"] for a in again] == list(range(1, len(sent) + 1))
    assert all(a.get("duplicate", False) == (a["clientId"] in acked) for a in again)
