// media.js: what this side sends: camera, microphone, screen (docs/browser.md#camera-microphone-screen).

import { ERROR_CODES } from "../protocol.js";
import { HubbubError } from "./errors.js";

/**
 * This side's media: the camera stream (microphone and camera tracks) and the screen
 * stream. `host` (the Room) has `participants`, `can(grant)`, `_signal(userId,
 * signal)` and `emit`; every peer link is told when what is sent changes.
 */
export class LocalMedia {
  constructor(host, stream) {
    this.host = host;
    this.localStream = stream ?? null;
    this.screenStream = null;
    this._on = {
      audio: Boolean(this.localStream?.getAudioTracks().some((t) => t.enabled)),
      video: Boolean(this.localStream?.getVideoTracks().some((t) => t.readyState === "live")),
    };
    this._cameraConstraints = undefined;
    this._microphoneConstraints = true;
    this._cameraReplaced = false;
  }

  /** Whether the microphone and camera are on, and whether the screen is shared. */
  get media() {
    return { audio: this._on.audio, video: this._on.video, screen: Boolean(this.screenStream) };
  }

  async setStream(stream) {
    const old = this.localStream;
    this.localStream = stream;
    this._on.audio = Boolean(stream?.getAudioTracks().some((t) => t.enabled));
    this._on.video = Boolean(stream?.getVideoTracks().some((t) => t.readyState === "live"));
    this._syncLinks();
    if (old && old !== stream) for (const track of old.getTracks()) track.stop();
    this._changed("camera");
  }

  async setMicrophone(on) {
    const tracks = this.localStream?.getAudioTracks() ?? [];
    if (on && tracks.length === 0) {
      const captured = await navigator.mediaDevices.getUserMedia({ audio: this._microphoneConstraints });
      await this._addCameraTrack(captured.getAudioTracks()[0]);
    } else {
      for (const track of tracks) track.enabled = on;
    }
    this._on.audio = on;
    this._changed("camera");
  }

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
      this._syncLinks();
    }
    this._on.video = on;
    this._changed("camera");
  }

  async switchCamera(constraints) {
    this._cameraConstraints = constraints;
    const stream = this.localStream;
    if (!this._on.video || !stream?.getVideoTracks().some((t) => t.readyState === "live")) return;
    // The old camera goes first: a phone may not open its back camera while the front one is on.
    for (const track of stream.getVideoTracks()) {
      track.stop();
      stream.removeTrack(track);
    }
    try {
      const captured = await navigator.mediaDevices.getUserMedia({ video: constraints });
      stream.addTrack(captured.getVideoTracks()[0]);
    } finally {
      this._syncLinks();
      this._changed("camera");
    }
  }

  async switchMicrophone(constraints) {
    this._microphoneConstraints = constraints;
    const stream = this.localStream;
    const old = stream?.getAudioTracks() ?? [];
    if (old.length === 0) return;
    const captured = await navigator.mediaDevices.getUserMedia({ audio: constraints });
    const track = captured.getAudioTracks()[0];
    track.enabled = this._on.audio;
    for (const previous of old) {
      stream.removeTrack(previous);
      previous.stop();
    }
    stream.addTrack(track);
    this._syncLinks();
    this._changed("camera");
  }

  async _addCameraTrack(track) {
    if (!this.localStream) this.localStream = new MediaStream();
    this.localStream.addTrack(track);
    this._syncLinks();
  }

  async startScreenShare({ replaceCamera = false, audio = false } = {}) {
    if (this.screenStream) return this.screenStream;
    if (!this.host.can("screen")) {
      throw new HubbubError(ERROR_CODES.FORBIDDEN, "this session may not share a screen");
    }
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio });
    this.screenStream = stream;
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => {
        if (this.screenStream === stream) this.stopScreenShare();
      });
    }
    this._cameraReplaced = false;
    if (replaceCamera && this._on.video) {
      await this.setCamera(false);
      this._cameraReplaced = true;
    }
    this._syncLinks();
    this._changed("screen");
    return stream;
  }

  async stopScreenShare() {
    const stream = this.screenStream;
    if (!stream) return;
    this.screenStream = null;
    for (const track of stream.getTracks()) track.stop();
    this._syncLinks();
    this._changed("screen");
    if (this._cameraReplaced) {
      this._cameraReplaced = false;
      await this.setCamera(true, this._cameraConstraints);
    }
  }

  /** The `media-state` signal that tells a peer what this side sends (docs/peer-protocol.md). */
  state() {
    const streams = {};
    if (this.localStream) streams[this.localStream.id] = "camera";
    if (this.screenStream) streams[this.screenStream.id] = "screen";
    return {
      type: "media-state",
      audio: this._on.audio,
      video: this._on.video,
      screen: Boolean(this.screenStream),
      streams,
    };
  }

  _syncLinks() {
    for (const participant of this.host.participants.values()) participant._link?.syncSenders();
    this.host._sfu?.localChanged();
  }

  _changed(kind) {
    this.host._sfu?.localChanged();
    const state = this.state();
    for (const participant of this.host.participants.values()) this.host._signal(participant.userId, state);
    this.host.emit("local-stream", {
      stream: kind === "screen" ? this.screenStream : this.localStream,
      kind,
      media: this.media,
    });
  }
}
