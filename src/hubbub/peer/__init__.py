"""WebRTC peers for Python on aiortc, speaking ``docs/peer-protocol.md``.

::

    from hubbub.client import Client
    from hubbub.peer import Mesh

    async with Client(url, room="r", user="bot") as client, Mesh(client) as mesh:
        peer = await mesh.wait_for_peer("alice")
        channel = await peer.open_channel("game", ordered=False, max_retransmits=0)

Needs the ``peer`` extra (``pip install 'hubbub[peer]'``). See ``docs/python.md``.
"""

from hubbub.peer.files import FileInbox, FileOffer, TransferResult
from hubbub.peer.media import MediaSource, Recording, TestPatternTrack, ToneTrack, consume_frames
from hubbub.peer.mesh import Mesh, Peer, PeerClosed
from hubbub.peer.sfu import JOIN_FIELDS, SfuMedia

__all__ = [
    "JOIN_FIELDS",
    "FileInbox",
    "FileOffer",
    "MediaSource",
    "Mesh",
    "Peer",
    "PeerClosed",
    "Recording",
    "SfuMedia",
    "TestPatternTrack",
    "ToneTrack",
    "TransferResult",
    "consume_frames",
]
