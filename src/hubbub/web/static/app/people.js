// people.js: the web app's list of people, in the room and gone offline.

import { pickFileFor } from "./files.js";
import { $, avatar, el, formatTime, icon } from "./helpers.js";
import { state } from "./state.js";
import { nameOf } from "./tiles.js";

// Someone in the room now: in the list of people here (the list of those gone may
// hold the same user id, from before they came back).
function personHere(userId) {
  return $("people").querySelector(`.person[data-user="${CSS.escape(userId)}"]`);
}

export function addPerson(userId, { local = false } = {}) {
  if (personHere(userId)) return;
  const name = nameOf(userId);
  const sendButton = local
    ? null
    : el(
        "button",
        {
          type: "button",
          class: "icon-button send-file",
          "aria-label": `Send a file to ${name}`,
          title: `Send a file to ${name}`,
          onclick: () => pickFileFor(userId),
        },
        icon("clip"),
      );
  const item = el(
    "li",
    { class: "person", dataset: { user: userId } },
    el(
      "span",
      { class: "avatar-wrap" },
      avatar(name),
      el("span", { class: "presence", dataset: { status: local ? "online" : "connecting" }, role: "img", "aria-label": local ? "online" : "connecting" }),
    ),
    el(
      "span",
      { class: "person-text" },
      el("span", { class: "person-name" }, local ? `${name} (you)` : name),
      el("span", { class: "person-state" }),
    ),
    el("span", { class: "person-media" }),
    sendButton,
  );
  const list = $("people");
  if (local) list.prepend(item);
  else list.append(item);
  updateCounts();
}

export function removePerson(userId) {
  personHere(userId)?.remove();
  updateCounts();
}

export function updatePerson(participant) {
  const item = personHere(participant.userId);
  if (!item) return;
  const connected =
    participant.local || participant.connectionState === "connected" || state.room?.mediaMode === "sfu";
  const status = connected ? participant.status || "online" : participant.connectionState === "closed" ? "offline" : "connecting";
  const dot = item.querySelector(".presence");
  dot.dataset.status = status;
  dot.setAttribute("aria-label", status);
  const words = [];
  if (participant.connection === "reconnecting") words.push("reconnecting…");
  else if (!connected) words.push("connecting…");
  else if (status !== "online") words.push(status);
  if (participant.grants && !participant.grants.includes("publish")) words.push("watching");
  if (participant.media?.screen) words.push("sharing screen");
  if (state.typing.has(participant.userId)) words.push("typing…");
  item.querySelector(".person-state").textContent = words.join(" · ");
  const media = item.querySelector(".person-media");
  media.replaceChildren(
    icon(participant.media?.audio ? "mic" : "mic-off", participant.media?.audio ? "" : "off"),
    icon(participant.media?.video ? "video" : "video-off", participant.media?.video ? "" : "off"),
  );
  media.setAttribute(
    "aria-label",
    `microphone ${participant.media?.audio ? "on" : "off"}, camera ${participant.media?.video ? "on" : "off"}`,
  );
  media.setAttribute("role", "img");
}

// Who chatted here and is gone, with when they were last seen.
export function renderOffline(room) {
  const here = new Set([room.userId, ...room.participants.keys()]);
  const gone = room.offline.filter((entry) => !here.has(entry.userId));
  $("offline-heading").hidden = $("offline-people").hidden = gone.length === 0;
  $("offline-people").replaceChildren(
    ...gone.map(({ userId, lastSeen }) =>
      el(
        "li",
        { class: "person", dataset: { user: userId, offline: "true" } },
        el(
          "span",
          { class: "avatar-wrap" },
          avatar(userId),
          el("span", { class: "presence", dataset: { status: "offline" }, role: "img", "aria-label": "offline" }),
        ),
        el(
          "span",
          { class: "person-text" },
          el("span", { class: "person-name" }, userId),
          el("span", { class: "person-state" }, lastSeen ? `last seen ${formatLastSeen(lastSeen)}` : "offline"),
        ),
      ),
    ),
  );
}

function formatLastSeen(ts) {
  const date = new Date(ts);
  const today = new Date().toDateString() === date.toDateString();
  return today ? `at ${formatTime(ts)}` : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

export function updateCounts() {
  const count = $("people").children.length;
  $("people-badge").textContent = String(count);
  $("people-count").textContent = count === 1 ? "just you" : `${count} people`;
}
