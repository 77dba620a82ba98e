"""Every scenario, in the order the report shows them.

To add one: a module here with a ``Scenario`` subclass and a ``Driver``, and an
instance of the scenario in ``SCENARIOS`` (see bench/README.md).
"""

from __future__ import annotations

from bench.scenario import Scenario
from bench.scenarios.chat_store import ChatStore
from bench.scenarios.cluster import Cluster
from bench.scenarios.crowd import Crowd
from bench.scenarios.fanout import Fanout
from bench.scenarios.file_transfer import FileTransfer
from bench.scenarios.idle import Idle
from bench.scenarios.join_storm import JoinStorm
from bench.scenarios.peerjs_relay import PeerjsRelay
from bench.scenarios.reconnect_storm import ReconnectStorm
from bench.scenarios.relay import Relay
from bench.scenarios.sfu import SfuPage, SfuRooms
from bench.scenarios.webrtc import WebRTCSetup
from bench.scenarios.ywebrtc_fanout import YWebrtcFanout

SCENARIOS: list[Scenario] = [
    Relay(),
    Fanout(),
    Cluster(),
    ChatStore(),
    JoinStorm(),
    Idle(),
    Crowd(),
    ReconnectStorm(),
    WebRTCSetup(),
    FileTransfer(),
    YWebrtcFanout(),
    PeerjsRelay(),
    SfuRooms(),
    SfuPage(),
]
