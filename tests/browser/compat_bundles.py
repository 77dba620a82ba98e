"""The unmodified npm clients the front-end tests drive, bundled for a page.

``tests/browser/compat/package.json`` pins them (peerjs, y-webrtc with yjs,
trystero's torrent strategy) and esbuild; ``package-lock.json`` pins the rest. They
are installed once into ``tests/browser/compat/node_modules`` (``npm ci``, again
only when the lock file changed) and bundled with esbuild into ``dist/``, each as a
script that sets one global. Nothing comes from a CDN.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent / "compat"
NODE_MODULES = HERE / "node_modules"
DIST = HERE / "dist"

ENTRIES = {
    # global name -> what the bundle exports
    "PeerJS": 'export { Peer } from "peerjs";',
    "YjsWebrtc": 'export * as Y from "yjs"; export { WebrtcProvider } from "y-webrtc";',
    "Trystero": 'export { joinRoom, selfId } from "@trystero-p2p/torrent";',
}


def install() -> None:
    """``npm ci`` unless what is installed was installed from this lock file."""
    lock = HERE / "package-lock.json"
    installed = NODE_MODULES / ".package-lock.json"
    stamp = NODE_MODULES / ".hubbub-lock"
    if stamp.exists() and installed.exists() and stamp.read_bytes() == lock.read_bytes():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (scripts/system-deps.sh installs it)")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm ci failed: {result.stderr.strip()[-2000:]}")
    stamp.write_bytes(lock.read_bytes())


def bundle(name: str) -> str:
    """The bundle that sets ``window.<name>`` (made once, then kept in ``dist/``)."""
    install()
    out = DIST / f"{name}.js"
    stamp = NODE_MODULES / ".hubbub-lock"
    if out.exists() and out.stat().st_mtime >= stamp.stat().st_mtime:
        return out.read_text()
    DIST.mkdir(exist_ok=True)
    entry = DIST / f"{name}.entry.mjs"
    entry.write_text(ENTRIES[name] + "\n")
    result = subprocess.run(
        [
            str(NODE_MODULES / ".bin" / "esbuild"),
            str(entry),
            "--bundle",
            "--format=iife",
            f"--global-name={name}",
            "--platform=browser",
            "--target=chrome110",
            "--define:global=globalThis",
            "--log-level=error",
            f"--outfile={out}",
        ],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"esbuild failed for {name}: {result.stderr.strip()[-2000:]}")
    return out.read_text()
