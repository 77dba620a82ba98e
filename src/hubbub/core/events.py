"""What the hub tells an observer about (webhooks, metrics), as it happens.

The hub calls its observer synchronously, from the one place each kind of event
is decided, and never waits for it: an observer that has slow work to do
(an HTTP request to a backend) queues it and returns at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call changed state."""

    kind: str
    """``ringing`` (placed), ``accepted``, or ``ended``."""
    call_id: str
    caller: str
    callee: str
    room: str | None = None
    """The call's room, once accepted."""
    reason: str | None = None
    """Why it ended: ``declined``, ``cancelled``, ``missed``, ``hung-up``,
    ``left`` or ``disconnected``."""


class HubObserver(Protocol):
    def call_changed(self, event: CallEvent) -> None:
        """A call was placed, accepted or ended."""


class NoObserver:
    """The default: nobody is listening."""

    def call_changed(self, event: CallEvent) -> None:
        pass
