// chat.js: a room's chat: sending until stored (`chat-ack`), history and its pages,
// and the messages missed while away (docs/protocol.md#chat-and-history).

import { ERROR_CODES, RETRIED_CHAT_ERRORS } from "../protocol.js";
import { HubbubError } from "./errors.js";
import { randomId } from "./ids.js";

// The ref a chat message goes with: a refusal names the message it refuses.
const CHAT_REF = "chat:";

/**
 * The chat of one room, over its connection. `host` (the Room) has `userId`, `limits`
 * and `emit(type, detail)`; `connection` is a {@link Connection} (or anything with its
 * `send` and `request`). The host gives it the server's `chat`, `chat-ack` and
 * `room-joined` messages and the errors (`onError`); it emits `chat` and `chat-status`
 * on the host.
 */
export class Chat {
  constructor(host, connection) {
    this.host = host;
    this.connection = connection;
    /** Stored chat, oldest first: what `room-joined` carried, then older pages. */
    this.history = [];
    /** Whether the server stores chat (it sends `history` and `chat-ack`). */
    this.storesChat = false;
    /** The highest chat `seq` this side has seen; 0 before any. */
    this.chatSeq = 0;
    /** No older messages are left to load. */
    this.historyComplete = false;
    this._outgoing = new Map(); // clientId -> entry, until its `chat-ack`
    // In the room, as far as the server said: `room-joined` or `resumed`, and no
    // `room-left` since.
    this._inRoom = false;
  }

  /**
   * Send a chat message; returns its entry at once, `status: "pending"`. It is sent
   * (again, after a reconnection or when no `chat-ack` comes) under the same
   * `clientId` until the server has stored it, and settles `sent` or `failed`.
   */
  send(message) {
    const text = String(message);
    const limits = this.host.limits;
    // Over the server's frame limit the connection would close, again at each resend.
    if (text.length > limits.maxChatLength) {
      throw new HubbubError(ERROR_CODES.TOO_LARGE, `a chat message holds at most ${limits.maxChatLength} characters`);
    }
    const entry = {
      userId: this.host.userId,
      message: text,
      clientId: randomId(16),
      mine: true,
      ts: Date.now(),
      status: "pending",
    };
    this._outgoing.set(entry.clientId, entry);
    this._transmit(entry);
    return entry;
  }

  /** The messages sent but not yet stored, in the order they were sent. */
  get pending() {
    return [...this._outgoing.values()];
  }

  /** In the room (again): send every message not yet stored. */
  resend() {
    this._inRoom = true;
    for (const entry of this._outgoing.values()) this._transmit(entry);
  }

  /** The server took this side out of the room (`room-left`). */
  leftRoom() {
    this._inRoom = false;
  }

  /** The connection is gone for good: what was not stored has failed. */
  failPending() {
    for (const entry of this._outgoing.values()) {
      this._settled(entry, "failed", {
        error: new HubbubError("not-connected", "left the room before the message was stored"),
      });
    }
  }

  _transmit(entry) {
    clearTimeout(entry._retry);
    if (this._outgoing.get(entry.clientId) !== entry) return;
    const sent = this.connection.send({
      type: "chat",
      message: entry.message,
      clientId: entry.clientId,
      ref: CHAT_REF + entry.clientId,
    });
    if (sent && !this.storesChat) {
      // A server without a store relays at once and sends no `chat-ack`.
      this._settled(entry, "sent");
      return;
    }
    // Sent again if no answer comes (lost with the connection, or dropped as too fast);
    // the server stores a clientId once, whatever the number of copies.
    if (sent) entry._retry = setTimeout(() => this._transmit(entry), this.host.limits.chatAckTimeoutMs);
  }

  _settled(entry, status, fields = {}) {
    clearTimeout(entry._retry);
    delete entry._retry;
    this._outgoing.delete(entry.clientId);
    Object.assign(entry, fields, { status });
    if (typeof entry.seq === "number") this.chatSeq = Math.max(this.chatSeq, entry.seq);
    this.host.emit("chat-status", { entry });
  }

  /** A `chat-ack`: the message is stored. */
  onAck(message) {
    const entry = this._outgoing.get(message.clientId);
    if (!entry) return;
    const fields = {};
    for (const field of ["id", "seq", "ts"]) if (message[field] !== undefined) fields[field] = message[field];
    this._settled(entry, "sent", fields);
  }

  /**
   * An `error` from the server: when it refuses a chat message (its `ref` names it),
   * the message is sent again later or fails, and this returns true.
   */
  onError(message) {
    if (message.type !== "error" || typeof message.ref !== "string" || !message.ref.startsWith(CHAT_REF)) {
      return false;
    }
    const entry = this._outgoing.get(message.ref.slice(CHAT_REF.length));
    if (!entry) return true;
    clearTimeout(entry._retry);
    delete entry._retry;
    if (message.code === ERROR_CODES.NOT_IN_ROOM && !this._inRoom) {
      return true; // the message crossed a leave: it goes once back in the room (resend)
    }
    if (RETRIED_CHAT_ERRORS.includes(message.code)) {
      // A refusal that passes with time; or not-in-room while the server had not
      // said so, a crossing this side cannot see: sent again after a while.
      entry._retry = setTimeout(() => this._transmit(entry), this.host.limits.chatAckTimeoutMs / 4);
      return true;
    }
    this._settled(entry, "failed", { error: new HubbubError(message.code, message.message) });
    return true;
  }

  /** Someone's `chat` message: told as `chat`. */
  onChat(message) {
    const entry = normalizeChat(message);
    entry.mine = false;
    if (typeof entry.seq === "number") this.chatSeq = Math.max(this.chatSeq, entry.seq);
    this.host.emit("chat", entry);
  }

  // `room-joined` carries the last stored messages. On a first join they are the
  // history; on a rejoin, those after the last one seen were missed while away: they
  // are told as `chat` (with `missed: true`), older pages fetched first when more than
  // one page was missed. Messages of this side's own among them count as acknowledged.
  joined(message, rejoin) {
    if (!Array.isArray(message.history)) return;
    // Whether `chatSeq` says what this side has seen (0 included: an empty room).
    const knew = this.storesChat;
    this.storesChat = true;
    const history = message.history.map((m) => this._own(normalizeChat(m)));
    const lastSeq = Number.isSafeInteger(message.lastSeq) ? message.lastSeq : history.at(-1)?.seq ?? 0;
    if (!rejoin) {
      this.history = history;
      this.historyComplete = lastSeq === 0 || history[0]?.seq <= 1;
      this.chatSeq = Math.max(this.chatSeq, lastSeq);
      return;
    }
    const since = this.chatSeq;
    this.chatSeq = Math.max(this.chatSeq, lastSeq);
    const missed = history.filter((entry) => entry.seq > since);
    if (missed.length === 0) return;
    const gap = missed[0].seq > since + 1 && knew;
    // (on the next tick: the room is open by then, so the history requests can go out)
    Promise.resolve()
      .then(() => (gap ? this._fetchBetween(since, missed[0].seq) : []))
      .catch(() => [])
      .then((older) => {
        for (const entry of [...older, ...missed]) {
          if (entry.mine) continue;
          this.host.emit("chat", { ...entry, missed: true });
        }
      });
  }

  _own(entry) {
    entry.mine = entry.userId === this.host.userId;
    const pending = entry.clientId !== undefined && this._outgoing.get(entry.clientId);
    if (pending && entry.mine) this._settled(pending, "sent", { id: entry.id, seq: entry.seq, ts: entry.ts });
    return entry;
  }

  // Stored messages with afterSeq < seq < beforeSeq, oldest first, page by page.
  async _fetchBetween(afterSeq, beforeSeq) {
    const pages = [];
    let before = beforeSeq;
    while (before > afterSeq + 1) {
      const reply = await this.connection.request({ type: "history", beforeSeq: before, limit: 100 }, ["history"]);
      const page = (reply.messages ?? []).map((m) => this._own(normalizeChat(m)));
      const wanted = page.filter((entry) => entry.seq > afterSeq);
      pages.unshift(wanted);
      if (wanted.length < page.length || page.length === 0) break;
      before = page[0].seq;
    }
    return pages.flat();
  }

  /**
   * Load the stored messages before the oldest one known, `limit` of them. Resolves
   * with them, oldest first, and puts them at the start of `history`; an empty list
   * means there is nothing older (`historyComplete`).
   */
  async loadOlder(limit) {
    if (!this.storesChat || this.historyComplete) return [];
    const oldest = this.history[0]?.seq;
    const request = { type: "history", limit };
    if (oldest !== undefined) request.beforeSeq = oldest;
    else if (this.chatSeq > 0) request.beforeSeq = this.chatSeq + 1;
    const reply = await this.connection.request(request, ["history"]);
    const messages = (reply.messages ?? []).map((m) => this._own(normalizeChat(m)));
    const older = oldest === undefined ? messages : messages.filter((entry) => entry.seq < oldest);
    this.history = [...older, ...this.history];
    if (older.length === 0 || older[0].seq <= 1) this.historyComplete = true;
    return older;
  }
}

function normalizeChat(message) {
  const entry = {
    userId: message.userId,
    message: message.message,
  };
  for (const field of ["id", "seq", "ts", "clientId", "displayName"]) {
    if (message[field] !== undefined) entry[field] = message[field];
  }
  return entry;
}
