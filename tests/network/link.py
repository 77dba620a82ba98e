"""A shaped link between two lab namespaces: delay, random loss and a rate limit,
applied in this process to every Ethernet frame that crosses it.

Linux does this with ``tc``'s ``netem`` (delay, loss) and ``tbf`` (rate), but the
kernels the project runs on are not all built with ``netem``. So the shaped link is a
pair of TAP devices, one in each namespace, and this process between them: for each
direction it reads a frame, drops it with probability ``loss``, queues it behind the
frames before it at ``rate`` bits a second (a full queue, ``queue`` bytes, drops it:
a router's tail drop), and writes it to the other side ``delay`` seconds after it has
been serialized. The rate counts Ethernet frames as the TAP device gives them (the
IP packet and a 14-byte header).

``python -m tests.network.link NAME_A NS_A NAME_B NS_B --delay S --loss P --rate-mbit R
--queue-bytes Q`` makes the devices, moves them into their namespaces under their
names, prints ``ready``, and runs until it is killed, its parent dies, or a device
goes away (its namespace deleted).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import os
import random
import selectors
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Direction:
    """Frames from one device to the other, in order."""

    def __init__(self, source: int, target: int, args: argparse.Namespace) -> None:
        self.source = source
        self.target = target
        self.delay = args.delay
        self.loss = args.loss
        self.byte_time = 8 / (args.rate_mbit * 1e6)
        self.queue_time = args.queue_bytes * self.byte_time
        self.busy_until = 0.0
        self.in_flight: collections.deque[tuple[float, bytes]] = collections.deque()
        self.random = random.Random()

    def take(self, now: float) -> None:
        """Read every frame waiting on the source."""
        while True:
            try:
                frame = os.read(self.source, MAX_FRAME)
            except BlockingIOError:
                return
            if self.random.random() < self.loss:
                continue
            start = max(now, self.busy_until)
            if start - now > self.queue_time:
                continue  # the queue is full: tail drop
            self.busy_until = start + len(frame) * self.byte_time
            self.in_flight.append((self.busy_until + self.delay, frame))

    def deliver(self, now: float) -> float | None:
        """Write the frames that are due; when the next one is, or None."""
        in_flight = self.in_flight
        while in_flight and in_flight[0][0] <= now:
            _, frame = in_flight.popleft()
            # the other side's queue full: lost, as on a wire
            with contextlib.suppress(BlockingIOError):
                os.write(self.target, frame)
        return in_flight[0][0] if in_flight else None


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("name_a", "namespace_a", "name_b", "namespace_b"):
        parser.add_argument(name)
    parser.add_argument("--delay", type=float, required=True, help="seconds, each way")
    parser.add_argument("--loss", type=float, required=True, help="share of frames lost")
    parser.add_argument("--rate-mbit", type=float, required=True)
    parser.add_argument("--queue-bytes", type=int, required=True)
    args = parser.parse_args()
    parent = os.getppid()
    devices = []
    for name, namespace in ((args.name_a, args.namespace_a), (args.name_b, args.namespace_b)):
        temporary = f"hbl{os.getpid() % 100000}{len(devices)}"
        fd = open_tap(temporary)
        subprocess.run(["ip", "link", "set", "dev", temporary, "netns", namespace], check=True)
        subprocess.run(
            ["ip", "-n", namespace, "link", "set", "dev", temporary, "name", name], check=True
        )
        devices.append(fd)
    a, b = devices
    directions = {a: Direction(a, b, args), b: Direction(b, a, args)}
    selector = selectors.DefaultSelector()
    for fd in devices:
        selector.register(fd, selectors.EVENT_READ)
    print("ready", flush=True)
    checked_parent = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            due = [d.deliver(now) for d in directions.values()]
            pending = [when for when in due if when is not None]
            timeout = max(0.0, min(pending) - time.monotonic()) if pending else 0.5
            for key, _ in selector.select(timeout):
                directions[key.fd].take(time.monotonic())
            if now - checked_parent > 1.0:
                checked_parent = now
                if os.getppid() != parent:
                    return
    except OSError:
        return  # a device went away with its namespace


if __name__ == "__main__":
    sys.exit(main())
