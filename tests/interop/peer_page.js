// A minimal browser peer that follows docs/peer-protocol.md: roles from the server,
// perfect negotiation with rollback, trickle ICE, data channels both ways. Used
// by the interop tests until hubbub.js takes its place.
const params = new URLSearchParams(location.search);
const state = (window.peerState = {
  joined: false, userId: null, peers: {}, messages: {}, channels: {}, log: [],
});

function log(line) { state.log.push(line); }

async function main() {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 320, height: 240 }, audio: params.get("audio") === "1",
  });
  if (params.get("send") !== "1") stream.getTracks().forEach((t) => t.stop());
  const local = params.get("send") === "1" ? stream : null;
  const ws = new WebSocket(params.get("ws"));
  const send = (m) => ws.send(JSON.stringify(m));
  const signal = (to, value) => send({ type: "signal", targetUserId: to, signal: value });

  function peer(id, polite) {
    if (state.peers[id]) return state.peers[id];
    const pc = new RTCPeerConnection({ iceServers: [] });
    const p = { pc, polite, makingOffer: false, ignoreOffer: false, connected: false };
    state.peers[id] = p;
    if (local) local.getTracks().forEach((t) => pc.addTrack(t, local));
    else {
      pc.addTransceiver("video", { direction: "recvonly" });
    }
    pc.onicecandidate = ({ candidate }) =>
      signal(id, { type: "ice-candidate", candidate: candidate && candidate.toJSON() });
    pc.onnegotiationneeded = () => makeOffer(id);
    pc.onconnectionstatechange = () => {
      log(`${id}: ${pc.connectionState}`);
      p.connected = pc.connectionState === "connected";
    };
    pc.ontrack = ({ track, streams }) => {
      let video = document.getElementById("video-" + id);
      if (!video) {
        video = document.createElement("video");
        video.id = "video-" + id; video.autoplay = true; video.muted = true; video.playsInline = true;
        document.body.appendChild(video);
      }
      video.srcObject = streams[0] || new MediaStream([track]);
    };
    pc.ondatachannel = ({ channel }) => watch(id, channel);
    return p;
  }

  function watch(id, channel) {
    state.channels[channel.label] = channel;
    state.messages[channel.label] = state.messages[channel.label] || [];
    channel.onmessage = ({ data }) => {
      state.messages[channel.label].push(typeof data === "string" ? data : `<${data.byteLength || data.size} bytes>`);
      if (typeof data === "string" && data.startsWith("echo:")) channel.send("echoed:" + data.slice(5));
    };
  }

  async function makeOffer(id) {
    const p = state.peers[id];
    try {
      p.makingOffer = true;
      await p.pc.setLocalDescription();
      const description = p.pc.localDescription;
      if (description.type !== "offer") return;  // rolled back meanwhile
      log(`${id}: offer sent`);
      signal(id, { type: "offer", sdp: description.toJSON() });
    } catch (e) { log(`${id}: offer failed ${e}`); } finally { p.makingOffer = false; }
  }

  async function onSignal(from, value) {
    // a hidden member (a recorder) is in no list: its offer makes the peer
    const p = state.peers[from] || (value.type === "offer" ? peer(from, false) : null);
    if (!p) return;
    const pc = p.pc;
    try {
      if (value.type === "offer" || value.type === "answer") {
        const collision = value.type === "offer" && (p.makingOffer || pc.signalingState !== "stable");
        p.ignoreOffer = !p.polite && collision;
        if (p.ignoreOffer) { log(`${from}: ignored colliding offer`); return; }
        if (collision) log(`${from}: rolled back for their offer`);
        await pc.setRemoteDescription(value.sdp);  // rolls back implicitly when polite
        if (value.type === "offer") {
          await pc.setLocalDescription();
          signal(from, { type: "answer", sdp: pc.localDescription.toJSON() });
        }
      } else if (value.type === "ice-candidate") {
        try { await pc.addIceCandidate(value.candidate || null); }
        catch (e) { if (!p.ignoreOffer) throw e; }
      }
    } catch (e) { log(`${from}: signal failed ${e}`); }
  }

  window.openChannel = (id, label) => {
    const channel = state.peers[id].pc.createDataChannel(label);
    watch(id, channel);
    return new Promise((resolve) => { channel.onopen = () => resolve(true); });
  };
  window.offerNow = (id) => makeOffer(id);

  ws.onmessage = ({ data }) => {
    const m = JSON.parse(data);
    if (m.type === "user-joined" || m.type === "user-left") log(`${m.type} ${m.userId}`);
    if (m.type === "room-joined") {
      state.joined = true; state.userId = m.userId;
      for (const other of m.participants) {
        peer(other.userId, other.polite);
        // the newcomer waits for offers, unless asked to offer too (glare tests)
        if (params.get("offerOnJoin") === "1") makeOffer(other.userId);
      }
    } else if (m.type === "user-joined") {
      peer(m.userId, m.polite);
      if (!m.polite) makeOffer(m.userId);
    } else if (m.type === "user-left") {
      const p = state.peers[m.userId];
      if (p) { p.pc.close(); delete state.peers[m.userId]; }
    } else if (m.type === "signal") {
      onSignal(m.fromUserId, m.signal);
    }
  };
  ws.onopen = () => send({ type: "join-room", room: params.get("room"), userId: params.get("user") });
}
main().catch((e) => log("failed: " + e));
