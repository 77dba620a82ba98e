// The admin page: rooms, participants and live rates of this server, through its
// HTTP API and /metrics with the server API key. Everything shown that came from
// clients (room names, user ids, names) is set as text, never as HTML.

const REFRESH_MS = 2000;
const KEY_ITEM = "hubbub-admin-key";

const $ = (id) => document.getElementById(id);

let previous = null; // { at, counters } of the last scrape, for rates
let timer = null;

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

async function call(method, path) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${apiKey()}` },
    cache: "no-store",
  });
  if (response.status === 401 || response.status === 403) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).error.message;
    } catch {}
    throw Object.assign(new Error(message), { refused: true });
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response;
}

/** Sums of each metric's samples, by name (labels added together). */
function parseMetrics(text) {
  const sums = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$/.exec(line);
    if (!match) continue;
    const [, name, labels = "", value] = match;
    const number = Number(value);
    if (!Number.isFinite(number)) continue;
    sums.set(name, (sums.get(name) ?? 0) + number);
    if (labels) sums.set(name + labels, number);
  }
  return sums;
}

function rate(now, name) {
  if (!previous) return null;
  const seconds = (now.at - previous.at) / 1000;
  if (seconds <= 0) return null;
  const delta = (now.counters.get(name) ?? 0) - (previous.counters.get(name) ?? 0);
  return Math.max(0, delta) / seconds;
}

function showNumber(id, value, digits = 0) {
  $(id).textContent = value === null || value === undefined ? "–" : value.toFixed(digits);
}

function showFigures(counters, now) {
  showNumber("fig-connections", counters.get("hubbub_connections"));
  showNumber("fig-rooms", counters.get("hubbub_rooms"));
  showNumber("fig-participants", counters.get("hubbub_participants"));
  showNumber("fig-in-rate", rate(now, "hubbub_messages_received_total"), 1);
  showNumber("fig-out-rate", rate(now, "hubbub_messages_sent_total"), 1);
  showNumber("fig-chat-rate", rate(now, 'hubbub_messages_received_total{type="chat"}'), 1);
  showNumber("fig-error-rate", rate(now, "hubbub_errors_total"), 1);
  showNumber("fig-slow", counters.get("hubbub_slow_consumer_disconnects_total"));
}

function participantItem(room, participant) {
  const item = document.createElement("li");
  item.dataset.userId = participant.userId;
  const id = document.createElement("span");
  id.className = "user-id";
  id.textContent = participant.userId;
  item.append(id);
  if (participant.name) {
    const name = document.createElement("span");
    name.className = "badge";
    name.textContent = participant.name;
    item.append(name);
  }
  if (participant.hidden) {
    const hidden = document.createElement("span");
    hidden.className = "badge";
    hidden.textContent = "hidden";
    item.append(hidden);
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "×";
  remove.title = `Remove ${participant.userId} from ${room}`;
  remove.setAttribute("aria-label", remove.title);
  remove.addEventListener("click", () =>
    act("DELETE", `/api/rooms/${encodeURIComponent(room)}/participants/${encodeURIComponent(participant.userId)}`),
  );
  item.append(remove);
  return item;
}

function showRooms(rooms) {
  const body = $("rooms").tBodies[0];
  const rows = rooms.map((room) => {
    const row = document.createElement("tr");
    row.dataset.room = room.name;
    const name = document.createElement("td");
    name.className = "room-name";
    name.textContent = room.name;
    const members = document.createElement("td");
    const list = document.createElement("ul");
    list.className = "participants";
    list.append(...room.participants.map((p) => participantItem(room.name, p)));
    members.append(list);
    const actions = document.createElement("td");
    const end = document.createElement("button");
    end.type = "button";
    end.textContent = "End room";
    end.addEventListener("click", () => act("DELETE", `/api/rooms/${encodeURIComponent(room.name)}`));
    actions.append(end);
    row.append(name, members, actions);
    return row;
  });
  body.replaceChildren(...rows);
  $("no-rooms").hidden = rooms.length > 0;
  $("rooms").hidden = rooms.length === 0;
}

async function act(method, path) {
  try {
    await call(method, path);
  } catch (error) {
    $("status").textContent = error.message;
  }
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    // The key is checked by one call first, so a refusal always says what the API
    // says (a parallel /metrics refusal would otherwise win the race now and then).
    const server = await call("GET", "/api/server").then((r) => r.json());
    const [rooms, metrics] = await Promise.all([
      call("GET", "/api/rooms").then((r) => r.json()),
      call("GET", "/metrics").then((r) => r.text()),
    ]);
    const now = { at: performance.now(), counters: parseMetrics(metrics) };
    $("version").textContent = `version ${server.version}`;
    showFigures(now.counters, now);
    showRooms(rooms.rooms);
    previous = now;
    $("status").textContent = "";
    showDashboard(true);
  } catch (error) {
    if (error.refused) {
      sessionStorage.removeItem(KEY_ITEM);
      $("key-error").textContent = error.message;
      showDashboard(false);
      return;
    }
    $("status").textContent = `Cannot reach the server: ${error.message}`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function showDashboard(open) {
  $("dashboard").hidden = !open;
  $("sign-out").hidden = !open;
  $("key-form").hidden = open;
  if (!open) $("api-key").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_ITEM, $("api-key").value.trim());
  $("api-key").value = "";
  $("key-error").textContent = "";
  previous = null;
  refresh();
});

$("sign-out").addEventListener("click", () => {
  clearTimeout(timer);
  sessionStorage.removeItem(KEY_ITEM);
  previous = null;
  showDashboard(false);
});

if (apiKey()) refresh();
else showDashboard(false);
