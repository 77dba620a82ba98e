// presence.js: who is online, away, busy or gone, and who is typing
// (docs/protocol.md#presence-and-typing).

import { OFFLINE, ONLINE, PRESENCE_STATUSES } from "../protocol.js";
import { HubbubError } from "./errors.js";

/** The status a session starts with (one of PRESENCE_STATUSES). */
export const DEFAULT_STATUS = ONLINE;

/**
 * This side's presence status and typing, and the members gone offline. `host` (the
 * Room) has `userId`, `participants`, `limits` and `emit`; `connection` sends.
 */
export class Presence {
  constructor(host, connection, status) {
    this.host = host;
    this.connection = connection;
    /** This side's presence status: one of PRESENCE_STATUSES. */
    this.status = PRESENCE_STATUSES.includes(status) ? status : DEFAULT_STATUS;
    /** Members who chatted in the room and are not in it now: `{userId, lastSeen}`, latest first. */
    this.offline = [];
    this._typingTimer = null;
    this._typingSent = false;
    this._typingSentAt = 0;
  }

  /** What `join-room` carries of presence: a new connection starts with the default status. */
  joinFields() {
    return this.status === DEFAULT_STATUS ? {} : { status: this.status };
  }

  /** `room-joined`: the members gone offline. */
  joined(message) {
    if (Array.isArray(message.offline)) {
      this.offline = message.offline
        .filter((entry) => entry && typeof entry.userId === "string")
        .map((entry) => ({ userId: entry.userId, lastSeen: entry.lastSeen ?? null }));
    }
  }

  /** A member came (back): no longer offline. */
  memberJoined(userId) {
    this.offline = this.offline.filter((entry) => entry.userId !== userId);
  }

  /** Set this side's status; resolves once the server has it. */
  async setStatus(status) {
    if (!PRESENCE_STATUSES.includes(status)) {
      throw new HubbubError("bad-options", `status is one of ${PRESENCE_STATUSES.join(", ")}`);
    }
    await this.connection.request({ type: "presence", status }, ["presence"]);
    this.status = status;
    this.host.emit("presence", { participant: null, userId: this.host.userId, status });
  }

  /** A `presence` message: a member's new status, or a member gone offline. */
  onPresence(message) {
    if (typeof message.status !== "string" || typeof message.userId !== "string") return;
    if (message.userId === this.host.userId) return; // the reply to setStatus
    const participant = this.host.participants.get(message.userId) ?? null;
    if (message.status === OFFLINE) {
      const lastSeen = message.lastSeen ?? null;
      this.offline = [
        { userId: message.userId, lastSeen },
        ...this.offline.filter((entry) => entry.userId !== message.userId),
      ];
      this.host.emit("presence", { participant, userId: message.userId, status: OFFLINE, lastSeen });
      return;
    }
    if (!participant) return;
    participant.status = message.status;
    this.host.emit("presence", { participant, userId: message.userId, status: message.status });
    this.host.emit("participant-updated", { participant });
  }

  /**
   * This side is typing (a keystroke): `active: true` goes out at most every
   * `typingRenewMs` while typing goes on, and `active: false` after a pause of
   * `typingIdleMs`.
   */
  typing() {
    const limits = this.host.limits;
    clearTimeout(this._typingTimer);
    this._typingTimer = setTimeout(() => this._sendTyping(false), limits.typingIdleMs);
    if (!this._typingSent || Date.now() - this._typingSentAt >= limits.typingRenewMs) {
      this._sendTyping(true);
    }
  }

  _sendTyping(active) {
    if (!active) clearTimeout(this._typingTimer);
    if (!active && !this._typingSent) return;
    this._typingSent = active;
    this._typingSentAt = Date.now();
    this.connection.sendOptional({ type: "typing", active });
  }

  // The server ends this side's typing when a chat message goes out.
  typingEndedByChat() {
    clearTimeout(this._typingTimer);
    this._typingSent = false;
  }

  /** A `typing` message from a member. */
  onTyping(message) {
    const participant = this.host.participants.get(message.userId);
    if (participant) participant._setTyping(Boolean(message.active));
  }

  /** The room is closing: nothing more to send. */
  stop() {
    clearTimeout(this._typingTimer);
  }
}
