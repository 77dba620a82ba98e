// participant.js: someone else in the room, what they send, and the peer connection to them.

import { CONNECTED, RECONNECTING } from "../protocol.js";
import { PeerLink } from "./peer-link.js";
import { DEFAULT_STATUS } from "./presence.js";

/**
 * Someone else in the room. `streams` maps a remote MediaStream's id to
 * `{stream, kind}`; `media` is what they say they send (`audio`, `video`, `screen`).
 */
export class Participant {
  constructor(room, userId, polite) {
    this.room = room;
    /** @type {string} */
    this.userId = userId;
    /** @type {string} */
    this.displayName = userId;
    this.polite = polite;
    /** @type {string[]|null} null: no token, every grant but admin */
    this.grants = null;
    /** @type {string} */
    this.status = DEFAULT_STATUS;
    this.typing = false;
    /** What they say they send. */
    this.media = { audio: true, video: true, screen: false };
    /** @type {RTCPeerConnectionState} */
    this.connectionState = "new";
    /** Their connection to the server: `connected`, or `reconnecting` while they may come back. */
    this.connection = CONNECTED;
    /** @type {Map<string, {stream: MediaStream, kind: string}>} */
    this.streams = new Map();
    this._streamKinds = {};
    this._sfuStreams = new Set(); // ids of the streams that come through the media server
    this._link = null;
    this._firstOfferTimer = null;
  }

  // Typing shown until the member says it stopped, sends chat, leaves, or does not
  // renew it for `typingExpireMs` (the server times it out too, after typing_timeout).
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
    if (info.connection === RECONNECTING || info.connection === CONNECTED) this.connection = info.connection;
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
    let energy = 0;
    let duration = 0;
    for (const receiver of this._receivers()) {
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

  // The receivers of what this participant sends: on the peer connection, and through
  // the media server.
  _receivers() {
    return [...(this._link?.pc.getReceivers() ?? []), ...this.room._sfu.receiversOf(this.userId)];
  }

  /** Audio level of this participant's microphone, 0 to 1, from the last packets received. */
  audioLevel() {
    let level = 0;
    for (const receiver of this._receivers()) {
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
    if (this.room._sfu.active) return; // (media goes through the media server)
    this._ensureLink({ openControl: true });
  }

  // The newcomer waits for the first offer, then offers itself if none came.
  _startAsNewcomer() {
    this.room._signal(this.userId, this.room._mediaState());
    if (this.room._sfu.active) return;
    if (!this.polite) {
      this._ensureLink({ openControl: true });
      return;
    }
    clearTimeout(this._firstOfferTimer);
    this._firstOfferTimer = setTimeout(() => {
      if (!this._link && !this.room._sfu.active && this.room.participants.get(this.userId) === this) {
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

  // A track of this participant's feed on the media server (see sfu.js).
  _addSfuTrack(track, stream) {
    if (!this.streams.has(stream.id)) {
      this._sfuStreams.add(stream.id);
      this.streams.set(stream.id, { stream, kind: "camera" });
      this.room.emit("stream", { participant: this, stream, kind: "camera" });
    }
    this.room.emit("track", { participant: this, track, stream });
  }

  // The call moved to the media server and this participant's media arrives there: the
  // peer connection goes, with what it carried.
  _closeMeshForSfu() {
    clearTimeout(this._firstOfferTimer);
    const link = this._link;
    this._link = null;
    if (link) link.close();
    for (const id of [...this.streams.keys()]) {
      if (!this._sfuStreams.has(id)) this._removeRemoteStream(id);
    }
    this.connectionState = "closed";
  }

  _removeRemoteStream(streamId) {
    const entry = this.streams.get(streamId);
    if (!entry) return;
    this.streams.delete(streamId);
    this._sfuStreams.delete(streamId);
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
