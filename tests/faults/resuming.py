"""What the fault tests drive: a client that resumes, a proxy that cuts connections.

:class:`ResumingClient` follows docs/protocol.md ("Reconnecting and resuming") to
the letter: it checks that every message's ``n`` is one more than the last, resumes
with the last ``n`` it got, joins afresh (and pages back through the history) when
a resume is refused, and sends every chat again until its ``chat-ack`` comes.
It records what it sees rather than raising, so that a test can look at it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp

FINAL_CLOSES = frozenset({4009, 4010})


async def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Until ``condition()`` holds; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - what it waits for is spread over clients
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(clients: Iterable[ResumingClient]) -> AsyncIterator[None]:
    """Start the clients; stop every one of them on the way out, whatever happens."""
    started = list(clients)
    for client in started:
        client.start()
    try:
        yield
    finally:
        await asyncio.gather(*(client.stop() for client in started))


class ResumingClient:
    def __init__(self, http: aiohttp.ClientSession, url: str, room: str, user_id: str) -> None:
        self.http = http
        self.url = url.rstrip("/") + "/ws"
        self.room = room
        self.user_id = user_id
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.last_n = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready = asyncio.Event()
        """In the room, on a live connection."""
        self.stopping = False
        self.reconnect_after: float | None = None
        """Seconds the server asked to wait before coming back (``reconnect``)."""

        # What was seen
        self.violations: list[str] = []
        """Broken promises: an ``n`` out of order, a chat seen twice or out of order."""
        self.chats: dict[int, dict[str, Any]] = {}
        """Room seq -> the chat, relayed live or read from the history."""
        self.live_seqs: list[int] = []
        """The seq of every chat relayed live to this client, in the order it came."""
        self.signals: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []
        self.connections = 0
        self.resumes = 0
        self.fresh_joins = 0
        self.refused_resumes: list[str] = []
        self.closed_for_good: int | None = None

        # What it sent
        self.unacked: dict[str, str] = {}
        """clientId -> text: sent (or to send) and not acknowledged yet, in order."""
        self.acked: dict[str, int] = {}
        """clientId -> the seq the server gave it."""
        self.duplicate_acks = 0
        self._sent_here: set[str] = set()
        self._chat_ids = itertools.count(1)
        self._signal_counter = itertools.count(1)
        self.signals_sent: dict[str, list[int]] = {}
        """Target -> signal numbers sent to it."""
        self.signals_confirmed: dict[str, set[int]] = {}
        """Target -> signal numbers the server has surely received (a later pong)."""
        self._unconfirmed: list[tuple[str, int]] = []
        self._pings = itertools.count(1)
        self._ping_marks: dict[str, list[tuple[str, int]]] = {}
        self._history_pending: asyncio.Future[list[dict[str, Any]]] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- driving -----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.stopping = True
        task = self._task
        if task is None:
            return
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.ws.close()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def send_chat(self, text: str) -> str:
        client_id = f"{self.user_id}-{next(self._chat_ids)}"
        self.unacked[client_id] = text
        if self.ready.is_set():
            await self._send_chat(client_id, text)
        return client_id

    async def send_signal(self, target: str) -> None:
        """A numbered signal; if the connection is down it is not sent (signals are
        not stored or retried: a peer negotiates again after a fresh join)."""
        if not self.ready.is_set() or self.ws is None:
            return
        k = next(self._signal_counter)
        body = {"type": "signal", "targetUserId": target, "signal": {"k": k}}
        try:
            await self.ws.send_str(json.dumps(body))
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return
        self.signals_sent.setdefault(target, []).append(k)
        self._unconfirmed.append((target, k))

    async def confirm(self) -> None:
        """Send a ping: its pong proves the server read what was sent before it."""
        if not self.ready.is_set() or self.ws is None:
            return
        ref = f"p{next(self._pings)}"
        self._ping_marks[ref], self._unconfirmed = self._unconfirmed, []
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await self.ws.send_str(json.dumps({"type": "ping", "ref": ref}))

    # -- the connection loop ---------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        while not self.stopping:
            if self.reconnect_after is not None:
                await asyncio.sleep(self.reconnect_after)
                self.reconnect_after = None
            try:
                ws = await self.http.ws_connect(self.url, autoping=True, max_msg_size=0)
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self.connections += 1
            self.ws = ws
            try:
                await self._converse(ws)
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                pass
            finally:
                self.ready.clear()
                self.ws = None
                # What was sent on that connection and not confirmed may be lost.
                self._unconfirmed = []
                self._ping_marks.clear()
                self.close_codes.append(ws.close_code)
                if not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.close()
            if ws.close_code in FINAL_CLOSES and not self.stopping:
                self.closed_for_good = ws.close_code
                return

    async def _converse(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._sent_here = set()
        if self.session_id is not None:
            await ws.send_str(
                json.dumps(
                    {
                        "type": "resume",
                        "sessionId": self.session_id,
                        "resumeToken": self.resume_token,
                        "lastN": self.last_n,
                    }
                )
            )
            first = await self._next(ws)
            if first is None:
                return
            if first["type"] == "resumed":
                self.resumes += 1
                if first["lastN"] < self.last_n:
                    self.violations.append(f"resumed at {first['lastN']} < {self.last_n}")
                # In a cluster, the session may have moved to another node: its id there.
                self.session_id = first["sessionId"]
                await self._ready(ws)
            else:
                # A refusal comes on this connection's own new session: n from 1.
                self.refused_resumes.append(first.get("reason") or first.get("code", "?"))
                self.session_id = None
                self.last_n = 0
                self._number(first)
                await self._join(ws)
        else:
            self.last_n = 0
            await self._join(ws)
        while True:
            message = await self._next(ws)
            if message is None:
                return
            await self._handle(ws, message)

    async def _join(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        join = json.dumps({"type": "join-room", "room": self.room, "userId": self.user_id})
        await ws.send_str(join)
        while True:
            message = await self._next(ws)
            if message is None:
                return
            self._number(message)
            if message["type"] == "room-joined":
                break
            if message["type"] == "error" and message["code"] == "user-id-taken":
                # Our old session still holds the name (grace period): wait and retry.
                await asyncio.sleep(0.5)
                await ws.send_str(join)
                continue
            await self._handle(ws, message, numbered=True)
        self.fresh_joins += 1
        self.session_id = message["sessionId"]
        self.resume_token = message["resumeToken"]
        known = max(self.chats, default=0)
        for entry in message["history"]:
            self.chats.setdefault(entry["seq"], entry)
        # Page back through what was missed before the history in room-joined.
        oldest = min((e["seq"] for e in message["history"]), default=message["lastSeq"] + 1)
        await self._ready(ws)
        while oldest > known + 1:
            page = await self._history(ws, oldest)
            if not page:
                break
            for entry in page:
                self.chats.setdefault(entry["seq"], entry)
            oldest = page[0]["seq"]

    async def _history(self, ws: aiohttp.ClientWebSocketResponse, before: int) -> list[Any]:
        await ws.send_str(json.dumps({"type": "history", "beforeSeq": before, "ref": "h"}))
        while True:
            message = await self._next(ws)
            if message is None:
                return []
            if message["type"] == "history":
                self._number(message)
                return list(message["messages"])
            await self._handle(ws, message)

    async def _ready(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ready.set()
        for client_id, text in list(self.unacked.items()):
            await self._send_chat(client_id, text)

    async def _send_chat(self, client_id: str, text: str) -> None:
        ws = self.ws
        if ws is None or client_id in self._sent_here:
            return
        self._sent_here.add(client_id)
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await ws.send_str(json.dumps({"type": "chat", "message": text, "clientId": client_id}))

    async def _next(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        message = await ws.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            parsed: dict[str, Any] = json.loads(message.data)
            return parsed
        return None

    def _number(self, message: dict[str, Any]) -> None:
        n = message.get("n")
        if message["type"] == "resumed" or (message["type"] == "reconnect" and n is None):
            return  # about the connection, not the session's (a reconnect to resume)
        if n != self.last_n + 1:
            self.violations.append(f"n {n} after {self.last_n}: {message['type']}")
        if isinstance(n, int):
            self.last_n = n

    async def _handle(
        self, ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any], numbered: bool = False
    ) -> None:
        if not numbered:
            self._number(message)
        kind = message["type"]
        if kind == "chat":
            seq = message["seq"]
            if seq in self.chats and seq in self.live_seqs:
                self.violations.append(f"chat {seq} twice")
            if self.live_seqs and seq <= self.live_seqs[-1]:
                self.violations.append(f"chat {seq} after {self.live_seqs[-1]}")
            self.live_seqs.append(seq)
            self.chats[seq] = message
        elif kind == "chat-ack":
            client_id = message["clientId"]
            self.unacked.pop(client_id, None)
            if message.get("duplicate"):
                self.duplicate_acks += 1
            previous = self.acked.setdefault(client_id, message["seq"])
            if previous != message["seq"]:
                self.violations.append(f"{client_id} acked as {previous} and {message['seq']}")
            self.chats.setdefault(message["seq"], {"seq": message["seq"], "clientId": client_id})
        elif kind == "signal":
            self.signals.append(message)
        elif kind == "pong":
            for target, k in self._ping_marks.pop(message.get("ref"), []):
                self.signals_confirmed.setdefault(target, set()).add(k)
        elif kind == "reconnect":
            # The server is going away after the delay it asked for. Its session
            # goes on elsewhere (another node took it: resume), or goes with it
            # (come back as a new member).
            self.reconnect_after = message["afterMs"] / 1000
            if not message.get("resume"):
                self.session_id = None
        elif kind == "error":
            self.errors.append(message)


class CuttingProxy:
    """A TCP proxy on loopback that can cut any connection through it, at once,
    with no close frame and no FIN: both sides get a reset, as when a network drops."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self.pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.cuts = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.pairs.append(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            if pair in self.pairs:
                self.pairs.remove(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    def cut_one(self, rng: random.Random) -> bool:
        if not self.pairs:
            return False
        client, upstream = self.pairs.pop(rng.randrange(len(self.pairs)))
        client.transport.abort()
        upstream.transport.abort()
        self.cuts += 1
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client, upstream in self.pairs:
            client.transport.abort()
            upstream.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
