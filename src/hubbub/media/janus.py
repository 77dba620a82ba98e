"""Janus's VideoRoom plugin as a :class:`~hubbub.media.MediaServer`, over Janus's
WebSocket API: one connection and one Janus session per instance, the ``api_secret``
on every request, a keepalive well inside Janus's ``session_timeout``, rooms created
with the ``admin_key`` and a random secret of their own.

A hubbub room is a Janus room whose id is the room's name and a random suffix, made
anew each time (so a room left behind by a connection that was cut never stands in
the way); a feed's id is the member's user id (``string_ids``). Each handle of hubbub
(a publisher, a subscriber connection) is one Janus handle, attached on first use.

The connection is an adapter: it turns calls into Janus requests and Janus's answers
and events into return values and :class:`~hubbub.media.MediaServerEvents`. When it
goes (Janus killed, the network cut), every request under way fails with
:class:`~hubbub.media.MediaUnavailable`, the events hear ``lost``, and it connects
again in the background, empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hubbub.media import (
    ForwardedStream,
    Jsep,
    MediaError,
    MediaRefused,
    MediaServerEvents,
    MediaServerStats,
    MediaUnavailable,
    PublishedFeed,
    SubscriberOffer,
)

log = logging.getLogger("hubbub.media")

PLUGIN = "janus.plugin.videoroom"
KEEPALIVE_INTERVAL = 20.0
"""Seconds between keepalives; Janus ends a silent session after ``session_timeout`` (60)."""
HEARTBEAT = 2.0
"""Seconds between WebSocket pings to Janus when it sends nothing; one unanswered for
half as long ends the connection. A network cut closes nothing and refuses nothing: this
is how hubbub notices it (within about 3 s) and moves the rooms, as for a killed Janus."""
CONNECT_TIMEOUT = 5.0
"""Seconds an attempt to reach Janus may take (a cut network answers nothing)."""
REQUEST_TIMEOUT = 10.0
"""Seconds a request may take before it fails as unavailable."""
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Seconds between attempts to reach a Janus that went away; the last repeats."""
ROOM_EXISTS = 427
"""VideoRoom's error code for a room id that is taken (another node made the room)."""
ROOM_BITRATE = 1_500_000
"""The cap on each publisher's video (bits per second): three simulcast layers of 720p."""


def _jsep(raw: Any) -> Jsep | None:
    """A session description from Janus, with its session name (which carries the
    room's id on Janus) replaced: clients see nothing of Janus's names."""
    if not isinstance(raw, dict):
        return None
    kind, sdp = raw.get("type"), raw.get("sdp")
    if kind not in ("offer", "answer") or not isinstance(sdp, str):
        return None
    lines = ["s=hubbub" if line.startswith("s=") else line for line in sdp.split("\r\n")]
    return Jsep(kind, "\r\n".join(lines))


def _streams(raw: Any) -> tuple[ForwardedStream, ...]:
    streams: list[ForwardedStream] = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict) or entry.get("type") not in ("audio", "video"):
            continue
        feed = entry.get("feed_id")
        mid = entry.get("mid")
        if feed is None or mid is None:
            continue
        active = entry.get("active", True) is not False
        streams.append(ForwardedStream(str(mid), entry["type"], str(feed), active))
    return tuple(streams)


@dataclass
class _Room:
    janus_id: str
    secret: str
    publishers: dict[str, str] = field(default_factory=dict)
    """Handle -> the feed it publishes."""
    media: dict[str, PublishedFeed] = field(default_factory=dict)
    """Feed -> what its offer carried."""
    subscribers: dict[str, tuple[ForwardedStream, ...]] = field(default_factory=dict)
    """Handle -> its streams, as last offered."""


class JanusMediaServer:
    """One Janus, driven over its WebSocket API."""

    def __init__(
        self,
        url: str,
        *,
        api_secret: str | None = None,
        admin_key: str | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        request_timeout: float = REQUEST_TIMEOUT,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.name = url
        self._url = url
        self._api_secret = api_secret
        self._admin_key = admin_key
        self._keepalive_interval = keepalive_interval
        self._request_timeout = request_timeout
        self._heartbeat = heartbeat
        self._events: MediaServerEvents | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session_id: int | None = None
        self._control: int | None = None
        self._up = False
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ack_ends: set[str] = set()
        self._rooms: dict[str, _Room] = {}
        self._handles: dict[tuple[str, str], int] = {}
        self._handle_names: dict[int, tuple[str, str]] = {}
        self._attaching: dict[tuple[str, str], asyncio.Future[int]] = {}
        self.requests = 0
        self.failures = 0
        self.lost_count = 0

    def attach(self, events: MediaServerEvents) -> None:
        self._events = events

    @property
    def up(self) -> bool:
        return self._up

    def stats(self) -> MediaServerStats:
        return MediaServerStats(
            self.name,
            self._up,
            len(self._rooms),
            len(self._handles),
            self.requests,
            self.failures,
            self.lost_count,
        )

    def load(self) -> int:
        return len(self._handles)

    # -- the connection -------------------------------------------------------------

    async def start(self) -> None:
        """Connect, waiting a moment for the first connection; a Janus that is not
        there yet is tried again in the background."""
        if self._runner is not None:
            return
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        )
        self._runner = asyncio.create_task(self._run(), name=f"janus {self._url}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 2.0)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._up:
            with contextlib.suppress(MediaError):
                await self._call({"janus": "destroy", "session_id": self._session_id})
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._http is not None:
            await self._http.close()
        self._fail_pending(MediaUnavailable("closed"))

    async def _run(self) -> None:
        attempt = 0
        assert self._http is not None
        while not self._closed:
            try:
                ws = await self._http.ws_connect(
                    self._url,
                    protocols=("janus-protocol",),
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    heartbeat=self._heartbeat,
                )
            except (OSError, aiohttp.ClientError) as exc:
                if attempt == 0:
                    log.warning("event=media-server-unreachable server=%s error=%s", self._url, exc)
            else:
                attempt = 0
                await self._serve(ws)
            if self._closed:
                return
            self._down()
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt += 1
            await asyncio.sleep(delay)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """One connection, from its Janus session's creation to its end."""
        self._ws = ws
        reader = asyncio.create_task(self._read(ws))
        keepalive: asyncio.Task[None] | None = None
        try:
            created = await self._call({"janus": "create"})
            self._session_id = int(created["data"]["id"])
            self._control = await self._attach_new()
            self._up = True
            self._connected.set()
            keepalive = asyncio.create_task(self._keepalive())
            log.info("event=media-server-up server=%s", self._url)
            # The rooms made through a connection that was cut are still there (unless
            # Janus restarted), without this connection's handles (Janus closed them
            # with the session): the bridge makes them again or takes them back.
            if self.lost_count and self._events is not None:
                self._events.restored(self)
            await reader
        except (MediaError, KeyError, TypeError, ValueError) as exc:
            log.warning("event=media-server-refused server=%s error=%s", self._url, exc)
        finally:
            reader.cancel()
            if keepalive is not None:
                keepalive.cancel()
            with contextlib.suppress(Exception):
                await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            try:
                message = json.loads(frame.data)
            except ValueError:
                continue
            if isinstance(message, dict):
                self._on_message(message)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive_interval)
            with contextlib.suppress(MediaError):
                await self._call({"janus": "keepalive", "session_id": self._session_id}, ack=True)

    def _down(self) -> None:
        """The connection went: everything on it is gone."""
        was_up = self._up
        self._up = False
        self._connected.clear()
        self._session_id = None
        self._control = None
        self._fail_pending(MediaUnavailable(f"lost the connection to {self._url}"))
        self._rooms.clear()
        self._handles.clear()
        self._handle_names.clear()
        if was_up:
            self.lost_count += 1
            log.warning("event=media-server-lost server=%s", self._url)
            if self._events is not None:
                self._events.lost(self)

    def _fail_pending(self, error: MediaError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        attaching, self._attaching = self._attaching, {}
        for waiting in attaching.values():
            if not waiting.done():
                waiting.set_exception(error)

    # -- requests -------------------------------------------------------------------

    async def _call(self, request: dict[str, Any], *, ack: bool = False) -> dict[str, Any]:
        """Send a request; its answer: the first that is not an ``ack``, or the ``ack``
        itself for the requests it answers (``keepalive``, ``trickle``)."""
        ws = self._ws
        if ws is None or ws.closed:
            raise MediaUnavailable(f"{self._url} is not reachable")
        transaction = secrets.token_hex(8)
        request["transaction"] = transaction
        if self._api_secret:
            request["apisecret"] = self._api_secret
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        if ack:
            self._ack_ends.add(transaction)
        self.requests += 1
        try:
            await ws.send_str(json.dumps(request))
            answer = await asyncio.wait_for(future, self._request_timeout)
        except (ConnectionError, aiohttp.ClientError) as exc:
            self.failures += 1
            raise MediaUnavailable(f"{self._url}: {exc}") from None
        except TimeoutError:
            self.failures += 1
            raise MediaUnavailable(f"{self._url} did not answer in time") from None
        except MediaError:
            self.failures += 1
            raise
        finally:
            self._pending.pop(transaction, None)
            self._ack_ends.discard(transaction)
        if answer.get("janus") == "error":
            self.failures += 1
            error = answer.get("error") or {}
            raise MediaRefused(str(error.get("reason", "refused")), error.get("code"))
        return answer

    async def _plugin(
        self, handle: int, body: dict[str, Any], jsep: Jsep | None = None
    ) -> tuple[dict[str, Any], Jsep | None]:
        """A VideoRoom request on ``handle``: its data, and the JSEP with it."""
        request: dict[str, Any] = {
            "janus": "message",
            "session_id": self._session_id,
            "handle_id": handle,
            "body": body,
        }
        if jsep is not None:
            request["jsep"] = {"type": jsep.type, "sdp": jsep.sdp}
        answer = await self._call(request)
        data = (answer.get("plugindata") or {}).get("data") or {}
        if "error_code" in data or data.get("videoroom") == "error" or "error" in data:
            self.failures += 1
            raise MediaRefused(str(data.get("error", "refused")), data.get("error_code"))
        return data, _jsep(answer.get("jsep"))

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        transaction = message.get("transaction")
        if kind == "ack":
            # An asynchronous plugin request's event comes after its ack.
            if transaction in self._ack_ends:
                self._resolve(transaction, message)
            return
        if isinstance(transaction, str) and transaction in self._pending:
            self._resolve(transaction, message)
            return
        sender = message.get("sender")
        name = self._handle_names.get(sender) if isinstance(sender, int) else None
        if name is None or self._events is None:
            return
        room_name, handle = name
        if kind == "event":
            data = (message.get("plugindata") or {}).get("data") or {}
            jsep = _jsep(message.get("jsep"))
            if jsep is not None and jsep.type == "offer":
                room = self._rooms.get(room_name)
                streams = _streams(data.get("streams"))
                if room is not None and handle in room.subscribers:
                    room.subscribers[handle] = streams
                self._events.renegotiate(self, room_name, handle, SubscriberOffer(jsep, streams))
        elif kind == "webrtcup":
            room = self._rooms.get(room_name)
            if room is not None and handle in room.publishers:
                self._events.feed_up(self, room_name, handle)
        elif kind in ("hangup", "detached"):
            self._events.hung_up(self, room_name, handle)

    def _resolve(self, transaction: str, message: dict[str, Any]) -> None:
        future = self._pending.get(transaction)
        if future is not None and not future.done():
            future.set_result(message)

    async def _attach_new(self) -> int:
        answer = await self._call(
            {"janus": "attach", "session_id": self._session_id, "plugin": PLUGIN}
        )
        return int(answer["data"]["id"])

    async def _handle(self, room: str, handle: str) -> int:
        key = (room, handle)
        found = self._handles.get(key)
        if found is not None:
            return found
        waiting = self._attaching.get(key)
        if waiting is not None:
            return await waiting
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._attaching[key] = future
        try:
            handle_id = await self._attach_new()
        except MediaError as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()
            raise
        finally:
            self._attaching.pop(key, None)
        self._handles[key] = handle_id
        self._handle_names[handle_id] = key
        if not future.done():
            future.set_result(handle_id)
        return handle_id

    async def _detach(self, room: str, handle: str) -> None:
        handle_id = self._handles.pop((room, handle), None)
        if handle_id is None:
            return
        self._handle_names.pop(handle_id, None)
        with contextlib.suppress(MediaRefused):
            await self._call(
                {"janus": "detach", "session_id": self._session_id, "handle_id": handle_id}
            )

    def _room(self, room: str) -> _Room:
        if not self._up:
            raise MediaUnavailable(f"{self._url} is not reachable")
        found = self._rooms.get(room)
        if found is None:
            raise MediaRefused(f"no such room {room!r}", 426)
        return found

    async def _control_request(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self._up or self._control is None:
            raise MediaUnavailable(f"{self._url} is not reachable")
        data, _ = await self._plugin(self._control, body)
        return data

    # -- rooms ----------------------------------------------------------------------

    async def create_room(
        self,
        room: str,
        *,
        publishers: int,
        room_id: str | None = None,
        secret: str | None = None,
    ) -> None:
        if room in self._rooms:
            return
        if not self._up:
            raise MediaUnavailable(f"{self._url} is not reachable")
        made = _Room(
            room_id or f"{room}~{secrets.token_hex(4)}", secret or secrets.token_urlsafe(24)
        )
        body: dict[str, Any] = {
            "request": "create",
            "room": made.janus_id,
            "secret": made.secret,
            "publishers": publishers,
            "is_private": True,
            "permanent": False,
            "notify_joining": False,
            "bitrate": ROOM_BITRATE,
            "fir_freq": 10,
            "videocodec": "vp8,h264",
            "audiocodec": "opus",
            "audiolevel_ext": True,
        }
        if self._admin_key:
            body["admin_key"] = self._admin_key
        try:
            await self._control_request(body)
        except MediaRefused as refused:
            if refused.code != ROOM_EXISTS or room_id is None:
                raise
            # Another node (or this one, before its connection was cut) made it.
        if room in self._rooms:  # pragma: no cover - made twice at once: keep the first
            await self._destroy(made)
            return
        self._rooms[room] = made

    async def destroy_room(self, room: str) -> None:
        made = self._rooms.pop(room, None)
        if made is None:
            return
        for key in [key for key in self._handles if key[0] == room]:
            await self._detach(*key)
        await self._destroy(made)

    async def leave_room(self, room: str) -> None:
        made = self._rooms.pop(room, None)
        if made is None:
            return
        for key in [key for key in self._handles if key[0] == room]:
            await self._detach(*key)

    async def remove_room(self, room_id: str, secret: str) -> None:
        if not self._up:
            raise MediaUnavailable(f"{self._url} is not reachable")
        for room, made in list(self._rooms.items()):
            if made.janus_id == room_id:  # made here: its handles go too
                await self.leave_room(room)
        await self._destroy(_Room(room_id, secret))

    async def _destroy(self, room: _Room) -> None:
        with contextlib.suppress(MediaRefused):
            await self._control_request(
                {"request": "destroy", "room": room.janus_id, "secret": room.secret}
            )

    # -- publishers -----------------------------------------------------------------

    async def publish(self, room: str, handle: str, feed: str, offer: Jsep) -> Jsep:
        made = self._room(room)
        if offer.type != "offer":
            raise MediaRefused("a publisher starts with an offer", 434)
        for other, published in list(made.publishers.items()):
            if published == feed:
                made.publishers.pop(other, None)
                made.media.pop(feed, None)
                await self._detach(room, other)
        handle_id = await self._handle(room, handle)
        body = {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": made.janus_id,
            "id": feed,
            "display": feed,
        }
        try:
            _, answer = await self._plugin(handle_id, body, offer)
        except MediaError:
            await self._detach(room, handle)
            raise
        if answer is None:
            await self._detach(room, handle)
            raise MediaRefused("no answer to the offer")
        made.publishers[handle] = feed
        sdp = offer.sdp
        made.media[feed] = PublishedFeed(
            feed, "m=audio" in sdp, "m=video" in sdp, "a=simulcast" in sdp
        )
        return answer

    async def configure(
        self,
        room: str,
        handle: str,
        *,
        audio: bool | None = None,
        video: bool | None = None,
        bitrate: int | None = None,
        offer: Jsep | None = None,
    ) -> Jsep | None:
        made = self._room(room)
        feed = made.publishers.get(handle)
        handle_id = self._handles.get((room, handle))
        if feed is None or handle_id is None:
            raise MediaRefused("not a publisher", 433)
        body: dict[str, Any] = {"request": "configure"}
        if bitrate is not None:
            body["bitrate"] = bitrate
        if audio is not None:
            body["audio"] = audio
        if video is not None:
            body["video"] = video
        _, answer = await self._plugin(handle_id, body, offer)
        if offer is not None:
            sdp = offer.sdp
            made.media[feed] = PublishedFeed(
                feed, "m=audio" in sdp, "m=video" in sdp, "a=simulcast" in sdp
            )
        return answer

    # -- subscribers ----------------------------------------------------------------

    async def subscribe(self, room: str, handle: str, feeds: list[str]) -> SubscriberOffer:
        made = self._room(room)
        streams = [{"feed": feed} for feed in feeds]
        if handle in made.subscribers:
            handle_id = self._handles[(room, handle)]
            data, offer = await self._plugin(
                handle_id, {"request": "subscribe", "streams": streams}
            )
        else:
            handle_id = await self._handle(room, handle)
            body = {
                "request": "join",
                "ptype": "subscriber",
                "room": made.janus_id,
                "streams": streams,
                "use_msid": True,
            }
            try:
                data, offer = await self._plugin(handle_id, body)
            except MediaError:
                await self._detach(room, handle)
                raise
        return self._offered(made, handle, data, offer)

    def _offered(
        self, made: _Room, handle: str, data: dict[str, Any], offer: Jsep | None
    ) -> SubscriberOffer:
        if offer is None:
            raise MediaRefused("no offer for the subscriber")
        offered = _streams(data.get("streams"))
        made.subscribers[handle] = offered
        return SubscriberOffer(offer, offered)

    async def unsubscribe(self, room: str, handle: str, feeds: list[str]) -> SubscriberOffer:
        made = self._room(room)
        handle_id = self._handles.get((room, handle))
        if handle_id is None or handle not in made.subscribers:
            raise MediaRefused("not a subscriber", 433)
        streams = [{"feed": feed} for feed in feeds]
        data, offer = await self._plugin(handle_id, {"request": "unsubscribe", "streams": streams})
        return self._offered(made, handle, data, offer)

    async def answer(self, room: str, handle: str, answer: Jsep) -> None:
        made = self._room(room)
        handle_id = self._handles.get((room, handle))
        if handle_id is None or handle not in made.subscribers:
            raise MediaRefused("not a subscriber", 433)
        if answer.type != "answer":
            raise MediaRefused("a subscriber answers", 434)
        await self._plugin(handle_id, {"request": "start"}, answer)

    async def select_layer(
        self, room: str, handle: str, feed: str, substream: int | None, temporal: int | None
    ) -> None:
        made = self._room(room)
        handle_id = self._handles.get((room, handle))
        if handle_id is None or handle not in made.subscribers:
            raise MediaRefused("not a subscriber", 433)
        changes: list[dict[str, Any]] = []
        for stream in made.subscribers[handle]:
            if stream.feed == feed and stream.kind == "video" and stream.active:
                change: dict[str, Any] = {"mid": stream.mid}
                if substream is not None:
                    change["substream"] = substream
                if temporal is not None:
                    change["temporal"] = temporal
                changes.append(change)
        if changes:
            await self._plugin(handle_id, {"request": "configure", "streams": changes})

    # -- every handle ---------------------------------------------------------------

    async def trickle(self, room: str, handle: str, candidate: dict[str, Any] | None) -> None:
        self._room(room)
        handle_id = self._handles.get((room, handle))
        if handle_id is None:
            raise MediaRefused("no such handle", 458)
        await self._call(
            {
                "janus": "trickle",
                "session_id": self._session_id,
                "handle_id": handle_id,
                "candidate": candidate if candidate is not None else {"completed": True},
            },
            ack=True,
        )

    async def hang_up(self, room: str, handle: str) -> None:
        made = self._room(room)
        feed = made.publishers.pop(handle, None)
        if feed is not None:
            made.media.pop(feed, None)
        made.subscribers.pop(handle, None)
        await self._detach(room, handle)

    async def kick(self, room: str, feed: str, handles: list[str]) -> None:
        made = self._room(room)
        publishing = [
            handle
            for handle, published in made.publishers.items()
            if published == feed and handle in handles
        ]
        if publishing:
            with contextlib.suppress(MediaRefused):
                await self._control_request(
                    {"request": "kick", "room": made.janus_id, "secret": made.secret, "id": feed}
                )
        for handle in {*publishing, *handles}:
            await self.hang_up(room, handle)

    async def feeds(self, room: str) -> list[PublishedFeed]:
        made = self._room(room)
        data = await self._control_request({"request": "listparticipants", "room": made.janus_id})
        # A participant counts as "publisher" for Janus once its media flows; a feed
        # is listed here from its answer on, as the twin does.
        publishing = {
            str(entry.get("id"))
            for entry in data.get("participants") or []
            if isinstance(entry, dict)
        }
        return [made.media[feed] for feed in made.media if feed in publishing]
