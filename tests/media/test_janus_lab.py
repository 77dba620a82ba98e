"""The test's own Janus labs: what a killed run left behind goes at the next run."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.janus import PREFIX, janus_missing_reason, remove_stale_labs

pytestmark = pytest.mark.skipif(
    janus_missing_reason() is not None, reason=janus_missing_reason() or ""
)


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def _pids(namespace: str) -> str:
    return subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True
    ).stdout.strip()


def test_a_lab_of_a_run_that_is_gone_is_removed_with_what_runs_in_it() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale, ours = f"{PREFIX}{gone.pid}-test", f"{PREFIX}{os.getpid()}-test"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    subprocess.run(["ip", "netns", "add", ours], check=True)
    left = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while not _pids(stale) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _pids(stale), "the process never entered the namespace"
        removed = remove_stale_labs()
        assert stale in removed
        assert left.wait(5) != 0
        assert stale not in _namespaces()
        assert ours in _namespaces()
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()
        for name in (stale, ours):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
