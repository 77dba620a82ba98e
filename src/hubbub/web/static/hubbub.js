// hubbub.js: the browser client of hubbub.
//
// One ES module, no build step and no dependency. The WebSocket to the server carries
// rooms, signaling and chat; WebRTC carries audio, video, screen sharing, files and app
// data peer to peer, in a mesh. docs/browser.md describes the API with an example;
// docs/protocol.md and docs/peer-protocol.md are the wire formats it follows.
//
//   import { join } from "/hubbub.js";
//   const room = await join("wss://example.org/", { room: "team", userId: "alice", stream });
//   room.on("stream", ({ participant, stream }) => show(participant.userId, stream));

import {
  CLOSE_CODES,
  ERROR_CODES,
  FINAL_CLOSE_CODES,
  OFFLINE,
  PRESENCE_STATUSES,
  RETRIED_CHAT_ERRORS,
  RETRIED_REJOIN_ERRORS,
} from "./protocol.js";

export const VERSION = "0.1.0";

/** Sizes and times the library works with. Each can be changed per room with `options.limits`. */
export const DEFAULTS = Object.freeze({
  joinTimeoutMs: 15000, // from opening the socket to `room-joined`
  pingIntervalMs: 20000, // an application ping after this much silence from the server...
  pongTimeoutMs: 10000, // ...and the connection is taken for dead without an answer in this time
  reconnectMinMs: 500, // first reconnection delay; doubles on each failure, with jitter
  reconnectMaxMs: 10000, // longest reconnection delay
  reconnectGiveUpMs: 5 * 60 * 1000, // stop trying to reconnect after this long
  firstOfferWaitMs: 4000, // a newcomer waits this long for a peer's first offer, then offers itself
  iceDisconnectedRestartMs: 4000, // a peer connection "disconnected" this long gets an ICE restart
  iceRestartMaxMs: 30000, // a restart that does not reconnect is tried again, waiting up to this long
  fileChunkBytes: 64 * 1024, // binary message size for files (capped by the peer's maxMessageSize)
  fileReadBytes: 1024 * 1024, // bytes read from disk at a time when sending a file
  fileHighWaterBytes: 1024 * 1024, // stop writing to a file channel above this bufferedAmount...
  fileLowWaterBytes: 256 * 1024, // ...and resume below this (bufferedAmountLowThreshold)
  maxIncomingFileBytes: 4 * 1024 * 1024 * 1024, // larger file offers are rejected
  nativeHashMaxBytes: 256 * 1024 * 1024, // files up to this size are hashed by WebCrypto, whole
  progressIntervalMs: 100, // at most one progress event per transfer in this time
  typingIdleMs: 3000, // "typing" ends by itself this long after the last keystroke
  typingRenewMs: 2500, // while typing goes on, `active: true` is sent again this often
  typingExpireMs: 6000, // someone else's typing not renewed for this long is taken as stopped
  maxChatLength: 16000, // longer messages are refused before sending (the server's max_chat_length)
  chatAckTimeoutMs: 10000, // a chat message with no `chat-ack` after this long is sent again
  historyPageSize: 50, // messages asked for by each `loadOlderChat()`
});

/**
 * Close codes after which the library does not reconnect by itself
 * (docs/protocol.md#close-codes), with the name each is reported by.
 */
export { FINAL_CLOSE_CODES };

const FILE_LABEL_PREFIX = "hubbub-file:";
const CONTROL_LABEL = "hubbub-control";
const RESERVED_PREFIX = "hubbub-";
const OPTIONAL_REF = "optional:";
const CHAT_REF = "chat:";
// The status a session starts with (one of PRESENCE_STATUSES).
const DEFAULT_STATUS = "online";
// Signals written while the connection is down, sent once the session is resumed.
const MAX_HELD_SIGNALS = 1000;
// The longest wait a server's `reconnect {afterMs}` is followed for.
const MAX_RESTART_DELAY_MS = 60000;

/** An error the server or the library reports, with a code (see docs/protocol.md). */
export class HubbubError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "HubbubError";
    this.code = code;
    Object.assign(this, details);
  }
}

// -- events ------------------------------------------------------------------

/**
 * An EventTarget whose `on(type, handler)` passes the event's detail to the handler and
 * returns a function that removes it. `addEventListener` works as usual (`event.detail`).
 */
export class Emitter extends EventTarget {
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  once(type) {
    return new Promise((resolve) => {
      const off = this.on(type, (detail) => {
        off();
        resolve(detail);
      });
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  hasListeners(type) {
    return (this._listenerCounts?.get(type) ?? 0) > 0;
  }

  addEventListener(type, listener, options) {
    this._listenerCounts ??= new Map();
    this._listenerCounts.set(type, (this._listenerCounts.get(type) ?? 0) + 1);
    super.addEventListener(type, listener, options);
  }

  removeEventListener(type, listener, options) {
    const count = this._listenerCounts?.get(type) ?? 0;
    if (count > 0) this._listenerCounts.set(type, count - 1);
    super.removeEventListener(type, listener, options);
  }
}

// -- joining -------------------------------------------------------------------

/**
 * Connect to a hubbub server and join a room. Resolves with the {@link Room} once the
 * server has answered `room-joined`; rejects with a {@link HubbubError} when the server
 * refuses (`code` as in docs/protocol.md), is unreachable (`unreachable`) or does not
 * answer in time (`timeout`).
 *
 * @param {string} url  ws:// or wss:// URL of the server (http(s):// is accepted too)
 * @param {object} options
 * @param {string} options.room  the room to join
 * @param {string} [options.userId]  the name to join under (the server assigns one if left out)
 * @param {string|function(): (string|Promise<string>)} [options.token]  an access token, when
 *   the server asks for one; a function is called for a fresh one on every (re)join
 * @param {MediaStream} [options.stream]  camera and microphone to send
 * @param {RTCIceServer[]} [options.iceServers]  overrides what the server sends
 * @param {"all"|"relay"} [options.iceTransportPolicy="all"]  `relay` sends everything
 *   through TURN, so peers never learn each other's addresses
 * @param {boolean} [options.reconnect=true]  reconnect by itself when the connection drops
 * @param {"online"|"away"|"busy"} [options.status="online"]  the presence status to join with
 * @param {object} [options.limits]  changes to {@link DEFAULTS}
 */
export async function join(url, options = {}) {
  if (!options || typeof options.room !== "string" || !options.room) {
    throw new HubbubError("bad-options", "join() needs a room name");
  }
  const room = new Room(url, options);
  await room._start();
  return room;
}

function toWebSocketUrl(url) {
  const parsed = new URL(url, globalThis.location?.href);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  return parsed.href;
}

function randomId(length = 16) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
}

// Besides the server's refusals in RETRIED_REJOIN_ERRORS, a reconnection keeps trying
// after these, the library's own: the attempt got no answer at all.
const RETRIED_LOCAL_ERRORS = ["unreachable", "timeout", "closed", "not-connected"];

/**
 * The wait before reconnection attempt `attempt` (1, 2, ...): exponential backoff
 * from `reconnectMinMs` to `reconnectMaxMs`, with jitter over the upper half so that
 * clients dropped together (a server restart) do not all come back at once.
 */
export function reconnectDelay(attempt, limits = DEFAULTS) {
  const ceiling = Math.min(limits.reconnectMaxMs, limits.reconnectMinMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// -- the room ----------------------------------------------------------------

/**
 * A joined room: the server connection, the other participants and a peer connection
 * to each. Obtain one with {@link join}.
 *
 * Events (`room.on(type, handler)`; the handler gets the detail object):
 * - `participant-joined` `{participant}`, `participant-left` `{participant}`,
 *   `participant-updated` `{participant}` (media state, status, name, `connection`)
 * - `stream` `{participant, stream, kind}` (kind `camera` or `screen`),
 *   `stream-removed` `{participant, stream, kind}`, `track` `{participant, track, stream}`
 * - `chat` `{userId, message, mine, id?, seq?, ts?, missed?}`; `chat-status` `{entry}`
 *   when a message this side sent is stored (`sent`) or refused (`failed`)
 * - `presence` `{participant, userId, status, lastSeen?}` (status `online`, `away`,
 *   `busy`, or `offline` for a member who left), `typing` `{participant, userId, typing}`
 * - `file-offer` `{transfer}`: someone offers a file; call `transfer.accept()` or `reject()`
 * - `channel` `{channel}`: a peer opened an app data channel this side had not opened
 * - `connection-state` `{state, previous, reason}`: `connecting`, `open`, `reconnecting`,
 *   `closed`; back to `open` after a drop, `reason.code` says how: `resumed` or `rejoined`
 * - `reconnecting` `{attempt, delayMs, reason}`: the next attempt to reach the server, and when
 * - `resumed` `{replayed}`: the session came back with nothing lost; the `replayed`
 *   messages missed meanwhile have been told as ordinary events, once each, in order
 * - `rejoined` `{reason}`: the session could not be resumed (`unknown-session`,
 *   `overrun`, `server-restart`, `no-session`, `refused`): joined afresh, peer
 *   connections made anew, missed chat told with `missed: true`
 * - `peer-state` `{participant, state}`: the RTCPeerConnection's connectionState
 * - `ice-restart` `{participant, attempt}`: a peer connection that failed restarts ICE
 * - `local-stream` `{stream, kind}`: what this side sends changed
 * - `ice-servers` `{iceServers}`, `error` `{error}`, `message` (every server message)
 */
export class Room extends Emitter {
  constructor(url, options) {
    super();
    this.url = toWebSocketUrl(url);
    this.name = options.room;
    this.userId = options.userId ?? null;
    this.sessionId = null;
    this.displayName = null;
    this.grants = null;
    this.closeReason = null;
    this.state = "connecting";
    /** @type {Map<string, Participant>} */
    this.participants = new Map();
    this.limits = { ...DEFAULTS, ...(options.limits ?? {}) };
    this._token = options.token ?? null;
    this._options = options;
    this._configuredIceServers = options.iceServers ?? null;
    this._iceTransportPolicy = options.iceTransportPolicy === "relay" ? "relay" : "all";
    this._serverIceServers = null;
    this._reconnect = options.reconnect !== false;
    this._ws = null;
    this._refCounter = 0;
    this._pending = new Map(); // ref -> {resolve, reject}
    this._channels = new Map(); // label -> AppChannel
    this._transfers = new Map(); // id -> FileTransfer
    this._typingTimer = null;
    this._typingSent = false;
    this._typingSentAt = 0;
    /** This side's presence status: `online`, `away` or `busy`. */
    this.status = PRESENCE_STATUSES.includes(options.status) ? options.status : DEFAULT_STATUS;
    /** Members who chatted in the room and are not in it now: `{userId, lastSeen}`, latest first. */
    this.offline = [];
    this._pingTimer = null;
    this._pongTimer = null;
    this._closing = false;
    this._wakeReconnect = null;
    this._unsupported = new Set(); // message types the server answered `unknown-type`
    this._onOnline = () => this.reconnectNow();
    /** How many attempts this reconnection has made (0 while connected). */
    this.reconnectAttempt = 0;
    // Resuming (docs/protocol.md#reconnecting-and-resuming): the session's secret, the
    // `n` of the last message received on it, and why the next return cannot resume.
    this._resumeToken = null;
    this._lastN = 0;
    this._replayUntil = null; // the last `n` a resume replays, until it has arrived
    this._replayed = 0;
    this._heldSignals = [];
    this._rejoinReason = null;
    this._restartDelayMs = null; // the server's `reconnect {afterMs}`
    this._abandoned = []; // sockets given up for dead, closed once a new one is in
    /** Stored chat, oldest first: what `room-joined` carried, then older pages. */
    this.history = [];
    /** Whether the server stores chat (it sends `history` and `chat-ack`). */
    this.storesChat = false;
    /** The highest chat `seq` this side has seen; 0 before any. */
    this.chatSeq = 0;
    this.historyComplete = false; // no older messages are left to load
    this._outgoingChats = new Map(); // clientId -> entry, until its `chat-ack`
    // What this side sends: the camera stream carries microphone and camera tracks.
    this.localStream = options.stream ?? null;
    this.screenStream = null;
    this._media = {
      audio: Boolean(this.localStream?.getAudioTracks().some((t) => t.enabled)),
      video: Boolean(this.localStream?.getVideoTracks().some((t) => t.readyState === "live")),
    };
  }

  // -- server connection -------------------------------------------------------

  async _start() {
    try {
      await this._connectOnce();
    } catch (error) {
      this._setState("closed");
      throw error;
    }
  }

  _nextRef() {
    this._refCounter += 1;
    return `h${this._refCounter}`;
  }

  // A session starts with a hello: `join-room`, or after a lost connection `resume`
  // (below), which `_reconnectOnce` tries first while there is a session to take back.
  async _joinMessage() {
    const token = typeof this._token === "function" ? await this._token() : this._token;
    const message = { type: "join-room", room: this.name };
    if (this.userId) message.userId = this.userId;
    if (token) message.token = token;
    // A new connection starts `online`: a rejoin keeps what this side had set.
    if (this.status !== DEFAULT_STATUS) message.status = this.status;
    return message;
  }

  _resumeMessage() {
    return { type: "resume", sessionId: this.sessionId, resumeToken: this._resumeToken, lastN: this._lastN };
  }

  /** Whether the next connection can take the session back rather than join afresh. */
  get _canResume() {
    return Boolean(this._resumeToken && this.sessionId);
  }

  /** One attempt to get back into the room after the connection dropped. */
  async _reconnectOnce() {
    if (this._canResume) {
      await this._connectOnce(this._resumeMessage());
      return;
    }
    this._rejoinReason ??= "no-session";
    await this._connectOnce(await this._joinMessage());
  }

  /**
   * Open the socket and send `hello`; resolves once the server has answered it. A
   * refused `resume` falls back to `join-room` on the same connection.
   */
  async _connectOnce(hello = null) {
    hello ??= await this._joinMessage();
    return new Promise((resolve, reject) => {
      let settled = false;
      let ref = null;
      const ws = new WebSocket(this.url);
      this._ws = ws;
      // A new connection is a new session, numbered from 1, unless it resumes one.
      if (hello.type !== "resume") this._lastN = 0;
      const fail = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (ref !== null) this._pending.delete(ref);
        ws.onclose = ws.onerror = ws.onmessage = null;
        try {
          ws.close();
        } catch {
          /* already closed */
        }
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new HubbubError("timeout", "the server did not answer in time")),
        this.limits.joinTimeoutMs,
      );
      const answered = (message) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this._closeAbandoned();
        if (message.type === "resumed") this._onResumed(message);
        else this._onJoined(message);
        resolve(message.type);
      };
      const sendHello = (message) => {
        ref = this._nextRef();
        this._pending.set(ref, {
          resolve: answered,
          reject: (error) => {
            if (message.type !== "resume" || settled || this._ws !== ws || ws.readyState !== WebSocket.OPEN) {
              fail(error);
              return;
            }
            // The session is gone (or cannot give back all that was missed): join
            // afresh on this connection, and catch up on chat from the history.
            this._resumeToken = null;
            this._rejoinReason = error.code === ERROR_CODES.RESUME_FAILED ? error.reason ?? "unknown-session" : "refused";
            this._joinMessage().then((join) => {
              if (!settled && this._ws === ws) sendHello(join);
            }, fail);
          },
        });
        ws.send(JSON.stringify({ ...message, ref }));
      };
      // Handlers go on before anything can happen: the socket opens on a later task.
      ws.onopen = () => sendHello(hello);
      ws.onmessage = (event) => this._onServerFrame(event.data);
      ws.onerror = () => {};
      ws.onclose = (event) => {
        if (!settled) {
          fail(
            new HubbubError(
              event.code === 1006 ? "unreachable" : "closed",
              event.code === 1006
                ? "cannot reach the server"
                : `the server closed the connection (${event.code})`,
              { closeCode: event.code },
            ),
          );
          return;
        }
        this._onSocketClosed(event);
      };
    });
  }

  _send(message) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== "open") return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Send a message and wait for the reply that carries its `ref` (or its error). */
  _request(message, replyTypes) {
    const ref = this._nextRef();
    return new Promise((resolve, reject) => {
      this._pending.set(ref, { resolve, reject, replyTypes });
      if (!this._send({ ...message, ref })) {
        this._pending.delete(ref);
        reject(new HubbubError("not-connected", "not connected to the server"));
      }
    });
  }

  _onServerFrame(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    this._heardFromServer();
    // The session's own numbering, kept to resume from (`resumed` has none).
    if (Number.isSafeInteger(message.n)) this._lastN = message.n;
    this._onServerMessage(message);
    if (this._replayUntil !== null && this._lastN >= this._replayUntil) this._caughtUp();
  }

  _onServerMessage(message) {
    if (
      message.type === "error" &&
      message.code === ERROR_CODES.UNKNOWN_TYPE &&
      typeof message.ref === "string" &&
      message.ref.startsWith(OPTIONAL_REF)
    ) {
      this._unsupported.add(message.ref.slice(OPTIONAL_REF.length));
      return;
    }
    if (message.type === "error" && typeof message.ref === "string" && message.ref.startsWith(CHAT_REF)) {
      this._onChatRefused(message.ref.slice(CHAT_REF.length), message);
      return;
    }
    if (message.ref !== undefined && this._pending.has(message.ref)) {
      const pending = this._pending.get(message.ref);
      if (message.type === "error") {
        this._pending.delete(message.ref);
        const details = typeof message.reason === "string" ? { reason: message.reason } : {};
        pending.reject(new HubbubError(message.code, message.message, details));
        return;
      }
      if (!pending.replyTypes || pending.replyTypes.includes(message.type)) {
        this._pending.delete(message.ref);
        pending.resolve(message);
        if (message.type === "room-joined" || message.type === "resumed") return;
      }
    }
    this._dispatch(message);
    this.emit("message", message);
  }

  _dispatch(message) {
    switch (message.type) {
      case "user-joined":
        this._onUserJoined(message);
        break;
      case "user-left":
        this._removeParticipant(message.userId);
        break;
      case "signal":
        this._onSignal(message.fromUserId, message.signal);
        break;
      case "chat":
        this._onChat(message, false);
        break;
      case "chat-ack":
        this._onChatAck(message);
        break;
      case "presence":
        this._onPresence(message);
        break;
      case "typing":
        this._onTyping(message);
        break;
      case "ice-servers":
        this._setServerIceServers(message.iceServers);
        break;
      case "participant-updated":
        this._onParticipantUpdated(message);
        break;
      case "reconnect":
        this._onRestartAdvice(message);
        break;
      case "error":
        this.emit("error", { error: new HubbubError(message.code, message.message) });
        break;
      default:
        break;
    }
  }

  _onJoined(message) {
    const rejoin = this.sessionId !== null;
    const rejoinReason = this._rejoinReason ?? "no-session";
    this._rejoinReason = null;
    this._restartDelayMs = null;
    this._replayUntil = null;
    this._heldSignals = []; // for peer connections that are made anew
    this.userId = message.userId;
    this.sessionId = message.sessionId;
    this._resumeToken = typeof message.resumeToken === "string" ? message.resumeToken : null;
    this.displayName = typeof message.name === "string" ? message.name : message.userId;
    this.grants = Array.isArray(message.grants) ? message.grants : null;
    if (message.iceServers) this._serverIceServers = message.iceServers;
    this._onJoinedHistory(message, rejoin);
    if (Array.isArray(message.offline)) {
      this.offline = message.offline
        .filter((entry) => entry && typeof entry.userId === "string")
        .map((entry) => ({ userId: entry.userId, lastSeen: entry.lastSeen ?? null }));
    }
    // A fresh join (first, or after a drop) starts every peer connection anew: the
    // others saw this side leave and will offer again.
    const listed = new Map((message.participants ?? []).map((p) => [p.userId, p]));
    if (rejoin) {
      for (const userId of [...this.participants.keys()]) {
        if (!listed.has(userId)) this._removeParticipant(userId);
        else this.participants.get(userId)._closeLink();
      }
    }
    this._setState("open", rejoin ? { code: "rejoined", cause: rejoinReason } : null);
    for (const info of listed.values()) {
      // A newcomer is polite toward those who were there first (see docs/protocol.md).
      const polite = info.polite ?? true;
      let participant = this.participants.get(info.userId);
      if (participant) {
        participant.polite = polite;
        participant._update(info);
      } else {
        participant = new Participant(this, info.userId, polite);
        participant._update(info);
        this.participants.set(info.userId, participant);
        this.emit("participant-joined", { participant });
      }
      participant._startAsNewcomer();
    }
    // What was sent while away (or whose `chat-ack` was lost with the connection).
    for (const entry of this._outgoingChats.values()) this._transmitChat(entry);
    if (rejoin) this.emit("rejoined", { reason: rejoinReason });
  }

  // The session is back on this connection: the room, the participants and the peer
  // connections are as they were; what was missed follows, numbered after `_lastN`,
  // and goes through `_dispatch` like any message.
  _onResumed(message) {
    const until = Number.isSafeInteger(message.lastN) ? message.lastN : this._lastN;
    this._replayed = Math.max(0, until - this._lastN);
    this._replayUntil = until;
    this._rejoinReason = null;
    this._restartDelayMs = null;
    this._setState("open", { code: "resumed", replayed: this._replayed });
    // Sent before anything the replay leads this side to say, so they keep their order.
    const held = this._heldSignals;
    this._heldSignals = [];
    for (const signal of held) this._send(signal);
    // A `chat-ack` among the replayed messages settles its entry; one sent again
    // meanwhile is acknowledged as a duplicate and stored once.
    for (const entry of this._outgoingChats.values()) this._transmitChat(entry);
    if (this._lastN >= until) this._caughtUp();
  }

  _caughtUp() {
    this._replayUntil = null;
    this.emit("resumed", { replayed: this._replayed });
  }

  // The server is going away (SIGTERM): sessions do not outlive its process, so the
  // next connection joins afresh, after the delay it asked for.
  _onRestartAdvice(message) {
    const afterMs = Number(message.afterMs);
    this._restartDelayMs = Number.isFinite(afterMs) ? Math.min(Math.max(0, afterMs), MAX_RESTART_DELAY_MS) : null;
    this._resumeToken = null;
    this._rejoinReason = "server-restart";
  }

  _onParticipantUpdated(message) {
    const participant = this.participants.get(message.userId);
    if (!participant) return;
    participant._update(message);
    this.emit("participant-updated", { participant });
  }

  _onUserJoined(message) {
    const existing = this.participants.get(message.userId);
    if (existing) this._removeParticipant(message.userId);
    const participant = new Participant(this, message.userId, message.polite ?? false);
    participant._update(message);
    this.participants.set(message.userId, participant);
    this.offline = this.offline.filter((entry) => entry.userId !== message.userId);
    this.emit("participant-joined", { participant });
    participant._startAsIncumbent();
  }

  _removeParticipant(userId) {
    const participant = this.participants.get(userId);
    if (!participant) return;
    this.participants.delete(userId);
    participant._closeLink();
    participant._setTyping(false, false);
    for (const transfer of [...this._transfers.values()]) {
      if (transfer.peer === participant) transfer._fail(`${userId} left`, "cancelled");
    }
    this.emit("participant-left", { participant });
  }

  _onSignal(fromUserId, signal) {
    if (!signal || typeof signal !== "object") return;
    const participant = this.participants.get(fromUserId);
    if (participant) participant._onSignal(signal);
  }

  _signal(userId, signal) {
    const message = { type: "signal", targetUserId: userId, signal };
    if (this._send(message)) return true;
    // The session may come back with its peer connections as they are: what they
    // said meanwhile goes out then (a fresh join drops it, they start anew).
    if (this.state === "reconnecting" && this._canResume && this._heldSignals.length < MAX_HELD_SIGNALS) {
      this._heldSignals.push(message);
    }
    return false;
  }

  _setState(state, reason = null) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("connection-state", { state, previous, reason });
  }

  // Liveness: browsers cannot send WebSocket pings, so the library sends `ping`
  // messages when the server has been quiet, and takes the connection for dead when
  // no answer comes back (a laptop waking up, a network that went away).
  _heardFromServer() {
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
    clearTimeout(this._pingTimer);
    if (this._closing) return;
    this._pingTimer = setTimeout(() => {
      if (!this._send({ type: "ping" })) return;
      this._pongTimer = setTimeout(() => {
        // No close frame: to the server that would be leaving the room. The socket is
        // closed once a new one is in (a resume has the server close it with 4010).
        if (this._ws) this._abandoned.push(this._ws);
        this._onSocketClosed({ code: 1006 });
      }, this.limits.pongTimeoutMs);
    }, this.limits.pingIntervalMs);
  }

  _closeAbandoned() {
    for (const ws of this._abandoned.splice(0)) {
      ws.onclose = ws.onerror = ws.onmessage = null;
      try {
        ws.close();
      } catch {
        /* closed */
      }
    }
  }

  _onSocketClosed(event) {
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    if (this._ws) this._ws.onclose = this._ws.onmessage = null;
    this._ws = null;
    this._replayUntil = null;
    for (const [ref, pending] of this._pending) {
      this._pending.delete(ref);
      pending.reject(new HubbubError("not-connected", "the connection to the server was lost"));
    }
    if (this._closing || this.state === "closed" || this.state === "reconnecting") return;
    const final = FINAL_CLOSE_CODES[event.code];
    if (final) this.closeReason = { code: final, closeCode: event.code };
    if (!this._reconnect || final) {
      this._shutdown();
      return;
    }
    this._reconnectLoop();
  }

  async _reconnectLoop() {
    const reason =
      this._restartDelayMs !== null
        ? { code: "server-restart", afterMs: this._restartDelayMs }
        : { code: "connection-lost" };
    this._setState("reconnecting", reason);
    // Peer connections carry on by themselves while the server is away: media keeps
    // flowing; only signaling (and so renegotiation) waits.
    const started = Date.now();
    globalThis.addEventListener?.("online", this._onOnline);
    try {
      for (let attempt = 1; !this._closing; attempt++) {
        // The server's own delay first: it spreads its clients' returns itself.
        const delayMs =
          attempt === 1 && this._restartDelayMs !== null ? this._restartDelayMs : reconnectDelay(attempt, this.limits);
        this.reconnectAttempt = attempt;
        this.emit("reconnecting", { attempt, delayMs, reason });
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          this._wakeReconnect = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this._wakeReconnect = null;
        if (this._closing) return;
        try {
          await this._reconnectOnce();
          return;
        } catch (error) {
          // Refusals that pass with time (`user-id-taken` while the server has not yet
          // noticed the old connection is gone, a full room, a store or cluster that
          // is down) and no answer at all are tried again; any other refusal ends it.
          const retried = RETRIED_REJOIN_ERRORS.includes(error.code) || RETRIED_LOCAL_ERRORS.includes(error.code);
          if (error.code && !retried) {
            this.emit("error", { error });
            this.closeReason = { code: error.code };
            this._shutdown();
            return;
          }
        }
        if (Date.now() - started > this.limits.reconnectGiveUpMs) {
          this.closeReason = { code: "gave-up" };
          this._shutdown();
          return;
        }
      }
    } finally {
      this._wakeReconnect = null;
      this.reconnectAttempt = 0;
      globalThis.removeEventListener?.("online", this._onOnline);
    }
  }

  /**
   * While reconnecting, try again now rather than when the backoff says (a "try now"
   * button; the browser coming back online does it by itself). No effect otherwise.
   */
  reconnectNow() {
    this._wakeReconnect?.();
  }

  /** Leave the room: closes every peer connection and the server connection. */
  leave() {
    if (this.state === "closed") return;
    this._closing = true;
    this._send({ type: "leave-room" });
    this._shutdown();
  }

  _shutdown() {
    this._closing = true;
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    clearTimeout(this._typingTimer);
    this._heldSignals = [];
    this._resumeToken = null;
    this._closeAbandoned();
    for (const participant of this.participants.values()) participant._closeLink();
    for (const transfer of this._transfers.values()) transfer._fail("left the room", "cancelled");
    for (const entry of this._outgoingChats.values()) {
      this._chatSettled(entry, "failed", {
        error: new HubbubError("not-connected", "left the room before the message was stored"),
      });
    }
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = null;
      try {
        ws.close(CLOSE_CODES.NORMAL);
      } catch {
        /* closed */
      }
    }
    this._setState("closed", this.closeReason);
  }

  /** Whether the server lets this side do `grant` (`screen`, `chat`...); open mode allows all but admin. */
  can(grant) {
    return this.grants ? this.grants.includes(grant) : grant !== "admin" && grant !== "hidden";
  }

  // -- ICE servers -------------------------------------------------------------

  get iceServers() {
    return this._configuredIceServers ?? this._serverIceServers ?? [];
  }

  _rtcConfiguration() {
    return { iceServers: this.iceServers, iceTransportPolicy: this._iceTransportPolicy };
  }

  _setServerIceServers(iceServers) {
    if (!Array.isArray(iceServers)) return;
    this._serverIceServers = iceServers;
    for (const participant of this.participants.values()) participant._link?.updateConfiguration();
    this.emit("ice-servers", { iceServers: this.iceServers });
  }

  // -- chat, typing ------------------------------------------------------------

  /**
   * Send a chat message to the room. Resolves at once with the message as the room
   * shows it (the sender gets no copy from the server), `status: "pending"`. The
   * library sends it (again, after a reconnection or when no `chat-ack` comes) under
   * the same `clientId` until the server has stored it; then the entry gets its `id`,
   * `seq` and `ts`, `status: "sent"`, and `chat-status` fires. A refusal that sending
   * again would not cure (too long, say) makes it `failed`, with `error`.
   */
  async sendChat(message) {
    if (this.state === "closed") throw new HubbubError("not-connected", "the room is closed");
    const text = String(message);
    // Over the server's frame limit the connection would close, again at each resend.
    if (text.length > this.limits.maxChatLength) {
      throw new HubbubError(ERROR_CODES.TOO_LARGE, `a chat message holds at most ${this.limits.maxChatLength} characters`);
    }
    const entry = {
      userId: this.userId,
      message: text,
      clientId: randomId(16),
      mine: true,
      ts: Date.now(),
      status: "pending",
    };
    this._outgoingChats.set(entry.clientId, entry);
    this._typingEndedByChat();
    this._transmitChat(entry);
    return entry;
  }

  /** The messages sent but not yet stored, in the order they were sent. */
  get pendingChats() {
    return [...this._outgoingChats.values()];
  }

  _transmitChat(entry) {
    clearTimeout(entry._retry);
    if (this._outgoingChats.get(entry.clientId) !== entry) return;
    const sent = this._send({
      type: "chat",
      message: entry.message,
      clientId: entry.clientId,
      ref: CHAT_REF + entry.clientId,
    });
    if (sent && !this.storesChat) {
      // A server without a store relays at once and sends no `chat-ack`.
      this._chatSettled(entry, "sent");
      return;
    }
    // Sent again if no answer comes (lost with the connection, or dropped as too fast);
    // the server stores a clientId once, whatever the number of copies.
    if (sent) entry._retry = setTimeout(() => this._transmitChat(entry), this.limits.chatAckTimeoutMs);
  }

  _chatSettled(entry, status, fields = {}) {
    clearTimeout(entry._retry);
    delete entry._retry;
    this._outgoingChats.delete(entry.clientId);
    Object.assign(entry, fields, { status });
    if (typeof entry.seq === "number") this.chatSeq = Math.max(this.chatSeq, entry.seq);
    this.emit("chat-status", { entry });
  }

  _onChatAck(message) {
    const entry = this._outgoingChats.get(message.clientId);
    if (!entry) return;
    const fields = {};
    for (const field of ["id", "seq", "ts"]) if (message[field] !== undefined) fields[field] = message[field];
    this._chatSettled(entry, "sent", fields);
  }

  _onChatRefused(clientId, error) {
    const entry = this._outgoingChats.get(clientId);
    if (!entry) return;
    clearTimeout(entry._retry);
    if (RETRIED_CHAT_ERRORS.includes(error.code)) {
      entry._retry = setTimeout(() => this._transmitChat(entry), this.limits.chatAckTimeoutMs / 4);
      return;
    }
    this._chatSettled(entry, "failed", { error: new HubbubError(error.code, error.message) });
  }

  _onChat(message, mine) {
    const entry = normalizeChat(message);
    entry.mine = mine;
    if (typeof entry.seq === "number") this.chatSeq = Math.max(this.chatSeq, entry.seq);
    this.participants.get(entry.userId)?._setTyping(false);
    this.emit("chat", entry);
  }

  // `room-joined` carries the last stored messages. On a first join they are the
  // history; on a rejoin, those after the last one seen were missed while away: they
  // are told as `chat` (with `missed: true`), older pages fetched first when more than
  // one page was missed. Messages of this side's own among them count as acknowledged.
  _onJoinedHistory(message, rejoin) {
    if (!Array.isArray(message.history)) return;
    this.storesChat = true;
    const history = message.history.map((m) => this._ownChat(normalizeChat(m)));
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
    const gap = missed[0].seq > since + 1 && since > 0;
    // (on the next tick: the room is open by then, so the history requests can go out)
    Promise.resolve()
      .then(() => (gap ? this._fetchBetween(since, missed[0].seq) : []))
      .catch(() => [])
      .then((older) => {
        for (const entry of [...older, ...missed]) {
          if (entry.mine) continue;
          this.emit("chat", { ...entry, missed: true });
        }
      });
  }

  _ownChat(entry) {
    entry.mine = entry.userId === this.userId;
    const pending = entry.clientId !== undefined && this._outgoingChats.get(entry.clientId);
    if (pending && entry.mine) this._chatSettled(pending, "sent", { id: entry.id, seq: entry.seq, ts: entry.ts });
    return entry;
  }

  // Stored messages with afterSeq < seq < beforeSeq, oldest first, page by page.
  async _fetchBetween(afterSeq, beforeSeq) {
    const pages = [];
    let before = beforeSeq;
    while (before > afterSeq + 1) {
      const reply = await this._request({ type: "history", beforeSeq: before, limit: 100 }, ["history"]);
      const page = (reply.messages ?? []).map((m) => this._ownChat(normalizeChat(m)));
      const wanted = page.filter((entry) => entry.seq > afterSeq);
      pages.unshift(wanted);
      if (wanted.length < page.length || page.length === 0) break;
      before = page[0].seq;
    }
    return pages.flat();
  }

  /**
   * Load the stored messages before the oldest one known (`limit`, by default
   * `historyPageSize`). Resolves with them, oldest first, and puts them at the start of
   * `room.history`; an empty list means there is nothing older (`historyComplete`).
   */
  async loadOlderChat(limit = this.limits.historyPageSize) {
    if (!this.storesChat || this.historyComplete) return [];
    const oldest = this.history[0]?.seq;
    const request = { type: "history", limit };
    if (oldest !== undefined) request.beforeSeq = oldest;
    else if (this.chatSeq > 0) request.beforeSeq = this.chatSeq + 1;
    const reply = await this._request(request, ["history"]);
    const messages = (reply.messages ?? []).map((m) => this._ownChat(normalizeChat(m)));
    const older = oldest === undefined ? messages : messages.filter((entry) => entry.seq < oldest);
    this.history = [...older, ...this.history];
    if (older.length === 0 || older[0].seq <= 1) this.historyComplete = true;
    return older;
  }

  /**
   * Tell the room this side is typing. Call on every keystroke: the library sends
   * `active: true` at most every `typingRenewMs` while typing goes on, and `active:
   * false` after a pause of `typingIdleMs` (sending a chat message stops it too).
   */
  typing() {
    clearTimeout(this._typingTimer);
    this._typingTimer = setTimeout(() => this._sendTyping(false), this.limits.typingIdleMs);
    if (!this._typingSent || Date.now() - this._typingSentAt >= this.limits.typingRenewMs) {
      this._sendTyping(true);
    }
  }

  _sendTyping(active) {
    if (!active) clearTimeout(this._typingTimer);
    if (!active && !this._typingSent) return;
    this._typingSent = active;
    this._typingSentAt = Date.now();
    this._sendOptional({ type: "typing", active });
  }

  // The server ends this side's typing when a chat message goes out.
  _typingEndedByChat() {
    clearTimeout(this._typingTimer);
    this._typingSent = false;
  }

  _onTyping(message) {
    const participant = this.participants.get(message.userId);
    if (participant) participant._setTyping(Boolean(message.active));
  }

  /** Set this side's presence status (`online`, `away`, `busy`); the room sees it. */
  async setStatus(status) {
    if (!PRESENCE_STATUSES.includes(status)) {
      throw new HubbubError("bad-options", `status is one of ${PRESENCE_STATUSES.join(", ")}`);
    }
    await this._request({ type: "presence", status }, ["presence"]);
    this.status = status;
    this.emit("presence", { participant: null, userId: this.userId, status });
  }

  _onPresence(message) {
    if (typeof message.status !== "string" || typeof message.userId !== "string") return;
    if (message.userId === this.userId) return; // the reply to setStatus
    const participant = this.participants.get(message.userId) ?? null;
    if (message.status === OFFLINE) {
      const lastSeen = message.lastSeen ?? null;
      this.offline = [
        { userId: message.userId, lastSeen },
        ...this.offline.filter((entry) => entry.userId !== message.userId),
      ];
      this.emit("presence", { participant, userId: message.userId, status: OFFLINE, lastSeen });
      return;
    }
    if (!participant) return;
    participant.status = message.status;
    this.emit("presence", { participant, userId: message.userId, status: message.status });
    this.emit("participant-updated", { participant });
  }

  // A message of a kind an older server may not know: the first `unknown-type` answer
  // turns that kind off for this room, silently.
  _sendOptional(message) {
    if (this._unsupported.has(message.type)) return false;
    return this._send({ ...message, ref: `${OPTIONAL_REF}${message.type}` });
  }

  // -- local media ---------------------------------------------------------------

  /** Whether the microphone and camera are on, and whether the screen is shared. */
  get media() {
    return { audio: this._media.audio, video: this._media.video, screen: Boolean(this.screenStream) };
  }

  /** Replace the camera and microphone stream that is sent (or `null` to send none). */
  async setStream(stream) {
    const old = this.localStream;
    this.localStream = stream;
    this._media.audio = Boolean(stream?.getAudioTracks().some((t) => t.enabled));
    this._media.video = Boolean(stream?.getVideoTracks().some((t) => t.readyState === "live"));
    for (const participant of this.participants.values()) participant._link?.syncSenders();
    if (old && old !== stream) for (const track of old.getTracks()) track.stop();
    this._mediaChanged("camera");
  }

  /** Turn the microphone on or off. Off mutes the track; on asks for a microphone if there is none. */
  async setMicrophone(on) {
    const tracks = this.localStream?.getAudioTracks() ?? [];
    if (on && tracks.length === 0) {
      const captured = await navigator.mediaDevices.getUserMedia({ audio: true });
      await this._addCameraTrack(captured.getAudioTracks()[0]);
    } else {
      for (const track of tracks) track.enabled = on;
    }
    this._media.audio = on;
    this._mediaChanged("camera");
  }

  /** Turn the camera on or off. Off stops the camera (its light goes out); on opens it again. */
  async setCamera(on, constraints = this._cameraConstraints ?? true) {
    this._cameraConstraints = constraints;
    this._cameraReplaced = false;
    const stream = this.localStream;
    if (on) {
      if (stream?.getVideoTracks().some((t) => t.readyState === "live")) {
        for (const track of stream.getVideoTracks()) track.enabled = true;
      } else {
        const captured = await navigator.mediaDevices.getUserMedia({ video: constraints });
        for (const track of stream?.getVideoTracks() ?? []) stream.removeTrack(track);
        await this._addCameraTrack(captured.getVideoTracks()[0]);
      }
    } else {
      for (const track of stream?.getVideoTracks() ?? []) {
        track.stop();
        stream.removeTrack(track);
      }
      for (const participant of this.participants.values()) participant._link?.syncSenders();
    }
    this._media.video = on;
    this._mediaChanged("camera");
  }

  async _addCameraTrack(track) {
    if (!this.localStream) this.localStream = new MediaStream();
    this.localStream.addTrack(track);
    for (const participant of this.participants.values()) participant._link?.syncSenders();
  }

  /**
   * Share the screen (or a window or tab): `getDisplayMedia` asks the user what. With
   * `replaceCamera`, the camera is turned off while sharing and back on when it stops.
   * Resolves with the stream; the share stops when `stopScreenShare()` is called or the
   * user ends it in the browser.
   */
  async startScreenShare({ replaceCamera = false, audio = false } = {}) {
    if (this.screenStream) return this.screenStream;
    if (!this.can("screen")) throw new HubbubError(ERROR_CODES.FORBIDDEN, "this session may not share a screen");
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio });
    this.screenStream = stream;
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => {
        if (this.screenStream === stream) this.stopScreenShare();
      });
    }
    this._cameraReplaced = false;
    if (replaceCamera && this._media.video) {
      await this.setCamera(false);
      this._cameraReplaced = true;
    }
    for (const participant of this.participants.values()) participant._link?.syncSenders();
    this._mediaChanged("screen");
    return stream;
  }

  /** Stop sharing the screen. */
  async stopScreenShare() {
    const stream = this.screenStream;
    if (!stream) return;
    this.screenStream = null;
    for (const track of stream.getTracks()) track.stop();
    for (const participant of this.participants.values()) participant._link?.syncSenders();
    this._mediaChanged("screen");
    if (this._cameraReplaced) {
      this._cameraReplaced = false;
      await this.setCamera(true, this._cameraConstraints);
    }
  }

  _mediaState() {
    const streams = {};
    if (this.localStream) streams[this.localStream.id] = "camera";
    if (this.screenStream) streams[this.screenStream.id] = "screen";
    return {
      type: "media-state",
      audio: this._media.audio,
      video: this._media.video,
      screen: Boolean(this.screenStream),
      streams,
    };
  }

  _mediaChanged(kind) {
    const state = this._mediaState();
    for (const participant of this.participants.values()) this._signal(participant.userId, state);
    this.emit("local-stream", {
      stream: kind === "screen" ? this.screenStream : this.localStream,
      kind,
      media: this.media,
    });
  }

  // -- data channels for apps ----------------------------------------------------

  /**
   * A named data channel to every participant (and to those who join later). Reliable
   * and ordered by default; `{ordered: false, maxRetransmits: 0}` for data that is stale
   * once late (game state). Labels starting with `hubbub-` are reserved.
   */
  channel(label, options = {}) {
    if (typeof label !== "string" || !label || label.startsWith(RESERVED_PREFIX)) {
      throw new HubbubError("bad-label", `channel labels must not start with "${RESERVED_PREFIX}"`);
    }
    let channel = this._channels.get(label);
    if (!channel) {
      channel = new AppChannel(this, label, options);
      this._channels.set(label, channel);
      for (const participant of this.participants.values()) participant._link?.openAppChannel(channel);
    }
    return channel;
  }

  _onRemoteAppChannel(participant, dataChannel) {
    let channel = this._channels.get(dataChannel.label);
    let created = false;
    if (!channel) {
      channel = new AppChannel(this, dataChannel.label, {
        ordered: dataChannel.ordered,
        maxRetransmits: dataChannel.maxRetransmits ?? undefined,
        maxPacketLifeTime: dataChannel.maxPacketLifeTime ?? undefined,
        _remoteOnly: true,
      });
      this._channels.set(dataChannel.label, channel);
      created = true;
    }
    channel._attach(participant, dataChannel);
    if (created) this.emit("channel", { channel });
  }

  // -- files -------------------------------------------------------------------

  /**
   * Send a file (a File or Blob) to one participant, peer to peer. Returns the
   * {@link FileTransfer} at once; `await transfer.done` for the outcome.
   */
  sendFile(userId, file, { name } = {}) {
    const participant = this.participants.get(userId);
    if (!participant) throw new HubbubError(ERROR_CODES.NO_SUCH_PEER, `${userId} is not in the room`);
    const transfer = new FileTransfer(this, {
      id: randomId(24),
      direction: "send",
      peer: participant,
      name: name ?? file.name ?? "file",
      size: file.size,
      mime: file.type || "application/octet-stream",
    });
    transfer._file = file;
    this._transfers.set(transfer.id, transfer);
    transfer._startSending(participant);
    return transfer;
  }

  _onFileChannel(participant, dataChannel) {
    const id = dataChannel.label.slice(FILE_LABEL_PREFIX.length);
    const transfer = new FileTransfer(this, { id, direction: "receive", peer: participant });
    transfer._startReceiving(dataChannel);
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

// -- participants and their peer connections ---------------------------------------

/**
 * Someone else in the room. `streams` maps a remote MediaStream's id to
 * `{stream, kind}`; `media` is what they say they send (`audio`, `video`, `screen`).
 */
export class Participant {
  constructor(room, userId, polite) {
    this.room = room;
    this.userId = userId;
    this.displayName = userId;
    this.polite = polite;
    this.grants = null; // null: no token, every grant but admin
    this.status = DEFAULT_STATUS;
    this.typing = false;
    this.media = { audio: true, video: true, screen: false };
    this.connectionState = "new";
    /** Their connection to the server: `connected`, or `reconnecting` while they may come back. */
    this.connection = "connected";
    /** @type {Map<string, {stream: MediaStream, kind: string}>} */
    this.streams = new Map();
    this._streamKinds = {};
    this._link = null;
    this._firstOfferTimer = null;
  }

  // Typing shown until the member says it stopped, sends chat, leaves, or does not
  // renew it for `typingExpireMs` (the server does not time typing out).
  _setTyping(typing, announce = true) {
    clearTimeout(this._typingExpiry);
    if (typing) {
      this._typingExpiry = setTimeout(() => this._setTyping(false), this.room.limits.typingExpireMs);
    }
    if (this.typing === typing) return;
    this.typing = typing;
    if (announce) this.room.emit("typing", { participant: this, userId: this.userId, typing });
  }

  _update(info) {
    if (typeof info.name === "string" && info.name) this.displayName = info.name;
    if (Array.isArray(info.grants)) this.grants = info.grants;
    if (typeof info.status === "string") this.status = info.status;
    if (info.connection === "reconnecting" || info.connection === "connected") this.connection = info.connection;
  }

  /** The RTCPeerConnection to this participant (null before it exists). */
  get peerConnection() {
    return this._link?.pc ?? null;
  }

  /**
   * Loudness of this participant's microphone since the previous call, 0 to 1: the root
   * mean square of everything received in between, from the receiver's audio energy,
   * so a short sound between two calls counts (audioLevel() sees only the last packet).
   */
  async audioLevelSinceLastCall() {
    const pc = this._link?.pc;
    if (!pc) return 0;
    let energy = 0;
    let duration = 0;
    for (const receiver of pc.getReceivers()) {
      if (receiver.track?.kind !== "audio") continue;
      const stats = await receiver.getStats();
      for (const report of stats.values()) {
        if (report.type !== "inbound-rtp") continue;
        energy += report.totalAudioEnergy ?? 0;
        duration += report.totalSamplesDuration ?? 0;
      }
    }
    const previous = this._audioEnergy ?? { energy: 0, duration: 0 };
    this._audioEnergy = { energy, duration };
    const elapsed = duration - previous.duration;
    if (elapsed <= 0 || energy < previous.energy) return 0;
    return Math.min(1, Math.sqrt((energy - previous.energy) / elapsed));
  }

  /** Audio level of this participant's microphone, 0 to 1, from the last packets received. */
  audioLevel() {
    const pc = this._link?.pc;
    if (!pc) return 0;
    let level = 0;
    for (const receiver of pc.getReceivers()) {
      if (receiver.track?.kind !== "audio") continue;
      for (const source of receiver.getSynchronizationSources?.() ?? []) {
        if (performance.timeOrigin + performance.now() - source.timestamp < 1000) {
          level = Math.max(level, source.audioLevel ?? 0);
        }
      }
    }
    return level;
  }

  // The earlier member makes the first offer (docs/peer-protocol.md).
  _startAsIncumbent() {
    this.room._signal(this.userId, this.room._mediaState());
    this._ensureLink({ openControl: true });
  }

  // The newcomer waits for the first offer, then offers itself if none came.
  _startAsNewcomer() {
    this.room._signal(this.userId, this.room._mediaState());
    if (!this.polite) {
      this._ensureLink({ openControl: true });
      return;
    }
    clearTimeout(this._firstOfferTimer);
    this._firstOfferTimer = setTimeout(() => {
      if (!this._link && this.room.participants.get(this.userId) === this) {
        this._ensureLink({ openControl: true });
      }
    }, this.room.limits.firstOfferWaitMs);
  }

  _ensureLink(options = {}) {
    if (!this._link) {
      clearTimeout(this._firstOfferTimer);
      this._link = new PeerLink(this.room, this, options);
      for (const resolve of this._linkWaiters ?? []) resolve(this._link);
      this._linkWaiters = [];
    }
    return this._link;
  }

  // A newcomer does not offer before the first offer comes (or its wait is over):
  // what needs the connection waits for it rather than starting a second negotiation.
  _whenLinked() {
    if (this._link) return Promise.resolve(this._link);
    return new Promise((resolve) => {
      this._linkWaiters ??= [];
      this._linkWaiters.push(resolve);
    });
  }

  _onSignal(signal) {
    switch (signal.type) {
      case "offer":
      case "answer":
      case "ice-candidate":
        if (!this._link && signal.type !== "offer") return;
        this._ensureLink().enqueue(signal);
        break;
      case "media-state":
        this._onMediaState(signal);
        break;
      default:
        break;
    }
  }

  _onMediaState(signal) {
    this.media = {
      audio: Boolean(signal.audio),
      video: Boolean(signal.video),
      screen: Boolean(signal.screen),
    };
    if (signal.streams && typeof signal.streams === "object") {
      this._streamKinds = { ...signal.streams };
      for (const [id, entry] of this.streams) {
        const kind = this._streamKinds[id];
        if (kind === "screen" && !this._mayShareScreen()) {
          this._removeRemoteStream(id);
        } else if (kind && kind !== entry.kind) {
          entry.kind = kind;
          this.room.emit("stream", { participant: this, stream: entry.stream, kind });
        }
      }
    }
    this.room.emit("participant-updated", { participant: this });
  }

  _mayShareScreen() {
    return !this.grants || this.grants.includes("screen");
  }

  _kindOf(streamId) {
    const said = this._streamKinds[streamId];
    if (said) return said;
    const camera = [...this.streams.values()].some((entry) => entry.kind === "camera");
    return camera ? "screen" : "camera";
  }

  _addRemoteTrack(track, stream) {
    let entry = this.streams.get(stream.id);
    if (!entry) {
      const kind = this._kindOf(stream.id);
      // The server cannot tell a screen from a camera; its grants are for clients to honour.
      if (kind === "screen" && !this._mayShareScreen()) return;
      entry = { stream, kind };
      this.streams.set(stream.id, entry);
      stream.addEventListener("removetrack", () => {
        if (stream.getTracks().length === 0) this._removeRemoteStream(stream.id);
      });
      this.room.emit("stream", { participant: this, stream, kind: entry.kind });
    }
    track.addEventListener("ended", () => {
      if (stream.getTracks().every((t) => t.readyState === "ended")) this._removeRemoteStream(stream.id);
    });
    this.room.emit("track", { participant: this, track, stream });
  }

  _removeRemoteStream(streamId) {
    const entry = this.streams.get(streamId);
    if (!entry) return;
    this.streams.delete(streamId);
    this.room.emit("stream-removed", { participant: this, stream: entry.stream, kind: entry.kind });
  }

  _closeLink() {
    clearTimeout(this._firstOfferTimer);
    const link = this._link;
    this._link = null;
    if (link) link.close();
    for (const id of [...this.streams.keys()]) this._removeRemoteStream(id);
    this.connectionState = "closed";
  }
}

/**
 * One RTCPeerConnection with perfect negotiation (the W3C pattern): the polite peer
 * rolls back its own offer on a collision, the impolite one ignores the other's.
 * A polite peer whose first offer collides answers on a fresh RTCPeerConnection
 * instead (see _apply).
 */
class PeerLink {
  constructor(room, participant, { openControl = false } = {}) {
    this.room = room;
    this.participant = participant;
    this.polite = participant.polite;
    this.openControl = openControl;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.closed = false;
    this.appChannels = new Map(); // label -> RTCDataChannel this side opened
    this._queue = Promise.resolve();
    this._restartTimer = null;
    this._newPeerConnection();
    for (const channel of room._channels.values()) {
      if (!channel._remoteOnly) this.openAppChannel(channel);
    }
  }

  /** A new RTCPeerConnection as this.pc, with what this side sends; the old one's events are ignored. */
  _newPeerConnection() {
    const room = this.room;
    const participant = this.participant;
    const pc = new RTCPeerConnection(room._rtcConfiguration());
    this.pc = pc;
    this.senders = new Map(); // track slot ("camera-audio", ...) -> RTCRtpSender
    const current = (handler) => (event) => {
      if (pc === this.pc) handler(event);
    };
    pc.onnegotiationneeded = current(() => this.negotiate());
    pc.onicecandidate = current(({ candidate }) => {
      if (candidate && candidate.candidate) {
        room._signal(participant.userId, { type: "ice-candidate", candidate: candidate.toJSON() });
      }
    });
    pc.ontrack = current(({ track, streams, transceiver }) => {
      const stream = streams[0] ?? this._streamForTrackless(transceiver, track);
      participant._addRemoteTrack(track, stream);
    });
    pc.ondatachannel = current(({ channel }) => this._onDataChannel(channel));
    pc.onconnectionstatechange = current(() => this._onConnectionState());
    pc.oniceconnectionstatechange = current(() => this._onIceState());
    if (this.openControl) this.control = pc.createDataChannel(CONTROL_LABEL);
    this.syncSenders();
  }

  // A peer that sends a track with no stream (no msid) still gets a stream per transceiver.
  _streamForTrackless(transceiver, track) {
    this._tracklessStreams ??= new Map();
    const key = transceiver?.mid ?? track.id;
    let stream = this._tracklessStreams.get(key);
    if (!stream) {
      stream = new MediaStream();
      this._tracklessStreams.set(key, stream);
    }
    stream.addTrack(track);
    return stream;
  }

  updateConfiguration() {
    if (!this.closed) this.pc.setConfiguration(this.room._rtcConfiguration());
  }

  /** Make the senders match what the room sends: add, replace or remove tracks. */
  syncSenders() {
    if (this.closed) return;
    const room = this.room;
    const wanted = new Map();
    const camera = room.localStream;
    if (camera) {
      const audio = camera.getAudioTracks()[0];
      const video = camera.getVideoTracks().find((t) => t.readyState === "live");
      if (audio) wanted.set("camera-audio", [audio, camera]);
      // A camera that is off keeps its sender, with no track: turning it on again
      // needs no renegotiation.
      wanted.set("camera-video", [video ?? null, camera]);
    }
    const screen = room.screenStream;
    if (screen) {
      for (const track of screen.getTracks()) wanted.set(`screen-${track.kind}`, [track, screen]);
    }
    for (const [slot, [track, stream]] of wanted) {
      const sender = this.senders.get(slot);
      if (sender) {
        if (sender.track !== track) sender.replaceTrack(track).catch(() => {});
      } else if (track) {
        this.senders.set(slot, this.pc.addTrack(track, stream));
      }
    }
    for (const [slot, sender] of this.senders) {
      if (!wanted.has(slot)) {
        this.senders.delete(slot);
        try {
          this.pc.removeTrack(sender);
        } catch {
          /* the connection is closing */
        }
      }
    }
  }

  openAppChannel(channel) {
    if (this.closed || this.appChannels.has(channel.label)) return;
    this.appChannels.set(channel.label, null);
    this.sctpConnected().then(
      () => {
        if (this.closed || this.room._channels.get(channel.label) !== channel) return;
        const dataChannel = this.pc.createDataChannel(channel.label, channel.options);
        this.appChannels.set(channel.label, dataChannel);
        channel._attach(this.participant, dataChannel);
      },
      () => {},
    );
  }

  /**
   * Resolves once the SCTP association is up. Data channels are opened only then: a
   * channel made while an offer is out can be caught in that offer's rollback (perfect
   * negotiation's polite side) and never open.
   */
  sctpConnected() {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.closed) reject(new HubbubError("closed", "the peer connection is closed"));
        else if (this.pc.sctp?.state === "connected") resolve();
        else setTimeout(check, 100);
      };
      check();
    });
  }

  _onDataChannel(dataChannel) {
    const label = dataChannel.label;
    if (label === CONTROL_LABEL) return;
    if (label.startsWith(FILE_LABEL_PREFIX)) {
      this.room._onFileChannel(this.participant, dataChannel);
    } else if (!label.startsWith(RESERVED_PREFIX)) {
      this.room._onRemoteAppChannel(this.participant, dataChannel);
    } else {
      dataChannel.close();
    }
  }

  async negotiate() {
    if (this.closed) return;
    const pc = this.pc;
    try {
      this.makingOffer = true;
      await pc.setLocalDescription();
      if (pc !== this.pc || pc.signalingState !== "have-local-offer") return;
      this.room._signal(this.participant.userId, {
        type: "offer",
        sdp: pc.localDescription.toJSON(),
      });
    } catch (error) {
      if (pc === this.pc) this._warn("making an offer", error);
    } finally {
      if (pc === this.pc) this.makingOffer = false;
    }
  }

  /** Signals from this peer are applied one at a time, in the order they came. */
  enqueue(signal) {
    this._queue = this._queue.then(() => this._apply(signal)).catch((error) => this._warn(signal.type, error));
  }

  async _apply(signal) {
    if (this.closed) return;
    let pc = this.pc;
    if (signal.type === "offer" || signal.type === "answer") {
      const description = toDescription(signal);
      if (!description) return;
      const readyForOffer =
        !this.makingOffer && (pc.signalingState === "stable" || this.settingRemoteAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      if (collision && !pc.currentLocalDescription && !pc.currentRemoteDescription) {
        // Our first offer collided: nothing was ever negotiated on this connection, so
        // answer on a fresh one rather than roll back. Chromium that rolls back a
        // first offer is at times left with an ICE agent that never gathers, or
        // rejects the data section of its answer when the offers' sections differ
        // in order. hubbub.peer, on aiortc (no rollback), does the same.
        pc.close();
        this._newPeerConnection();
        pc = this.pc;
        this.makingOffer = false;
      }
      this.settingRemoteAnswer = description.type === "answer";
      try {
        await pc.setRemoteDescription(description); // rolls back our own offer on a collision
      } finally {
        this.settingRemoteAnswer = false;
      }
      if (description.type === "offer") {
        await pc.setLocalDescription();
        this.room._signal(this.participant.userId, {
          type: "answer",
          sdp: pc.localDescription.toJSON(),
        });
      }
    } else if (signal.type === "ice-candidate") {
      const candidate = signal.candidate;
      if (!candidate || typeof candidate !== "object" || !candidate.candidate) return;
      try {
        await pc.addIceCandidate(candidate);
      } catch (error) {
        if (!this.ignoreOffer) throw error;
      }
    }
  }

  _onConnectionState() {
    const state = this.pc.connectionState;
    this.participant.connectionState = state;
    this.room.emit("peer-state", { participant: this.participant, state });
  }

  // A connection that fails (or stays disconnected) restarts ICE: new credentials,
  // new candidates (a new network, a TURN server back up). restartIce() makes this side
  // offer, and perfect negotiation sorts out both sides doing it at once. A restart
  // that does not bring the connection back is tried again, each time waiting twice
  // as long, until it connects or the participant leaves.
  _onIceState() {
    const state = this.pc.iceConnectionState;
    const limits = this.room.limits;
    if (state === "connected" || state === "completed") {
      clearTimeout(this._restartTimer);
      this._restartTimer = null;
      this._restarts = 0;
    } else if (state === "failed") {
      clearTimeout(this._restartTimer);
      this._restartTimer = setTimeout(() => this._restartIfDown(), this._restartBackoff());
    } else if (state === "disconnected" && !this._restartTimer) {
      const wait = Math.max(limits.iceDisconnectedRestartMs, this._restartBackoff());
      this._restartTimer = setTimeout(() => this._restartIfDown(), wait);
    }
  }

  _restartBackoff() {
    if (!this._restarts) return 0;
    const limits = this.room.limits;
    return Math.min(limits.iceRestartMaxMs, limits.iceDisconnectedRestartMs * 2 ** (this._restarts - 1));
  }

  _restartIfDown() {
    this._restartTimer = null;
    if (this.closed) return;
    const state = this.pc.iceConnectionState;
    if (state === "connected" || state === "completed") return;
    // The offer goes through the server: while it is away, wait for it (a fresh join
    // makes a new connection anyway).
    if (this.room.state === "open") this.restartIce();
    // Not back after the restart (or the wait for the server)? Try again, later.
    const retry = Math.min(this.room.limits.iceRestartMaxMs, 2 * Math.max(1000, this._restartBackoff()));
    this._restartTimer = setTimeout(() => this._restartIfDown(), retry);
  }

  /** Restart ICE now: new credentials and candidates, media carrying on meanwhile. */
  restartIce() {
    if (this.closed) return;
    this._restarts = (this._restarts ?? 0) + 1;
    this.room.emit("ice-restart", { participant: this.participant, attempt: this._restarts });
    this.pc.restartIce();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this._restartTimer);
    for (const channel of this.room._channels.values()) channel._detach(this.participant);
    this.pc.close();
  }

  _warn(what, error) {
    if (!this.closed) console.warn(`hubbub: ${what} with ${this.participant.userId}:`, error);
  }
}

function toDescription(signal) {
  const sdp = signal.sdp;
  if (sdp && typeof sdp === "object" && typeof sdp.sdp === "string") {
    return { type: sdp.type ?? signal.type, sdp: sdp.sdp };
  }
  if (typeof sdp === "string") return { type: signal.type, sdp };
  return null;
}

// -- app data channels ---------------------------------------------------------------

/**
 * A named data channel to every participant. `send(data)` goes to everyone whose
 * channel is open, `sendTo(userId, data)` to one. Events: `message` `{from, data}`,
 * `open` `{userId}`, `close` `{userId}`.
 */
export class AppChannel extends Emitter {
  constructor(room, label, options) {
    super();
    this.room = room;
    this.label = label;
    const { _remoteOnly, reliable, ...rest } = options;
    this.options = { ordered: true, ...rest };
    if (reliable === false) Object.assign(this.options, { ordered: false, maxRetransmits: 0 });
    this._remoteOnly = Boolean(_remoteOnly);
    this._peers = new Map(); // userId -> RTCDataChannel[]
  }

  get peers() {
    return [...this._peers.keys()].filter((userId) => this._open(userId));
  }

  _open(userId) {
    return (this._peers.get(userId) ?? []).find((channel) => channel.readyState === "open");
  }

  _attach(participant, dataChannel) {
    dataChannel.binaryType = "arraybuffer";
    const list = this._peers.get(participant.userId) ?? [];
    list.push(dataChannel);
    this._peers.set(participant.userId, list);
    dataChannel.addEventListener("message", (event) => {
      this.emit("message", { from: participant.userId, data: event.data });
    });
    const opened = () => this.emit("open", { userId: participant.userId });
    if (dataChannel.readyState === "open") queueMicrotask(opened);
    else dataChannel.addEventListener("open", opened);
    dataChannel.addEventListener("close", () => {
      const remaining = (this._peers.get(participant.userId) ?? []).filter((c) => c !== dataChannel);
      if (remaining.length) this._peers.set(participant.userId, remaining);
      else this._peers.delete(participant.userId);
      this.emit("close", { userId: participant.userId });
    });
  }

  _detach(participant) {
    this._peers.delete(participant.userId);
  }

  /** Send to everyone whose channel is open; returns how many it went to. */
  send(data) {
    let count = 0;
    for (const userId of this._peers.keys()) if (this.sendTo(userId, data)) count += 1;
    return count;
  }

  sendTo(userId, data) {
    const channel = this._open(userId);
    if (!channel) return false;
    channel.send(data);
    return true;
  }

  close() {
    for (const list of this._peers.values()) for (const channel of list) channel.close();
    this._peers.clear();
    this.room._channels.delete(this.label);
  }
}

// -- files -------------------------------------------------------------------------

/**
 * A file on its way to or from a participant, on its own data channel
 * (docs/peer-protocol.md). `state`: `offered`, `transferring`, `verifying`, `done`,
 * `failed`, `cancelled`, `rejected`. `bytes` counts what has arrived (receiver) or
 * left (sender). `done` resolves when the file is through (with a Blob for the
 * receiver) and rejects otherwise. Events: `progress` `{bytes, size}`, `state` `{state}`.
 */
export class FileTransfer extends Emitter {
  constructor(room, { id, direction, peer, name = "", size = 0, mime = "" }) {
    super();
    this.room = room;
    this.id = id;
    this.direction = direction;
    this.peer = peer;
    this.userId = peer.userId;
    this.name = name;
    this.size = size;
    this.mime = mime;
    this.sha256 = null;
    this.bytes = 0;
    this.state = "offered";
    this.error = null;
    this.blob = null;
    this.startedAt = null;
    this.finishedAt = null;
    this._channel = null;
    this._lastProgress = 0;
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.done.catch(() => {}); // a transfer nobody awaits must not report an unhandled rejection
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", { state });
  }

  _progress(bytes, force = false) {
    this.bytes = bytes;
    const now = performance.now();
    if (force || now - this._lastProgress >= this.room.limits.progressIntervalMs) {
      this._lastProgress = now;
      this.emit("progress", { bytes, size: this.size });
    }
  }

  _finished() {
    return ["done", "failed", "cancelled", "rejected"].includes(this.state);
  }

  _control(message) {
    const channel = this._channel;
    if (channel?.readyState === "open") channel.send(JSON.stringify({ ...message, id: this.id }));
  }

  _fail(reason, state = "failed") {
    if (this._finished()) return;
    this.error = reason;
    this.finishedAt = performance.now();
    this._setState(state);
    this._reject(new HubbubError(state === "failed" ? "file-failed" : `file-${state}`, reason));
    this.room._transfers.delete(this.id);
    const channel = this._channel;
    if (channel) setTimeout(() => channel.close(), 1000); // let a last control message go out
  }

  /** Stop the transfer, on both sides. */
  cancel(reason = "cancelled") {
    if (this._finished()) return;
    this._control({ kind: "file-cancel", reason });
    this._fail(reason, "cancelled");
  }

  // -- sender --------------------------------------------------------------------

  async _startSending(participant) {
    const limits = this.room.limits;
    let link;
    try {
      link = await participant._whenLinked();
      await link.sctpConnected();
    } catch {
      this._fail("the connection closed");
      return;
    }
    if (this._finished()) return;
    const channel = link.pc.createDataChannel(FILE_LABEL_PREFIX + this.id, { ordered: true });
    this._channel = channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = limits.fileLowWaterBytes;
    let acceptOffset = null;
    let accepted;
    const answered = new Promise((resolve) => (accepted = resolve));
    let peerDone;
    const verdict = new Promise((resolve) => (peerDone = resolve));
    channel.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      const message = parseControl(event.data);
      if (!message) return;
      if (message.kind === "file-accept") {
        acceptOffset = Number.isSafeInteger(message.offset) ? message.offset : 0;
        accepted(true);
      } else if (message.kind === "file-reject") {
        this._fail(String(message.reason ?? "declined"), "rejected");
        accepted(false);
      } else if (message.kind === "file-cancel") {
        this._fail(String(message.reason ?? "cancelled by the receiver"), "cancelled");
        accepted(false);
        peerDone(null);
      } else if (message.kind === "file-done") {
        peerDone(message);
      }
    };
    channel.onclose = () => {
      this._fail("the connection closed");
      accepted(false);
      peerDone(null);
    };
    await new Promise((resolve) => {
      if (channel.readyState === "open") resolve();
      else channel.addEventListener("open", resolve, { once: true });
    });
    if (this._finished()) return;
    // WebCrypto is native and many times faster than hashing in JavaScript, but it takes
    // the whole input at once: files that fit in memory are hashed before they are
    // offered; larger ones are hashed while they stream (`sha256: null` in the offer).
    if (nativeHash(this.size, limits)) {
      try {
        this.sha256 = await sha256Hex(await this._file.arrayBuffer());
      } catch {
        this.sha256 = null;
      }
      if (this._finished()) return;
    }
    this._control({
      kind: "file-offer",
      name: this.name,
      size: this.size,
      mime: this.mime,
      sha256: this.sha256,
    });
    if (!(await answered) || this._finished()) return;
    if (acceptOffset < 0 || acceptOffset > this.size) {
      this.cancel("bad offset");
      return;
    }
    this._setState("transferring");
    this.startedAt = performance.now();
    try {
      const sha256 = await this._pump(link, channel, acceptOffset, this.sha256 === null);
      if (this._finished()) return;
      this.sha256 = sha256;
      this._control({ kind: "file-end", sha256 });
      // Progress on this side is what has left: wait for the buffer to drain.
      while (channel.bufferedAmount > 0 && channel.readyState === "open" && !this._finished()) {
        this._progress(this.size - channel.bufferedAmount);
        await sleep(50);
      }
      this._progress(this.size, true);
      this._setState("verifying");
      const result = await verdict;
      if (this._finished() || !result) return;
      if (result.ok) {
        this.finishedAt = performance.now();
        this._setState("done");
        this.room._transfers.delete(this.id);
        this._resolve();
        channel.close();
      } else {
        this._fail(String(result.reason ?? "the receiver could not verify the file"));
      }
    } catch (error) {
      if (!this._finished()) this.cancel(error?.message ?? "read error");
    }
  }

  async _pump(link, channel, offset, hashing) {
    const limits = this.room.limits;
    const file = this._file;
    const maxMessage = link.pc.sctp?.maxMessageSize || limits.fileChunkBytes;
    const chunk = Math.max(1024, Math.min(limits.fileChunkBytes, maxMessage));
    const hash = hashing ? new Sha256() : null;
    // Bytes before the offset are on the receiver already; they count in the hash.
    for (let at = 0; hashing && at < offset; at += limits.fileReadBytes) {
      hash.update(new Uint8Array(await file.slice(at, Math.min(offset, at + limits.fileReadBytes)).arrayBuffer()));
    }
    let sent = offset;
    let drained = null;
    channel.onbufferedamountlow = () => drained?.();
    for (let at = offset; at < this.size; at += limits.fileReadBytes) {
      const block = new Uint8Array(await file.slice(at, Math.min(this.size, at + limits.fileReadBytes)).arrayBuffer());
      hash?.update(block);
      for (let start = 0; start < block.byteLength; start += chunk) {
        if (this._finished()) return null;
        if (channel.bufferedAmount > limits.fileHighWaterBytes) {
          await new Promise((resolve) => {
            drained = resolve;
            if (channel.readyState !== "open") resolve();
          });
          drained = null;
          if (channel.readyState !== "open" || this._finished()) return null;
        }
        const piece = block.subarray(start, Math.min(block.byteLength, start + chunk));
        channel.send(piece);
        sent += piece.byteLength;
        this._progress(Math.max(offset, sent - channel.bufferedAmount));
      }
    }
    return hash ? hash.hex() : this.sha256;
  }

  // -- receiver ------------------------------------------------------------------

  _startReceiving(channel) {
    this._channel = channel;
    channel.binaryType = "arraybuffer";
    const parts = [];
    let hash = null; // incremental, unless the offer's hash can be checked natively at the end
    let received = 0;
    let offered = false;
    channel.onmessage = (event) => {
      if (this._finished()) return;
      if (typeof event.data !== "string") {
        if (this.state !== "transferring") return this.cancel("data before the file was accepted");
        const bytes = new Uint8Array(event.data);
        received += bytes.byteLength;
        if (received > this.size) return this.cancel("more data than the file's size");
        parts.push(bytes);
        hash?.update(bytes);
        this._progress(received);
        return;
      }
      const message = parseControl(event.data);
      if (!message) return;
      if (message.kind === "file-offer" && !offered) {
        offered = true;
        this._onOffer(message);
        if (!(this.sha256 && nativeHash(this.size, this.room.limits))) hash = new Sha256();
      } else if (message.kind === "file-end" && this.state === "transferring") {
        this._progress(received, true);
        this._setState("verifying");
        this._verify(message, parts, hash, received);
      } else if (message.kind === "file-cancel") {
        this._fail(String(message.reason ?? "cancelled by the sender"), "cancelled");
      }
    };
    channel.onclose = () => this._fail("the connection closed");
  }

  async _verify(message, parts, hash, received) {
    const blob = new Blob(parts, { type: this.mime });
    parts.length = 0;
    let actual = hash?.hex();
    if (!hash && received === this.size) {
      try {
        actual = await sha256Hex(await blob.arrayBuffer());
      } catch {
        actual = null;
      }
    }
    if (this._finished()) return;
    const expected = message.sha256 ?? this.sha256;
    if (received !== this.size) {
      this._control({ kind: "file-done", ok: false, reason: "size mismatch" });
      this._fail(`received ${received} of ${this.size} bytes`);
    } else if (
      typeof expected !== "string" ||
      expected.toLowerCase() !== actual ||
      (this.sha256 && this.sha256 !== actual)
    ) {
      this._control({ kind: "file-done", ok: false, reason: "sha256 mismatch" });
      this._fail("the file's SHA-256 does not match");
    } else {
      this.sha256 = actual;
      this.blob = blob;
      this._control({ kind: "file-done", ok: true });
      this.finishedAt = performance.now();
      this._setState("done");
      this.room._transfers.delete(this.id);
      this._resolve(this.blob);
    }
  }

  _onOffer(message) {
    const limits = this.room.limits;
    const size = message.size;
    if (!Number.isSafeInteger(size) || size < 0 || typeof message.name !== "string") {
      this._control({ kind: "file-reject", reason: "bad offer" });
      this._fail("bad offer", "rejected");
      return;
    }
    // Only a base name, whatever the sender wrote.
    this.name = message.name.split(/[\\/]/).pop().slice(0, 255) || "file";
    this.size = size;
    this.mime = typeof message.mime === "string" ? message.mime.slice(0, 255) : "application/octet-stream";
    this.sha256 = typeof message.sha256 === "string" ? message.sha256.toLowerCase() : null;
    this.room._transfers.set(this.id, this);
    if (size > limits.maxIncomingFileBytes) {
      this.reject("too large");
      return;
    }
    if (!this.room.hasListeners("file-offer")) {
      this.reject("not accepting files");
      return;
    }
    this.room.emit("file-offer", { transfer: this });
  }

  /** Take an offered file. Resolves (as `done` does) with a Blob once it is verified. */
  accept() {
    if (this.direction !== "receive" || this.state !== "offered") return this.done;
    this._setState("transferring");
    this.startedAt = performance.now();
    this._control({ kind: "file-accept", offset: 0 });
    this._progress(0, true);
    return this.done;
  }

  /** Turn an offered file down. */
  reject(reason = "declined") {
    if (this.direction !== "receive" || this.state !== "offered") return;
    this._control({ kind: "file-reject", reason });
    this._fail(reason, "rejected");
  }
}

function nativeHash(size, limits) {
  return Boolean(globalThis.crypto?.subtle) && size <= limits.nativeHashMaxBytes;
}

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function parseControl(text) {
  try {
    const message = JSON.parse(text);
    return message && typeof message === "object" && typeof message.kind === "string" ? message : null;
  } catch {
    return null;
  }
}

// -- SHA-256 -------------------------------------------------------------------------

// Int32, not Uint32: V8 keeps small integers unboxed, and the arithmetic is mod 2^32 anyway.
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/**
 * Incremental SHA-256 (FIPS 180-4). WebCrypto's digest() takes the whole input at
 * once and exists only in secure contexts; a file is hashed while it streams.
 */
export class Sha256 {
  constructor() {
    this._state = new Int32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this._block = new Uint8Array(64);
    this._blockLength = 0;
    this._length = 0;
    this._w = new Int32Array(64);
  }

  /** Add bytes (a Uint8Array, ArrayBuffer or string, taken as UTF-8). */
  update(data) {
    let bytes = data;
    if (typeof data === "string") bytes = new TextEncoder().encode(data);
    else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (!(data instanceof Uint8Array)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this._length += bytes.byteLength;
    let offset = 0;
    if (this._blockLength > 0) {
      const take = Math.min(64 - this._blockLength, bytes.byteLength);
      this._block.set(bytes.subarray(0, take), this._blockLength);
      this._blockLength += take;
      offset = take;
      if (this._blockLength < 64) return this;
      this._compress(this._block, 0, 64);
      this._blockLength = 0;
    }
    const whole = offset + Math.floor((bytes.byteLength - offset) / 64) * 64;
    this._compress(bytes, offset, whole);
    offset = whole;
    if (offset < bytes.byteLength) {
      this._block.set(bytes.subarray(offset));
      this._blockLength = bytes.byteLength - offset;
    }
    return this;
  }

  // Compresses every whole 64-byte block of bytes[offset, end), the state in locals
  // throughout (one call per update, not per block: this is what makes it fast in V8).
  _compress(bytes, offset, end) {
    const w = this._w;
    const s = this._state;
    let h0 = s[0], h1 = s[1], h2 = s[2], h3 = s[3], h4 = s[4], h5 = s[5], h6 = s[6], h7 = s[7];
    for (let p = offset; p + 64 <= end; p += 64) {
      for (let i = 0; i < 16; i++) {
        const j = p + i * 4;
        w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
      }
      for (let i = 16; i < 64; i++) {
        let u = w[i - 2];
        const t1 = ((u >>> 17) | (u << 15)) ^ ((u >>> 19) | (u << 13)) ^ (u >>> 10);
        u = w[i - 15];
        const t2 = ((u >>> 7) | (u << 25)) ^ ((u >>> 18) | (u << 14)) ^ (u >>> 3);
        w[i] = (((t1 + w[i - 7]) | 0) + ((t2 + w[i - 16]) | 0)) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let i = 0; i < 64; i++) {
        const t1 =
          ((((((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
            ((e & f) ^ (~e & g))) |
            0) +
            ((h + ((K[i] + w[i]) | 0)) | 0)) |
          0;
        const t2 =
          ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
            ((a & b) ^ (a & c) ^ (b & c))) |
          0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0;
      h1 = (h1 + b) | 0;
      h2 = (h2 + c) | 0;
      h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0;
      h5 = (h5 + f) | 0;
      h6 = (h6 + g) | 0;
      h7 = (h7 + h) | 0;
    }
    s[0] = h0;
    s[1] = h1;
    s[2] = h2;
    s[3] = h3;
    s[4] = h4;
    s[5] = h5;
    s[6] = h6;
    s[7] = h7;
  }

  /** The digest in lower-case hex. The hash cannot be updated afterwards. */
  hex() {
    const bitLength = this._length * 8;
    const padding = new Uint8Array(((this._blockLength < 56 ? 56 : 120) - this._blockLength) + 8);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    view.setUint32(padding.length - 8, Math.floor(bitLength / 0x100000000));
    view.setUint32(padding.length - 4, bitLength >>> 0);
    const length = this._length;
    this.update(padding);
    this._length = length;
    return Array.from(this._state, (word) => (word >>> 0).toString(16).padStart(8, "0")).join("");
  }
}
