"""What the scenarios run against: a real hubbub server, a relay in front of it, and
plain members on raw WebSockets.

- :class:`Hub`: ``hubbub.server`` in this process on a loopback port, with an API key
  and a token secret; it can be restarted on the same port and data folder (a server
  shutting down closes every connection with 1001 first).
- :class:`Relay`: a WebSocket relay on loopback between each SDK client and the hub,
  one :class:`Line` per client (its own path). It passes every frame through, both
  ways, close codes included, and records what it passes. A scenario uses it to cut
  a connection for real (both TCP connections end at once, with no close frame, as
  when a network drops), to keep the network down, to close a client's connection
  with a code only a misbehaving client would get, or to lose one server message.
- :class:`Member`: another member of the room, on a plain WebSocket straight to the
  hub, which records what it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from hubbub.core.limits import Limits
from hubbub.server import ServerSettings, start_server
from tests.faults.resuming import wait_for
from tests.tokens import SECRET
from tests.wsclient import Client

API_KEY = "conformance-api-key"
WAIT = 20.0
"""Seconds a scenario waits for what it expects: generous for a busy machine; a
scenario that passes does not wait this long."""
CLOSE_POLL = 0.05
"""Seconds between two looks of the relay's reader at whether it is to close the
client's side (see ``_Pair.close_with``)."""

_LIMITS = {limit.name for limit in fields(Limits)}


class Hub:
    """A hubbub server in this process (on the test's event loop)."""

    def __init__(self, data_dir: Path, **changes: Any) -> None:
        limits = {name: value for name, value in changes.items() if name in _LIMITS}
        others = {name: value for name, value in changes.items() if name not in _LIMITS}
        base = ServerSettings(
            host="127.0.0.1",
            port=0,
            data_dir=data_dir,
            api_key=API_KEY,
            token_secret=SECRET,
            reconnect_spread=0.3,
        )
        self.settings = replace(base, limits=replace(base.limits, **limits), **others)
        self.url = ""
        self.relay = Relay(self)
        self.members: list[Member] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner, self.url = await start_server(self.settings)
        port = int(self.url.rsplit(":", 1)[1])
        self.settings = replace(self.settings, port=port)  # a restart keeps it
        await self.relay.start()

    async def stop(self) -> None:
        for member in self.members:
            await member.close()
        await self.relay.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def shut_down(self) -> None:
        """Shut the server down as SIGTERM does: ``reconnect``, then 1001 to all."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def start_again(self) -> None:
        """A new server process, as it were: same port, same stored chat, no session."""
        self._runner, _ = await start_server(self.settings)

    # -- the HTTP API --------------------------------------------------------------------

    async def api(self, method: str, path: str) -> Any:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.request(method, self.url + path) as response,
        ):
            assert response.status < 300, (method, path, response.status, await response.text())
            return await response.json()

    async def stored(self, room: str) -> list[tuple[int, str, str, str | None]]:
        """The room's stored chat, oldest first: (seq, user id, message, clientId)."""
        found: list[dict[str, Any]] = []
        query = ""
        while True:
            page = await self.api("GET", f"/api/rooms/{quote(room)}/messages{query}")
            found[:0] = page["messages"]
            if not page["messages"]:
                break
            query = f"?beforeSeq={page['messages'][0]['seq']}"
        return [(m["seq"], m["userId"], m["message"], m.get("clientId")) for m in found]

    async def members_of(self, room: str) -> list[str]:
        room_state = await self.api("GET", f"/api/rooms/{quote(room)}")
        return sorted(member["userId"] for member in room_state["members"])

    # -- other members -------------------------------------------------------------------

    async def member(self, room: str, user: str, token: str | None = None) -> Member:
        """A member of ``room`` on a plain WebSocket, joined."""
        member = await Member.connect(self.url, user)
        self.members.append(member)
        await member.join(room, token)
        return member


class Member:
    """Another member, on a raw WebSocket straight to the hub: it records everything
    it is sent (checking that each ``n`` is the next) and says what it is told to."""

    def __init__(self, client: Client, user: str) -> None:
        self.client = client
        self.user = user
        self.got: list[dict[str, Any]] = []
        self.broken: str | None = None
        self.close_code: int | None = None
        self.joined: dict[str, Any] = {}
        """The ``room-joined`` it was sent."""
        self._pings = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, user: str) -> Member:
        return cls(await Client.connect(url, "/ws"), user)

    async def join(self, room: str, token: str | None = None) -> dict[str, Any]:
        extra = {"token": token} if token is not None else {}
        self.joined = joined = await self.client.join(room, self.user, **extra)
        self._start_reading()
        return joined

    async def resume(self, session_id: str, resume_token: str, last_n: int) -> dict[str, Any]:
        """Take over another connection's session, as its client would after a loss."""
        hello = {"type": "resume", "sessionId": session_id, "resumeToken": resume_token}
        await self.client.send({**hello, "lastN": last_n})
        resumed = await self.client.recv()
        assert resumed["type"] == "resumed", resumed
        self.client.last_n = resumed["lastN"]
        self._start_reading()
        return resumed

    def _start_reading(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                self.got.append(await self.client.recv(timeout=3600))
        except AssertionError as error:
            self.broken = str(error)
            self.close_code = self.client.ws.close_code

    def seen(self, type_: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            m
            for m in self.got
            if m["type"] == type_ and all(m.get(k) == v for k, v in fields.items())
        ]

    async def expect(self, type_: str, **fields: Any) -> dict[str, Any]:
        await wait_for(lambda: bool(self.seen(type_, **fields)) or self.broken is not None, WAIT)
        found = self.seen(type_, **fields)
        assert found, f"{self.user} never got {type_} {fields}: {self.broken}"
        return found[-1]

    async def chat(self, text: str) -> None:
        await self.client.send({"type": "chat", "message": text, "clientId": f"{self.user}:{text}"})

    async def chat_stored(self, *texts: str) -> None:
        """Say each of ``texts`` and wait until every one is stored."""
        for text in texts:
            await self.chat(text)
        for text in texts:
            await self.expect("chat-ack", clientId=f"{self.user}:{text}")

    async def confirm(self) -> None:
        """Until the hub has handled everything sent before (its pong is back)."""
        ref = f"p{next(self._pings)}"
        await self.client.send({"type": "ping", "ref": ref})
        await self.expect("pong", ref=ref)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await self.client.close()


# -- the relay -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One message the relay passed: ``up`` (client to hub) or ``down``, on the
    line's ``connection``-th connection; ``injected`` and ``dropped`` are the relay's
    own doing."""

    way: str
    connection: int
    message: dict[str, Any]


@dataclass
class _Pair:
    """One connection through the relay: the client's side and the hub's."""

    index: int
    client: web.WebSocketResponse
    client_transport: asyncio.Transport
    hub: aiohttp.ClientWebSocketResponse
    close_hello_with: int | None = None
    cut: bool = False
    closed_by_relay: bool = False
    """The relay closed the client's side with a code: the hub's side ending meanwhile
    must not abort it (the client would see its close frame lost, 1006)."""
    close_with: tuple[int, bytes] | None = None
    """The close code (and reason) the client's side is to be closed with. The task
    that reads the client's side closes it: aiohttp then waits for the client's close
    frame, reading what comes before it, and only then closes the socket. Closed from
    another task while that one reads, aiohttp closes the socket at once, and what the
    client sent meanwhile, unread, makes it a reset: a client that had not read the
    close frame yet loses it and sees 1006."""
    close_done: asyncio.Event = field(default_factory=asyncio.Event)
    reading: bool = True
    """The client's side is being read (by ``_upstream``)."""

    async def close_client(self, code: int, reason: bytes) -> None:
        """Close the client's side with ``code``: by its reader, if it still reads."""
        if self.reading:
            self.close_with = (code, reason)
            await self.close_done.wait()
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.client.close(code=code, message=reason)

    messages_up: int = 0


class Line:
    """One client's way to the hub, through the relay."""

    def __init__(self, relay: Relay, name: str) -> None:
        self.name = name
        self.url = f"{relay.url}/c/{quote(name)}"
        self.frames: list[Frame] = []
        self.connections = 0
        """Connections the client opened through the line (refused ones aside)."""
        self.refusing = False
        """The network is down: every new connection is refused."""
        self.close_hello_with: int | None = None
        """Close the next connection with this code when its first message comes,
        before the hub sees it (a reconnection attempt that fails)."""
        self.closes: list[tuple[str, int]] = []
        """Each close code the client's connections were closed with, and by whom:
        ``hub`` (passed on) or ``relay``."""
        self._drops: list[Callable[[dict[str, Any]], bool]] = []
        self._pair: _Pair | None = None

    # -- what the scenarios do to it ---------------------------------------------------

    def cut(self) -> None:
        """End the connection as a network drop does: both TCP connections are
        aborted, no close frame either way."""
        pair = self._pair
        assert pair is not None, f"{self.name} has no connection to cut"
        self._pair = None
        pair.cut = True
        pair.client_transport.abort()
        _transport_of(pair.hub).abort()

    async def close(self, code: int) -> None:
        """Close the client's connection with ``code``, as the hub would; the hub's
        side is closed cleanly (the member leaves)."""
        pair = self._pair
        assert pair is not None, f"{self.name} has no connection to close"
        self._pair = None
        self.closes.append(("relay", code))
        pair.closed_by_relay = True
        await pair.close_client(code, b"closed by the relay")

    async def inject(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the hub as if the client had sent it."""
        pair = self._pair
        assert pair is not None, f"{self.name} has no connection"
        self.frames.append(Frame("injected", pair.index, message))
        await pair.hub.send_str(json.dumps(message))

    def lose_next(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Do not pass on the next message from the hub that ``predicate`` picks."""
        self._drops.append(predicate)

    # -- what it saw -------------------------------------------------------------------

    def up(self, type_: str, **fields: Any) -> list[Frame]:
        return self._frames("up", type_, fields)

    def down(self, type_: str, **fields: Any) -> list[Frame]:
        return self._frames("down", type_, fields)

    def dropped(self) -> list[Frame]:
        return [frame for frame in self.frames if frame.way == "dropped"]

    def _frames(self, way: str, type_: str, fields: dict[str, Any]) -> list[Frame]:
        return [
            frame
            for frame in self.frames
            if frame.way == way
            and frame.message.get("type") == type_
            and all(frame.message.get(k) == v for k, v in fields.items())
        ]

    def session(self) -> tuple[str, str, int]:
        """The session the client holds now: its id, resume token, and the ``n`` of
        the last message passed to it."""
        joined = self.down("room-joined")[-1].message
        last_n = max(f.message.get("n", 0) for f in self.frames if f.way == "down")
        return joined["sessionId"], joined["resumeToken"], last_n

    @property
    def connected(self) -> bool:
        return self._pair is not None


class Relay:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.url = ""
        self.lines: dict[str, Line] = {}
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def line(self, name: str) -> Line:
        line = Line(self, name)
        assert name not in self.lines, name
        self.lines[name] = line
        return line

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/c/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        line = self.lines[request.match_info["name"]]
        if line.refusing:
            return web.Response(status=503, text="the network is down")
        assert self._http is not None
        try:
            hub = await self._http.ws_connect(self.hub.url + "/ws", autoping=True)
        except (aiohttp.ClientError, OSError):
            return web.Response(status=502, text="the hub is not there")
        client = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await client.prepare(request)
        transport = request.transport
        assert transport is not None
        line.connections += 1
        pair = _Pair(line.connections, client, transport, hub, line.close_hello_with)
        line.close_hello_with = None
        line._pair = pair
        downstream = asyncio.create_task(self._downstream(line, pair))
        try:
            await self._upstream(line, pair)
        finally:
            await downstream
            if line._pair is pair:
                line._pair = None
        return client

    async def _upstream(self, line: Line, pair: _Pair) -> None:
        """Client to hub, until the client's side ends."""
        client, hub = pair.client, pair.hub
        try:
            with contextlib.suppress(ConnectionError, RuntimeError):
                while pair.close_with is None:
                    try:
                        message = await client.receive(timeout=CLOSE_POLL)
                    except TimeoutError:
                        continue
                    if message.type in _ENDS:
                        break
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    pair.messages_up += 1
                    parsed = json.loads(message.data)
                    line.frames.append(Frame("up", pair.index, parsed))
                    if pair.close_hello_with is not None and pair.messages_up == 1:
                        line._pair = None
                        line.closes.append(("relay", pair.close_hello_with))
                        pair.closed_by_relay = True
                        pair.close_with = (pair.close_hello_with, b"closed by the relay")
                        break
                    await hub.send_str(message.data)
            pair.reading = False
            if pair.close_with is not None:
                code, reason = pair.close_with
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await client.close(code=code, message=reason)
        finally:
            pair.reading = False
            pair.close_done.set()
        if pair.cut or hub.closed:
            return
        if client.close_code in (None, aiohttp.WSCloseCode.ABNORMAL_CLOSURE):
            # the client vanished without a close frame: so does it for the hub
            _transport_of(hub).abort()
        else:
            await hub.close()

    async def _downstream(self, line: Line, pair: _Pair) -> None:
        """Hub to client, until the hub's side ends."""
        client, hub = pair.client, pair.hub
        with contextlib.suppress(ConnectionError, RuntimeError):
            async for message in hub:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                parsed = json.loads(message.data)
                drop = next((d for d in line._drops if d(parsed)), None)
                if drop is not None:
                    line._drops.remove(drop)
                    line.frames.append(Frame("dropped", pair.index, parsed))
                    continue
                line.frames.append(Frame("down", pair.index, parsed))
                await client.send_str(message.data)
        if pair.cut or pair.closed_by_relay or client.closed:
            return
        code = hub.close_code
        if code in (None, aiohttp.WSCloseCode.ABNORMAL_CLOSURE):
            pair.client_transport.abort()
        else:
            line.closes.append(("hub", code))
            await pair.close_client(code, b"closed by the hub")


_ENDS = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)
"""What ends the client's side (``async for`` stops at the first three)."""


def _transport_of(ws: aiohttp.ClientWebSocketResponse) -> asyncio.Transport:
    """The TCP connection under a client WebSocket (aiohttp keeps it on the response
    the upgrade answered; its own ``get_extra_info`` reads it there)."""
    connection = ws._response.connection
    assert connection is not None
    assert connection.transport is not None
    return connection.transport
