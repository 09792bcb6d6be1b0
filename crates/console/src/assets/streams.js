// Streams: the overview (every stream with live sparklines, updated in place) and a stream's
// detail page (configuration, metric charts over a chosen range, errors, live tail, objects).

import { consoleApi, firehose } from "./api.js";
import { Sparkline, drawChart, formatNumber } from "./chart.js";
import { h, setStatus, confirmDialog, table, poll, formatBytes, formatDate, dropUnseenRows } from "./ui.js";

const HISTORY = 30;

/** The overview's metric columns: header, how to read the value from a metrics map. */
const COLUMNS = [
  { key: "in", label: "Incoming records", read: (m) => m.IncomingRecords },
  { key: "out", label: "Delivered records", read: (m) => m["DeliveryToS3.Records"] },
  { key: "thr", label: "Throttled", read: (m) => m.ThrottledRecords },
  { key: "fresh", label: "Data freshness (s)", read: (m) => m["DeliveryToS3.DataFreshness"] },
  { key: "fail", label: "Failures", read: failures },
];

/** Processing, conversion and other record failures: every *Fail* counter of records. */
function failures(m) {
  let sum;
  for (const [k, v] of Object.entries(m || {})) {
    if (/fail/i.test(k) && !/bytes/i.test(k) && Number.isFinite(v)) sum = (sum || 0) + v;
  }
  return sum;
}

export function destinationOf(d) {
  const dest = (d.Destinations || [])[0] || {};
  const http = dest.HttpEndpointDestinationDescription;
  if (http) return (http.EndpointConfiguration || {}).Url || "";
  const s3 = dest.ExtendedS3DestinationDescription || dest.S3DestinationDescription;
  return s3 ? `${s3.BucketARN.replace("arn:aws:s3:::", "s3://")}/${s3.Prefix || ""}` : "";
}

function perf() {
  window.__consolePerf ||= { firstChartMs: null, refreshDomMs: [], refreshTotalMs: [] };
  return window.__consolePerf;
}

async function deleteStream(name, after) {
  const ok = await confirmDialog(
    `Delete the delivery stream ${name}? Records not yet delivered are lost.`,
    "Delete stream",
  );
  if (!ok) return;
  try {
    await firehose("DeleteDeliveryStream", { DeliveryStreamName: name });
    setStatus(`Deleted ${name}.`);
    await after?.();
  } catch (e) {
    setStatus(`Could not delete ${name}: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Overview

export async function renderOverview(view) {
  const rowsBody = h("tbody#stream-rows");
  const empty = h("p#no-streams", { hidden: true }, "No delivery streams yet. ", h("a", { href: "#/create" }, "Create one"), ".");
  const note = h("p.muted#overview-note");
  const section = h("section#streams", { "aria-labelledby": "streams-title" },
    h("div.title-row",
      h("h2#streams-title", "Delivery streams"),
      h("a.button", { href: "#/create" }, "Create stream")),
    note,
    h("div.table-wrap",
      h("table.overview",
        h("thead", h("tr",
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "Status"),
          h("th.col-dest", { scope: "col" }, "Destination"),
          COLUMNS.map((c) => h("th.metric", { scope: "col" }, c.label)),
          h("th", { scope: "col" }, h("span.visually-hidden", "Actions")))),
        rowsBody)),
    empty);
  view.append(section);

  const rows = new Map(); // name -> { tr, status, dest, cells: {key: {num, spark, history}} }
  let intervalS = 10;
  let fallback = false;
  const seedQueue = [];
  let seeding = 0;

  function makeRow(name) {
    const status = h("td.status");
    const dest = h("td.col-dest");
    const cells = {};
    const metricTds = COLUMNS.map((c) => {
      const spark = new Sparkline(`${name} ${c.label}`);
      const num = h("span.metric-value", "–");
      cells[c.key] = { num, spark, history: [] };
      return h("td.metric", { "data-metric": c.key, "data-label": c.label }, num, spark.svg);
    });
    const del = h("button.secondary.small", {
      type: "button",
      "aria-label": `Delete ${name}`,
      on: { click: () => deleteStream(name, refresh) },
    }, "Delete");
    const tr = h("tr", { "data-stream": name },
      h("th", { scope: "row" }, h("a", { href: `#/streams/${encodeURIComponent(name)}` }, name)),
      status, dest, metricTds,
      h("td.actions", h("a.button.secondary.small", { href: `#/edit/${encodeURIComponent(name)}`, "aria-label": `Edit ${name}` }, "Edit"), del));
    const row = { tr, status, dest, cells, name };
    rows.set(name, row);
    seedQueue.push(row);
    return row;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function drawRow(row) {
    for (const c of COLUMNS) {
      const cell = row.cells[c.key];
      const last = cell.history.length ? cell.history[cell.history.length - 1] : undefined;
      setText(cell.num, formatNumber(last));
      cell.spark.update(cell.history);
    }
    const p = perf();
    if (p.firstChartMs === null && row.cells.in.history.length) p.firstChartMs = performance.now();
  }

  // Fills a new row's sparklines with the last few minutes, a few streams at a time.
  function pumpSeeds() {
    while (seeding < 4 && seedQueue.length && !stopped) {
      const row = seedQueue.shift();
      if (fallback) continue;
      seeding++;
      consoleApi.metrics(row.name, "5m").then((m) => {
        if (stopped || rows.get(row.name) !== row) return;
        const points = (m.points || []).slice(-HISTORY);
        for (const c of COLUMNS) {
          const cell = row.cells[c.key];
          const seeded = points.map((p) => c.read(p.values || {}) ?? 0);
          // Keep what arrived meanwhile from the overview after the seeded points.
          cell.history = seeded.concat(cell.history.slice(1)).slice(-HISTORY);
        }
        drawRow(row);
      }).catch(() => {}).finally(() => {
        seeding--;
        pumpSeeds();
      });
    }
  }

  async function load() {
    if (!fallback) {
      try {
        return await consoleApi.overview();
      } catch (e) {
        if (e.status !== 404 && e.status !== 405) throw e;
        fallback = true;
      }
    }
    // Without the console's overview endpoint: the Firehose API, no metrics.
    const list = await firehose("ListDeliveryStreams", { Limit: 10000 });
    const streams = [];
    for (const name of list.DeliveryStreamNames) {
      try {
        const d = (await firehose("DescribeDeliveryStream", { DeliveryStreamName: name })).DeliveryStreamDescription;
        streams.push({ name, status: d.DeliveryStreamStatus, destination: destinationOf(d), latest: {} });
      } catch {
        // Deleted meanwhile.
      }
    }
    return { streams, interval_s: 10 };
  }

  let stopped = false;
  async function refresh() {
    const t0 = performance.now();
    const data = await load();
    if (stopped) return;
    const t1 = performance.now();
    intervalS = Math.max(1, data.interval_s || 10);
    setText(note, fallback
      ? "Metrics are not available from this server; showing the streams only."
      : `Live: counts are per ${intervalS} s interval (the latest one, sparklines over the last few minutes); refreshing every ${intervalS} s.`);
    const seen = new Set();
    const streams = [...data.streams].sort((a, b) => a.name.localeCompare(b.name));
    let prev = null;
    for (const s of streams) {
      seen.add(s.name);
      let row = rows.get(s.name);
      if (!row) {
        row = makeRow(s.name);
        if (prev) prev.tr.after(row.tr);
        else rowsBody.prepend(row.tr);
      }
      setText(row.status, s.status || "");
      row.status.dataset.status = s.status || "";
      setText(row.dest, s.destination || "");
      const latest = s.latest || {};
      for (const c of COLUMNS) {
        const v = c.read(latest);
        const cell = row.cells[c.key];
        if (!fallback) {
          cell.history.push(Number.isFinite(v) ? v : 0);
          if (cell.history.length > HISTORY) cell.history.shift();
        }
      }
      drawRow(row);
      prev = row;
    }
    dropUnseenRows(rows, seen);
    empty.hidden = rows.size > 0;
    pumpSeeds();
    const t2 = performance.now();
    const p = perf();
    p.refreshDomMs.push(t2 - t1);
    p.refreshTotalMs.push(t2 - t0);
    p.streams = rows.size;
    section.dataset.refreshes = String((Number(section.dataset.refreshes) || 0) + 1);
  }

  const stop = poll(refresh, () => intervalS);
  return () => {
    stopped = true;
    stop();
  };
}

// ---------------------------------------------------------------------------------------------
// Detail

const CHARTS = [
  { title: "Records", metrics: ["IncomingRecords", "DeliveryToS3.Records"] },
  { title: "Bytes", metrics: ["IncomingBytes", "DeliveryToS3.Bytes"] },
  { title: "Throttled records", metrics: ["ThrottledRecords"] },
  { title: "Data freshness (s)", metrics: ["DeliveryToS3.DataFreshness"] },
  { title: "Delivery success", metrics: ["DeliveryToS3.Success"] },
  { title: "Failures", metrics: null },
];

export async function renderDetail(view, name) {
  const described = await firehose("DescribeDeliveryStream", { DeliveryStreamName: name });
  const d = described.DeliveryStreamDescription;
  const dest = (d.Destinations || [])[0] || {};
  const s3 = dest.ExtendedS3DestinationDescription || dest.S3DestinationDescription || {};
  const hints = s3.BufferingHints || {};
  const stops = [];
  let stopped = false;

  const summary = [
    ["ARN", d.DeliveryStreamARN],
    ["Status", d.DeliveryStreamStatus],
    ["Type", d.DeliveryStreamType],
    ["Version", d.VersionId],
    ["Created", d.CreateTimestamp ? formatDate(typeof d.CreateTimestamp === "number" && d.CreateTimestamp < 1e11 ? d.CreateTimestamp * 1000 : Date.parse(d.CreateTimestamp) || d.CreateTimestamp) : "–"],
    ["Destination", destinationOf(d)],
    ["Error prefix", s3.ErrorOutputPrefix || "–"],
    ["Buffering", hints.SizeInMBs !== undefined ? `${hints.SizeInMBs} MiB / ${hints.IntervalInSeconds} s` : "–"],
    ["Compression", s3.CompressionFormat || "–"],
    ["Format conversion", s3.DataFormatConversionConfiguration?.Enabled === false || !s3.DataFormatConversionConfiguration ? "off"
      : `${s3.DataFormatConversionConfiguration.SchemaConfiguration?.DatabaseName}.${s3.DataFormatConversionConfiguration.SchemaConfiguration?.TableName}`],
    ["Dynamic partitioning", s3.DynamicPartitioningConfiguration?.Enabled ? "on" : "off"],
    ["Processing", s3.ProcessingConfiguration?.Enabled ? (s3.ProcessingConfiguration.Processors || []).map((p) => p.Type).join(", ") : "off"],
  ];

  const rangeButtons = ["5m", "1h", "24h"].map((r) =>
    h("button.secondary.small", { type: "button", "data-range": r, "aria-pressed": r === "5m" ? "true" : "false", on: { click: () => setRange(r) } }, r));
  const charts = h("div.charts#detail-charts");
  const chartBoxes = CHARTS.map((c) => {
    const box = h("div.chart-box");
    charts.append(h("figure.chart-card", h("figcaption", c.title), box));
    return box;
  });
  const errorsBox = h("div#detail-errors");
  const tailBox = h("div#detail-tail");
  const objectsBox = h("div#detail-objects");
  const tailPause = h("input#tail-pause", { type: "checkbox" });

  view.append(h("section#stream-detail", { "aria-labelledby": "detail-title" },
    h("p.crumbs", h("a", { href: "#/streams" }, "Streams"), " / "),
    h("div.title-row",
      h("h2#detail-title", name),
      h("div.actions",
        h("a.button.secondary", { href: `#/edit/${encodeURIComponent(name)}` }, "Edit"),
        h("button.danger", { type: "button", on: { click: () => deleteStream(name, () => { location.hash = "#/streams"; }) } }, "Delete"))),
    h("h3", "Configuration"),
    h("dl.summary", summary.map(([k, v]) => [h("dt", k), h("dd", String(v ?? "–"))])),
    h("details", h("summary", "Full description (JSON)"), h("pre.json#detail-json", JSON.stringify(d, null, 2))),
    h("div.title-row",
      h("h3", "Metrics"),
      h("div.segmented", { role: "group", "aria-label": "Time range" }, rangeButtons)),
    charts,
    h("h3", "Latest errors"), errorsBox,
    h("div.title-row", h("h3", "Live tail"), h("label.inline", tailPause, " Pause")),
    tailBox,
    h("h3", "Delivered objects"), objectsBox));

  let range = "5m";
  let stepS = 10;
  async function loadMetrics() {
    let m;
    try {
      m = await consoleApi.metrics(name, range);
    } catch (e) {
      chartBoxes.forEach((b) => b.replaceChildren(h("p.muted", e.status === 404 ? "Metrics are not available." : e.message)));
      return;
    }
    if (stopped) return;
    stepS = m.step_s || stepS;
    const points = m.points || [];
    const t = points.map((p) => p.t);
    const names = new Set();
    for (const p of points) for (const k of Object.keys(p.values || {})) names.add(k);
    CHARTS.forEach((c, i) => {
      const metrics = c.metrics || [...names].filter((k) => /fail/i.test(k) && !/bytes/i.test(k)).sort();
      const series = (metrics.length ? metrics : ["FailedConversion.Records"]).map((k) => ({
        name: k,
        values: points.map((p) => p.values?.[k] ?? null),
      }));
      drawChart(chartBoxes[i], { type: "line", x: { values: t, time: true }, series, title: `${name}: ${c.title}, last ${range}`, height: 180 });
    });
  }
  function setRange(r) {
    range = r;
    for (const b of rangeButtons) b.setAttribute("aria-pressed", String(b.dataset.range === r));
    loadMetrics();
  }

  async function loadErrors() {
    let data;
    try {
      data = await consoleApi.errors(name, 50);
    } catch (e) {
      errorsBox.replaceChildren(h("p.muted", e.message));
      return;
    }
    const errs = data.errors || [];
    errorsBox.replaceChildren(errs.length
      ? table(["Time", "Type", "Error code", "Message", "Error object"], errs.map((e) => [
        formatDate(e.time_ms), e.error_output_type || "", e.error_code || "", e.error_message || "", h("code", e.key || "")]))
      : h("p.muted", "No errors."));
  }

  async function loadTail() {
    if (tailPause.checked) return;
    let data;
    try {
      data = await consoleApi.tail(name, 20);
    } catch (e) {
      tailBox.replaceChildren(h("p.muted", e.message));
      return;
    }
    const recs = data.records || [];
    tailBox.replaceChildren(recs.length
      ? table(["Seq", "Arrival", "Bytes", "Data"], recs.map((r) => [
        String(r.seq), formatDate(r.arrival_ms), formatBytes(r.bytes),
        h("code.data", `${r.encoding && r.encoding !== "utf8" ? `[${r.encoding}] ` : ""}${r.data}${r.truncated ? " …" : ""}`)]), { className: "tail" })
      : h("p.muted", "No records yet."));
  }

  async function loadObjects() {
    let data;
    try {
      data = await consoleApi.objects(name, 100);
    } catch (e) {
      objectsBox.replaceChildren(h("p.muted", e.message));
      return;
    }
    const objs = data.objects || [];
    objectsBox.replaceChildren(objs.length
      ? table(["Key", "Kind", "Size", "Last modified"], objs.map((o) => [h("code", o.key), o.kind || "", formatBytes(o.size), formatDate(o.last_modified_ms)]))
      : h("p.muted", "No objects delivered yet."));
  }

  stops.push(poll(loadMetrics, () => Math.max(5, Math.min(60, stepS))));
  stops.push(poll(loadErrors, 10));
  stops.push(poll(loadTail, 3));
  stops.push(poll(loadObjects, 10));
  return () => {
    stopped = true;
    stops.forEach((s) => s());
  };
}
