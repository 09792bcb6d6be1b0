// The SQL editor: run a statement on /v1/query, see the rows, chart them (bar, line — a time
// series when x is a time column — or pie), download them as CSV, save the chart to a
// dashboard.

import { query, consoleApi } from "./api.js";
import { drawChart } from "./chart.js";
import { h, table, randomId, setStatus } from "./ui.js";

const DRAFT = "lakehose.sql.draft";
// Hive/Athena names and Arrow names (Int32, UInt64, Float64, Decimal128(10, 2), ...).
const NUMERIC = /^(tinyint|smallint|u?int|integer|bigint|double|float|real|decimal|numeric)/i;
const TIME = /^(timestamp|date)/i; // timestamp, Timestamp(ms), date, Date32

export const isNumericType = (t) => NUMERIC.test(t || "");
export const isTimeType = (t) => TIME.test(t || "");

/** A chart choice that fits a result: x the first non-numeric column, y the numeric others. */
export function defaultChart(columns) {
  if (!columns.length) return { type: "table", x: null, y: [] };
  const xCol = columns.find((c) => isTimeType(c.type)) || columns.find((c) => !isNumericType(c.type)) || columns[0];
  const y = columns.filter((c) => c !== xCol && isNumericType(c.type)).map((c) => c.name);
  return { type: isTimeType(xCol.type) ? "line" : "bar", x: xCol.name, y };
}

/** Draws a query result as the chart `chart` ({type, x, y}) or a table into `box`. */
export function drawResult(box, result, chart, title, height) {
  const columns = result.columns || [];
  const rows = result.rows || [];
  const xi = columns.findIndex((c) => c.name === chart.x);
  const ys = (chart.y || []).map((n) => columns.findIndex((c) => c.name === n)).filter((i) => i >= 0);
  if (chart.type === "table" || xi < 0 || !ys.length) {
    box.replaceChildren(resultTable(result, 200));
    return null;
  }
  let order = rows.map((_, i) => i);
  const time = isTimeType(columns[xi].type);
  if (time) {
    const t = rows.map((r) => Date.parse(String(r[xi]).replace(" ", "T")));
    order.sort((a, b) => t[a] - t[b]);
  }
  if (chart.type === "pie") order = order.slice(0, 50);
  else order = order.slice(0, 2000);
  return drawChart(box, {
    type: chart.type,
    title,
    height,
    x: { label: columns[xi].name, values: order.map((i) => rows[i][xi]), time },
    series: (chart.type === "pie" ? ys.slice(0, 1) : ys).map((i) => ({ name: columns[i].name, values: order.map((r) => rows[r][i]) })),
  });
}

export function resultTable(result, max = 1000) {
  const columns = result.columns || [];
  const rows = (result.rows || []).slice(0, max);
  if (!columns.length) return h("p.muted", "The statement returned no columns.");
  return table(columns.map((c) => h("span", c.name, h("small.type", ` ${c.type}`))), rows, { className: "results" });
}

function csvCell(v) {
  if (v === null || v === undefined) return "";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function toCsv(result) {
  const lines = [(result.columns || []).map((c) => csvCell(c.name)).join(",")];
  for (const r of result.rows || []) lines.push(r.map(csvCell).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

export async function renderSql(view) {
  const text = h("textarea#sql-text", { name: "sql", rows: 8, spellcheck: "false", "aria-keyshortcuts": "Control+Enter" });
  text.value = sessionStorage.getItem(DRAFT) || "SHOW DATABASES";
  const database = h("input#sql-database", { name: "database", value: "default", spellcheck: "false" });
  const run = h("button#sql-run", { type: "submit" }, "Run");
  const cancel = h("button#sql-cancel.secondary", { type: "button", disabled: true }, "Cancel");
  const error = h("p.error#sql-error", { role: "alert" });
  const meta = h("p.muted#sql-meta", { "aria-live": "polite" });
  const results = h("div#sql-results");
  const chartBox = h("div.chart-box#sql-chart");
  const chartType = h("select#chart-type", { name: "chartType" },
    ["table", "bar", "line", "pie"].map((t) => h("option", { value: t }, t === "table" ? "Table only" : t[0].toUpperCase() + t.slice(1))));
  const chartX = h("select#chart-x", { name: "chartX" });
  const chartY = h("fieldset#chart-y.checks", h("legend", "Y columns"));
  const csv = h("button#sql-csv.secondary", { type: "button", disabled: true }, "Download CSV");
  const saveDashboard = h("select#save-dashboard", { name: "dashboard" });
  const saveNewName = h("input#save-new-name", { name: "newName", placeholder: "New dashboard name" });
  const saveNewLabel = h("label", "New dashboard name", saveNewName);
  const saveTitle = h("input#save-title", { name: "title", required: true, placeholder: "Panel title" });
  const saveMsg = h("p#save-message", { role: "status" });
  const saveForm = h("form#save-form", { autocomplete: "off" },
    h("h3", "Save to dashboard"),
    h("label", "Dashboard", saveDashboard), saveNewLabel,
    h("label", "Panel title", saveTitle),
    h("button#save-submit", { type: "submit" }, "Save panel"),
    saveMsg);
  const chartControls = h("div#chart-controls.controls", { hidden: true },
    h("label", "Chart", chartType), h("label", "X column", chartX), chartY, csv);

  const form = h("form#sql-form", { autocomplete: "off" },
    h("label.wide", "SQL (Ctrl+Enter runs)", text),
    h("label", "Default database", database),
    h("div.actions", run, cancel));
  view.append(h("section#sql", { "aria-labelledby": "sql-title" },
    h("h2#sql-title", "SQL"),
    form, error, meta, chartControls, chartBox, h("div#save-wrap", { hidden: true }, saveForm), results));

  let result = null;
  let controller = null;
  let chart = { type: "table", x: null, y: [] };

  function currentChart() {
    const y = [...chartY.querySelectorAll("input:checked")].map((i) => i.value);
    return { type: chartType.value, x: chartX.value || null, y };
  }

  function redraw() {
    chart = currentChart();
    if (!result) return;
    if (chart.type === "table") chartBox.replaceChildren();
    else drawResult(chartBox, result, chart, saveTitle.value || "Query result");
  }

  function setupControls() {
    const cols = result.columns || [];
    const def = defaultChart(cols);
    chartX.replaceChildren(...cols.map((c) => h("option", { value: c.name, selected: c.name === def.x }, `${c.name} (${c.type})`)));
    chartY.replaceChildren(h("legend", "Y columns"), ...cols.map((c, i) => h("label.inline",
      h("input", { type: "checkbox", value: c.name, checked: def.y.includes(c.name), id: `chart-y-${i}` }), ` ${c.name}`)));
    chartControls.hidden = !cols.length;
    csv.disabled = !cols.length;
    // Keep the chosen chart type when the new result can draw it.
    if (chartType.value === "table" && def.y.length) chartType.value = def.type;
    if (!def.y.length) chartType.value = "table";
    redraw();
  }

  async function runQuery() {
    const sql = text.value.trim();
    if (!sql) return;
    sessionStorage.setItem(DRAFT, text.value);
    controller?.abort();
    controller = new AbortController();
    error.textContent = "";
    meta.textContent = "Running…";
    run.disabled = true;
    cancel.disabled = false;
    const started = performance.now();
    try {
      result = await query(sql, { database: database.value.trim() || undefined, limit: 10000 }, controller.signal);
      const ms = Math.round(performance.now() - started);
      const stats = result.stats || {};
      meta.textContent = `${(result.rows || []).length} row(s)${result.truncated ? " (truncated)" : ""} in ${Math.round(stats.elapsed_ms ?? ms)} ms`
        + (stats.bytes_scanned !== undefined ? `, ${stats.bytes_scanned} bytes scanned` : "");
      results.replaceChildren(resultTable(result));
      setupControls();
      view.querySelector("#save-wrap").hidden = !(result.columns || []).length;
      await loadDashboards();
    } catch (e) {
      if (e.name === "AbortError") {
        meta.textContent = "Cancelled.";
      } else {
        meta.textContent = "";
        error.textContent = e.line ? `${e.message} (line ${e.line}, column ${e.column})` : e.message;
      }
    } finally {
      run.disabled = false;
      cancel.disabled = true;
    }
  }

  let dashboards = [];
  async function loadDashboards() {
    try {
      dashboards = (await consoleApi.dashboards()).dashboards || [];
    } catch {
      dashboards = [];
    }
    const selected = saveDashboard.value;
    saveDashboard.replaceChildren(
      ...dashboards.map((d) => h("option", { value: d.id, selected: d.id === selected }, d.name)),
      h("option", { value: "__new", selected: !dashboards.length || selected === "__new" }, "New dashboard…"));
    saveNewLabel.hidden = saveDashboard.value !== "__new";
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    runQuery();
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      runQuery();
    }
  });
  cancel.addEventListener("click", () => controller?.abort());
  chartType.addEventListener("change", redraw);
  chartX.addEventListener("change", redraw);
  chartY.addEventListener("change", redraw);
  saveDashboard.addEventListener("change", () => {
    saveNewLabel.hidden = saveDashboard.value !== "__new";
  });
  csv.addEventListener("click", () => {
    if (!result) return;
    const blob = new Blob([toCsv(result)], { type: "text/csv;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: "query-result.csv" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  saveForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    saveMsg.textContent = "";
    saveMsg.className = "";
    const title = saveTitle.value.trim();
    if (!title) {
      saveMsg.className = "error";
      saveMsg.textContent = "A panel title is required.";
      saveTitle.focus();
      return;
    }
    let dashboard;
    if (saveDashboard.value === "__new") {
      const name = saveNewName.value.trim() || "My dashboard";
      dashboard = { id: randomId("d"), name, refresh_s: 60, panels: [] };
    } else {
      dashboard = structuredClone(dashboards.find((d) => d.id === saveDashboard.value));
    }
    const bottom = Math.max(0, ...dashboard.panels.map((p) => (p.y || 0) + (p.h || 4)));
    const c = currentChart();
    dashboard.panels.push({
      id: randomId("p"),
      title,
      sql: text.value.trim(),
      chart: { type: c.type, x: c.x, y: c.y },
      x: 0, y: bottom, w: 6, h: 4,
    });
    try {
      const saved = await consoleApi.saveDashboard(dashboard);
      const id = saved.id || dashboard.id;
      saveMsg.replaceChildren("Saved to ", h("a#save-link", { href: `#/dashboards/${encodeURIComponent(id)}` }, saved.name || dashboard.name), ".");
      setStatus(`Saved "${title}".`);
      await loadDashboards();
      saveDashboard.value = id;
      saveNewLabel.hidden = true;
    } catch (err) {
      saveMsg.className = "error";
      saveMsg.textContent = err.message;
    }
  });
  saveTitle.addEventListener("input", () => {
    if (result && chart.type !== "table") redraw();
  });

  await loadDashboards();
  text.focus();
  return () => controller?.abort();
}
