// peer-link.js: one RTCPeerConnection to a participant, with perfect negotiation
// (docs/peer-protocol.md).

import { HubbubError } from "./errors.js";
import { CONTROL_LABEL } from "./labels.js";

/**
 * One RTCPeerConnection with perfect negotiation (the W3C pattern): the polite peer
 * rolls back its own offer on a collision, the impolite one ignores the other's.
 * A polite peer whose first offer collides answers on a fresh RTCPeerConnection
 * instead (see _apply).
 */
export class PeerLink {
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
    room._channels.openOn(this);
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
    // A member without the `publish` grant watches and listens: it sends no camera.
    const camera = room.can("publish") ? room.localStream : null;
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
        if (this.closed || !this.room._channels.isCurrent(channel)) return;
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
    // The control channel carries nothing yet (docs/peer-protocol.md).
    if (dataChannel.label !== CONTROL_LABEL) this.room._onDataChannel(this.participant, dataChannel);
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
    if (this.closed || this.room._sfu.active) return; // (the media server carries the call)
    const state = this.pc.iceConnectionState;
    if (state === "connected" || state === "completed") return;
    // The offer goes through the server: while it is away, wait for it (a fresh join
    // makes a new connection anyway).
    if (this.room.state === "open") this.restartIce();
    // Not back after the restart (or the wait for the server)? Try again, later.
    const retry = Math.min(this.room.limits.iceRestartMaxMs, 2 * Math.max(1000, this._restartBackoff()));
    this._restartTimer = setTimeout(() => this._restartIfDown(), retry);
  }

  /**
   * The connection to the server is back (resumed). What this side signalled while it
   * was failing went into a dead socket: an offer still unanswered is taken back and
   * made again, and a peer connection that is down restarts ICE now rather than at
   * its next retry. (The answer to an offer that did go through comes among the
   * replayed messages; applied after the rollback, it is refused with a warning, and
   * the new offer is answered.) A NAT that forgets its mappings cuts both the media
   * and the connection to the server at once: without this, both sides of a call
   * could wait forever on offers the other never got.
   */
  resumed() {
    this._queue = this._queue
      .then(async () => {
        if (this.closed) return;
        const pc = this.pc;
        const ice = pc.iceConnectionState;
        const down = ice === "disconnected" || ice === "failed";
        if (pc.signalingState === "have-local-offer" && !this.makingOffer) {
          await pc.setLocalDescription({ type: "rollback" });
          if (down) this.restartIce();
          else await this.negotiate();
        } else if (down && pc.signalingState === "stable") {
          this.restartIce();
        }
      })
      .catch((error) => this._warn("renegotiating after a resume", error));
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
    this.room._channels.detach(this.participant);
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
