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
import hashlib
import hmac
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


class IceServerConfig:
    """The STUN and TURN servers handed to clients, and their credentials."""

    def __init__(
        self,
        *,
        stun_uris: Sequence[str] = (),
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
        self._turn_uris = list(turn_uris)
        self._secret = turn_secret
        self.ttl = turn_ttl
        self._wall_clock = wall_clock

    def __bool__(self) -> bool:
        return bool(self._stun_uris or self._turn_uris)

    @property
    def has_turn(self) -> bool:
        return bool(self._turn_uris)

    @property
    def refresh_after(self) -> float:
        """Seconds after which a client's TURN credentials are renewed."""
        return self.ttl * REFRESH_AT

    def for_user(self, user_id: str) -> tuple[list[IceServer], int | None]:
        """``iceServers`` for one user, and when its credentials expire."""
        servers = []
        if self._stun_uris:
            servers.append(IceServer(urls=list(self._stun_uris)))
        expires_at = None
        if self._turn_uris and self._secret:
            expires_at = int(self._wall_clock()) + self.ttl
            username, password = turn_credentials(self._secret, user_id, expires_at)
            servers.append(
                IceServer(urls=list(self._turn_uris), username=username, credential=password)
            )
        return servers, expires_at
