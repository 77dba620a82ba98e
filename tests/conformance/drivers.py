"""One interface over both client SDKs, so that each scenario is written once.

A :class:`ClientDriver` joins a room through its own relay line
(:class:`~tests.conformance.network.Line`), chats, pages back through the history,
leaves, and records what its SDK tells as :class:`Event` s, named alike for both:

- ``joined``: the first ``RoomJoined`` / ``join()`` resolved;
- ``member-joined``, ``member-left``: ``UserJoined``, ``UserLeft`` /
  ``participant-joined``, ``participant-left``;
- ``chat``: ``ChatMessage`` / ``chat``;
- ``chat-stored``, ``chat-failed``: what became of our own message: ``client.chat()``
  returned its ``ChatAck`` or raised / ``chat-status`` ``sent`` or ``failed``;
- ``connection-lost``: ``Disconnected(will_retry=True)`` / ``connection-state``
  ``reconnecting``; ``close_code`` is the close code the client saw (1006 for none);
- ``back``: ``Resumed`` or ``Reconnected`` / ``connection-state`` ``open`` after a
  drop; ``how`` is ``resumed`` or ``rejoined``, and ``refused`` the server's reason
  for refusing the resume (None when none was tried);
- ``closed``: ``Disconnected(will_retry=False)`` / ``connection-state`` ``closed``;
  ``name`` is the final close code's name (``replaced``, ``removed``...), ``code``
  the code.

The mapping lives here and in ``page.js``, never in the scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from playwright.async_api import Browser, Page

from hubbub.client import (
    Backoff,
    ChatAck,
    ChatMessage,
    Client,
    Closed,
    Disconnected,
    NotConnected,
    Reconnected,
    RequestFailed,
    Resumed,
    RoomJoined,
    UserJoined,
    UserLeft,
)
from hubbub.client import Event as SdkEvent
from tests.conformance.network import WAIT, Line

PAGE_SCRIPT = (Path(__file__).parent / "page.js").read_text()
PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hubbub conformance</title></head>
<body><script type="module">
{PAGE_SCRIPT}
</script></body></html>
"""

RECONNECT_MIN = 0.1
"""Seconds: the first reconnection delay of both SDKs in the scenarios (their
defaults are for people; these keep the suite quick)."""
RECONNECT_MAX = 0.4

Stored = tuple[int, str, str]
"""A stored chat message as a driver returns it: (seq, user id, message)."""


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def matches(self, kind: str, fields: dict[str, Any]) -> bool:
        return self.kind == kind and all(self.data.get(k) == v for k, v in fields.items())


@dataclass(frozen=True)
class Options:
    """How a scenario wants its client set up; each driver says it in its SDK's terms."""

    token: str | None = None
    ack_timeout: float = 5.0
    """Seconds without a ``chat-ack`` after which a chat message is sent again."""
    long_chat: bool = False
    """Let the SDK send chat longer than the server's default ``max_chat_length``."""


class ClientDriver(Protocol):
    sdk: str
    user: str
    line: Line
    events: list[Event]

    async def join(self, room: str) -> Event:
        """Join ``room`` (through :attr:`line`); the ``joined`` event."""
        ...

    async def chat(self, text: str) -> None:
        """Hand a chat message to the SDK (it returns once the SDK has it); then
        ``chat-stored`` or ``chat-failed`` tells what became of it."""
        ...

    async def older_page(self, limit: int) -> list[Stored]:
        """The page of stored chat before the oldest known, oldest first; [] at the start."""
        ...

    async def leave(self) -> None: ...

    async def state(self) -> str:
        """``open`` (in the room), ``reconnecting`` or ``closed``."""
        ...

    async def participants(self) -> list[str]:
        """The other members, as the SDK has them, sorted."""
        ...

    async def stop(self) -> None:
        """Whatever state it is in, end it (the test is over)."""
        ...

    def of(self, kind: str, **fields: Any) -> list[Event]: ...

    async def expect(self, kind: str, timeout: float = WAIT, **fields: Any) -> Event: ...

    def close_reason(self) -> str | None: ...


class Recording:
    """What both drivers share: the events, and waiting for them."""

    sdk = ""

    def __init__(self, user: str, line: Line, options: Options) -> None:
        self.user = user
        self.line = line
        self.options = options
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def _record(self, kind: str, **data: Any) -> None:
        self.events.append(Event(kind, data))
        self._changed.set()

    def of(self, kind: str, **fields: Any) -> list[Event]:
        return [event for event in self.events if event.matches(kind, fields)]

    async def expect(self, kind: str, timeout: float = WAIT, **fields: Any) -> Event:
        """The first ``kind`` event with these fields, once there is one."""
        try:
            async with asyncio.timeout(timeout):
                while not (found := self.of(kind, **fields)):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"[{self.sdk}] {self.user} never told {kind} {fields}; it told {self.events}"
            ) from None
        return found[0]

    def close_reason(self) -> str | None:
        """The name of the final close code the client stopped on, if it did."""
        closed = self.of("closed")
        return closed[-1]["name"] if closed else None


# -- hubbub.client, in this process ------------------------------------------------------


class PythonDriver(Recording):
    sdk = "python"

    def __init__(self, user: str, line: Line, options: Options) -> None:
        super().__init__(user, line, options)
        self.client: Client | None = None
        self._finished: asyncio.Future[None] | None = None
        self._rejoining = False
        self._oldest: int | None = None
        self._chats: set[asyncio.Task[None]] = set()

    async def join(self, room: str) -> Event:
        backoff = Backoff(
            base=RECONNECT_MIN,
            max_delay=RECONNECT_MAX,
            min_delay=RECONNECT_MIN / 2,
            random=random.Random(1),
        )
        self.client = Client(
            self.line.url,
            room,
            user=self.user,
            token=self.options.token,
            backoff=backoff,
            request_timeout=self.options.ack_timeout,
            events=False,
        )
        self.client.add_listener(self._on_event)
        await self.client.start()
        self._finished = asyncio.ensure_future(self.client.wait_closed())
        return self.of("joined")[0]

    def _on_event(self, event: SdkEvent) -> None:
        match event:
            case RoomJoined() if not self._rejoining and not self.of("joined"):
                self._oldest = event.history[0].seq if event.history else event.last_seq
                if self._oldest is not None and not event.history:
                    self._oldest += 1
                self._record(
                    "joined",
                    user=event.user_id,
                    participants=sorted(p.user_id for p in event.participants),
                    history=[(m.seq, m.user_id, m.message) for m in event.history],
                    last_seq=event.last_seq,
                )
            case RoomJoined():
                self._rejoining = False
            case UserJoined():
                self._record("member-joined", user=event.user_id)
            case UserLeft():
                self._record("member-left", user=event.user_id)
            case ChatMessage():
                self._record("chat", user=event.user_id, message=event.message, seq=event.seq)
            case Disconnected(will_retry=True):
                self._record("connection-lost", close_code=event.code or 1006)
            case Disconnected():
                self._record("closed", name=event.name, code=event.code)
            case Resumed():
                self._record("back", how="resumed", refused=None)
            case Reconnected():
                self._rejoining = True
                self._record("back", how="rejoined", refused=event.resume_refused)
            case _:
                pass

    async def chat(self, text: str) -> None:
        task = asyncio.ensure_future(self._chat(text))
        self._chats.add(task)
        task.add_done_callback(self._chats.discard)
        await asyncio.sleep(0)  # (the client has it once the task has begun)

    async def _chat(self, text: str) -> None:
        assert self.client is not None
        try:
            ack = await self.client.chat(text)
        except RequestFailed as refused:
            self._record("chat-failed", message=text, code=refused.code)
        except (Closed, NotConnected):
            self._record("chat-failed", message=text, code="not-connected")
        else:
            assert isinstance(ack, ChatAck)
            self._record("chat-stored", message=text, seq=ack.seq)

    async def older_page(self, limit: int) -> list[Stored]:
        assert self.client is not None
        if self._oldest is None or self._oldest <= 1:
            return []
        page = await self.client.history(before_seq=self._oldest, limit=limit)
        self._oldest = page[0].seq if page else 1
        return [(m.seq, m.user_id, m.message) for m in page]

    async def leave(self) -> None:
        assert self.client is not None
        await self.client.close()

    async def state(self) -> str:
        assert self.client is not None
        assert self._finished is not None
        await asyncio.sleep(0)  # (wait_closed() hears of the end on its next turn)
        if self._finished.done():
            return "closed"
        return "open" if self.client.connected else "reconnecting"

    async def participants(self) -> list[str]:
        assert self.client is not None
        return sorted(self.client.participants)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self._finished is not None:
            await self._finished
        for task in list(self._chats):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- hubbub.js, in Chromium ------------------------------------------------------------


class BrowserDriver(Recording):
    """hubbub.js in a page of its own, imported from the hub as an app's page would.
    ``page.js`` forwards what the room tells as it tells it; the names are made the
    same here."""

    sdk = "browser"

    def __init__(
        self, user: str, line: Line, options: Options, browser: Browser, page_url: str, hub_url: str
    ) -> None:
        super().__init__(user, line, options)
        self._browser = browser
        self._address = f"{page_url}/?hub={quote(hub_url)}"
        self.page: Page | None = None
        self.page_errors: list[str] = []
        self._reported: dict[int, tuple[str, dict[str, Any]]] = {}
        self._next = 1

    async def join(self, room: str) -> Event:
        page = self.page = await self._browser.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        await page.expose_function("reportEvent", self._on_report)
        await page.goto(self._address)
        await page.wait_for_function("window.ready === true")
        limits: dict[str, Any] = {
            "reconnectMinMs": int(RECONNECT_MIN * 1000),
            "reconnectMaxMs": int(RECONNECT_MAX * 1000),
            "chatAckTimeoutMs": int(self.options.ack_timeout * 1000),
        }
        if self.options.long_chat:
            limits["maxChatLength"] = 10_000_000
        options: dict[str, Any] = {"room": room, "userId": self.user, "limits": limits}
        if self.options.token is not None:
            options["token"] = self.options.token
        joined = await page.evaluate(
            "([url, options]) => driver.join(url, options)",
            [self.line.url.replace("http://", "ws://", 1), options],
        )
        self._record(
            "joined",
            user=joined["userId"],
            participants=sorted(joined["participants"]),
            history=[tuple(m) for m in joined["history"]],
            last_seq=joined["chatSeq"] if joined["storesChat"] else None,
        )
        return self.of("joined")[0]

    def _on_report(self, number: int, type_: str, detail: dict[str, Any]) -> None:
        # (kept in the page's order, whatever order the bindings come in)
        self._reported[number] = (type_, detail)
        while self._next in self._reported:
            self._translate(*self._reported.pop(self._next))
            self._next += 1

    def _translate(self, type_: str, detail: dict[str, Any]) -> None:
        match type_, detail:
            case "participant-joined", {"userId": user}:
                self._record("member-joined", user=user)
            case "participant-left", {"userId": user}:
                self._record("member-left", user=user)
            case "chat", {"userId": user, "message": message, "seq": seq}:
                self._record("chat", user=user, message=message, seq=seq)
            case "chat-status", {"status": "sent", "message": message, "seq": seq}:
                self._record("chat-stored", message=message, seq=seq)
            case "chat-status", {"status": "failed", "message": message, "code": code}:
                self._record("chat-failed", message=message, code=code)
            case "connection-state", {"state": "reconnecting", "closeCode": close_code}:
                self._record("connection-lost", close_code=close_code)
            case "connection-state", {"state": "open", "reason": "resumed"}:
                self._record("back", how="resumed", refused=None)
            case "connection-state", {"state": "open", "reason": "rejoined", "cause": cause}:
                # no-session, server-restart: no resume was tried
                refused = cause if cause in ("unknown-session", "overrun", "refused") else None
                self._record("back", how="rejoined", refused=refused)
            case "connection-state", {"state": "closed", "closeReason": reason}:
                reason = reason or {}
                self._record("closed", name=reason.get("code"), code=reason.get("closeCode"))
            case _:
                pass

    async def chat(self, text: str) -> None:
        assert self.page is not None
        await self.page.evaluate("(text) => driver.chat(text)", text)

    async def older_page(self, limit: int) -> list[Stored]:
        assert self.page is not None
        page = await self.page.evaluate("(limit) => driver.olderPage(limit)", limit)
        return [tuple(m) for m in page]

    async def leave(self) -> None:
        assert self.page is not None
        await self.page.evaluate("driver.leave()")

    async def state(self) -> str:
        assert self.page is not None
        state: str = await self.page.evaluate("driver.state()")
        return state

    async def participants(self) -> list[str]:
        assert self.page is not None
        return sorted(await self.page.evaluate("driver.participants()"))

    async def stop(self) -> None:
        if self.page is not None:
            await self.page.close()
        assert self.page_errors == [], self.page_errors
