"""A test page for calls through the media server: several hubbub.js rooms in one
Chromium page, each with the fake camera, each showing every stream it gets in a video
element whose frames are counted (requestVideoFrameCallback: frames painted, not only
decoded).

A tile's longest gap between two frames is counted less the longest stall of the page
itself in that time (no animation frame either: the renderer starved of CPU on a busy
machine), so that it measures the tile, not the machine."""

from __future__ import annotations

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>hubbub SFU test</title>
<style>video { width: 160px; height: 120px; }</style></head>
<body><script type="module">
import * as hubbub from "%(hub)s/hubbub.js";
window.HUB = "%(hub)s";
window.rooms = {};
window.frames = {};      // member -> other member -> frames painted
window.lastFrame = {};   // member -> other member -> when (performance.now())
window.gaps = {};        // member -> other member -> longest time without a frame (ms)
window.modes = {};       // member -> [media-mode, ...]
window.errors = [];
window.stalls = 0;       // the longest stall of the page itself (ms)

// The page's own clock: animation frames, the last 20 s of them.
const ticks = [];
const tick = (now) => {
  ticks.push(now);
  if (ticks.length > 1) stalls = Math.max(stalls, now - ticks[ticks.length - 2]);
  while (ticks.length && now - ticks[0] > 20000) ticks.shift();
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);

// The longest time between `from` and `to` when the page painted nothing at all.
function stallWithin(from, to) {
  let longest = 0;
  let previous = from;
  for (const at of ticks) {
    if (at <= from) continue;
    if (at > to) break;
    longest = Math.max(longest, at - previous);
    previous = at;
  }
  return Math.max(longest, to - previous);
}

function watch(name, participant, stream) {
  const video = document.createElement("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.srcObject = stream;
  video.dataset.member = name;
  video.dataset.of = participant.userId;
  document.body.append(video);
  const count = () => {
    if (!video.isConnected) return;
    const now = performance.now();
    const seen = frames[name];
    seen[participant.userId] = (seen[participant.userId] ?? 0) + 1;
    const last = lastFrame[name][participant.userId];
    if (last !== undefined) {
      const gap = now - last - stallWithin(last, now) + 17;
      gaps[name][participant.userId] = Math.max(gaps[name][participant.userId] ?? 0, gap);
    }
    lastFrame[name][participant.userId] = now;
    video.requestVideoFrameCallback(count);
  };
  video.requestVideoFrameCallback(count);
  return video;
}

window.enter = async (name, room, withCamera = true, size = [320, 240]) => {
  frames[name] = {};
  lastFrame[name] = {};
  gaps[name] = {};
  modes[name] = [];
  const stream = withCamera
    ? await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: size[0], height: size[1], frameRate: 15 },
      })
    : undefined;
  const joined = await hubbub.join(HUB, { room, userId: name, stream });
  rooms[name] = joined;
  const videos = new Map();
  joined.on("stream", ({ participant, stream }) => {
    // One tile per participant, as the web app has: a new stream takes its place.
    const video = videos.get(participant.userId) ?? watch(name, participant, stream);
    videos.set(participant.userId, video);
    video.srcObject = stream;
  });
  joined.on("participant-left", ({ participant }) => {
    videos.get(participant.userId)?.remove();
    videos.delete(participant.userId);
  });
  joined.on("media-mode", ({ mode, reason }) => modes[name].push(mode));
  joined.on("error", ({ error }) => errors.push(name + ": " + error.code));
  return joined.userId;
};

// Whether `name` paints frames of each of `others` now (a frame within the last `ms`).
window.live = (name, others, ms = 1500) => {
  const now = performance.now();
  return others.every((other) => now - (lastFrame[name]?.[other] ?? -1e9) < ms);
};
window.ready = true;
</script></body></html>
"""


def sfu_page(hub_url: str) -> str:
    return PAGE % {"hub": hub_url}
