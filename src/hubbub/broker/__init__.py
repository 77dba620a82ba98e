"""How a message reaches the members of a room, one session, and one user, and,
in a cluster, who is in a room.

The hub publishes; the broker delivers to the subscribers it knows, by calling back
the :class:`Delivery` it was given. The in-memory broker (the default) delivers
at once, in-process; a clustered broker (:mod:`hubbub.broker.redis`) carries the
same calls between nodes.

The :class:`Membership` is the one place that says who is in a room across nodes,
so that a user id is taken once cluster-wide, and which users are connected and in
a call, so that a call reaches its callee wherever it is and ``busy`` holds
cluster-wide. It also carries a session from one node to another (its client came
back through another node, or its node stops), cut at one point of its room's order:
what came before was the old node's to deliver, what comes after is the new one's.
The clustered broker is also the cluster's membership; on a lone node,
:class:`~hubbub.broker.memory.LocalMembership` answers every question at once from
the node's own truth. The hub asks the same questions either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import msgspec

from hubbub.media.modes import MediaSetting, Mode
from hubbub.protocol.messages import MediaFeed


class ChatItem(NamedTuple):
    """One stored chat message on its way to a room's members."""

    seq: int
    relay: bytes | None
    """The ``chat`` its room's members get; ``None``: nothing, it was a duplicate."""
    sender: str
    """The sender's session id: it gets the ack instead of the relay."""
    ack: bytes | None
    """The sender's ``chat-ack``; ``None`` when the sender is on another node (that
    node acknowledges it)."""
    stored: Any = None
    """What the node that stored it keeps of it (opaque to a broker, which hands it
    back as it is)."""


ChatRun = list[ChatItem]
"""Stored chat of one room, in ``seq`` order."""


class Delivery(Protocol):
    """What a broker calls back to hand a message to this node's clients."""

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        """Send ``payload`` to every local member of ``room`` but session ``exclude``."""

    def deliver_chat(self, room: str, run: ChatRun) -> None:
        """Stored chat, stored here or by another node: each relay to every local
        member of ``room`` but its sender, each ack (if any: this node stored it) to
        its sender. Runs of a room come in the order the cluster carried them, which
        may not be ``seq`` order: the hub puts them in order."""

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        """Send ``payload`` to the local session ``session_id``, if it is here."""

    def deliver_to_user(self, user_id: str, payload: bytes, exclude: str | None) -> None:
        """Send ``payload`` to every local connection of ``user_id`` but session ``exclude``."""


class Broker(Protocol):
    """Publishes room and session messages to wherever their receivers are."""

    def attach(self, delivery: Delivery) -> None:
        """Start delivering to ``delivery`` (this node's hub)."""

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        """Every member of ``room``, wherever connected, but session ``exclude``."""

    def publish_chat(self, room: str, run: ChatRun) -> None:
        """Chat stored by this node for ``room``: relayed to every member, wherever
        connected, and acknowledged to its senders (see :data:`ChatRun`)."""

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        """One session, wherever connected."""

    def lag_seconds(self) -> float:
        """How far deliveries lag behind publications now (for the metrics)."""

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        """Every connection of ``user_id``, wherever connected, but session ``exclude``.

        Published once per user, not once per connection: a clustered broker
        carries one message to each node, and each node fans it out locally.
        """

    # -- lifecycle, health, metrics -------------------------------------------------

    async def start(self) -> None:
        """Before the server serves: a clustered broker joins its cluster (with the
        cluster unreachable, it starts apart from it and keeps trying)."""

    async def stop(self) -> None:
        """After the last session left: send what is queued, leave the cluster. A
        second call does nothing."""

    async def health(self) -> bool:
        """True while the broker reaches wherever receivers are (``/readyz``)."""

    def status(self) -> ClusterStatus | None:
        """This node's link to its cluster (``/metrics``, ``GET /api/server``); None
        for a broker with no cluster."""

    async def room_members(self, room: str) -> list[Member] | None:
        """Every member of ``room`` on every node of the cluster, for the HTTP API on
        a node that may hold none of them; None for a broker with no cluster (this
        node's rooms are the whole truth). Raises ``ConnectionError`` (or a subclass
        of ``OSError``) when the cluster cannot be asked."""

    async def rooms(
        self, limit: int, after: str | None = None
    ) -> list[tuple[str, list[Member]]] | None:
        """The rooms with members on any node of the cluster, by name (code point
        order), after ``after``, at most ``limit``, each with every member in join
        order; None for a broker with no cluster. Raises as :meth:`room_members`."""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """A clustered broker's link to the rest of the cluster."""

    node: str
    """This node's id."""
    connected: bool
    """It reaches the cluster and hears what is published there."""
    sent: int
    """Operations sent to the cluster (publications and membership changes)."""
    dropped: int
    """Operations dropped: too many waiting, or the cluster unreachable."""
    pending: int
    """Operations waiting to be sent, or for their answer."""
    lag_seconds: float
    """How long the oldest of them has waited."""


# -- cluster membership ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """A room member as the cluster knows it."""

    user_id: str
    session_id: str
    name: str | None = None
    grants: list[str] | None = None
    hidden: bool = False
    status: str = "online"
    """Its presence status (kept up to date: :meth:`Membership.update`)."""
    reconnecting: bool = False
    """Its connection was lost and it may resume (``participant-updated``)."""


class ClaimOutcome(StrEnum):
    ADMITTED = "admitted"
    TAKEN = "taken"
    """The user id is in the room already and the newcomer may not replace it."""
    FULL = "full"
    UNAVAILABLE = "unavailable"
    """The cluster could not be asked (Redis unreachable)."""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    members: list[Member]
    """Everyone in the room after the claim, the claimant included, in join order."""
    replaced: Member | None = None
    """Whom the claimant took the place of (same user id, ``replace`` allowed)."""
    media: SharedMedia | None = None
    """The room's calls as the cluster had them at the claim (None: no member of
    any node takes part in them, or this node holds the whole truth)."""


# -- calls through the media server ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ModeRule:
    """What decides a room's mode (:func:`hubbub.media.modes.next_mode`): the
    server's settings, the same on every node of a cluster."""

    default: MediaSetting
    mesh_max: int
    sfu_available: bool


class SharedMedia(msgspec.Struct, frozen=True):
    """A room's calls as the cluster has them: its mode, decided once for every node
    from every node's senders, and the feeds of its members on the media server,
    whichever node they are connected to. Each change has a higher ``version``
    (across rooms and their lifetimes): a node applies only what is newer than what
    it has."""

    version: int
    mode: Mode
    feeds: list[MediaFeed]
    setting: MediaSetting | None = None
    """The room's own setting (a backend set it), if any."""
    reason: str = "auto"
    """Why the last change was made (``auto``, ``setting``...)."""


class CallPlacement(StrEnum):
    """The cluster's answer to :meth:`Membership.place_call`."""

    PLACED = "placed"
    """Both parties were free and the callee connected: it rings."""
    ALREADY_IN_CALL = "already-in-call"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    """The callee has no connection on a live node."""
    CLUSTER_UNAVAILABLE = "cluster-unavailable"
    """The cluster could not be asked (Redis unreachable)."""


class CallRoute(StrEnum):
    """Where :meth:`Membership.call_move` sent a move."""

    HERE = "here"
    """The call id names this node, or none: the call is this node's to find."""
    SENT = "sent"
    """To the node the call id names (the caller's)."""
    UNREACHABLE = "unreachable"
    """It names another node, but Redis cannot be reached: nothing was sent."""


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """A session as one node hands it to another (its client came back there, or its
    node stops): everything the session is, and what it was sent lately."""

    session_id: str
    """Its id on the node that hands it over."""
    room: str
    user_id: str
    resume_token: str
    identity_user_id: str | None
    """What the session proved (its token), or None (open mode)."""
    room_names: list[str]
    room_prefixes: list[str]
    grants: list[str]
    name: str | None = None
    verified: bool = False
    expires_at: float | None = None
    hidden: bool = False
    status: str = "online"
    chatted: bool = False
    typing: bool = False
    last_n: int = 0
    """The ``n`` of the last message sent in the session."""
    replay: list[bytes] = []
    """The last messages it was sent, numbered up to ``last_n``."""
    seq: int = 0
    """The ``seq`` of the last chat of its room it was sent (the room's, on its node)."""
    lost_for: float | None = None
    """Seconds since its connection was lost, if it was (its grace period runs on)."""
    sfu: bool = False
    """It takes part in calls through the media server (``features: ["sfu"]``)."""
    sending: bool = False
    """It said it sends (``media-sending``): its room's mode counts it."""


class Located(StrEnum):
    """Where :meth:`Membership.find_session` found a session."""

    HERE = "here"
    """It moved to this node meanwhile: resume it here."""
    THERE = "there"
    """On another node, which offers to hand it over: take it (``take_session``)."""
    UNKNOWN = "unknown"
    """No node has it with that token (or its node did not answer)."""
    NODE_GONE = "node-gone"
    """The node that held it is dead; what that node had of it is lost."""


@dataclass(frozen=True, slots=True)
class SessionFound:
    """The answer to :meth:`Membership.find_session`."""

    located: Located
    session_id: str = ""
    """Its id where it is now."""
    room: str = ""
    user_id: str = ""


class MembershipEvents(Protocol):
    """What a cluster membership calls back on this node's hub."""

    def claim_answered(self, session_id: str, result: ClaimResult) -> None:
        """The answer to :meth:`Membership.claim` for local session ``session_id``."""

    def members_changed(self, room: str, joined: list[Member], left: list[Member]) -> None:
        """Members came or went without announcing it themselves (a dead node reaped,
        a node back after an outage): tell this node's members of ``room``."""

    def close_session(self, session_id: str, code: int, reason: str, announce: bool) -> None:
        """Another node asks to take local session ``session_id`` out of its room and
        close it (replaced, removed by an admin). ``announce``: send ``user-left``."""

    def local_members(self) -> dict[str, list[Member]]:
        """Every member on this node, by room (to set Redis right after an outage)."""

    def seen(self, room: str, user_id: str, ts_ms: int) -> None:
        """A member who chatted in ``room`` left it through another node, last seen
        at ``ts_ms``: this node's room keeps it among its offline members."""

    def room_ended(self, room: str) -> None:
        """Another node ended ``room`` (an admin): end it for this node's members."""

    def call_placed(self, call_id: str, outcome: CallPlacement) -> None:
        """The answer to :meth:`Membership.place_call` for a call of this node."""

    def media_changed(self, room: str, media: SharedMedia) -> None:
        """``room``'s calls changed (mode, feeds, setting), through this node or
        another: what this node has of them is replaced, if ``media`` is newer."""

    # -- sessions handed between nodes ----------------------------------------------

    def session_asked(self, session_id: str, resume_token: str, asked_by: str) -> None:
        """Another node's session ``asked_by`` (a client that came back there) asks
        for local session ``session_id`` with its token: answer with
        :meth:`Membership.offer_session` (at once, or once it can be handed over)."""

    def session_found(self, asked_by: str, found: SessionFound) -> None:
        """The answer to :meth:`Membership.find_session` asked for local session
        ``asked_by``."""

    def taking(
        self, room: str, session_id: str, taken_by: str, media: SharedMedia | None = None
    ) -> None:
        """This node's mark for local session ``taken_by`` came back on ``room``'s
        channel: what the room gets from here on is ``taken_by``'s (it holds it until
        the state of ``session_id`` arrives: :meth:`session_handed`); ``media``: the
        room's calls at the mark, if it has any."""

    def session_cut(self, room: str, session_id: str, taken_by: str) -> SessionState | None:
        """Another node marked, in ``room``'s order, where its session ``taken_by``
        takes local session ``session_id``'s place: what the room gets from here on
        is no longer this session's. Its state, for the other node (the session is
        gone from here); None if it is no longer here to give."""

    def session_handed(self, taken_by: str, state: SessionState | None) -> None:
        """The state of the session local session ``taken_by`` took, or None: it was
        gone meanwhile, or its node did not answer in time."""

    def adopt(self, session_id: str, resume_token: str, room: str, user_id: str) -> None:
        """Another node stops and asks this one to take its session ``session_id``
        (whose client will come back): take it (``take_session``) and keep it for its
        client, as a session whose connection was lost."""

    def call_moved(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None,
    ) -> None:
        """A party's move on a call of this node, made through another node: a
        client's (``accept``, ``decline``, ``cancel``, ``hang-up``) from its session
        ``session_id`` with its ``ref``, or that node's word that the callee's
        connection in the call closed (``callee-gone``) or left ``room`` (``left``);
        or the cluster's word that ``user_id`` has no connection left anywhere
        (``callee-gone`` from session ``""``)."""


class Membership(Protocol):
    """Who is in which room, across every node of a cluster.

    Claims are atomic: of two nodes admitting the same user id into a room at once,
    one gets it.
    """

    def attach_members(self, events: MembershipEvents) -> None: ...

    def new_session_id(self) -> str:
        """A session id that names this node, so that a message to it is routed here."""

    def claim(
        self,
        room: str,
        member: Member,
        *,
        replace: bool,
        max_members: int,
        joined: bytes | None = None,
        left: bytes | None = None,
    ) -> None:
        """Put ``member`` in ``room`` unless its user id is there already (``replace``:
        take its place) or the room holds ``max_members``. Answered with
        :meth:`MembershipEvents.claim_answered`.

        ``joined`` (the newcomer's ``user-joined``) and ``left`` (the ``user-left`` of
        the one it replaces, unless hidden) reach the room's members on other nodes
        in the same step as the claim: a node that joins the room at the same time
        either lists the newcomer or hears of it, never both. An admitted member's
        user is reachable on this node from the answer on, as after
        :meth:`user_here` (a call placed from any node once the join is acknowledged
        finds it); the hub says :meth:`user_here` ``False`` if it never takes it in."""

    def release(self, room: str, member: Member, last_seen: int | None = None) -> None:
        """``member`` left ``room`` (announced by the hub itself). ``last_seen``: it
        chatted there, and is one of the room's offline members from then on, last
        seen at that time (ms since the epoch): the other nodes' rooms keep it too
        (:meth:`MembershipEvents.seen`)."""

    def update(self, room: str, member: Member) -> None:
        """``member``'s status or connection changed: what the cluster lists of it
        changes (its room hears it from the hub, as a room message)."""

    def remote_member(self, room: str, user_id: str) -> Member | None:
        """The member of ``room`` with ``user_id`` on another node, if any."""

    def remote_members(self, room: str) -> list[Member]:
        """Every member of ``room`` on other nodes."""

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        """Have ``member``'s node close its session (see ``close_session``)."""

    def end_room_elsewhere(self, room: str) -> None:
        """Every other node takes its members out of ``room`` and closes their
        connections (``room_ended``): one message, whatever the number of members."""

    def user_here(self, user_id: str, here: bool) -> None:
        """``user_id`` has its first connection on this node (``here``), or its last
        one here closed: the cluster knows where each user can be reached."""

    def connected_elsewhere(self, user_id: str) -> bool:
        """Whether ``user_id`` may have a connection on another node. If so, a call
        ringing for it rings on when its connections here close, and the membership
        tells the call's node when the user's last connection anywhere has closed (a
        ``callee-gone`` move from session ``""``: see
        :meth:`MembershipEvents.call_moved`)."""

    def place_call(self, call_id: str, caller: str, callee: str, ringing: bytes) -> None:
        """Atomically: unless the caller or callee is in a call, or the callee has
        no connection, mark both as in call ``call_id`` and send ``ringing`` (the
        ``call-incoming``) to the callee's connections on other nodes. Answered with
        :meth:`MembershipEvents.call_placed`."""

    def call_over(self, call_id: str, caller: str, callee: str) -> None:
        """Call ``call_id`` (placed here) ended: both parties are free again."""

    # -- calls through the media server ---------------------------------------------
    # Each change reaches every node with members in the room, this one included, as
    # MembershipEvents.media_changed (at once on a lone node).

    def count_senders(self, room: str, senders: int, rule: ModeRule | None, reason: str) -> None:
        """This node's members of ``room`` who send are ``senders`` now (0: it has
        members there still). The room's mode is decided again from every node's
        senders with ``rule``, once for the cluster; not with ``rule`` None (a
        session moved between nodes: nobody's sending changed, and the count is in
        between two nodes' words)."""

    def share_feed(self, room: str, user_id: str, feed: MediaFeed | None) -> None:
        """The feed of this node's member ``user_id`` is up (or gone, ``None``)."""

    def set_media_setting(self, room: str, setting: MediaSetting | None, rule: ModeRule) -> None:
        """A backend set ``room``'s mode (``None``: back to the server's default); it
        holds whether the room has members or not."""

    def media_done(self, room: str, handed_to: str | None = None) -> None:
        """This node has no member in ``room`` any more (its feeds were withdrawn
        first): its senders count no longer. With ``handed_to`` (a session id of
        another node: its last member moved there), its count goes to that node's,
        which counts anew when it has its member, and the mode is not decided."""

    def call_move(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None = None,
    ) -> CallRoute:
        """If ``call_id`` names another node (the caller's, where the call lives),
        send it the move (see :meth:`MembershipEvents.call_moved`)."""

    # -- sessions handed between nodes ----------------------------------------------

    def find_session(self, session_id: str, resume_token: str, asked_by: str) -> bool:
        """``session_id`` is not a session of this node: find where it is now (it
        may have moved), and have that node offer it to local session ``asked_by``,
        whose client came back here with ``resume_token``. Answered with
        :meth:`MembershipEvents.session_found`. False (and no answer) when the id
        names no node of a cluster (a lone node's sessions are all here), or the
        cluster cannot be asked."""

    def take_session(self, room: str, session_id: str, taken_by: str) -> None:
        """Take ``session_id`` (found, or to adopt) for local session ``taken_by``:
        once this node hears ``room``, mark in the room's order where ``taken_by``
        takes its place (:meth:`MembershipEvents.taking` here,
        :meth:`MembershipEvents.session_cut` on its node); its state follows
        (:meth:`MembershipEvents.session_handed`), and ``taken_by`` is a member of
        ``room`` in its place from then on (released as any member)."""

    def offer_session(
        self, asked_by: str, session_id: str, room: str = "", user_id: str = "", moved_to: str = ""
    ) -> None:
        """The answer to :meth:`MembershipEvents.session_asked`: the session is here,
        in ``room`` as ``user_id``, to be taken; or it moved on to ``moved_to`` (ask
        there); or neither (no such session with that token: refused)."""

    def give_session(self, session_id: str, resume_token: str, room: str, user_id: str) -> bool:
        """This node stops: ask a live node to take local session ``session_id``
        (:meth:`MembershipEvents.adopt` there). False when no other node is there
        to take it, or the cluster cannot be asked."""


__all__ = [
    "Broker",
    "CallPlacement",
    "CallRoute",
    "ChatItem",
    "ChatRun",
    "ClaimOutcome",
    "ClaimResult",
    "ClusterStatus",
    "Delivery",
    "Located",
    "Member",
    "Membership",
    "MembershipEvents",
    "ModeRule",
    "SessionFound",
    "SessionState",
    "SharedMedia",
]
