"""The one way out of the core: what it asks the server adapter to do.

The core never writes to a socket. It hands encoded messages to an outbox, which
the adapter implements by framing them and writing the same bytes to every
recipient's transport; tests implement it by recording.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from hubbub.core.session import Session
from hubbub.protocol.errors import CloseCode


class Outbox(Protocol):
    def send(self, session: Session, payload: bytes) -> None:
        """Queue one message to one session."""

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        """Queue the same message to many sessions, skipping session id ``exclude``."""

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        """Close the session's connection; the adapter then reports the disconnect."""
