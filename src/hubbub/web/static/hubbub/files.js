// files.js: files sent peer to peer, each on its own data channel, checked with
// SHA-256 (docs/peer-protocol.md#files).

import { ERROR_CODES } from "../protocol.js";
import { Emitter } from "./emitter.js";
import { HubbubError } from "./errors.js";
import { randomId } from "./ids.js";
import { FILE_LABEL_PREFIX } from "./labels.js";
import { Sha256 } from "./sha256.js";

/** A room's file transfers, by id, from the offer until each is over. */
export class FileTransfers {
  constructor(room) {
    this.room = room;
    this._byId = new Map(); // id -> FileTransfer
  }

  /**
   * Send a file (a File or Blob) to one participant; returns the transfer at once.
   * @param {string} userId
   * @param {Blob} file
   * @param {{name?: string}} [options]  `name`: what the receiver is told it is called
   * @returns {FileTransfer}
   */
  send(userId, file, { name } = {}) {
    const participant = this.room.participants.get(userId);
    if (!participant) throw new HubbubError(ERROR_CODES.NO_SUCH_PEER, `${userId} is not in the room`);
    const transfer = new FileTransfer(this.room, {
      id: randomId(24),
      direction: "send",
      peer: participant,
      name: name ?? file.name ?? "file",
      size: file.size,
      mime: file.type || "application/octet-stream",
    });
    transfer._file = file;
    this._byId.set(transfer.id, transfer);
    transfer._startSending(participant);
    return transfer;
  }

  /** A peer opened a file channel: a transfer to this side, offered on it. */
  onChannel(participant, dataChannel) {
    const id = dataChannel.label.slice(FILE_LABEL_PREFIX.length);
    const transfer = new FileTransfer(this.room, { id, direction: "receive", peer: participant });
    transfer._startReceiving(dataChannel);
  }

  /** End every transfer with `participant` (or every one at all), as cancelled. */
  cancelAll(reason, participant = null) {
    for (const transfer of [...this._byId.values()]) {
      if (participant === null || transfer.peer === participant) transfer._fail(reason, "cancelled");
    }
  }

  _track(transfer) {
    this._byId.set(transfer.id, transfer);
  }

  _forget(transfer) {
    if (this._byId.get(transfer.id) === transfer) this._byId.delete(transfer.id);
  }
}

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
    /** @type {string} */
    this.name = name;
    /** @type {number} */
    this.size = size;
    /** @type {string} */
    this.mime = mime;
    /** @type {string|null} */
    this.sha256 = null;
    /** @type {number} */
    this.bytes = 0;
    /** @type {"offered"|"transferring"|"verifying"|"done"|"failed"|"cancelled"|"rejected"} */
    this.state = "offered";
    /** @type {string|null} */
    this.error = null;
    /** @type {Blob|null} the file, on the receiver, once done */
    this.blob = null;
    this.startedAt = null;
    this.finishedAt = null;
    this._channel = null;
    this._lastProgress = 0;
    /** @type {Promise<Blob|null>} */
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
    this.room._files._forget(this);
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
        this.room._files._forget(this);
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
      this.room._files._forget(this);
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
    this.room._files._track(this);
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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
