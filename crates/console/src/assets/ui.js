// DOM helpers shared by the console's pages: an element builder (text only, never HTML
// strings), the status line, a confirmation <dialog>, tables and pollers that pause while the
// tab is hidden.

/** h("tag.class#id", {attr: v, on: {click: fn}}, ...children) */
export function h(spec, attrs, ...children) {
  const [, tag, rest] = spec.match(/^([a-z0-9]+)(.*)$/i);
  const node = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") node.classList.add(part.slice(1));
    else node.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === "text") node.textContent = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else if (k === "value" || k === "checked" || k === "disabled" || k === "hidden") node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
}

export const $ = (id) => document.getElementById(id);

let statusAt = 0;

export function setStatus(text) {
  $("status").textContent = text;
  statusAt = Date.now();
}

/** Clears the status line unless it was set a moment ago (e.g. just before navigating). */
export function clearStaleStatus() {
  if (Date.now() - statusAt > 1500) $("status").textContent = "";
}

/** Asks for confirmation in the page's <dialog>; resolves true when confirmed. */
export function confirmDialog(message, confirmLabel = "Delete") {
  const dialog = $("confirm-dialog");
  $("confirm-message").textContent = message;
  $("confirm-ok").textContent = confirmLabel;
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      resolve(dialog.returnValue === "ok");
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", done);
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

/** A table from column names and rows of cell values (strings, numbers or nodes). */
export function table(columns, rows, options = {}) {
  const thead = h("thead", h("tr", columns.map((c) => h("th", { scope: "col" }, c))));
  const tbody = h("tbody");
  for (const row of rows) tbody.append(h("tr", row.map((v) => h("td", cell(v)))));
  const t = h("table", { class: options.className }, options.caption ? h("caption", options.caption) : null, thead, tbody);
  return h("div.table-wrap", t);
}

export function cell(v) {
  if (v instanceof Node) return v;
  if (v === null || v === undefined) return h("span.null", "null");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function formatDate(ms) {
  if (!Number.isFinite(ms)) return "–";
  return new Date(ms).toLocaleString();
}

/**
 * Calls `fn` now and every `seconds` (re-read each time, so it may change) while the page is
 * visible; returns a stop function. Calls never overlap.
 */
export function poll(fn, seconds) {
  let timer = null;
  let stopped = false;
  let running = false;
  const period = () => (typeof seconds === "function" ? seconds() : seconds) * 1000;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (document.hidden) return;
    running = true;
    try {
      await fn();
    } catch (e) {
      console.warn("refresh failed", e);
    } finally {
      running = false;
    }
    if (!stopped && !document.hidden) timer = setTimeout(tick, period());
  };
  const onVisibility = () => {
    if (!document.hidden && !timer && !running && !stopped) tick();
  };
  document.addEventListener("visibilitychange", onVisibility);
  tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  };
}

/** A random id: lower-case letters and digits. */
export function randomId(prefix = "") {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return prefix + Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("").slice(0, 10);
}

/**
 * Removes from `rows` (name -> { tr }) and from the page every row whose name is not in
 * `seen`: what a live table does after a refresh.
 */
export function dropUnseenRows(rows, seen) {
  for (const [name, row] of rows) {
    if (!seen.has(name)) {
      row.tr.remove();
      rows.delete(name);
    }
  }
}
