// Dashboards: a list, and a dashboard's panels on a 12-column CSS grid placed by each panel's
// x/y/w/h, moved and resized with buttons (so the keyboard can do it), removed, and refreshed
// every refresh_s seconds by re-running each panel's SQL. Every change is saved with PUT.

import { consoleApi, query } from "./api.js";
import { h, setStatus, confirmDialog, table, poll, randomId, formatDate } from "./ui.js";
import { drawResult } from "./sql.js";

const COLS = 12;
const ROW_PX = 56;
const enc = encodeURIComponent;

export async function renderDashboards(view) {
  const list = h("div#dashboard-list");
  const name = h("input#new-dashboard-name", { name: "name", required: true, placeholder: "Operations" });
  const refresh = h("input#new-dashboard-refresh", { name: "refresh", type: "number", value: "60", min: "5" });
  const error = h("p.error#new-dashboard-error", { role: "alert" });
  const form = h("form#new-dashboard-form", { autocomplete: "off" },
    h("h3", "New dashboard"),
    h("label", "Name", name), h("label", "Refresh every (s)", refresh),
    h("button", { type: "submit" }, "Create"), error);
  view.append(h("section#dashboards", { "aria-labelledby": "dashboards-title" },
    h("h2#dashboards-title", "Dashboards"), list, form));

  async function load() {
    const { dashboards = [] } = await consoleApi.dashboards();
    list.replaceChildren(dashboards.length
      ? table(["Name", "Panels", "Refresh", "Updated"], dashboards.map((d) => [
        h("a", { href: `#/dashboards/${enc(d.id)}` }, d.name), String(d.panels?.length ?? 0), `${d.refresh_s} s`, formatDate(d.updated_ms)]))
      : h("p.muted", "No dashboards yet. Create one here, or save a chart from the SQL editor."));
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (!name.value.trim()) {
      error.textContent = "A name is required.";
      name.focus();
      return;
    }
    const d = { id: randomId("d"), name: name.value.trim(), refresh_s: Number(refresh.value) || 60, panels: [] };
    try {
      const saved = await consoleApi.saveDashboard(d);
      location.hash = `#/dashboards/${enc(saved.id || d.id)}`;
    } catch (err) {
      error.textContent = err.message;
    }
  });
  try {
    await load();
  } catch (e) {
    list.replaceChildren(h("p.error", e.message));
  }
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** Clamps every panel to the grid, then pushes panels down until none overlap; `first` wins. */
export function settle(panels, first) {
  for (const p of panels) {
    p.w = Math.max(2, Math.min(COLS, Math.round(p.w) || 6));
    p.h = Math.max(2, Math.min(12, Math.round(p.h) || 4));
    p.x = Math.max(0, Math.min(COLS - p.w, Math.round(p.x) || 0));
    p.y = Math.max(0, Math.round(p.y) || 0);
  }
  const order = [...panels].sort((a, b) => (a === first ? -1 : b === first ? 1 : a.y - b.y || a.x - b.x));
  const placed = [];
  for (const p of order) {
    while (placed.some((q) => overlaps(p, q))) p.y++;
    placed.push(p);
  }
  // Pull panels up into free space (keeps the layout compact).
  for (const p of [...panels].sort((a, b) => a.y - b.y || a.x - b.x)) {
    while (p.y > 0 && !panels.some((q) => q !== p && overlaps({ ...p, y: p.y - 1 }, q))) p.y--;
  }
}

export async function renderDashboard(view, id) {
  const { dashboards = [] } = await consoleApi.dashboards();
  const found = dashboards.find((d) => d.id === id);
  if (!found) {
    view.append(h("section#dashboard", h("p.crumbs", h("a", { href: "#/dashboards" }, "Dashboards")), h("h2", "Not found"),
      h("p", `There is no dashboard ${id}.`)));
    return undefined;
  }
  const dash = structuredClone(found);
  dash.panels ||= [];
  const grid = h("div.dash-grid#dashboard-grid");
  const refreshInput = h("input#dashboard-refresh", { type: "number", min: "0", value: String(dash.refresh_s), name: "refresh" });
  const nameInput = h("input#dashboard-name", { name: "name", value: dash.name });
  const saveState = h("span.muted#dashboard-saved", { role: "status" });
  const settings = h("form#dashboard-settings.inline-form", { autocomplete: "off" },
    h("label", "Name", nameInput), h("label", "Refresh every (s, 0 = off)", refreshInput),
    h("button.secondary", { type: "submit" }, "Apply"),
    h("button.secondary#dashboard-refresh-now", { type: "button", on: { click: () => refreshAll() } }, "Refresh now"),
    h("button.danger", { type: "button", on: { click: deleteDashboard } }, "Delete dashboard"), saveState);
  const title = h("h2#dashboard-title", dash.name);
  view.append(h("section#dashboard", { "aria-labelledby": "dashboard-title" },
    h("p.crumbs", h("a", { href: "#/dashboards" }, "Dashboards"), " / "),
    title, settings,
    dash.panels.length ? null : h("p.muted", "No panels yet: run a query in the ", h("a", { href: "#/sql" }, "SQL editor"), " and save its chart here."),
    grid));

  const views = new Map(); // panel id -> { article, body, meta, result }
  let saveTimer = null;
  let stopped = false;

  function save() {
    clearTimeout(saveTimer);
    saveState.textContent = "Saving…";
    saveTimer = setTimeout(async () => {
      saveTimer = null;
      try {
        const saved = await consoleApi.saveDashboard(dash);
        saveState.textContent = `Saved ${new Date(saved.updated_ms || Date.now()).toLocaleTimeString()}`;
      } catch (e) {
        saveState.textContent = `Not saved: ${e.message}`;
      }
    }, 300);
  }

  function place(p, v) {
    v.article.style.gridColumn = `${p.x + 1} / span ${p.w}`;
    v.article.style.gridRow = `${p.y + 1} / span ${p.h}`;
    v.article.dataset.x = p.x;
    v.article.dataset.y = p.y;
    v.article.dataset.w = p.w;
    v.article.dataset.h = p.h;
  }

  function layout() {
    const focused = document.activeElement;
    const ordered = [...dash.panels].sort((a, b) => a.y - b.y || a.x - b.x);
    ordered.forEach((p, i) => {
      const v = views.get(p.id);
      place(p, v);
      if (grid.children[i] !== v.article) grid.insertBefore(v.article, grid.children[i] || null);
    });
    if (focused && focused !== document.activeElement && grid.contains(focused)) focused.focus();
  }

  function change(p, fn) {
    fn(p);
    settle(dash.panels, p);
    layout();
    const v = views.get(p.id);
    if (v.result) draw(p, v);
    save();
  }

  function draw(p, v) {
    drawResult(v.body, v.result, p.chart || { type: "table" }, p.title, Math.max(120, p.h * ROW_PX - 90));
  }

  function makePanel(p) {
    const body = h("div.panel-body");
    const meta = h("p.panel-meta.muted");
    const b = (label, text, fn) => h("button.icon", { type: "button", "aria-label": `${label} ${p.title}`, title: label, on: { click: fn } }, text);
    const article = h("article.panel", { "data-panel": p.id, "aria-label": p.title },
      h("header.panel-head",
        h("h3", p.title),
        h("div.panel-tools", { role: "toolbar", "aria-label": `Layout of ${p.title}` },
          b("Move left", "←", () => change(p, (q) => { q.x -= 1; })),
          b("Move right", "→", () => change(p, (q) => { q.x += 1; })),
          b("Move up", "↑", () => change(p, (q) => { q.y -= 1; })),
          b("Move down", "↓", () => change(p, (q) => { q.y += 1; })),
          b("Narrower", "⇤", () => change(p, (q) => { q.w -= 1; })),
          b("Wider", "⇥", () => change(p, (q) => { q.w += 1; })),
          b("Shorter", "⤒", () => change(p, (q) => { q.h -= 1; })),
          b("Taller", "⤓", () => change(p, (q) => { q.h += 1; })),
          b("Remove", "✕", () => removePanel(p)))),
      body, meta);
    const v = { article, body, meta, result: null };
    views.set(p.id, v);
    return v;
  }

  async function removePanel(p) {
    if (!(await confirmDialog(`Remove the panel "${p.title}" from this dashboard?`, "Remove"))) return;
    dash.panels = dash.panels.filter((q) => q !== p);
    views.get(p.id)?.article.remove();
    views.delete(p.id);
    settle(dash.panels, null);
    layout();
    save();
    setStatus(`Removed "${p.title}".`);
  }

  async function runPanel(p) {
    const v = views.get(p.id);
    if (!v) return;
    const started = performance.now();
    try {
      v.result = await query(p.sql, { limit: 10000 });
      if (stopped || !views.has(p.id)) return;
      draw(p, v);
      v.meta.textContent = `${(v.result.rows || []).length} row(s), ${Math.round(performance.now() - started)} ms, at ${new Date().toLocaleTimeString()}`;
      v.article.dataset.loaded = "true";
    } catch (e) {
      v.body.replaceChildren(h("p.error", e.message));
      v.meta.textContent = "";
    }
  }

  function refreshAll() {
    return Promise.all(dash.panels.map(runPanel));
  }

  async function deleteDashboard() {
    if (!(await confirmDialog(`Delete the dashboard "${dash.name}"?`, "Delete dashboard"))) return;
    try {
      await consoleApi.deleteDashboard(dash.id);
      setStatus(`Deleted ${dash.name}.`);
      location.hash = "#/dashboards";
    } catch (e) {
      setStatus(e.message);
    }
  }

  settings.addEventListener("submit", (e) => {
    e.preventDefault();
    dash.name = nameInput.value.trim() || dash.name;
    const r = Number(refreshInput.value);
    dash.refresh_s = Number.isFinite(r) && r >= 0 ? Math.round(r) : dash.refresh_s;
    refreshInput.value = String(dash.refresh_s);
    title.textContent = dash.name;
    save();
  });

  settle(dash.panels, null);
  for (const p of dash.panels) grid.append(makePanel(p).article);
  layout();
  // refresh_s 0 turns auto-refresh off (the panels still run once, and on "Refresh now").
  const stop = poll(refreshAll, () => (dash.refresh_s > 0 ? Math.max(5, dash.refresh_s) : 86400));
  return () => {
    stopped = true;
    stop();
    if (saveTimer) {
      // Flush a pending save rather than lose it.
      clearTimeout(saveTimer);
      consoleApi.saveDashboard(dash).catch(() => {});
    }
  };
}
