"""Authentication and permissions: access tokens, grants, admission to rooms.

Sans-I/O like the core: nothing here touches a socket or an event loop.
"""

from hubbub.auth.admission import Admission, AuthMode
from hubbub.auth.grants import (
    ANY_ROOM,
    OPEN_IDENTITY,
    PARTICIPANT_GRANTS,
    Grant,
    Identity,
    RoomScope,
)
from hubbub.auth.tokens import (
    KeyConfigError,
    TokenError,
    TokenVerifier,
    VerificationKeys,
    mint_token,
)

__all__ = [
    "ANY_ROOM",
    "OPEN_IDENTITY",
    "PARTICIPANT_GRANTS",
    "Admission",
    "AuthMode",
    "Grant",
    "Identity",
    "KeyConfigError",
    "RoomScope",
    "TokenError",
    "TokenVerifier",
    "VerificationKeys",
    "mint_token",
]
