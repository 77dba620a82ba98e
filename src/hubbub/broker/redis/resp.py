"""A plain connection to Redis for the broker's hot path: commands packed and written
as they come, replies parsed by hiredis in ``data_received``, in batches.

redis-py's asyncio client parses one reply per ``await`` (a pub/sub message costs a
timeout context, a health check and several coroutine steps); here one ``recv``
yields every reply it holds, with no task, future or ``await`` per message. The
broker keeps redis-py for what is rare (scripts loading, heartbeats, resync).

A connection is in one of two modes: *replies* (each reply answers the oldest
command sent with :meth:`RespConnection.call`, in order), or, once subscribed,
*pushes* (what Redis sends is handed to ``on_push``: pub/sub messages and the
confirmations of SUBSCRIBE and UNSUBSCRIBE written with :meth:`RespConnection.write`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url

log = logging.getLogger("hubbub.broker")

Reply = Any
"""What hiredis makes of a reply: bytes, int, a list, None, or a ``hiredis.ReplyError``."""

pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)
"""A command (its words: str, bytes, int, float) as RESP bytes. (hiredis's stub
types the tuple as of one element.)"""


class RespError(ConnectionError):
    """Redis refused the connection's set-up (AUTH, SELECT)."""


class RespConnection(asyncio.Protocol):
    """One TCP (or Unix, or TLS) connection to Redis."""

    def __init__(
        self,
        on_push: Callable[[Reply], None] | None,
        on_lost: Callable[[str], None],
    ) -> None:
        self._reader = hiredis.Reader()
        self._answers: deque[Callable[[Reply], None]] = deque()
        self._on_push = on_push
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self.closed = False

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        answers = self._answers
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._lose(f"protocol error: {exc}")
                return
            if reply is False:
                return
            try:
                if answers:
                    answers.popleft()(reply)
                elif self._on_push is not None:
                    self._on_push(reply)
            except Exception:
                # One message that could not be handled costs that message, not the
                # connection (and every message after it).
                log.exception("event=redis-reply-failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(str(exc) if exc is not None else "connection closed")

    # -- sending ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Bytes of packed commands whose replies are pushes (or ``call`` them)."""
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def call(self, data: bytes, answer: Callable[[Reply], None]) -> None:
        """Send one packed command; ``answer`` gets its reply."""
        self._answers.append(answer)
        self.write(data)

    def call_many(self, data: bytes, count: int, answer: Callable[[Reply], None]) -> None:
        """Send ``count`` packed commands at once; ``answer`` gets each reply in turn."""
        self._answers.extend([answer] * count)
        self.write(data)

    async def ask(self, *command: Any) -> Reply:
        """Send one command and wait for its reply (set-up only: not the hot path);
        an error reply is raised as :class:`RespError`."""
        reply = await self.ask_unchecked(*command)
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(str(reply))
        return reply

    async def ask_unchecked(self, *command: Any) -> Reply:
        """:meth:`ask`, an error reply returned as it is."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def answer(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        self.call(pack_command(command), answer)
        return await future

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _lose(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        self._on_lost(why)


async def open_connection(
    url: str,
    on_push: Callable[[Reply], None] | None,
    on_lost: Callable[[str], None],
    timeout: float,
) -> RespConnection:
    """Connect to the Redis of ``url`` (redis://, rediss://, unix://: the forms
    redis-py takes), authenticate and select its database."""
    options: dict[str, Any] = dict(parse_url(url))
    loop = asyncio.get_running_loop()

    def factory() -> RespConnection:
        return RespConnection(on_push, on_lost)

    async with asyncio.timeout(timeout):
        if "path" in options:
            _, connection = await loop.create_unix_connection(factory, options["path"])
        else:
            _, connection = await loop.create_connection(
                factory,
                options.get("host") or "localhost",
                int(options.get("port") or 6379),
                ssl=_tls(url, options),
            )
        try:
            password = options.get("password")
            if password:
                username = options.get("username")
                await connection.ask("AUTH", *([username] if username else []), password)
            if options.get("db"):
                await connection.ask("SELECT", int(options["db"]))
        except BaseException:
            connection.close()
            raise
    return connection


def _tls(url: str, options: dict[str, Any]) -> ssl.SSLContext | None:
    if not url.startswith("rediss://"):
        return None
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
