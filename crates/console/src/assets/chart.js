// Small SVG charts for the console: bar, line (a time series when x is a time), pie, and
// sparklines that update in place. No dependencies; colours come from CSS classes (.s0..s7)
// so the dark theme applies; every mark carries a <title> as its tooltip.

const NS = "http://www.w3.org/2000/svg";
const SERIES_CLASSES = 8;

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.append(node);
  return node;
}

function titled(node, text) {
  el("title", null, node).textContent = text;
  return node;
}

/** A compact number: 1234 → "1.23k", 0.5 → "0.5". */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 1000) return `${+(v / 1e3).toFixed(2)}k`;
  if (Number.isInteger(v)) return String(v);
  return String(+v.toPrecision(3));
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

/** A time label fitting the span shown: HH:MM:SS, HH:MM or MM-DD HH:MM (local time). */
export function formatTime(ms, spanMs) {
  const d = new Date(ms);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  if (spanMs !== undefined && spanMs <= 15 * 60 * 1000) return `${hm}:${pad2(d.getSeconds())}`;
  if (spanMs !== undefined && spanMs > 2 * 86400 * 1000) {
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  }
  if (spanMs !== undefined && spanMs > 20 * 3600 * 1000) {
    return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${hm}`;
  }
  return hm;
}

/** "Nice" tick values covering [min, max]. */
function ticks(min, max, count) {
  if (min === max) {
    if (min === 0) return [0, 1];
    return min > 0 ? [0, min] : [min, 0];
  }
  const span = max - min;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  const start = Math.floor(min / step) * step;
  for (let v = start; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  if (out[out.length - 1] < max) out.push(+(out[out.length - 1] + step).toPrecision(12));
  return out;
}

/** Time ticks at round intervals. */
function timeTicks(min, max, count) {
  const span = Math.max(1, max - min);
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    43200, 86400, 172800, 604800].map((s) => s * 1000);
  const step = steps.find((s) => span / s <= count) || steps[steps.length - 1];
  const offset = new Date(min).getTimezoneOffset() * 60000;
  const out = [];
  let t = Math.ceil((min - offset) / step) * step + offset;
  for (; t <= max; t += step) out.push(t);
  return out;
}

/** Converts a SQL value to a time in ms, or NaN. */
export function toTime(value) {
  if (value === null || value === undefined) return NaN;
  if (typeof value === "number") return value;
  let s = String(value).trim();
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) s += "T00:00:00Z";
  else if (/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s)) s = `${s.replace(" ", "T")}Z`;
  return Date.parse(s);
}

function toNumber(value) {
  if (value === null || value === undefined || value === "") return NaN;
  if (typeof value === "boolean") return value ? 1 : 0;
  return Number(value);
}

/** A sparkline: a small line (and area) over the latest values, redrawn in place. */
export class Sparkline {
  constructor(label, width = 120, height = 28) {
    this.label = label;
    this.width = width;
    this.height = height;
    this.svg = el("svg", {
      class: "sparkline",
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      preserveAspectRatio: "none",
    });
    this.area = el("path", { class: "spark-area" }, this.svg);
    this.line = el("polyline", { class: "spark-line", fill: "none" }, this.svg);
    this.title = el("title", null, this.svg);
    this.values = [];
  }

  /** Replaces the values (oldest first) and redraws. */
  update(values) {
    this.values = values;
    const { width: w, height: h } = this;
    const finite = values.filter(Number.isFinite);
    const max = Math.max(1e-9, ...finite);
    const n = values.length;
    let pts = "";
    for (let i = 0; i < n; i++) {
      const v = Number.isFinite(values[i]) ? values[i] : 0;
      const x = n === 1 ? w : (i / (n - 1)) * w;
      const y = h - 1 - (v / max) * (h - 3);
      pts += `${x.toFixed(1)},${y.toFixed(1)} `;
    }
    pts = pts.trim();
    this.line.setAttribute("points", pts);
    this.area.setAttribute("d", n ? `M0,${h} L${pts.replaceAll(" ", " L")} L${w},${h} Z` : "");
    const last = finite.length ? finite[finite.length - 1] : null;
    const text = `${this.label}: latest ${formatNumber(last)}, max ${formatNumber(finite.length ? max : null)}`;
    this.title.textContent = text;
    this.svg.setAttribute("aria-label", text);
  }
}

/**
 * Draws a chart into `container` (replacing what it held).
 * spec: { type: "bar"|"line"|"pie", x: { label, values, time }, series: [{ name, values }],
 *         title?, height? }
 */
export function drawChart(container, spec) {
  const width = Math.max(260, Math.round(container.clientWidth || 600));
  const height = spec.height || (spec.type === "pie" ? 260 : 240);
  const svg = el("svg", {
    class: `chart chart-${spec.type}`,
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    height,
    role: "img",
    "aria-label": spec.title || `${spec.type} chart`,
  });
  if (spec.title) titled(svg, spec.title);
  const series = spec.series.filter((s) => s.values.length);
  if (!series.length || !spec.x.values.length) {
    const t = el("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" }, svg);
    t.textContent = "No data";
  } else if (spec.type === "pie") {
    drawPie(svg, spec, width, height);
  } else {
    drawXY(svg, spec, width, height);
  }
  container.replaceChildren(svg);
  return svg;
}

function legend(svg, names, x, y, maxWidth) {
  let cx = x;
  let cy = y;
  names.forEach((name, i) => {
    const w = 18 + Math.min(24, String(name).length) * 7;
    if (cx + w > x + maxWidth && cx > x) {
      cx = x;
      cy += 16;
    }
    el("rect", { x: cx, y: cy - 9, width: 10, height: 10, class: `s${i % SERIES_CLASSES} fill` }, svg);
    const t = el("text", { x: cx + 14, y: cy, class: "chart-legend" }, svg);
    t.textContent = String(name).slice(0, 24);
    cx += w;
  });
  return cy;
}

function drawXY(svg, spec, width, height) {
  const isLine = spec.type === "line";
  const time = Boolean(spec.x.time);
  const xs = time ? spec.x.values.map(toTime) : spec.x.values;
  const series = spec.series.map((s) => ({ name: s.name, values: s.values.map(toNumber) }));
  let min = 0;
  let max = 0;
  for (const s of series) {
    for (const v of s.values) {
      if (Number.isFinite(v)) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
  }
  const yTicks = ticks(min, max, 4);
  const yMin = yTicks[0];
  const yMax = yTicks[yTicks.length - 1];
  const labelWidth = Math.max(...yTicks.map((t) => formatNumber(t).length)) * 7 + 10;
  const legendRows = series.length > 1 ? 20 : 0;
  const m = { l: labelWidth + 4, r: 12, t: 10 + legendRows, b: 34 };
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const yPos = (v) => m.t + ph - ((v - yMin) / (yMax - yMin || 1)) * ph;
  if (series.length > 1) legend(svg, series.map((s) => s.name), m.l, 14, pw);

  const axes = el("g", { class: "chart-axes" }, svg);
  for (const t of yTicks) {
    const y = yPos(t);
    el("line", { x1: m.l, x2: m.l + pw, y1: y, y2: y, class: "grid" }, axes);
    const label = el("text", { x: m.l - 6, y: y + 4, "text-anchor": "end" }, axes);
    label.textContent = formatNumber(t);
  }
  el("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, class: "axis" }, axes);
  el("line", { x1: m.l, x2: m.l + pw, y1: yPos(Math.max(yMin, Math.min(0, yMax))), y2: yPos(Math.max(yMin, Math.min(0, yMax))), class: "axis" }, axes);

  const n = xs.length;
  let xPos;
  if (time && isLine) {
    const finite = xs.filter(Number.isFinite);
    const xMin = Math.min(...finite);
    const xMax = Math.max(...finite);
    const span = xMax - xMin;
    xPos = (i) => m.l + (span ? ((xs[i] - xMin) / span) * pw : pw / 2);
    const at = (t) => m.l + (span ? ((t - xMin) / span) * pw : pw / 2);
    for (const t of timeTicks(xMin, xMax, Math.max(2, Math.floor(pw / 90)))) {
      const label = el("text", { x: at(t), y: m.t + ph + 18, "text-anchor": "middle" }, axes);
      label.textContent = formatTime(t, span);
      el("line", { x1: at(t), x2: at(t), y1: m.t + ph, y2: m.t + ph + 4, class: "axis" }, axes);
    }
    xs.label = (i) => new Date(xs[i]).toLocaleString();
  } else {
    const band = pw / Math.max(1, n);
    xPos = (i) => m.l + band * (i + 0.5);
    const every = Math.max(1, Math.ceil((n * 60) / pw));
    const maxChars = Math.max(3, Math.floor((band * every) / 7));
    for (let i = 0; i < n; i += every) {
      const raw = time ? formatTime(xs[i], 86400000) : String(spec.x.values[i] ?? "null");
      const label = el("text", { x: xPos(i), y: m.t + ph + 18, "text-anchor": "middle" }, axes);
      label.textContent = raw.length > maxChars ? `${raw.slice(0, maxChars - 1)}…` : raw;
    }
    xs.label = (i) => String(spec.x.values[i] ?? "null");
  }
  if (spec.x.label) {
    const t = el("text", { x: m.l + pw / 2, y: height - 2, "text-anchor": "middle", class: "chart-axis-label" }, axes);
    t.textContent = spec.x.label;
  }

  const marks = el("g", { class: "chart-marks" }, svg);
  if (isLine) {
    series.forEach((s, k) => {
      const cls = `s${k % SERIES_CLASSES}`;
      let d = "";
      let pen = false;
      for (let i = 0; i < n; i++) {
        const v = s.values[i];
        if (!Number.isFinite(v) || !Number.isFinite(time ? xs[i] : i)) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${xPos(i).toFixed(1)},${yPos(v).toFixed(1)}`;
        pen = true;
      }
      el("path", { d, class: `${cls} stroke line`, fill: "none" }, marks);
      const showDots = n <= 400;
      if (showDots) {
        for (let i = 0; i < n; i++) {
          const v = s.values[i];
          if (!Number.isFinite(v)) continue;
          const dot = el("circle", { cx: xPos(i).toFixed(1), cy: yPos(v).toFixed(1), r: n <= 60 ? 3 : 2, class: `${cls} fill dot` }, marks);
          titled(dot, `${s.name} @ ${xs.label(i)}: ${formatNumber(v)}`);
        }
      }
    });
  } else {
    const band = pw / Math.max(1, n);
    const inner = band * 0.8;
    const bw = Math.max(1, inner / series.length);
    const zero = yPos(Math.max(yMin, Math.min(0, yMax)));
    series.forEach((s, k) => {
      const cls = `s${k % SERIES_CLASSES}`;
      for (let i = 0; i < n; i++) {
        const v = s.values[i];
        if (!Number.isFinite(v)) continue;
        const x = m.l + band * i + band * 0.1 + bw * k;
        const y = yPos(v);
        const bar = el("rect", {
          x: x.toFixed(1),
          y: Math.min(y, zero).toFixed(1),
          width: Math.max(1, bw - 1).toFixed(1),
          height: Math.max(0.5, Math.abs(zero - y)).toFixed(1),
          class: `${cls} fill bar`,
        }, marks);
        titled(bar, `${xs.label(i)} — ${s.name}: ${formatNumber(v)}`);
      }
    });
  }
}

function drawPie(svg, spec, width, height) {
  const s = spec.series[0];
  const items = spec.x.values
    .map((x, i) => ({ label: String(x ?? "null"), value: toNumber(s.values[i]) }))
    .filter((d) => Number.isFinite(d.value) && d.value > 0);
  const total = items.reduce((a, d) => a + d.value, 0);
  if (!total) {
    const t = el("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" }, svg);
    t.textContent = "No positive values";
    return;
  }
  const narrow = width < 420;
  const r = Math.min(height / 2 - 12, narrow ? width / 2 - 12 : width / 3);
  const cx = narrow ? width / 2 : r + 16;
  const cy = height / 2;
  let angle = -Math.PI / 2;
  const g = el("g", { class: "chart-marks" }, svg);
  items.forEach((d, i) => {
    const cls = `s${i % SERIES_CLASSES} fill slice`;
    const share = d.value / total;
    const text = `${d.label}: ${formatNumber(d.value)} (${(share * 100).toFixed(1)}%)`;
    if (share >= 0.9999) {
      titled(el("circle", { cx, cy, r, class: cls }, g), text);
      return;
    }
    const a2 = angle + share * 2 * Math.PI;
    const large = share > 0.5 ? 1 : 0;
    const p = (a) => `${(cx + r * Math.cos(a)).toFixed(2)},${(cy + r * Math.sin(a)).toFixed(2)}`;
    titled(el("path", { d: `M${cx},${cy} L${p(angle)} A${r},${r} 0 ${large} 1 ${p(a2)} Z`, class: cls }, g), text);
    angle = a2;
  });
  if (!narrow) {
    const lx = cx + r + 24;
    items.slice(0, Math.floor((height - 20) / 18)).forEach((d, i) => {
      const y = 20 + i * 18;
      el("rect", { x: lx, y: y - 9, width: 10, height: 10, class: `s${i % SERIES_CLASSES} fill` }, svg);
      const t = el("text", { x: lx + 14, y, class: "chart-legend" }, svg);
      t.textContent = `${d.label.slice(0, 28)} — ${formatNumber(d.value)} (${((d.value / total) * 100).toFixed(1)}%)`;
    });
  }
}
