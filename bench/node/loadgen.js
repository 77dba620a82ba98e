// One load generator process with Node's `ws` client: the same scenarios, commands
// and replies as bench/loadgen.py (python -m bench.loadgen), so a scenario runs with
// either. Clients write one message per send, as browsers do; every message is
// parsed with JSON.parse. Latencies use process.hrtime (CLOCK_MONOTONIC on Linux),
// the clock of Python's time.monotonic(), so processes of both kinds agree.
'use strict';

const readline = require('readline');
const WebSocket = require('ws');

const CONNECT_TIMEOUT_MS = 30000;
const CONNECT_ATTEMPTS = 3;
const BUCKETS_PER_E = 50;

const now = () => Number(process.hrtime.bigint()) / 1e9;

function histogram(latencies) {
  const counts = {};
  for (const seconds of latencies) {
    const us = seconds * 1e6;
    const bucket = us > 1 ? Math.floor(Math.log(us) * BUCKETS_PER_E) : 0;
    counts[bucket] = (counts[bucket] || 0) + 1;
  }
  return counts;
}

function cpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Runs `work(item)` for every item with at most `limit` running at once.
async function gated(items, limit, work) {
  let next = 0;
  const runners = [];
  for (let i = 0; i < Math.min(limit, items.length); i++) {
    runners.push((async () => {
      while (next < items.length) {
        const item = items[next++];
        await work(item);
      }
    })());
  }
  await Promise.all(runners);
}

// -- wire formats (as bench/loadgen.py's Wire and SocketIOWire) -----------------------

// hubbub and the seed's server: the seed's JSON objects as they are.
const JSON_WIRE = {
  path: '/',
  encode: (message) => JSON.stringify(message),
  // Calls ready() once the client may send; returns the message, or null.
  decode: (socket, data, ready) => JSON.parse(data),
  opened: (socket, ready) => ready(),
};

// Socket.IO 5 over Engine.IO 4 on a bare WebSocket: an event is 42["type",{...}].
const SOCKETIO_WIRE = {
  path: '/socket.io/?EIO=4&transport=websocket',
  encode: (message) => {
    const { type, ...data } = message;
    return '42' + JSON.stringify([type, data]);
  },
  decode: (socket, data, ready) => {
    const text = data.toString();
    if (text.startsWith('42')) {
      const [event, body] = JSON.parse(text.slice(2));
      body.type = event;
      return body;
    }
    if (text === '2') socket.send('3'); // Engine.IO ping
    else if (text.startsWith('40')) ready(); // connected to the default namespace
    else if (text.startsWith('0')) socket.send('40'); // Engine.IO open
    return null;
  },
  opened: () => {},
};

const WIRES = { hubbub: JSON_WIRE, seed: JSON_WIRE, socketio: SOCKETIO_WIRE };
let WIRE = JSON_WIRE;

class Driver {
  constructor(job) {
    this.job = job;
    this.params = job.params;
    this.urls = job.urls && job.urls.length ? job.urls : [job.url];
    this.index = job.index;
    this.clients = [];
    this.markedCpu = 0;
    this.markedAt = 0;
  }

  // A client on node `node`, open and ready; `onMessage(client, message)` gets
  // every message, parsed. `localAddress` binds the client's end (127.0.0.x).
  async connect(onMessage, name = '', node = 0, localAddress = undefined) {
    const url = this.urls[node % this.urls.length] + WIRE.path;
    for (let attempt = 0; ; attempt++) {
      try {
        const ws = await withTimeout(new Promise((resolve, reject) => {
          const options = { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS };
          if (localAddress) options.localAddress = localAddress;
          const socket = new WebSocket(url, options);
          const ready = () => resolve(socket);
          socket.on('message', (data) => {
            const message = WIRE.decode(socket, data, ready);
            if (message !== null) onMessage(socket, message);
          });
          socket.once('open', () => WIRE.opened(socket, ready));
          socket.once('error', reject);
        }), CONNECT_TIMEOUT_MS, `connect ${name}`);
        ws.name = name;
        ws.on('error', () => {});
        this.clients.push(ws);
        return ws;
      } catch (error) {
        if (attempt + 1 >= CONNECT_ATTEMPTS) throw error;
        process.stderr.write(`connect ${name}: ${error}; trying again\n`);
      }
    }
  }

  async setup() { return {}; }

  async on_mark() {
    this.markedCpu = cpuSeconds();
    this.markedAt = now();
    this.mark();
    return {};
  }

  mark() {}

  async on_report() {
    const cpu = cpuSeconds() - this.markedCpu;
    const wall = now() - this.markedAt;
    const result = this.report();
    result.generator_cpu_seconds = cpu;
    result.generator_wall_seconds = wall;
    return result;
  }

  report() { return {}; }

  async on_quit() {
    for (const client of this.clients) client.terminate();
    return {};
  }
}

const send = (client, message) => client.send(WIRE.encode(message));

// -- relay: pairs bouncing signal (bench/scenarios/relay.py) ---------------------------

const SIGNAL_PAD = 'x'.repeat(160);

class Relay extends Driver {
  constructor(job) {
    super(job);
    this.counting = false;
    this.messages = 0;
    this.latencies = [];
    this.partners = new Map();
    this.joined = new Map();
  }

  async setup() {
    await gated(this.params.pairs, 100, async (number) => {
      let done;
      const joined = new Promise((resolve) => { done = resolve; });
      this.joined.set(number, done);
      const onMessage = (client, message) => this.onMessage(client, message);
      const a = await this.connect(onMessage, `a${number}`, 0);
      const b = await this.connect(onMessage, `b${number}`, 1);
      this.partners.set(a, 'b');
      this.partners.set(b, 'a');
      const room = `relay-${this.index}-${number}`;
      send(a, { type: 'join-room', room, userId: 'a' });
      send(b, { type: 'join-room', room, userId: 'b' });
      await withTimeout(joined, 30000, 'join');
    });
    return {};
  }

  signal(client, t) {
    send(client, {
      type: 'signal',
      targetUserId: this.partners.get(client),
      signal: { candidate: SIGNAL_PAD, t },
    });
  }

  onMessage(client, message) {
    if (message.type === 'signal') {
      const t = now();
      if (this.counting) {
        this.messages += 1;
        this.latencies.push(t - message.signal.t);
      }
      this.signal(client, t);
    } else if (message.type === 'user-joined') {
      const done = this.joined.get(Number(client.name.slice(1)));
      if (done) done();
    }
  }

  async on_run() {
    for (const [client, partner] of this.partners) {
      if (partner === 'b') {
        for (let i = 0; i < this.params.in_flight; i++) this.signal(client, now());
      }
    }
    return {};
  }

  mark() {
    this.counting = true;
    this.messages = 0;
    this.latencies = [];
  }

  report() {
    this.counting = false;
    return { messages: this.messages, latency: histogram(this.latencies) };
  }
}

// -- fanout: one sender, one room (bench/scenarios/fanout.py) ---------------------------

const CHAT_PAD = 'x'.repeat(180);

class Fanout extends Driver {
  constructor(job) {
    super(job);
    this.members = [];
    this.sender = null;
    this.probed = new Set();
    this.counting = false;
    this.running = false;
    this.deliveries = 0;
    this.latencies = [];
    this.chats = 0;
    this.received = new Map();
    this.witness = null;
    this.nextNumber = 0;
  }

  async setup() {
    const room = 'fanout';
    if (this.params.sender) {
      this.sender = await this.connect((c, m) => this.onSenderMessage(c, m), 'sender');
      send(this.sender, { type: 'join-room', room, userId: 'm0' });
      await sleep(200);
    }
    await gated(this.params.members, 100, async (number) => {
      const client = await this.connect((c, m) => this.onMemberMessage(c, m), `m${number}`, number);
      send(client, { type: 'join-room', room, userId: `m${number}` });
      this.members.push(client);
      if (this.witness === null && !this.params.sender) this.witness = client;
    });
    return {};
  }

  async on_probe() {
    send(this.sender, { type: 'chat', message: 'probe' });
    return {};
  }

  async on_synced() {
    return { missing: this.members.length - this.probed.size };
  }

  onSenderMessage(client, message) {
    if (message.type === 'signal') this.oneMoreHas(Number(message.signal.n));
  }

  onMemberMessage(client, message) {
    if (message.type !== 'chat') return;
    const text = message.message;
    if (text === 'probe') {
      this.probed.add(client);
      return;
    }
    const t = now();
    const [number, sent] = text.split(' ', 2);
    if (this.counting) {
      this.deliveries += 1;
      this.latencies.push(t - Number(sent));
    }
    this.oneMoreHas(Number(number));
  }

  oneMoreHas(number) {
    let needed = this.members.length;
    if (this.sender !== null) needed += this.params.other_processes;
    const have = (this.received.get(number) || 0) + 1;
    if (have < needed) {
      this.received.set(number, have);
      return;
    }
    this.received.delete(number);
    if (this.sender !== null) {
      if (this.running) this.sendChat();
    } else if (this.witness !== null) {
      send(this.witness, { type: 'signal', targetUserId: 'm0', signal: { n: number } });
    }
  }

  sendChat() {
    this.nextNumber += 1;
    if (this.counting) this.chats += 1;
    send(this.sender, { type: 'chat', message: `${this.nextNumber} ${now()} ${CHAT_PAD}` });
  }

  async on_run() {
    this.running = true;
    if (this.sender !== null) {
      for (let i = 0; i < this.params.in_flight; i++) this.sendChat();
    }
    return {};
  }

  mark() {
    this.counting = true;
    this.deliveries = 0;
    this.chats = 0;
    this.latencies = [];
  }

  report() {
    this.counting = false;
    return { deliveries: this.deliveries, chats: this.chats, latency: histogram(this.latencies) };
  }

  async on_quit() {
    this.running = false;
    return super.on_quit();
  }
}

// -- join storm (bench/scenarios/join_storm.py) -------------------------------------------

const JOIN_TIMEOUT_MS = 60000;

class JoinStorm extends Driver {
  constructor(job) {
    super(job);
    this.confirmedByReply = job.wire === 'hubbub';
    this.started = new Map();
    this.watched = new Set();
    this.pending = new Map();
    this.latencies = [];
    this.watcherLatencies = [];
    this.firstStart = 0;
    this.lastDone = 0;
  }

  async setup() {
    await Promise.all(this.params.rooms.map(async (room) => {
      let inRoom;
      const seen = new Promise((resolve) => { inRoom = resolve; });
      const onMessage = (client, message) => {
        if (message.type !== 'user-joined') return;
        inRoom();
        this.seenByWatcher(`${room}:${message.userId}`);
      };
      for (const watcher of ['w1', 'w2']) {
        const client = await this.connect(onMessage, watcher);
        send(client, { type: 'join-room', room: `storm-${room}`, userId: watcher });
      }
      await withTimeout(seen, JOIN_TIMEOUT_MS, 'watchers');
    }));
    return {};
  }

  seenByWatcher(key) {
    const started = this.started.get(key);
    if (started === undefined || this.watched.has(key)) return;
    const t = now();
    this.watched.add(key);
    this.watcherLatencies.push(t - started);
    if (!this.confirmedByReply) this.done(key, t);
  }

  done(key, t) {
    const resolve = this.pending.get(key);
    if (resolve === undefined) return;
    this.pending.delete(key);
    this.latencies.push(t - this.started.get(key));
    this.lastDone = Math.max(this.lastDone, t);
    resolve();
  }

  async on_run() {
    const joins = [];
    for (let number = 0; number < this.params.per_room; number++) {
      for (const room of this.params.rooms) joins.push([room, number]);
    }
    this.firstStart = now();
    await gated(joins, this.params.outstanding, async ([room, number]) => {
      const key = `${room}:j${number}`;
      const confirmed = new Promise((resolve) => this.pending.set(key, resolve));
      this.started.set(key, now());
      const client = await this.connect((c, message) => {
        if (message.type === 'room-joined' && this.confirmedByReply) this.done(c.name, now());
      }, key);
      send(client, { type: 'join-room', room: `storm-${room}`, userId: `j${number}` });
      await withTimeout(confirmed, JOIN_TIMEOUT_MS, 'join');
    });
    return {};
  }

  report() {
    return {
      joins: this.latencies.length,
      first_start: this.firstStart,
      last_done: this.lastDone,
      latency: histogram(this.latencies),
      watcher_latency: histogram(this.watcherLatencies),
    };
  }
}

const DRIVERS = { relay: Relay, fanout: Fanout, join_storm: JoinStorm };

// -- the process ------------------------------------------------------------------------

function reply(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

async function main() {
  const job = JSON.parse(process.argv[2]);
  WIRE = WIRES[job.wire] || JSON_WIRE;
  const Kind = DRIVERS[job.scenario];
  if (!Kind) {
    reply({ ok: false, error: `setup: no Node driver for ${job.scenario}` });
    return;
  }
  const driver = new Kind(job);
  try {
    reply({ ok: true, ...(await driver.setup()) });
  } catch (error) {
    reply({ ok: false, error: `setup: ${error}` });
    return;
  }
  const lines = readline.createInterface({ input: process.stdin });
  for await (const raw of lines) {
    const line = raw.trim();
    if (!line) break;
    try {
      const method = driver[`on_${line}`];
      if (typeof method !== 'function') throw new Error(`unknown command ${line}`);
      reply({ ok: true, ...(await method.call(driver)) });
    } catch (error) {
      reply({ ok: false, error: `${line}: ${error}` });
    }
    if (line === 'quit') break;
  }
  process.exit(0);
}

main();
