"""``hubbub serve`` and ``hubbub token`` as real processes: exposure, secrets, minting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from tests.tokens import SECRET, token
from tests.wsclient import Client

API_KEY = "api-key-that-must-stay-out-of-logs"
TURN_SECRET = "turn-secret-that-must-stay-out-of-logs"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_open_mode_beyond_loopback_is_refused_and_says_why(host: str) -> None:
    result = _run("serve", "--host", host, "--port", "0")
    assert result.returncode == 2
    assert "open mode" in result.stderr
    assert "--allow-open-on-network" in result.stderr


async def test_open_mode_on_the_network_when_told_so() -> None:
    await _listens("--host", "0.0.0.0", "--allow-open-on-network")


async def test_token_mode_on_the_network() -> None:
    await _listens("--host", "0.0.0.0", "--auth", "token", "--token-secret", SECRET)


async def _listens(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubbub",
        "serve",
        "--port",
        "0",
        *args,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b"event=listening" not in (line := await process.stderr.readline()):
                assert line, "exited before listening"
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


def test_token_mode_without_a_key_is_refused() -> None:
    result = _run("serve", "--auth", "token", "--port", "0")
    assert result.returncode == 2
    assert "token_secret or token_public_key" in result.stderr
    result = _run("serve", "--auth", "token", "--token-secret", "short", "--port", "0")
    assert result.returncode == 2
    assert "at least 32 bytes" in result.stderr
    assert "short" not in result.stderr.replace("at least", "")


def test_config_masks_every_secret() -> None:
    result = _run(
        "config",
        "--token-secret",
        SECRET,
        "--api-key",
        API_KEY,
        "--turn-secret",
        TURN_SECRET,
        "--turn-uri",
        "turn:127.0.0.1:3478",
    )
    assert result.returncode == 0, result.stderr
    for secret in (SECRET, API_KEY, TURN_SECRET):
        assert secret not in result.stdout
    assert "token_secret = ********" in result.stdout.splitlines()


async def test_secrets_and_tokens_never_reach_the_log() -> None:
    """Everything that carries a secret, at the most talkative log level."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubbub",
        "serve",
        "--port",
        "0",
        "--log-level",
        "debug",
        "--auth",
        "token",
        "--token-secret",
        SECRET,
        "--api-key",
        API_KEY,
        "--turn-uri",
        "turn:127.0.0.1:3478",
        "--turn-secret",
        TURN_SECRET,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    log = b""
    try:
        async with asyncio.timeout(20):
            while b"event=listening" not in log:
                line = await process.stderr.readline()
                assert line, log.decode()
                log += line
        url = log.split(b"event=listening url=")[1].split()[0].decode()
        shown = []
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            body = {"userId": "alice", "rooms": ["team"]}
            async with http.post(url + "/api/tokens", json=body, headers=headers) as response:
                shown.append((await response.json())["token"])
            async with http.post(
                url + "/api/tokens", json=body, headers={"Authorization": "Bearer wrong-" + API_KEY}
            ) as response:
                assert response.status == 401
        in_header = token("bob", "team")
        shown.append(in_header)
        async with (
            await Client.connect(url, protocols=["hubbub", "hubbub.token." + in_header]) as bob,
            await Client.connect(url) as alice,
        ):
            joined = await bob.join("team")
            turn_password = joined["iceServers"][0]["credential"]
            await alice.join("team", token=shown[0])
            expired = token("carol", ttl=-60)
            shown.append(expired)
            await alice.send({"type": "join-room", "room": "other", "token": expired})
            await alice.expect_error("token-expired")
        bad_protocol = "hubbub.token." + token("dave", ttl=-60)
        shown.append(bad_protocol)
        async with aiohttp.ClientSession() as http:
            for protocols in ([bad_protocol], ["hubbub", bad_protocol]):
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await http.ws_connect(url + "/", protocols=protocols)
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await process.communicate()
        log += rest
    text = log.decode()
    assert "event=join" in text  # the log was talking
    for secret in (SECRET, API_KEY, TURN_SECRET, turn_password, *shown):
        assert secret not in text
    # no part of a token either: its signature is the part that matters
    for shown_token in shown:
        assert shown_token.rsplit(".", 1)[-1] not in text


def test_hubbub_token_prints_a_token_the_server_takes(tmp_path) -> None:
    result = _run(
        "token",
        "--user",
        "alice",
        "--room",
        "team",
        "--ttl",
        "1h",
        "--no-default-grants",
        "--grant",
        "join",
        env={"HUBBUB_TOKEN_SECRET": SECRET},
    )
    assert result.returncode == 0, result.stderr
    from hubbub.auth import TokenVerifier, VerificationKeys

    identity = TokenVerifier(VerificationKeys.load(SECRET, None)).verify(result.stdout.strip())
    assert identity.user_id == "alice"
    assert identity.rooms.allows("team")
    assert not identity.rooms.allows("teams")
    assert [grant.value for grant in identity.grants] == ["join"]
    result = _run("token", "--user", "alice", "--room", "team", env={"HUBBUB_TOKEN_SECRET": ""})
    assert result.returncode == 2
    assert "no key to sign with" in result.stderr
    result = _run("token", "--user", "a", "--room", "t", "--ttl", "soon", "--token-secret", SECRET)
    assert result.returncode == 2
    result = _run("token", "--user", "a", "--room", "t", "--grant", "god", "--token-secret", SECRET)
    assert result.returncode == 2
    assert "unknown grant" in result.stderr


def test_hubbub_token_signs_with_a_private_key(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization

    from hubbub.auth import TokenVerifier, VerificationKeys
    from tests.tokens import write_public_key

    public_key, private_key = write_public_key(tmp_path, "ed25519")
    private_path = tmp_path / "private.pem"
    private_path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = _run(
        "token", "--user", "bob", "--room", "team-*", "--name", "Bob",
        "--private-key", str(private_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    identity = TokenVerifier(VerificationKeys.load(None, public_key)).verify(result.stdout.strip())
    assert (identity.user_id, identity.name) == ("bob", "Bob")
    assert identity.rooms.allows("team-1")
    result = _run("token", "--user", "bob", "--room", "t", "--private-key", str(public_key))
    assert result.returncode == 2
    assert "not an unencrypted PEM private key" in result.stderr
