// Risk desk page.
// - Utilisation bars and the exposure table follow the engine's RiskUtilisation (topic "risk", about once a
//   second) in the browser. The percentages are for drawing bars only; limits and figures stay decimal strings
//   everywhere else, and the server renders the same bars (riskdesk.services.limit_rules.utilisation_percent) on
//   every refresh.
// - A scope's state badge changes as soon as topic "trading_state" brings it. The rest of the live panel (limits
//   in force, triggers, approvals, alerts, the kill log) is server-rendered: it is re-fetched as soon as topic
//   "limits", "trading_state" or "alerts" changes (at most once a second), and every 3 s besides.
//   Alerts must be in front of every risk officer within 5 s (RTS 6 Art. 16).
// - A refresh waits while the officer types in the panel, so a comment or a rejection reason is never wiped.
// live.js is the module the base template loads first (module scripts run in document order). Not imported by
// path: with hashed static file names in production a relative import would load a second copy and a second
// websocket.
const Live = window.Live;

const panel = document.getElementById("risk-live");
let lastRefresh = 0;
let pending = null;

window.riskLiveIdle = () => !(panel && panel.contains(document.activeElement) && document.activeElement.tagName === "INPUT");

function refresh() {
  const wait = Math.max(0, 1000 - (Date.now() - lastRefresh));
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    lastRefresh = Date.now();
    // Typing in the panel: skip; the 3 s poll refreshes once the officer is done.
    if (window.htmx && panel && window.riskLiveIdle()) window.htmx.trigger(panel, "risk-refresh");
  }, wait);
}

function slugOf(u) {
  const kind = String(u.scope_kind).toLowerCase();
  return kind === "firm" ? "firm" : `${kind}:${u.scope_name}`;
}

// Mirrors limit_rules.utilisation_percent: every figure in its limit's unit (the position in instrument units,
// `position_quantity`, against max_position on the symbol's lot grid as the server renders it per symbol), daily
// loss counts only a negative P&L, magnitudes against the limit.
function percent(row, u) {
  const key = row.dataset.util;
  let limit = row.dataset.limit;
  let value = u[key];
  if (value === null || value === undefined || limit === "" || limit === undefined) return null;
  if (key === "position_quantity" && row.dataset.gridLimits) {
    const grid = JSON.parse(row.dataset.gridLimits);
    if (grid[u.position_symbol] !== undefined) limit = grid[u.position_symbol];
  }
  value = Number(value);
  if (key === "daily_pnl") value = Math.max(0, -value);
  value = Math.abs(value);
  const max = Number(limit);
  if (!(max > 0)) return value > 0 ? 100 : 0;
  return (value / max) * 100;
}

function drawBar(cell, pct) {
  const bar = cell.querySelector(".bar");
  const label = cell.querySelector(".pct");
  if (bar) {
    bar.className = "bar " + (pct >= 100 ? "breach" : pct >= 80 ? "warn" : "ok");
    bar.firstElementChild.style.width = `${Math.min(100, pct).toFixed(1)}%`;
  }
  if (label) label.textContent = `${pct.toFixed(0)} %`;
}

// The exposure table: the engine's figures as decimal strings, and the daily P&L against the loss limit.
function renderExposure(u) {
  const row = document.querySelector(`#exposure tr[data-slug="${CSS.escape(slugOf(u))}"]`);
  if (!row) return; // a scope that appeared since the page was drawn: the next refresh adds its row
  for (const cell of row.querySelectorAll("[data-figure]")) {
    const value = u[cell.dataset.figure];
    if (value !== undefined && value !== null) cell.textContent = String(value);
  }
  const loss = row.querySelector("[data-util]");
  if (loss) {
    const pct = percent(loss, u);
    if (pct !== null) drawBar(loss, pct);
  }
}

function renderUtilisation(data, update) {
  if (!data) return;
  for (const u of data.utilisation || []) {
    renderExposure(u);
    const scope = document.querySelector(`.scope-panel[data-scope="${CSS.escape(slugOf(u))}"]`);
    if (!scope) continue;
    for (const row of scope.querySelectorAll("tr[data-util]")) {
      const pct = percent(row, u);
      if (pct === null) continue;
      drawBar(row, pct);
    }
  }
  if (update) document.body.dataset.utilisationSeq = String(update.seq);
}

// A kill or resume shows on the scope's badge the moment the bridge publishes it (every console within 1 s);
// the refresh that follows brings the log line with the engine's acknowledgement.
function renderStates(data, update) {
  for (const s of (data && data.states) || []) {
    const badge = document.querySelector(`.scope-panel[data-scope="${CSS.escape(slugOf(s))}"] [data-role="state"]`);
    if (!badge) continue;
    badge.textContent = s.state;
    badge.className = `badge state-${String(s.state).toLowerCase()}`;
  }
  if (update) document.body.dataset.tradingStateSeq = String(update.seq);
}

Live.subscribe(["risk", "limits", "trading_state", "alerts"], (topic, data, update) => {
  if (topic === "risk") { renderUtilisation(data, update); return; }
  if (update === null) return; // the snapshot on (re)connect: the page was just rendered from the same state
  if (topic === "trading_state") renderStates(data, update);
  // Topic "alerts" carries the newest alerts (newest first), each with its own id: the page notes the newest id it
  // has been told of, then re-fetches the panel that lists them.
  if (topic === "alerts" && data && Array.isArray(data.alerts) && data.alerts.length) {
    document.body.dataset.lastAlertId = String(Math.max(...data.alerts.map((a) => a.id)));
  }
  refresh();
});

// A refreshed panel is drawn from the server's figures; the next "risk" update takes over from there.
document.body.addEventListener("htmx:afterSwap", () => {
  const latest = Live.latest("risk");
  if (latest) renderUtilisation(latest, null);
  // Not the states: the server drew them from the engine itself, which may be ahead of the bridge's last update.
});
