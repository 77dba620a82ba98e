"""A real WebSocket client over a real socket, with helpers for reading hubbub's replies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

RECEIVE_TIMEOUT = 20.0
"""Seconds to wait for an expected message: generous, for a busy machine; a test
that fails waits this long, one that passes does not."""


class Client:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self._session = session
        self.ws = ws
        self.last_n = 0
        """The ``n`` of the last message received: each one must be the next."""
        self._markers = 0

    @classmethod
    async def connect(cls, url: str, path: str = "/", **kwargs: Any) -> Client:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url.rstrip("/") + path, **kwargs)
        except BaseException:
            await session.close()
            raise
        return cls(session, ws)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            message = await self.ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {message.type!r} {message.data!r}")
        parsed: dict[str, Any] = json.loads(message.data)
        # Every message is numbered in the session (resumed aside); the tests
        # compare messages without their number, having checked it here.
        if parsed.get("type") != "resumed":
            n = parsed.pop("n", None)
            assert n == self.last_n + 1, f"n={n} after {self.last_n}: {parsed}"
            self.last_n = n
        return parsed

    async def expect(self, type_: str, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        message = await self.recv(timeout)
        assert message["type"] == type_, message
        return message

    async def expect_error(self, code: str) -> dict[str, Any]:
        message = await self.expect("error")
        assert message["code"] == code, message
        return message

    async def nothing(self, within: float | None = None) -> None:
        """Nothing is on its way to this client.

        Without ``within``, a marker proves it: a ``ping`` whose ``pong`` must be the
        next message, since whatever the server had for this client before it read the
        ping comes first. (What another client did must have been taken by the server
        first: wait for that client's answer, or for a witness to receive what followed
        it.) With ``within``, silence for that long, for what could only come with time.
        """
        if within is None:
            self._markers += 1
            ref = f"nothing-before-{self._markers}"
            await self.send({"type": "ping", "ref": ref})
            message = await self.recv()
            assert message == {"type": "pong", "ref": ref}, f"expected nothing, got {message}"
            return
        # asyncio.timeout, not receive(timeout=): aiohttp restarts that one at
        # every ping it answers.
        try:
            async with asyncio.timeout(within):
                message = await self.ws.receive()
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {message.type!r} {message.data!r}")

    async def join(self, room: str, user_id: str | None = None, **extra: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "join-room", "room": room, **extra}
        if user_id is not None:
            message["userId"] = user_id
        await self.send(message)
        return await self.expect("room-joined")

    async def closed_with(self, timeout: float = RECEIVE_TIMEOUT) -> int | None:
        """Read until the server closes; return its close code."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
