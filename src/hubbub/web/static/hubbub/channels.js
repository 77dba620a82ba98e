// channels.js: named data channels for apps, to every participant
// (docs/browser.md#app-data-channels).

import { Emitter } from "./emitter.js";
import { HubbubError } from "./errors.js";
import { RESERVED_PREFIX } from "./labels.js";

/**
 * A room's app channels, by label: those this side opened (on every peer link, and on
 * those made later) and those a peer opened first.
 */
export class AppChannels {
  constructor(room) {
    this.room = room;
    this._byLabel = new Map(); // label -> AppChannel
  }

  /** The channel with this label, opened on every peer link if it is new. */
  open(label, options = {}) {
    if (typeof label !== "string" || !label || label.startsWith(RESERVED_PREFIX)) {
      throw new HubbubError("bad-label", `channel labels must not start with "${RESERVED_PREFIX}"`);
    }
    let channel = this._byLabel.get(label);
    if (!channel) {
      channel = new AppChannel(this.room, label, options);
      this._byLabel.set(label, channel);
      for (const participant of this.room.participants.values()) participant._link?.openAppChannel(channel);
    }
    return channel;
  }

  /** The channel with this label, if there is one. */
  get(label) {
    return this._byLabel.get(label);
  }

  /** Whether `channel` is (still) the room's channel with its label. */
  isCurrent(channel) {
    return this._byLabel.get(channel.label) === channel;
  }

  /** A new peer link opens the channels this side opened. */
  openOn(link) {
    for (const channel of this._byLabel.values()) {
      if (!channel._remoteOnly) link.openAppChannel(channel);
    }
  }

  /** A peer opened a channel: join it to this side's channel with that label, or make one. */
  onRemote(participant, dataChannel) {
    let channel = this._byLabel.get(dataChannel.label);
    let created = false;
    if (!channel) {
      channel = new AppChannel(this.room, dataChannel.label, {
        ordered: dataChannel.ordered,
        maxRetransmits: dataChannel.maxRetransmits ?? undefined,
        maxPacketLifeTime: dataChannel.maxPacketLifeTime ?? undefined,
        _remoteOnly: true,
      });
      this._byLabel.set(dataChannel.label, channel);
      created = true;
    }
    channel._attach(participant, dataChannel);
    if (created) this.room.emit("channel", { channel });
  }

  /** A peer link closed: its channels are gone from every app channel. */
  detach(participant) {
    for (const channel of this._byLabel.values()) channel._detach(participant);
  }

  _forget(channel) {
    if (this.isCurrent(channel)) this._byLabel.delete(channel.label);
  }
}

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
    this.room._channels._forget(this);
  }
}
