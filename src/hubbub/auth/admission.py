"""Admission: who a joiner is, whether it may enter the room, what it may do there.

The hub asks :meth:`Admission.admit` at every ``join-room`` and
:meth:`Admission.require` before an action that needs a grant; the rules live
here, not in the hub. Sans-I/O: a token check is CPU work only, and happens when
a token is shown, never per message.

``open`` mode: a joiner without a token may enter any room under a user id it
picks, with the participant grants. A token, when the server has a key to check
it with, is honoured (so a bot can be hidden, an operator admin).
``token`` mode: no token, no entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from enum import StrEnum

from hubbub.auth.grants import OPEN_IDENTITY, Grant, Identity
from hubbub.auth.tokens import CLOCK_LEEWAY, TokenError, TokenVerifier
from hubbub.protocol.errors import ErrorCode, ProtocolError
from hubbub.protocol.messages import Ref


class AuthMode(StrEnum):
    OPEN = "open"
    TOKEN = "token"


class Admission:
    """The admission rules of one server."""

    def __init__(
        self,
        mode: AuthMode = AuthMode.OPEN,
        verifier: TokenVerifier | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ):
        if mode is AuthMode.TOKEN and verifier is None:
            raise ValueError("token mode needs a token verifier")
        self.mode = mode
        self._verifier = verifier
        self._wall_clock = wall_clock

    def identify(self, token: str) -> Identity:
        """The identity a token vouches for, or :class:`TokenError`."""
        if self._verifier is None:
            raise TokenError(ErrorCode.TOKEN_INVALID, "this server has no key to check tokens with")
        return self._verifier.verify(token)

    def admit(
        self,
        *,
        room: str,
        user_id: str | None,
        token: str | None,
        shown: Identity | None,
        ref: Ref | None,
        invited: Collection[str] = (),
    ) -> Identity:
        """The identity a ``join-room`` enters ``room`` with, or a ``ProtocolError``.

        ``token`` came in the message; ``shown`` is what the connection proved at
        connect (a token in ``Sec-WebSocket-Protocol``). The message's token wins.
        ``invited`` are the users who may enter ``room`` whatever their token's
        rooms say (the two parties of the call held there).
        """
        identity = shown
        if token is not None:
            try:
                identity = self.identify(token)
            except TokenError as error:
                raise ProtocolError(error.code, error.message, ref=ref) from None
        elif (
            identity is not None
            and identity.expires_at is not None
            and self._wall_clock() > identity.expires_at + CLOCK_LEEWAY
        ):
            raise ProtocolError(
                ErrorCode.TOKEN_EXPIRED,
                "the token this connection showed has expired; send a fresh one",
                ref=ref,
            )
        if identity is None:
            if self.mode is AuthMode.TOKEN:
                raise ProtocolError(
                    ErrorCode.TOKEN_REQUIRED,
                    "this server admits only with an access token",
                    ref=ref,
                )
            identity = OPEN_IDENTITY
        if identity.user_id is not None and user_id is not None and user_id != identity.user_id:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "userId must be the token's subject (or left out)", ref=ref
            )
        if not identity.may(Grant.JOIN) or not (
            identity.rooms.allows(room)
            or (identity.user_id is not None and identity.user_id in invited)
        ):
            raise ProtocolError(ErrorCode.FORBIDDEN, "the token does not grant this room", ref=ref)
        return identity

    @staticmethod
    def require(identity: Identity | None, grant: Grant, ref: Ref | None) -> None:
        """Refuse an action the session's identity does not grant."""
        if identity is None or grant not in identity.grants:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"this needs the {grant.value!r} grant", ref=ref
            )
