"""The tests' own event loop (tests/conftest.py ``CheckedLoop``)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

PARENT = os.getpid()


class _Marked:
    """Freed in a child process, it says so (a file made)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __del__(self) -> None:
        if os.getpid() != PARENT:
            os.close(os.open(self.marker, os.O_CREAT | os.O_WRONLY))


async def test_a_child_process_runs_none_of_the_tests_python(tmp_path: Path) -> None:
    # uvloop forks and runs Python's after-fork work in the child before its exec,
    # which frees what the parent's other threads hold in their thread-locals. An
    # object whose freeing waits for one of the parent's threads then hangs the child,
    # and the run with it: aiortc's VP8 encoder, in a test that runs a peer, left such
    # an object (PyAV's scaler, which waits for its slice threads) in CI. The tests'
    # loop starts processes as the standard library does, without Python in the child.
    marker = tmp_path / "freed-in-the-child"
    local = threading.local()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        local.held = _Marked(marker)
        holding.set()
        release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        holding.wait(5)
        for _ in range(3):
            process = await asyncio.create_subprocess_exec("true")
            assert await process.wait() == 0
        assert not marker.exists()
    finally:
        release.set()
        thread.join()
