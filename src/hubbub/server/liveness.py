"""Liveness: ping the clients that have been quiet for ``ping_interval``, and drop those
that answer nothing within ``ping_timeout``.

Each connection is looked at when something may be due for it, not at every sweep:
connections wait in buckets of one sweep ``period`` each, keyed by when they are next
due. When a connection's bucket comes, it is pinged if nothing was heard from it for
``ping_interval`` (then looked at again ``ping_timeout`` later), dropped if a ping of
it went unanswered that long, and otherwise put back for ``ping_interval`` after the
last frame heard from it. A quiet connection that answers costs two looks per
``ping_interval`` (to ping it, then to see that it answered) instead of one a sweep:
at 100,000 such connections and a sweep a second, 10,000 looks a second instead of
100,000 (``python -m bench.liveness_cost``). A frame read only sets ``last_heard``.

A dead connection is dropped at most ``ping_interval + ping_timeout`` and four sweep
periods after the last frame heard from it (each of the two looks may come up to a
bucket's width and a sweep's late).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Watched(Protocol):
    """What the sweep reads of a connection (:class:`~hubbub.server.connection.Connection`)."""

    last_heard: float
    """When its last frame was read (the monotonic clock)."""
    pinged_at: float | None
    """When it was pinged and has not answered since; None otherwise."""
    liveness_bucket: int | None
    """The bucket it waits in (the sweep's own; None while it waits in none)."""


W = TypeVar("W", bound=Watched)


class Liveness(Generic[W]):
    """The buckets, and the sweep over those that came due."""

    __slots__ = (
        "_buckets",
        "_next",
        "_ping",
        "_timed_out",
        "interval",
        "period",
        "timeout",
    )

    def __init__(
        self,
        interval: float,
        timeout: float,
        *,
        ping: Callable[[W], bool],
        timed_out: Callable[[W], None],
    ) -> None:
        """``ping(connection)`` sends a ping and says whether it could (False: the
        connection is closing); ``timed_out(connection)`` drops it."""
        self.interval = interval
        self.timeout = timeout
        self.period = min(1.0, interval / 4, timeout / 4)
        """Seconds between sweeps, and the width of a bucket."""
        self._ping = ping
        self._timed_out = timed_out
        self._buckets: dict[int, dict[W, None]] = {}
        """Key (due time over ``period``, rounded up) -> the connections due then."""
        self._next: int | None = None
        """The first bucket not swept yet."""

    def __len__(self) -> int:
        """Connections watched."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def watch(self, connection: W, now: float) -> None:
        """A new connection: looked at ``ping_interval`` after ``now``."""
        connection.last_heard = now
        self._put(connection, now + self.interval)

    def forget(self, connection: W) -> None:
        """A connection is gone: it is looked at no more."""
        key = connection.liveness_bucket
        if key is None:
            return
        connection.liveness_bucket = None
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.pop(connection, None)
            if not bucket:
                del self._buckets[key]

    def sweep(self, now: float) -> None:
        """Look at every connection whose bucket came by ``now``."""
        last = math.floor(now / self.period)
        buckets = self._buckets
        first = min(buckets, default=last) if self._next is None else self._next
        if first > last:
            return
        self._next = last + 1
        if last - first > len(buckets):  # after a long pause: fewer keys than steps
            due = sorted(key for key in buckets if key <= last)
        else:
            due = [key for key in range(first, last + 1) if key in buckets]
        for key in due:
            for connection in buckets.pop(key):
                connection.liveness_bucket = None
                self._look(connection, now)

    def _look(self, connection: W, now: float) -> None:
        pinged_at = connection.pinged_at
        last_heard = connection.last_heard
        if pinged_at is not None:
            if last_heard > pinged_at:
                connection.pinged_at = None  # heard from since: alive
            elif now - pinged_at >= self.timeout:
                self._timed_out(connection)
                return
            else:
                self._put(connection, pinged_at + self.timeout)
                return
        if now - last_heard >= self.interval:
            if self._ping(connection):
                connection.pinged_at = now
                self._put(connection, now + self.timeout)
            return
        self._put(connection, last_heard + self.interval)

    def _put(self, connection: W, due: float) -> None:
        key = math.ceil(due / self.period)
        if self._next is not None and key < self._next:
            key = self._next
        connection.liveness_bucket = key
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = {connection: None}
        else:
            bucket[connection] = None
