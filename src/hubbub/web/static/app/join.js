// join.js: the web app's join screen: room and name, camera and microphone, joining.

import { join } from "../hubbub.js";
import { ERROR_CODES } from "../protocol.js";
import { startCall } from "./call.js";
import { $, avatar, colorFor, initials, randomRoomName, serverUrl, showMessage } from "./helpers.js";
import { mediaErrorText, openMedia, setPreviewStream } from "./media.js";
import { state } from "./state.js";

const ERROR_TEXT = {
  [ERROR_CODES.USER_ID_TAKEN]: (name) => `Someone called “${name}” is already in this room. Pick another name.`,
  [ERROR_CODES.ROOM_FULL]: () => "This room is full.",
  [ERROR_CODES.TOO_LARGE]: () => "That room name or display name is too long.",
  [ERROR_CODES.BAD_MESSAGE]: () => "Room and name cannot be empty or hold control characters.",
  unreachable: () => "Cannot reach the hubbub server. Check that it is running and that you are online, then try again.",
  timeout: () => "The server did not answer in time. Try again.",
  closed: () => "The server closed the connection. Try again.",
};

export function setupJoinScreen() {
  const params = new URLSearchParams(location.search);
  $("room-input").value = params.get("room") || randomRoomName();
  $("name-input").value = params.get("name") || localStorage.getItem("hubbub.name") || "";
  updatePreviewAvatar();
  $("name-input").addEventListener("input", updatePreviewAvatar);

  $("preview-mic").addEventListener("click", async () => {
    state.wantMic = !state.wantMic;
    if (state.wantMic && !state.stream?.getAudioTracks().length) {
      try {
        const audio = await openMedia({ audio: true, video: false });
        const stream = state.stream ?? new MediaStream();
        stream.addTrack(audio.getAudioTracks()[0]);
        setPreviewStream(stream);
        return;
      } catch (error) {
        state.wantMic = false;
        showMessage("media-message", mediaErrorText(error));
      }
    }
    for (const track of state.stream?.getAudioTracks() ?? []) track.enabled = state.wantMic;
    $("preview-mic").setAttribute("aria-pressed", String(state.wantMic));
  });

  $("preview-camera").addEventListener("click", async () => {
    if (state.wantCamera) {
      for (const track of state.stream?.getVideoTracks() ?? []) {
        track.stop();
        state.stream.removeTrack(track);
      }
      state.wantCamera = false;
      setPreviewStream(state.stream);
      return;
    }
    try {
      const video = await openMedia({ audio: false, video: true });
      const stream = state.stream ?? new MediaStream();
      stream.addTrack(video.getVideoTracks()[0]);
      state.wantCamera = true;
      showMessage("media-message", "");
      // A new MediaStream object, so the <video> picks up the new track at once.
      setPreviewStream(new MediaStream(stream.getTracks()));
    } catch (error) {
      showMessage("media-message", mediaErrorText(error));
    }
  });

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    enterRoom();
  });
}

function updatePreviewAvatar() {
  const name = $("name-input").value.trim() || "?";
  const node = $("preview-avatar");
  node.textContent = initials(name);
  node.style.setProperty("--avatar", colorFor(name));
}

export async function enterRoom() {
  const roomInput = $("room-input");
  const nameInput = $("name-input");
  const roomName = roomInput.value.trim();
  const name = nameInput.value.trim();
  roomInput.setAttribute("aria-invalid", String(!roomName));
  nameInput.setAttribute("aria-invalid", String(!name));
  if (!roomName || !name) {
    showMessage("join-error", !roomName ? "Give the room a name." : "Tell the others your name.");
    (!roomName ? roomInput : nameInput).focus();
    return;
  }
  showMessage("join-error", "");
  const button = $("join-button");
  button.disabled = true;
  button.classList.add("busy");
  button.querySelector(".button-label").textContent = "Joining";
  localStorage.setItem("hubbub.name", name);
  // The camera may still be opening (or its permission prompt still open): give it a
  // moment, so the call starts with it rather than without.
  await Promise.race([state.previewReady, new Promise((resolve) => setTimeout(resolve, 8000))]);
  const stream = state.stream ?? new MediaStream();
  try {
    const room = await join(serverUrl(), { room: roomName, userId: name, stream });
    state.stream = stream;
    startCall(room);
  } catch (error) {
    const text = ERROR_TEXT[error.code]?.(name) ?? `The server refused: ${error.message}`;
    showMessage("join-error", text);
    if (error.code === ERROR_CODES.USER_ID_TAKEN) {
      nameInput.setAttribute("aria-invalid", "true");
      nameInput.focus();
      nameInput.select();
    }
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
    button.querySelector(".button-label").textContent = "Join room";
  }
}
