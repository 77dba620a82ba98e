"""One member of a call, in a process of its own, for the ``sfu`` scenario: an aiortc
peer that sends the test pattern (320x240, 15 frames a second, and a tone) and
decodes what the others send, in a mesh (``hubbub.peer.Mesh``) or through the media
server (``hubbub.peer.SfuMedia``), as its room's mode says.

    python -m bench.sfu_member '{"url": ..., "room": ..., "user": ..., "members": 4,
                                 "host_address": "127.0.0.1"}'

It prints ``{"ready": true}`` once it gets frames from every other member, then,
on each ``measure SECONDS`` line, what it sent (bytes, all its connections), the CPU
it used (all its threads) and the frames it decoded over that time, as one JSON
line; ``quit`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection

from hubbub.client import Client
from hubbub.peer import JOIN_FIELDS, MediaSource, Mesh, SfuMedia

READY_TIMEOUT = 120.0


class Member:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.frames: dict[str, int] = {}
        self.media = MediaSource.test_pattern()
        self.tasks: set[asyncio.Task[None]] = set()
        self.framed = asyncio.Event()

    async def consume(self, user_id: str, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            with contextlib.suppress(Exception):
                while True:
                    await track.recv()
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                self.frames[user_id] = self.frames.get(user_id, 0) + 1
                self.framed.set()

    def connections(self) -> list[RTCPeerConnection]:
        if self.sfu.mode == "sfu":
            return [pc for pc in [self.sfu.publisher, *self.sfu.subscribers.values()] if pc]
        return [peer.pc for peer in self.mesh.peers.values()]

    async def sent_bytes(self) -> int:
        total = 0
        for pc in self.connections():
            for report in (await pc.getStats()).values():
                if getattr(report, "type", None) == "outbound-rtp":
                    total += int(getattr(report, "bytesSent", 0) or 0)
        return total

    async def run(self) -> None:
        job = self.job
        client = Client(
            job["url"], job["room"], user=job["user"], join_fields=JOIN_FIELDS, events=False
        )

        def on_track(user_id: str, track: MediaStreamTrack) -> None:
            task = asyncio.ensure_future(self.consume(user_id, track))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        self.sfu = SfuMedia(client, media=self.media, on_track=on_track)
        async with self.sfu, client:
            self.mesh = Mesh(
                client,
                media=self.media if self.sfu.mode != "sfu" else None,
                receive_media=self.sfu.mode != "sfu",
                on_track=lambda peer, track: on_track(peer.user_id, track),
            )
            async with self.mesh:
                others = job["members"] - 1
                try:
                    async with asyncio.timeout(READY_TIMEOUT):
                        while sum(1 for count in self.frames.values() if count > 5) < others:
                            self.framed.clear()
                            try:
                                await asyncio.wait_for(self.framed.wait(), 5)
                            except TimeoutError:
                                # What it waits for, in the run's log.
                                print(f"{job['user']}: frames {self.frames}", file=sys.stderr)
                except TimeoutError:
                    # Who sent no video, and how each peer connection stands.
                    states = {
                        user: (peer.pc.connectionState, len(peer.tracks))
                        for user, peer in self.mesh.peers.items()
                    }
                    print(
                        f"{job['user']}: not ready; frames {self.frames}; peers {states}",
                        file=sys.stderr,
                    )
                    raise
                print(json.dumps({"ready": True, "mode": self.sfu.mode}), flush=True)
                reader = asyncio.StreamReader()
                loop = asyncio.get_running_loop()
                await loop.connect_read_pipe(
                    lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
                )
                while line := (await reader.readline()).decode().split():
                    if line[0] != "measure":
                        break
                    seconds = float(line[1])
                    sent, cpu, frames = (
                        await self.sent_bytes(),
                        time.process_time(),
                        dict(self.frames),
                    )
                    started = time.monotonic()
                    await asyncio.sleep(seconds)
                    wall = time.monotonic() - started
                    decoded = sum(self.frames.values()) - sum(frames.values())
                    print(
                        json.dumps(
                            {
                                "upload_kbps": (await self.sent_bytes() - sent) * 8 / 1000 / wall,
                                "cpu_pct": 100 * (time.process_time() - cpu) / wall,
                                "fps_per_stream": decoded / wall / max(1, others),
                                "connections": len(self.connections()),
                            }
                        ),
                        flush=True,
                    )
        self.media.stop()


def _host_addresses(address: str) -> None:
    """Gather host candidates on ``address`` alone (127.0.0.1 for a mesh, this
    machine's end of Janus's veth pair for the SFU): nothing leaves the machine, and
    no other interface of it is tried."""
    import aioice.ice

    def only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [address] if use_ipv4 else []

    aioice.ice.get_host_addresses = only


def main() -> None:
    job = json.loads(sys.argv[1])
    _host_addresses(job["host_address"])
    asyncio.run(Member(job).run())


if __name__ == "__main__":
    main()
