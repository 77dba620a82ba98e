// helpers.js: small helpers of the web app: building DOM, names and colours, sizes and
// times, toasts, the server's and an invite's URL.

export const $ = (id) => document.getElementById(id);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function icon(name, extraClass = "") {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", `icon ${extraClass}`.trim());
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

export function initials(name) {
  const words = String(name).trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  const letters = words.length === 1 ? [...words[0]].slice(0, 2) : [[...words[0]][0], [...words.at(-1)][0]];
  return letters.join("").toUpperCase();
}

export function colorFor(name) {
  let hash = 0;
  for (const char of String(name)) hash = (hash * 31 + char.codePointAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360} 45% 42%)`;
}

export function avatar(name, extraClass = "") {
  const node = el("span", { class: `avatar ${extraClass}`.trim(), "aria-hidden": "true" }, initials(name));
  node.style.setProperty("--avatar", colorFor(name));
  return node;
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < units.length - 1);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatTime(ts) {
  const date = ts ? new Date(ts) : new Date();
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function toast(text, ms = 3200) {
  const node = el("div", { class: "toast" }, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), ms);
}

export function showMessage(id, text) {
  const node = $(id);
  node.textContent = text ?? "";
  node.hidden = !text;
}

export function serverUrl() {
  const url = new URL(".", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

export function inviteUrl(room) {
  const url = new URL(location.pathname, location.href);
  url.searchParams.set("room", room);
  return url.href;
}

export function randomRoomName() {
  const words = ["amber", "birch", "cedar", "delta", "ember", "fjord", "harbor", "juniper", "lumen", "maple", "nova", "orbit", "pine", "quartz", "river", "sierra", "tide", "willow"];
  const pick = () => words[crypto.getRandomValues(new Uint32Array(1))[0] % words.length];
  return `${pick()}-${pick()}-${crypto.getRandomValues(new Uint16Array(1))[0] % 100}`;
}
