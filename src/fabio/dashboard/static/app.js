/* Fabio dashboard: one page, every symbol. Text from the journal (the brain's reasoning and
   notes) is untrusted: it only ever reaches the page through textContent, never as HTML. */
"use strict";

const state = { symbols: {}, seq: 0, serverOffset: 0 };
const panels = {};
const dirtyCharts = new Set();
const MAX_DECISIONS_SHOWN = 25;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value === "number") {
    return value.toLocaleString("en-US", { minimumFractionDigits: digits ?? 2,
                                           maximumFractionDigits: digits ?? 2 });
  }
  return String(value);
}

function usd(value) {
  if (value === null || value === undefined) return "—";
  return (value < 0 ? "-$" : "$") + fmt(Math.abs(value));
}

function signClass(node, value) {
  node.classList.toggle("pos", typeof value === "number" && value > 0);
  node.classList.toggle("neg", typeof value === "number" && value < 0);
}

const CT_TIME = new Intl.DateTimeFormat("en-US", { timeZone: "America/Chicago", hour12: false,
  hour: "2-digit", minute: "2-digit", second: "2-digit" });

function timeOf(ns) {
  if (!ns) return "—";
  return CT_TIME.format(new Date(ns / 1e6)) + " CT";
}

function dl(card, rows) {
  const list = el("dl");
  const cells = {};
  for (const [key, label] of rows) {
    list.append(el("dt", null, label));
    const dd = el("dd", key);
    dd.dataset.field = key;
    list.append(dd);
    cells[key] = dd;
  }
  card.append(list);
  return cells;
}

function card(parent, title, rows) {
  const box = el("div", "card");
  box.append(el("h3", null, title));
  parent.append(box);
  return dl(box, rows);
}

function panel(symbol) {
  if (panels[symbol]) return panels[symbol];
  const empty = document.getElementById("empty");
  if (empty) empty.remove();
  const root = el("section", "symbol");
  root.dataset.symbol = symbol;
  const head = el("div", "head");
  const price = el("span", "price", "—");
  const risk = el("span", "badge risk-state", "—");
  const regime = el("span", "badge regime", "—");
  const venue = el("span", "badge venue", "venue —");
  const age = el("span", "tick-age", "");
  head.append(el("h2", null, symbol), price, risk, regime, venue, age);
  const chart = el("div", "chart");
  const cards = el("div", "cards");
  const p = {
    root, price, risk, regime, venue, age, chart,
    position: card(cards, "Position", [["side", "side"], ["qty", "contracts"],
      ["entry", "entry"], ["stop", "stop"], ["target", "target"], ["unrealized", "unrealised"]]),
    pnl: card(cards, "P&L", [["realized_today", "realised today"],
      ["unrealized_pnl", "unrealised"], ["realized_total", "realised (all)"],
      ["closed_trades", "closed trades"], ["balance", "balance"]]),
    limits: card(cards, "Room to limits", [["room_daily", "daily loss"],
      ["room_trailing", "trailing max loss"], ["contracts", "contracts"],
      ["trades", "trades today"], ["risk_reason", "reason"]]),
    brain: card(cards, "Regime & brain", [["regime_name", "regime"],
      ["market_state", "market state"], ["confidence", "confidence"],
      ["llm_calls", "LLM calls today"], ["tokens", "tokens"], ["cost", "cost today"]]),
  };
  const table = el("table", "strategies");
  const thead = el("tr");
  for (const h of ["strategy", "on", "risk", "trades", "win rate", "exp. R", "net P&L"]) {
    thead.append(el("th", null, h));
  }
  table.append(thead);
  const decisions = el("div", "decisions");
  root.append(head, chart, cards, table, decisions);
  p.table = table;
  p.decisions = decisions;
  document.getElementById("symbols").append(root);
  panels[symbol] = p;
  return p;
}

function renderStatus(symbol) {
  const s = state.symbols[symbol];
  const p = panel(symbol);
  const st = s.status || {};
  p.price.textContent = fmt(st.price);
  const age = st.tick_age_sec;
  p.age.textContent = age === null || age === undefined ? "no tick yet" :
    `last tick ${fmt(age, 1)} s ago · ${timeOf(st.market_ts_ns)}`;
  const conns = Object.entries(st.connections || {});
  const venue = conns.length ? conns.map(([k, v]) => `${k} ${v}`).join(", ") : "venue simulated";
  p.venue.textContent = venue;
  p.venue.className = "badge venue " + (conns.some(([, v]) => v !== "connected") ? "bad" : "good");
  const llm = st.llm || {};
  p.brain.llm_calls.textContent = `${fmt(llm.llm_calls, 0)} of ${fmt(llm.decisions, 0)}`;
  p.brain.tokens.textContent =
    `${fmt(llm.prompt_tokens, 0)} in / ${fmt(llm.completion_tokens, 0)} out`;
  p.brain.cost.textContent = usd(llm.cost_usd);
}

function renderTrade(symbol) {
  const t = state.symbols[symbol].trade_update || {};
  const p = panel(symbol);
  const pos = t.position || {};
  const flat = !pos.side;
  p.position.side.textContent = flat ? "flat" : pos.side;
  p.position.qty.textContent = flat ? "0" : fmt(pos.qty, 0);
  p.position.entry.textContent = flat ? "—" : fmt(pos.entry);
  p.position.stop.textContent = flat ? "—" : fmt(pos.stop);
  p.position.target.textContent = flat ? "—" : fmt(pos.target);
  p.position.unrealized.textContent = flat ? "—" : usd(pos.unrealized_usd);
  signClass(p.position.unrealized, pos.unrealized_usd);
  const pnl = t.pnl || {};
  p.pnl.realized_today.textContent = usd(pnl.realized_today_usd);
  signClass(p.pnl.realized_today, pnl.realized_today_usd);
  p.pnl.unrealized_pnl.textContent = usd(pnl.unrealized_usd);
  signClass(p.pnl.unrealized_pnl, pnl.unrealized_usd);
  p.pnl.realized_total.textContent = usd(pnl.realized_total_usd);
  signClass(p.pnl.realized_total, pnl.realized_total_usd);
  p.pnl.closed_trades.textContent = fmt(pnl.closed_trades, 0);
  p.pnl.balance.textContent = usd(pnl.balance_usd);
  const ma = t.market_assessment || {};
  p.regime.textContent = ma.regime ? `${ma.regime} ${fmt(ma.confidence)}` : "regime —";
  p.brain.regime_name.textContent = fmt(ma.regime);
  p.brain.market_state.textContent = fmt(ma.market_state);
  p.brain.confidence.textContent = fmt(ma.confidence);
  if (t.price !== null && t.price !== undefined) p.price.textContent = fmt(t.price);
  while (p.table.rows.length > 1) p.table.deleteRow(1);
  for (const row of t.strategies || []) {
    const tr = el("tr");
    tr.dataset.strategy = row.name;
    tr.append(el("td", null, row.name + (row.active ? " ★" : "")),
      el("td", null, row.enabled ? (row.sized_out ? "sized out" : "yes") : "no"), el("td", null, String(row.risk_fraction)),
      el("td", null, fmt(row.trades, 0)),
      el("td", null, row.win_rate === null ? "—" : fmt(row.win_rate * 100, 0) + "%"),
      el("td", null, fmt(row.expectancy_r)), el("td", null, usd(row.net_pnl)));
    p.table.append(tr);
  }
}

function renderRisk(symbol) {
  const r = state.symbols[symbol].risk || {};
  const p = panel(symbol);
  const name = r.trading_state || "—";
  p.risk.textContent = name === "kill_switch" ? "KILL SWITCH" : name;
  p.risk.dataset.state = name;
  p.risk.className = "badge risk-state " + (name === "active" ? "good" :
    name === "reducing" ? "warn" : "bad");
  const l = r.limits || {};
  p.limits.room_daily.textContent = `${usd(l.room_daily_usd)} of ${usd(l.daily_loss_limit_usd)}`;
  p.limits.room_trailing.textContent = `${usd(l.room_trailing_usd)} (floor ${usd(l.floor_usd)})`;
  p.limits.contracts.textContent =
    `${fmt(l.contracts_open, 0)} open, ${fmt(l.contracts_room, 0)} more`;
  p.limits.trades.textContent = `${fmt(l.trades_today, 0)} of ${fmt(l.max_trades_per_day, 0)}`;
  p.limits.risk_reason.textContent = r.reason || "—";
}

function decisionNode(d) {
  const box = el("div", "decision");
  const acts = (d.trade_decisions || []).map((t) =>
    [t.action, t.side, t.strategy].filter(Boolean).join(" ")).join("; ");
  box.append(el("div", "meta", `${d.time || timeOf(d.ts_ns)} · ${d.brain || ""} · ` +
    `${d.regime || "—"} ${fmt(d.confidence)}` + (acts ? ` · ${acts}` : "") +
    (d.dropped ? ` · dropped: ${d.dropped}` : "")));
  if (d.reasoning) box.append(el("div", "reasoning", d.reasoning));
  for (const note of d.notes_to_future_self || []) {
    box.append(el("div", "note", "note: " + (typeof note === "string" ? note :
      (note.text || JSON.stringify(note)))));
  }
  return box;
}

function renderDecisions(symbol) {
  const list = state.symbols[symbol].decisions || [];
  const p = panel(symbol);
  p.decisions.replaceChildren(...list.slice(-MAX_DECISIONS_SHOWN).reverse().map(decisionNode));
}

const CHICAGO = (ts) => uPlot.tzDate(new Date(ts * 1e3), "America/Chicago");

function drawMarkers(u, symbol) {
  const markers = state.symbols[symbol].markers || [];
  const ctx = u.ctx;
  const r = 6 * devicePixelRatio;
  const left = u.bbox.left;
  const right = left + u.bbox.width;
  ctx.save();
  for (const m of markers) {
    const x = u.valToPos(m.ts_ns / 1e9, "x", true);
    const y = u.valToPos(m.price, "y", true);
    if (!(x >= left && x <= right)) continue;
    ctx.fillStyle = ctx.strokeStyle = m.side > 0 ? "#3fb950" : "#f85149";
    ctx.beginPath();
    if (m.kind === "entry") {  // a triangle pointing the way of the trade
      const d = m.side > 0 ? 1 : -1;
      ctx.moveTo(x, y - d * r); ctx.lineTo(x - r, y + d * r); ctx.lineTo(x + r, y + d * r);
      ctx.closePath(); ctx.fill();
    } else {  // an exit: a cross
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r);
      ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r); ctx.stroke();
    }
  }
  ctx.restore();
}

function drawChart(symbol) {
  const s = state.symbols[symbol];
  const p = panel(symbol);
  if (typeof uPlot === "undefined" || !s.chart) return;
  const c = s.chart;
  const data = [c.t.map((t) => t / 1e9), c.price, c.poc, c.vah, c.val];
  if (!p.plot) {
    const axis = { stroke: "#8a96a3", grid: { stroke: "#2a3440", width: 1 },
                   ticks: { stroke: "#2a3440", width: 1 } };
    const opts = {
      width: Math.max(300, p.chart.clientWidth), height: 300, tzDate: CHICAGO,
      scales: { x: { time: true } },
      series: [{},
        { label: "price", stroke: "#d8dee6", width: 1.5, points: { show: false } },
        { label: "POC", stroke: "#d29922", width: 1, points: { show: false } },
        { label: "VAH", stroke: "#58a6ff", width: 1, dash: [4, 4], points: { show: false } },
        { label: "VAL", stroke: "#58a6ff", width: 1, dash: [4, 4], points: { show: false } }],
      axes: [axis, Object.assign({ size: 64 }, axis)],
      hooks: { draw: [(u) => drawMarkers(u, symbol)] },
    };
    p.plot = new uPlot(opts, data, p.chart);
    new ResizeObserver(() => p.plot.setSize({ width: Math.max(300, p.chart.clientWidth),
                                              height: 300 })).observe(p.chart);
  } else {
    p.plot.setData(data);
  }
  p.chart.dataset.points = String(c.t.length);
  p.chart.dataset.markers = String((s.markers || []).length);
}

function scheduleChart(symbol) {
  dirtyCharts.add(symbol);
}

setInterval(() => {
  for (const symbol of dirtyCharts) drawChart(symbol);
  dirtyCharts.clear();
}, 400);

function sym(symbol) {
  if (!state.symbols[symbol]) {
    state.symbols[symbol] = { chart: { t: [], price: [], poc: [], vah: [], val: [] },
      markers: [], decisions: [] };
  }
  return state.symbols[symbol];
}

function addPoint(s, point) {
  if (!point) return;
  const c = s.chart;
  if (c.t.length && point.t <= c.t[c.t.length - 1]) return;
  for (const k of ["t", "price", "poc", "vah", "val"]) c[k].push(point[k]);
}

function track(seq) {
  if (typeof seq === "number") state.seq = seq;
  document.body.dataset.seq = String(state.seq);
}

function onSnapshot(snap) {
  performance.mark("fabio-snapshot");
  state.serverOffset = snap.server_time * 1000 - Date.now();
  for (const [symbol, s] of Object.entries(snap.symbols)) {
    state.symbols[symbol] = { status: s.status, trade_update: s.trade_update, risk: s.risk,
      decisions: s.decisions, chart: s.chart, markers: s.markers };
    renderStatus(symbol); renderTrade(symbol); renderRisk(symbol); renderDecisions(symbol);
    drawChart(symbol);
  }
  const problems = document.getElementById("problems");
  problems.replaceChildren(...(snap.problems || []).map((t) => el("div", null, t)));
  track(snap.seq);
  document.body.dataset.ready = "1";
  performance.mark("fabio-ready");
}

function connect() {
  const socket = io({ transports: ["websocket", "polling"] });
  const badge = document.getElementById("connection");
  socket.on("connect", () => { badge.textContent = "live"; badge.className = "badge good"; });
  socket.on("disconnect", () => {
    badge.textContent = "disconnected: reconnecting…"; badge.className = "badge bad";
  });
  socket.on("snapshot", onSnapshot);
  socket.on("status", (m) => {
    const s = sym(m.symbol); s.status = m;
    for (const point of m.points || []) addPoint(s, point);
    renderStatus(m.symbol); if ((m.points || []).length) scheduleChart(m.symbol); track(m.seq);
  });
  socket.on("trade_update", (m) => {
    const s = sym(m.symbol); s.trade_update = m;
    if (m.fill) { s.markers.push(m.fill); scheduleChart(m.symbol); }
    renderTrade(m.symbol); track(m.seq);
  });
  socket.on("decision", (m) => {
    const s = sym(m.symbol); s.decisions.push(m.decision);
    if (s.decisions.length > 60) s.decisions.shift();
    addPoint(s, m.point); if (m.point) scheduleChart(m.symbol);
    s.status = Object.assign({}, s.status || {}, { llm: m.llm });
    renderStatus(m.symbol); renderDecisions(m.symbol); track(m.seq);
  });
  socket.on("risk", (m) => {
    sym(m.symbol).risk = m; renderRisk(m.symbol); track(m.seq);
  });
}

async function control(path) {
  const message = document.getElementById("message");
  const token = document.getElementById("token").value.trim();
  const reason = document.getElementById("reason").value.trim() || "dashboard";
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  message.className = ""; message.textContent = "sending…";
  try {
    const res = await fetch(path, { method: "POST", headers, body: JSON.stringify({ reason }),
      credentials: "same-origin", cache: "no-store" });
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      message.className = "ok"; message.textContent = `kill switch ${body.kill_switch}`;
    } else {
      message.className = "err";
      message.textContent = `refused (${res.status}): ${body.error || body.detail || "error"}`;
    }
  } catch (err) {
    message.className = "err"; message.textContent = "request failed: " + err;
  }
}

function tick() {
  const now = new Date(Date.now() + state.serverOffset);
  document.getElementById("clock").textContent = now.toISOString().slice(11, 19) + " UTC";
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("kill").addEventListener("click", () => control("/api/kill"));
  document.getElementById("release").addEventListener("click", () => control("/api/release"));
  document.getElementById("controls").addEventListener("submit", (e) => e.preventDefault());
  setInterval(tick, 1000);
  connect();
});
