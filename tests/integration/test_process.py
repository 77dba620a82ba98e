"""``hubbub serve`` as a real process: start-up, options, SIGTERM."""

from __future__ import annotations

import asyncio
import resource
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
            # The server gives clients 2 s to answer its close; the rest is room
            # for a busy machine.
            assert time.monotonic() - started < 15
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
