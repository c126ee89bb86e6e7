// One websocket per page to /ws/console/. It shows whether the real-time path is alive: the
// heartbeat comes from Celery beat through a worker and the Redis channel layer, so its age is
// the age of the whole path. Reconnects with capped exponential backoff.
const STALE_AFTER_MS = 6000;
const indicator = document.getElementById("live-indicator");
const text = document.getElementById("live-text");
const wsState = document.getElementById("ws-state");
const wsAge = document.getElementById("ws-heartbeat-age");

let socket = null;
let lastHeartbeat = null;
let retryMs = 500;

function show(state, label) {
  if (indicator) indicator.dataset.state = state;
  if (text) text.textContent = label;
  if (wsState) { wsState.textContent = state; wsState.className = "badge " + (state === "live" ? "ok" : state === "connecting" ? "unknown" : "down"); }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/console/`);
  show("connecting", "connecting…");
  socket.addEventListener("open", () => { retryMs = 500; show("live", "live"); });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "heartbeat") {
      lastHeartbeat = Date.now();
      document.body.dataset.lastHeartbeat = String(message.ts);
      render();
    }
    document.dispatchEvent(new CustomEvent("console:message", { detail: message }));
  });
  socket.addEventListener("close", () => {
    show("down", "disconnected — retrying");
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  });
}

function render() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (lastHeartbeat === null) { show("live", "connected, no heartbeat yet"); return; }
  const age = Date.now() - lastHeartbeat;
  if (wsAge) wsAge.textContent = `${(age / 1000).toFixed(1)} s ago`;
  if (age > STALE_AFTER_MS) show("stale", `stale: no heartbeat for ${(age / 1000).toFixed(0)} s`);
  else show("live", `live · heartbeat ${(age / 1000).toFixed(1)} s ago`);
}

setInterval(render, 500);

connect();
