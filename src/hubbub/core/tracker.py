"""The WebTorrent tracker front-end: a WebSocket tracker's work over hubbub's rooms.

A swarm (an ``info_hash``) is the room ``tracker:HEX``, and a peer is a member of
it under its ``peer_id`` (in hex), in a member session of its connection (at most
``max_topics_per_connection`` swarms per connection). An announce is answered with
the swarm's counts, and each of its offers goes to a different peer of the swarm
picked at random, on whichever node it is; an answer goes to the peer it names
(``to_peer_id``). A ``stopped`` announce, or the connection's end, takes the peer
out of the swarm. A peer id already in the swarm is refused, unless the newcomer
shows a token (then it takes the place: a client that reconnects).
"""

from __future__ import annotations

from hubbub.auth.grants import Grant, Identity
from hubbub.broker import ClaimOutcome, ClaimResult
from hubbub.core.context import HubContext
from hubbub.core.frontends import FrontendConnection, Frontends
from hubbub.core.rooms import Room
from hubbub.core.session import Session
from hubbub.protocol import tracker
from hubbub.protocol.errors import ErrorCode, ProtocolError

COMPLETE = "complete"
"""A member's status in a swarm when it has everything (``left`` was 0)."""


class TrackerFeature:
    def __init__(self, ctx: HubContext, frontends: Frontends) -> None:
        self.ctx = ctx
        self.frontends = frontends
        self.interval = frontends.settings.tracker_interval
        self.offers = 0
        """Offers handed to peers."""
        self.answers = 0
        """Answers handed to the peers that made the offers."""

    def open(self, link: object, identity: Identity | None) -> Session:
        """A client connected (``identity``: what its ``?token=`` proves)."""
        return self.frontends.connect("tracker", link, identity).session

    def on_announce(self, session: Session, message: tracker.Announce) -> None:
        frontends = self.frontends
        connection = frontends.connection(session)
        if connection is None:
            return
        room_name = message.swarm
        member = connection.members.get(room_name)
        try:
            if message.event == "stopped":
                if member is not None:
                    frontends.leave(connection, room_name)
                room = self.ctx.rooms.get(room_name)
                self._reply(connection, message, room)
                return
            if member is None:
                self._join(connection, message)
                return
            if member.user_id != message.peer:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN, "this connection announced another peer_id in this swarm"
                )
            self._announced(connection, member, message)
        except ProtocolError as error:
            self._fail(connection, error.message, message.info_hash)

    def _join(self, connection: FrontendConnection, message: tracker.Announce) -> None:
        ctx = self.ctx
        frontends = self.frontends
        limits = ctx.limits
        if connection.rooms() >= limits.max_topics_per_connection:
            raise ProtocolError(
                ErrorCode.TOO_MANY_ROOMS,
                f"a connection announces in at most {limits.max_topics_per_connection} swarms",
            )
        owner = connection.session
        identity = ctx.admission.admit(
            room=message.swarm, user_id=None, token=None, shown=owner.identity, ref=None
        )
        member = frontends.new_member(connection)
        try:
            frontends.claim(
                connection,
                member,
                message.swarm,
                message.peer,
                identity,
                replace=identity.verified,
                status=COMPLETE if message.complete else "online",
                answered=lambda result, session: self._joined(connection, session, message, result),
            )
        except ProtocolError:
            frontends.discard(connection, member)
            raise

    def _joined(
        self,
        connection: FrontendConnection,
        member: Session,
        message: tracker.Announce,
        result: ClaimResult,
    ) -> None:
        outcome = result.outcome
        if outcome is ClaimOutcome.ADMITTED:
            self._announced(connection, member, message)
        elif outcome is ClaimOutcome.TAKEN:
            self._fail(connection, "peer_id is in use in this swarm", message.info_hash)
        elif outcome is ClaimOutcome.FULL:
            self._fail(connection, "the swarm has as many peers as it may", message.info_hash)
        else:
            self._fail(
                connection, "the cluster cannot be reached: announce again", message.info_hash
            )

    def _announced(
        self, connection: FrontendConnection, member: Session, message: tracker.Announce
    ) -> None:
        room = member.room
        if room is None:  # pragma: no cover - a member session is in its room
            return
        ctx = self.ctx
        if message.complete and member.status != COMPLETE:
            member.status = COMPLETE
        if (message.offers or message.answer) and not (
            member.identity and member.identity.may(Grant.SIGNAL)
        ):
            self._fail(connection, "offers and answers need the 'signal' grant", message.info_hash)
            return
        if not message.answer:
            self._reply(connection, message, room)
        if message.offers:
            others = [s.session_id for uid, s in room.members.items() if s is not member]
            others.extend(m.session_id for m in ctx.membership.remote_members(room.name))
            count = min(len(message.offers), len(others))
            chosen = ctx.random.sample(others, count)
            publish = ctx.broker.publish_to_session
            for offer, target in zip(message.offers, chosen, strict=False):
                publish(target, tracker.offer(offer, message.peer_id, message.info_hash))
            self.offers += count
        if message.answer and message.to_peer_id is not None:
            found = self.frontends.find(room, tracker.hex_of(message.to_peer_id))
            if found is not None:
                self.answers += 1
                ctx.broker.publish_to_session(
                    found,
                    tracker.answer(
                        message.answer, message.offer_id, message.peer_id, message.info_hash
                    ),
                )

    def on_scrape(self, session: Session, message: tracker.Scrape) -> None:
        counts: dict[str, tuple[int, int]] = {}
        for info_hash in message.info_hashes:
            room = self.ctx.rooms.get(tracker.ROOM_PREFIX + tracker.hex_of(info_hash))
            counts[info_hash] = self._counts(room)
        self.ctx.outbox.send(session, tracker.scrape_reply(counts, self.interval))

    def _reply(
        self, connection: FrontendConnection, message: tracker.Announce, room: Room | None
    ) -> None:
        complete, incomplete = self._counts(room)
        reply = tracker.announce_reply(message.info_hash, complete, incomplete, self.interval)
        self.ctx.outbox.send(connection.session, reply)

    def _counts(self, room: Room | None) -> tuple[int, int]:
        """(complete, incomplete) peers of a swarm, on every node (each remote peer
        as it was when it joined)."""
        if room is None:
            return 0, 0
        statuses = [s.status for s in room.members.values()]
        statuses.extend(m.status for m in self.ctx.membership.remote_members(room.name))
        complete = statuses.count(COMPLETE)
        return complete, len(statuses) - complete

    def _fail(self, connection: FrontendConnection, reason: str, info_hash: str | None) -> None:
        self.frontends.refused["tracker"] += 1
        failure = tracker.failure(reason, "announce" if info_hash else None, info_hash)
        self.ctx.outbox.send(connection.session, failure)

    def refuse(self, connection: FrontendConnection, error: ProtocolError) -> None:
        if isinstance(error, tracker.TrackerError):
            failure = tracker.failure(error.message, error.action, error.info_hash)
        else:
            failure = tracker.failure(error.message)
        self.ctx.outbox.send(connection.session, failure)

    def ended(self, connection: FrontendConnection) -> None:
        pass
