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
};
