// The page half of the browser driver (drivers.py, BrowserDriver): one hubbub.js room,
// imported from the hub whose URL the page was given (?hub=...), as an app's page
// would. `driver` is what Playwright calls; every event the room tells goes to
// `reportEvent` (exposed by the test) as it happens, numbered, with the fields the
// driver reads. Nothing here decides anything: the names are made common in Python.
const hub = new URL(location.href).searchParams.get("hub");
const hubbub = await import(`${hub}/hubbub.js`);

let room = null;
let reported = 0;
const report = (type, detail) => window.reportEvent(++reported, type, detail);
const stored = (entry) => [entry.seq, entry.userId, entry.message];

function listen() {
  room.on("participant-joined", ({ participant }) => report("participant-joined", { userId: participant.userId }));
  room.on("participant-left", ({ participant }) => report("participant-left", { userId: participant.userId }));
  room.on("chat", ({ userId, message, seq }) => report("chat", { userId, message, seq: seq ?? null }));
  room.on("chat-status", ({ entry }) =>
    report("chat-status", {
      status: entry.status,
      message: entry.message,
      seq: entry.seq ?? null,
      code: entry.error?.code ?? null,
    }),
  );
  room.on("connection-state", ({ state, reason }) =>
    report("connection-state", {
      state,
      reason: reason?.code ?? null,
      cause: reason?.cause ?? null,
      closeCode: reason?.closeCode ?? null,
      closeReason: room.closeReason,
    }),
  );
}

// Every wait in the page has a deadline, and says what it waited for when it passes.
const within = (what, promise, ms = 20000) => {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms / 1000} s for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

window.driver = {
  async join(url, options) {
    room = await within(`${options.userId} to join`, hubbub.join(url, options));
    listen();
    return {
      userId: room.userId,
      participants: [...room.participants.keys()],
      history: room.history.map(stored),
      chatSeq: room.chatSeq,
      storesChat: room.storesChat,
    };
  },
  async chat(text) {
    try {
      await room.sendChat(text);
    } catch (error) {
      // (refused by sendChat itself: the room is closed, the message too long)
      report("chat-status", { status: "failed", message: text, seq: null, code: error.code });
    }
  },
  async olderPage(limit) {
    return (await within("a page of older chat", room.loadOlderChat(limit))).map(stored);
  },
  leave() {
    room.leave();
  },
  state() {
    return room.state;
  },
  participants() {
    return [...room.participants.keys()];
  },
};
window.ready = true;
