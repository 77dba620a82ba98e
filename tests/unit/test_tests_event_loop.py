"""The tests' own event loop (tests/conftest.py ``CheckedLoop``)."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

PARENT = os.getpid()
_collect_in_the_child = False


def _allocate_in_the_child() -> None:
    # Enough allocations to start the collector, if it runs in the child at all.
    if _collect_in_the_child:
        _ = [[] for _ in range(5_000)]


os.register_at_fork(after_in_child=_allocate_in_the_child)


class _Garbage:
    """Garbage in a cycle, which only the collector frees; freed in a child, it says so."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.cycle = self

    def __del__(self) -> None:
        if os.getpid() != PARENT:
            os.close(os.open(self.marker, os.O_CREAT | os.O_WRONLY))


async def test_a_child_process_does_not_collect_the_tests_garbage(tmp_path: Path) -> None:
    # uvloop forks and runs Python's after-fork work in the child before its exec: a
    # collection there frees the parent's garbage, and an object whose freeing waits
    # for one of the parent's threads hangs the child and the run with it (PyAV's
    # scaler, left by aiortc's VP8 encoder, waits for its slice threads, which the
    # child does not have). The tests' loop spawns with the collector off.
    global _collect_in_the_child
    marker = tmp_path / "collected-in-the-child"
    for _ in range(5):
        gc.collect()
        _Garbage(marker)
        _collect_in_the_child = True
        try:
            process = await asyncio.create_subprocess_exec("true")
        finally:
            _collect_in_the_child = False
        assert await process.wait() == 0
        assert not marker.exists()
    gc.collect()  # this garbage is the parent's to free
