// One websocket per page to /ws/console/, multiplexing every live topic the page needs (docs/console.md).
//
//   Live.subscribe(["pnl", "positions"], (topic, data, update) => { ... })   // data = the topic's latest state
//
// - The server sends a "snapshot" after each subscribe and then "batch" frames (<= 10 a second) holding the newest
//   state of every changed topic. Each frame has `frame`, +1 per frame on this socket: a missing one, or a topic
//   whose engine seq goes backwards (engine restart), makes the page subscribe again and reload the snapshot.
// - Reconnects with capped exponential backoff and re-subscribes (so it reloads the snapshot) on every connect.
// - Access is re-checked by the server on every heartbeat: a topic the user may no longer see comes back as error
//   TOPIC_REVOKED and is dropped here (never asked for again); a socket closed 4401 (signed out, session expired,
//   user deactivated) or 4403 (no role left) is not reopened: the page reloads, and the server answers with the
//   log-in page or a refusal instead of figures the user may no longer see.
// - Stale and down: the top indicator ages the console's own heartbeat (Celery beat -> worker -> Redis -> here);
//   the engine banner ages the engine's heartbeat topic on the server's clock (server_ts), so a wrong clock in
//   the browser cannot hide a dead engine. Elements with class "live-data" dim while the engine is stale or down.
const STALE_AFTER_MS = 6000;
const ENGINE_STALE_AFTER_S = 3;
const ENGINE_DOWN_AFTER_S = 10;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_NO_ROLE = 4403;

const indicator = document.getElementById("live-indicator");
const text = document.getElementById("live-text");
const wsState = document.getElementById("ws-state");
const wsAge = document.getElementById("ws-heartbeat-age");
const banner = document.getElementById("engine-banner");

const handlers = new Map(); // topic -> [callback]
const lastSeq = new Map(); // topic -> seq last delivered
const state = new Map(); // topic -> latest data
let socket = null;
let lastHeartbeat = null;
let retryMs = 500;
let lastFrame = 0;
let engineHeartbeat = null; // {engineTsS, firmState}
let resyncs = 0;

function show(stateName, label) {
  if (indicator) indicator.dataset.state = stateName;
  if (text) text.textContent = label;
  if (wsState) {
    wsState.textContent = stateName;
    wsState.className = "badge " + (stateName === "live" ? "ok" : stateName === "connecting" ? "unknown" : "down");
  }
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function allTopics() {
  return [...handlers.keys()];
}

function resubscribe(reason) {
  const topics = allTopics();
  if (!topics.length) return;
  resyncs += 1;
  document.body.dataset.liveResyncs = String(resyncs);
  document.body.dataset.liveResyncReason = reason;
  send({ type: "subscribe", topics });
}

function deliver(update, fromSnapshot) {
  const seen = lastSeq.get(update.topic);
  if (!fromSnapshot && seen !== undefined && update.seq < seen) {
    resubscribe(`seq of ${update.topic} went back from ${seen} to ${update.seq}`);
    return;
  }
  lastSeq.set(update.topic, update.seq);
  state.set(update.topic, update.data);
  if (update.topic === "heartbeat") noteEngineHeartbeat(update);
  for (const callback of handlers.get(update.topic) || []) {
    try { callback(update.topic, update.data, update); } catch (error) { console.error(error); }
  }
}

function onFrame(message) {
  if (message.type === "snapshot" || message.type === "batch") {
    const expected = lastFrame + 1;
    lastFrame = message.frame;
    serverOffsetS = message.server_ts - Date.now() / 1000;
    if (message.type === "batch" && message.frame !== expected) {
      resubscribe(`frame ${expected} missing (got ${message.frame})`);
      return;
    }
    for (const update of message.updates) deliver(update, message.type === "snapshot");
    if (message.type === "snapshot") {
      for (const topic of message.topics || []) if (!message.updates.some((u) => u.topic === topic)) {
        for (const callback of handlers.get(topic) || []) callback(topic, null, null); // nothing published yet
      }
      renderEngine();
    }
  } else if (message.type === "heartbeat") {
    lastHeartbeat = Date.now();
    document.body.dataset.lastHeartbeat = String(message.ts);
    render();
  } else if (message.type === "hello") {
    lastFrame = 0;
    resubscribe("connected");
  } else if (message.type === "error") {
    console.warn("live:", message.code, message.reason);
    if (message.code === "TOPIC_REVOKED") revoke((message.refused || []).map((r) => r.topic));
  }
}

// Topics the server stopped: forget them, so a later re-subscribe does not ask again (a refused subscribe is
// audited as a forged message), and reload so the page no longer shows what the user may not see.
function revoke(topics) {
  if (!topics.length) return;
  for (const topic of topics) {
    handlers.delete(topic);
    state.delete(topic);
    lastSeq.delete(topic);
  }
  document.body.dataset.liveRevoked = topics.join(" ");
  location.reload();
}

let serverOffsetS = 0; // server clock minus this browser's clock, seconds

function noteEngineHeartbeat(update) {
  const ts = update.data && update.data.ts ? Number(update.data.ts) : Number(update.ts);
  engineHeartbeat = { engineTsS: ts > 1e12 ? ts / 1e9 : ts, firmState: update.data ? update.data.firm_state : "" };
}

function engineAgeS() {
  if (!engineHeartbeat) return null;
  return Math.max(0, Date.now() / 1000 + serverOffsetS - engineHeartbeat.engineTsS);
}

function renderEngine() {
  if (!handlers.has("heartbeat")) return;
  const age = engineAgeS();
  let engineState = "live";
  let label = "";
  if (age === null) { engineState = "down"; label = "Engine down: no engine heartbeat has been published."; }
  else if (age > ENGINE_DOWN_AFTER_S) { engineState = "down"; label = `Engine down: no heartbeat for ${formatAge(age)}. Figures below are as of the last update.`; }
  else if (age > ENGINE_STALE_AFTER_S) { engineState = "stale"; label = `Stale data: last engine heartbeat ${formatAge(age)} ago.`; }
  if (socket === null || socket.readyState !== WebSocket.OPEN) { engineState = "down"; label = "Disconnected from the console: reconnecting. Figures below may be out of date."; }
  document.body.dataset.engineState = engineState;
  if (age !== null) document.body.dataset.engineAge = age.toFixed(1);
  if (banner) {
    banner.hidden = engineState === "live";
    banner.className = "banner engine-" + engineState;
    banner.textContent = label;
  }
  const ageCell = document.getElementById("engine-heartbeat-age");
  if (ageCell) ageCell.textContent = age === null ? "never" : `${formatAge(age)} ago`;
  const firm = document.getElementById("engine-firm-state");
  if (firm && engineHeartbeat) firm.textContent = engineHeartbeat.firmState || "—";
}

function formatAge(seconds) {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/console/`);
  show("connecting", "connecting…");
  let opened = false;
  socket.addEventListener("open", () => { opened = true; retryMs = 500; show("live", "live"); });
  socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (event.code === CLOSE_UNAUTHENTICATED || event.code === CLOSE_NO_ROLE) {
      show("down", event.code === CLOSE_UNAUTHENTICATED ? "signed out" : "no role: access removed");
      document.body.dataset.liveClosed = String(event.code);
      location.reload();
      return;
    }
    show("down", "disconnected — retrying");
    renderEngine();
    // A handshake the server refuses (session expired while the page was away) reaches the browser as 1006, not
    // 4401: ask the page itself whether the session still holds before trying again.
    if (!opened) sessionGone().then((gone) => { if (gone) location.reload(); });
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  });
}

// True when the page's own URL now redirects (to the login page); false when it answers or the server is away.
async function sessionGone() {
  try {
    const response = await fetch(location.href, { method: "HEAD", redirect: "manual", credentials: "same-origin" });
    return response.type === "opaqueredirect" || response.status === 401 || response.status === 403;
  } catch {
    return false;
  }
}

function render() {
  renderEngine();
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (lastHeartbeat === null) { show("live", "connected, no heartbeat yet"); return; }
  const age = Date.now() - lastHeartbeat;
  if (wsAge) wsAge.textContent = `${(age / 1000).toFixed(1)} s ago`;
  if (age > STALE_AFTER_MS) show("stale", `stale: no heartbeat for ${(age / 1000).toFixed(0)} s`);
  else show("live", `live · heartbeat ${(age / 1000).toFixed(1)} s ago`);
}

// --- number formatting on decimal strings (no float rounding of prices or money) ---------------------------------

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

const DECIMAL_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function formatDecimal(value, places) {
  if (value === null || value === undefined || value === "") return "—";
  let s = String(value).trim();
  // Only a number is formatted: pages put the result into HTML, so anything else must not pass through.
  if (!DECIMAL_TEXT.test(s)) return "—";
  // Python's str(Decimal) writes a zero with a scale as "0E-12": spell such values out (display only).
  if (/e/i.test(s)) s = Number(s).toFixed(12);
  const negative = s.startsWith("-");
  if (negative || s.startsWith("+")) s = s.slice(1);
  let [whole, frac = ""] = s.split(".");
  if (places !== undefined) {
    if (frac.length > places) {
      // round half up on the digit string
      const keep = (whole + frac.slice(0, places)).split("").map(Number);
      if (Number(frac[places]) >= 5) {
        let i = keep.length - 1;
        while (i >= 0) { if (keep[i] === 9) { keep[i] = 0; i -= 1; } else { keep[i] += 1; break; } }
        if (i < 0) keep.unshift(1);
      }
      const joined = keep.join("");
      whole = joined.slice(0, joined.length - places) || "0";
      frac = joined.slice(joined.length - places);
    } else frac = frac.padEnd(places, "0");
  } else frac = frac.replace(/0+$/, ""); // as sent, without the storage scale's trailing zeros
  whole = whole.replace(/^0+(?=\d)/, "");
  const isZero = !/[1-9]/.test(whole + frac);
  const body = groupThousands(whole) + (frac ? "." + frac : "");
  return (negative && !isZero ? "−" : "") + body;
}

// Exact sums of decimal strings (BigInt at 12 places): P&L and positions are never added in floating point.
function toScaled(value, places) {
  let s = String(value || "0").trim();
  if (!DECIMAL_TEXT.test(s)) return 0n;
  if (/e/i.test(s)) s = Number(s).toFixed(places); // "0E-12" and the like: Python's str of a scaled zero
  const negative = s.startsWith("-");
  if (negative) s = s.slice(1);
  const [whole, frac = ""] = s.split(".");
  const digits = BigInt((whole || "0") + frac.padEnd(places, "0").slice(0, places));
  return negative ? -digits : digits;
}
function fromScaled(value, places) {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(places + 1, "0");
  return (negative ? "-" : "") + digits.slice(0, digits.length - places) + "." + digits.slice(digits.length - places);
}
function addDecimal(a, b) { return fromScaled(toScaled(a, 12) + toScaled(b, 12), 12); }
function subDecimal(a, b) { return fromScaled(toScaled(a, 12) - toScaled(b, 12), 12); }

function signClass(value) {
  const s = String(value ?? "");
  if (!/[1-9]/.test(s)) return "zero";
  return s.trim().startsWith("-") ? "neg" : "pos";
}

function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export const Live = {
  subscribe(topics, callback) {
    const fresh = [];
    for (const topic of topics) {
      if (!handlers.has(topic)) { handlers.set(topic, []); fresh.push(topic); }
      handlers.get(topic).push(callback);
      if (state.has(topic)) callback(topic, state.get(topic), null);
    }
    if (fresh.length) send({ type: "subscribe", topics: fresh });
  },
  latest(topic) { return state.get(topic); },
  money: (value) => formatDecimal(value, 2),
  decimal: formatDecimal,
  add: addDecimal,
  sub: subDecimal,
  signClass,
  escapeHtml,
};
window.Live = Live;

setInterval(render, 500);

connect();
