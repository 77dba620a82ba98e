"""Errors raised by :mod:`hubbub.client`.

::

    HubbubClientError       anything this client raises on its own
    ├── ConnectError        the server could not be reached, or refused the upgrade
    ├── NotConnected        a send while the connection is down (it may come back)
    ├── RequestFailed       the server answered a request with an ``error``
    │   └── JoinRefused     ... a ``join-room``
    └── Closed              the client was closed, or gave up reconnecting
"""

from __future__ import annotations


class HubbubClientError(Exception):
    """Base of every error raised by :mod:`hubbub.client`."""


class ConnectError(HubbubClientError):
    """The server could not be reached, or it refused the WebSocket upgrade."""


class NotConnected(HubbubClientError):
    """The connection is down; the client is reconnecting (or has given up)."""


class Closed(HubbubClientError):
    """The client is closed: by :meth:`Client.close`, or after a close it does not retry."""


class RequestFailed(HubbubClientError):
    """The server refused a request; ``code`` is one of ``docs/protocol.md``'s error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JoinRefused(RequestFailed):
    """The server refused to let this client into the room."""
