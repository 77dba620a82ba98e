"""Large SCTP packets between two hubbub peers on one machine.

aiortc's SCTP puts at most 1,189 bytes in a packet (``SCTP_MAX_PACKET_LENGTH``, so
that a packet fits the minimum IPv6 MTU once DTLS and UDP are added), and its DTLS
transport reads and writes datagrams of at most 1,500 bytes. Each packet is then
built, encrypted, sent, received, decrypted and parsed in Python: a transfer costs
CPU per packet. Between two processes on one machine the path is the loopback
interface (MTU 65,536), so a packet can be as large as a DTLS record (16 KiB of
plaintext): 14 times fewer packets for the same bytes.

Two steps, each on one of our own transports (instance attributes, never aiortc's
classes, so other aiortc users in the same process are left as they are):

- :func:`read_large_packets` lets a DTLS transport read records of up to
  :data:`LARGE_PACKET` bytes. It changes nothing for smaller packets; a peer that has
  done it says so in its descriptions (``"sctp": {"maxPacketSize": ...}``,
  ``docs/peer-protocol.md``).
- :func:`send_large_packets` makes an SCTP transport send packets of up to the
  remote's ``maxPacketSize``, but only when the connection's ICE pair joins two
  host candidates of this machine: a browser, which says nothing, or a peer across
  a network (where such packets would be fragmented or dropped) keeps aiortc's size.

Both copy aiortc's own methods with one constant changed (the packet size in the
SCTP methods, the datagram size in the DTLS ones), and only on the aiortc versions
in :data:`CHECKED_AIORTC` whose code is as expected; on any other they do nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import types
from typing import Any

log = logging.getLogger("hubbub.peer")

LARGE_PACKET = 16384
"""Bytes: the largest SCTP packet read and sent between peers on one machine (the
largest DTLS record's plaintext, 2**14)."""
LARGE_DATAGRAM = LARGE_PACKET + 2048
"""Bytes: the largest DTLS datagram read or written with large packets on (a record
of LARGE_PACKET bytes with the most expansion DTLS allows)."""

CHECKED_AIORTC = ("1.16.",)
"""aiortc versions (prefixes) whose SCTP and DTLS internals this was written for."""

_AIORTC_DATAGRAM = 1500
"""The datagram size aiortc's DTLS transport reads and writes."""
_SCTP_METHODS = ("_send", "_transmit", "_receive_sack_chunk", "_t3_expired")
"""The SCTP methods that size packets and the congestion window by USERDATA_MAX_LENGTH."""
_DTLS_READ = "_recv_next"
"""The DTLS method that reads at most _AIORTC_DATAGRAM bytes of a record's plaintext."""
_DTLS_WRITE = "_write_ssl"
"""The DTLS method that sends at most _AIORTC_DATAGRAM bytes of what OpenSSL wrote.
With more, a handshake flight could leave as one datagram larger than the path's MTU,
so it is changed only where large packets are sent."""


def _usable() -> dict[str, Any] | None:
    """aiortc's classes and module, when they are as this module expects."""
    try:
        import aiortc
        from aiortc import rtcdtlstransport, rtcsctptransport
    except ImportError:  # pragma: no cover - aiortc is a dependency of hubbub.peer
        return None
    if not aiortc.__version__.startswith(CHECKED_AIORTC):
        return None
    sctp, dtls = rtcsctptransport.RTCSctpTransport, rtcdtlstransport.RTCDtlsTransport
    sizing = {
        name
        for name, value in vars(sctp).items()
        if isinstance(value, types.FunctionType)
        and "USERDATA_MAX_LENGTH" in value.__code__.co_names
    }
    if sizing != {"__init__", *_SCTP_METHODS}:
        return None
    for name in (_DTLS_READ, _DTLS_WRITE):
        method = vars(dtls).get(name)
        if not isinstance(method, types.FunctionType):
            return None
        if method.__code__.co_consts.count(_AIORTC_DATAGRAM) != 1:
            return None
    needed = (
        "SCTP_MAX_PACKET_LENGTH",
        "SCTP_COMMON_HEADER_LENGTH",
        "SCTP_DATA_CHUNK_HEADER_LENGTH",
    )
    if not all(isinstance(getattr(rtcsctptransport, name, None), int) for name in needed):
        return None
    return {"sctp": sctp, "dtls": dtls, "module": rtcsctptransport}


_AIORTC = _usable()
_sctp_methods: dict[int, dict[str, types.FunctionType]] = {}
_dtls_methods: dict[str, types.FunctionType] = {}


def available() -> bool:
    """Whether the installed aiortc is one this module can adapt."""
    return _AIORTC is not None


def read_large_packets(sctp_transport: Any) -> int | None:
    """Let the DTLS transport under ``sctp_transport`` (an ``RTCSctpTransport``)
    read packets of up to :data:`LARGE_PACKET` bytes; that size once done (also
    when done before), None when aiortc is not as expected."""
    if _AIORTC is None or sctp_transport is None:
        return None
    dtls = getattr(sctp_transport, "transport", None)
    if not isinstance(dtls, _AIORTC["dtls"]):
        return None
    if not getattr(dtls, "_hubbub_reads_large_packets", False):
        dtls._recv_next = types.MethodType(_large_dtls_method(_DTLS_READ), dtls)
        dtls._hubbub_reads_large_packets = True
    return LARGE_PACKET


def send_large_packets(sctp_transport: Any, remote_max_packet: int | None) -> int | None:
    """Make ``sctp_transport`` send packets of up to ``remote_max_packet`` bytes
    (at most :data:`LARGE_PACKET`) when the remote said it reads them and both ends
    are on this machine; the packet size in use once done, None otherwise."""
    if _AIORTC is None or not remote_max_packet or sctp_transport is None:
        return None
    done = getattr(sctp_transport, "_hubbub_packet_size", None)
    if done is not None:
        return int(done)
    size = min(remote_max_packet, LARGE_PACKET)
    module = _AIORTC["module"]
    if size <= module.SCTP_MAX_PACKET_LENGTH or not isinstance(sctp_transport, _AIORTC["sctp"]):
        return None
    if not _on_this_machine(sctp_transport) or read_large_packets(sctp_transport) is None:
        return None
    dtls = sctp_transport.transport
    dtls._write_ssl = types.MethodType(_large_dtls_method(_DTLS_WRITE), dtls)
    for name, method in _large_sctp_methods(size).items():
        setattr(sctp_transport, name, types.MethodType(method, sctp_transport))
    sctp_transport._hubbub_packet_size = size
    log.debug("SCTP packets of up to %d bytes (both ends on this machine)", size)
    return size


def _on_this_machine(sctp_transport: Any) -> bool:
    """Whether the selected ICE pair joins a host candidate of ours to an address
    of this machine (so the datagrams go over the loopback interface)."""
    try:
        connection = sctp_transport.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return False
        local, remote = pair.local_candidate, pair.remote_candidate
        if local.type != "host" or remote.type not in ("host", "prflx"):
            return False
        remote_host = ipaddress.ip_address(pair.remote_addr[0])
        ours = {
            ipaddress.ip_address(candidate.host)
            for candidate in connection.local_candidates
            if candidate.type == "host"
        }
    except (AttributeError, ValueError, TypeError):
        return False
    return remote_host.is_loopback or remote_host in ours


def _copy(function: types.FunctionType, **constants: Any) -> types.FunctionType:
    """``function`` with some of its module's globals replaced."""
    namespace = dict(function.__globals__)
    namespace.update(constants)
    copy = types.FunctionType(
        function.__code__,
        namespace,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    return copy


def _large_sctp_methods(size: int) -> dict[str, types.FunctionType]:
    methods = _sctp_methods.get(size)
    if methods is None:
        assert _AIORTC is not None
        module, sctp = _AIORTC["module"], _AIORTC["sctp"]
        # as aiortc works its USERDATA_MAX_LENGTH out from SCTP_MAX_PACKET_LENGTH
        user_data = (
            (size - module.SCTP_COMMON_HEADER_LENGTH - module.SCTP_DATA_CHUNK_HEADER_LENGTH)
            // 4
            * 4
        )
        methods = {
            name: _copy(vars(sctp)[name], USERDATA_MAX_LENGTH=user_data) for name in _SCTP_METHODS
        }
        _sctp_methods[size] = methods
    return methods


def _large_dtls_method(name: str) -> types.FunctionType:
    """aiortc's DTLS method ``name`` with its datagram size raised to LARGE_DATAGRAM."""
    copy = _dtls_methods.get(name)
    if copy is None:
        assert _AIORTC is not None
        method = vars(_AIORTC["dtls"])[name]
        code = method.__code__
        consts = tuple(
            LARGE_DATAGRAM if type(value) is int and value == _AIORTC_DATAGRAM else value
            for value in code.co_consts
        )
        copy = _copy(method)
        copy.__code__ = code.replace(co_consts=consts)
        _dtls_methods[name] = copy
    return copy
