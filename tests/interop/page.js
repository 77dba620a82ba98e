// One hubbub.js room per page, with what the interop tests look at: remote streams
// in <video id="video-USER">, app channel messages in `received`, peer states in `log`,
// peer connections made in `peerConnections`.
window.log = [];
window.received = {};
// how many RTCPeerConnections hubbub.js made (a polite page whose first offer
// collides answers on a fresh one)
window.peerConnections = 0;
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(...args) {
    super(...args);
    window.peerConnections += 1;
  }
};

// Every wait in the page has a deadline, and says what it waited for when it passes.
const within = (what, promise, ms = 20000) => {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms / 1000} s for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
};

window.enter = async (userId, { send = false, audio = false, offerAtOnce = false } = {}) => {
  const stream = send
    ? await within("the camera", navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio }))
    : undefined;
  // offerAtOnce: a newcomer offers at once instead of waiting for the others' offers
  const limits = offerAtOnce ? { firstOfferWaitMs: 0 } : {};
  const room = await within(`${userId} to join`, hubbub.join(HUB, { room: "x", userId, stream, limits }));
  window.room = room;
  room.on("stream", ({ participant, stream }) => {
    let video = document.getElementById("video-" + participant.userId);
    if (!video) {
      video = document.createElement("video");
      video.id = "video-" + participant.userId;
      video.autoplay = video.muted = video.playsInline = true;
      document.body.appendChild(video);
    }
    video.srcObject = stream;
  });
  room.on("peer-state", ({ participant, state }) => log.push(`${participant.userId}: ${state}`));
  room.on("participant-joined", ({ participant }) => log.push(`joined ${participant.userId}`));
  room.on("channel", ({ channel }) => watch(channel));
  return room.userId;
};

window.watch = (channel) => {
  received[channel.label] = received[channel.label] || [];
  channel.on("message", ({ from, data }) => {
    received[channel.label].push(data);
    if (typeof data === "string" && data.startsWith("echo:")) channel.sendTo(from, "echoed:" + data.slice(5));
  });
  return channel;
};

window.connectedTo = (userId) => log.includes(`${userId}: connected`);
