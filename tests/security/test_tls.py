"""TLS: hubbub serves https:// and wss:// itself, with a certificate the test makes."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubbub.server import ServerSettings, start_server, websocket
from hubbub.settings import SettingsError
from tests.tokens import token, token_settings
from tests.wsclient import Client


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hubbub test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_wss_and_https_with_a_certificate(start_hub, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    url = await start_hub(token_settings(tls_cert=cert, tls_key=key))
    assert url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/healthz", ssl=trusting) as response:
            assert response.status == 200
        # a client that does not trust the certificate gets nowhere
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(url + "/healthz")
    wss = url.replace("https://", "wss://")
    protocols = ["hubbub", "hubbub.token." + token("bob", "team")]
    async with (
        await Client.connect(wss, ssl=trusting) as alice,
        await Client.connect(wss, ssl=trusting, protocols=protocols) as bob,
    ):
        await alice.join("team", token=token("alice", "team"))
        await bob.join("team")
        await alice.expect("user-joined")
        await bob.send({"type": "chat", "message": "over TLS"})
        assert (await alice.expect("chat"))["message"] == "over TLS"


async def test_a_plain_client_on_the_tls_port_is_not_served(start_hub, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    url = await start_hub(ServerSettings(tls_cert=cert, tls_key=key))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.get(url.replace("https://", "http://") + "/healthz")


async def test_unusable_certificates_are_refused_at_start(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = make_certificate(tmp_path / "other")
    with pytest.raises(SettingsError, match="tls_cert and tls_key go together"):
        ServerSettings(tls_cert=cert)
    (tmp_path / "junk.pem").write_text("not a certificate")
    for bad_cert, bad_key in (
        (tmp_path / "junk.pem", key),
        (tmp_path / "absent.pem", key),
        (cert, other_key),  # a key that is not the certificate's
    ):
        with pytest.raises(SettingsError, match="cannot load"):
            await start_server(ServerSettings(port=0, tls_cert=bad_cert, tls_key=bad_key))


async def test_a_connection_that_never_starts_its_tls_handshake_is_dropped(
    start_hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection on the TLS port has as long for its TLS handshake as a plain one
    # has for its request head (HANDSHAKE_TIMEOUT, 10 s; here 0.5), not 60 s.
    monkeypatch.setattr(websocket, "HANDSHAKE_TIMEOUT", 0.5)
    cert, key = make_certificate(tmp_path)
    url = await start_hub(ServerSettings(tls_cert=cert, tls_key=key))
    host, port = url.removeprefix("https://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(5):
            assert await reader.read() == b""
    finally:
        writer.close()
