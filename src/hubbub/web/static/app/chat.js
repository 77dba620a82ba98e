// chat.js: the web app's chat: messages, their delivery, older pages, typing, unread count.

import { panelOpen } from "./controls.js";
import { $, el, formatTime, toast } from "./helpers.js";
import { updatePerson } from "./people.js";
import { state } from "./state.js";
import { nameOf } from "./tiles.js";

const DELIVERY_TEXT = { pending: "Sending…", sent: "Sent", failed: "Not sent" };

export function chatMessage(entry, fromHistory = false) {
  const list = $("messages");
  // A stored message is shown once, however it came (live, a page of history, caught up).
  if (typeof entry.seq === "number" && list.querySelector(`.message-item[data-seq="${entry.seq}"]`)) return null;
  const name = entry.mine ? "You" : entry.displayName ?? nameOf(entry.userId);
  const dataset = { from: entry.userId };
  if (typeof entry.seq === "number") dataset.seq = String(entry.seq);
  if (entry.clientId) dataset.clientId = entry.clientId;
  const item = el(
    "li",
    { class: `message-item${entry.mine ? " mine" : ""}`, dataset },
    el(
      "div",
      { class: "message-meta" },
      el("span", { class: "who" }, name),
      el("time", { datetime: new Date(entry.ts ?? Date.now()).toISOString() }, formatTime(entry.ts)),
    ),
    el("div", { class: "bubble" }, ...linkified(String(entry.message ?? ""))),
  );
  if (entry.mine && entry.status) item.append(el("div", { class: "delivery" }));
  // Stored messages go in `seq` order (older pages, messages missed while away);
  // the rest in the order they come.
  const later =
    typeof entry.seq === "number" &&
    [...list.querySelectorAll(".message-item[data-seq]")].find((node) => Number(node.dataset.seq) > entry.seq);
  if (later) {
    later.before(item);
    later.classList.remove("continued");
  } else {
    if (state.lastSender === entry.userId) item.classList.add("continued");
    state.lastSender = entry.userId;
    appendToLog(item);
  }
  if (entry.mine && entry.status) setDelivery(item, entry);
  if (!entry.mine && !fromHistory) {
    setTyping(entry.userId, false);
    noteUnread();
  }
  return item;
}

// Links in a message, clickable: http(s) only, opened apart from this page (which
// keeps the call), without telling the site where the click came from. Everything is
// set as text, never as HTML.
const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'")\]}]+$/;

export function linkified(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let href = match[0];
    // A sentence's punctuation after a link is not part of it, unless it closes a
    // bracket the link opened (a Wikipedia link ending in ")").
    const trailing = href.match(TRAILING)?.[0] ?? "";
    let cut = trailing.length;
    if (trailing.startsWith(")") && (href.match(/\(/g)?.length ?? 0) > 0) cut -= 1;
    if (cut > 0) href = href.slice(0, -cut);
    let url;
    try {
      url = new URL(href);
    } catch {
      continue;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    parts.push(text.slice(last, match.index));
    parts.push(el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" }, href));
    last = match.index + href.length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}

function setDelivery(item, entry) {
  item.dataset.status = entry.status;
  item.classList.toggle("pending", entry.status === "pending");
  if (typeof entry.seq === "number") item.dataset.seq = String(entry.seq);
  const text = DELIVERY_TEXT[entry.status] ?? "";
  const detail = entry.status === "failed" && entry.error ? `: ${entry.error.message}` : "";
  item.querySelector(".delivery").textContent = text + detail;
  // "Sent" shows under the last of one's own messages only; "Sending…" under each.
  const mine = [...$("messages").querySelectorAll(".message-item.mine")];
  for (const node of mine) node.classList.toggle("latest-mine", node === mine.at(-1));
}

export function onChatStatus(entry) {
  const item = document.querySelector(`.message-item[data-client-id="${CSS.escape(entry.clientId)}"]`);
  if (item) setDelivery(item, entry);
}

// Older messages: a button at the top of the list (for the keyboard), pressed by
// itself when scrolled into view.
export function setupOlderMessages(room) {
  const list = $("messages");
  const button = el("button", { type: "button", class: "ghost-button load-older" }, "Load older messages");
  const holder = el("li", { class: "older-item" }, button);
  list.prepend(holder);
  let loading = false;
  const update = () => {
    holder.hidden = !room.storesChat || room.historyComplete;
  };
  const load = async () => {
    if (loading || room.historyComplete || state.room !== room) return;
    loading = true;
    button.textContent = "Loading…";
    const before = list.scrollHeight - list.scrollTop;
    try {
      const older = await room.loadOlderChat();
      for (const entry of older) chatMessage(entry, true);
      list.scrollTop = list.scrollHeight - before; // the message in view stays in view
    } catch {
      toast("Older messages could not be loaded.");
    } finally {
      loading = false;
      button.textContent = "Load older messages";
      update();
    }
  };
  button.addEventListener("click", load);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && list.scrollHeight > list.clientHeight) load();
  }, { root: list });
  observer.observe(button);
  state.cleanup.push(() => observer.disconnect());
  update();
}

export function systemMessage(text) {
  state.lastSender = null;
  appendToLog(el("li", { class: "system-item" }, text));
}

export function appendToLog(item) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(item);
  if (atBottom || item.classList.contains("mine")) list.scrollTop = list.scrollHeight;
}

export function noteUnread() {
  const chatVisible = panelOpen() && $("tab-chat").getAttribute("aria-selected") === "true";
  if (chatVisible && document.visibilityState === "visible") return;
  state.unread += 1;
  $("unread").textContent = String(state.unread);
  $("unread").hidden = false;
  $("unread-dot").hidden = false;
}

export function clearUnread() {
  state.unread = 0;
  $("unread").hidden = true;
  $("unread-dot").hidden = true;
}

export function setTyping(userId, typing) {
  if (typing) state.typing.add(userId);
  else state.typing.delete(userId);
  const names = [...state.typing].map(nameOf);
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  $("typing").textContent = text;
  const participant = state.room?.participants.get(userId);
  if (participant) updatePerson(participant);
}

export async function sendChat() {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || !state.room) return;
  try {
    // Shown at once as "Sending…"; the library sends it until the server has stored it.
    const entry = await state.room.sendChat(text);
    input.value = "";
    autosize(input);
    chatMessage(entry);
  } catch {
    toast("Not connected: the message was not sent.");
  }
}

export function autosize(textarea) {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 128)}px`;
}
