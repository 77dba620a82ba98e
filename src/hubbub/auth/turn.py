"""ICE servers for ``RTCPeerConnection``, with per-user ephemeral TURN credentials.

TURN credentials follow the TURN REST scheme (draft-uberti-behave-turn-rest, as
coturn's ``use-auth-secret`` checks them): the username is ``"<expiry>:<user id>"``
with the expiry in unix seconds, the password is base64(HMAC-SHA1(secret,
username)). The TURN server needs only the shared secret; nothing is stored.

A TURN server checks the expiry only when an allocation is made, so a call that
outlives its credentials keeps its relay but cannot make a new one (an ICE
restart, a new peer): hubbub sends fresh credentials before the old ones expire.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Callable, Sequence

from hubbub.protocol.messages import IceServer

REFRESH_AT = 0.75
"""Fresh credentials are sent when this share of their lifetime has passed."""


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """The TURN REST username and password for ``user_id`` until ``expires_at``."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@functools.lru_cache(maxsize=256)
def stun_host(host_header: str | None) -> str | None:
    """The host of an HTTP ``Host`` header (``example.com:8080``, ``[2001:db8::1]``),
    bracketed when it is an IPv6 address, as a STUN URI takes it; None when it is
    missing or not a host name or address. Remembered for the last few headers seen:
    every join asks, and its clients reach the server by one or two names."""
    if not host_header:
        return None
    text = host_header.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        host = text[1:end]
    elif text.count(":") == 1:
        host = text.split(":", 1)[0]
    else:
        host = text
    return uri_host(host)


def uri_host(host: str) -> str | None:
    """``host`` (a DNS name or an IP address) as a URI takes it, IPv6 in brackets;
    None when it is neither."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels):
            return host.lower()
        return None
    return f"[{address}]" if address.version == 6 else str(address)


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class IceServerConfig:
    """The STUN and TURN servers handed to clients, and their credentials.

    ``builtin_stun_port`` is the port of the server's own STUN server, handed out as
    ``stun:<host>:<port>`` when no ``stun_uris`` are given: the host is
    ``public_host``, else the one the client reached the server by.
    """

    def __init__(
        self,
        *,
        stun_uris: Sequence[str] = (),
        builtin_stun_port: int | None = None,
        public_host: str | None = None,
        turn_uris: Sequence[str] = (),
        turn_secret: str | None = None,
        turn_ttl: int = 3600,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if turn_uris and not turn_secret:
            raise ValueError("turn_uri needs turn_secret to make credentials with")
        if turn_ttl <= 0:
            raise ValueError(f"turn_ttl must be positive, got {turn_ttl!r}")
        self._stun_uris = list(stun_uris)
        self.builtin_stun_port = builtin_stun_port
        """None while (or when) the built-in STUN server does not run."""
        self._public_host = uri_host(public_host) if public_host else None
        self._turn_uris = list(turn_uris)
        self._secret = turn_secret
        self.ttl = turn_ttl
        self._wall_clock = wall_clock

    def __bool__(self) -> bool:
        return bool(self._stun_uris or self._turn_uris or self.builtin_stun_port)

    @property
    def has_turn(self) -> bool:
        return bool(self._turn_uris)

    @property
    def refresh_after(self) -> float:
        """Seconds after which a client's TURN credentials are renewed."""
        return self.ttl * REFRESH_AT

    def stun_uris_for(self, host: str | None) -> list[str]:
        """The STUN URIs for a client that reached the server at ``host`` (its
        ``Host`` header)."""
        if self._stun_uris:
            return list(self._stun_uris)
        if not self.builtin_stun_port:
            return []
        reached = self._public_host or stun_host(host)
        return [f"stun:{reached}:{self.builtin_stun_port}"] if reached else []

    def for_user(self, user_id: str, host: str | None = None) -> tuple[list[IceServer], int | None]:
        """``iceServers`` for one user (who reached the server at ``host``), and
        when its credentials expire."""
        servers = []
        stun = self.stun_uris_for(host)
        if stun:
            servers.append(IceServer(urls=stun))
        expires_at = None
        if self._turn_uris and self._secret:
            expires_at = int(self._wall_clock()) + self.ttl
            username, password = turn_credentials(self._secret, user_id, expires_at)
            servers.append(
                IceServer(urls=list(self._turn_uris), username=username, credential=password)
            )
        return servers, expires_at
