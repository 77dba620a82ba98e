"""``hubbub serve`` as a real process: start-up, options, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

from tests.process import hubbub_serve
from tests.wsclient import Client


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
