// defaults.js: the sizes and times the library works with (docs/browser.md#settings).

// (A plain object first, so that its values are numbers to TypeScript, not literals.)
const LIMITS = {
  joinTimeoutMs: 15000, // from opening the socket to `room-joined`
  heldIdWaitMs: 120000, // a join waits at most this long in all for a user id held for a resume (0: not at all)
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
};

/** Sizes and times the library works with. Each can be changed per room with `options.limits`. */
export const DEFAULTS = Object.freeze(LIMITS);
