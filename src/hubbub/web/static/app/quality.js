// quality.js: how well each peer connection does, from getStats(): the round trip,
// the share of packets lost and the bitrate received, and whether it goes through a
// relay (TURN) because no direct path was found. Shown as bars on each tile.

/** Above either of these, a connection is fair; above twice as much, poor. */
export const FAIR_LOSS_PERCENT = 2;
export const FAIR_ROUND_TRIP_MS = 250;

/**
 * What one getStats() report says, against the previous one (null the first time):
 * `{roundTripMs, lossPercent, kbps, relay, level}`, level `good`, `fair`, `poor`, or
 * null while nothing was measured yet. Plain data in and out: a test feeds it reports.
 */
export function summarize(report, previous = null, now = performance.now()) {
  const stats = [...report.values()];
  const byId = new Map(stats.map((entry) => [entry.id, entry]));
  const transport = stats.find((entry) => entry.type === "transport" && entry.selectedCandidatePairId);
  const pair =
    byId.get(transport?.selectedCandidatePairId) ??
    stats.find((entry) => entry.type === "candidate-pair" && entry.nominated && entry.state === "succeeded");
  const local = byId.get(pair?.localCandidateId);
  const remote = byId.get(pair?.remoteCandidateId);
  const relay = local?.candidateType === "relay" || remote?.candidateType === "relay";
  let received = 0;
  let lost = 0;
  let bytes = 0;
  for (const entry of stats) {
    if (entry.type !== "inbound-rtp") continue;
    received += entry.packetsReceived ?? 0;
    lost += Math.max(0, entry.packetsLost ?? 0);
    bytes += entry.bytesReceived ?? 0;
  }
  const counters = { received, lost, bytes, at: now };
  const roundTripMs = typeof pair?.currentRoundTripTime === "number" ? pair.currentRoundTripTime * 1000 : null;
  let lossPercent = null;
  let kbps = null;
  if (previous?.counters) {
    const sent = received - previous.counters.received + (lost - previous.counters.lost);
    if (sent > 0) lossPercent = (100 * Math.max(0, lost - previous.counters.lost)) / sent;
    const seconds = (now - previous.counters.at) / 1000;
    if (seconds > 0) kbps = (8 * Math.max(0, bytes - previous.counters.bytes)) / 1000 / seconds;
  }
  return { roundTripMs, lossPercent, kbps, relay, level: levelOf(roundTripMs, lossPercent), counters };
}

function levelOf(roundTripMs, lossPercent) {
  if (roundTripMs === null && lossPercent === null) return null;
  const loss = lossPercent ?? 0;
  const trip = roundTripMs ?? 0;
  if (loss > 2 * FAIR_LOSS_PERCENT || trip > 2 * FAIR_ROUND_TRIP_MS) return "poor";
  if (loss > FAIR_LOSS_PERCENT || trip > FAIR_ROUND_TRIP_MS) return "fair";
  return "good";
}

const LEVEL_WORDS = { good: "good", fair: "fair", poor: "poor" };

/** The words a screen reader (and the tooltip) says for a summary. */
export function describe(summary) {
  const parts = [`Connection: ${LEVEL_WORDS[summary.level] ?? "measuring"}`];
  if (summary.roundTripMs !== null) parts.push(`${Math.round(summary.roundTripMs)} ms round trip`);
  if (summary.lossPercent !== null) parts.push(`${summary.lossPercent.toFixed(summary.lossPercent < 10 ? 1 : 0)}% lost`);
  if (summary.kbps !== null) {
    parts.push(summary.kbps >= 1000 ? `${(summary.kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(summary.kbps)} kbit/s`);
  }
  if (summary.relay) parts.push("through a relay");
  return parts.join(" · ");
}
