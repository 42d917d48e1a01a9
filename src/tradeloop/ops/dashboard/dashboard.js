/*
 * tradeloop live dashboard.
 *
 * Polls GET api/snapshot on the admin API (Authorization: Bearer <token>) every POLL_MS and renders
 * it; the kill switch and resume buttons POST to api/kill and api/resume. The token comes from the
 * URL fragment (#token=...), is kept in sessionStorage and removed from the address bar.
 *
 * Money and quantities are shown exactly as the API's decimal strings; numbers are parsed only to
 * place points on the charts. Everything is written with textContent (never innerHTML), so text from
 * the node (alert messages, ids) cannot inject markup.
 */
(function () {
  "use strict";

  const POLL_MS = 500;
  const REQUEST_TIMEOUT_MS = 3000;
  const TOKEN_KEY = "tradeloop.adminToken";
  const BOOK_LEVELS = 5;
  const MAX_ALERTS = 100;

  const state = {
    updates: 0,
    snapshot: null,
    inFlight: false,
    again: false,
    timer: null,
    authRefused: false,
    unreachableSince: null,
  };

  function el(testid) {
    return document.querySelector('[data-testid="' + testid + '"]');
  }

  function make(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // -- token ----------------------------------------------------------------------------------

  /** Moves `token` from the URL fragment into sessionStorage and drops it from the address bar. */
  function takeTokenFromFragment() {
    const fragment = window.location.hash.replace(/^#/, "");
    if (!fragment) return;
    const kept = [];
    let token = null;
    for (const part of fragment.split("&")) {
      if (part.startsWith("token=")) {
        token = decodeURIComponent(part.slice("token=".length));
      } else if (part) {
        kept.push(part);
      }
    }
    if (token === null) return;
    if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
    const rest = kept.length ? "#" + kept.join("&") : "";
    window.history.replaceState(null, "", window.location.pathname + window.location.search + rest);
  }

  function token() {
    return window.sessionStorage.getItem(TOKEN_KEY);
  }

  function authHeaders() {
    return { Authorization: "Bearer " + token() };
  }

  // -- status banner --------------------------------------------------------------------------

  /** status: ok | loading | no-token | unauthorized | forbidden | unreachable | error */
  function setStatus(status, message, askToken) {
    document.body.dataset.status = status;
    const banner = el("banner");
    const form = el("token-form");
    if (status === "ok") {
      banner.hidden = true;
      document.body.classList.remove("stale");
      return;
    }
    el("banner-text").textContent = message;
    banner.dataset.kind = status;
    banner.hidden = false;
    form.hidden = !askToken;
    document.body.classList.toggle("stale", state.snapshot !== null);
  }

  // -- polling --------------------------------------------------------------------------------

  /** Parses the snapshot, keeping the top-level `ts` as its exact integer text (ns exceed 2^53). */
  function parseSnapshot(text) {
    let tsText = null;
    const reviver = function (key, value, context) {
      if (key === "ts" && context && typeof context.source === "string" && Object.hasOwn(this, "mode")) {
        tsText = context.source;
      }
      return value;
    };
    const snap = JSON.parse(text, reviver);
    if (snap === null || typeof snap !== "object" || !snap.pnl || !snap.risk) {
      throw new Error("not a snapshot");
    }
    snap.tsText = tsText !== null ? tsText : String(snap.ts);
    return snap;
  }

  function schedule() {
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(poll, POLL_MS);
  }

  function pollNow() {
    if (state.inFlight) {
      state.again = true;
      return;
    }
    window.clearTimeout(state.timer);
    poll();
  }

  async function poll() {
    if (!token()) {
      setStatus("no-token", "No admin token: open this page as http://HOST:PORT/#token=YOUR_TOKEN, or enter it here.", true);
      return; // polling starts again when a token is entered
    }
    state.inFlight = true;
    const abort = new AbortController();
    const timeout = window.setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const resp = await fetch("api/snapshot", { headers: authHeaders(), cache: "no-store", signal: abort.signal });
      if (resp.status === 401 || resp.status === 403) {
        authFailed(resp.status);
        return;
      }
      if (!resp.ok) {
        setStatus("error", "The node answered HTTP " + resp.status + " " + resp.statusText + " to api/snapshot.", false);
        return;
      }
      const snap = parseSnapshot(await resp.text());
      state.unreachableSince = null;
      render(snap);
      setStatus("ok");
    } catch (err) {
      if (err instanceof SyntaxError || (err instanceof Error && err.message === "not a snapshot")) {
        setStatus("error", "Unexpected answer from the node: " + err.message, false);
      } else {
        if (state.unreachableSince === null) state.unreachableSince = new Date();
        const since = state.unreachableSince.toISOString().slice(11, 19);
        const shown = state.snapshot ? " Showing the last data received." : "";
        setStatus("unreachable", "Node unreachable since " + since + " UTC." + shown, false);
      }
    } finally {
      window.clearTimeout(timeout);
      state.inFlight = false;
      if (token() && !state.authRefused) {
        if (state.again) {
          state.again = false;
          poll();
        } else {
          schedule();
        }
      }
    }
  }

  /** Stops polling until another token is entered: repeating a refused token is pointless. */
  function authFailed(status) {
    state.authRefused = true;
    const message =
      status === 401
        ? "The node wants an admin token (401 Unauthorized): enter it here."
        : "The node refused this admin token (403 Forbidden): enter the right one.";
    setStatus(status === 401 ? "unauthorized" : "forbidden", message, true);
  }

  // -- rendering ------------------------------------------------------------------------------

  function render(snap) {
    state.snapshot = snap;
    state.updates += 1;
    renderHeader(snap);
    renderPnl(snap.pnl);
    renderPositions(snap.positions || []);
    renderVenues(snap.venues || [], snap.ts);
    renderOrders(snap.orders || []);
    renderBooks(snap.books || []);
    renderLatency((snap.latency || {}).tick_to_trade_us || null);
    renderAlerts(snap.alerts || []);
    drawEquityCurve(el("equity-chart"), snap.equity_curve || []);
    el("last-update").textContent = "node time " + utcTime(snap.ts) + " UTC · update " + state.updates;
    document.body.dataset.snapshotTs = snap.tsText;
    document.body.dataset.updates = String(state.updates);
  }

  function renderHeader(snap) {
    el("node").textContent = snap.node;
    el("mode").textContent = snap.mode;
    const risk = el("risk-state");
    risk.textContent = snap.risk.state;
    risk.dataset.state = snap.risk.state;
    el("risk-reason").textContent = snap.risk.reason || "";
    el("resume-button").disabled = snap.risk.state === "ACTIVE";
    document.title = "tradeloop " + snap.node + " · " + snap.risk.state;
  }

  function signClass(text) {
    if (typeof text !== "string") return "";
    if (text.startsWith("-")) return "neg";
    return /[1-9]/.test(text) ? "pos" : "";
  }

  function renderPnl(pnl) {
    for (const key of ["equity", "total", "realized", "unrealized", "fees"]) {
      const node = el("pnl-" + key);
      node.textContent = pnl[key];
      node.className = key === "equity" || key === "fees" ? "" : signClass(pnl[key]);
    }
  }

  function cell(text, className, testid) {
    const td = make("td", text === null || text === undefined ? "—" : text, className);
    if (testid) td.dataset.testid = testid;
    return td;
  }

  function emptyRow(columns, text) {
    const tr = make("tr", null, "empty");
    const td = make("td", text);
    td.colSpan = columns;
    tr.append(td);
    return tr;
  }

  function renderPositions(positions) {
    const rows = positions.map((p) => {
      const tr = make("tr");
      tr.dataset.testid = "position-row";
      tr.dataset.instrument = p.instrument;
      tr.append(
        cell(p.instrument, "", "position-instrument"),
        cell(p.qty, "num " + signClass(p.qty), "position-qty"),
        cell(p.mark, "num", "position-mark"),
      );
      return tr;
    });
    el("positions").replaceChildren(...(rows.length ? rows : [emptyRow(3, "no positions")]));
  }

  function renderVenues(venues, nowTs) {
    const rows = venues.map((v) => {
      const tr = make("tr");
      tr.dataset.testid = "venue-row";
      tr.dataset.venue = v.venue;
      const health = cell(v.connected ? "● connected" : "● disconnected", v.connected ? "ok" : "bad", "venue-health");
      let age = "never";
      if (v.last_data_ts !== null && v.last_data_ts !== undefined) {
        age = Math.max(0, (Number(nowTs) - Number(v.last_data_ts)) / 1e9).toFixed(2) + " s ago";
      }
      tr.append(cell(v.venue), health, cell(v.books, "num"), cell(age, "num"));
      return tr;
    });
    el("venues").replaceChildren(...(rows.length ? rows : [emptyRow(4, "no venues")]));
  }

  function renderOrders(orders) {
    el("order-count").textContent = "(" + orders.length + ")";
    const rows = orders.map((o) => {
      const tr = make("tr");
      tr.dataset.testid = "order-row";
      tr.dataset.clientOrderId = o.client_order_id;
      tr.append(
        cell(o.client_order_id, "mono"),
        cell(o.instrument),
        cell(o.side, o.side === "BUY" ? "buy" : "sell"),
        cell(o.price === null ? "market" : o.price, "num"),
        cell(o.qty, "num"),
        cell(o.filled_qty, "num"),
        cell(o.status),
      );
      return tr;
    });
    el("orders").replaceChildren(...(rows.length ? rows : [emptyRow(7, "no open orders")]));
  }

  function renderBooks(books) {
    const boxes = books.map((b) => {
      const box = make("div", null, "book" + (b.valid ? "" : " invalid"));
      box.dataset.testid = "book";
      box.dataset.instrument = b.instrument;
      const title = make("h3", b.instrument);
      if (!b.valid) title.append(make("span", "INVALID", "flag"));
      const table = make("table");
      const head = make("tr");
      head.append(make("th", "bid qty", "num"), make("th", "bid", "num"), make("th", "ask", "num"), make("th", "ask qty", "num"));
      const thead = make("thead");
      thead.append(head);
      const tbody = make("tbody");
      const bids = b.bids || [];
      const asks = b.asks || [];
      for (let i = 0; i < BOOK_LEVELS; i += 1) {
        const tr = make("tr");
        const bid = bids[i] || ["", ""];
        const ask = asks[i] || ["", ""];
        tr.append(cell(bid[1], "num bidq"), cell(bid[0], "num bid"), cell(ask[0], "num ask"), cell(ask[1], "num askq"));
        tbody.append(tr);
      }
      table.append(thead, tbody);
      box.append(title, table);
      return box;
    });
    el("books").replaceChildren(...(boxes.length ? boxes : [make("p", "no books", "empty")]));
  }

  function renderLatency(hist) {
    el("latency-p50").textContent = formatMicros(hist ? hist.p50 : null);
    el("latency-p99").textContent = formatMicros(hist ? hist.p99 : null);
    el("latency-count").textContent = hist ? String(hist.count) : "—";
    drawHistogram(el("latency-chart"), hist ? histogramBars(hist.buckets || [], hist.count || 0) : []);
  }

  function renderAlerts(alerts) {
    const items = alerts
      .slice(-MAX_ALERTS)
      .reverse()
      .map((a) => {
        const li = make("li");
        li.dataset.testid = "alert";
        li.dataset.kind = a.kind;
        li.append(make("time", utcTime(a.ts)), make("span", a.kind, "kind"), make("span", a.message, "message"));
        return li;
      });
    el("alerts").replaceChildren(...(items.length ? items : [make("li", "no alerts", "empty")]));
  }

  // -- formatting -----------------------------------------------------------------------------

  function utcTime(ns) {
    const ms = Number(ns) / 1e6;
    if (!Number.isFinite(ms)) return "—";
    return new Date(ms).toISOString().slice(11, 23);
  }

  function trimNumber(x, digits) {
    return String(Number(x.toFixed(digits)));
  }

  function formatMicros(us) {
    if (us === null || us === undefined || !Number.isFinite(us)) return "—";
    if (us < 1000) return trimNumber(us, 1) + " µs";
    if (us < 1e6) return trimNumber(us / 1000, 2) + " ms";
    return trimNumber(us / 1e6, 2) + " s";
  }

  function boundLabel(us) {
    if (us < 1000) return trimNumber(us, 1) + "µs";
    if (us < 1e6) return trimNumber(us / 1000, 2) + "ms";
    return trimNumber(us / 1e6, 2) + "s";
  }

  /**
   * Turns cumulative buckets [[le_us, cumulative], ...] into per-bucket bars. A bound that is not a
   * finite number (null, "+Inf") is the overflow bucket; samples counted beyond the last bucket are
   * shown as overflow too. Leading and trailing empty buckets are trimmed (one kept for context).
   */
  function histogramBars(buckets, count) {
    const bars = [];
    let previous = 0;
    let lastBound = null;
    for (const [le, cumulative] of buckets) {
      const bound = le === null || le === undefined ? Infinity : Number(le);
      const n = Math.max(0, Number(cumulative) - previous);
      previous = Math.max(previous, Number(cumulative));
      if (Number.isFinite(bound)) {
        bars.push({ label: "≤" + boundLabel(bound), count: n });
        lastBound = bound;
      } else {
        bars.push({ label: lastBound === null ? "all" : ">" + boundLabel(lastBound), count: n });
      }
    }
    if (Number(count) > previous) {
      bars.push({ label: lastBound === null ? "all" : ">" + boundLabel(lastBound), count: Number(count) - previous });
    }
    let first = bars.findIndex((b) => b.count > 0);
    if (first < 0) return [];
    let last = bars.length - 1;
    while (bars[last].count === 0) last -= 1;
    first = Math.max(0, first - 1);
    last = Math.min(bars.length - 1, last + 1);
    return bars.slice(first, last + 1);
  }

  // -- charts ---------------------------------------------------------------------------------

  const COLORS = {
    axis: "#8a94a6",
    grid: "#2a3242",
    text: "#c5cedd",
    line: "#4ea1ff",
    fill: "rgba(78, 161, 255, 0.15)",
    bar: "#7bc67b",
  };

  /** Sizes the canvas to its CSS box at the device pixel ratio; returns a context in CSS pixels. */
  function prepareCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const rect = canvas.getBoundingClientRect();
    const width = Math.max(1, Math.round(rect.width));
    const height = Math.max(1, Math.round(rect.height));
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
    ctx.textBaseline = "middle";
    return { ctx, width, height };
  }

  function placeholder(ctx, width, height, text) {
    ctx.fillStyle = COLORS.axis;
    ctx.textAlign = "center";
    ctx.fillText(text, width / 2, height / 2);
  }

  /** Equity over time; the axis labels are the API's own strings for the lowest and highest point. */
  function drawEquityCurve(canvas, points) {
    const { ctx, width, height } = prepareCanvas(canvas);
    canvas.dataset.points = String(points.length);
    if (points.length < 2) {
      placeholder(ctx, width, height, "equity curve: waiting for samples");
      return;
    }
    const xs = points.map((p) => Number(p[0]));
    const ys = points.map((p) => Number(p[1]));
    let lo = 0;
    let hi = 0;
    ys.forEach((y, i) => {
      if (y < ys[lo]) lo = i;
      if (y > ys[hi]) hi = i;
    });
    const left = 8;
    const right = 8;
    const top = 16;
    const bottom = 18;
    const x0 = xs[0];
    const xSpan = Math.max(1, xs[xs.length - 1] - x0);
    const yMin = ys[lo];
    const ySpan = ys[hi] - yMin || Math.max(1, Math.abs(yMin) * 1e-9);
    const px = (x) => left + ((x - x0) / xSpan) * (width - left - right);
    const py = (y) => (ys[hi] === yMin ? (top + height - bottom) / 2 : top + (1 - (y - yMin) / ySpan) * (height - top - bottom));

    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1;
    for (const y of [top, height - bottom]) {
      ctx.beginPath();
      ctx.moveTo(left, y + 0.5);
      ctx.lineTo(width - right, y + 0.5);
      ctx.stroke();
    }
    ctx.beginPath();
    ctx.moveTo(px(xs[0]), py(ys[0]));
    for (let i = 1; i < xs.length; i += 1) ctx.lineTo(px(xs[i]), py(ys[i]));
    ctx.strokeStyle = COLORS.line;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(px(xs[xs.length - 1]), height - bottom);
    ctx.lineTo(px(xs[0]), height - bottom);
    ctx.closePath();
    ctx.fillStyle = COLORS.fill;
    ctx.fill();

    ctx.fillStyle = COLORS.text;
    ctx.textAlign = "left";
    ctx.fillText("high " + points[hi][1], left, top - 8);
    ctx.textAlign = "right";
    ctx.fillText("low " + points[lo][1], width - right, top - 8);
    ctx.fillStyle = COLORS.axis;
    ctx.textAlign = "left";
    ctx.fillText(utcTime(points[0][0]).slice(0, 8), left, height - bottom / 2);
    ctx.textAlign = "right";
    ctx.fillText(utcTime(points[points.length - 1][0]).slice(0, 8) + " UTC", width - right, height - bottom / 2);
  }

  function drawHistogram(canvas, bars) {
    const { ctx, width, height } = prepareCanvas(canvas);
    canvas.dataset.bars = String(bars.length);
    if (!bars.length) {
      placeholder(ctx, width, height, "no tick-to-trade samples yet");
      return;
    }
    const top = 14;
    const bottom = 30;
    const left = 6;
    const slot = (width - 2 * left) / bars.length;
    const peak = Math.max(...bars.map((b) => b.count));
    const every = Math.max(1, Math.ceil(bars.length / Math.max(1, Math.floor((width - 2 * left) / 48))));
    bars.forEach((bar, i) => {
      const h = peak ? (bar.count / peak) * (height - top - bottom) : 0;
      const x = left + i * slot;
      ctx.fillStyle = COLORS.bar;
      ctx.fillRect(x + 1, height - bottom - h, Math.max(1, slot - 2), h);
      ctx.textAlign = "center";
      if (bar.count) {
        ctx.fillStyle = COLORS.text;
        ctx.fillText(String(bar.count), x + slot / 2, height - bottom - h - 7);
      }
      if (i % every === 0) {
        ctx.fillStyle = COLORS.axis;
        ctx.fillText(bar.label, x + slot / 2, height - bottom + 10 + (i / every) % 2 * 11);
      }
    });
  }

  // -- controls -------------------------------------------------------------------------------

  async function control(action) {
    const reasonInput = el("control-reason");
    const reason = reasonInput.value.trim() || (action === "kill" ? "kill switch from the dashboard" : "resume from the dashboard");
    const question =
      action === "kill"
        ? "KILL SWITCH: halt trading and cancel every open order on every venue?\n\nReason: " + reason
        : "Resume trading (risk state back to ACTIVE)?\n\nReason: " + reason;
    if (!window.confirm(question)) return;
    if (!token()) {
      setStatus("no-token", "No admin token: enter it here before using the controls.", true);
      return;
    }
    const result = el("control-result");
    const buttons = [el("kill-button"), el("resume-button")];
    buttons.forEach((b) => (b.disabled = true));
    const label = action === "kill" ? "kill switch" : "resume";
    try {
      const resp = await fetch("api/" + action, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
        body: JSON.stringify({ reason }),
        cache: "no-store",
      });
      if (resp.status === 401 || resp.status === 403) {
        authFailed(resp.status);
        result.textContent = label + " not sent: token refused";
      } else if (!resp.ok) {
        const detail = (await resp.text()).slice(0, 200);
        result.textContent = label + " failed: HTTP " + resp.status + (detail ? " " + detail : "");
      } else {
        const body = await resp.json();
        result.textContent = label + " → " + body.state + " at " + new Date().toISOString().slice(11, 19) + " UTC";
        reasonInput.value = "";
      }
    } catch (err) {
      result.textContent = label + " failed: node unreachable";
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      if (state.snapshot) el("resume-button").disabled = state.snapshot.risk.state === "ACTIVE";
      pollNow();
    }
  }

  function start() {
    takeTokenFromFragment();
    el("kill-button").addEventListener("click", () => control("kill"));
    el("resume-button").addEventListener("click", () => control("resume"));
    el("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = el("token-input");
      const value = input.value.trim();
      if (!value) return;
      window.sessionStorage.setItem(TOKEN_KEY, value);
      input.value = "";
      el("token-form").hidden = true;
      state.authRefused = false;
      pollNow();
    });
    window.addEventListener("resize", () => {
      if (state.snapshot) {
        drawEquityCurve(el("equity-chart"), state.snapshot.equity_curve || []);
        renderLatency((state.snapshot.latency || {}).tick_to_trade_us || null);
      }
    });
    poll();
  }

  start();
})();
