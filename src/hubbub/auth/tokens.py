"""Access tokens: JWTs signed by the application's backend, checked by hubbub.

Which algorithms are accepted follows from the keys the server was given, never
from the token: HS256 with a shared secret (``--token-secret``), EdDSA (Ed25519)
or ES256 (P-256) with a public key file (``--token-public-key``). ``alg: none``
and every other algorithm are refused, and so is a token signed with a key of
the wrong kind (the public key is never tried as an HMAC secret).

Claims::

    sub     the user id (required)
    exp     expiry, unix seconds (required)
    nbf     not valid before, unix seconds (optional)
    rooms   the rooms it may join: exact names, or prefixes ending in "*" (required)
    grants  what it may do (optional; default join, chat, signal, screen)
    name    a display name shown to the others (optional)

A token is checked when it is shown (at connect, or in ``join-room``), never
per message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from hubbub.auth.grants import PARTICIPANT_GRANTS, Grant, Identity, RoomScope
from hubbub.protocol.errors import ErrorCode

CLOCK_LEEWAY = 10
"""Seconds of clock difference forgiven when checking ``exp`` and ``nbf``."""

MAX_NAME_LENGTH = 128
"""Longest display name a token may carry, in characters."""

HMAC_ALGORITHM = "HS256"

MIN_SECRET_BYTES = 32
"""Shortest shared secret accepted: HS256 is only as strong as its secret."""

DEFAULT_TOKEN_TTL = 3600
"""Seconds a token minted without a ``ttl`` is valid (the HTTP API, ``hubbub token``)."""

MAX_TOKEN_TTL = 7 * 24 * 3600
"""Longest ``ttl`` hubbub mints a token with, in seconds (the HTTP API, ``hubbub
token``): hubbub keeps no list of revoked tokens, so a token is good until it ends."""


class TokenError(Exception):
    """A token is refused; ``code`` is one of the ``token-*`` error codes."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KeyConfigError(ValueError):
    """A key file or secret is not usable; the message says why."""


class _Claims(msgspec.Struct):
    sub: str
    exp: int | float
    rooms: list[str] | str
    grants: list[str] | None = None
    name: str | None = None


@dataclass(frozen=True)
class VerificationKeys:
    """The keys tokens are checked with, each with the one algorithm it allows."""

    by_algorithm: dict[str, Any]

    @classmethod
    def load(cls, secret: str | None, public_key_file: Path | None) -> VerificationKeys:
        keys: dict[str, Any] = {}
        if secret is not None:
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise KeyConfigError(
                    f"token_secret: at least {MIN_SECRET_BYTES} bytes are needed for HS256"
                )
            keys[HMAC_ALGORITHM] = secret.encode()
        if public_key_file is not None:
            algorithm, key = _load_public_key(public_key_file)
            keys[algorithm] = key
        return cls(keys)

    @property
    def algorithms(self) -> list[str]:
        return sorted(self.by_algorithm)

    def __bool__(self) -> bool:
        return bool(self.by_algorithm)


def _load_public_key(path: Path) -> tuple[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"token_public_key: cannot read {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyConfigError(f"token_public_key: {path} is not a PEM public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA", key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    raise KeyConfigError(f"token_public_key: {path} is neither an Ed25519 nor a P-256 key")


class TokenVerifier:
    """Checks tokens and turns them into an :class:`Identity`."""

    def __init__(self, keys: VerificationKeys, *, max_user_id_length: int = 64) -> None:
        if not keys:
            raise KeyConfigError("checking tokens needs token_secret or token_public_key")
        self._keys = keys
        self._max_user_id_length = max_user_id_length

    def verify(self, token: str) -> Identity:
        """The identity a token vouches for; :class:`TokenError` if it does not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenError(ErrorCode.TOKEN_INVALID, "the token is not a JWT") from None
        algorithm = header.get("alg")
        key = self._keys.by_algorithm.get(algorithm) if isinstance(algorithm, str) else None
        if key is None or not isinstance(algorithm, str):
            raise TokenError(
                ErrorCode.TOKEN_INVALID,
                f"tokens here are signed with {', '.join(self._keys.algorithms)}",
            )
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                leeway=CLOCK_LEEWAY,
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError(ErrorCode.TOKEN_EXPIRED, "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError(ErrorCode.TOKEN_NOT_YET_VALID, "the token is not valid yet") from None
        except jwt.InvalidTokenError:
            raise TokenError(
                ErrorCode.TOKEN_INVALID, "the token's signature or claims do not check out"
            ) from None
        return self._identity(payload)

    def _identity(self, payload: dict[str, Any]) -> Identity:
        try:
            claims = msgspec.convert(payload, _Claims)
        except msgspec.ValidationError as exc:
            raise TokenError(ErrorCode.TOKEN_INVALID, f"bad claims: {exc}") from None
        if not 0 < len(claims.sub) <= self._max_user_id_length or not claims.sub.isprintable():
            raise TokenError(ErrorCode.TOKEN_INVALID, "sub is not a usable user id")
        if claims.name is not None and (
            len(claims.name) > MAX_NAME_LENGTH or not claims.name.isprintable()
        ):
            raise TokenError(ErrorCode.TOKEN_INVALID, "name is not a usable display name")
        rooms = [claims.rooms] if isinstance(claims.rooms, str) else claims.rooms
        return Identity(
            user_id=claims.sub,
            rooms=RoomScope.parse(rooms),
            grants=parse_grants(claims.grants) if claims.grants is not None else PARTICIPANT_GRANTS,
            name=claims.name,
            verified=True,
            expires_at=float(claims.exp),
        )


def parse_grants(names: Iterable[str]) -> frozenset[Grant]:
    """Grants by name; an unknown name is refused, not ignored (a typo would
    otherwise silently give less, or more, than meant)."""
    grants = set()
    for name in names:
        try:
            grants.add(Grant(name))
        except ValueError:
            raise TokenError(ErrorCode.TOKEN_INVALID, f"unknown grant {name[:32]!r}") from None
    return frozenset(grants)


def mint_token(
    key: Any,
    *,
    user_id: str,
    rooms: Iterable[str],
    ttl: float,
    grants: Iterable[Grant | str] | None = None,
    name: str | None = None,
    algorithm: str = HMAC_ALGORITHM,
    now: float | None = None,
) -> tuple[str, int]:
    """A signed token and its expiry (unix seconds).

    ``key`` is the shared secret for HS256, or a private key for EdDSA or ES256.
    """
    issued = int(time.time() if now is None else now)
    expires = issued + int(ttl)
    claims: dict[str, Any] = {"sub": user_id, "rooms": list(rooms), "iat": issued, "exp": expires}
    if grants is not None:
        claims["grants"] = sorted(str(Grant(grant)) for grant in grants)
    if name is not None:
        claims["name"] = name
    signing_key = key.encode() if isinstance(key, str) else key
    return jwt.encode(claims, signing_key, algorithm=algorithm), expires


def load_private_key(path: Path) -> tuple[str, Any]:
    """A private key file (PEM) and the algorithm it signs with."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise KeyConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise KeyConfigError(f"{path} is not an unencrypted PEM private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    raise KeyConfigError(f"{path} is neither an Ed25519 nor a P-256 key")
