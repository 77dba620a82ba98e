"""Webhooks: events POSTed to an application's backend, signed, retried, never waited for.

The hub tells its observer what happened (a room started, a participant joined, a
chat message, a call changed state). :class:`WebhookQueue` is that observer: it
turns each event the operator asked for into a small record and appends it to one
bounded queue per receiver URL, and returns. When a queue is full the event is
dropped and counted (``hubbub_webhook_dropped_total``): a backend that is down or
slow costs events, never chat latency or memory.

One :class:`WebhookSender` task per URL posts the events in order, one at a time,
each signed with HMAC-SHA256 over ``timestamp + "." + body`` in the
``Hubbub-Signature`` header. A failed attempt (an error, a timeout, a status other
than 2xx) is retried after ``webhook_backoff`` seconds, doubling each time up to
``webhook_backoff_max``, ``webhook_attempts`` attempts in all. ``docs/operations.md``
has the event list, the body, and a verification snippet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from hubbub import __version__, randomness
from hubbub.core.events import CallEvent
from hubbub.settings import WEBHOOK_EVENTS, ServerSettings

if TYPE_CHECKING:
    from hubbub.core.session import Session
    from hubbub.server.metrics import Exposition

log = logging.getLogger("hubbub.webhooks")

SIGNATURE_HEADER = "Hubbub-Signature"

ROOM_STARTED = "room.started"
ROOM_FINISHED = "room.finished"
PARTICIPANT_JOINED = "participant.joined"
PARTICIPANT_LEFT = "participant.left"
CHAT_MESSAGE = "chat.message"

EVENTS = WEBHOOK_EVENTS


SHUTDOWN_GRACE = 2.0
"""Seconds the senders get at shutdown to deliver what is queued."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    event: str
    created_at: int
    """Unix milliseconds."""
    data: dict[str, Any]


class _Body(msgspec.Struct, rename="camel"):
    id: str
    event: str
    created_at: int
    data: dict[str, Any]


_encoder = msgspec.json.Encoder()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Hubbub-Signature`` header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookQueue:
    """The hub's observer: each wanted event, queued for every receiver, at once."""

    def __init__(
        self,
        urls: Iterable[str],
        events: Iterable[str],
        max_queued: int,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.wanted = frozenset(events)
        self.queues: dict[str, deque[WebhookEvent]] = {url: deque() for url in urls}
        self._max_queued = max_queued
        self._wall_clock = wall_clock
        self._wake: dict[str, Callable[[], None]] = {}
        self.emitted: dict[str, int] = dict.fromkeys(EVENTS, 0)
        self.dropped = 0
        """Events not queued for a receiver whose queue was full."""

    def on_queued(self, url: str, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever an event is queued for ``url``."""
        self._wake[url] = wake

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if event not in self.wanted:
            return
        self.emitted[event] += 1
        record = WebhookEvent(
            "evt_" + randomness.token_urlsafe(12), event, int(self._wall_clock() * 1000), data
        )
        for url, queue in self.queues.items():
            if len(queue) >= self._max_queued:
                self.dropped += 1
                continue
            queue.append(record)
            wake = self._wake.get(url)
            if wake is not None:
                wake()

    def wants(self, event: str) -> bool:
        return event in self.wanted

    # -- the hub's observer -----------------------------------------------------

    def room_started(self, room: str) -> None:
        if ROOM_STARTED in self.wanted:
            self.emit(ROOM_STARTED, {"room": room})

    def room_finished(self, room: str) -> None:
        if ROOM_FINISHED in self.wanted:
            self.emit(ROOM_FINISHED, {"room": room})

    def participant_joined(self, room: str, session: Session) -> None:
        if PARTICIPANT_JOINED in self.wanted:
            self.emit(PARTICIPANT_JOINED, _participant(room, session, session.user_id))

    def participant_left(self, room: str, session: Session, user_id: str) -> None:
        if PARTICIPANT_LEFT in self.wanted:
            self.emit(PARTICIPANT_LEFT, _participant(room, session, user_id))

    def chat_message(self, room: str, user_id: str, message: dict[str, Any]) -> None:
        if CHAT_MESSAGE in self.wanted:
            self.emit(CHAT_MESSAGE, {"room": room, "userId": user_id, **message})

    def call_changed(self, event: CallEvent) -> None:
        name = "call." + event.kind
        if name in self.wanted:
            data = {"callId": event.call_id, "caller": event.caller, "callee": event.callee}
            if event.room is not None:
                data["room"] = event.room
            if event.reason is not None:
                data["reason"] = event.reason
            self.emit(name, data)

    def add_metrics(self, out: Exposition) -> None:
        out.labelled(
            "hubbub_webhook_events_total",
            "counter",
            "Events queued for the webhook receivers, by event.",
            "event",
            self.emitted,
        )
        out.single(
            "hubbub_webhook_dropped_total",
            "counter",
            "Events dropped because a receiver's queue was full (webhook_queue_size).",
            self.dropped,
        )
        out.single(
            "hubbub_webhook_queued",
            "gauge",
            "Events waiting to be delivered, all receivers together.",
            sum(len(queue) for queue in self.queues.values()),
        )


def _participant(room: str, session: Session, user_id: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"room": room, "userId": user_id, "sessionId": session.session_id}
    identity = session.identity
    if identity is not None and identity.name is not None:
        data["name"] = identity.name
    if session.hidden:
        data["hidden"] = True
    return data


class WebhookSender:
    """Delivers one receiver's queue, in order, with retries; one task."""

    def __init__(
        self,
        url: str,
        queue: deque[WebhookEvent],
        secret: str,
        *,
        timeout: float,
        attempts: int,
        backoff: float,
        backoff_max: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._queue = queue
        self._secret = secret
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._wall_clock = wall_clock
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        """Events given up on after every attempt failed."""
        self.failed_attempts = 0

    def wake(self) -> None:
        self._idle.clear()
        self._wakeup.set()

    def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": f"hubbub/{__version__}"},
        )
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self._queue:
            self.wake()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Deliver what is queued, for ``grace`` seconds at most, then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            log.warning("event=webhook-undelivered url=%s events=%d", self.url, len(self._queue))
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event = queue[0]
            if await self._deliver(event):
                self.delivered += 1
            else:
                self.failed += 1
                log.error(
                    "event=webhook-failed url=%s id=%s webhook=%s attempts=%d",
                    self.url,
                    event.id,
                    event.event,
                    self._attempts,
                )
            queue.popleft()

    async def _deliver(self, event: WebhookEvent) -> bool:
        body = _encoder.encode(_Body(event.id, event.event, event.created_at, event.data))
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            problem = await self._post(event, body)
            if problem is None:
                return True
            self.failed_attempts += 1
            log.warning(
                "event=webhook-attempt-failed url=%s id=%s attempt=%d problem=%r",
                self.url,
                event.id,
                attempt,
                problem,
            )
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
        return False

    async def _post(self, event: WebhookEvent, body: bytes) -> str | None:
        """One attempt; what went wrong, or None."""
        assert self._http is not None  # started before it runs
        timestamp = int(self._wall_clock())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "Hubbub-Event": event.event,
            "Hubbub-Event-Id": event.id,
        }
        try:
            async with self._http.post(self.url, data=body, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return type(exc).__name__


class Webhooks:
    """The queue and one sender per receiver, as the server runs them."""

    def __init__(self, settings: ServerSettings) -> None:
        urls = settings.webhook_url
        self.queue = WebhookQueue(urls, settings.webhook_event, settings.webhook_queue_size)
        self.senders = [
            WebhookSender(
                url,
                self.queue.queues[url],
                settings.webhook_secret or "",
                timeout=settings.webhook_timeout,
                attempts=settings.webhook_attempts,
                backoff=settings.webhook_backoff,
                backoff_max=settings.webhook_backoff_max,
            )
            for url in urls
        ]

    async def start(self) -> None:
        for sender in self.senders:
            self.queue.on_queued(sender.url, sender.wake)
            sender.start()

    async def stop(self) -> None:
        await asyncio.gather(*(sender.stop() for sender in self.senders))

    def add_metrics(self, out: Exposition) -> None:
        self.queue.add_metrics(out)
        out.family(
            "hubbub_webhook_deliveries_total",
            "counter",
            "Events delivered (2xx) or given up on after webhook_attempts attempts.",
        )
        for result in ("delivered", "failed"):
            out.sample(
                "hubbub_webhook_deliveries_total",
                sum(getattr(sender, result) for sender in self.senders),
                {"result": result},
            )
        out.single(
            "hubbub_webhook_failed_attempts_total",
            "counter",
            "Delivery attempts that failed (and were retried, or given up on).",
            sum(sender.failed_attempts for sender in self.senders),
        )
