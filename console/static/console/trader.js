// Trading desk pages: keep the server-rendered tables current from live topics (console/static/console/live.js).
// The page's <script data-page=...> says which page this is; every renderer replaces a tbody from the topic's
// latest state (the topic carries the whole state, so an update never depends on the one before it).
const Live = window.Live;
// Module scripts have no document.currentScript: find ours by its data-page attribute.
const script = document.querySelector("script[data-page]");
const page = script.dataset.page;
const user = script.dataset.user;
const roles = (script.dataset.roles || "").trim().split(/\s+/).filter(Boolean);
const symbol = script.dataset.symbol || "";
const strategyId = script.dataset.strategy || "";
const esc = Live.escapeHtml;
const qty = (v) => Live.decimal(v);
const money = (v) => Live.money(v);

// kind: "money" (2 decimals, coloured by sign), "cost" (2 decimals, never coloured: fees are not a gain),
// "qty" (as sent, coloured by sign), or nothing (as sent, plain).
function setCell(id, value, kind) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = kind === "money" || kind === "cost" ? money(value) : qty(value);
  el.classList.remove("pos", "neg", "zero");
  if (kind === "money" || kind === "qty") el.classList.add(Live.signClass(value));
}

function fillBody(id, rows, emptyText, columns) {
  const body = document.getElementById(id);
  if (!body) return;
  body.innerHTML = rows.length ? rows.join("") : `<tr class="empty"><td colspan="${columns}" class="muted">${esc(emptyText)}</td></tr>`;
  if (window.htmx) window.htmx.process(body);
}

let instrumentPnlSeen = false;
function renderPnl(_topic, data) {
  if (!data) return;
  const firm = (data.scopes || []).find((s) => s.scope_kind === "FIRM");
  let scope = firm;
  if (page === "instrument") scope = (data.scopes || []).find((s) => s.scope_kind === "INSTRUMENT" && s.scope_name === symbol);
  if (!scope) return;
  const total = Live.sub(Live.add(scope.realized, scope.unrealized), scope.fees || "0");
  if (page === "instrument") { instrumentPnlSeen = true; setCell("inst-pnl", total, "money"); return; }
  setCell("pnl-total", total, "money");
  setCell("pnl-realized", scope.realized, "money");
  setCell("pnl-unrealized", scope.unrealized, "money");
  setCell("pnl-fees", scope.fees || "0", "cost");
}

function renderPositions(_topic, data) {
  if (!data) return;
  let positions = data.positions || [];
  if (page === "instrument") {
    positions = positions.filter((p) => p.symbol === symbol);
    let net = "0";
    let pnl = "0";
    for (const p of positions) {
      net = Live.add(net, p.quantity);
      pnl = Live.sub(Live.add(pnl, Live.add(p.realized, p.unrealized)), p.fees || "0");
    }
    setCell("inst-position", net, "qty");
    // The engine's INSTRUMENT-scope P&L wins when it is published (renderPnl); until then, the positions' sum.
    if (!instrumentPnlSeen) setCell("inst-pnl", pnl, "money");
    return;
  }
  fillBody("positions-body", positions.map((p) => `<tr data-key="${esc(p.strategy_id)}/${esc(p.symbol)}">
    <td>${esc(p.strategy_id)}</td><td><a href="/trading/instrument/${encodeURIComponent(p.symbol)}/">${esc(p.symbol)}</a></td>
    <td class="num ${Live.signClass(p.quantity)}">${qty(p.quantity)}</td><td class="num">${qty(p.avg_price)}</td>
    <td class="num ${Live.signClass(p.realized)}">${money(p.realized)}</td><td class="num ${Live.signClass(p.unrealized)}">${money(p.unrealized)}</td>
    <td class="num">${money(p.fees)}</td></tr>`), "No positions today.", 7);
}

function renderOrders(_topic, data) {
  if (!data) return;
  const body = document.getElementById("orders-body");
  if (!body) return;
  const canCancel = body.dataset.canCancel === "1";
  let orders = data.working || [];
  if (page === "instrument") orders = orders.filter((o) => o.symbol === symbol);
  fillBody("orders-body", orders.map((o) => {
    const vals = esc(JSON.stringify({ client_order_id: o.client_order_id, symbol: o.symbol }));
    const cancel = canCancel ? `<td><button class="small danger" hx-post="${esc(body.dataset.cancelUrl)}" hx-vals="${vals}" hx-confirm="Cancel order ${esc(o.client_order_id)}?" hx-target="#action-result" hx-swap="innerHTML">Cancel</button></td>` : "";
    return `<tr data-key="${esc(o.client_order_id)}"><td class="mono">${esc(o.client_order_id)}</td><td>${esc(o.strategy_id)}</td><td>${esc(o.symbol)}</td>
      <td class="side ${esc(String(o.side).toLowerCase())}">${esc(o.side)}</td><td class="num">${qty(o.price)}</td><td class="num">${qty(o.quantity)}</td>
      <td class="num">${qty(o.leaves_quantity)}</td><td><span class="badge">${esc(o.status)}</span></td>${cancel}</tr>`;
  }), "No working orders.", canCancel ? 9 : 8);
}

function timeOf(value) {
  if (!value) return "";
  const ms = typeof value === "number" ? (value > 1e14 ? value / 1e6 : value * 1000) : Date.parse(value);
  return new Date(ms).toISOString().slice(11, 23);
}

function renderFills(_topic, data) {
  if (!data) return;
  fillBody("fills-body", (data.fills || []).map((f) => `<tr><td>${esc(timeOf(f.ts || f.ts_ns))}</td><td class="mono">${esc(f.client_order_id)}</td>
    <td>${esc(f.strategy_id)}</td><td>${esc(f.symbol)}</td><td class="side ${esc(String(f.side).toLowerCase())}">${esc(f.side)}</td>
    <td class="num">${qty(f.price)}</td><td class="num">${qty(f.quantity)}</td><td class="num">${money(f.commission)}</td>
    <td>${f.is_maker ? "maker" : "taker"}</td></tr>`), "No fills today.", 9);
}

function renderStates(_topic, data) {
  if (!data) return;
  const states = data.states || [];
  fillBody("states-body", states.map((s) => `<tr><td>${esc(String(s.scope_kind).toLowerCase())}${s.scope_name ? ": " + esc(s.scope_name) : ""}</td>
    <td><span class="badge state-${esc(String(s.state).toLowerCase())}">${esc(s.state)}</span></td><td>${esc(s.operator || "engine")}</td>
    <td>${esc(s.reason || s.code || "—")}</td></tr>`), "Firm ACTIVE: no kill switch has been used.", 4);
}

function renderStrategies(_topic, data) {
  if (!data) return;
  for (const s of data.strategies || []) {
    if (page === "strategy" && s.strategy_id === strategyId) {
      const badge = document.getElementById("strategy-state");
      if (badge) { badge.textContent = s.state; badge.className = `badge state-${String(s.state).toLowerCase()}`; }
      const version = document.getElementById("params-version");
      if (version) version.textContent = s.params_version;
    }
    const row = document.querySelector(`#strategies-body tr[data-key="${CSS.escape(s.strategy_id)}"]`);
    if (!row) continue;
    const state = row.querySelector('[data-field="state"]');
    state.textContent = s.state;
    state.className = `badge state-${String(s.state).toLowerCase()}`;
    row.querySelector('[data-field="params_version"]').textContent = s.params_version;
  }
}

// Topic "alerts" carries the newest alerts, newest first, already cut by the server to this user's roles (the
// check here only repeats it); the list is redrawn from it, so two alerts in one instant both show.
const ALERTS_SHOWN = 10; // as many as the server renders (trading.console_selectors.alerts_for)
function alertTime(value) {
  return value ? ` · ${esc(new Date(Date.parse(value)).toISOString().slice(11, 19))} UTC` : "";
}
function renderAlerts(_topic, data) {
  if (!data || !Array.isArray(data.alerts)) return; // nothing published yet: keep the server-rendered list
  const list = document.getElementById("alerts-list");
  if (!list) return;
  const mine = data.alerts.filter((a) => roles.includes("admin") || (a.audience || []).some((r) => roles.includes(r)));
  list.innerHTML = mine.length ? mine.slice(0, ALERTS_SHOWN).map((a) => {
    const badge = a.severity === "critical" ? "down" : a.severity === "warning" ? "stale" : "";
    return `<li class="alert ${esc(a.severity || "info")}" data-alert-id="${esc(a.id)}"><span class="badge ${badge}">${esc(a.severity || "info")}</span> <strong>${esc(a.title || a.kind)}</strong> <span class="muted">${esc(a.detail || "")}${alertTime(a.raised_at)}${a.acknowledged ? " · acknowledged" : ""}</span></li>`;
  }).join("") : '<li class="muted empty">No alerts for your role.</li>';
}

const pricePlaces = Number(script.dataset.pricePlaces || 0);
function renderTob(_topic, data) {
  if (!data) return;
  for (const [id, value] of [["tob-bid", data.bid], ["tob-ask", data.ask]]) {
    const el = document.getElementById(id);
    if (el) el.textContent = pricePlaces ? Live.decimal(value, pricePlaces) : qty(value);
  }
  setCell("tob-bid-size", data.bid_size);
  setCell("tob-ask-size", data.ask_size);
}

// The outcome of this user's own actions from any of their pages (topic user.<name>): shown where they act.
function renderOwnAction(_topic, data) {
  if (!data || !data.action) return;
  // The notice can arrive before the form's own response is swapped in: look a moment later.
  setTimeout(() => showOwnAction(data.action), 500);
}

function showOwnAction(a) {
  const box = document.getElementById("action-result");
  // The form that sent it already shows the engine's reply on this page; the stream is for the user's other pages.
  if (!box || document.querySelector(`.reply[data-command-id="${CSS.escape(a.command_id)}"]`)) return;
  box.innerHTML = `<div class="reply ${a.ok ? "ok" : "refused"}" data-code="${esc(a.code)}" data-command-id="${esc(a.command_id)}">${a.ok ? "<strong>Engine accepted</strong>" : `<strong>Refused: ${esc(a.code)}</strong> — ${esc(a.reason)}`} <span class="muted">${esc(a.command)} ${esc(a.target)}</span></div>`;
}

const topics = { heartbeat: () => {}, trading_state: renderStates, alerts: renderAlerts };
topics[`user.${user}`] = renderOwnAction;
if (page === "overview") Object.assign(topics, { pnl: renderPnl, positions: renderPositions, orders: renderOrders, fills: renderFills, strategies: renderStrategies });
if (page === "ticket") Object.assign(topics, { orders: renderOrders });
if (page === "strategy") Object.assign(topics, { strategies: renderStrategies });
if (page === "instrument") Object.assign(topics, { pnl: renderPnl, positions: renderPositions, orders: renderOrders, [`tob.${symbol}`]: renderTob });
Live.subscribe(Object.keys(topics), (topic, data, update) => topics[topic](topic, data, update));
