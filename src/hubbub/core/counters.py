"""What the hub counts as it routes, for the metrics.

Plain integers in dicts built once: counting a message is one increment in
place, with nothing allocated. The server reads them when it is scraped.
"""

from __future__ import annotations

from typing import Any, get_args

from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.messages import IncomingMessage

INCOMING_CLASSES: tuple[type[Any], ...] = get_args(IncomingMessage)


def type_name(cls: type[Any]) -> str:
    """The ``type`` a message class has on the wire (``join-room``)."""
    return str(cls.__struct_config__.tag)


class HubCounters:
    """Counters of one hub, since it started."""

    __slots__ = ("errors", "rate_limited", "received")

    def __init__(self) -> None:
        self.received: dict[type[Any], int] = dict.fromkeys(INCOMING_CLASSES, 0)
        """Messages decoded, by message class."""
        self.errors: dict[ErrorCode, int] = dict.fromkeys(ErrorCode, 0)
        """``error`` messages sent, by code."""
        self.rate_limited = 0
        """Messages dropped for going over the message rate."""

    def received_by_type(self) -> dict[str, int]:
        return {type_name(cls): count for cls, count in self.received.items()}
