// devices.js: cameras, microphones and speakers. The pickers on the join screen and
// in the call, what was picked remembered for next time (in this browser), and the
// switch between a phone's front and back cameras.

import { $, el, toast } from "./helpers.js";
import { state } from "./state.js";

const KEY = "hubbub.devices";

// Every member sends its camera to every other (a mesh): 540p keeps that affordable.
export const CAMERA = { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 24 } };
const MICROPHONE = { echoCancellation: true, noiseSuppression: true };

const KINDS = {
  camera: { deviceKind: "videoinput", none: "No camera found", fallback: "Camera" },
  microphone: { deviceKind: "audioinput", none: "No microphone found", fallback: "Microphone" },
  speaker: { deviceKind: "audiooutput", none: "Default speaker", fallback: "Speaker" },
};

/** Whether the page can choose where sound plays (`setSinkId`). */
export const speakerChoice = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;

/** The devices picked before, by kind: `{camera, microphone, speaker}` device ids. */
export function picked() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) ?? {};
  } catch {
    return {};
  }
}

function remember(kind, deviceId) {
  localStorage.setItem(KEY, JSON.stringify({ ...picked(), [kind]: deviceId }));
}

// `exact`: the browser would otherwise keep a camera it has open, or prefer one whose
// size fits better. A device unplugged since is forgotten (see withPicked).
export function cameraConstraints() {
  const id = picked().camera;
  return id ? { ...CAMERA, deviceId: { exact: id } } : CAMERA;
}

export function microphoneConstraints() {
  const id = picked().microphone;
  return id ? { ...MICROPHONE, deviceId: { exact: id } } : MICROPHONE;
}

/**
 * Run `open` (which opens devices with the constraints above); when a device picked
 * before is gone (unplugged, another machine), forget it and open the default one.
 */
export async function withPicked(open) {
  try {
    return await open();
  } catch (error) {
    if (error?.name !== "OverconstrainedError" && error?.name !== "NotFoundError") throw error;
    const { camera, microphone } = picked();
    if (!camera && !microphone) throw error;
    const kept = picked();
    delete kept.camera;
    delete kept.microphone;
    localStorage.setItem(KEY, JSON.stringify(kept));
    return open();
  }
}

/** The device a stream uses for `kind` now, or the one picked before. */
function currentId(kind, stream) {
  const track = kind === "camera" ? stream?.getVideoTracks()[0] : kind === "microphone" ? stream?.getAudioTracks()[0] : null;
  return (track?.readyState === "live" && track.getSettings?.().deviceId) || picked()[kind] || "";
}

async function listDevices() {
  try {
    return (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
  } catch {
    return [];
  }
}

/** How many cameras this device has (0 before the browser lets the page know). */
export async function cameraCount() {
  return (await listDevices()).filter((device) => device.kind === "videoinput").length;
}

/**
 * Fill a set of pickers (`{camera, microphone, speaker}`: <select> elements) with the
 * devices there are, the one in use selected. Device names show once the browser has
 * given the page a camera or microphone.
 */
export async function fillPickers(selects, stream) {
  const devices = await listDevices();
  for (const [kind, select] of Object.entries(selects)) {
    if (!select) continue;
    const { deviceKind, none, fallback } = KINDS[kind];
    const found = devices.filter((device) => device.kind === deviceKind && device.deviceId);
    const options = found.map((device, index) =>
      el("option", { value: device.deviceId }, device.label || `${fallback} ${index + 1}`),
    );
    if (kind === "speaker" && !found.some((device) => device.deviceId === "default")) {
      options.unshift(el("option", { value: "" }, "Default speaker"));
    }
    if (!options.length) options.push(el("option", { value: "" }, none));
    select.replaceChildren(...options);
    select.disabled = found.length === 0;
    const current = currentId(kind, stream);
    if ([...select.options].some((option) => option.value === current)) select.value = current;
    select.closest(".picker").hidden = kind === "speaker" && !speakerChoice;
  }
}

/** Play sound from every participant on the speaker picked (where the browser lets a page choose). */
export async function applySpeaker(audio) {
  const id = picked().speaker;
  if (!speakerChoice || !id || audio.sinkId === id) return;
  try {
    await audio.setSinkId(id);
  } catch {
    // An unplugged speaker: the default one plays.
  }
}

/**
 * Remember a pick and act on it. `use` opens the new camera or microphone where it is
 * needed (the preview, or the call); the speaker applies to every sound playing.
 */
export async function pickDevice(kind, deviceId, use) {
  remember(kind, deviceId);
  try {
    if (kind === "speaker") {
      for (const audio of state.audio.values()) await applySpeaker(audio);
    } else {
      await use(kind);
    }
  } catch (error) {
    toast(`That ${kind} could not be opened (${error.name ?? error.message}).`, 6000);
  }
}

/** The next camera after the one in use: front to back and back again, on a phone. */
export async function nextCamera(stream) {
  const cameras = (await listDevices()).filter((device) => device.kind === "videoinput" && device.deviceId);
  if (cameras.length < 2) return null;
  const current = currentId("camera", stream);
  const index = cameras.findIndex((device) => device.deviceId === current);
  return cameras[(index + 1) % cameras.length].deviceId;
}

/** Whether to offer the front/back switch: a touch screen with more than one camera. */
export async function offersCameraSwitch() {
  const touch = navigator.maxTouchPoints > 0 || matchMedia("(pointer: coarse)").matches;
  return touch && (await cameraCount()) > 1;
}

export function pickersIn(prefix) {
  return { camera: $(`${prefix}-camera`), microphone: $(`${prefix}-microphone`), speaker: $(`${prefix}-speaker`) };
}

/** In the call: front to back camera and back again (a phone). */
export async function switchToNextCamera() {
  const room = state.room;
  const next = await nextCamera(room?.localStream);
  if (!room || !next) return;
  await pickDevice("camera", next, () => room.switchCamera(cameraConstraints()));
}
