"""The servers of a lab's internet: ``hubbub serve`` and coturn, as processes of the
test inside the lab's namespaces, and the Python peers on its hosts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.network.lab import HUBBUB_ADDRESS, LAN_PREFIX, TURN_ADDRESS, Host, Lab, Namespace

ROOT = Path(__file__).parents[2]
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
TURN_SECRET = "lab-turn-secret-0123456789"
REALM = "hubbub.test"
TURN_PORT = 3478
TURNS_PORT = 443
START_TIMEOUT = 20.0
_LISTENING = re.compile(r"""event.{1,4}listening.{1,6}url.{1,4}(http[^\s"]+)""")


@dataclass
class Certificate:
    """A test CA and a server certificate it signed, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def make_certificate(directory: Path, address: str) -> Certificate:
    """A CA, and a certificate it signed for ``address`` (an IP SAN)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hubbub lab CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificate(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _readable_by_all(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        item.chmod(0o777 if item.is_dir() else 0o644)


@contextlib.contextmanager
def coturn(lab: Lab, *, deny_lans: bool = True) -> Iterator[Certificate]:
    """coturn on the lab's TURN address, as ``nobody``: UDP and TCP on 3478, TLS on
    443, credentials made with :data:`TURN_SECRET`; yields the certificate its TLS
    listener uses (the peers trust its CA).

    With ``deny_lans``, it refuses to relay to the sites' LANs (403), as
    docs/deploy.md has a production coturn refuse private ranges; without, it tries,
    cannot route there, and closes the allocation that asked."""
    with tempfile.TemporaryDirectory(prefix="hubbub-lab-turn-") as name:
        workdir = Path(name)  # under /tmp, where nobody may reach it
        with _coturn(lab, workdir, deny_lans) as certificate:
            yield certificate


@contextlib.contextmanager
def _coturn(lab: Lab, workdir: Path, deny_lans: bool) -> Iterator[Certificate]:
    certificate = make_certificate(workdir / "tls", TURN_ADDRESS)
    _readable_by_all(workdir)
    argv = [
        TURNSERVER, "-n",
        f"--listening-ip={TURN_ADDRESS}", f"--relay-ip={TURN_ADDRESS}",
        f"--listening-port={TURN_PORT}", f"--tls-listening-port={TURNS_PORT}",
        "--min-port=49152", "--max-port=49999",
        "--use-auth-secret", f"--static-auth-secret={TURN_SECRET}", f"--realm={REALM}",
        f"--cert={certificate.cert}", f"--pkey={certificate.key}",
        "--no-dtls", "--no-cli", "--fingerprint", "--no-multicast-peers",
        "--relay-threads=1", f"--pidfile={workdir}/turn.pid", f"--db={workdir}/turndb",
        "--log-file=stdout", "--simple-log",
    ]  # fmt: skip
    if deny_lans:
        argv.append(f"--denied-peer-ip={LAN_PREFIX}.0-{LAN_PREFIX}.255")
    if os.environ.get("HUBBUB_LAB_TURN_VERBOSE"):  # every request coturn answers, logged
        argv.append("--verbose")
    log = (workdir / "turn.log").open("wb")
    process = lab.internet.popen(*argv, user="nobody", stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            _wait_for_port(lab.internet, TURN_ADDRESS, TURNS_PORT, process)
        except RuntimeError as exc:
            raise RuntimeError(f"coturn: {exc}\n{(workdir / 'turn.log').read_text()}") from None
        yield certificate
    finally:
        _stop(process)
        log.close()


def _wait_for_port(
    namespace: Namespace, address: str, port: int, process: subprocess.Popen[Any]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        if _connects(namespace, probe):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {address}:{port}")


def _connects(namespace: Namespace, probe: str) -> bool:
    result = subprocess.run(namespace.argv(sys.executable, "-c", probe), capture_output=True)
    return result.returncode == 0


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def hubbub(lab: Lab, workdir: Path, *args: str, turn: bool = True) -> Iterator[str]:
    """``hubbub serve`` on the lab's hubbub address (open mode), with its STUN server
    on 3478, handing out the lab's coturn over UDP, TCP and TLS when ``turn``; yields
    its URL. Its log is ``workdir/hubbub.log``."""
    turn_args = []
    if turn:
        turn_args = [
            "--turn-uri", f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=udp",
            "--turn-uri", f"turn:{TURN_ADDRESS}:{TURN_PORT}?transport=tcp",
            "--turn-uri", f"turns:{TURN_ADDRESS}:{TURNS_PORT}?transport=tcp",
            "--turn-secret", TURN_SECRET,
        ]  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "hubbub", "serve", "--host", HUBBUB_ADDRESS, "--port", "0",
        "--allow-open-on-network", "--data-dir", str(workdir / "data"), "--stun-port", "3478",
        *turn_args, *args,
    ]  # fmt: skip
    log_path = workdir / "hubbub.log"
    with log_path.open("wb") as log:
        process = lab.internet.popen(
            *argv,
            stderr=log,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        yield _wait_listening(process, log_path)
    finally:
        _stop(process)


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise RuntimeError("hubbub serve exited before listening:\n" + text)
        time.sleep(0.05)
    raise RuntimeError("hubbub serve did not listen in time:\n" + log_path.read_text())


class PythonPeer:
    """A ``tests.network.peer`` process on a lab host."""

    def __init__(self, process: asyncio.subprocess.Process, user: str) -> None:
        self.process = process
        self.user = user

    async def ask(self, command: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"peer {self.user} exited ({await self._stderr()})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"peer {self.user}: {answer.get('error')}")
        return answer

    async def _stderr(self) -> str:
        if self.process.stderr is None:
            return "(logged to HUBBUB_LAB_PEER_LOG_DIR)"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                return (await self.process.stderr.read()).decode(errors="replace")[-3000:]
        return ""


@contextlib.asynccontextmanager
async def python_peer(
    host: Host,
    url: str,
    user: str,
    *,
    room: str = "lab",
    relay: bool = False,
    ca: Path | None = None,
) -> AsyncIterator[PythonPeer]:
    """A Python peer on ``host``, joined to the lab room as ``user`` (trusting the
    lab's CA for TURN over TLS)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-lab-peer-"))
    argv = [sys.executable, "-m", "tests.network.peer", "--url", url, "--user", user,
            "--room", room, "--workdir", str(workdir),
            "--log", os.environ.get("HUBBUB_LAB_PEER_LOG", "warning")]  # fmt: skip
    if relay:
        argv.append("--relay")
    log_dir = os.environ.get("HUBBUB_LAB_PEER_LOG_DIR")  # to keep the peers' logs
    stderr: Any = asyncio.subprocess.PIPE
    if log_dir:
        stderr = (Path(log_dir) / f"{room}-{user}.log").open("ab")
    try:
        process = await host.spawn(
            *argv,
            env=env,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        if log_dir:
            stderr.close()
    peer = PythonPeer(process, user)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"peer {user} exited before joining: {await peer._stderr()}")
        yield peer
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
