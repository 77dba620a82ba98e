"""Access tokens for tests: good ones made with hubbub's own minting, bad ones by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from hubbub.auth import mint_token
from hubbub.server import ServerSettings

SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(
    user: str,
    rooms: list[str] | str = "*",
    *,
    grants: list[str] | None = None,
    name: str | None = None,
    ttl: float = 86400,
    key: Any = SECRET,
    algorithm: str = "HS256",
) -> str:
    minted, _ = mint_token(
        key,
        user_id=user,
        rooms=[rooms] if isinstance(rooms, str) else rooms,
        grants=grants,
        name=name,
        ttl=ttl,
        algorithm=algorithm,
    )
    return minted


def signed(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    """A token with exactly these claims."""
    return jwt.encode(claims, key.encode() if isinstance(key, str) else key, algorithm=algorithm)


def _part(value: dict[str, Any] | bytes) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token, as an attacker would write it by hand."""
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."


def hmac_signed_by_hand(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with any bytes (a public key, say), which PyJWT itself
    would refuse to do."""
    head = f"{_part({'alg': 'HS256', 'typ': 'JWT'})}.{_part(claims)}"
    signature = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    return f"{head}.{_part(signature)}"


def claims_for(user: str, rooms: list[str], **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    # a day: parametrized tests make their tokens when the suite is collected, and
    # the whole suite can take longer than minutes on a busy machine
    return {"sub": user, "rooms": rooms, "iat": now, "exp": now + 86400, **extra}


def token_settings(**changes: Any) -> ServerSettings:
    return ServerSettings(**{"auth": "token", "token_secret": SECRET, **changes})


def write_public_key(directory: Path, kind: str) -> tuple[Path, Any]:
    """A fresh key pair of ``kind`` (``ed25519`` or ``p256``): the public key's
    PEM file and the private key."""
    private: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    path = directory / f"{kind}.pub.pem"
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path, private
