"""``hubbub chat``: an interactive chat in a room, in the terminal.

Lines typed are sent as chat messages; what others say, who comes and who goes is
printed as it happens. ``/who`` lists the room, ``/quit`` (or end of input) leaves.
Messages of types this client does not know (a newer server's additions) are
printed as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import TextIO

from hubbub.client import (
    ChatMessage,
    Client,
    Disconnected,
    Event,
    NotConnected,
    Reconnected,
    RoomJoined,
    ServerError,
    ServerMessage,
    UserJoined,
    UserLeft,
)
from hubbub.commands.common import add_connection_arguments, make_client, run_command


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "chat",
        help="chat in a room from the terminal",
        description="Join a room and chat: type a line to send it; /who lists the room, "
        "/quit leaves.",
    )
    add_connection_arguments(parser)
    parser.set_defaults(command_name="chat", run=lambda args: run_command(args, chat))


def _stamp() -> str:
    return time.strftime("%H:%M")


def render(event: Event, me: str | None) -> str | None:
    """The line printed for an event, or None for events not shown."""
    match event:
        case ChatMessage(user_id=who, message=text):
            return f"[{_stamp()}] {who}: {text}"
        case UserJoined(user_id=who):
            return f"* {who} joined"
        case UserLeft(user_id=who):
            return f"* {who} left"
        case RoomJoined(room=room, user_id=user, participants=others):
            names = ", ".join(p.user_id for p in others) or "nobody else"
            return f"* in {room} as {user}, with {names}"
        case Disconnected(reason=reason, will_retry=retry):
            return f"* disconnected ({reason}){'; reconnecting' if retry else ''}"
        case Reconnected():
            return "* reconnected"
        case ServerError(code=code, message=message):
            return f"! {code}: {message}"
        case ServerMessage(type=kind, data=data):
            return f"* {kind}: {data}"
    return None


async def chat(args: argparse.Namespace, *, stdin: TextIO | None = None) -> int:
    async with make_client(args) as client:
        reader = asyncio.ensure_future(_print_events(client))
        try:
            await _read_lines(client, stdin or sys.stdin)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return 0


async def _print_events(client: Client) -> None:
    async for event in client:
        line = render(event, client.user_id)
        if line is not None:
            print(line, flush=True)


async def _read_lines(client: Client, stdin: TextIO) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            return
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() == "/quit":
            return
        if text.strip() == "/who":
            others = ", ".join(sorted(client.participants)) or "nobody else"
            print(f"* in {client.room} as {client.user_id}, with {others}", flush=True)
            continue
        try:
            await client.chat(text)
        except NotConnected:
            print("! not connected; the message was not sent", flush=True)
