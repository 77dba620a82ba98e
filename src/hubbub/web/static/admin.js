// The admin page: rooms, participants and live rates of this server, through its
// HTTP API and /metrics with the server API key, and charts of the last minutes drawn
// on a canvas (no library). Everything shown that came from clients (room names,
// user ids, names) is set as text, never as HTML. Removing someone and ending a room
// ask first.

const REFRESH_MS = 2000;
const HISTORY = 90; // samples kept for the charts: three minutes at REFRESH_MS
const ROOMS_PAGE = 1000;
const KEY_ITEM = "hubbub-admin-key";

const $ = (id) => document.getElementById(id);

let previous = null; // { at, counters } of the last scrape, for rates
let timer = null;
let rooms = [];
const series = { connections: [], participants: [], inRate: [], outRate: [] };

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
  const inRate = rate(now, "hubbub_messages_received_total");
  const outRate = rate(now, "hubbub_messages_sent_total");
  showNumber("fig-connections", counters.get("hubbub_connections"));
  showNumber("fig-rooms", counters.get("hubbub_rooms"));
  showNumber("fig-participants", counters.get("hubbub_participants"));
  showNumber("fig-in-rate", inRate, 1);
  showNumber("fig-out-rate", outRate, 1);
  showNumber("fig-chat-rate", rate(now, 'hubbub_messages_received_total{type="chat"}'), 1);
  showNumber("fig-error-rate", rate(now, "hubbub_errors_total"), 1);
  showNumber("fig-slow", counters.get("hubbub_slow_consumer_disconnects_total"));
  record("connections", counters.get("hubbub_connections") ?? 0);
  record("participants", counters.get("hubbub_participants") ?? 0);
  if (inRate !== null) record("inRate", inRate);
  if (outRate !== null) record("outRate", outRate);
  drawChart($("chart-connections"), [series.connections, series.participants], "Connections", ["connections", "participants"]);
  drawChart($("chart-messages"), [series.inRate, series.outRate], "Messages per second", ["in", "out"]);
}

function record(name, value) {
  const values = series[name];
  values.push(value);
  if (values.length > HISTORY) values.shift();
}

// -- charts -----------------------------------------------------------------------------

function niceCeiling(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function format(value) {
  return value >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
}

/** Lines of the last minutes on a canvas, with a scale; its label says the figures. */
function drawChart(canvas, lines, title, names) {
  const styles = getComputedStyle(document.documentElement);
  const colors = [styles.getPropertyValue("--accent").trim(), styles.getPropertyValue("--second").trim()];
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  context.clearRect(0, 0, width, height);
  const top = niceCeiling(Math.max(0, ...lines.flat()));
  const left = 34;
  const plotWidth = width - left - 4;
  const plotHeight = height - 18;
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = styles.getPropertyValue("--faint").trim();
  context.strokeStyle = styles.getPropertyValue("--border").trim();
  context.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = 4 + (plotHeight * i) / 4;
    context.beginPath();
    context.moveTo(left, Math.round(y) + 0.5);
    context.lineTo(width - 4, Math.round(y) + 0.5);
    context.stroke();
    context.fillText(format((top * (4 - i)) / 4), 2, y + 4);
  }
  context.fillText(`${Math.round((HISTORY * REFRESH_MS) / 60000)} min ago`, left, height - 2);
  context.textAlign = "right";
  context.fillText("now", width - 4, height - 2);
  context.textAlign = "left";
  lines.forEach((values, index) => {
    if (values.length < 2) return;
    const x = (i) => left + plotWidth - ((values.length - 1 - i) * plotWidth) / (HISTORY - 1);
    const y = (value) => 4 + plotHeight - (value / top) * plotHeight;
    context.beginPath();
    values.forEach((value, i) => (i ? context.lineTo(x(i), y(value)) : context.moveTo(x(i), y(value))));
    context.strokeStyle = colors[index];
    context.lineWidth = 2;
    context.lineJoin = "round";
    context.stroke();
    if (index === 0) {
      context.lineTo(x(values.length - 1), 4 + plotHeight);
      context.lineTo(x(0), 4 + plotHeight);
      context.closePath();
      context.globalAlpha = 0.12;
      context.fillStyle = colors[index];
      context.fill();
      context.globalAlpha = 1;
    }
  });
  const said = lines.map((values, index) => {
    const now = values.at(-1) ?? 0;
    return `${names[index]} now ${format(now)}, peak ${format(Math.max(0, ...values))}`;
  });
  canvas.setAttribute("aria-label", `${title}, the last minutes: ${said.join("; ")}`);
  canvas.dataset.samples = String(lines[0].length);
}

// -- rooms --------------------------------------------------------------------------------

function participantItem(room, participant) {
  const item = document.createElement("li");
  item.dataset.userId = participant.userId;
  const id = document.createElement("span");
  id.className = "user-id";
  id.textContent = participant.userId;
  item.append(id);
  if (participant.name && participant.name !== participant.userId) {
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
    confirmThen(
      {
        title: `Remove ${participant.userId}?`,
        text: `${participant.userId} leaves ${room} at once (closed with 4003, not reconnected). Their token still works until it expires: stop giving them new ones to keep them out.`,
        action: "Remove",
      },
      () => act("DELETE", `/api/rooms/${encodeURIComponent(room)}/participants/${encodeURIComponent(participant.userId)}`),
    ),
  );
  item.append(remove);
  return item;
}

function matches(room, query) {
  if (!query) return true;
  const wanted = query.toLowerCase();
  return (
    room.name.toLowerCase().includes(wanted) ||
    room.participants.some(
      (p) => p.userId.toLowerCase().includes(wanted) || (p.name ?? "").toLowerCase().includes(wanted),
    )
  );
}

function showRooms() {
  const query = $("room-search").value.trim();
  const shown = rooms.filter((room) => matches(room, query));
  const body = $("rooms").tBodies[0];
  const rows = shown.map((room) => {
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
    actions.className = "room-actions";
    const end = document.createElement("button");
    end.type = "button";
    end.className = "ghost-button end-room";
    end.textContent = "End room";
    end.setAttribute("aria-label", `End room ${room.name}`);
    const count = room.participants.length;
    end.addEventListener("click", () =>
      confirmThen(
        {
          title: `End ${room.name}?`,
          text: `${count === 1 ? "The 1 person in it is" : `The ${count} people in it are`} disconnected at once (4004), and told the room has ended.`,
          action: "End room",
        },
        () => act("DELETE", `/api/rooms/${encodeURIComponent(room.name)}`),
      ),
    );
    actions.append(end);
    row.append(name, members, actions);
    return row;
  });
  body.replaceChildren(...rows);
  $("no-rooms").hidden = rooms.length > 0;
  $("no-match").hidden = rooms.length === 0 || shown.length > 0;
  $("rooms").hidden = shown.length === 0;
}

// A dialog that says what is about to happen; `then` runs only on its confirmation.
function confirmThen({ title, text, action }, then) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "confirm") then();
  };
  dialog.showModal();
  $("confirm-cancel").focus();
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
    const [listed, metrics] = await Promise.all([
      call("GET", `/api/rooms?limit=${ROOMS_PAGE}`).then((r) => r.json()),
      call("GET", "/metrics").then((r) => r.text()),
    ]);
    const now = { at: performance.now(), counters: parseMetrics(metrics) };
    $("version").textContent = `version ${server.version}`;
    showDashboard(true);
    showFigures(now.counters, now);
    rooms = listed.rooms;
    showRooms();
    previous = now;
    $("status").textContent = "";
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
  for (const values of Object.values(series)) values.length = 0;
  showDashboard(false);
});

$("room-search").addEventListener("input", showRooms);

if (apiKey()) refresh();
else showDashboard(false);
