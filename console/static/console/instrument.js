// Instrument page: the 10-level ladder with our own orders marked, and uPlot charts of the day (mid, market trades,
// our quotes; inventory and P&L), drawn from the database at load and extended by live topics.
// Prices are parsed to numbers only to place points on a chart; tables show the decimal strings as sent.
const Live = window.Live;
const own = document.querySelector("script[data-symbol][src*='instrument']");
const symbol = own.dataset.symbol;
const pricePlaces = Number(own.dataset.pricePlaces || 2);
const px = (v) => Live.decimal(v, pricePlaces); // prices at the instrument's precision, so a ladder column aligns
const esc = Live.escapeHtml;
const chart = JSON.parse(document.getElementById("chart-data").textContent);
let ours = JSON.parse(document.getElementById("orders-data").textContent);
let lastBook = null;

const norm = (v) => {
  if (v === null || v === undefined) return "";
  let s = String(v);
  if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
  return s;
};

// --- ladder -------------------------------------------------------------------------------------------------------

function oursAt(side, price) {
  const p = norm(price);
  let total = "0";
  for (const o of ours) if (o.side === side && norm(o.price) === p) total = Live.add(total, o.leaves || o.leaves_quantity);
  return /[1-9]/.test(total) ? `<span class="ours" title="our working order(s)">◆ ${Live.decimal(total)}</span>` : "";
}

function renderLadder() {
  const body = document.getElementById("ladder-body");
  if (!body || !lastBook) return;
  const asks = (lastBook.asks || []).slice(0, 10).reverse();
  const bids = (lastBook.bids || []).slice(0, 10);
  const rows = [];
  for (const [price, size] of asks) {
    rows.push(`<tr class="ask"><td class="num"></td><td class="num"></td><td class="num price">${px(price)}</td><td class="num size">${Live.decimal(size)}</td><td class="num">${oursAt("SELL", price)}</td></tr>`);
  }
  rows.push(`<tr class="spread"><td colspan="5"></td></tr>`);
  for (const [price, size] of bids) {
    rows.push(`<tr class="bid"><td class="num">${oursAt("BUY", price)}</td><td class="num size">${Live.decimal(size)}</td><td class="num price">${px(price)}</td><td class="num"></td><td class="num"></td></tr>`);
  }
  body.innerHTML = rows.join("");
}

// --- charts -------------------------------------------------------------------------------------------------------

const points = new Map(); // t -> [mid, trade, ourBid, ourAsk]
function put(t, index, value) {
  if (!points.has(t)) points.set(t, [null, null, null, null]);
  points.get(t)[index] = value;
}
for (const [t, mid] of chart.mid) put(t, 0, Number(mid));
for (const [t, price] of chart.trades) put(t, 1, Number(price));
for (const [t, price, side] of chart.quotes) put(t, side === "BUY" ? 2 : 3, Number(price));
const inventory = { x: chart.inventory.map((r) => r[0]), q: chart.inventory.map((r) => Number(r[1])), pnl: chart.inventory.map((r) => Number(r[2])) };

function priceData() {
  const xs = [...points.keys()].sort((a, b) => a - b);
  const cols = [xs, [], [], [], []];
  for (const x of xs) { const row = points.get(x); for (let i = 0; i < 4; i += 1) cols[i + 1].push(row[i]); }
  return cols;
}

const width = () => Math.max(320, (document.getElementById("price-chart")?.clientWidth || 640) - 8);
const axis = { stroke: "#8593a3", grid: { stroke: "#26313d" }, ticks: { stroke: "#26313d" } };
const yAxis = { ...axis, size: 80 }; // room for a price like 65,021.4
const dots = (color) => ({ stroke: color, fill: color, width: 0, paths: () => null, points: { show: true, size: 5, fill: color, stroke: color } });
// With one point (or none) uPlot would span years; show at least the last minute up to now.
const xRange = (_u, min, max) => {
  const now = Date.now() / 1000;
  if (min === null || max === null || max - min < 60) return [Math.min(min ?? now, now - 60), Math.max(max ?? now, now)];
  return [min, max];
};
let priceChart = null;
let inventoryChart = null;
if (window.uPlot) {
  priceChart = new window.uPlot({
    width: width(), height: 260,
    series: [{}, { label: "mid", stroke: "#4aa3ff", width: 1.5, spanGaps: true }, { label: "trades", ...dots("#d8dee6") },
      { label: "our bids", ...dots("#2fbf71") }, { label: "our asks", ...dots("#e5484d") }],
    axes: [axis, yAxis],
    scales: { x: { time: true, range: xRange } },
  }, priceData(), document.getElementById("price-chart"));
  inventoryChart = new window.uPlot({
    width: width(), height: 180,
    series: [{}, { label: "position", stroke: "#e0a526", width: 1.5, scale: "q", paths: window.uPlot.paths.stepped({ align: 1 }) },
      { label: "P&L", stroke: "#2fbf71", width: 1.5, scale: "pnl" }],
    axes: [axis, { ...yAxis, scale: "q" }, { ...yAxis, scale: "pnl", side: 1, grid: { show: false } }],
    scales: { x: { time: true, range: xRange } },
  }, [inventory.x, inventory.q, inventory.pnl], document.getElementById("inventory-chart"));
  document.body.dataset.chartReady = "1";
}

let redrawPending = false;
function redraw() {
  // Live updates come up to 10 times a second; the charts redraw at most twice a second.
  if (redrawPending) return;
  redrawPending = true;
  setTimeout(() => {
    redrawPending = false;
    if (priceChart) priceChart.setData(priceData());
    if (inventoryChart) inventoryChart.setData([inventory.x, inventory.q, inventory.pnl]);
  }, 500);
}

const nowS = () => Date.now() / 1000;
Live.subscribe([`book.${symbol}`, `tob.${symbol}`, `trades.${symbol}`, "orders", "positions", "pnl"], (topic, data) => {
  if (!data) return;
  if (topic === `book.${symbol}`) { lastBook = data; renderLadder(); }
  else if (topic === `tob.${symbol}`) { if (data.mid) { put(nowS(), 0, Number(data.mid)); redraw(); } }
  else if (topic === `trades.${symbol}`) {
    const trades = data.trades || [];
    const body = document.getElementById("trades-body");
    if (body && trades.length) {
      body.querySelector(".empty")?.remove();
      for (const t of trades) {
        const tr = document.createElement("tr");
        const side = t.aggressor_side || t.aggressor || "";
        const at = t.ts ? Number(t.ts) / 1e6 : Date.now(); // engine time, ns
        tr.innerHTML = `<td>${new Date(at).toISOString().slice(11, 23)}</td><td class="num">${px(t.price)}</td><td class="num">${Live.decimal(t.quantity)}</td><td class="side ${esc(String(side).toLowerCase())}">${esc(side)}</td>`;
        body.prepend(tr);
        put(at / 1000, 1, Number(t.price));
      }
      while (body.children.length > 30) body.lastElementChild.remove();
      redraw();
    }
  } else if (topic === "orders") {
    const before = new Set(ours.map((o) => o.client_order_id));
    ours = (data.working || []).filter((o) => o.symbol === symbol);
    for (const o of ours) if (!before.has(o.client_order_id) && o.price) put(nowS(), o.side === "BUY" ? 2 : 3, Number(o.price));
    renderLadder();
    redraw();
  } else if (topic === "positions") {
    let q = 0;
    let pnl = 0;
    for (const p of data.positions || []) if (p.symbol === symbol) { q += Number(p.quantity); pnl += Number(p.realized) + Number(p.unrealized) - Number(p.fees || 0); }
    inventory.x.push(nowS()); inventory.q.push(q); inventory.pnl.push(pnl);
    redraw();
  }
});
