"""The seed's protocol on python-socketio: the baseline a Python developer would reach for.

A straightforward rooms-based equivalent of the seed's Node server: the same
events (``join-room``, ``signal``, ``chat`` in; ``user-joined``, ``signal``,
``chat``, ``user-left`` out) with the same fields, using Socket.IO's own rooms.
It runs python-socketio's asyncio server on aiohttp and uvloop, as hubbub does.

    python -m bench.socketio_server --port 8090
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvloop
from aiohttp import web


def create_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    rooms: dict[str, dict[str, str]] = {}  # room -> user id -> sid
    where: dict[str, tuple[str, str]] = {}  # sid -> (room, user id)

    @sio.on("join-room")
    async def join_room(sid: str, data: dict[str, Any]) -> None:
        room, user_id = data["room"], data["userId"]
        where[sid] = (room, user_id)
        rooms.setdefault(room, {})[user_id] = sid
        await sio.enter_room(sid, room)
        await sio.emit("user-joined", {"userId": user_id}, room=room, skip_sid=sid)

    @sio.on("signal")
    async def signal(sid: str, data: dict[str, Any]) -> None:
        room, user_id = where.get(sid, (None, None))
        target = rooms.get(room or "", {}).get(data.get("targetUserId", ""))
        if target is not None:
            await sio.emit("signal", {"signal": data["signal"], "fromUserId": user_id}, to=target)

    @sio.on("chat")
    async def chat(sid: str, data: dict[str, Any]) -> None:
        room, user_id = where.get(sid, (None, None))
        if room is not None:
            await sio.emit(
                "chat", {"message": data["message"], "userId": user_id}, room=room, skip_sid=sid
            )

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        room, user_id = where.pop(sid, (None, None))
        if room is None:
            return
        members = rooms.get(room, {})
        if members.get(user_id or "") == sid:
            del members[user_id or ""]
        if not members:
            rooms.pop(room, None)
        await sio.emit("user-left", {"userId": user_id}, room=room)

    app = web.Application()
    sio.attach(app)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        backlog=4096,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
