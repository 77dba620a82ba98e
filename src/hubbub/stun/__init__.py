"""STUN (RFC 8489) binding, sans-I/O: the server's answers (``hubbub serve`` runs a
STUN server, :mod:`hubbub.server.stun`) and a client's request (``hubbub doctor``)."""

from hubbub.stun.message import answer_datagram, binding_request, mapped_address

__all__ = ["answer_datagram", "binding_request", "mapped_address"]
