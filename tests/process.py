"""Running ``hubbub serve`` as a real process, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# the start-up line, in text (event=listening url=...) or JSON ("url": "...") format
_LISTENING = re.compile(rb"""event.{1,4}listening.{1,6}url.{1,4}(http[^\s"]+)""")


@asynccontextmanager
async def hubbub_serve(
    *args: str, log: list[bytes] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start ``hubbub serve --port 0 ARGS``; yield its URL and the process.

    Every line the server logs is appended to ``log`` when one is given. Unless
    ARGS name a store, the data folder is a fresh temporary one.
    """
    if "--data-dir" in args or "--database-url" in args:
        async with _serve(*args, log=log) as running:
            yield running
    else:
        with tempfile.TemporaryDirectory(prefix="hubbub-data-") as data_dir:
            async with _serve("--data-dir", data_dir, *args, log=log) as running:
                yield running


@asynccontextmanager
async def _serve(
    *args: str, log: list[bytes] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
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
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(20):
            while True:
                line = await process.stderr.readline()
                if log is not None:
                    log.append(line)
                if not line:
                    raise RuntimeError("hubbub serve exited before listening")
                match = _LISTENING.search(line)
                if match:
                    url = match.group(1).decode()
                    break
        drain = asyncio.create_task(_drain(process.stderr, log))
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
        if drain is not None:
            # the pipe ends with the process: this reads what is left, then stops
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await drain


async def _drain(stream: asyncio.StreamReader, log: list[bytes] | None) -> None:
    while line := await stream.readline():
        if log is not None:
            log.append(line)
