"""What the liveness sweep itself costs, without sockets: ``--connections`` quiet
connections that answer every ping, swept once a second for ``--seconds`` of a
simulated clock, by the server's sweep (hubbub.server.liveness, buckets by due time)
and by the sweep it replaced (every connection looked at every second). The pings'
writes and the pongs' reads are not in it: the callbacks do nothing.

``python -m bench.liveness_cost [--connections 100000] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from hubbub.server.liveness import Liveness

INTERVAL = 20.0
TIMEOUT = 10.0


@dataclass(eq=False, slots=True)
class Quiet:
    last_heard: float = 0.0
    pinged_at: float | None = None
    liveness_bucket: int | None = None


def every_connection_every_second(connections: list[Quiet], seconds: int) -> float:
    """The sweep before server/liveness.py, as it was in server/app.py."""
    open_ = set(connections)
    spent = 0.0
    for second in range(1, seconds + 1):
        now = float(second)
        started = time.perf_counter()
        for connection in tuple(open_):
            pinged_at = connection.pinged_at
            if pinged_at is not None:
                if connection.last_heard > pinged_at:
                    connection.pinged_at = None
                elif now - pinged_at >= TIMEOUT:
                    continue
                else:
                    continue
            if now - connection.last_heard >= INTERVAL:
                connection.pinged_at = now  # the ping's write left out
        spent += time.perf_counter() - started
        _pongs(connections, now)
    return spent


def buckets(connections: list[Quiet], seconds: int) -> float:
    def ping(connection: Quiet) -> bool:
        return True

    def timed_out(connection: Quiet) -> None:
        pass

    liveness = Liveness(INTERVAL, TIMEOUT, ping=ping, timed_out=timed_out)
    for connection in connections:
        liveness.watch(connection, 0.0)
    spent = 0.0
    for second in range(1, seconds + 1):
        now = float(second)
        started = time.perf_counter()
        liveness.sweep(now)
        spent += time.perf_counter() - started
        _pongs(connections, now)
    return spent


def _pongs(connections: list[Quiet], now: float) -> None:
    """Every pinged connection answers before the next sweep (not timed)."""
    for connection in connections:
        if connection.pinged_at is not None:
            connection.last_heard = now + 0.5
            connection.pinged_at = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    for name, sweep in (
        ("every connection every second", every_connection_every_second),
        ("buckets by due time (server/liveness.py)", buckets),
    ):
        spent = sweep([Quiet() for _ in range(args.connections)], args.seconds)
        print(
            f"{name}: {spent / args.seconds * 100:.2f} % of a core "
            f"({args.connections:,} quiet connections, {args.seconds} s)"
        )


if __name__ == "__main__":
    main()
