// The ConferenceClient class of the seed document, verbatim but for its URL
// (SIGNALING_URL, defined by the page that loads this file).
class ConferenceClient {
constructor(roomId, userId) {
this.roomId = roomId;
this.userId = userId;
this.peers = new Map();
this.ws = new WebSocket(SIGNALING_URL);
this.localStream = null;
this.initialize();
}
async initialize() {
this.localStream = await navigator.mediaDevices.getUserMedia({
video: true,
audio: true,
});
this.ws.onopen = () => {
this.ws.send(JSON.stringify({
type: 'join-room',
room: this.roomId,
userId: this.userId,
}));
};
this.ws.onmessage = async (event) => {
const data = JSON.parse(event.data);
switch (data.type) {
case 'user-joined':
await this.createPeer(data.userId, true);
break;
case 'signal':
await this.handleSignal(data.fromUserId, data.signal);
break;
case 'chat':
this.displayChat(data.userId, data.message);
break;
case 'user-left':
this.removePeer(data.userId);
break;
}
};
this.ws.onerror = (err) => console.error('Signaling error:', err);
}
async createPeer(peerId, createOffer) {
const pc = new RTCPeerConnection({
iceServers: [{ urls: 'stun:stun.l.google.com:19302' }],
});
this.peers.set(peerId, pc);
this.localStream.getTracks().forEach((track) => {
pc.addTrack(track, this.localStream);
});
pc.ontrack = (event) => {
this.displayRemoteStream(peerId, event.streams[0]);
};
pc.onicecandidate = (event) => {
if (event.candidate) {
this.sendSignal(peerId, {
type: 'ice-candidate',
candidate: event.candidate,
});
}
};
if (createOffer) {
const offer = await pc.createOffer();
await pc.setLocalDescription(offer);
this.sendSignal(peerId, { type: 'offer', sdp: offer });
}
}
async handleSignal(fromId, signal) {
let pc = this.peers.get(fromId);
if (!pc) {
await this.createPeer(fromId, false);
pc = this.peers.get(fromId);
}
if (signal.type === 'offer') {
await pc.setRemoteDescription(signal.sdp);
const answer = await pc.createAnswer();
await pc.setLocalDescription(answer);
this.sendSignal(fromId, { type: 'answer', sdp: answer });
} else if (signal.type === 'answer') {
await pc.setRemoteDescription(signal.sdp);
} else if (signal.type === 'ice-candidate') {
await pc.addIceCandidate(signal.candidate);
}
}
sendSignal(targetUserId, signal) {
this.ws.send(JSON.stringify({
type: 'signal',
targetUserId,
signal,
}));
}
// Chat goes through WebSocket, not WebRTC
sendChat(message) {
this.ws.send(JSON.stringify({ type: 'chat', message }));
}
removePeer(peerId) {
const pc = this.peers.get(peerId);
if (pc) {
pc.close();
this.peers.delete(peerId);
}
}
}
