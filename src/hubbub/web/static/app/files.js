// files.js: the web app's file transfers, one card each in the chat.

import { appendToLog, noteUnread } from "./chat.js";
import { selectTab } from "./controls.js";
import { $, el, formatBytes, icon, toast } from "./helpers.js";
import { state } from "./state.js";
import { nameOf } from "./tiles.js";

let fileTarget = null; // whom the file input's choice goes to

export function pickFileFor(userId) {
  fileTarget = userId;
  const input = $("file-input");
  input.value = "";
  input.click();
}

// What the file input gives goes to whom its button was for.
export function sendPickedFiles(files) {
  if (fileTarget && state.room) sendFiles(fileTarget, files);
  fileTarget = null;
}

function sendFiles(userId, files) {
  selectTab("chat"); // where the transfer shows
  for (const file of files) {
    try {
      const transfer = state.room.sendFile(userId, file);
      fileCard(transfer);
    } catch (error) {
      toast(`Could not send ${file.name}: ${error.message}`);
    }
  }
}

export function fileCard(transfer) {
  const incoming = transfer.direction === "receive";
  const peerName = nameOf(transfer.userId);
  const progress = el("progress", { max: String(Math.max(1, transfer.size)), value: "0", "aria-label": `${transfer.name}: progress` });
  const status = el("div", { class: "file-status", "aria-live": "polite" });
  const actions = el("div", { class: "file-actions" });
  const detail = el(
    "div",
    { class: "file-detail" },
    `${formatBytes(transfer.size)} · ${incoming ? "from" : "to"} ${nameOf(transfer.userId)}`,
  );
  const card = el(
    "li",
    { class: "file-card", dataset: { transfer: transfer.id, direction: transfer.direction, state: transfer.state } },
    icon("file", "file-icon"),
    el("div", { class: "file-name", title: transfer.name }, transfer.name),
    detail,
    progress,
    status,
    actions,
  );
  const button = (label, onclick, extra = "") =>
    el("button", { type: "button", class: `ghost-button ${extra}`.trim(), onclick }, label);

  let lastBytes = 0;
  let lastAt = performance.now();
  let rate = 0;
  const render = () => {
    card.dataset.state = transfer.state;
    progress.value = transfer.bytes;
    progress.setAttribute("value", String(transfer.bytes));
    const percent = transfer.size ? Math.floor((transfer.bytes / transfer.size) * 100) : 100;
    switch (transfer.state) {
      case "offered":
        status.textContent = incoming ? `${peerName} wants to send you this file.` : `Waiting for ${peerName} to accept…`;
        break;
      case "transferring": {
        const now = performance.now();
        if (now - lastAt > 400) {
          rate = ((transfer.bytes - lastBytes) / (now - lastAt)) * 1000;
          lastBytes = transfer.bytes;
          lastAt = now;
        }
        status.textContent = `${percent}% · ${formatBytes(transfer.bytes)} of ${formatBytes(transfer.size)}${rate > 0 ? ` · ${formatBytes(rate)}/s` : ""}`;
        break;
      }
      case "verifying":
        status.textContent = "Checking the file…";
        break;
      case "done":
        status.textContent = incoming ? "Received and verified (SHA-256)." : `Delivered to ${peerName} and verified.`;
        break;
      case "rejected":
        status.textContent = incoming ? "Declined." : `${peerName} declined the file.`;
        break;
      case "cancelled":
        status.textContent = `Cancelled${transfer.error && transfer.error !== "cancelled" ? `: ${transfer.error}` : "."}`;
        break;
      default:
        status.textContent = `Failed: ${transfer.error ?? "unknown error"}.`;
    }
    const buttons = [];
    if (incoming && transfer.state === "offered") {
      buttons.push(
        button("Accept", () => transfer.accept(), "small-primary accept-file"),
        button("Decline", () => transfer.reject(), "decline-file"),
      );
    } else if (["offered", "transferring"].includes(transfer.state)) {
      buttons.push(button("Cancel", () => transfer.cancel(), "cancel-file"));
    } else if (incoming && transfer.state === "done" && transfer.blob) {
      const link = el(
        "a",
        { class: "ghost-button small-primary save-file", href: URL.createObjectURL(transfer.blob), download: transfer.name },
        icon("download"),
        "Save",
      );
      buttons.push(link);
    }
    const current = [...actions.children].map((node) => node.className).join("|");
    const next = buttons.map((node) => node.className).join("|");
    if (current !== next) actions.replaceChildren(...buttons);
  };
  transfer.on("progress", render);
  transfer.on("state", render);
  render();
  appendToLog(card);
  state.lastSender = null;
  if (incoming) {
    noteUnread();
    toast(`${peerName} wants to send you ${transfer.name}`);
  }
}
