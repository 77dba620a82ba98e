// files.js: files peer to peer. Chosen with the paperclip, dropped on the call or
// pasted into the chat box, a file goes to one person or to everyone; each transfer
// (or each file sent to everyone) has a card in the chat, and an offer to this side
// shows wherever the person is (a phone with the chat closed too).

import { appendToLog, noteUnread } from "./chat.js";
import { panelOpen, selectTab } from "./controls.js";
import { $, el, formatBytes, icon, toast } from "./helpers.js";
import { state } from "./state.js";
import { nameOf } from "./tiles.js";

const EVERYONE = "";

let fileTarget = null; // whom the file input's choice goes to, when a person's own button opened it
let draft = []; // files waiting for "Send to..."

/** The file input, for one person (their button in the list of people) or, with no one, a draft. */
export function pickFileFor(userId = null) {
  fileTarget = userId;
  const input = $("file-input");
  input.value = "";
  input.click();
}

export function sendPickedFiles(files) {
  if (!state.room || !files?.length) return;
  if (fileTarget) sendFiles(fileTarget, [...files]);
  else draftFiles([...files]);
  fileTarget = null;
}

// -- the draft: which files, to whom ---------------------------------------------------

/** Files dropped, pasted or picked with the paperclip: shown above the chat box with a "Send to" choice. */
export function draftFiles(files) {
  if (!state.room || !files.length) return;
  if (state.room.participants.size === 0) {
    toast("Nobody else is here to send a file to.");
    return;
  }
  draft = [...draft, ...files];
  const target = $("draft-target");
  const previous = target.value;
  const people = [...state.room.participants.values()];
  target.replaceChildren(
    ...(people.length > 1 ? [el("option", { value: EVERYONE }, `Everyone (${people.length})`)] : []),
    ...people.map((participant) => el("option", { value: participant.userId }, participant.displayName)),
  );
  if ([...target.options].some((option) => option.value === previous)) target.value = previous;
  $("draft-files").replaceChildren(
    ...draft.map((file) => el("li", {}, icon("file"), el("span", { class: "draft-name" }, file.name), el("span", { class: "draft-size" }, formatBytes(file.size)))),
  );
  $("file-draft").hidden = false;
  $("draft-send").textContent = draft.length > 1 ? `Send ${draft.length} files` : "Send";
  $("draft-send").focus();
}

export function sendDraft() {
  const target = $("draft-target").value;
  const files = draft;
  clearDraft();
  if (!state.room || !files.length) return;
  if (target === EVERYONE) for (const file of files) sendToEveryone(file);
  else sendFiles(target, files);
}

export function clearDraft() {
  draft = [];
  $("file-draft").hidden = true;
  $("draft-files").replaceChildren();
}

function sendFiles(userId, files) {
  selectTab("chat"); // where the transfer shows
  for (const file of files) {
    try {
      fileCard(state.room.sendFile(userId, file));
    } catch (error) {
      toast(`Could not send ${file.name}: ${error.message}`);
    }
  }
}

// One file to every member: a transfer each, one card for all of them.
function sendToEveryone(file) {
  selectTab("chat");
  const transfers = [];
  for (const participant of state.room.participants.values()) {
    try {
      transfers.push(state.room.sendFile(participant.userId, file));
    } catch (error) {
      toast(`Could not send ${file.name} to ${participant.displayName}: ${error.message}`);
    }
  }
  if (transfers.length) groupCard(file, transfers);
}

// -- cards ---------------------------------------------------------------------------

function cardShell(name, detailText, direction, id) {
  const progress = el("progress", { max: "1", value: "0", "aria-label": `${name}: progress` });
  const status = el("div", { class: "file-status", "aria-live": "polite" });
  const actions = el("div", { class: "file-actions" });
  const card = el(
    "li",
    { class: "file-card", dataset: { transfer: id, direction } },
    icon("file", "file-icon"),
    el("div", { class: "file-name", title: name }, name),
    el("div", { class: "file-detail" }, detailText),
    progress,
    status,
    actions,
  );
  return { card, progress, status, actions };
}

function button(label, onclick, extra = "") {
  return el("button", { type: "button", class: `ghost-button ${extra}`.trim(), onclick }, label);
}

function setActions(actions, buttons) {
  const current = [...actions.children].map((node) => node.className).join("|");
  const next = buttons.map((node) => node.className).join("|");
  if (current !== next) actions.replaceChildren(...buttons);
}

function setProgress(progress, bytes, size) {
  progress.max = Math.max(1, size);
  progress.value = bytes;
  progress.setAttribute("max", String(Math.max(1, size)));
  progress.setAttribute("value", String(bytes));
}

function saveLink(transfer) {
  return el(
    "a",
    { class: "ghost-button small-primary save-file", href: URL.createObjectURL(transfer.blob), download: transfer.name },
    icon("download"),
    "Save",
  );
}

// Bytes per second, over the last stretch of at least 400 ms.
function rateMeter() {
  let lastBytes = 0;
  let lastAt = performance.now();
  let rate = 0;
  return (bytes) => {
    const now = performance.now();
    if (now - lastAt > 400) {
      rate = ((bytes - lastBytes) / (now - lastAt)) * 1000;
      lastBytes = bytes;
      lastAt = now;
    }
    return rate;
  };
}

export function fileCard(transfer) {
  const incoming = transfer.direction === "receive";
  const peerName = nameOf(transfer.userId);
  const { card, progress, status, actions } = cardShell(
    transfer.name,
    `${formatBytes(transfer.size)} · ${incoming ? "from" : "to"} ${peerName}`,
    transfer.direction,
    transfer.id,
  );
  const rate = rateMeter();
  const render = () => {
    card.dataset.state = transfer.state;
    setProgress(progress, transfer.bytes, transfer.size);
    status.textContent = transferText(transfer, peerName, rate);
    const buttons = [];
    if (incoming && transfer.state === "offered") {
      buttons.push(
        button("Accept", () => transfer.accept(), "small-primary accept-file"),
        button("Decline", () => transfer.reject(), "decline-file"),
      );
    } else if (["offered", "transferring"].includes(transfer.state)) {
      buttons.push(button("Cancel", () => transfer.cancel(), "cancel-file"));
    } else if (incoming && transfer.state === "done" && transfer.blob) {
      buttons.push(saveLink(transfer));
    }
    setActions(actions, buttons);
  };
  transfer.on("progress", render);
  transfer.on("state", render);
  render();
  appendToLog(card);
  state.lastSender = null;
  if (incoming) {
    noteUnread();
    showOffer(transfer);
  }
}

function transferText(transfer, peerName, rate) {
  const incoming = transfer.direction === "receive";
  const percent = transfer.size ? Math.floor((transfer.bytes / transfer.size) * 100) : 100;
  switch (transfer.state) {
    case "offered":
      return incoming ? `${peerName} wants to send you this file.` : `Waiting for ${peerName} to accept…`;
    case "transferring": {
      const perSecond = rate(transfer.bytes);
      return `${percent}% · ${formatBytes(transfer.bytes)} of ${formatBytes(transfer.size)}${perSecond > 0 ? ` · ${formatBytes(perSecond)}/s` : ""}`;
    }
    case "verifying":
      return "Checking the file…";
    case "done":
      return incoming ? "Received and verified (SHA-256)." : `Delivered to ${peerName} and verified.`;
    case "rejected":
      return incoming ? "Declined." : `${peerName} declined the file.`;
    case "cancelled":
      return `Cancelled${transfer.error && transfer.error !== "cancelled" ? `: ${transfer.error}` : "."}`;
    default:
      return `Failed: ${transfer.error ?? "unknown error"}.`;
  }
}

// A file sent to everyone: how many have it, who declined, one progress bar for all.
function groupCard(file, transfers) {
  const { card, progress, status, actions } = cardShell(
    file.name,
    `${formatBytes(file.size)} · to everyone (${transfers.length})`,
    "send",
    transfers.map((transfer) => transfer.id).join(" "),
  );
  card.classList.add("file-card-group");
  const render = () => {
    const count = (wanted) => transfers.filter((transfer) => wanted.includes(transfer.state));
    const done = count(["done"]);
    const open = count(["offered", "transferring", "verifying"]);
    const refused = count(["rejected"]);
    const broken = count(["failed", "cancelled"]);
    setProgress(progress, transfers.reduce((sum, transfer) => sum + transfer.bytes, 0), file.size * transfers.length);
    const parts = [];
    const waiting = count(["offered"]).length;
    if (done.length) parts.push(`Delivered to ${done.length} of ${transfers.length}`);
    else if (waiting === transfers.length) parts.push(`Waiting for ${transfers.length} to accept…`);
    if (open.length && done.length) parts.push(`${open.length} on the way`);
    if (refused.length) parts.push(`declined by ${refused.map((transfer) => nameOf(transfer.userId)).join(", ")}`);
    if (broken.length) parts.push(`not delivered to ${broken.map((transfer) => nameOf(transfer.userId)).join(", ")}`);
    status.textContent = parts.join(" · ");
    card.dataset.state = open.length ? "transferring" : done.length === transfers.length ? "done" : "failed";
    setActions(actions, open.length ? [button("Cancel", () => open.forEach((transfer) => transfer.cancel()), "cancel-file")] : []);
  };
  for (const transfer of transfers) {
    transfer.on("progress", render);
    transfer.on("state", render);
  }
  render();
  appendToLog(card);
  state.lastSender = null;
}

// -- an offer, wherever the person is ---------------------------------------------------

// While the chat is out of sight (closed, on a phone most of the time, or the People
// tab), an offer shows over the call, with Accept and Decline, then its progress and
// Save; the card in the chat says the same.
function showOffer(transfer) {
  const chatInView = panelOpen() && $("tab-chat").getAttribute("aria-selected") === "true";
  if (chatInView && document.visibilityState === "visible") return;
  const peerName = nameOf(transfer.userId);
  const text = el("span", { class: "offer-text" });
  const actions = el("span", { class: "offer-actions" });
  const close = el(
    "button",
    { type: "button", class: "icon-button offer-close", "aria-label": "Close", onclick: () => sheet.remove() },
    icon("x"),
  );
  const sheet = el("div", { class: "offer", role: "alert", dataset: { transfer: transfer.id } }, icon("file"), text, actions, close);
  const rate = rateMeter();
  const render = () => {
    sheet.dataset.state = transfer.state;
    text.textContent =
      transfer.state === "offered"
        ? `${peerName} wants to send you ${transfer.name} (${formatBytes(transfer.size)}).`
        : `${transfer.name}: ${transferText(transfer, peerName, rate)}`;
    const buttons = [];
    if (transfer.state === "offered") {
      buttons.push(
        button("Accept", () => transfer.accept(), "small-primary accept-file"),
        button("Decline", () => transfer.reject(), "decline-file"),
      );
    } else if (transfer.state === "done" && transfer.blob) {
      buttons.push(saveLink(transfer));
    }
    setActions(actions, buttons);
    if (["rejected", "cancelled", "failed"].includes(transfer.state)) setTimeout(() => sheet.remove(), 4000);
  };
  transfer.on("progress", render);
  transfer.on("state", render);
  render();
  $("offers").append(sheet);
}

// -- drag and drop, paste ----------------------------------------------------------------

function filesOf(dataTransfer) {
  return [...(dataTransfer?.files ?? [])];
}

function carriesFiles(event) {
  return [...(event.dataTransfer?.types ?? [])].includes("Files");
}

export function setupFileDrops() {
  const screen = $("call-screen");
  let depth = 0;
  screen.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event) || !state.room) return;
    depth += 1;
    screen.classList.add("dropping");
  });
  screen.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) screen.classList.remove("dropping");
  });
  screen.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  screen.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    screen.classList.remove("dropping");
    draftFiles(filesOf(event.dataTransfer));
  });
  $("chat-input").addEventListener("paste", (event) => {
    const files = filesOf(event.clipboardData);
    if (!files.length) return;
    event.preventDefault();
    draftFiles(files);
  });
  $("attach").addEventListener("click", () => pickFileFor(null));
  $("draft-send").addEventListener("click", () => sendDraft());
  $("draft-cancel").addEventListener("click", () => clearDraft());
}
