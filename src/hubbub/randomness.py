"""Unguessable identifiers and secrets, drawn from the system's CSPRNG in blocks.

``secrets.token_urlsafe`` makes one ``getrandom`` system call per token, and a
new connection needs several (its session id, its resume token); where system
calls are dear, that was several per cent of a connection's cost. The bytes here
come from the same source, ``os.urandom``, read a block at a time, and each byte
is handed out once. A forked child starts with an empty block, so parent and
child never share bytes.
"""

from __future__ import annotations

import base64
import os
import threading

BLOCK_BYTES = 4096
"""Bytes read from the system per refill."""

_lock = threading.Lock()
_block = b""
_used = 0


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the system's CSPRNG, never handed out before."""
    global _block, _used
    with _lock:
        if _used + count > len(_block):
            _block = os.urandom(max(BLOCK_BYTES, count))
            _used = 0
        chunk = _block[_used : _used + count]
        _used += count
    return chunk


def token_urlsafe(count: int) -> str:
    """A URL-safe text token of ``count`` random bytes (as ``secrets.token_urlsafe``)."""
    return base64.urlsafe_b64encode(random_bytes(count)).rstrip(b"=").decode("ascii")


def token_hex(count: int) -> str:
    """A hexadecimal token of ``count`` random bytes (as ``secrets.token_hex``)."""
    return random_bytes(count).hex()


def _forget_after_fork() -> None:
    global _block, _used, _lock
    _lock = threading.Lock()
    _block, _used = b"", 0


os.register_at_fork(after_in_child=_forget_after_fork)
