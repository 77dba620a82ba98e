"""The core's timers: one heap of deadlines, run when the adapter says the time.

The core never sleeps and never starts a timer of the event loop's. A feature that
needs to act later schedules a deadline here; the adapter asks when the next one is
due (:meth:`Timers.next_deadline`) and calls :meth:`Timers.run_due` with the time
then. Cancelling is lazy: a feature's handler checks that what it was scheduled for
still holds (the session still detached since then, the call still ringing), so a
deadline that no longer matters costs one look when it comes due and nothing before.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], None]


class Timers:
    """Deadlines, each with a handler and the value it is called with."""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Handler, Any]] = []
        self._order = itertools.count()
        """Breaks ties: deadlines due at the same time run in the order scheduled."""

    def schedule(self, when: float, handler: Handler, value: Any) -> None:
        """Call ``handler(value)`` once the time is ``when`` or later."""
        heapq.heappush(self._heap, (when, next(self._order), handler, value))

    def next_deadline(self) -> float | None:
        """When the earliest deadline is due; ``None`` when there is none."""
        heap = self._heap
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> int:
        """Run every handler whose deadline is ``now`` or earlier, earliest first
        (a handler may schedule more); returns how many ran."""
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            _, _, handler, value = heapq.heappop(heap)
            handler(value)
            ran += 1
        return ran

    def compact(self, live: Callable[[float, Handler, Any], bool]) -> None:
        """Drop the deadlines that no longer matter (``live(when, handler, value)``
        says which do): under churn, the heap stays the size of what is pending."""
        self._heap = [entry for entry in self._heap if live(entry[0], entry[2], entry[3])]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
