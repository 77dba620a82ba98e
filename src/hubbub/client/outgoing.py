"""What the client sends, built from the protocol's own definitions.

A message's ``type`` and its fields' names on the wire come from the struct that
describes it in :mod:`hubbub.protocol.messages` (the one the server decodes it
with), so the client cannot drift from the server: ``message(Chat, message="hi",
client_id="x")`` is ``{"type": "chat", "message": "hi", "clientId": "x"}``. Fields
left at None are left out, as a client of the classic protocol would send them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

from hubbub.protocol.messages import Incoming


def message(kind: type[Incoming], **fields: Any) -> dict[str, Any]:
    """The message ``kind`` with ``fields`` (by their Python names), as JSON-ready
    values. A field ``kind`` does not have is a bug of ours: KeyError."""
    tag, names = _wire_names(kind)
    out: dict[str, Any] = {"type": tag}
    for name, value in fields.items():
        if value is not None:
            out[names[name]] = value
    return out


def type_of(kind: type[msgspec.Struct]) -> str:
    """The ``type`` a protocol message is sent with."""
    return str(kind.__struct_config__.tag)


def encode(frame: Mapping[str, Any]) -> str:
    """One message as the text of a WebSocket frame."""
    return msgspec.json.encode(frame).decode()


@cache
def _wire_names(kind: type[Incoming]) -> tuple[str, dict[str, str]]:
    fields = msgspec.structs.fields(kind)
    return type_of(kind), {field.name: field.encode_name for field in fields}
