"""STUN binding (RFC 8489) without a socket: what the server answers, and never more
bytes than it was sent plus the address it reports."""

from __future__ import annotations

import struct

import pytest
from aioice import stun as aioice_stun
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.auth.turn import IceServerConfig, stun_host
from hubbub.server.stun import BURST_PER_ADDRESS, RATE_PER_ADDRESS, StunProtocol
from hubbub.stun.message import (
    ATTR_FINGERPRINT,
    ATTR_XOR_MAPPED_ADDRESS,
    MAGIC_COOKIE,
    answer_datagram,
    binding_request,
    encode,
    mapped_address,
    parse,
)

SOURCE = ("198.51.100.7", 40000)
SOURCE6 = ("2001:db8::7", 40000)
MAPPED_LENGTH = {4: 12, 6: 24}
"""Bytes of an XOR-MAPPED-ADDRESS attribute, by IP version."""


def _aioice_request(**attributes: object) -> bytes:
    request = aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST)
    request.attributes.update(attributes)
    return bytes(request)


@pytest.mark.parametrize("source", [SOURCE, SOURCE6])
def test_a_binding_request_is_answered_with_the_address_it_came_from(
    source: tuple[str, int],
) -> None:
    request, transaction_id = binding_request()
    answer = answer_datagram(request, source)
    assert answer is not None
    assert mapped_address(answer, transaction_id) == source
    # another implementation reads it the same, FINGERPRINT checked
    message = aioice_stun.parse_message(answer)
    assert message.message_class == aioice_stun.Class.RESPONSE
    assert message.transaction_id == transaction_id
    assert message.attributes["XOR-MAPPED-ADDRESS"] == source
    assert "FINGERPRINT" in message.attributes


def test_a_request_from_aioice_as_browsers_send_it() -> None:
    request = _aioice_request()  # no FINGERPRINT: none comes back either
    answer = answer_datagram(request, SOURCE)
    assert answer is not None
    message = aioice_stun.parse_message(answer)
    assert message.attributes["XOR-MAPPED-ADDRESS"] == SOURCE
    assert "FINGERPRINT" not in message.attributes
    assert len(answer) <= len(request) + MAPPED_LENGTH[4]


def test_credentials_and_ice_attributes_are_read_past() -> None:
    request = _aioice_request(USERNAME="a:b", PRIORITY=1, **{"ICE-CONTROLLING": 5})
    assert mapped_address(answer_datagram(request, SOURCE) or b"", request[8:20]) == SOURCE


def test_an_unknown_required_attribute_is_answered_420_naming_it() -> None:
    transaction_id = bytes(range(12))
    request = encode(0x0001, transaction_id, [struct.pack("!HH4s", 0x0033, 4, b"what")],
                     fingerprint=True)  # fmt: skip
    answer = answer_datagram(request, SOURCE)
    assert answer is not None
    message = aioice_stun.parse_message(answer)
    assert message.message_class == aioice_stun.Class.ERROR
    assert message.attributes["ERROR-CODE"][0] == 420
    parsed = parse(answer)
    assert parsed is not None
    assert (0x000A, struct.pack("!H", 0x0033)) in parsed.attributes
    # an unknown attribute it may ignore (0x8000 and up) is ignored
    optional = encode(0x0001, transaction_id, [struct.pack("!HH4s", 0x8033, 4, b"what")],
                      fingerprint=True)  # fmt: skip
    assert mapped_address(answer_datagram(optional, SOURCE) or b"", transaction_id) == SOURCE


def test_other_methods_get_400_and_non_requests_nothing() -> None:
    allocate = aioice_stun.Message(aioice_stun.Method.ALLOCATE, aioice_stun.Class.REQUEST)
    answer = answer_datagram(bytes(allocate), SOURCE)
    assert answer is not None
    assert aioice_stun.parse_message(answer).attributes["ERROR-CODE"][0] == 400
    for klass in (aioice_stun.Class.INDICATION, aioice_stun.Class.RESPONSE):
        message = aioice_stun.Message(aioice_stun.Method.BINDING, klass)
        assert answer_datagram(bytes(message), SOURCE) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m[:19],  # shorter than a header
        lambda m: b"\xc0" + m[1:],  # not STUN's first bits
        lambda m: m[:4] + b"\x21\x12\xa4\x43" + m[8:],  # wrong magic cookie
        lambda m: m[:2] + struct.pack("!H", len(m) - 16) + m[4:],  # length past the end
        lambda m: m[:2] + struct.pack("!H", 6) + m[4:26],  # length not a multiple of 4
        lambda m: m[:-1] + bytes([m[-1] ^ 1]),  # FINGERPRINT wrong
        lambda m: m + struct.pack("!HH", 0x8022, 0),  # an attribute after FINGERPRINT
        lambda m: m + bytes(600),  # too long for a request over UDP
    ],
)
def test_malformed_datagrams_get_no_answer(damage) -> None:  # type: ignore[no-untyped-def]
    request, _ = binding_request()
    assert answer_datagram(damage(request), SOURCE) is None


def _attributes() -> st.SearchStrategy[bytes]:
    known = [0x0001, 0x0006, 0x0008, 0x0020, 0x0024, 0x8022, 0x8028, 0x0033, 0x8029]
    kinds = st.one_of(st.sampled_from(known), st.integers(0, 0xFFFF))

    def attribute(kind: int, value: bytes, pad: bool) -> bytes:
        body = struct.pack("!HH", kind, len(value)) + value
        return body + bytes(-len(value) % 4 if pad else 0)

    return st.builds(attribute, kinds, st.binary(max_size=40), st.booleans())


@st.composite
def _stun_like(draw: st.DrawFn) -> bytes:
    """Datagrams close enough to STUN to go past the first checks, often."""
    method_type = draw(
        st.sampled_from([0x0001, 0x0011, 0x0101, 0x0003, 0x0004]) | st.integers(0, 0xFFFF)
    )
    body = b"".join(draw(st.lists(_attributes(), max_size=6)))
    length = draw(st.sampled_from([len(body)]) | st.integers(0, 0xFFFF))
    cookie = draw(st.sampled_from([MAGIC_COOKIE]) | st.integers(0, 0xFFFFFFFF))
    header = struct.pack("!HHI", method_type, length, cookie) + draw(
        st.binary(min_size=12, max_size=12)
    )
    datagram = header + body
    if draw(st.booleans()):
        datagram = encode(method_type & 0x3EEF, header[8:20], [body], fingerprint=True)
    return datagram


@settings(max_examples=1500, deadline=None)
@given(data=st.one_of(st.binary(max_size=700), _stun_like()),
       source=st.sampled_from([SOURCE, SOURCE6]))  # fmt: skip
def test_no_datagram_breaks_it_or_gets_more_back_than_it_sent(
    data: bytes, source: tuple[str, int]
) -> None:
    answer = answer_datagram(data, source)
    if answer is None:
        return
    version = 6 if ":" in source[0] else 4
    assert len(answer) <= len(data) + MAPPED_LENGTH[version]
    reply = parse(answer)
    assert reply is not None
    assert reply.transaction_id == data[8:20]
    # answers are for requests only, and carry FINGERPRINT exactly when it did
    request = parse(data)
    assert request is not None
    assert request.klass == 0
    assert reply.fingerprinted == request.fingerprinted
    kinds = [kind for kind, _ in reply.attributes]
    assert ATTR_FINGERPRINT not in kinds
    if reply.klass == 0x100:
        assert kinds == [ATTR_XOR_MAPPED_ADDRESS]


def test_each_address_has_a_budget_and_the_server_one_too() -> None:
    now = [0.0]
    protocol = StunProtocol(clock=lambda: now[0])
    granted = sum(protocol.allowed("198.51.100.7") for _ in range(BURST_PER_ADDRESS * 2))
    assert granted == BURST_PER_ADDRESS
    assert protocol.allowed("198.51.100.8")  # another address has its own
    # the same /64 is one address
    assert sum(protocol.allowed(f"2001:db8::{n:x}") for n in range(BURST_PER_ADDRESS + 5)) == (
        BURST_PER_ADDRESS
    )
    now[0] += 1.0
    assert sum(protocol.allowed("198.51.100.7") for _ in range(100)) == int(RATE_PER_ADDRESS)


def test_the_stun_uri_names_the_host_the_client_reached() -> None:
    assert stun_host("hub.example.com:8443") == "hub.example.com"
    assert stun_host("[2001:db8::1]:443") == "[2001:db8::1]"
    assert stun_host("203.0.113.10") == "203.0.113.10"
    for bad in (None, "", "a b", "[2001:db8::1", "x:1:2:3:", "-bad-.example"):
        assert stun_host(bad) is None
    config = IceServerConfig(builtin_stun_port=3478)
    assert config.stun_uris_for("hub.example.com:8443") == ["stun:hub.example.com:3478"]
    assert config.stun_uris_for("not a host") == []
    assert IceServerConfig(builtin_stun_port=3478, public_host="turn.example.org").stun_uris_for(
        "hub.example.com"
    ) == ["stun:turn.example.org:3478"]
    given = IceServerConfig(stun_uris=["stun:stun.example.net"], builtin_stun_port=3478)
    assert given.stun_uris_for("hub.example.com") == ["stun:stun.example.net"]
    assert not IceServerConfig()
    assert IceServerConfig(builtin_stun_port=3478)
