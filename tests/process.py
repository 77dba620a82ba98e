"""Running ``hubbub serve`` as a real process, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

# the start-up line, in text (event=listening url=...) or JSON ("url": "...") format
_LISTENING = re.compile(rb"""event.{1,4}listening.{1,6}url.{1,4}(http[^\s"]+)""")
# a line that starts a log entry, in either format: its time first
_ENTRY = re.compile(rb"""^(\{"ts": ")?\d{4}-\d\d-\d\d[T ]""")
_PROBLEM = re.compile(
    rb"""^\S+ \S+ (ERROR|CRITICAL) |"level": "(error|critical)"|"exception": |^Traceback """
)

server_problems: list[str] = []
"""The errors and tracebacks that the servers started here logged during the current
test: the test harness (tests/conftest.py) fails a test that did not expect them."""


def problems_in(log: list[bytes]) -> list[str]:
    """The log entries (a line and the traceback lines that follow it) that are an
    error or a traceback, in text or JSON format."""
    entries: list[bytes] = []
    for line in log:
        if entries and not _ENTRY.match(line) and not line.startswith(b"Traceback "):
            entries[-1] += line
        else:
            entries.append(line)
    return [
        entry.decode(errors="replace").rstrip()
        for entry in entries
        if _PROBLEM.search(entry) or b"\nTraceback " in entry
    ]


@asynccontextmanager
async def hubbub_serve(
    *args: str, log: list[bytes] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start ``hubbub serve --port 0 ARGS``; yield its URL and the process.

    Every line the server logs is appended to ``log`` when one is given. Unless
    ARGS name a store, the data folder is a fresh temporary one. The errors and
    tracebacks it logged are added to ``server_problems`` when it ends.
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
    seen: list[bytes] = []

    def keep(line: bytes) -> None:
        seen.append(line)
        if log is not None:
            log.append(line)

    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(20):
            while True:
                line = await process.stderr.readline()
                keep(line)
                if not line:
                    said = b"".join(seen[-20:]).decode(errors="replace")
                    raise RuntimeError(f"hubbub serve exited before listening; it said:\n{said}")
                match = _LISTENING.search(line)
                if match:
                    url = match.group(1).decode()
                    break
        drain = asyncio.create_task(_drain(process.stderr, keep))
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
        server_problems.extend(problems_in(seen))


async def _drain(stream: asyncio.StreamReader, keep: Callable[[bytes], None]) -> None:
    while line := await stream.readline():
        keep(line)
