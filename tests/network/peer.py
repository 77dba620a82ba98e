"""A Python peer (``hubbub.peer``) run inside a lab host, driven over its stdio.

``python -m tests.network.peer --url URL --user NAME --workdir DIR [--room R]
[--relay]`` joins room R (``lab``), keeps its files in DIR (made and removed by its
starter: it is killed, not asked to quit), and then takes one JSON command a line
on stdin, answering each with one JSON line on stdout:

- ``{"cmd": "connect", "to": USER, "timeout": S}`` -> ``{"ok": true, "pair": {...},
  "seconds": S}`` once the peer connection to USER is up (``pair``: the selected ICE
  candidate pair, as :class:`hubbub.peer.ice.IcePair`);
- ``{"cmd": "echo", "to": USER, "text": T}`` -> ``{"ok": true, "reply": ...}``: sends
  T on a data channel and waits for the other's ``echoed:`` answer (the lab's pages
  and peers answer ``echo:`` messages);
- ``{"cmd": "pair", "to": USER}`` -> the pair in use now, the connection's state and
  which peer connection it is (``pc``: a new one after a restart);
- ``{"cmd": "setup", "to": USER}`` -> seconds from this peer's join to the connection
  up and to a data channel open (``connected``, ``channel_open``);
- ``{"cmd": "send-file", "to": USER, "size": N}`` -> sends N random bytes as a file:
  ``bytes``, ``seconds`` (the receiver's accept to its done), ``cpu_seconds`` (this
  process's, over the transfer);
- ``{"cmd": "next-file"}`` -> the next file received: ``ok``, ``size``, ``sha256``;
- ``{"cmd": "quit"}``.

Failures answer ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from hubbub.client import Client
from hubbub.peer import FileInbox, Mesh, Peer

ROOM = "lab"


def _pair(peer: Peer) -> dict[str, Any] | None:
    pair = peer.selected_pair()
    return dataclasses.asdict(pair) if pair is not None else None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Driver:
    def __init__(self, mesh: Mesh, joined_at: float, inbox: FileInbox, workdir: Path) -> None:
        self.mesh = mesh
        self.joined_at = joined_at
        self.inbox = inbox
        self.workdir = workdir
        self.replies: asyncio.Queue[str] = asyncio.Queue()

    def on_channel(self, peer: Peer, channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            if isinstance(message, str) and message.startswith("echo:"):
                channel.send("echoed:" + message[5:])
            elif isinstance(message, str) and message.startswith("echoed:"):
                self.replies.put_nowait(message)

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        timeout = float(command.get("timeout", 60))
        if name == "connect":
            started = time.monotonic()
            peer = await self.mesh.wait_for_peer(command["to"], timeout=timeout)
            return {"ok": True, "pair": _pair(peer), "seconds": time.monotonic() - started}
        if name == "pair":
            peer = self.mesh.peers[command["to"]]
            return {"ok": True, "pair": _pair(peer), "state": peer.connection_state,
                    "connected": peer.connected, "pc": id(peer.pc)}  # fmt: skip
        if name == "echo":
            peer = await self.mesh.wait_for_peer(command["to"], timeout=timeout)
            channel = await peer.open_channel(f"echo-{time.monotonic_ns()}", timeout=timeout)
            self.on_channel(peer, channel)
            channel.send("echo:" + command["text"])
            async with asyncio.timeout(timeout):
                reply = await self.replies.get()
            return {"ok": True, "reply": reply}
        if name == "setup":
            peer = await self.mesh.wait_for_peer(command["to"], timeout=timeout)
            connected = time.monotonic() - self.joined_at
            await peer.open_channel("setup", timeout=timeout)
            opened = time.monotonic() - self.joined_at
            return {"ok": True, "connected": connected, "channel_open": opened}
        if name == "send-file":
            peer = await self.mesh.wait_for_peer(command["to"], timeout=timeout)
            path = self.workdir / "payload.bin"
            with path.open("wb") as file:
                for _ in range(0, int(command["size"]), 1 << 20):
                    file.write(os.urandom(min(1 << 20, int(command["size"]) - file.tell())))
            cpu = _cpu()
            result = await peer.send_file(path)
            return {"ok": result.ok, "bytes": result.size, "seconds": result.seconds,
                    "cpu_seconds": _cpu() - cpu, "error": result.reason}  # fmt: skip
        if name == "next-file":
            result = await self.inbox.next_result(timeout=timeout)
            return {"ok": result.ok, "size": result.size, "sha256": result.sha256,
                    "error": result.reason}  # fmt: skip
        return {"ok": False, "error": f"unknown command {name!r}"}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--room", default=ROOM)
    parser.add_argument("--relay", action="store_true", help="relay-only ICE policy")
    parser.add_argument("--log", choices=("debug", "info", "warning"), default="warning")
    parser.add_argument("--workdir", required=True, type=Path,
                        help="a folder of its own (its starter removes it)")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=args.log.upper(), stream=sys.stderr,
                        format="%(relativeCreated)d %(name)s %(message)s")  # fmt: skip
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    policy = "relay" if args.relay else "all"
    workdir: Path = args.workdir
    inbox = FileInbox(workdir / "in")
    joined_at = time.monotonic()
    async with Client(args.url, args.room, user=args.user, events=False) as client:
        driver: Driver
        async with Mesh(
            client,
            ice_transport_policy=policy,
            on_datachannel=lambda peer, channel: driver.on_channel(peer, channel),
            files=inbox,
        ) as mesh:
            driver = Driver(mesh, joined_at, inbox, workdir)
            print(json.dumps({"ok": True, "joined": client.user_id}), flush=True)
            while line := await reader.readline():
                command = json.loads(line)
                if command.get("cmd") == "quit":
                    break
                try:
                    answer = await driver.handle(command)
                except Exception as exc:
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    import uvloop  # as hubbub's commands run

    uvloop.run(main())
