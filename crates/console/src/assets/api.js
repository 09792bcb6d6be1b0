// Calls from the console to the server: the AWS JSON 1.1 APIs (POST / with X-Amz-Target),
// the SQL endpoint and the console's own JSON endpoints. With a console session every call
// carries the session's CSRF token in X-CSRF-Token. Errors reject with the server's message
// exactly as it was sent (AWS's {"__type","message"}, or the query endpoint's {"error":{...}}).

let csrfToken = null;

export function setCsrfToken(token) {
  csrfToken = token || null;
}

export class ApiError extends Error {
  constructor(message, type, status, extra) {
    super(message);
    this.type = type;
    this.status = status;
    Object.assign(this, extra || {});
  }
}

async function request(method, path, body, headers = {}, signal) {
  const h = { ...headers };
  if (csrfToken) h["X-CSRF-Token"] = csrfToken;
  if (body !== undefined && !h["Content-Type"]) h["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  const text = await response.text();
  let value = {};
  if (text) {
    try {
      value = JSON.parse(text);
    } catch {
      value = { message: text };
    }
  }
  if (!response.ok) {
    if (value.error && typeof value.error === "object") {
      const e = value.error;
      throw new ApiError(e.message || e.type, e.type, response.status, { line: e.line, column: e.column });
    }
    const type = String(value.__type || value.code || "Error").split("#").pop();
    throw new ApiError(value.message || value.Message || `${type} (HTTP ${response.status})`, type, response.status);
  }
  return value;
}

/** POSTs to a console endpoint or the AWS API with an optional X-Amz-Target. */
export function call(path, body, target) {
  const headers = { "Content-Type": "application/x-amz-json-1.1" };
  if (target) headers["X-Amz-Target"] = target;
  return request("POST", path, body ?? {}, headers);
}

export const firehose = (op, body) => call("/", body, `Firehose_20150804.${op}`);
export const glue = (op, body) => call("/", body, `AWSGlue.${op}`);
export const analytics = (op, body) => call("/", body, `KinesisAnalytics_20150814.${op}`);

/** Runs SQL on /v1/query: { columns: [{name,type}], rows: [[...]], truncated, stats }. */
export function query(sql, options = {}, signal) {
  const body = { sql };
  if (options.database) body.database = options.database;
  if (options.limit) body.limit = options.limit;
  return request("POST", "/v1/query", body, {}, signal);
}

export const getJson = (path, signal) => request("GET", path, undefined, {}, signal);
export const putJson = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

const enc = encodeURIComponent;
export const consoleApi = {
  overview: () => getJson("/console/api/overview"),
  metrics: (name, range) => getJson(`/console/api/streams/${enc(name)}/metrics?range=${enc(range)}`),
  errors: (name, limit = 50) => getJson(`/console/api/streams/${enc(name)}/errors?limit=${limit}`),
  tail: (name, limit = 20) => getJson(`/console/api/streams/${enc(name)}/tail?limit=${limit}`),
  objects: (name, limit = 100) => getJson(`/console/api/streams/${enc(name)}/objects?limit=${limit}`),
  dashboards: () => getJson("/console/api/dashboards"),
  saveDashboard: (d) => {
    const { updated_ms: _ignored, ...body } = d;
    return putJson(`/console/api/dashboards/${enc(d.id)}`, body);
  },
  deleteDashboard: (id) => del(`/console/api/dashboards/${enc(id)}`),
};
