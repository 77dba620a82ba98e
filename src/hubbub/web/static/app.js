// The hubbub web app: join a room, call, chat and send files. Plain DOM on top of
// hubbub.js; index.html holds the markup, app.css the looks. Native ES modules, no
// build step: this file starts the app, its parts are under app/.
//
//   helpers.js   small helpers: DOM, names and colours, sizes and times, URLs
//   state.js     what the parts share (the room, the local stream, tiles...)
//   access.js    open mode, or token mode: invite links, the site's token endpoint
//   devices.js   camera, microphone and speaker pickers, remembered; front/back camera
//   media.js     the camera and microphone before the call, and the preview
//   join.js      the join screen
//   connection-test.js  "Test my connection": STUN, TURN and a relayed channel
//   call.js      the call: the room's events, from joining to the page after it
//   tiles.js     video tiles, the stage's layouts, pins, and who is speaking
//   quality.js   each connection's quality from getStats()
//   people.js    the list of people
//   chat.js      chat, older messages, typing, unread count
//   files.js     file transfers: to one or everyone, dropped, pasted; offers
//   controls.js  the side panel, call controls and connection banner

import { setupConnectionTest } from "./app/connection-test.js";
import { setupCallScreen } from "./app/controls.js";
import { setupJoinScreen, showAccess } from "./app/join.js";
import { startPreview } from "./app/media.js";
import { state } from "./app/state.js";

setupJoinScreen();
setupConnectionTest();
setupCallScreen();
state.accessReady = showAccess();
state.previewReady = startPreview();
// Every part is set up: the page says so (what waits for the app, tests too, can look).
document.documentElement.dataset.app = "ready";
