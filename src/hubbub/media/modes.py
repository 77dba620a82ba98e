"""Whether a room's calls go peer to peer (mesh) or through the media server (SFU):
the one table that decides it.

A room's *setting* is ``auto`` (the server's ``--media-mode`` unless a backend set
the room's own), ``mesh`` or ``sfu``. In ``auto`` the number of members who send a
camera or a microphone decides, with a gap between the two ways so that one member
coming and going does not move the call back and forth: past ``mesh_max`` senders the
call moves to the SFU, and it comes back to a mesh only once it is down to
:data:`BACK_TO_MESH_AT`, where a mesh costs each member one stream up and one down.
Without a media server, every setting is ``mesh``.
"""

from __future__ import annotations

from enum import StrEnum


class MediaSetting(StrEnum):
    """What a room's mode is set to."""

    AUTO = "auto"
    MESH = "mesh"
    SFU = "sfu"


class Mode(StrEnum):
    """How a room's calls go now."""

    MESH = "mesh"
    SFU = "sfu"


BACK_TO_MESH_AT = 2
"""Senders at or below which a call in ``auto`` comes back from the SFU to a mesh."""


def next_mode(
    setting: MediaSetting, now: Mode, senders: int, mesh_max: int, *, sfu_available: bool
) -> Mode:
    """The mode a room is to be in, given what it is ``now``.

    ===========  ==============  =====================================
    setting      now             next
    ===========  ==============  =====================================
    any          (no SFU)        mesh
    mesh         any             mesh
    sfu          any             sfu
    auto         mesh            sfu when senders > mesh_max, else mesh
    auto         sfu             mesh when senders <= 2, else sfu
    ===========  ==============  =====================================

    (With ``mesh_max`` under 2, back to mesh at ``mesh_max`` senders or fewer.)
    """
    if not sfu_available or setting is MediaSetting.MESH:
        return Mode.MESH
    if setting is MediaSetting.SFU:
        return Mode.SFU
    if now is Mode.MESH:
        return Mode.SFU if senders > mesh_max else Mode.MESH
    return Mode.MESH if senders <= min(BACK_TO_MESH_AT, mesh_max) else Mode.SFU
