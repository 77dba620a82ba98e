"""``hubbub send`` and ``hubbub receive`` across real NATs, as a user runs them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest

from tests.network.lab import TURN_ADDRESS, Host, Lab
from tests.network.services import ROOT, TURN_PORT, TURN_SECRET, coturn, hubbub

WAIT = 60.0

pytestmark = pytest.mark.network


async def _hubbub_command(host: Host, log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await host.spawn(
            sys.executable, "-m", "hubbub", *args, "--verbose",
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip


async def test_a_file_crosses_two_symmetric_nats_through_coturn(lab: Lab, tmp_path: Path) -> None:
    """Each side behind its own symmetric NAT, coturn on the internet: only relays
    reach each other. Before, each peer also checked the other's LAN address through
    its relay; coturn could not send there, closed the allocation, and every check
    after it was lost (400 Bad Request): the file never went."""
    alice_site = lab.add_site("a", "symmetric")
    bob_site = lab.add_site("b", "symmetric")
    data = os.urandom(200_000)
    (tmp_path / "report.bin").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    turn = ["--turn-uri", f"turn:{TURN_ADDRESS}:{TURN_PORT}", "--turn-secret", TURN_SECRET]
    # coturn as the report had it: without the production's refusal of private
    # ranges (docs/deploy.md), it tries to relay into the other's LAN
    with coturn(lab, deny_lans=False), hubbub(lab, tmp_path / "hub", *turn, turn=False) as url:
        connection = ["--url", url, "--room", "files"]
        receiver = await _hubbub_command(
            bob_site.hosts[0], tmp_path / "receive.log",
            "receive", *connection, "--user", "bob", "--out", str(out), "--count", "1",
        )  # fmt: skip
        sender = await _hubbub_command(
            alice_site.hosts[0], tmp_path / "send.log",
            "send", str(tmp_path / "report.bin"), *connection, "--user", "alice", "--to", "bob",
        )  # fmt: skip
        try:
            async with asyncio.timeout(WAIT):
                await asyncio.gather(sender.wait(), receiver.wait())
        finally:
            for process in (sender, receiver):
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        log = (tmp_path / "send.log").read_text()
        assert sender.returncode == 0, log
        assert receiver.returncode == 0, (tmp_path / "receive.log").read_text()
    received = (out / "report.bin").read_bytes()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
