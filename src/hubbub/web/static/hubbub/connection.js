// connection.js: the connection to the server, for the life of a room.
//
// One WebSocket at a time, the hello that starts a session on it (`join-room`, or
// `resume` after a drop), requests and the replies that carry their `ref`, liveness,
// and the reconnect loop (docs/protocol.md#reconnecting-and-resuming), with the rules
// that loop follows taken from /protocol.js. It knows nothing of what a room holds:
// its host says how to join and takes every message. A Room is its host; a test page
// may be one too.

import { CLOSE_CODES, ERROR_CODES, FINAL_CLOSE_CODES, RETRIED_REJOIN_ERRORS } from "../protocol.js";
import { DEFAULTS } from "./defaults.js";
import { Emitter } from "./emitter.js";
import { HubbubError } from "./errors.js";

// Besides the server's refusals in RETRIED_REJOIN_ERRORS, a reconnection keeps trying
// after these, the library's own: the attempt got no answer at all.
const RETRIED_LOCAL_ERRORS = ["unreachable", "timeout", "closed", "not-connected"];
// What the browser reports for a connection that ended without a close frame.
const ABNORMAL_CLOSURE = 1006;
// The ref of a message of a kind an older server may not know (see sendOptional).
const OPTIONAL_REF = "optional:";
// Messages written while the connection is down, sent once the session is resumed.
const MAX_HELD_MESSAGES = 1000;
// The longest wait a server's `reconnect {afterMs}` is followed for.
const MAX_RESTART_DELAY_MS = 60000;
// Added to a held user id's `heldForMs` before the join is sent again.
const HELD_ID_MARGIN_MS = 250;

/**
 * The wait before reconnection attempt `attempt` (1, 2, ...): exponential backoff
 * from `reconnectMinMs` to `reconnectMaxMs`, with jitter over the upper half so that
 * clients dropped together (a server restart) do not all come back at once.
 */
export function reconnectDelay(attempt, limits = DEFAULTS) {
  const ceiling = Math.min(limits.reconnectMaxMs, limits.reconnectMinMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}

/** A ws:// or wss:// URL; http(s):// means the same host, a relative URL this page's. */
export function toWebSocketUrl(url) {
  const parsed = new URL(url, globalThis.location?.href);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  return parsed.href;
}

/**
 * The connection to a hubbub server for one room, across reconnections.
 *
 * `host` is what it serves (a Room):
 * - `joinMessage()`: the `join-room` to send, or a promise of it (a fresh token);
 * - `joined(message, rejoin)`: `room-joined` came; the connection is not `open` yet;
 * - `opened(message)`: `open` after `room-joined` or `resumed`: what waited may go out;
 * - `message(message)`: every other message from the server, in order, and the
 *   replies to `request()` once it has them;
 * - `closing()`: the connection is closing for good (left, refused, given up).
 *
 * `state` is `connecting`, `open`, `reconnecting` or `closed`. Events:
 * `connection-state` `{state, previous, reason}`, `reconnecting` `{attempt, delayMs,
 * reason}`, `resumed` `{replayed}`, `rejoined` `{reason}`, `error` `{error}` (a rejoin
 * refused for good).
 */
export class Connection extends Emitter {
  constructor(url, host, { limits = DEFAULTS, reconnect = true } = {}) {
    super();
    this.url = toWebSocketUrl(url);
    this.host = host;
    this.limits = limits;
    this.state = "connecting";
    /** Why the connection closed for good: `{code, closeCode?}`, or null. */
    this.closeReason = null;
    /** The session's id on the server (from `room-joined`); null before the first. */
    this.sessionId = null;
    /** How many attempts this reconnection has made (0 while connected). */
    this.reconnectAttempt = 0;
    this._reconnect = reconnect;
    this._ws = null;
    this._refCounter = 0;
    this._pending = new Map(); // ref -> {resolve, reject, replyTypes}
    this._pingTimer = null;
    this._pongTimer = null;
    this._closing = false;
    this._wakeReconnect = null;
    this._unsupported = new Set(); // message types the server answered `unknown-type`
    this._onOnline = () => this.reconnectNow();
    // Resuming (docs/protocol.md#reconnecting-and-resuming): the session's secret, the
    // `n` of the last message received on it, and why the next return cannot resume.
    this._resumeToken = null;
    this._lastN = 0;
    this._replayUntil = null; // the last `n` a resume replays, until it has arrived
    this._replayed = 0;
    this._held = [];
    this._rejoinReason = null;
    this._restartDelayMs = null; // the server's `reconnect {afterMs}`
    this._abandoned = []; // sockets given up for dead, closed once a new one is in
  }

  /** Connect and join; resolves once the server has answered `room-joined`. */
  async open() {
    try {
      await this._connectOnce();
    } catch (error) {
      this._setState("closed");
      throw error;
    }
  }

  /** Send a message now; false (and nothing sent) unless the connection is open. */
  send(message) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== "open") return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Send a message and wait for the reply that carries its `ref` (or its error). */
  request(message, replyTypes) {
    const ref = this._nextRef();
    return new Promise((resolve, reject) => {
      this._pending.set(ref, { resolve, reject, replyTypes });
      if (!this.send({ ...message, ref })) {
        this._pending.delete(ref);
        reject(new HubbubError("not-connected", "not connected to the server"));
      }
    });
  }

  /**
   * Send a message of a kind an older server may not know: the first `unknown-type`
   * answer turns that kind off for this connection, silently.
   */
  sendOptional(message) {
    if (this._unsupported.has(message.type)) return false;
    return this.send({ ...message, ref: `${OPTIONAL_REF}${message.type}` });
  }

  /**
   * Send a message now or, while reconnecting with a session to take back, once it is
   * resumed, in order (a fresh join drops what was held). Returns whether it went now.
   */
  sendOrHold(message) {
    if (this.send(message)) return true;
    if (this.state === "reconnecting" && this._canResume && this._held.length < MAX_HELD_MESSAGES) {
      this._held.push(message);
    }
    return false;
  }

  /**
   * While reconnecting, try again now rather than when the backoff says (a "try now"
   * button; the browser coming back online does it by itself). No effect otherwise.
   */
  reconnectNow() {
    this._wakeReconnect?.();
  }

  /** Leave: `leave-room`, then the socket is closed and the state is `closed`. */
  leave() {
    if (this.state === "closed") return;
    this._closing = true;
    this.send({ type: "leave-room" });
    this._shutdown();
  }

  // -- the hello ---------------------------------------------------------------------

  _nextRef() {
    this._refCounter += 1;
    return `h${this._refCounter}`;
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
    await this._connectOnce(await this.host.joinMessage());
  }

  /**
   * Open the socket and send `hello`; resolves once the server has answered it. A
   * refused `resume` falls back to `join-room` on the same connection.
   */
  async _connectOnce(hello = null) {
    hello ??= await this.host.joinMessage();
    return new Promise((resolve, reject) => {
      let settled = false;
      let ref = null;
      let heldSince = null; // when the join first found its user id held for a resume
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
      const timeout = () => fail(new HubbubError("timeout", "the server did not answer in time"));
      let timer = setTimeout(timeout, this.limits.joinTimeoutMs);
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
            if (settled || this._ws !== ws || ws.readyState !== WebSocket.OPEN) {
              fail(error);
              return;
            }
            if (message.type !== "resume") {
              // The user id is held for a session that may still resume (this page's
              // own, before a reload or a crash): join again once the server lets it go.
              heldSince ??= Date.now();
              const waitMs = heldIdWaitMs(error);
              if (waitMs === null || Date.now() + waitMs - heldSince > this.limits.heldIdWaitMs) {
                fail(error);
                return;
              }
              const userId = message.userId ?? null;
              console.info(`hubbub: user id ${userId} is held for a session that may still resume; joining again in ${Math.ceil(waitMs / 1000)} s`);
              this.emit("waiting-for-user-id", { userId, waitMs });
              clearTimeout(timer);
              setTimeout(() => {
                if (settled || this._ws !== ws) return;
                timer = setTimeout(timeout, this.limits.joinTimeoutMs);
                Promise.resolve(this.host.joinMessage()).then((join) => {
                  if (!settled && this._ws === ws) sendHello(join);
                }, fail);
              }, waitMs);
              return;
            }
            // The session is gone (or cannot give back all that was missed): join
            // afresh on this connection, and catch up on chat from the history.
            this._resumeToken = null;
            this._rejoinReason = (error.code === ERROR_CODES.RESUME_FAILED && error.reason) || "refused";
            Promise.resolve(this.host.joinMessage()).then((join) => {
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
          const unreachable = event.code === ABNORMAL_CLOSURE;
          fail(
            new HubbubError(
              unreachable ? "unreachable" : "closed",
              unreachable ? "cannot reach the server" : `the server closed the connection (${event.code})`,
              { closeCode: event.code },
            ),
          );
          return;
        }
        this._onSocketClosed(event);
      };
    });
  }

  _onJoined(message) {
    const rejoin = this.sessionId !== null;
    const cause = this._rejoinReason ?? "no-session";
    this._rejoinReason = null;
    this._restartDelayMs = null;
    this._replayUntil = null;
    this._held = []; // for peer connections that are made anew
    this.sessionId = message.sessionId;
    this._resumeToken = typeof message.resumeToken === "string" ? message.resumeToken : null;
    this.host.joined(message, rejoin);
    this._setState("open", rejoin ? { code: "rejoined", cause } : null);
    this.host.opened(message);
    if (rejoin) this.emit("rejoined", { reason: cause });
  }

  // The session is back on this connection, as it was; what was missed follows,
  // numbered after `_lastN`, and goes to the host like any message.
  _onResumed(message) {
    // Resumed on another node of a cluster, the session has an id there.
    if (typeof message.sessionId === "string" && message.sessionId) this.sessionId = message.sessionId;
    const until = Number.isSafeInteger(message.lastN) ? message.lastN : this._lastN;
    this._replayed = Math.max(0, until - this._lastN);
    this._replayUntil = until;
    this._rejoinReason = null;
    this._restartDelayMs = null;
    this._setState("open", { code: "resumed", replayed: this._replayed });
    // Sent before anything the replay leads the host to say, so they keep their order.
    const held = this._held;
    this._held = [];
    for (const heldMessage of held) this.send(heldMessage);
    this.host.opened(message);
    if (this._lastN >= until) this._caughtUp();
  }

  _caughtUp() {
    this._replayUntil = null;
    this.emit("resumed", { replayed: this._replayed });
  }

  // -- messages ----------------------------------------------------------------------

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
    if (message.ref !== undefined && this._pending.has(message.ref)) {
      const pending = this._pending.get(message.ref);
      if (message.type === "error") {
        this._pending.delete(message.ref);
        const details = typeof message.reason === "string" ? { reason: message.reason } : {};
        if (Number.isSafeInteger(message.heldForMs)) details.heldForMs = message.heldForMs;
        pending.reject(new HubbubError(message.code, message.message, details));
        return;
      }
      if (!pending.replyTypes || pending.replyTypes.includes(message.type)) {
        this._pending.delete(message.ref);
        pending.resolve(message);
        if (message.type === "room-joined" || message.type === "resumed") return;
      }
    }
    if (message.type === "reconnect") this._onRestartAdvice(message);
    this.host.message(message);
  }

  // The server is going away (SIGTERM), after the delay it asked for. A node of a
  // cluster hands its sessions to the others first (`resume: true`): the next
  // connection resumes, wherever it lands; otherwise sessions do not outlive the
  // process, and it joins afresh.
  _onRestartAdvice(message) {
    const afterMs = Number(message.afterMs);
    this._restartDelayMs = Number.isFinite(afterMs) ? Math.min(Math.max(0, afterMs), MAX_RESTART_DELAY_MS) : null;
    if (message.resume === true) return;
    this._resumeToken = null;
    this._rejoinReason = "server-restart";
  }

  _setState(state, reason = null) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("connection-state", { state, previous, reason });
  }

  // -- liveness and reconnecting ---------------------------------------------------------

  // Browsers cannot send WebSocket pings, so the library sends `ping` messages when the
  // server has been quiet, and takes the connection for dead when no answer comes
  // back (a laptop waking up, a network that went away).
  _heardFromServer() {
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
    clearTimeout(this._pingTimer);
    if (this._closing) return;
    this._pingTimer = setTimeout(() => {
      if (!this.send({ type: "ping" })) return;
      this._pongTimer = setTimeout(() => {
        // No close frame: to the server that would be leaving the room. The socket is
        // closed once a new one is in (a resume has the server close it as resumed
        // elsewhere).
        if (this._ws) this._abandoned.push(this._ws);
        this._onSocketClosed({ code: ABNORMAL_CLOSURE });
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
    this._reconnectLoop(event.code);
  }

  async _reconnectLoop(closeCode) {
    const reason =
      this._restartDelayMs !== null
        ? { code: "server-restart", afterMs: this._restartDelayMs, closeCode }
        : { code: "connection-lost", closeCode };
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
          // A final close is as final when it ends an attempt as when it ends the room's
          // connection (the attempt's resume was taken over, the rejoin replaced...).
          const final = FINAL_CLOSE_CODES[error.closeCode];
          if (final) {
            this.closeReason = { code: final, closeCode: error.closeCode };
            this._shutdown();
            return;
          }
          if (error.code && !isRetriedOnRejoin(error.code)) {
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

  _shutdown() {
    this._closing = true;
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._held = [];
    this._resumeToken = null;
    this._closeAbandoned();
    this.host.closing();
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
}

/**
 * Whether a rejoin refused with `code` is tried again: the server's refusals that pass
 * with time (`user-id-taken` while it has not yet noticed the old connection is gone,
 * a full room, a store or cluster that is down...), or no answer at all.
 */
function isRetriedOnRejoin(code) {
  return RETRIED_REJOIN_ERRORS.includes(code) || RETRIED_LOCAL_ERRORS.includes(code);
}

// How long to wait before joining again after `error`: a `user-id-taken` whose id is
// held for a session that may still resume says `heldForMs`; null for any other.
function heldIdWaitMs(error) {
  if (error?.code !== ERROR_CODES.USER_ID_TAKEN || !Number.isSafeInteger(error.heldForMs)) return null;
  return Math.max(0, error.heldForMs) + HELD_ID_MARGIN_MS;
}
