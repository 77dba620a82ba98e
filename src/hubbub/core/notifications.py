"""Notifications: stored per user, delivered live to every connection of the user
(wherever connected), listed on connect and on request, marked read from any of
them."""

from __future__ import annotations

from hubbub.core.calling import identified
from hubbub.core.context import HubContext
from hubbub.core.session import Session
from hubbub.protocol import codec
from hubbub.protocol.errors import ErrorCode, ProtocolError
from hubbub.protocol.messages import (
    GetNotifications,
    MarkNotificationsRead,
    NotificationEntry,
    NotificationList,
    NotificationPush,
    NotificationsRead,
    Ref,
)
from hubbub.store import Notification


class Notifications:
    """``notifications``, ``notification-read``, and notifications going live."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def on_get_notifications(self, session: Session, message: GetNotifications) -> None:
        ctx = self.ctx
        ref = message.ref
        user_id = identified(session, ref)
        most = ctx.limits.max_notification_page
        limit = most if message.limit is None else min(message.limit, most)  # 1 and up
        ctx.storage.load_notifications(session.session_id, user_id, limit, ref, True)

    def on_mark_notifications_read(self, session: Session, message: MarkNotificationsRead) -> None:
        ctx = self.ctx
        ref = message.ref
        user_id = identified(session, ref)
        ids = list(dict.fromkeys(message.ids))
        if not ids:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "ids must not be empty", ref=ref)
        most = ctx.limits.max_notification_page
        if len(ids) > most:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"ids holds at most {most} ids", ref=ref)
        ctx.storage.mark_notifications_read(session.session_id, user_id, ids, ref)

    def load_unread(self, session: Session, user_id: str) -> None:
        """The connection was just addressed as ``user_id``: its unread notifications
        are on their way (sent only if there are any)."""
        ctx = self.ctx
        limit = ctx.limits.max_notification_page
        ctx.storage.load_notifications(session.session_id, user_id, limit, None, False)

    def notify(self, notification: Notification) -> int:
        ctx = self.ctx
        user_id = notification.user_id
        payload = notification.payload
        push = NotificationPush(
            id=notification.id,
            ts=notification.ts,
            title=payload.get("title"),
            body=payload.get("body"),
            data=payload.get("data"),
        )
        ctx.broker.publish_to_user(user_id, codec.encode(push))
        return len(ctx.users.sessions(user_id))

    def notifications_read(self, user_id: str, ids: list[int]) -> None:
        if ids:
            payload = codec.encode(NotificationsRead(ids=ids))
            self.ctx.broker.publish_to_user(user_id, payload)

    def notifications_loaded(
        self,
        session_id: str,
        user_id: str,
        notifications: list[Notification],
        more: bool,
        ref: Ref | None,
        asked: bool,
    ) -> None:
        ctx = self.ctx
        session = ctx.sessions.get(session_id)
        if session is None or session.addressed_as != user_id:
            return
        if not notifications and not asked:
            return
        entries = [
            NotificationEntry(
                id=n.id,
                ts=n.ts,
                title=n.payload.get("title"),
                body=n.payload.get("body"),
                data=n.payload.get("data"),
            )
            for n in notifications
        ]
        ctx.send(session, NotificationList(notifications=entries, more=more, ref=ref))

    def notifications_marked(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        ctx = self.ctx
        session = ctx.sessions.get(session_id)
        if session is not None:
            ctx.send(session, NotificationsRead(ids=ids, ref=ref))
        if ids:
            payload = codec.encode(NotificationsRead(ids=ids))
            ctx.broker.publish_to_user(user_id, payload, session_id)
