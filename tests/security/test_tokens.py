"""Token mode over real sockets: who gets in, and every way a bad token is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.tokens import (
    SECRET,
    claims_for,
    hmac_signed_by_hand,
    signed,
    token,
    token_settings,
    unsigned,
    write_public_key,
)
from tests.wsclient import Client

SUBPROTOCOL = "hubbub"


async def test_without_a_token_nobody_joins(start_hub) -> None:
    url = await start_hub(token_settings())
    async with await Client.connect(url) as client:
        await client.send({"type": "join-room", "room": "team", "userId": "alice", "ref": 1})
        error = await client.expect_error("token-required")
        assert error["ref"] == 1
        # the refusal leaves the connection open: a token can follow
        joined = await client.join("team", token=token("alice", "team"))
        assert joined["userId"] == "alice"


@pytest.mark.parametrize(
    ("make_bad_token", "code"),
    # Made when the test runs, not at collection: a slow run must not see a
    # token expire before its test starts.
    [
        (
            lambda: token("alice", "team", key="another-secret-of-at-least-32-bytes!!"),
            "token-invalid",
        ),
        (lambda: unsigned(claims_for("alice", ["team"])), "token-invalid"),
        (lambda: token("alice", "team", ttl=-3600), "token-expired"),
        (
            lambda: signed(claims_for("alice", ["team"], nbf=int(time.time()) + 3600)),
            "token-not-yet-valid",
        ),
        (lambda: signed({"sub": "alice", "rooms": ["team"]}), "token-invalid"),  # no exp
        (
            lambda: signed({"exp": int(time.time()) + 60, "rooms": ["team"]}),
            "token-invalid",
        ),  # no sub
        (
            lambda: signed(claims_for("alice", ["team"], grants=["join", "superuser"])),
            "token-invalid",
        ),
        (lambda: signed(claims_for("", ["team"])), "token-invalid"),
        (
            lambda: signed(claims_for("alice", "team-but-not-a-list-of-rooms" and 7)),
            "token-invalid",
        ),
        (lambda: "not.a.jwt", "token-invalid"),
        (lambda: "", "token-invalid"),
    ],
    ids=[
        "wrong-secret",
        "alg-none",
        "expired",
        "not-yet-valid",
        "no-exp",
        "no-sub",
        "unknown-grant",
        "empty-sub",
        "rooms-not-strings",
        "garbage",
        "empty",
    ],
)
async def test_bad_tokens_are_refused_with_their_code(
    start_hub, make_bad_token: Callable[[], str], code: str
) -> None:
    bad_token = make_bad_token()
    url = await start_hub(token_settings())
    async with await Client.connect(url) as client:
        await client.send({"type": "join-room", "room": "team", "token": bad_token})
        error = await client.expect_error(code)
        assert SECRET not in error["message"]
        await client.send({"type": "chat", "message": "am I in?"})
        await client.expect_error("not-in-room")


async def test_the_identity_is_the_tokens_never_the_clients(start_hub) -> None:
    url = await start_hub(token_settings())
    async with await Client.connect(url) as alice, await Client.connect(url) as mallory:
        await alice.join("team", token=token("alice", "team"))
        # mallory holds a valid token, for herself, and claims to be alice
        await mallory.send(
            {"type": "join-room", "room": "team", "userId": "alice", "token": token("mallory")}
        )
        await mallory.expect_error("forbidden")
        await alice.nothing()
        joined = await mallory.join("team", token=token("mallory"))
        assert joined["userId"] == "mallory"
        assert (await alice.expect("user-joined"))["userId"] == "mallory"


async def test_the_same_identity_again_replaces_the_older_session(start_hub) -> None:
    url = await start_hub(token_settings())
    async with (
        await Client.connect(url) as bob,
        await Client.connect(url) as old,
        await Client.connect(url) as new,
    ):
        await bob.join("team", token=token("bob", "team"))
        await old.join("team", token=token("alice", "team"))
        await bob.expect("user-joined")
        joined = await new.join("team", token=token("alice", "team"))
        assert [p["userId"] for p in joined["participants"]] == ["bob"]
        assert await old.closed_with() == 4009
        assert await bob.recv() == {"type": "user-left", "userId": "alice"}
        assert (await bob.expect("user-joined"))["userId"] == "alice"
        await bob.send({"type": "chat", "message": "which alice?"})
        assert (await new.expect("chat"))["message"] == "which alice?"


async def test_token_in_the_subprotocol_header(start_hub) -> None:
    url = await start_hub(token_settings())
    protocols = [SUBPROTOCOL, "hubbub.token." + token("alice", "team", name="Alice")]
    async with (
        await Client.connect(url, protocols=protocols) as alice,
        await Client.connect(url) as plain,
    ):
        assert alice.ws.protocol == SUBPROTOCOL  # the server answers hubbub, not the token
        joined = await alice.join("team")
        assert joined["userId"] == "alice"
        assert joined["name"] == "Alice"
        assert joined["grants"] == ["chat", "join", "publish", "screen", "signal"]
        await plain.send({"type": "join-room", "room": "team"})
        await plain.expect_error("token-required")


@pytest.mark.parametrize(
    ("make_protocols", "status", "code"),
    [
        (lambda: [SUBPROTOCOL, "hubbub.token." + token("a", ttl=-60)], 401, "token-expired"),
        (
            lambda: [SUBPROTOCOL, "hubbub.token." + unsigned(claims_for("a", ["*"]))],
            401,
            "token-invalid",
        ),
        (lambda: ["hubbub.token." + token("a")], 400, "subprotocol-required"),
    ],
    ids=["expired", "alg-none", "token-without-hubbub"],
)
async def test_a_bad_subprotocol_token_is_refused_at_the_handshake(
    start_hub, make_protocols: Callable[[], list[str]], status: int, code: str
) -> None:
    protocols = make_protocols()
    url = await start_hub(token_settings())
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url + "/", protocols=protocols)
        assert refused.value.status == status
        async with http.get(
            url + "/",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Protocol": ", ".join(protocols),
            },
        ) as response:
            assert response.status == status
            assert (await response.json())["error"]["code"] == code


@pytest.mark.parametrize("kind", ["ed25519", "p256"])
async def test_public_key_tokens(start_hub, tmp_path: Path, kind: str) -> None:
    public_key, private_key = write_public_key(tmp_path, kind)
    algorithm = "EdDSA" if kind == "ed25519" else "ES256"
    url = await start_hub(token_settings(token_secret=None, token_public_key=public_key))
    async with await Client.connect(url) as client:
        good = token("alice", "team", key=private_key, algorithm=algorithm)
        assert (await client.join("team", token=good))["userId"] == "alice"
    async with await Client.connect(url) as client:
        # a key of the same kind that is not the server's
        other = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else None
        if other is not None:
            await client.send(
                {
                    "type": "join-room",
                    "room": "team",
                    "token": token("x", key=other, algorithm=algorithm),
                }
            )
            await client.expect_error("token-invalid")
        # an HS256 token on a server that has no secret, signed with the public key
        # as the HMAC secret (the classic algorithm confusion)
        forged = hmac_signed_by_hand(claims_for("x", ["team"]), public_key.read_bytes())
        await client.send({"type": "join-room", "room": "team", "token": forged})
        await client.expect_error("token-invalid")
        await client.send({"type": "join-room", "room": "team", "token": token("x")})
        await client.expect_error("token-invalid")


async def test_open_mode_honours_tokens_when_it_has_a_key(start_hub) -> None:
    url = await start_hub(token_settings(auth="open"))
    async with await Client.connect(url) as guest, await Client.connect(url) as bot:
        await guest.join("team", "guest")
        joined = await bot.join("team", token=token("recorder", grants=["join", "hidden"]))
        assert joined["userId"] == "recorder"
        assert [p["userId"] for p in joined["participants"]] == ["guest"]
        await guest.nothing()  # a hidden member is not announced


async def test_open_mode_without_a_key_refuses_a_token_it_cannot_check(hub_url: str) -> None:
    async with await Client.connect(hub_url) as client:
        await client.send({"type": "join-room", "room": "team", "token": token("alice")})
        await client.expect_error("token-invalid")
        assert (await client.join("team", "alice"))["userId"] == "alice"
