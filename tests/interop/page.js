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

window.enter = async (userId, { send = false, audio = false, offerAtOnce = false } = {}) => {
  const stream = send
    ? await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio })
    : undefined;
  // offerAtOnce: a newcomer offers at once instead of waiting for the others' offers
  const limits = offerAtOnce ? { firstOfferWaitMs: 0 } : {};
  const room = await hubbub.join(HUB, { room: "x", userId, stream, limits });
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
