"""The load generators a scenario's clients can be written with.

``picows`` is ``python -m bench.loadgen`` (picows clients on uvloop, several
messages per write when they come together); ``node`` is ``bench/node/loadgen.js``
(Node's ``ws`` client, one message per write, as browsers send). A server's
figures depend on how its clients write, so the relay, fanout and join storm are
measured with both. The Node generator's ``ws`` is installed from the npm registry
into ``bench/.work/node-loadgen``, as the seed server's is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.servers import REPO, WORK_DIR

PICOWS = "picows"
NODE = "node"
LABELS = {PICOWS: "picows clients", NODE: "Node ws clients"}

NODE_SOURCE = REPO / "bench" / "node"
NODE_RUN_DIR = WORK_DIR / "node-loadgen"


class NodeLoadgen:
    """Finds Node.js and installs ``ws`` for the Node generator."""

    def __init__(self) -> None:
        self.missing: str | None = None
        self.ws_version: str | None = None
        self._prepared = False

    def prepare(self) -> None:
        if self._prepared:
            return
        self._prepared = True
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            self.missing = "Node.js (node and npm) is not installed"
            return
        NODE_RUN_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "loadgen.js"):
            shutil.copyfile(NODE_SOURCE / name, NODE_RUN_DIR / name)
        ws_package = NODE_RUN_DIR / "node_modules" / "ws" / "package.json"
        if not ws_package.is_file():
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--silent"],
                cwd=NODE_RUN_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0 or not ws_package.is_file():
                self.missing = f"npm install of ws failed: {result.stderr.strip()[-300:]}"
                return
        self.ws_version = json.loads(ws_package.read_text())["version"]


NODE_LOADGEN = NodeLoadgen()


def command(loadgen: str, job: str) -> list[str]:
    """The command line of one generator process of this kind."""
    if loadgen == NODE:
        NODE_LOADGEN.prepare()
        return ["node", str(NODE_RUN_DIR / "loadgen.js"), job]
    return [sys.executable, "-m", "bench.loadgen", job]


def missing(loadgen: str) -> str | None:
    """Why this generator cannot run here (None: it can)."""
    if loadgen == NODE:
        NODE_LOADGEN.prepare()
        return NODE_LOADGEN.missing
    return None


def run_dir() -> Path:
    return NODE_RUN_DIR
