// The Lakehose console. It calls the same AWS JSON 1.1 API as every SDK (POST / with
// X-Amz-Target). When the server has keys configured, the console session (an HttpOnly
// cookie set by /console/api/login) authenticates the calls and every call carries the
// session's CSRF token in X-CSRF-Token; the server refuses state changes without it.
"use strict";

const FIREHOSE = "Firehose_20150804.";
let csrfToken = null;

const $ = (id) => document.getElementById(id);

function show(id, visible) {
  $(id).hidden = !visible;
}

function setStatus(text) {
  $("status").textContent = text;
}

// POSTs a JSON body to a console endpoint or the AWS API; rejects with the AWS error message.
async function call(path, body, target) {
  const headers = { "Content-Type": "application/x-amz-json-1.1" };
  if (target) headers["X-Amz-Target"] = target;
  if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method: "POST",
    headers,
    body: JSON.stringify(body ?? {}),
    credentials: "same-origin",
  });
  const text = await response.text();
  const value = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const type = (value.__type || "Error").split("#").pop();
    const error = new Error(value.message || value.Message || type);
    error.type = type;
    error.status = response.status;
    throw error;
  }
  return value;
}

const firehose = (op, body) => call("/", body, FIREHOSE + op);

async function loadSession() {
  const response = await fetch("/console/api/session", { credentials: "same-origin" });
  const session = await response.json();
  csrfToken = session.csrfToken || null;
  if (session.authRequired && !session.signedIn) {
    show("who", false);
    show("streams", false);
    show("login", true);
    $("login-key").focus();
    return false;
  }
  show("login", false);
  show("who", Boolean(session.accessKeyId));
  $("who-key").textContent = session.accessKeyId || "";
  show("streams", true);
  return true;
}

function destinationOf(description) {
  const d = (description.Destinations || [])[0] || {};
  const http = d.HttpEndpointDestinationDescription;
  if (http) return (http.EndpointConfiguration || {}).Url || "";
  const s3 = d.ExtendedS3DestinationDescription || d.S3DestinationDescription;
  return s3 ? s3.BucketARN.replace("arn:aws:s3:::", "s3://") : "";
}

async function loadStreams() {
  const list = await firehose("ListDeliveryStreams", { Limit: 100 });
  const rows = $("stream-rows");
  rows.replaceChildren();
  for (const name of list.DeliveryStreamNames) {
    const described = await firehose("DescribeDeliveryStream", { DeliveryStreamName: name });
    const d = described.DeliveryStreamDescription;
    const tr = document.createElement("tr");
    for (const text of [name, d.DeliveryStreamStatus, destinationOf(d)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    const del = document.createElement("button");
    del.type = "button";
    del.className = "secondary";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete ${name}`);
    del.addEventListener("click", () => deleteStream(name));
    td.append(del);
    tr.append(td);
    rows.append(tr);
  }
  show("no-streams", list.DeliveryStreamNames.length === 0);
}

async function deleteStream(name) {
  if (!confirm(`Delete the delivery stream ${name}? Records not yet delivered are lost.`)) return;
  try {
    await firehose("DeleteDeliveryStream", { DeliveryStreamName: name });
    setStatus(`Deleted ${name}.`);
    await loadStreams();
  } catch (e) {
    setStatus(`Could not delete ${name}: ${e.message}`);
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await call("/console/api/login", {
      accessKeyId: $("login-key").value.trim(),
      secretAccessKey: $("login-secret").value,
    });
    csrfToken = session.csrfToken;
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
    csrfToken = null;
    await start();
  }
});

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("create-error").textContent = "";
  const name = $("create-name").value.trim();
  try {
    await firehose("CreateDeliveryStream", {
      DeliveryStreamName: name,
      DeliveryStreamType: "DirectPut",
      ExtendedS3DestinationConfiguration: {
        RoleARN: "arn:aws:iam::123456789012:role/firehose",
        BucketARN: `arn:aws:s3:::${$("create-bucket").value.trim()}`,
      },
    });
    $("create-form").reset();
    setStatus(`Created ${name}.`);
    await loadStreams();
  } catch (e) {
    $("create-error").textContent = e.message;
  }
});

async function start() {
  setStatus("");
  try {
    if (await loadSession()) await loadStreams();
  } catch (e) {
    if (e.type === "MissingAuthenticationTokenException" || e.status === 403) {
      csrfToken = null;
      show("streams", false);
      show("login", true);
    } else {
      setStatus(e.message);
    }
  }
}

start();
