// state.js: what the web app's parts share: the room, the local stream, tiles and the rest.

export const state = {
  room: null,
  stream: null, // camera and microphone, before and during the call
  wantMic: true,
  wantCamera: true,
  tiles: new Map(), // "userId:kind" -> tile element
  audio: new Map(), // userId -> audio element
  typing: new Set(),
  unread: 0,
  lastSender: null,
  cleanup: [],
  meter: null,
  pinned: null, // the tile key pinned to the stage
  quality: new Map(), // userId -> the last summary of their connection's stats
  relayed: new Set(), // userIds whose call is said to go through a relay
  failed: new Set(), // userIds whose connection failure was said
  speaker: null, // the userId of who spoke last (the speaker view's main tile)
  stripPage: 0, // the speaker view's page of the strip
};
