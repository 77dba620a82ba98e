"""File transfer: one file, peer to peer, between two processes on loopback.

Two generator processes, each a ``hubbub.client.Client`` with a ``hubbub.peer.Mesh``
(what ``hubbub send`` and ``hubbub receive`` run): the receiver joins, the sender
joins and connects to it (host candidates, no STUN), then sends a file of random
bytes over a data channel as docs/peer-protocol.md describes. The time runs from the
receiver's ``file-accept`` to its ``file-done`` (SHA-256 checked), so it leaves out
the connection and the sender's hashing of the file before it offers it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, Target, generator_figures
from bench.servers import RunningServer

CONNECT_TIMEOUT = 60.0
MB = 1_000_000


class FileTransfer(Scenario):
    name = "file_transfer"
    title = "File transfer between two processes"
    description = (
        "A sender and a receiver, each its own process running hubbub.client and "
        "hubbub.peer (aiortc) on uvloop, meet in a room; the sender sends a file of random "
        "bytes over a data channel (64 KiB messages, 1 MiB high watermark), the receiver "
        "writes it to disk and checks its SHA-256. MB/s is the file's size over the time "
        "from accept to done; CPU is each process's own over the measured window, per MB "
        "(the steadier figure on a busy machine; the sender's includes hashing the file once)."
    )
    columns = (
        Column("mb_s", "throughput", "MB/s", 1, plot=True),
        Column("seconds", "time", "s", 2, lower_is_better=True),
        Column("sender_cpu_ms_per_mb", "sender CPU", "ms/MB", 0, lower_is_better=True),
        Column("receiver_cpu_ms_per_mb", "receiver CPU", "ms/MB", 0, lower_is_better=True),
        Column("size_mb", "file", "MB", 0),
    )
    targets = (Target("mb_s", ">=", value=15.0),)
    servers = ("hubbub",)

    def cases(self, size: str) -> list[Case]:
        megabytes = {"smoke": 2, "quick": 32, "full": 100}[size]
        cases = [Case(f"{megabytes} MB, 64 KiB messages", {"size": megabytes, "chunk": 65536})]
        if size == "full":
            cases.append(
                Case(f"{megabytes} MB, 16 KiB messages", {"size": megabytes, "chunk": 16384})
            )
        return cases

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        room = f"files-{os.getpid()}-{case.params['size']}-{case.params['chunk']}"
        params = [{"role": "receive", "room": room}, {"role": "send", "room": room, **case.params}]
        generators = await run.generators(self, server, params)
        try:
            await generators.command("mark")
            replies = await generators.command("run", timeout=CONNECT_TIMEOUT + 600)
            reports = await generators.command("report")
        finally:
            await generators.close()
        receiver, sender = reports  # in the order of params
        sent = next(reply for reply in replies if "seconds" in reply)
        megabytes = sent["bytes"] / MB
        return {
            "mb_s": megabytes / sent["seconds"],
            "seconds": sent["seconds"],
            # CPU time per MB is what a busy machine changes least: on a core of its
            # own, a side cannot go faster than 1000 / (its ms/MB) MB/s
            "sender_cpu_ms_per_mb": 1000 * sender["generator_cpu_seconds"] / megabytes,
            "receiver_cpu_ms_per_mb": 1000 * receiver["generator_cpu_seconds"] / megabytes,
            "size_mb": megabytes,
            **generator_figures(reports),
        }


class Driver(BaseDriver):
    """The sender or the receiver, by ``params["role"]``."""

    async def setup(self) -> dict[str, Any]:
        from hubbub.client import Client
        from hubbub.peer import FileInbox, Mesh

        self.workdir = Path(tempfile.mkdtemp(prefix="hubbub-bench-files-"))
        role = self.params["role"]
        self.client = Client(self.url, self.params["room"], user=role, events=False)
        await self.client.start()
        if role == "receive":
            self.inbox = FileInbox(self.workdir)
            self.mesh = Mesh(self.client, files=self.inbox)
            self.mesh.start()
            return {}
        self.source = self.workdir / "payload.bin"
        with self.source.open("wb") as file:
            for _ in range(self.params["size"]):
                file.write(os.urandom(MB))
        self.mesh = Mesh(self.client)
        self.mesh.start()
        self.peer = await self.mesh.wait_for_peer("receive", timeout=CONNECT_TIMEOUT)
        return {}

    async def on_run(self) -> dict[str, Any]:
        if self.params["role"] == "receive":
            result = await self.inbox.next_result(timeout=600)
            if not result.ok:
                raise RuntimeError(f"the file did not arrive whole: {result.reason}")
            return {"received": result.size}
        result = await self.peer.send_file(self.source, chunk_size=self.params["chunk"])
        if not result.ok or result.seconds is None:
            raise RuntimeError(f"the transfer failed: {result.reason}")
        return {"bytes": result.size, "seconds": result.seconds}

    async def on_quit(self) -> dict[str, Any]:
        await self.mesh.close()
        await self.client.close()
        for path in self.workdir.iterdir():
            path.unlink()
        self.workdir.rmdir()
        return {}
