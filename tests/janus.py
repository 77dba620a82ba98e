"""A Janus of the test's own: the Debian package's binary with a config written for it
into a temporary folder, run as ``nobody``, inside a network namespace the test makes.

Janus gathers no ICE candidates on loopback interfaces, so each Janus gets a veth pair:
one end in a fresh namespace (where Janus listens and sends its media), the other on
this machine, both addressed from 198.51.100.0/24 (TEST-NET-2, never routed): browsers
and aiortc on this machine reach Janus there, and nothing leaves the machine. The
namespace, and the veth with it, is removed when the test is done; those of a run that
was killed before it could clean up (their names carry its pid) go at the next one's
first Janus, with the Janus left running in them.

Never the package's own service: it runs as root, listens everywhere and ships demo
rooms with known secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubbub.media.janus_config import JanusConfig, write_config

JANUS = "/usr/bin/janus"
WS_PORT = 8188
"""The API's port inside the namespace: free there, whatever runs on this machine."""


def janus_missing_reason() -> str | None:
    if not os.path.exists(JANUS):
        return "janus is not installed (scripts/system-deps.sh installs it)"
    if os.geteuid() != 0:
        return "a network namespace for Janus needs root"
    if any(shutil.which(tool) is None for tool in ("ip", "setpriv", "nft")):
        return "ip, setpriv and nft are needed to run Janus (scripts/system-deps.sh)"
    return None


def needs_janus() -> pytest.MarkDecorator:
    reason = janus_missing_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


PREFIX = "hubbub-janus-"
_NAME = re.compile(rf"{PREFIX}(\d+)-")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def remove_stale_labs() -> list[str]:
    """Remove the namespaces (and the Janus in each) of runs that are gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed = []
    for name in (line.split()[0] for line in listed.splitlines() if line.strip()):
        match = _NAME.match(name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # the run that made it is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)
        removed.append(name)
    return removed


def _subnets_in_use() -> set[int]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    taken = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("198.51.100."):
                taken.add(int(word.split("/")[0].rsplit(".", 1)[1]) // 4)
    return taken


@dataclass
class JanusLab:
    """A namespace with one Janus in it, and the way to reach it."""

    namespace: str
    host_address: str
    """This machine's end of the veth (where the clients' candidates come from)."""
    janus_address: str
    config: JanusConfig
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.janus_address}:{self.config.ws_port}"

    @property
    def api_secret(self) -> str:
        return self.config.api_secret

    @property
    def admin_key(self) -> str:
        return self.config.admin_key

    def serve_args(self) -> list[str]:
        """The ``hubbub serve`` options that name this Janus, each as ``--name=value``:
        a random secret may start with ``-``, which a separate argument cannot."""
        return [
            f"--janus-url={self.url}",
            f"--janus-api-secret={self.api_secret}",
            f"--janus-admin-key={self.admin_key}",
        ]

    @property
    def log(self) -> str:
        path = self.folder / "janus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> None:
        """Start Janus (again, after :meth:`kill`) and wait for its API."""
        self.process = self._spawn()
        async with asyncio.timeout(15):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"janus exited at start:\n{self.log[-3000:]}")
                try:
                    _, writer = await asyncio.open_connection(
                        self.janus_address, self.config.ws_port
                    )
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.folder / "janus.log", "ab") as log:
            return subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.namespace),
                    *("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"),
                    *(JANUS, "-F", str(self.folder), "-C", str(self.folder / "janus.jcfg"), "-o"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """Kill Janus as a crash would (SIGKILL): every room it held is gone."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def cut(self, cut: bool = True) -> None:
        """Cut the way to Janus, or mend it: every packet that reaches its namespace is
        dropped (nftables), nothing closed or refused, as when a network fails."""
        inside = ["netns", "exec", self.namespace, "nft"]
        if cut:
            _ip(*inside, "add table inet hubbub_cut")
            _ip(*inside, "add chain inet hubbub_cut input "
                "{ type filter hook input priority 0; policy drop; }")  # fmt: skip
        else:
            _ip(*inside, "delete table inet hubbub_cut")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def _config_folder(config: JanusConfig) -> Path:
    """A temporary folder with the config, readable by ``nobody``."""
    folder = Path(tempfile.mkdtemp(prefix="hubbub-janus-"))
    folder.chmod(0o755)
    write_config(folder, config)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@asynccontextmanager
async def janus_lab(
    *, start: bool = True, api_secret: str | None = None, admin_key: str | None = None
) -> AsyncIterator[JanusLab]:
    """A Janus in a namespace of its own, removed afterwards (with the secrets given,
    for several instances behind one hubbub, or its own)."""
    remove_stale_labs()
    tag = secrets.token_hex(3)
    namespace = f"{PREFIX}{os.getpid()}-{tag}"
    host_end, ns_end = f"hbj{tag}h", f"hbj{tag}n"
    free = [n for n in range(1, 64) if n not in _subnets_in_use()]
    block = free[secrets.randbelow(len(free))] * 4
    host_address, janus_address = f"198.51.100.{block + 1}", f"198.51.100.{block + 2}"
    config = JanusConfig(
        ws_port=WS_PORT,
        api_secret=api_secret or secrets.token_urlsafe(16),
        admin_key=admin_key or secrets.token_urlsafe(16),
        ws_ip=janus_address,
        rtp_port_range=(20000, 20999),
        ice_enforce_list=ns_end,
    )
    folder = _config_folder(config)
    lab = JanusLab(namespace, host_address, janus_address, config, folder)
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _ip("link", "set", ns_end, "netns", namespace)
        _ip("addr", "add", f"{host_address}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("-n", namespace, "addr", "add", f"{janus_address}/30", "dev", ns_end)
        _ip("-n", namespace, "link", "set", ns_end, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        if start:
            await lab.start()
        yield lab
    finally:
        lab.stop()
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_end)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", namespace)
        shutil.rmtree(folder, ignore_errors=True)
