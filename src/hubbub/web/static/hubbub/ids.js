// ids.js: random identifiers (a chat message's clientId, a file transfer's id).

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `length` random characters from [a-z0-9]. */
export function randomId(length = 16) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => ALPHABET[b % 36]).join("");
}
