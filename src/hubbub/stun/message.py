"""STUN binding (RFC 8489), sans-I/O: what a server answers to a datagram, and the
request a client sends and the answer it reads.

A server answers only what it must, and never more than it was sent: a response is
at most as long as its request plus the mapped address (the XOR-MAPPED-ADDRESS
attribute), so that nobody can use it to send a third party more bytes than they
sent themselves (amplification). Anything that is not a well-formed STUN request
(RFC 8489 section 6.3) gets no answer at all.

::

    answer = answer_datagram(data, ("198.51.100.7", 40000))   # bytes or None
"""

from __future__ import annotations

import binascii
import ipaddress
import os
import struct
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
HEADER_LENGTH = 20
FINGERPRINT_XOR = 0x5354554E
"""RFC 8489 section 14.7: the CRC-32 of the message is XOR-ed with this."""

BINDING = 0x001

CLASS_REQUEST = 0x000
CLASS_INDICATION = 0x010
CLASS_SUCCESS = 0x100
CLASS_ERROR = 0x110
_CLASS_MASK = 0x110

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_UNKNOWN_ATTRIBUTES = 0x000A
ATTR_REALM = 0x0014
ATTR_NONCE = 0x0015
ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C
ATTR_PASSWORD_ALGORITHM = 0x001D
ATTR_USERHASH = 0x001E
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_PRIORITY = 0x0024
ATTR_USE_CANDIDATE = 0x0025
ATTR_FINGERPRINT = 0x8028

UNDERSTOOD = frozenset(
    {
        ATTR_MAPPED_ADDRESS,
        ATTR_USERNAME,
        ATTR_MESSAGE_INTEGRITY,
        ATTR_ERROR_CODE,
        ATTR_UNKNOWN_ATTRIBUTES,
        ATTR_REALM,
        ATTR_NONCE,
        ATTR_MESSAGE_INTEGRITY_SHA256,
        ATTR_PASSWORD_ALGORITHM,
        ATTR_USERHASH,
        ATTR_XOR_MAPPED_ADDRESS,
        ATTR_PRIORITY,
        ATTR_USE_CANDIDATE,
    }
)
"""Comprehension-required attributes (below 0x8000) a binding request may carry that
this server takes without complaint: it authenticates nobody, so credentials are
read past, as are ICE's own attributes. Any other one is answered 420."""

MAX_REQUEST = 548
"""Bytes: the longest datagram read as a request (RFC 8489 section 6.1: a STUN
message over UDP should fit 576 bytes of IPv4 packet). Longer ones are dropped."""

ERROR_BAD_REQUEST = 400
ERROR_UNKNOWN_ATTRIBUTE = 420

Address = tuple[str, int]


def _crc32(data: bytes) -> int:
    return (binascii.crc32(data) & 0xFFFFFFFF) ^ FINGERPRINT_XOR


def _attribute(kind: int, value: bytes) -> bytes:
    padding = -len(value) % 4
    return struct.pack("!HH", kind, len(value)) + value + bytes(padding)


def xor_address(address: Address, transaction_id: bytes) -> bytes:
    """The value of an XOR-MAPPED-ADDRESS attribute (RFC 8489 section 14.2)."""
    host, port = address
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    xport = port ^ (MAGIC_COOKIE >> 16)
    if isinstance(ip, ipaddress.IPv4Address):
        xaddr = int(ip) ^ MAGIC_COOKIE
        return struct.pack("!BBHI", 0, 1, xport, xaddr)
    key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
    xored = bytes(a ^ b for a, b in zip(ip.packed, key, strict=True))
    return struct.pack("!BBH", 0, 2, xport) + xored


def read_xor_address(value: bytes, transaction_id: bytes) -> Address | None:
    """The address in an XOR-MAPPED-ADDRESS value, or None when it is malformed."""
    if len(value) < 8:
        return None
    _, family, xport = struct.unpack("!BBH", value[:4])
    port = xport ^ (MAGIC_COOKIE >> 16)
    if family == 1 and len(value) == 8:
        return str(ipaddress.IPv4Address(struct.unpack("!I", value[4:8])[0] ^ MAGIC_COOKIE)), port
    if family == 2 and len(value) == 20:
        key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
        packed = bytes(a ^ b for a, b in zip(value[4:20], key, strict=True))
        return str(ipaddress.IPv6Address(packed)), port
    return None


def encode(
    message_type: int, transaction_id: bytes, attributes: list[bytes], *, fingerprint: bool
) -> bytes:
    """A STUN message with these attributes (each already encoded), and FINGERPRINT
    last when asked."""
    body = b"".join(attributes)
    length = len(body) + (8 if fingerprint else 0)
    header = struct.pack("!HHI", message_type, length, MAGIC_COOKIE) + transaction_id
    message = header + body
    if fingerprint:
        message += _attribute(ATTR_FINGERPRINT, struct.pack("!I", _crc32(message)))
    return message


@dataclass(frozen=True)
class Message:
    """A parsed STUN message: its type, transaction and attributes in order."""

    method: int
    klass: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...]
    fingerprinted: bool


def parse(data: bytes) -> Message | None:
    """The STUN message in ``data``, or None when it is not one (RFC 8489 section
    6.3: the first two bits zero, the magic cookie, a length that is a multiple of
    4 and matches the datagram, well-formed attributes, and a FINGERPRINT, if any,
    that is last and right)."""
    if len(data) < HEADER_LENGTH or len(data) > MAX_REQUEST or data[0] & 0xC0:
        return None
    message_type, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC_COOKIE or length % 4 or HEADER_LENGTH + length != len(data):
        return None
    transaction_id = data[8:20]
    attributes = []
    fingerprinted = False
    offset = HEADER_LENGTH
    while offset < len(data):
        if fingerprinted or offset + 4 > len(data):
            return None  # FINGERPRINT must be last; a header must be whole
        kind, size = struct.unpack("!HH", data[offset : offset + 4])
        end = offset + 4 + size
        if end > len(data):
            return None
        value = data[offset + 4 : end]
        if kind == ATTR_FINGERPRINT:
            if size != 4 or struct.unpack("!I", value)[0] != _crc32(data[:offset]):
                return None
            fingerprinted = True
        else:
            attributes.append((kind, value))
        offset = end + (-size % 4)
    if offset != len(data):
        return None
    method = (
        (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | ((message_type & 0x3E00) >> 2)
    )
    return Message(
        method, message_type & _CLASS_MASK, transaction_id, tuple(attributes), fingerprinted
    )


def _message_type(method: int, klass: int) -> int:
    return (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | klass


def answer_datagram(data: bytes, source: Address) -> bytes | None:
    """What a STUN server sends back to ``source`` for ``data``, or None.

    A binding request gets its success response, with ``source`` as the
    XOR-MAPPED-ADDRESS (and FINGERPRINT when the request had one); one with an
    attribute it must understand and does not gets 420 (Unknown Attribute); a
    request of another method gets 400. Indications, responses and anything that is
    not STUN get nothing, as does a request whose answer would be longer than the
    request plus the mapped address.
    """
    message = parse(data)
    if message is None or message.klass != CLASS_REQUEST:
        return None
    mapped = _attribute(ATTR_XOR_MAPPED_ADDRESS, xor_address(source, message.transaction_id))
    if message.method != BINDING:
        answer = _error(message, ERROR_BAD_REQUEST)
    else:
        unknown = [
            kind for kind, _ in message.attributes if kind < 0x8000 and kind not in UNDERSTOOD
        ]
        if unknown:
            answer = _error(message, ERROR_UNKNOWN_ATTRIBUTE, unknown)
        else:
            answer = encode(
                _message_type(BINDING, CLASS_SUCCESS),
                message.transaction_id,
                [mapped],
                fingerprint=message.fingerprinted,
            )
    if len(answer) > len(data) + len(mapped):
        return None
    return answer


def _error(message: Message, code: int, unknown: list[int] | None = None) -> bytes:
    # No reason phrase: it would make the answer longer than the question.
    attributes = [_attribute(ATTR_ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100))]
    if unknown:
        attributes.append(
            _attribute(ATTR_UNKNOWN_ATTRIBUTES, struct.pack(f"!{len(unknown)}H", *unknown))
        )
    return encode(
        _message_type(message.method, CLASS_ERROR),
        message.transaction_id,
        attributes,
        fingerprint=message.fingerprinted,
    )


def binding_request(transaction_id: bytes | None = None) -> tuple[bytes, bytes]:
    """A binding request with FINGERPRINT, and its transaction id."""
    transaction_id = transaction_id or os.urandom(12)
    request = encode(_message_type(BINDING, CLASS_REQUEST), transaction_id, [], fingerprint=True)
    return request, transaction_id


def mapped_address(response: bytes, transaction_id: bytes) -> Address | None:
    """The address a binding success response for ``transaction_id`` reports (its
    XOR-MAPPED-ADDRESS, else its MAPPED-ADDRESS), or None for anything else."""
    message = parse(response)
    if (
        message is None
        or message.transaction_id != transaction_id
        or message.method != BINDING
        or message.klass != CLASS_SUCCESS
    ):
        return None
    values = dict(message.attributes)
    if ATTR_XOR_MAPPED_ADDRESS in values:
        return read_xor_address(values[ATTR_XOR_MAPPED_ADDRESS], transaction_id)
    plain = values.get(ATTR_MAPPED_ADDRESS)
    if plain is not None and len(plain) == 8:
        _, family, port = struct.unpack("!BBH", plain[:4])
        if family == 1:
            return str(ipaddress.IPv4Address(plain[4:8])), port
    return None
