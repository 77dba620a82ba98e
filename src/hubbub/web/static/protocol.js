// protocol.js: hubbub's protocol constants, generated from hubbub.protocol
// (python -m hubbub.protocol.javascript). Do not edit: a test fails when this file
// and the Python definitions differ. docs/protocol.md explains each of them.

/** The `type` of every message a client may send. */
export const INCOMING_TYPES = Object.freeze([
  "call-accept",
  "call-cancel",
  "call-decline",
  "call-end",
  "call-request",
  "chat",
  "end-room",
  "history",
  "join-room",
  "leave-room",
  "media-answer",
  "media-candidate",
  "media-configure",
  "media-leave",
  "media-publish",
  "media-sending",
  "media-subscribe",
  "media-unpublish",
  "media-unsubscribe",
  "notification-read",
  "notifications",
  "ping",
  "presence",
  "remove-participant",
  "resume",
  "signal",
  "typing"
]);

/** The `type` of every message the server sends. */
export const OUTGOING_TYPES = Object.freeze([
  "broadcast",
  "call-accepted",
  "call-answered-elsewhere",
  "call-cancelled",
  "call-declined",
  "call-ended",
  "call-incoming",
  "call-missed",
  "call-ringing",
  "chat",
  "chat-ack",
  "error",
  "history",
  "ice-servers",
  "media-answer",
  "media-closed",
  "media-feeds",
  "media-mode",
  "media-offer",
  "notification",
  "notification-read",
  "notifications",
  "participant-removed",
  "participant-updated",
  "pong",
  "presence",
  "reconnect",
  "resumed",
  "room-ended",
  "room-joined",
  "room-left",
  "signal",
  "typing",
  "user-joined",
  "user-left"
]);

/** The `code` of an `error` message, by name. */
export const ERROR_CODES = Object.freeze({
  "BAD_JSON": "bad-json",
  "BAD_MESSAGE": "bad-message",
  "UNKNOWN_TYPE": "unknown-type",
  "TOO_LARGE": "too-large",
  "TOO_DEEP": "too-deep",
  "BINARY_NOT_SUPPORTED": "binary-not-supported",
  "NOT_IN_ROOM": "not-in-room",
  "ALREADY_IN_ROOM": "already-in-room",
  "NO_SUCH_PEER": "no-such-peer",
  "USER_ID_TAKEN": "user-id-taken",
  "ROOM_FULL": "room-full",
  "RATE_LIMITED": "rate-limited",
  "TOKEN_REQUIRED": "token-required",
  "TOKEN_INVALID": "token-invalid",
  "TOKEN_EXPIRED": "token-expired",
  "TOKEN_NOT_YET_VALID": "token-not-yet-valid",
  "FORBIDDEN": "forbidden",
  "TOO_MANY_ROOMS": "too-many-rooms",
  "STORE_UNAVAILABLE": "store-unavailable",
  "UNIDENTIFIED": "unidentified",
  "USER_UNAVAILABLE": "user-unavailable",
  "BUSY": "busy",
  "ALREADY_IN_CALL": "already-in-call",
  "NO_SUCH_CALL": "no-such-call",
  "CALL_NOT_RINGING": "call-not-ringing",
  "CALL_NOT_ACTIVE": "call-not-active",
  "RESUME_FAILED": "resume-failed",
  "CLUSTER_UNAVAILABLE": "cluster-unavailable",
  "WRONG_MEDIA_MODE": "wrong-media-mode",
  "SFU_REQUIRED": "sfu-required",
  "MEDIA_UNAVAILABLE": "media-unavailable",
  "MEDIA_REFUSED": "media-refused",
  "NO_SUCH_FEED": "no-such-feed"
});

/** The WebSocket close codes the server sends, by name. */
export const CLOSE_CODES = Object.freeze({
  "NORMAL": 1000,
  "GOING_AWAY": 1001,
  "PROTOCOL_ERROR": 1002,
  "UNSUPPORTED_DATA": 1003,
  "INVALID_DATA": 1007,
  "POLICY_VIOLATION": 1008,
  "MESSAGE_TOO_BIG": 1009,
  "INTERNAL_ERROR": 1011,
  "AUTH_TIMEOUT": 4001,
  "REMOVED": 4003,
  "ROOM_ENDED": 4004,
  "SLOW_CONSUMER": 4008,
  "REPLACED": 4009,
  "RESUMED_ELSEWHERE": 4010
});

/** Close codes after which a client does not reconnect by itself, with the name each is reported by. */
export const FINAL_CLOSE_CODES = Object.freeze({
  "1002": "protocol-error",
  "1003": "unsupported-data",
  "1007": "invalid-data",
  "1008": "flooded",
  "1009": "too-big",
  "4003": "removed",
  "4004": "room-ended",
  "4009": "replaced",
  "4010": "resumed-elsewhere"
});

/** Refusals of a `chat` after which the same message is sent again. */
export const RETRIED_CHAT_ERRORS = Object.freeze([
  "not-in-room",
  "rate-limited",
  "store-unavailable"
]);

/** Refusals of a rejoin after a reconnection that keep the client trying. */
export const RETRIED_REJOIN_ERRORS = Object.freeze([
  "cluster-unavailable",
  "rate-limited",
  "room-full",
  "store-unavailable",
  "user-id-taken"
]);

/** The presence statuses a client may set. */
export const PRESENCE_STATUSES = Object.freeze([
  "away",
  "busy",
  "online"
]);

/** The presence status a member has until it sets another. */
export const ONLINE = "online";

/** The status of a member who left (the server's to say). */
export const OFFLINE = "offline";

/** A member's `connection` while it is lost and may come back. */
export const RECONNECTING = "reconnecting";

/** A member's `connection` once it is back. */
export const CONNECTED = "connected";

/** The `reason` of a `resume-failed` error. */
export const RESUME_FAILURES = Object.freeze([
  "node-gone",
  "other-node",
  "overrun",
  "unknown-session"
]);
