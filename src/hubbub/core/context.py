"""What every feature of the hub shares: the registries, the limits, the clocks, the
way out (outbox, broker, membership, storage), the timers and the waiting queues,
and each other.

The :class:`~hubbub.core.hub.Hub` builds one :class:`HubContext` and one object per
feature over it (joining, chat, presence, calls, notifications, resume, cluster
events, ICE servers, the sessions' lifecycle); a feature reaches another through
the context (``ctx.joining.leave(...)``). Nothing here does I/O: every message goes
out through the outbox or the broker, every store request through the storage.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hubbub.auth.admission import Admission
from hubbub.broker import Broker, Membership
from hubbub.core.calls import CallRegistry
from hubbub.core.counters import HubCounters
from hubbub.core.events import HubObserver
from hubbub.core.limits import Limits
from hubbub.core.outbox import Outbox
from hubbub.core.rooms import Room, RoomMessage, RoomRegistry
from hubbub.core.session import LinkState, Session
from hubbub.core.storage import Storage
from hubbub.core.timers import Timers
from hubbub.core.users import UserRegistry
from hubbub.core.waiting import Waiting
from hubbub.protocol import codec
from hubbub.protocol.errors import CloseCode, ProtocolError
from hubbub.protocol.messages import Error, Outgoing
from hubbub.store import Retention

if TYPE_CHECKING:
    from hubbub.core.calling import Calling
    from hubbub.core.chat import ChatFeature
    from hubbub.core.cluster import ClusterEvents
    from hubbub.core.frontends import Frontends
    from hubbub.core.handover import Handover
    from hubbub.core.ice import IceFeature
    from hubbub.core.joining import Joining
    from hubbub.core.lifecycle import Lifecycle
    from hubbub.core.media import MediaFeature
    from hubbub.core.notifications import Notifications
    from hubbub.core.ordering import ChatOrdering
    from hubbub.core.presence import PresenceFeature
    from hubbub.core.resuming import Resuming


class HubContext:
    """The shared state of one hub, and the few moves every feature makes."""

    # The features, set by the hub once each is built.
    calling: Calling
    chat: ChatFeature
    cluster: ClusterEvents
    frontends: Frontends
    handover: Handover
    ice: IceFeature
    joining: Joining
    lifecycle: Lifecycle
    media: MediaFeature
    notifications: Notifications
    ordering: ChatOrdering
    presence: PresenceFeature
    resuming: Resuming

    def __init__(
        self,
        *,
        outbox: Outbox,
        storage: Storage,
        broker: Broker,
        membership: Membership,
        limits: Limits,
        admission: Admission,
        observer: HubObserver,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        history_on_join: int = 50,
        offline_on_join: int = 50,
        retention: Retention | None = None,
        waiting: Waiting,
    ) -> None:
        self.outbox = outbox
        self.storage = storage
        self.broker = broker
        self.membership = membership
        self.limits = limits
        self.admission = admission
        self.observer = observer
        self.clock = clock
        self.wall_clock = wall_clock
        self.random = rng or random.Random()
        self.history_on_join = history_on_join
        self.offline_on_join = offline_on_join
        self.retention = retention
        self.rooms = RoomRegistry(recent=history_on_join)
        self.sessions: dict[str, Session] = {}
        self.users = UserRegistry()
        self.calls = CallRegistry()
        self.counters = HubCounters()
        self.timers = Timers()
        self.waiting = waiting
        self.stop_spread_ms = 0
        """While stopping: the spread of the clients' ``reconnect`` delays (ms)."""
        self.membership_calls = 0
        """Calls to the membership under way: its answer may come back inside one
        (the in-memory twin answers at once). See :meth:`ask_membership`."""

    # -- time -----------------------------------------------------------------------

    def now(self) -> float:
        """The core's clock (monotonic seconds): deadlines and rates."""
        return self.clock()

    def now_ms(self) -> int:
        """Wall-clock milliseconds since the epoch: what clients are told."""
        return int(self.wall_clock() * 1000)

    # -- sending --------------------------------------------------------------------

    def send(self, session: Session, message: Outgoing) -> None:
        """One message to one session."""
        self.outbox.send(session, codec.encode(message))

    def send_error(self, session: Session, error: ProtocolError) -> None:
        """Refuse: the ``error`` message, and the close it calls for, if any."""
        self.counters.errors[error.code] += 1
        if not self.frontends.refuse(session, error):
            reply = Error(
                code=error.code,
                message=error.message,
                ref=error.ref,
                reason=error.reason,
                held_for_ms=error.held_for_ms,
            )
            self.outbox.send(session, codec.encode(reply))
        if error.close_code is not None:
            session.closing = True
            self.outbox.close(session, error.close_code, error.message)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        """Close a session's connection; none of its input is read any more. A
        detached session has no connection: it is over at once."""
        session.closing = True
        if session.state is LinkState.DETACHED:
            self.lifecycle.end(session)
            return
        self.outbox.close(session, code, reason)

    def room_broadcast(self, room: Room, payload: bytes, exclude: str | None) -> None:
        """What the room gets (heard from the cluster, or decided here) to its members
        here, and to the sessions being taken into it from other nodes."""
        self.outbox.broadcast(room.members.values(), payload, exclude)
        if room.recorders:
            self.handover.keep(room, None, payload, exclude)

    def publish_in_order(self, room: Room, payload: bytes, exclude: str | None) -> None:
        """A message for the room's members, in its place: behind what was taken for
        the room before it and has not gone yet (chat on its way to the store and
        what waits behind it), at once when nothing has."""
        if room.busy and not room.releasing:
            room.pending.append((room.chats_queued, RoomMessage(payload, exclude)))
        else:
            self.broker.publish_to_room(room.name, payload, exclude)

    def ask_membership(self, ask: Callable[[], object]) -> None:
        """Call the membership (``ask``), whose answer may come back before the call
        returns: held messages are not handled until the caller's work is done."""
        self.membership_calls += 1
        try:
            ask()
        finally:
            self.membership_calls -= 1
