// What the hubbub.js tests run in the page (test_hubbub_js.py); `hubbub` and `HUB`
// are set by the page before this runs.
window.hubbub = hubbub;
window.rooms = {};
window.events = [];
// Every wait in the page has a deadline, and says what it waited for when it passes.
window.WAIT_MS = 20000;
window.within = (what, promise, ms = WAIT_MS) => {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms / 1000} s for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};
window.until = (what, test, ms = WAIT_MS) => {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (test()) resolve();
      else if (Date.now() > deadline) reject(new Error(`waited ${ms / 1000} s for ${what}`));
      else setTimeout(check, 50);
    };
    check();
  });
};
// Join as `user` (with a token, `user` only names the room object) and record what
// the room tells, for the test to look at.
window.enter = async (user, options = {}) => {
  const userId = options.token ? undefined : user;
  // `options.hub`: another way to the same server (a proxy that can cut the connection).
  const room = await within(`${user} to join`,
    hubbub.join(options.hub ?? HUB, { room: options.room ?? "test", userId, ...options }));
  for (const type of ["participant-joined", "participant-left", "chat", "stream", "stream-removed",
                      "connection-state", "typing", "presence", "reconnecting", "ice-restart",
                      "peer-state", "resumed", "rejoined", "participant-updated"]) {
    room.on(type, (detail) => events.push({
      user, type, from: detail.participant?.userId ?? detail.userId, kind: detail.kind,
      message: detail.message, state: detail.state, typing: detail.typing, status: detail.status,
      attempt: detail.attempt, delayMs: detail.delayMs, missed: detail.missed,
      replayed: detail.replayed, connection: detail.participant?.connection,
      reason: typeof detail.reason === "string" ? detail.reason : detail.reason?.code,
    }));
  }
  // Every message from the server, as the room saw it.
  room.on("message", (message) => events.push({
    user, type: "server", kind: message.type, n: message.n, from: message.fromUserId ?? message.userId,
    message: message.message, k: message.signal?.k, afterMs: message.afterMs,
  }));
  rooms[user] = room;
  return room.userId;
};
window.seen = (filter) => events.filter((e) => Object.entries(filter).every(([k, v]) => e[k] === v)).length;

// SHA-256 of many lengths, whole and in random pieces, against WebCrypto.
window.sha256Mismatches = async () => {
  const hex = (buffer) => Array.from(new Uint8Array(buffer),
                                     (b) => b.toString(16).padStart(2, "0")).join("");
  const bad = [];
  const lengths = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 65536, 1000003];
  for (const length of lengths) {
    const data = new Uint8Array(length);
    for (let i = 0; i < length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, Math.min(length, i + 65536)));
    }
    const expected = hex(await crypto.subtle.digest("SHA-256", data));
    const whole = new hubbub.Sha256().update(data).hex();
    const pieces = new hubbub.Sha256();
    for (let at = 0; at < length;) {
      const next = Math.min(length, at + 1 + Math.floor(Math.random() * 200));
      pieces.update(data.subarray(at, next));
      at = next;
    }
    if (whole !== expected || pieces.hex() !== expected) bad.push(length);
  }
  const abc = new hubbub.Sha256().update("abc").hex();
  if (abc !== "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") bad.push("abc");
  return bad;
};

// App channels between alice and bob: reliable notes, an unordered game channel.
window.channelExchange = async () => {
  const got = [];
  const game = rooms.bob.channel("game", { ordered: false, maxRetransmits: 0 });
  game.on("message", ({ from, data }) => got.push(["game", from, data]));
  const chatty = rooms.alice.channel("notes");
  rooms.bob.on("channel", ({ channel }) =>
    channel.on("message", ({ from, data }) => got.push([channel.label, from, data])));
  await until("bob on alice's notes channel", () => chatty.peers.includes("bob"));
  for (let i = 0; i < 50; i++) chatty.send("note " + i);
  const remote = rooms.alice._channels.get("game") ??
    await within("bob's game channel at alice", rooms.alice.once("channel")).then((d) => d.channel);
  const options = {
    ordered: remote._peers.get("bob")[0].ordered,
    maxRetransmits: remote._peers.get("bob")[0].maxRetransmits,
  };
  await until("bob on alice's game channel", () => remote.peers.includes("bob"));
  remote.sendTo("bob", "move 1");
  const deadline = Date.now() + 10000;
  while (got.length < 51 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return { got, options };
};

// Files from alice to bob: one accepted, one declined, one cancelled midway.
window.fileScenarios = async () => {
  const hex = (buffer) => Array.from(new Uint8Array(buffer),
                                     (b) => b.toString(16).padStart(2, "0")).join("");
  const decisions = [];
  rooms.bob.on("file-offer", ({ transfer }) => {
    decisions.push([transfer.name, transfer.size, transfer.userId]);
    if (transfer.name === "no.txt") transfer.reject("not now");
    else transfer.accept();
  });
  const data = new Uint8Array(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  const sending = rooms.alice.sendFile("bob", new File([data], "../../etc/data.bin"));
  const progress = [];
  sending.on("progress", ({ bytes }) => progress.push(bytes));
  const arrived = await within("the offer of data.bin at bob",
    new Promise((resolve) => rooms.bob.on("file-offer", ({ transfer }) => {
      if (transfer.name === "data.bin") resolve(transfer);
    })));
  const blob = await within("data.bin received by bob", arrived.done);
  await within("data.bin sent by alice", sending.done);
  const rejected = rooms.alice.sendFile("bob", new Blob(["x"]), { name: "no.txt" });
  const rejection = await within("no.txt declined",
    rejected.done.then(() => "done", (e) => e.code));

  // Cancel from the receiver once bytes are flowing.
  const big = rooms.alice.sendFile("bob", new Blob([new Uint8Array(64 * 1024 * 1024)]), { name: "big.bin" });
  const incoming = await within("the offer of big.bin at bob",
    new Promise((resolve) => rooms.bob.on("file-offer", ({ transfer }) => {
      if (transfer.name === "big.bin") resolve(transfer);
    })));
  await within("the first bytes of big.bin at bob",
    new Promise((resolve) => incoming.on("progress", ({ bytes }) => bytes > 0 && resolve())));
  incoming.cancel("changed my mind");
  const sender = await within("big.bin to end at alice",
    big.done.then(() => "done", (e) => [e.code, big.state]));
  const receiver = await within("big.bin to end at bob",
    incoming.done.then(() => "done", (e) => [e.code, incoming.state]));
  return {
    decisions, progress,
    sent: hex(await crypto.subtle.digest("SHA-256", data)),
    got: hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer())),
    announced: arrived.sha256, size: blob.size, states: [sending.state, arrived.state],
    rejection, sender, receiver,
  };
};
