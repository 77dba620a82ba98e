// room.js: a joined room, the face of the library. It holds the participants and
// hands each server message to the part it concerns: the connection (connection.js),
// chat (chat.js), presence and typing (presence.js), this side's media (media.js),
// app channels (channels.js), files (files.js); peers are participant.js and
// peer-link.js.

import { AppChannels } from "./channels.js";
import { Chat } from "./chat.js";
import { Connection } from "./connection.js";
import { DEFAULTS } from "./defaults.js";
import { Emitter } from "./emitter.js";
import { HubbubError } from "./errors.js";
import { ERROR_CODES } from "../protocol.js";
import { FileTransfers } from "./files.js";
import { FILE_LABEL_PREFIX, RESERVED_PREFIX } from "./labels.js";
import { LocalMedia } from "./media.js";
import { Participant } from "./participant.js";
import { Presence } from "./presence.js";
import { SfuMedia } from "./sfu.js";

/** @typedef {import("./files.js").FileTransfer} FileTransfer */
/** @typedef {import("./channels.js").AppChannel} AppChannel */

// What the connection tells, told by the room as its own events.
const SIGNAL_REF = "sig-";
const CONNECTION_EVENTS = ["connection-state", "reconnecting", "resumed", "rejoined", "waiting-for-user-id", "error"];

/**
 * What `join()` takes (see its parameters).
 * @typedef {object} JoinOptions
 * @property {string} room  the room to join
 * @property {string} [userId]  the name to join under (the server assigns one if left out)
 * @property {string|(() => string|Promise<string>)} [token]  an access token, or a
 *   function called for a fresh one on every (re)join
 * @property {MediaStream} [stream]  camera and microphone to send
 * @property {RTCIceServer[]} [iceServers]  overrides what the server sends
 * @property {"all"|"relay"} [iceTransportPolicy]  `relay` sends everything through TURN
 * @property {boolean} [reconnect]  reconnect by itself when the connection drops (default true)
 * @property {"online"|"away"|"busy"} [status]  the presence status to join with
 * @property {Partial<typeof DEFAULTS>} [limits]  changes to {@link DEFAULTS}
 */

/**
 * A chat message as the room shows it.
 * @typedef {object} ChatEntry
 * @property {string} userId
 * @property {string} message
 * @property {boolean} mine
 * @property {string} [clientId]  this side's id of a message it sent
 * @property {"pending"|"sent"|"failed"} [status]  of a message this side sent
 * @property {string} [id]  the server's id, once stored
 * @property {number} [seq]  the room's sequence number, once stored
 * @property {number} [ts]  when it was stored (ms since 1970)
 * @property {boolean} [missed]  told after a rejoin: sent while this side was away
 * @property {HubbubError} [error]  why a message this side sent failed
 */

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
 * @param {Partial<typeof DEFAULTS>} [options.limits]  changes to {@link DEFAULTS}
 * @returns {Promise<Room>}
 */
export async function join(url, options) {
  if (!options || typeof options.room !== "string" || !options.room) {
    throw new HubbubError("bad-options", "join() needs a room name");
  }
  const room = new Room(url, options);
  await room._start();
  return room;
}

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
 * - `waiting-for-user-id` `{userId, waitMs}`: a join found its user id held for a session
 *   that may still resume (this page's own, before a reload): it is sent again in `waitMs`
 * - `peer-state` `{participant, state}`: the RTCPeerConnection's connectionState
 * - `ice-restart` `{participant, attempt}`: a peer connection that failed restarts ICE
 * - `local-stream` `{stream, kind}`: what this side sends changed
 * - `media-mode` `{mode, reason}`: the room's calls go peer to peer (`mesh`) or through
 *   the media server (`sfu`) from now on; the library moves the media by itself
 * - `ice-servers` `{iceServers}`, `error` `{error}`, `message` (every server message)
 */
export class Room extends Emitter {
  /**
   * @param {string} url
   * @param {JoinOptions} options
   */
  constructor(url, options) {
    super();
    /** @type {string} the room's name */
    this.name = options.room;
    /** @type {string|null} this side's user id (the server's, once joined) */
    this.userId = options.userId ?? null;
    /** @type {string|null} */
    this.displayName = null;
    /** @type {string[]|null} what this side's token grants; null without a token */
    this.grants = null;
    /** @type {Map<string, Participant>} */
    this.participants = new Map();
    /** @type {typeof DEFAULTS} */
    this.limits = { ...DEFAULTS, ...(options.limits ?? {}) };
    this._token = options.token ?? null;
    this._configuredIceServers = options.iceServers ?? null;
    this._iceTransportPolicy = options.iceTransportPolicy === "relay" ? "relay" : "all";
    this._serverIceServers = null;
    this._connection = new Connection(
      url,
      {
        joinMessage: () => this._joinMessage(),
        joined: (message, rejoin) => this._onJoined(message, rejoin),
        opened: (message) => this._onOpened(message),
        message: (message) => this._onServerMessage(message),
        closing: () => this._onClosing(),
      },
      { limits: this.limits, reconnect: options.reconnect !== false },
    );
    for (const type of CONNECTION_EVENTS) this._connection.on(type, (detail) => this.emit(type, detail));
    this._chat = new Chat(this, this._connection);
    this._presence = new Presence(this, this._connection, options.status);
    this._localMedia = new LocalMedia(this, options.stream);
    this._channels = new AppChannels(this);
    this._files = new FileTransfers(this);
    /** @type {"mesh"|"sfu"} how the room's calls go: peer to peer, or through the media server */
    this.mediaMode = "mesh";
    this._sfu = new SfuMedia(this);
    this._signalRefs = new Map(); // userId -> the ref of signals to it (`sig-N`)
    this._signalRefCounter = 0;
  }

  // -- the connection ----------------------------------------------------------------

  /** The server's WebSocket URL. */
  get url() {
    return this._connection.url;
  }

  /** `connecting`, `open`, `reconnecting` or `closed`. */
  get state() {
    return this._connection.state;
  }

  /** The session's id on the server. */
  get sessionId() {
    return this._connection.sessionId;
  }

  /** Why the room closed: `{code, closeCode?}` (docs/browser.md#connection-state), or null. */
  get closeReason() {
    return this._connection.closeReason;
  }

  /** How many attempts this reconnection has made (0 while connected). */
  get reconnectAttempt() {
    return this._connection.reconnectAttempt;
  }

  async _start() {
    await this._connection.open();
  }

  // A session starts with a hello: `join-room`, or after a lost connection `resume`,
  // which the connection tries first while there is a session to take back.
  async _joinMessage() {
    const token = typeof this._token === "function" ? await this._token() : this._token;
    // `features`: this side takes part in calls through the media server (SFU mode).
    const message = { type: "join-room", room: this.name, features: ["sfu"] };
    if (this.userId) message.userId = this.userId;
    if (token) message.token = token;
    // A new connection starts with the default status: a rejoin keeps what this side had set.
    return { ...message, ...this._presence.joinFields() };
  }

  /**
   * While reconnecting, try again now rather than when the backoff says (a "try now"
   * button; the browser coming back online does it by itself). No effect otherwise.
   */
  reconnectNow() {
    this._connection.reconnectNow();
  }

  /** Leave the room: closes every peer connection and the server connection. */
  leave() {
    this._connection.leave();
  }

  /**
   * Whether the server lets this side do `grant` (`screen`, `chat`...); open mode allows all but admin.
   * @param {string} grant
   * @returns {boolean}
   */
  can(grant) {
    return this.grants ? this.grants.includes(grant) : grant !== "admin" && grant !== "hidden";
  }

  // `room-joined`, first or after a drop; the room goes `open` right after.
  _onJoined(message, rejoin) {
    this.userId = message.userId;
    this.displayName = typeof message.name === "string" ? message.name : message.userId;
    this.grants = Array.isArray(message.grants) ? message.grants : null;
    if (message.iceServers) this._serverIceServers = message.iceServers;
    this._chat.joined(message, rejoin);
    this._presence.joined(message);
    // A fresh join (first, or after a drop) starts every peer connection anew: the
    // others saw this side leave and will offer again.
    if (rejoin) {
      this._sfu.reset();
      this.mediaMode = "mesh";
      const listed = listedParticipants(message);
      for (const userId of [...this.participants.keys()]) {
        if (!listed.has(userId)) this._removeParticipant(userId);
        else this.participants.get(userId)._closeLink();
      }
    }
  }

  // Open, after `room-joined` or `resumed`. A resumed session has its participants
  // and peer connections as they were; what was missed follows as ordinary messages.
  _onOpened(message) {
    if (message.type === "room-joined") {
      for (const info of listedParticipants(message).values()) {
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
    } else {
      for (const participant of this.participants.values()) participant._link?.resumed();
    }
    this._sfu.opened();
    // What was sent while away (or whose `chat-ack` was lost with the connection); after
    // a resume, a `chat-ack` among the replayed messages settles its entry, and one sent
    // again meanwhile is acknowledged as a duplicate and stored once.
    this._chat.resend();
  }

  _onClosing() {
    this._presence.stop();
    this._sfu.reset();
    for (const participant of this.participants.values()) participant._closeLink();
    this._files.cancelAll("left the room");
    this._chat.failPending();
  }

  // -- messages from the server ------------------------------------------------------

  _onServerMessage(message) {
    // A refused chat message is the chat's to settle, not an `error` of the room's.
    if (this._chat.onError(message)) return;
    if (!this._sfu.onMessage(message)) this._dispatch(message);
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
        // A message ends its sender's typing.
        this.participants.get(message.userId)?._setTyping(false);
        this._chat.onChat(message);
        break;
      case "chat-ack":
        this._chat.onAck(message);
        break;
      case "room-left":
        // (a leave this side did not send: leave() closes the connection)
        this._chat.leftRoom();
        break;
      case "presence":
        this._presence.onPresence(message);
        break;
      case "typing":
        this._presence.onTyping(message);
        break;
      case "ice-servers":
        this._setServerIceServers(message.iceServers);
        break;
      case "participant-updated":
        this._onParticipantUpdated(message);
        break;
      case "error":
        if (this._isStaleSignalRefusal(message)) break;
        this.emit("error", { error: new HubbubError(message.code, message.message) });
        break;
      default:
        break;
    }
  }

  _isStaleSignalRefusal(message) {
    const ref = message.ref;
    if (message.code !== ERROR_CODES.NO_SUCH_PEER || typeof ref !== "string" || !ref.startsWith(SIGNAL_REF)) {
      return false;
    }
    // The refs of participants still here are kept; any other was of one who left.
    for (const known of this._signalRefs.values()) {
      if (known === ref) return false;
    }
    return true;
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
    this._presence.memberJoined(message.userId);
    this.emit("participant-joined", { participant });
    participant._startAsIncumbent();
  }

  _removeParticipant(userId) {
    const participant = this.participants.get(userId);
    if (!participant) return;
    this.participants.delete(userId);
    this._signalRefs.delete(userId);
    participant._closeLink();
    participant._setTyping(false, false);
    this._files.cancelAll(`${userId} left`, participant);
    this.emit("participant-left", { participant });
  }

  _onSignal(fromUserId, signal) {
    if (!signal || typeof signal !== "object") return;
    const participant = this.participants.get(fromUserId);
    if (participant) participant._onSignal(signal);
  }

  // -- what the peer links use -------------------------------------------------------

  // A signal to a peer. The session may come back with its peer connections as they
  // are: what they said meanwhile goes out then (a fresh join drops it, they start anew).
  // A signal carries a ref of its target's (`sig-N`), so that its refusal (`no-such-peer`:
  // the target left while the signal was on its way) is known for the stale reply it is.
  // One for a participant that left already is not sent at all.
  _signal(userId, signal) {
    if (!this.participants.has(userId)) return false;
    let ref = this._signalRefs.get(userId);
    if (ref === undefined) {
      ref = `${SIGNAL_REF}${++this._signalRefCounter}`;
      this._signalRefs.set(userId, ref);
    }
    return this._connection.sendOrHold({ type: "signal", targetUserId: userId, signal, ref });
  }

  _mediaState() {
    return this._localMedia.state();
  }

  // A data channel a peer opened (hubbub's control channel apart): a file, or an app's.
  _onDataChannel(participant, dataChannel) {
    const label = dataChannel.label;
    if (label.startsWith(FILE_LABEL_PREFIX)) {
      this._files.onChannel(participant, dataChannel);
    } else if (!label.startsWith(RESERVED_PREFIX)) {
      this._channels.onRemote(participant, dataChannel);
    } else {
      dataChannel.close();
    }
  }

  // -- ICE servers -------------------------------------------------------------------

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

  // -- chat (chat.js) ----------------------------------------------------------------

  /** Stored chat, oldest first: what `room-joined` carried, then older pages. */
  get history() {
    return this._chat.history;
  }

  /** Whether the server stores chat (it sends `history` and `chat-ack`). */
  get storesChat() {
    return this._chat.storesChat;
  }

  /** The highest chat `seq` this side has seen; 0 before any. */
  get chatSeq() {
    return this._chat.chatSeq;
  }

  /** No older messages are left to load. */
  get historyComplete() {
    return this._chat.historyComplete;
  }

  /** The messages sent but not yet stored, in the order they were sent. */
  get pendingChats() {
    return this._chat.pending;
  }

  /**
   * Send a chat message to the room. Resolves at once with the message as the room
   * shows it (the sender gets no copy from the server), `status: "pending"`. The
   * library sends it (again, after a reconnection or when no `chat-ack` comes) under
   * the same `clientId` until the server has stored it; then the entry gets its `id`,
   * `seq` and `ts`, `status: "sent"`, and `chat-status` fires. A refusal that sending
   * again would not cure (too long, say) makes it `failed`, with `error`.
   * @param {string} message
   * @returns {Promise<ChatEntry>}
   */
  async sendChat(message) {
    if (this.state === "closed") throw new HubbubError("not-connected", "the room is closed");
    const entry = this._chat.send(message);
    this._presence.typingEndedByChat();
    return entry;
  }

  /**
   * Load the stored messages before the oldest one known (`limit`, by default
   * `historyPageSize`). Resolves with them, oldest first, and puts them at the start of
   * `room.history`; an empty list means there is nothing older (`historyComplete`).
   */
  /**
   * @param {number} [limit]
   * @returns {Promise<ChatEntry[]>}
   */
  loadOlderChat(limit = this.limits.historyPageSize) {
    return this._chat.loadOlder(limit);
  }

  // -- presence, typing (presence.js) --------------------------------------------------

  /** This side's presence status: `online`, `away` or `busy`. */
  get status() {
    return this._presence.status;
  }

  /** Members who chatted in the room and are not in it now: `{userId, lastSeen}`, latest first. */
  get offline() {
    return this._presence.offline;
  }

  /**
   * Set this side's presence status (`online`, `away`, `busy`); the room sees it.
   * @param {"online"|"away"|"busy"} status
   * @returns {Promise<void>}
   */
  setStatus(status) {
    return this._presence.setStatus(status);
  }

  /**
   * Tell the room this side is typing. Call on every keystroke: the library sends
   * `active: true` at most every `typingRenewMs` while typing goes on, and `active:
   * false` after a pause of `typingIdleMs` (sending a chat message stops it too).
   */
  typing() {
    this._presence.typing();
  }

  // -- local media (media.js) ------------------------------------------------------------

  /** The camera and microphone stream that is sent, or null. */
  get localStream() {
    return this._localMedia.localStream;
  }

  /** The screen being shared, or null. */
  get screenStream() {
    return this._localMedia.screenStream;
  }

  /** Whether the microphone and camera are on, and whether the screen is shared. */
  get media() {
    return this._localMedia.media;
  }

  /**
   * Replace the camera and microphone stream that is sent (or `null` to send none).
   * @param {MediaStream|null} stream
   * @returns {Promise<void>}
   */
  setStream(stream) {
    return this._localMedia.setStream(stream);
  }

  /**
   * Turn the microphone on or off. Off mutes the track; on asks for a microphone if there is none.
   * @param {boolean} on
   * @returns {Promise<void>}
   */
  setMicrophone(on) {
    return this._localMedia.setMicrophone(on);
  }

  /**
   * Turn the camera on or off. Off stops the camera (its light goes out); on opens it again.
   * @param {boolean} on
   * @param {MediaTrackConstraints|boolean} [constraints]  as getUserMedia takes them for `video`
   * @returns {Promise<void>}
   */
  setCamera(on, constraints) {
    return this._localMedia.setCamera(on, constraints);
  }

  /**
   * Send from another camera: `constraints` as getUserMedia takes them
   * (`{deviceId: {exact: id}}`, `{facingMode: "environment"}`). The track is replaced
   * in every peer connection (no renegotiation); with the camera off, the next
   * `setCamera(true)` opens that one.
   * @param {MediaTrackConstraints} constraints
   * @returns {Promise<void>}
   */
  switchCamera(constraints) {
    return this._localMedia.switchCamera(constraints);
  }

  /**
   * Send from another microphone (`constraints` as getUserMedia takes them); muted
   * stays muted. With no microphone yet, the next `setMicrophone(true)` opens that one.
   * @param {MediaTrackConstraints|boolean} constraints
   * @returns {Promise<void>}
   */
  switchMicrophone(constraints) {
    return this._localMedia.switchMicrophone(constraints);
  }

  /**
   * Share the screen (or a window or tab): `getDisplayMedia` asks the user what. With
   * `replaceCamera`, the camera is turned off while sharing and back on when it stops.
   * Resolves with the stream; the share stops when `stopScreenShare()` is called or the
   * user ends it in the browser.
   * @param {{replaceCamera?: boolean, audio?: boolean}} [options]
   * @returns {Promise<MediaStream>}
   */
  startScreenShare(options) {
    return this._localMedia.startScreenShare(options);
  }

  /**
   * Stop sharing the screen.
   * @returns {Promise<void>}
   */
  stopScreenShare() {
    return this._localMedia.stopScreenShare();
  }

  /**
   * In SFU mode, the size a participant's video is shown at: the library takes the
   * simulcast layer that fits (a small tile, the small layer). Call it when a tile's
   * size changes; no effect in a mesh.
   * @param {string} userId
   * @param {number} width  in CSS pixels
   */
  setReceiveSize(userId, width) {
    this._sfu.setReceiveSize(userId, width);
  }

  // -- app data channels (channels.js) -------------------------------------------------

  /**
   * A named data channel to every participant (and to those who join later). Reliable
   * and ordered by default; `{ordered: false, maxRetransmits: 0}` for data that is stale
   * once late (game state). Labels starting with `hubbub-` are reserved.
   */
  /**
   * @param {string} label
   * @param {RTCDataChannelInit & {reliable?: boolean}} [options]
   * @returns {AppChannel}
   */
  channel(label, options = {}) {
    return this._channels.open(label, options);
  }

  // -- files (files.js) ----------------------------------------------------------------

  /**
   * Send a file (a File or Blob) to one participant, peer to peer. Returns the
   * {@link FileTransfer} at once; `await transfer.done` for the outcome.
   * @param {string} userId
   * @param {Blob} file
   * @param {{name?: string}} [options]
   * @returns {FileTransfer}
   */
  sendFile(userId, file, options) {
    return this._files.send(userId, file, options);
  }
}

// The members `room-joined` lists, by user id.
function listedParticipants(message) {
  return new Map((message.participants ?? []).map((p) => [p.userId, p]));
}
