"""The chat outbox: messages sent and not yet stored, and when each goes again.

On a server that stores chat, every message gets a ``clientId`` of ours and stays
here until its ``chat-ack``. It is sent again, always with the same ``clientId``
(the server stores a ``clientId`` once, however often it comes):

- when no answer comes within the request timeout (lost with the connection, or
  dropped as too fast): its deadline;
- after a refusal that passes with time (``store-unavailable``, ``rate-limited``:
  :data:`~hubbub.protocol.errors.RETRIED_CHAT_ERRORS`), after a backoff delay;
- after ``not-in-room`` (the message crossed a leave or a reconnection), once the
  client is in a room again;
- after a reconnection, all of them, in the order they were first sent.

Any other refusal is final. Sans-I/O: times are deadlines on the caller's clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hubbub.client.backoff import Backoff
from hubbub.client.outgoing import message
from hubbub.protocol import messages as protocol
from hubbub.protocol.errors import RETRIED_CHAT_ERRORS, ErrorCode

CHAT_REF_PREFIX = "chat:"
"""The ``ref`` of a chat message is this and its ``clientId``."""


@dataclass(eq=False)
class OutgoingChat:
    """A chat message in the outbox."""

    client_id: str
    message: str
    retries: int = 0
    """Refusals that passed with time so far (the backoff's attempt number)."""
    deadline: float | None = None
    """When it goes again; None: when the client is (back) in its room."""

    @property
    def ref(self) -> str:
        return CHAT_REF_PREFIX + self.client_id

    def frame(self) -> dict[str, Any]:
        return message(protocol.Chat, message=self.message, client_id=self.client_id, ref=self.ref)


class ChatOutbox:
    """The messages sent and not yet acknowledged, in the order they were sent."""

    def __init__(self, client_id_prefix: str) -> None:
        self._prefix = client_id_prefix + "-"
        self._ids = itertools.count(1)
        self._entries: dict[str, OutgoingChat] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[OutgoingChat]:
        return iter(list(self._entries.values()))

    def add(self, text: str) -> OutgoingChat:
        entry = OutgoingChat(f"{self._prefix}{next(self._ids)}", text)
        self._entries[entry.client_id] = entry
        return entry

    def owns(self, client_id: str | None) -> bool:
        """Whether ``client_id`` is one of this outbox's (a message of ours)."""
        return client_id is not None and client_id.startswith(self._prefix)

    def by_ref(self, ref: object) -> OutgoingChat | None:
        """The message a chat ``ref`` names, if it waits still."""
        if not isinstance(ref, str) or not ref.startswith(CHAT_REF_PREFIX):
            return None
        return self._entries.get(ref.removeprefix(CHAT_REF_PREFIX))

    def sent(self, entry: OutgoingChat, deadline: float) -> None:
        """``entry`` went out: it goes again at ``deadline`` unless answered."""
        entry.deadline = deadline

    def acknowledged(self, client_id: str | None) -> OutgoingChat | None:
        """The message a ``chat-ack`` settles, taken out; None if none waits."""
        return self._entries.pop(client_id, None) if client_id is not None else None

    def refused(
        self, entry: OutgoingChat, code: str, *, in_room: bool, now: float, backoff: Backoff
    ) -> bool:
        """A refusal of ``entry``: True when it will be sent again (the refusal
        passes), False when it is final (``entry`` is taken out)."""
        if code not in RETRIED_CHAT_ERRORS:
            self._entries.pop(entry.client_id, None)
            return False
        entry.retries += 1
        if code == ErrorCode.NOT_IN_ROOM and not in_room:
            entry.deadline = None  # goes when the client is in a room again
        else:
            # store-unavailable, rate-limited; or not-in-room while we thought we
            # were in: a crossing we cannot see, tried again after a while
            entry.deadline = now + backoff.delay(entry.retries)
        return True

    def waiting_for_room(self) -> list[OutgoingChat]:
        """The messages held until the client is in a room again."""
        return [entry for entry in self._entries.values() if entry.deadline is None]

    def due(self, now: float) -> list[OutgoingChat]:
        """The messages whose deadline has come, in the order they were sent."""
        return [
            entry
            for entry in self._entries.values()
            if entry.deadline is not None and entry.deadline <= now
        ]

    def next_deadline(self) -> float | None:
        deadlines = [e.deadline for e in self._entries.values() if e.deadline is not None]
        return min(deadlines, default=None)

    def hold(self) -> None:
        """The connection is gone: nothing goes until a new one is in the room."""
        for entry in self._entries.values():
            entry.deadline = None

    def take_all(self) -> list[OutgoingChat]:
        """Every message still waiting, taken out (the client is closing)."""
        entries = list(self._entries.values())
        self._entries.clear()
        return entries
