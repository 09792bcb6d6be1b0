// Streaming SQL applications (the Kinesis Analytics SQL API): the list with live figures, an
// application's page (its SQL, per-pump figures, failure, rejected records; Start, Stop, Edit
// SQL, Delete) and the create form. Validation is the API's: errors are shown exactly as the
// server sent them (CodeValidationException and friends).

import { analytics, firehose } from "./api.js";
import { formatNumber } from "./chart.js";
import { h, setStatus, confirmDialog, table, poll, formatDate, dropUnseenRows } from "./ui.js";

const enc = encodeURIComponent;
const POSITIONS = ["NOW", "TRIM_HORIZON", "LAST_STOPPED_POINT"];

export const EXAMPLE_SQL = `CREATE TABLE clicks (user_id VARCHAR, event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
  WITH ('connector' = 'firehose', 'stream' = 'clicks');
CREATE TABLE per_window WITH ('connector' = 'firehose', 'stream' = 'results');
INSERT INTO per_window
SELECT user_id, window_start, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND))
GROUP BY user_id, window_start, window_end;
`;

async function listAll() {
  const out = [];
  let after;
  for (let i = 0; i < 200; i++) {
    const page = await analytics("ListApplications", after ? { ExclusiveStartApplicationName: after } : {});
    const items = page.ApplicationSummaries || [];
    out.push(...items);
    if (!page.HasMoreApplications || !items.length) break;
    after = items[items.length - 1].ApplicationName;
  }
  return out;
}

const describe = async (name) => (await analytics("DescribeApplication", { ApplicationName: name })).ApplicationDetail;

/** The pumps' figures summed; the watermark is the slowest pump's (null when none has one). */
export function totals(detail) {
  const pumps = Object.values(detail?.LakehoseRuntime?.Pumps || {});
  const sum = (k) => pumps.reduce((a, p) => a + (Number(p[k]) || 0), 0);
  const marks = pumps.map((p) => p.watermark_ms).filter((w) => Number.isFinite(w));
  return {
    input: sum("input_records"),
    output: sum("output_records"),
    late: sum("late_records"),
    failed: sum("failed_records"),
    watermark: marks.length ? Math.min(...marks) : null,
  };
}

/** An event time (ms) as a <time>: UTC to the millisecond, like the records' own times. */
function watermarkNode(ms) {
  if (!Number.isFinite(ms)) return "–";
  const iso = new Date(ms).toISOString();
  return h("time", { datetime: iso, title: formatDate(ms) }, `${iso.replace("T", " ").replace("Z", "")} UTC`);
}

const seconds = (s) => (Number.isFinite(s) ? formatDate(s < 1e11 ? s * 1000 : s) : "–");

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

async function deleteApp(detail, after) {
  const name = detail.ApplicationName;
  const ok = await confirmDialog(
    `Delete the application ${name}? It stops, and its definition and checkpoint are removed.`,
    "Delete application",
  );
  if (!ok) return;
  try {
    await analytics("DeleteApplication", { ApplicationName: name, CreateTimestamp: detail.CreateTimestamp });
    setStatus(`Deleted ${name}.`);
    await after?.();
  } catch (e) {
    setStatus(`Could not delete ${name}: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// List

const FIGURES = [
  { key: "input", label: "Input records" },
  { key: "output", label: "Output records" },
  { key: "late", label: "Late records" },
];

export async function renderApps(view) {
  const rowsBody = h("tbody#app-rows");
  const empty = h("p#no-apps", { hidden: true }, "No applications yet. ", h("a", { href: "#/create-app" }, "Create one"), ".");
  const section = h("section#apps", { "aria-labelledby": "apps-title" },
    h("div.title-row",
      h("h2#apps-title", "Streaming SQL applications"),
      h("a.button", { href: "#/create-app" }, "Create application")),
    h("p.muted", "Figures are the running applications' totals since they started; refreshing every 5 s."),
    h("div.table-wrap",
      h("table.apps",
        h("thead", h("tr",
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Version"),
          FIGURES.map((f) => h("th.metric", { scope: "col" }, f.label)),
          h("th", { scope: "col" }, "Watermark"))),
        rowsBody)),
    empty);
  view.append(section);

  const rows = new Map(); // name -> { tr, status, version, figures: {key: td}, watermark }
  let stopped = false;

  function makeRow(name) {
    const status = h("td.status");
    const version = h("td.version");
    const figures = {};
    const tds = FIGURES.map((f) => (figures[f.key] = h("td.metric", { "data-metric": f.key, "data-label": f.label }, "–")));
    const watermark = h("td.watermark", { "data-label": "Watermark" }, "–");
    const tr = h("tr", { "data-app": name },
      h("th", { scope: "row" }, h("a", { href: `#/apps/${enc(name)}` }, name)),
      status, version, tds, watermark);
    const row = { tr, status, version, figures, watermark, mark: undefined };
    rows.set(name, row);
    return row;
  }

  async function refresh() {
    const summaries = (await listAll()).sort((a, b) => a.ApplicationName.localeCompare(b.ApplicationName));
    const details = await Promise.all(summaries.map((s) => describe(s.ApplicationName).catch(() => null)));
    if (stopped) return;
    const seen = new Set();
    let prev = null;
    summaries.forEach((s, i) => {
      const d = details[i];
      if (!d) return; // deleted meanwhile
      const name = s.ApplicationName;
      seen.add(name);
      let row = rows.get(name);
      if (!row) {
        row = makeRow(name);
        if (prev) prev.tr.after(row.tr);
        else rowsBody.prepend(row.tr);
      }
      const running = d.ApplicationStatus === "RUNNING";
      setText(row.status, d.ApplicationStatus);
      row.status.dataset.status = d.ApplicationStatus;
      setText(row.version, String(d.ApplicationVersionId ?? "–"));
      const t = totals(d);
      for (const f of FIGURES) setText(row.figures[f.key], running ? formatNumber(t[f.key]) : "–");
      const mark = running ? t.watermark : null;
      if (row.mark !== mark) {
        row.watermark.replaceChildren(watermarkNode(mark));
        row.mark = mark;
      }
      prev = row;
    });
    dropUnseenRows(rows, seen);
    empty.hidden = rows.size > 0;
    section.dataset.refreshes = String((Number(section.dataset.refreshes) || 0) + 1);
  }

  const stop = poll(refresh, 5);
  return () => {
    stopped = true;
    stop();
  };
}

// ---------------------------------------------------------------------------------------------
// One application

function decodeData(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64 || ""), (c) => c.charCodeAt(0));
    const text = new TextDecoder().decode(bytes);
    return text.length > 300 ? `${text.slice(0, 300)} …` : text;
  } catch {
    return b64 || "";
  }
}

export async function renderApp(view, name) {
  let detail = await describe(name);
  let stopped = false;
  let editing = null; // the version the edit started from

  const summary = h("dl.summary#app-summary");
  const statusText = h("strong#app-status");
  const code = h("pre.json.code#app-code");
  const codeEdit = h("textarea#app-code-edit", { rows: 14, spellcheck: "false", hidden: true, "aria-label": "Application SQL" });
  const editError = h("p.error#app-edit-error", { role: "alert" });
  const editButton = h("button.secondary#app-edit", { type: "button", on: { click: () => beginEdit() } }, "Edit SQL");
  const saveButton = h("button#app-save", { type: "button", hidden: true, on: { click: () => saveEdit() } }, "Save SQL");
  const cancelButton = h("button.secondary#app-cancel", { type: "button", hidden: true, on: { click: () => endEdit() } }, "Cancel");
  const position = h("select#app-position", { "aria-label": "Starting position" },
    POSITIONS.map((p) => h("option", { value: p, selected: p === "NOW" }, p)));
  const startButton = h("button#app-start", { type: "button", on: { click: () => control("Start") } }, "Start");
  const stopButton = h("button.secondary#app-stop", { type: "button", on: { click: () => control("Stop") } }, "Stop");
  const deleteButton = h("button.danger#app-delete", {
    type: "button",
    on: { click: () => deleteApp(detail, () => { location.hash = "#/apps"; }) },
  }, "Delete");
  const actionError = h("p.error#app-action-error", { role: "alert" });
  const failureBox = h("div#app-failure");
  const pumpsNote = h("p.muted#app-pumps-note");
  const pumpsBox = h("div#app-pumps");
  const rejectedBox = h("div#app-rejected");

  const section = h("section#app-detail", { "aria-labelledby": "app-title" },
    h("p.crumbs", h("a", { href: "#/apps" }, "Applications"), " / "),
    h("div.title-row",
      h("h2#app-title", name),
      h("div.actions",
        h("label.inline", "Start from ", position),
        startButton, stopButton, deleteButton)),
    actionError,
    h("p", "Status: ", statusText),
    summary,
    failureBox,
    h("h3", "Pumps"), pumpsNote, pumpsBox,
    h("h3", "Recent rejected records"), rejectedBox,
    h("div.title-row", h("h3", "SQL"), h("div.actions", editButton, saveButton, cancelButton)),
    code, codeEdit, editError);
  view.append(section);

  function draw() {
    const d = detail;
    const running = d.ApplicationStatus === "RUNNING";
    setText(statusText, d.ApplicationStatus);
    statusText.dataset.status = d.ApplicationStatus;
    startButton.disabled = running;
    position.disabled = running;
    stopButton.disabled = !running;
    summary.replaceChildren(...[
      ["ARN", d.ApplicationARN],
      ["Version", d.ApplicationVersionId],
      ["Description", d.ApplicationDescription || "–"],
      ["Created", seconds(d.CreateTimestamp)],
      ["Last updated", seconds(d.LastUpdateTimestamp)],
    ].flatMap(([k, v]) => [h("dt", k), h("dd", String(v ?? "–"))]));
    setText(code, d.ApplicationCode || "");

    const rt = d.LakehoseRuntime || {};
    failureBox.replaceChildren(rt.Failure
      ? h("div.failure", h("h3", "Failure"), h("p.error#app-failure-text", rt.Failure))
      : "");
    const pumps = Object.entries(rt.Pumps || {});
    setText(pumpsNote, running ? "Totals since the application started; refreshing every 3 s."
      : pumps.length ? "The last run's figures (the application is not running)." : "");
    pumpsBox.replaceChildren(pumps.length
      ? table(["Pump", "Input records", "Output records", "Late records", "Failed records", "Watermark", "Open windows"],
        pumps.map(([pump, p]) => [pump, formatNumber(p.input_records), formatNumber(p.output_records),
          formatNumber(p.late_records), formatNumber(p.failed_records), watermarkNode(p.watermark_ms),
          formatNumber(p.open_windows)]), { className: "pumps" })
      : h("p.muted", running ? "No figures yet." : "Not started yet."));
    const rejected = rt.RecentRejectedRecords || [];
    rejectedBox.replaceChildren(rejected.length
      ? table(["Arrival", "Pump", "Stream", "Error code", "Message", "Data"], [...rejected].reverse().map((r) => [
        formatDate(r.approximateArrivalTimestamp), r.pump || "", r.stream || "", r.errorCode || "",
        r.errorMessage || "", h("code.data", decodeData(r.rawData))]), { className: "rejected" })
      : h("p.muted", "None."));
    section.dataset.refreshes = String((Number(section.dataset.refreshes) || 0) + 1);
  }

  async function refresh() {
    const d = await describe(name);
    if (stopped) return;
    detail = d;
    draw();
  }

  async function control(op) {
    actionError.textContent = "";
    const body = { ApplicationName: name };
    if (op === "Start") {
      body.InputConfigurations = [{ Id: "1.1", InputStartingPositionConfiguration: { InputStartingPosition: position.value } }];
    }
    startButton.disabled = stopButton.disabled = true;
    try {
      await analytics(`${op}Application`, body);
      setStatus(op === "Start" ? `Started ${name} from ${position.value}.` : `Stopped ${name}.`);
    } catch (e) {
      actionError.textContent = e.message;
    }
    try {
      await refresh();
    } catch (e) {
      actionError.textContent ||= e.message;
    }
  }

  function beginEdit() {
    editing = detail.ApplicationVersionId;
    codeEdit.value = detail.ApplicationCode || "";
    editError.textContent = "";
    code.hidden = true;
    editButton.hidden = true;
    codeEdit.hidden = saveButton.hidden = cancelButton.hidden = false;
    codeEdit.focus();
  }

  function endEdit() {
    editing = null;
    editError.textContent = "";
    codeEdit.setAttribute("aria-invalid", "false");
    code.hidden = false;
    editButton.hidden = false;
    codeEdit.hidden = saveButton.hidden = cancelButton.hidden = true;
  }

  async function saveEdit() {
    editError.textContent = "";
    saveButton.disabled = true;
    try {
      await analytics("UpdateApplication", {
        ApplicationName: name,
        CurrentApplicationVersionId: editing,
        ApplicationUpdate: { ApplicationCodeUpdate: codeEdit.value },
      });
      setStatus(`Updated ${name} (version ${editing + 1}).`);
      endEdit();
      await refresh();
    } catch (e) {
      codeEdit.setAttribute("aria-invalid", "true");
      editError.textContent = e.message;
    } finally {
      saveButton.disabled = false;
    }
  }

  draw();
  const stop = poll(refresh, 3);
  return () => {
    stopped = true;
    stop();
  };
}

// ---------------------------------------------------------------------------------------------
// Create

export async function renderCreateApp(view) {
  const nameInput = h("input#app-name", { name: "name", required: true, spellcheck: "false", autocomplete: "off", placeholder: "clicks-per-window" });
  const description = h("input#app-description", { name: "description", spellcheck: "false", autocomplete: "off" });
  const codeInput = h("textarea#app-code-input", { name: "code", rows: 14, spellcheck: "false" });
  codeInput.value = EXAMPLE_SQL;
  const streams = h("small.hint#app-streams");
  const error = h("p.error#app-create-error", { role: "alert" });
  const submit = h("button", { type: "submit" }, "Create");
  const form = h("form#app-form.stack", { autocomplete: "off", novalidate: true, "aria-describedby": "app-create-error" },
    h("div.grid2",
      h("label", "Name", nameInput, h("small.hint", "1–128 characters: letters, digits, _ . -")),
      h("label", "Description (optional)", description)),
    h("label", "SQL", codeInput,
      h("small.hint", "An example: a count per user over 10-second tumbling windows. Replace the stream names "
        + "('clicks', 'results') with your delivery streams; Create checks the SQL, Start needs the streams to exist."),
      streams),
    error,
    h("div.actions", submit, h("a.button.secondary", { href: "#/apps" }, "Cancel")));

  view.append(h("section#app-create", { "aria-labelledby": "app-create-title" },
    h("p.crumbs", h("a", { href: "#/apps" }, "Applications"), " / "),
    h("h2#app-create-title", "Create a streaming SQL application"),
    form));

  firehose("ListDeliveryStreams", { Limit: 10000 }).then((list) => {
    const names = list.DeliveryStreamNames || [];
    streams.textContent = names.length ? `Delivery streams: ${names.join(", ")}` : "There are no delivery streams yet.";
  }).catch(() => {});

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const name = nameInput.value.trim();
    nameInput.setAttribute("aria-invalid", String(!name));
    if (!name) {
      error.textContent = "The name is required.";
      nameInput.focus();
      return;
    }
    const body = { ApplicationName: name, ApplicationCode: codeInput.value };
    if (description.value.trim()) body.ApplicationDescription = description.value.trim();
    submit.disabled = true;
    try {
      await analytics("CreateApplication", body);
      location.hash = `#/apps/${enc(name)}`;
      setStatus(`Created ${name}.`);
    } catch (e) {
      error.textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });
  nameInput.focus();
}
