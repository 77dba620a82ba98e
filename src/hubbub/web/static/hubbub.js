// hubbub.js: the browser client of hubbub.
//
// Native ES modules, no build step and no dependency: this file is the one a page
// imports, and it gathers what the modules under hubbub/ export (one per part: the
// connection, chat, presence, media, participants, peer links, app channels, files).
// The protocol's constants come from the generated protocol.js next to it. The
// WebSocket to the server carries rooms, signaling and chat; WebRTC carries audio,
// video, screen sharing, files and app data peer to peer, in a mesh.
// docs/browser.md describes the API with an example; docs/protocol.md and
// docs/peer-protocol.md are the wire formats it follows.
//
//   import { join } from "/hubbub.js";
//   const room = await join("wss://example.org/", { room: "team", userId: "alice", stream });
//   room.on("stream", ({ participant, stream }) => show(participant.userId, stream));

export const VERSION = "0.1.0";

/** Close codes after which the library does not reconnect by itself, with the name each is reported by. */
export { FINAL_CLOSE_CODES } from "./protocol.js";
export { AppChannel } from "./hubbub/channels.js";
export { reconnectDelay } from "./hubbub/connection.js";
export { DEFAULTS } from "./hubbub/defaults.js";
export { Emitter } from "./hubbub/emitter.js";
export { HubbubError } from "./hubbub/errors.js";
export { FileTransfer } from "./hubbub/files.js";
export { Participant } from "./hubbub/participant.js";
export { join, Room } from "./hubbub/room.js";
export { Sha256 } from "./hubbub/sha256.js";
