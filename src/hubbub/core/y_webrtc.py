"""The y-webrtc front-end: the signaling server of Yjs's WebRTC provider over
hubbub's rooms.

A topic is the room ``y-webrtc:TOPIC``. A connection subscribes with a member
session in each of its topics (at most ``max_topics_per_connection``), under an id
of its own that no client sees; a publish goes to every subscriber of the topic on
every node, the publisher included, with ``clients`` (the subscribers, cluster-wide)
added, encoded once. A publish to a topic the connection did not subscribe to is
refused (the reference server delivers it). With a token, each topic must be one
of the token's rooms (``y-webrtc:doc-*``).
"""

from __future__ import annotations

from hubbub.auth.grants import Grant, Identity
from hubbub.broker import ClaimOutcome, ClaimResult
from hubbub.core.context import HubContext
from hubbub.core.frontends import Answered, FrontendConnection, Frontends
from hubbub.core.session import Session
from hubbub.protocol import y_webrtc
from hubbub.protocol.errors import ErrorCode, ProtocolError, check_name


class YWebrtcFeature:
    def __init__(self, ctx: HubContext, frontends: Frontends) -> None:
        self.ctx = ctx
        self.frontends = frontends

    def open(self, link: object, identity: Identity | None) -> Session:
        """A client connected (``identity``: what its ``?token=`` proves)."""
        return self.frontends.connect("y-webrtc", link, identity).session

    def on_subscribe(self, session: Session, message: y_webrtc.Subscribe) -> None:
        frontends = self.frontends
        connection = frontends.connection(session)
        if connection is None:
            return
        ctx = self.ctx
        limits = ctx.limits
        for topic in message.topics:
            room = y_webrtc.room_name(topic)
            if room in connection.members or room in connection.claims:
                continue
            try:
                check_name(room, "topic", limits.max_room_name_length, None)
                if connection.rooms() >= limits.max_topics_per_connection:
                    raise ProtocolError(
                        ErrorCode.TOO_MANY_ROOMS,
                        f"a connection subscribes to at most {limits.max_topics_per_connection} "
                        "topics",
                    )
                identity = ctx.admission.admit(
                    room=room, user_id=None, token=None, shown=session.identity, ref=None
                )
                member = frontends.new_member(connection)
                try:
                    frontends.claim(
                        connection,
                        member,
                        room,
                        member.session_id,
                        identity,
                        replace=False,
                        answered=self._answer_for(connection, topic),
                    )
                except ProtocolError:
                    frontends.discard(connection, member)
                    raise
            except ProtocolError as error:
                self._refuse(connection, error, topic)

    def _answer_for(self, connection: FrontendConnection, topic: str) -> Answered:
        def answered(result: ClaimResult, member: Session) -> None:
            self._subscribed(connection, topic, result)

        return answered

    def _subscribed(self, connection: FrontendConnection, topic: str, result: ClaimResult) -> None:
        outcome = result.outcome
        if outcome is ClaimOutcome.ADMITTED:
            return
        if outcome is ClaimOutcome.FULL:
            error = ProtocolError(
                ErrorCode.ROOM_FULL, "the topic has as many subscribers as it may"
            )
        else:
            error = ProtocolError(
                ErrorCode.CLUSTER_UNAVAILABLE, "the cluster cannot be reached: subscribe again"
            )
        self._refuse(connection, error, topic)

    def on_unsubscribe(self, session: Session, message: y_webrtc.Unsubscribe) -> None:
        connection = self.frontends.connection(session)
        if connection is None:
            return
        for topic in message.topics:
            self.frontends.leave(connection, y_webrtc.room_name(topic))

    def on_publish(self, session: Session, message: y_webrtc.Publish) -> None:
        connection = self.frontends.connection(session)
        if connection is None:
            return
        room_name = y_webrtc.room_name(message.topic)
        member = connection.members.get(room_name)
        room = member.room if member is not None else None
        if room is None:
            error = ProtocolError(ErrorCode.NOT_IN_ROOM, "subscribe to the topic to publish to it")
            self._refuse(connection, error, message.topic)
            return
        if member is None or not (member.identity and member.identity.may(Grant.SIGNAL)):
            error = ProtocolError(ErrorCode.FORBIDDEN, "publishing needs the 'signal' grant")
            self._refuse(connection, error, message.topic)
            return
        payload = y_webrtc.published(message.topic, message.data, self.frontends.size(room))
        self.ctx.broker.publish_to_room(room_name, payload, None)

    def on_ping(self, session: Session, message: y_webrtc.Ping) -> None:
        self.ctx.outbox.send(session, y_webrtc.PONG)

    def _refuse(self, connection: FrontendConnection, error: ProtocolError, topic: str) -> None:
        self.frontends.refused["y-webrtc"] += 1
        self.ctx.counters.errors[error.code] += 1
        self.ctx.outbox.send(
            connection.session, y_webrtc.error(error.code.value, error.message, topic[:128])
        )

    def refuse(self, connection: FrontendConnection, error: ProtocolError) -> None:
        self.ctx.outbox.send(connection.session, y_webrtc.error(error.code.value, error.message))

    def ended(self, connection: FrontendConnection) -> None:
        pass
