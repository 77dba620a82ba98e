// sfu.js: calls through the media server (docs/sfu.md, docs/protocol.md#calls-through-the-media-server).
//
// In SFU mode this side sends its camera and microphone once, on a `publisher`
// connection, and takes everyone else's feeds on one `main` subscriber connection; the
// server relays the negotiation to Janus. The switch between a mesh and the SFU is live:
// the new way is set up first, and each participant's old way is closed only once its
// media arrives the new way, so that no tile goes missing or freezes.

import { ERROR_CODES } from "../protocol.js";

const MAIN = "main";
const PUBLISHER = "publisher";
const HANDOVER_POLL_MS = 200; // how often a handover looks for frames on the new way
const HANDOVER_MAX_MS = 8000; // a participant's old way is closed after this, frames or not
const SILENT_PEER_MS = 2500; // ...or after this, for one that sends nothing
const SIMULCAST_MIN_WIDTH = 960; // Chromium sends three layers from about this width up
const LAYER_WIDTHS = [360, 720]; // a tile up to 360 px wide takes layer 0, up to 720 layer 1, else 2

/**
 * The room's calls through the media server. `room.mediaMode` says which way they go;
 * everything else happens here, on `media-*` messages and local media changes.
 */
export class SfuMedia {
  constructor(room) {
    this.room = room;
    /** @type {"mesh"|"sfu"} */
    this.mode = "mesh";
    this.feeds = new Map(); // userId -> {userId, audio, video, simulcast}
    this.publisher = null; // RTCPeerConnection
    this.subscriber = null; // RTCPeerConnection
    this._senders = { audio: null, video: null };
    this._publishing = null; // a promise while a publish is under way
    this._subscribed = new Set(); // feeds asked for on `main`
    this._subscribing = false;
    this._mids = new Map(); // mid -> {userId, kind, active}
    this._streams = new Map(); // userId -> MediaStream of its feed
    this._offers = Promise.resolve();
    this._handover = null; // {to, since, pending: Set<userId>, timer}
    this._layers = new Map(); // userId -> substream asked for
    this._sending = null; // what `media-sending` said last
    this._epoch = 0;
  }

  get active() {
    return this.mode === "sfu";
  }

  // -- the room's life -----------------------------------------------------------------

  /** The room is open (joined or resumed): the server hears whether this side sends. */
  opened() {
    this._sending = null;
    this.localChanged();
  }

  /** A fresh join, or the room closing: everything on the media server is gone. */
  reset() {
    this._epoch += 1;
    this.mode = "mesh";
    this.feeds.clear();
    this._stopHandover();
    this._closePublisher();
    this._closeSubscriber();
  }

  // -- messages from the server ----------------------------------------------------------

  /** Returns true when the message was this part's. */
  onMessage(message) {
    switch (message.type) {
      case "media-mode":
        this._onMode(message);
        return true;
      case "media-feeds":
        this._setFeeds(message.feeds);
        return true;
      case "media-offer":
        this._offers = this._offers.then(() => this._onOffer(message)).catch((error) => this._warn("an offer", error));
        return true;
      case "media-answer":
        return true; // (the reply to a publish, taken by its request)
      case "media-closed":
        this._onClosed(message.connection);
        return true;
      case "error":
        return this._onError(message);
      default:
        return false;
    }
  }

  _onMode(message) {
    const epoch = ++this._epoch;
    const was = this.mode;
    this.mode = message.mode === "sfu" ? "sfu" : "mesh";
    this.room.mediaMode = this.mode;
    if (this.mode === "sfu") {
      // A fresh start: after `media-server-lost`, or the move from a mesh.
      this._closePublisher();
      this._closeSubscriber();
      this._setFeeds(message.feeds ?? []);
      this._publishIfSending(epoch);
      if (was === "mesh") this._startHandover("sfu");
    } else {
      this._startHandover("mesh");
      for (const participant of this.room.participants.values()) participant._startAsNewcomer();
    }
    this.room.emit("media-mode", { mode: this.mode, reason: message.reason ?? null });
  }

  // Every media request of this side carries an `sfu-` ref, so that its refusal is taken
  // here: most are stale (an answer or a candidate that crossed the room's move back to
  // a mesh, `wrong-media-mode`; or a connection closed meanwhile, `media-refused`).
  _onError(message) {
    if (typeof message.ref !== "string" || !message.ref.startsWith("sfu-")) return false;
    if (!message.ref.startsWith("sfu-sub")) return true;
    if (message.code === ERROR_CODES.MEDIA_UNAVAILABLE && this.active) {
      // The media server is away: a `media-mode` follows when the call has moved; until
      // then, try again now and then.
      const epoch = this._epoch;
      setTimeout(() => {
        if (epoch !== this._epoch || !this.active) return;
        this._subscribed.clear();
        this._closeSubscriber();
        this._subscribeWanted();
      }, 500);
    }
    this._subscribing = false;
    return true;
  }

  _onClosed(connection) {
    if (!this.active) return;
    if (connection === PUBLISHER) {
      this._closePublisher();
      this._publishIfSending(this._epoch);
    } else {
      this._subscribed.clear();
      this._closeSubscriber();
      this._subscribeWanted();
    }
  }

  // -- publishing ------------------------------------------------------------------------

  _hasTracks() {
    const stream = this.room.localStream;
    return Boolean(stream && stream.getTracks().some((track) => track.readyState === "live"));
  }

  /** What this side sends changed: the server and the publisher connection hear it. */
  localChanged() {
    const sending = this.room.can("publish") && this._hasTracks();
    if (sending !== this._sending && this.room.state === "open") {
      this._sending = sending;
      this.room._connection.sendOptional({ type: "media-sending", active: sending });
    }
    if (!this.active) return;
    if (this.publisher) this._syncPublisher();
    else this._publishIfSending(this._epoch);
  }

  _publishIfSending(epoch) {
    if (!this.active || this._publishing || this.publisher) return;
    if (!this.room.can("publish") || !this._hasTracks()) return;
    this._publishing = this._publish(epoch)
      .catch((error) => {
        if (epoch !== this._epoch) return;
        this._closePublisher();
        // The media server is away or refused: try again a little later while still wanted.
        setTimeout(() => this._publishIfSending(epoch), error?.code === ERROR_CODES.MEDIA_UNAVAILABLE ? 500 : 3000);
      })
      .finally(() => {
        this._publishing = null;
      });
  }

  async _publish(epoch) {
    const room = this.room;
    const pc = new RTCPeerConnection(room._rtcConfiguration());
    this.publisher = pc;
    const stream = room.localStream;
    const audio = stream.getAudioTracks()[0] ?? null;
    const video = stream.getVideoTracks().find((track) => track.readyState === "live") ?? null;
    this._senders.audio = pc.addTransceiver(audio ?? "audio", { direction: "sendonly", streams: [stream] }).sender;
    const videoInit = { direction: "sendonly", streams: [stream] };
    const width = video?.getSettings?.().width ?? 0;
    if (width >= SIMULCAST_MIN_WIDTH) {
      videoInit.sendEncodings = [
        { rid: "h", maxBitrate: 1_200_000 },
        { rid: "m", maxBitrate: 400_000, scaleResolutionDownBy: 2 },
        { rid: "l", maxBitrate: 120_000, scaleResolutionDownBy: 4 },
      ];
    }
    this._senders.video = pc.addTransceiver(video ?? "video", videoInit).sender;
    this._trickle(pc, PUBLISHER);
    await pc.setLocalDescription();
    if (epoch !== this._epoch || pc !== this.publisher) return;
    const reply = await room._connection.request(
      { type: "media-publish", jsep: pc.localDescription.toJSON() },
      ["media-answer"],
    );
    if (epoch !== this._epoch || pc !== this.publisher) return;
    await pc.setRemoteDescription(reply.jsep);
  }

  _syncPublisher() {
    const stream = this.room.localStream;
    const audio = stream?.getAudioTracks()[0] ?? null;
    const video = stream?.getVideoTracks().find((track) => track.readyState === "live") ?? null;
    for (const [kind, track] of [["audio", audio], ["video", video]]) {
      const sender = this._senders[kind];
      if (sender && sender.track !== track) sender.replaceTrack(track).catch(() => {});
    }
  }

  _closePublisher() {
    const pc = this.publisher;
    this.publisher = null;
    this._senders = { audio: null, video: null };
    if (pc) pc.close();
  }

  // -- subscribing ------------------------------------------------------------------------

  _setFeeds(feeds) {
    this.feeds = new Map((feeds ?? []).filter((feed) => feed.userId !== this.room.userId).map((f) => [f.userId, f]));
    for (const userId of [...this._subscribed]) {
      if (!this.feeds.has(userId)) this._subscribed.delete(userId);
    }
    this._subscribeWanted();
    this._handover?.check();
  }

  _subscribeWanted() {
    if (!this.active || this._subscribing) return;
    const wanted = [...this.feeds.keys()].filter((userId) => !this._subscribed.has(userId));
    if (wanted.length === 0) return;
    this._subscribing = true;
    for (const userId of wanted) this._subscribed.add(userId);
    const sent = this.room._connection.send({
      type: "media-subscribe",
      connection: MAIN,
      feeds: wanted,
      ref: `sfu-sub-${this._epoch}`,
    });
    if (!sent) {
      this._subscribing = false;
      for (const userId of wanted) this._subscribed.delete(userId);
    }
  }

  async _onOffer(message) {
    if (!this.active || message.connection !== MAIN) return;
    let pc = this.subscriber;
    if (!pc) {
      pc = new RTCPeerConnection(this.room._rtcConfiguration());
      this.subscriber = pc;
      pc.ontrack = ({ track, transceiver }) => {
        if (pc === this.subscriber) this._onTrack(track, transceiver.mid);
      };
      this._trickle(pc, MAIN);
    }
    for (const stream of message.streams ?? []) this._mids.set(stream.mid, stream);
    await pc.setRemoteDescription(message.jsep);
    await pc.setLocalDescription();
    if (pc !== this.subscriber || !this.active) return;
    this.room._connection.send({
      type: "media-answer",
      connection: MAIN,
      jsep: pc.localDescription.toJSON(),
      ref: `sfu-answer-${this._epoch}`,
    });
    for (const stream of message.streams ?? []) {
      if (!stream.active) this._dropTrack(stream.mid);
    }
    this._subscribing = false;
    this._subscribeWanted();
  }

  _onTrack(track, mid) {
    const info = this._mids.get(mid);
    if (!info || !info.active) return;
    const participant = this.room.participants.get(info.userId);
    if (!participant) return;
    let stream = this._streams.get(info.userId);
    if (!stream) {
      stream = new MediaStream();
      this._streams.set(info.userId, stream);
    }
    for (const old of stream.getTracks()) {
      if (old.kind === track.kind && old !== track) stream.removeTrack(old);
    }
    stream.addTrack(track);
    // During the move from a mesh, a participant's tile keeps its peer connection's
    // stream until this one has frames (the handover announces it then).
    if (!this._handover?.pending.has(info.userId) || !participant._link) {
      participant._addSfuTrack(track, stream);
    }
    const layer = this._layers.get(info.userId);
    if (layer !== undefined) this._sendLayer(info.userId, layer);
  }

  _dropTrack(mid) {
    const info = this._mids.get(mid);
    if (!info) return;
    const stream = this._streams.get(info.userId);
    const transceiver = this.subscriber?.getTransceivers().find((t) => t.mid === mid);
    const track = transceiver?.receiver.track;
    if (stream && track) stream.removeTrack(track);
    if (stream && stream.getTracks().length === 0) {
      this._streams.delete(info.userId);
      this.room.participants.get(info.userId)?._removeRemoteStream(stream.id);
    }
  }

  _closeSubscriber() {
    const pc = this.subscriber;
    this.subscriber = null;
    this._subscribing = false;
    this._subscribed.clear();
    this._mids.clear();
    for (const [userId, stream] of this._streams) {
      this.room.participants.get(userId)?._removeRemoteStream(stream.id);
    }
    this._streams.clear();
    if (pc) pc.close();
  }

  _trickle(pc, connection) {
    pc.onicecandidate = ({ candidate }) => {
      if ((pc !== this.publisher && pc !== this.subscriber) || !this.active) return;
      const sent = candidate && candidate.candidate ? candidate.toJSON() : null;
      this.room._connection.send({ type: "media-candidate", connection, candidate: sent, ref: `sfu-candidate-${this._epoch}` });
    };
  }

  // -- what the app tunes ------------------------------------------------------------------

  /** The receivers of a participant's feed (for audio levels and statistics). */
  receiversOf(userId) {
    const pc = this.subscriber;
    if (!pc) return [];
    return pc.getReceivers().filter((receiver) => {
      const transceiver = pc.getTransceivers().find((t) => t.receiver === receiver);
      const info = transceiver && this._mids.get(transceiver.mid);
      return info?.userId === userId && info.active;
    });
  }

  /** Which simulcast layer of `userId`'s video to take, for a tile `width` pixels wide. */
  setReceiveSize(userId, width) {
    let layer = LAYER_WIDTHS.findIndex((most) => width <= most);
    if (layer < 0) layer = LAYER_WIDTHS.length;
    if (this._layers.get(userId) === layer) return;
    this._layers.set(userId, layer);
    if (this.active && this.feeds.get(userId)?.simulcast) this._sendLayer(userId, layer);
  }

  _sendLayer(userId, layer) {
    if (!this.feeds.get(userId)?.simulcast) return;
    this.room._connection.send({
      type: "media-configure",
      connection: MAIN,
      userId,
      substream: layer,
      ref: `sfu-layer-${this._epoch}`,
    });
  }

  // -- the live switch ---------------------------------------------------------------------

  // Each participant's old way (its mesh link, or its feed on the media server) closes
  // once its media arrives the new way, or it sends nothing, or HANDOVER_MAX_MS passed.
  _startHandover(to) {
    this._stopHandover();
    const pending = new Set(this.room.participants.keys());
    const since = performance.now();
    const handover = {
      to,
      pending,
      check: () => this._checkHandover(handover, since),
      timer: setInterval(() => handover.check(), HANDOVER_POLL_MS),
    };
    this._handover = handover;
    handover.check();
  }

  async _checkHandover(handover, since) {
    if (this._handover !== handover || handover.busy) return;
    handover.busy = true;
    try {
      const elapsed = performance.now() - since;
      for (const userId of [...handover.pending]) {
        const participant = this.room.participants.get(userId);
        if (!participant) {
          handover.pending.delete(userId);
          continue;
        }
        let arrived;
        if (handover.to === "sfu") {
          const sends = this.feeds.has(userId) || participant.media.audio || participant.media.video;
          arrived = (await framesFrom(this.receiversOf(userId))) || (!sends && elapsed > SILENT_PEER_MS);
        } else {
          const receivers = participant._link?.pc.getReceivers() ?? [];
          arrived = (await framesFrom(receivers)) || (!this.feeds.has(userId) && elapsed > SILENT_PEER_MS);
        }
        if (this._handover !== handover) return;
        if (arrived || elapsed > HANDOVER_MAX_MS) {
          handover.pending.delete(userId);
          if (handover.to === "sfu") {
            const stream = this._streams.get(userId);
            for (const track of stream?.getTracks() ?? []) participant._addSfuTrack(track, stream);
            participant._closeMeshForSfu();
          } else {
            this._dropFeedOf(userId);
          }
        }
      }
      if (handover.pending.size === 0) {
        if (handover.to === "mesh") this._leaveMediaServer();
        this._stopHandover();
      }
    } finally {
      handover.busy = false;
    }
  }

  _dropFeedOf(userId) {
    const stream = this._streams.get(userId);
    if (!stream) return;
    this._streams.delete(userId);
    this.room.participants.get(userId)?._removeRemoteStream(stream.id);
  }

  _leaveMediaServer() {
    this._closePublisher();
    this._closeSubscriber();
    this.room._connection.send({ type: "media-leave" });
  }

  _stopHandover() {
    if (this._handover) clearInterval(this._handover.timer);
    this._handover = null;
  }

  _warn(what, error) {
    console.warn(`hubbub: media server, ${what}:`, error);
  }
}

// Whether any of these receivers has decoded video, or received audio.
async function framesFrom(receivers) {
  for (const receiver of receivers) {
    const stats = await receiver.getStats();
    for (const report of stats.values()) {
      if (report.type !== "inbound-rtp") continue;
      if ((report.framesDecoded ?? 0) > 0) return true;
      if (report.kind === "audio" && (report.packetsReceived ?? 0) > 0 && receivers.length === 1) return true;
    }
  }
  return false;
}
