"""Turning frames into messages and messages into bytes.

``decode`` is the only way network input becomes a message: it raises nothing
but :class:`ProtocolError`, whatever the input (a property-based test holds it to
that). Encoding is done once per outgoing message; a broadcast's bytes are shared
by every recipient.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.protocol.errors import ErrorCode, ProtocolError
from hubbub.protocol.messages import (
    INCOMING_TYPES,
    ChatRelay,
    Envelope,
    IncomingMessage,
    Outgoing,
    TypeOnly,
)

_decoder: msgspec.json.Decoder[IncomingMessage] = msgspec.json.Decoder(IncomingMessage)
_envelope_decoder = msgspec.json.Decoder(Envelope)
_type_only_decoder = msgspec.json.Decoder(TypeOnly)
_encoder = msgspec.json.Encoder()
_chat_relay_decoder = msgspec.json.Decoder(ChatRelay)


def encode(message: Outgoing) -> bytes:
    """The JSON bytes of an outgoing message."""
    return _encoder.encode(message)


def decode_chat_relay(payload: bytes) -> ChatRelay:
    """A ``chat`` message as this server encoded it (from another node of a cluster);
    raises ``ValueError`` if it is not one."""
    try:
        return _chat_relay_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def decode(text: str | bytes, *, max_depth: int) -> IncomingMessage:
    """Parse one text frame into a message.

    Raises :class:`ProtocolError` with ``bad-json``, ``too-deep``, ``unknown-type``
    or ``bad-message``; never anything else.
    """
    # Counting brackets is a fast upper bound on nesting depth; only a frame with
    # many brackets (inside strings, say) pays for the exact walk.
    if isinstance(text, str):
        brackets = text.count("{") + text.count("[")
    else:
        brackets = text.count(b"{") + text.count(b"[")
    if brackets > max_depth:
        _check_depth(text, max_depth)
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise _explain_invalid(text, exc) from None
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON") from None
    except RecursionError:  # pragma: no cover - _check_depth catches it first
        raise _too_deep(max_depth) from None


def check_depth(text: str | bytes, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` (``too-deep``) before a decoder
    of another protocol's frames walks it; a frame with few brackets costs a count."""
    if isinstance(text, str):
        brackets = text.count("{") + text.count("[")
    else:
        brackets = text.count(b"{") + text.count(b"[")
    if brackets > max_depth:
        _check_depth(text, max_depth)


def _too_deep(max_depth: int) -> ProtocolError:
    return ProtocolError(ErrorCode.TOO_DEEP, f"JSON nested deeper than {max_depth} levels")


def _check_depth(text: str | bytes, max_depth: int) -> None:
    try:
        value = msgspec.json.decode(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON") from None
    if _depth(value) > max_depth:
        raise _too_deep(max_depth)


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON: a scalar is 0, ``[]`` is 1, ``[[]]`` is 2."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def _explain_invalid(text: str | bytes, exc: msgspec.ValidationError) -> ProtocolError:
    """Tell an unknown ``type`` apart from a known one with bad fields."""
    try:
        envelope = _envelope_decoder.decode(text)
    except msgspec.ValidationError:
        try:
            # A ref that is not one (out of bounds, a list...) is not echoed.
            envelope = Envelope(type=_type_only_decoder.decode(text).type)
        except msgspec.ValidationError:
            return ProtocolError(ErrorCode.BAD_MESSAGE, "a message is a JSON object with a 'type'")
        except msgspec.DecodeError:
            # The decodes before stopped at the ref; past it, not JSON.
            return ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON")
    except msgspec.DecodeError:
        # The first decode stopped at the field it refused; past it, not JSON.
        return ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON")
    if envelope.type is None:
        return ProtocolError(ErrorCode.BAD_MESSAGE, "the message has no 'type'", ref=envelope.ref)
    if envelope.type not in INCOMING_TYPES:
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {envelope.type[:64]!r}",
            ref=envelope.ref,
        )
    # msgspec's own text names the field and what was wrong with it ("Expected
    # `str`, got `int` - at `$.room`"); it quotes no input, so it is safe to show.
    return ProtocolError(ErrorCode.BAD_MESSAGE, str(exc), ref=envelope.ref)
