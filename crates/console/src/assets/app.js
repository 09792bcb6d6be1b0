// The Lakehose console: a one-page app with hash routes. It calls the same AWS JSON 1.1 API
// as every SDK (POST / with X-Amz-Target), the SQL endpoint (/v1/query) and the console's
// JSON endpoints (/console/api/...). When the server has keys configured, the console session
// (an HttpOnly cookie set by /console/api/login) authenticates the calls and every call
// carries the session's CSRF token in X-CSRF-Token; the server refuses state changes without.

import { call, setCsrfToken } from "./api.js";
import { $, setStatus, clearStaleStatus } from "./ui.js";
import { renderOverview, renderDetail } from "./streams.js";
import { renderForm } from "./form.js";
import { renderCatalog } from "./catalog.js";
import { renderSql } from "./sql.js";
import { renderDashboards, renderDashboard } from "./dashboards.js";
import { renderApps, renderApp, renderCreateApp } from "./apps.js";

let dispose = null;
let signedIn = false;

const routes = [
  [/^\/streams\/?$/, "streams", () => renderOverview],
  [/^\/streams\/(.+)$/, "streams", (m) => (v) => renderDetail(v, decodeURIComponent(m[1]))],
  [/^\/create$/, "create", () => (v) => renderForm(v, null)],
  [/^\/edit\/(.+)$/, "streams", (m) => (v) => renderForm(v, decodeURIComponent(m[1]))],
  [/^\/catalog(?:\/([^/]+))?(?:\/([^/]+))?$/, "catalog", (m) => (v) =>
    renderCatalog(v, m[1] && decodeURIComponent(m[1]), m[2] && decodeURIComponent(m[2]))],
  [/^\/sql$/, "sql", () => renderSql],
  [/^\/dashboards\/?$/, "dashboards", () => renderDashboards],
  [/^\/dashboards\/(.+)$/, "dashboards", (m) => (v) => renderDashboard(v, decodeURIComponent(m[1]))],
  [/^\/apps\/?$/, "apps", () => renderApps],
  [/^\/apps\/(.+)$/, "apps", (m) => (v) => renderApp(v, decodeURIComponent(m[1]))],
  [/^\/create-app$/, "apps", () => renderCreateApp],
];

async function route() {
  if (!signedIn) return;
  const path = location.hash.replace(/^#/, "") || "/streams";
  let found = null;
  for (const [re, section, make] of routes) {
    const m = path.match(re);
    if (m) {
      found = { section, render: make(m) };
      break;
    }
  }
  if (!found) {
    location.replace("#/streams");
    return;
  }
  if (dispose) {
    try {
      dispose();
    } catch (e) {
      console.warn(e);
    }
    dispose = null;
  }
  for (const a of document.querySelectorAll("#main-nav a")) {
    if (a.dataset.section === found.section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("view");
  view.replaceChildren();
  const token = {};
  route.current = token;
  try {
    const d = await found.render(view);
    if (route.current === token) dispose = typeof d === "function" ? d : null;
    else if (typeof d === "function") d();
  } catch (e) {
    if (isSignedOut(e)) {
      await start();
      return;
    }
    setStatus(e.message);
  }
}

function isSignedOut(e) {
  return e && (e.type === "MissingAuthenticationTokenException" || e.status === 401 || (e.status === 403 && /session|csrf/i.test(e.message)));
}

async function loadSession() {
  const response = await fetch("/console/api/session", { credentials: "same-origin" });
  const session = await response.json();
  setCsrfToken(session.csrfToken);
  if (session.authRequired && !session.signedIn) {
    $("who").hidden = true;
    $("main-nav").hidden = true;
    $("view").replaceChildren();
    $("login").hidden = false;
    $("login-key").focus();
    return false;
  }
  $("login").hidden = true;
  $("who").hidden = !session.accessKeyId;
  $("who-key").textContent = session.accessKeyId || "";
  $("main-nav").hidden = false;
  return true;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await call("/console/api/login", {
      accessKeyId: $("login-key").value.trim(),
      secretAccessKey: $("login-secret").value,
    });
    setCsrfToken(session.csrfToken);
    $("login-secret").value = "";
    await start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await call("/console/api/logout", {});
  } finally {
    setCsrfToken(null);
    await start();
  }
});

async function start() {
  setStatus("");
  if (dispose) {
    dispose();
    dispose = null;
  }
  try {
    signedIn = await loadSession();
    if (signedIn) await route();
  } catch (e) {
    setStatus(e.message);
  }
}

window.addEventListener("hashchange", () => {
  clearStaleStatus();
  route();
});

start();
