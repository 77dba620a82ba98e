// media.js: the web app's camera and microphone before the call: the preview, its
// level meter, and what to say when the browser refuses them.

import { cameraConstraints, fillPickers, microphoneConstraints, offersCameraSwitch, pickersIn, withPicked } from "./devices.js";
import { $, showMessage } from "./helpers.js";
import { state } from "./state.js";

const MEDIA_ERROR_TEXT = {
  NotAllowedError:
    "Camera and microphone are blocked for this site. You can join without them, or allow them in the browser's site settings and reload.",
  SecurityError:
    "Camera and microphone are blocked for this site. You can join without them, or allow them in the browser's site settings and reload.",
  NotFoundError: "No camera or microphone was found. You can still join, chat and share files.",
  NotReadableError: "The camera or microphone is in use by another app. Close it and turn the camera on again.",
  OverconstrainedError: "The camera cannot give the requested picture; try another camera.",
  insecure:
    "The browser offers the camera only to secure pages: open this page over https:// (or on localhost). You can still join, chat and share files.",
};

export async function openMedia({ audio, video }) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const error = new Error("insecure");
    error.name = "insecure";
    throw error;
  }
  return withPicked(() =>
    navigator.mediaDevices.getUserMedia({
      audio: audio ? microphoneConstraints() : false,
      video: video ? cameraConstraints() : false,
    }),
  );
}

export function mediaErrorText(error) {
  return MEDIA_ERROR_TEXT[error?.name] ?? `The camera could not be opened (${error?.name ?? "unknown error"}).`;
}

// Ask for camera and microphone; with the camera refused or missing, try the microphone alone.
export async function startPreview() {
  showMessage("media-message", "");
  let stream = null;
  if (!state.wantMic && !state.wantCamera) {
    setPreviewStream(null);
    return;
  }
  try {
    stream = await openMedia({ audio: state.wantMic, video: state.wantCamera });
  } catch (error) {
    showMessage("media-message", mediaErrorText(error));
    if (state.wantCamera && error.name !== "insecure") {
      try {
        stream = await openMedia({ audio: true, video: false });
      } catch {
        stream = null;
      }
    }
    state.wantCamera = false;
    if (!stream) state.wantMic = false;
  }
  setPreviewStream(stream);
}

export function setPreviewStream(stream) {
  state.stream = stream;
  const video = $("preview-video");
  video.srcObject = stream;
  const hasVideo = Boolean(stream?.getVideoTracks().length);
  $("preview-off").hidden = hasVideo;
  for (const track of stream?.getAudioTracks() ?? []) track.enabled = state.wantMic;
  state.wantMic = state.wantMic && Boolean(stream?.getAudioTracks().length);
  state.wantCamera = hasVideo;
  $("preview-mic").setAttribute("aria-pressed", String(state.wantMic));
  $("preview-camera").setAttribute("aria-pressed", String(state.wantCamera));
  startMeter(stream, (level) => {
    $("preview-level").style.height = `${Math.round(level * 100)}%`;
  });
  fillPickers(pickersIn("join"), stream);
  offersCameraSwitch().then((offered) => {
    $("preview-flip").hidden = !offered || !hasVideo;
  });
}

/** The preview opens another camera or microphone (the one just picked). */
export async function reopenPreview(kind) {
  const stream = state.stream ?? new MediaStream();
  const video = kind === "camera";
  if (video ? !state.wantCamera : !state.wantMic) return;
  const old = video ? stream.getVideoTracks() : stream.getAudioTracks();
  for (const track of old) {
    track.stop();
    stream.removeTrack(track);
  }
  const opened = await openMedia({ audio: !video, video });
  stream.addTrack(opened.getTracks()[0]);
  // A new MediaStream object, so the <video> picks up the new track at once.
  setPreviewStream(new MediaStream(stream.getTracks()));
}

// A level meter for the local microphone (remote levels come from hubbub.js).
export function startMeter(stream, onLevel) {
  stopMeter();
  const track = stream?.getAudioTracks()[0];
  if (!track || !window.AudioContext) return;
  const context = new AudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    const level = track.enabled ? Math.min(1, Math.sqrt(sum / samples.length) * 4) : 0;
    onLevel(level);
  }, 100);
  state.meter = { context, timer, level: 0 };
}

export function stopMeter() {
  if (!state.meter) return;
  clearInterval(state.meter.timer);
  state.meter.context.close().catch(() => {});
  state.meter = null;
}
