"""The test's own Janus labs: what a killed run left behind goes at the next run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from hubbub.cli import main
from hubbub.media.janus_config import JanusConfig
from tests.janus import PREFIX, JanusLab, janus_missing_reason, remove_stale_labs

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


def test_a_labs_secrets_reach_hubbub_serve_whatever_they_start_with(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Random secrets start with "-" one time in 64 each: as separate arguments,
    # argparse took them for options and hubbub serve refused to start.
    config = JanusConfig(ws_port=8188, api_secret="-api-secret-1", admin_key="--admin-key-2")
    lab = JanusLab("unused", "198.51.100.1", "198.51.100.2", config, Path("/nonexistent"))
    assert main(["config", *lab.serve_args()]) == 0
    assert "janus_url = ws://198.51.100.2:8188" in capsys.readouterr().out
