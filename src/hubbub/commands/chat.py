"""``hubbub chat``: an interactive chat in a room, in the terminal.

Lines typed are sent as chat messages; what others say, who comes and who goes is
printed as it happens. On a server that stores chat, the room's last messages are
printed on joining, and those missed while the connection was down once it is back
(the client resumes its session, or fetches them after joining afresh); each
message is printed once. ``/history`` pages further back. ``/who`` lists the room,
``/quit`` (or end of input) leaves, ``/help`` lists the commands. Who is away or busy,
who starts typing, and notifications for this user are shown as they come; ``/status
away`` (``busy``, ``online``) sets ours. A line starting with ``/`` that is no command
is not sent (a typo would otherwise reach the whole room): ``//`` sends a line that
starts with ``/``. Messages of types this client does not know (a newer server's
additions) are printed as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import TextIO

from hubbub.client import (
    Broadcast,
    CallIncoming,
    ChatAck,
    ChatGap,
    ChatMessage,
    Client,
    Disconnected,
    Event,
    NotConnected,
    NotificationReceived,
    Participant,
    ParticipantUpdated,
    PresenceChanged,
    Reconnected,
    Resumed,
    RoomJoined,
    ServerError,
    ServerMessage,
    StoredChat,
    TypingChanged,
    UnreadNotifications,
    UserJoined,
    UserLeft,
)
from hubbub.client.connection import TYPING_EXPIRES
from hubbub.client.errors import HubbubClientError
from hubbub.commands.common import add_connection_arguments, make_client, run_command
from hubbub.protocol import messages as protocol

_STATUSES = [protocol.ONLINE, *sorted(protocol.SETTABLE_STATUSES - {protocol.ONLINE})]
STATUSES = ", ".join(_STATUSES[:-1]) + " or " + _STATUSES[-1]
"""The statuses /status takes, as its help says them: online, away or busy."""


COMMANDS = {
    "/help": "list these commands",
    "/who": "who is in the room, and who is typing",
    "/history": "print older messages",
    f"/status {'|'.join(_STATUSES)}": "set your status",
    "/quit": "leave (end of input does too)",
}
"""What ``/help`` prints: each command and what it does."""

HELP = "\n".join(
    [
        "* type a line and press Enter to send it to the room; //text sends /text",
        *(f"* {command:<26} {meaning}" for command, meaning in COMMANDS.items()),
    ]
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "chat",
        help="chat in a room from the terminal",
        description="Join a room and chat: type a line to send it; /history shows older "
        f"messages, /who lists the room, /status {'|'.join(_STATUSES)} "
        "sets yours, /quit leaves, /help lists the commands; //text sends /text.",
    )
    add_connection_arguments(parser)
    parser.set_defaults(command_name="chat", run=lambda args: run_command(args, chat))


HISTORY_PAGE = 20
"""Messages printed by one ``/history``."""


def _stamp(ts: int | None = None) -> str:
    return time.strftime("%H:%M", time.localtime(None if ts is None else ts / 1000))


def render_stored(message: StoredChat) -> str:
    return f"[{_stamp(message.ts)}] {message.user_id}: {message.message}"


def describe(member: Participant) -> str:
    """A member as /who shows it: its id, and its status when not online."""
    status = "" if member.status == protocol.ONLINE else f" ({member.status})"
    return f"{member.user_id}{status}"


def render(event: Event, me: str | None) -> str | None:
    """The line printed for an event, or None for events not shown."""
    match event:
        case ChatMessage(user_id=who, message=text, ts=ts):
            return f"[{_stamp(ts)}] {who}: {text}"
        case UserJoined(user_id=who):
            return f"* {who} joined"
        case UserLeft(user_id=who):
            return f"* {who} left"
        case RoomJoined(room=room, user_id=user, participants=others):
            names = ", ".join(describe(p) for p in others) or "nobody else"
            return f"* in {room} as {user}, with {names}"
        case PresenceChanged(user_id=who, status=protocol.OFFLINE, last_seen=seen):
            return f"* {who} is offline (last seen {_stamp(seen)})"
        case PresenceChanged(user_id=who, status=status) if who != me:
            return f"* {who} is {status}"
        case PresenceChanged(status=status):
            return f"* you are {status}"
        case TypingChanged(user_id=who, active=True):
            return f"* {who} is typing..."
        case NotificationReceived(title=title, body=body):
            return "* notification: " + ": ".join(t for t in (title, body) if t)
        case UnreadNotifications(notifications=unread, more=more) if unread:
            count = f"{len(unread)}{'+' if more else ''}"
            lines = [f"* {count} unread notifications"]
            lines += ["  - " + ": ".join(t for t in (n.title, n.body) if t) for n in unread]
            return "\n".join(lines)
        case CallIncoming(from_user_id=who):
            return f"* {who} is calling"
        case Broadcast(event=kind, data=data):
            return f"* broadcast{' ' + kind if kind else ''}: {data}"
        case Disconnected(reason=reason, will_retry=retry):
            return f"* disconnected ({reason}){'; reconnecting' if retry else ''}"
        case Reconnected():
            return "* reconnected"
        case Resumed(missed=missed):
            return f"* reconnected ({missed} missed messages follow)" if missed else "* reconnected"
        case ParticipantUpdated(user_id=who, connection=protocol.RECONNECTING):
            return f"* {who} lost the connection, and may come back"
        case ParticipantUpdated(user_id=who, connection=protocol.CONNECTED):
            return f"* {who} is back"
        case ChatGap(after_seq=after, before_seq=before):
            return f"* messages {after + 1} to {before - 1} could not be fetched (/history)"
        case ServerError(code=code, message=message):
            return f"! {code}: {message}"
        case ServerMessage(type=kind, data=data):
            return f"* {kind}: {data}"
    return None


class _Seen:
    """The sequence numbers printed so far: the oldest (where ``/history`` goes on)
    and the newest (what a rejoin need not print again)."""

    def __init__(self) -> None:
        self.oldest: int | None = None
        self.newest: int | None = None

    def add(self, seq: int | None) -> None:
        if seq is None:
            return
        self.oldest = seq if self.oldest is None else min(self.oldest, seq)
        self.newest = seq if self.newest is None else max(self.newest, seq)


async def chat(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    seen = _Seen()
    async with make_client(args) as client:
        reader = asyncio.ensure_future(_print_events(client, seen))
        try:
            await _read_lines(client, stdin or sys.stdin, seen)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return 0


async def _print_events(client: Client, seen: _Seen) -> None:
    typing: dict[str, float] = {}  # who was last shown typing, and when it renewed
    async for event in client:
        if isinstance(event, ChatAck):
            seen.add(event.seq)
            continue
        if isinstance(event, ChatMessage) and _printed(event.seq, seen):
            continue
        if isinstance(event, TypingChanged):
            if not event.active:
                typing.pop(event.user_id, None)
                continue
            last, typing[event.user_id] = typing.get(event.user_id), time.monotonic()
            if last is not None and typing[event.user_id] - last < TYPING_EXPIRES:
                continue  # a renewal of typing already shown is not news
        line = render(event, client.user_id)
        if line is not None:
            print(line, flush=True)
        if isinstance(event, RoomJoined):
            _print_history(event, seen)
        elif isinstance(event, ChatMessage):
            seen.add(event.seq)


def _printed(seq: int | None, seen: _Seen) -> bool:
    return seq is not None and seen.newest is not None and seq <= seen.newest


def _print_history(joined: RoomJoined, seen: _Seen) -> None:
    """The stored messages in ``room-joined`` not printed yet (after a rejoin the
    client follows it with those missed, as chat messages)."""
    for message in joined.history:
        if not _printed(message.seq, seen):
            print(render_stored(message), flush=True)
            seen.add(message.seq)


async def _read_lines(client: Client, stdin: TextIO, seen: _Seen) -> None:
    loop = asyncio.get_running_loop()
    sending: set[asyncio.Task[None]] = set()
    while True:
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            return
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() == "/quit":
            if sending:  # what was typed is stored before we go
                await asyncio.wait(sending, timeout=client.request_timeout)
            return
        if text.strip() == "/history":
            await _print_older(client, seen)
            continue
        if text.strip() == "/who":
            members = sorted(client.participants.values(), key=lambda p: p.user_id)
            others = ", ".join(describe(p) for p in members) or "nobody else"
            typing = ", ".join(sorted(client.typing_users))
            print(f"* in {client.room} as {client.user_id}, with {others}", flush=True)
            if typing:
                print(f"* typing: {typing}", flush=True)
            continue
        if text.strip() == "/status" or text.strip().startswith("/status "):
            await _set_status(client, text.strip().removeprefix("/status").strip())
            continue
        if text.strip() == "/help":
            print(HELP, flush=True)
            continue
        if text.startswith("//"):
            text = text[1:]
        elif text.startswith("/"):
            command = text.split()[0]
            print(f"! unknown command {command} (not sent); /help lists them", flush=True)
            continue
        # stored-chat servers answer with chat-ack: wait for it in the background
        task = asyncio.ensure_future(_send(client, text))
        sending.add(task)
        task.add_done_callback(sending.discard)


async def _set_status(client: Client, status: str) -> None:
    try:
        await client.set_status(status)
    except ValueError:
        print(f"! /status takes {STATUSES}", flush=True)
    except HubbubClientError as exc:
        print(f"! the status was not set: {exc}", flush=True)


async def _send(client: Client, text: str) -> None:
    try:
        await client.chat(text)
    except NotConnected:
        print("! not connected; the message was not sent", flush=True)
    except HubbubClientError as exc:
        print(f"! the message was not sent: {exc}", flush=True)


async def _print_older(client: Client, seen: _Seen) -> None:
    if not client.stores_chat:
        print("! this server keeps no history", flush=True)
        return
    if seen.oldest == 1:
        print("* no older messages", flush=True)
        return
    try:
        older = await client.history(before_seq=seen.oldest, limit=HISTORY_PAGE)
    except HubbubClientError as exc:
        print(f"! {exc}", flush=True)
        return
    if not older:
        print("* no older messages", flush=True)
    for message in older:
        print(render_stored(message), flush=True)
        seen.add(message.seq)
