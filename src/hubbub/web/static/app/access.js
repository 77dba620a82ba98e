// access.js: how this page gets into a room. In open mode anyone picks a name. In
// token mode (docs/security.md#the-web-app-in-token-mode) it needs an access token:
// from an invite link, which carries it after "#" (a browser never sends that part to
// a server, so no log holds it), or from the site's token endpoint, asked with the
// page's cookies, so a site can put the web app behind its own sign-in.

const INVITE_KEY = "hubbub.invite";

export const access = {
  auth: "open", // or "token"
  tokenEndpoint: null, // the site's URL that gives tokens, in token mode
  invite: null, // the token an invite link brought, kept for this tab
};

/** What the server says about joining (GET api/web-app), and the invite this page came with. */
export async function loadAccess() {
  try {
    const response = await fetch(new URL("api/web-app", location.href), { cache: "no-store" });
    if (response.ok) {
      const answer = await response.json();
      access.auth = answer.auth === "token" ? "token" : "open";
      access.tokenEndpoint = typeof answer.tokenEndpoint === "string" ? answer.tokenEndpoint : null;
    }
  } catch {
    // An older server, or none: the join says what is wrong.
  }
  access.invite = takeInvite();
  return access;
}

// The token of an invite link (#token=...): kept for this tab, so a reload still
// joins, and taken out of the address bar, so it is not shared by copying the URL.
function takeInvite() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    sessionStorage.setItem(INVITE_KEY, token);
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
    return token;
  }
  return sessionStorage.getItem(INVITE_KEY);
}

export function tokenMode() {
  return access.auth === "token";
}

/** What a token says of its holder (not checked here: the server checks it): `{sub, name, rooms, exp}`, or null. */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (!claims || typeof claims.sub !== "string") return null;
    return {
      sub: claims.sub,
      name: typeof claims.name === "string" && claims.name ? claims.name : claims.sub,
      rooms: Array.isArray(claims.rooms) ? claims.rooms : [claims.rooms].filter(Boolean),
      exp: typeof claims.exp === "number" ? claims.exp : null,
    };
  } catch {
    return null;
  }
}

/** The one room a token names (not a prefix), or null. */
export function roomOf(claims) {
  const rooms = claims?.rooms ?? [];
  return rooms.length === 1 && !String(rooms[0]).endsWith("*") ? String(rooms[0]) : null;
}

/** A refusal of the token endpoint: `signed-out` (with the sign-in page, when the site gave one) or `token-endpoint`. */
export class AccessError extends Error {
  constructor(code, message, login = null) {
    super(message);
    this.name = "AccessError";
    this.code = code;
    this.login = login;
  }
}

/** A fresh token for `room` from the site's token endpoint, asked with the page's cookies. */
export async function fetchToken(room) {
  const url = new URL(access.tokenEndpoint, location.href);
  url.searchParams.set("room", room);
  let response;
  try {
    response = await fetch(url, { credentials: "include", cache: "no-store", headers: { Accept: "application/json" } });
  } catch {
    throw new AccessError("token-endpoint", `The site that gives access (${url.origin}) cannot be reached.`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok && typeof body?.token === "string") return body.token;
  if (response.status === 401 || response.status === 403) {
    throw new AccessError("signed-out", "Sign in to join this call.", signInPage(body?.login, url));
  }
  throw new AccessError("token-endpoint", `The site that gives access answered ${response.status}.`);
}

// The sign-in page the endpoint named: an http(s) URL only (never javascript:).
function signInPage(given, base) {
  if (typeof given !== "string") return null;
  try {
    const url = new URL(given, base);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * What `join()` takes as `token` for `room`: the invite's token, or a function that
 * asks the endpoint for a fresh one on every join and rejoin; null in open mode.
 */
export function tokenFor(room) {
  if (!tokenMode()) return null;
  if (access.invite) return access.invite;
  if (access.tokenEndpoint) return () => fetchToken(room);
  return null;
}

/** Whether this page can join without asking anyone for more (in token mode: it holds a way to a token). */
export function canJoin() {
  return !tokenMode() || Boolean(access.invite || access.tokenEndpoint);
}

/** Whether others can join with the room's plain link (not so when each needs an invite of their own). */
export function roomLinkAdmits() {
  return !tokenMode() || Boolean(access.tokenEndpoint);
}
