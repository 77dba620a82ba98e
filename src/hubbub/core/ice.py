"""ICE servers for the members' peer connections: given in ``room-joined``, and
sent again (``ice-servers``) before their TURN credentials expire, for as long as
the member stays in a room."""

from __future__ import annotations

from typing import Any

from hubbub.auth.turn import IceServerConfig
from hubbub.core.context import HubContext
from hubbub.core.session import Session
from hubbub.core.timers import Handler
from hubbub.protocol.messages import IceServer, IceServers, RoomJoined


class IceFeature:
    """The STUN and TURN servers each member is given, and their renewal."""

    def __init__(self, ctx: HubContext, config: IceServerConfig | None) -> None:
        self.ctx = ctx
        self._config = config

    def add_to(self, joined: RoomJoined, session: Session) -> None:
        """Put the session's ICE servers in its ``room-joined``, if there are any."""
        if self._config:
            joined.ice_servers, joined.ice_servers_expire_at = self._servers_for(session)

    def _servers_for(self, session: Session) -> tuple[list[IceServer], int | None]:
        """The session's ICE servers; their TURN credentials renewed ahead of expiry."""
        config = self._config
        if not config or session.user_id is None:  # pragma: no cover - callers check
            return [], None
        servers, expires_at = config.for_user(session.user_id, session.host)
        if expires_at is not None:
            ctx = self.ctx
            due = ctx.now() + config.refresh_after
            session.ice_refresh_at = due
            ctx.timers.schedule(due, self._refresh_due, session)
            if len(ctx.timers) > 2 * len(ctx.sessions) + 64:
                # Renewals of members that left stay until due (most of a TURN
                # credential's lifetime); under churn, they go now.
                ctx.timers.compact(self._pending)
        return servers, expires_at

    def _pending(self, when: float, handler: Handler, value: Any) -> bool:
        if handler != self._refresh_due:
            return True
        session: Session = value
        return not session.closed and session.room is not None and session.ice_refresh_at == when

    def _refresh_due(self, session: Session) -> None:
        due = session.ice_refresh_at
        # An earlier renewal of a member that joined again since is not due.
        if due is None or due > self.ctx.now() or session.closed or session.room is None:
            return
        servers, expires_at = self._servers_for(session)
        self.ctx.send(session, IceServers(ice_servers=servers, ice_servers_expire_at=expires_at))
