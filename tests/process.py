"""Running ``hubbub serve`` as a real process, as a user would."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_LISTENING = re.compile(rb"event=listening url=(\S+)")


@asynccontextmanager
async def hubbub_serve(*args: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start ``hubbub serve --port 0 ARGS``; yield its URL and the process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubbub",
        "serve",
        "--port",
        "0",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while True:
                line = await process.stderr.readline()
                if not line:
                    raise RuntimeError("hubbub serve exited before listening")
                match = _LISTENING.search(line)
                if match:
                    url = match.group(1).decode()
                    break
        drain = asyncio.create_task(_drain(process.stderr))
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()
    drain.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
