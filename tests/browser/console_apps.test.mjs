// The console's Applications page (streaming SQL, the Kinesis Analytics SQL API) in real
// Chromium against the real `lakehose` binary (no auth).
//
// Creates the delivery streams `clicks` and `results` with the API, then in the browser: the
// create form shows CreateApplication's own CodeValidationException message for invalid SQL
// and creates the application from the prefilled tumbling-window example; Start (from
// TRIM_HORIZON) runs it; records put into `clicks` with the API show up as the pump's input,
// output and watermark on the application's page and as the summed figures in the list; a
// record that is not JSON is listed as rejected; Edit SQL shows the API's error, then saves a
// new version; Stop shows READY; Start with a missing stream shows the API's error; Delete
// goes through the dialog. Also: no horizontal scroll at phone width, no script errors or CSP
// violations.
//
// Screenshots go to tests/browser/artifacts/ (git-ignored).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { ROLE, startLakehose, launchChromium, newPage as harnessPage, aws as awsCall,
  assertNoHorizontalScroll } from "./harness.mjs";

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
const APP = "clicks-per-window";

const EXAMPLE_SQL = `CREATE TABLE clicks (user_id VARCHAR, event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
  WITH ('connector' = 'firehose', 'stream' = 'clicks');
CREATE TABLE per_window WITH ('connector' = 'firehose', 'stream' = 'results');
INSERT INTO per_window
SELECT user_id, window_start, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND))
GROUP BY user_id, window_start, window_end;
`;

let lakehose;
let endpoint;
let browser;
let context;
const errors = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  lakehose = await startLakehose({ prefix: "lakehose-console-apps-" });
  endpoint = lakehose.endpoint;
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
});

after(async () => {
  await browser?.close();
  lakehose?.stop();
});

const newPage = (ctx = context) => harnessPage(ctx, errors);
const aws = (target, body) => awsCall(endpoint, target, body);

async function createStream(name) {
  const r = await aws("Firehose_20150804.CreateDeliveryStream", {
    DeliveryStreamName: name,
    ExtendedS3DestinationConfiguration: {
      RoleARN: ROLE, BucketARN: "arn:aws:s3:::lake", Prefix: `${name}/`,
      BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 0 },
    },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function putRecords(stream, records) {
  const { status, body } = await aws("Firehose_20150804.PutRecordBatch", {
    DeliveryStreamName: stream,
    Records: records.map((r) => ({ Data: Buffer.from(r).toString("base64") })),
  });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.FailedPutCount, 0, JSON.stringify(body));
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** The pumps table as [{Pump, "Input records", ...}] (header text -> cell text). */
function pumpRows(page) {
  return page.evaluate(() => {
    const t = document.querySelector("#app-pumps table");
    if (!t) return [];
    const heads = [...t.querySelectorAll("thead th")].map((th) => th.textContent);
    return [...t.querySelectorAll("tbody tr")].map((tr) =>
      Object.fromEntries([...tr.children].map((td, i) => [heads[i], td.textContent])));
  });
}

test("create, start, watch, edit, stop and delete a streaming SQL application", async () => {
  await createStream("clicks");
  await createStream("results");
  const page = await newPage();

  // The list, empty at first; the nav entry is current.
  await page.goto(`${endpoint}/console/#/apps`);
  await page.locator("#no-apps").waitFor();
  assert.equal(await page.getAttribute('#main-nav a[data-section="apps"]', "aria-current"), "page");

  // The create form: prefilled example, the API's own message for invalid SQL.
  await page.click('a.button[href="#/create-app"]');
  await page.locator("#app-form").waitFor();
  assert.equal(await page.inputValue("#app-code-input"), EXAMPLE_SQL);
  await page.waitForFunction(() => /clicks, results/.test(document.querySelector("#app-streams").textContent));
  const badSql = "CREATE TABLE clicks (user_id VARCHAR) WITH ('connector' = 'firehose', 'stream' = 'clicks');\nINSERT INTO nowhere SELEC user_id FROM clicks;";
  await page.fill("#app-name", APP);
  await page.fill("#app-code-input", badSql);
  await page.click("#app-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#app-create-error").textContent.length > 0);
  const shown = await page.textContent("#app-create-error");
  const api = await aws("KinesisAnalytics_20150814.CreateApplication", { ApplicationName: APP, ApplicationCode: badSql });
  assert.equal(api.status, 400);
  assert.match(api.body.__type, /CodeValidationException/);
  assert.equal(shown, api.body.message, "the form shows the API's message as is");
  await shot(page, "app-create-error");

  // Valid SQL: created, and the application's page opens.
  await page.fill("#app-code-input", EXAMPLE_SQL);
  await page.click("#app-form button[type=submit]");
  await page.locator("#app-detail").waitFor();
  assert.equal(page.url(), `${endpoint}/console/#/apps/${APP}`);
  assert.match(await page.textContent("#status"), new RegExp(`Created ${APP}`));
  assert.equal(await page.textContent("#app-status"), "READY");
  assert.equal(await page.textContent("#app-code"), EXAMPLE_SQL);
  assert.match(await page.textContent("#app-summary"), /Version\s*1/);
  assert.equal(await page.isDisabled("#app-stop"), true);

  // Start from TRIM_HORIZON.
  await page.selectOption("#app-position", "TRIM_HORIZON");
  await page.click("#app-start");
  await page.waitForFunction(() => document.querySelector("#app-status").textContent === "RUNNING", null, { timeout: 30000 });
  assert.match(await page.textContent("#status"), /Started .* from TRIM_HORIZON/);
  assert.equal(await page.textContent("#app-action-error"), "");
  assert.equal(await page.isDisabled("#app-start"), true);

  // Records into `clicks`: three in the window 10:00:00-10:00:10, one a minute later that
  // moves the watermark (10:01:01 - 1 s) past the window's end, so the window closes.
  await putRecords("clicks", [
    { user_id: "u1", event_time: "2026-11-24T10:00:01.000Z" },
    { user_id: "u1", event_time: "2026-11-24T10:00:02.000Z" },
    { user_id: "u2", event_time: "2026-11-24T10:00:03.000Z" },
    { user_id: "u1", event_time: "2026-11-24T10:01:01.000Z" },
  ].map((r) => `${JSON.stringify(r)}\n`));

  // The page refreshes on its own: input 4, output 2 (u1: 2, u2: 1), the watermark.
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll("#app-pumps tbody tr td")].map((td) => td.textContent);
    return cells[1] === "4" && cells[2] === "2";
  }, null, { timeout: 60000 });
  const [pump] = await pumpRows(page);
  assert.equal(pump["Input records"], "4");
  assert.equal(pump["Output records"], "2");
  assert.equal(pump["Late records"], "0");
  assert.equal(pump["Failed records"], "0");
  assert.equal(pump.Watermark, "2026-11-24 10:01:00.000 UTC");
  assert.equal(await page.getAttribute("#app-pumps time", "datetime"), "2026-11-24T10:01:00.000Z");
  await shot(page, "app-running");

  // The results went to the `results` stream.
  let results = [];
  for (let i = 0; i < 60 && results.length < 2; i++) {
    if (i) await new Promise((r) => setTimeout(r, 500));
    const tail = await (await fetch(`${endpoint}/console/api/streams/results/tail?limit=20`)).json();
    results = tail.records.map((r) => JSON.parse(r.data));
  }
  assert.equal(results.length, 2, JSON.stringify(results));
  assert.deepEqual(results.map((r) => [r.user_id, r.clicks]).sort(), [["u1", 2], ["u2", 1]]);

  // A record that is not JSON is rejected and listed.
  await putRecords("clicks", ["not json\n"]);
  await page.waitForFunction(() => document.querySelectorAll("#app-rejected tbody tr").length > 0, null, { timeout: 30000 });
  assert.match(await page.textContent("#app-rejected"), /not json/);
  await shot(page, "app-rejected");

  // The list: summed figures and the watermark of the running application.
  await page.click('.crumbs a[href="#/apps"]');
  const row = page.locator(`#app-rows tr[data-app="${APP}"]`);
  await row.waitFor();
  await page.waitForFunction((app) => {
    const tr = document.querySelector(`#app-rows tr[data-app="${app}"]`);
    return tr && tr.querySelector('td[data-metric="input"]').textContent !== "–";
  }, APP);
  assert.equal(await row.locator("td.status").textContent(), "RUNNING");
  assert.equal(await row.locator("td.version").textContent(), "1");
  assert.ok(Number(await row.locator('td[data-metric="input"]').textContent()) >= 4);
  assert.equal(await row.locator('td[data-metric="output"]').textContent(), "2");
  assert.equal(await row.locator('td[data-metric="late"]').textContent(), "0");
  assert.equal(await row.locator("td.watermark").textContent(), "2026-11-24 10:01:00.000 UTC");
  await shot(page, "apps-list");

  // Edit SQL: the API's error inline, then a new version (the running application restarts
  // from where it stopped).
  await row.locator("th a").click();
  await page.locator("#app-detail").waitFor();
  await page.click("#app-edit");
  assert.equal(await page.isVisible("#app-code-edit"), true);
  assert.equal(await page.isVisible("#app-code"), false);
  await page.fill("#app-code-edit", badSql);
  await page.click("#app-save");
  await page.waitForFunction(() => document.querySelector("#app-edit-error").textContent.length > 0);
  const update = await aws("KinesisAnalytics_20150814.UpdateApplication", {
    ApplicationName: APP, CurrentApplicationVersionId: 1, ApplicationUpdate: { ApplicationCodeUpdate: badSql },
  });
  assert.equal(update.status, 400);
  assert.equal(await page.textContent("#app-edit-error"), update.body.message);
  const edited = EXAMPLE_SQL.replace("INTERVAL '10' SECOND", "INTERVAL '20' SECOND");
  await page.fill("#app-code-edit", edited);
  await page.click("#app-save");
  await page.waitForFunction(() => /Version\s*2/.test(document.querySelector("#app-summary").textContent), null, { timeout: 30000 });
  assert.equal(await page.isVisible("#app-code-edit"), false);
  assert.equal(await page.textContent("#app-code"), edited);
  assert.equal(await page.textContent("#app-status"), "RUNNING");

  // Stop: READY.
  await page.click("#app-stop");
  await page.waitForFunction(() => document.querySelector("#app-status").textContent === "READY", null, { timeout: 30000 });
  assert.match(await page.textContent("#status"), new RegExp(`Stopped ${APP}`));
  assert.equal(await page.isDisabled("#app-start"), false);
  assert.equal(await page.isDisabled("#app-stop"), true);
  const described = await aws("KinesisAnalytics_20150814.DescribeApplication", { ApplicationName: APP });
  assert.equal(described.body.ApplicationDetail.ApplicationStatus, "READY");
  assert.equal(described.body.ApplicationDetail.ApplicationVersionId, 2);
  await shot(page, "app-stopped");

  await page.click('.crumbs a[href="#/apps"]');
  await page.waitForFunction((app) => {
    const tr = document.querySelector(`#app-rows tr[data-app="${app}"]`);
    return tr && tr.querySelector("td.status").textContent === "READY";
  }, APP);
  assert.equal(await row.locator('td[data-metric="input"]').textContent(), "–");
  assert.equal(await row.locator("td.version").textContent(), "2");
  await page.close();
});

test("Start shows the API's error when a stream is missing; Delete asks first", async () => {
  const sqlText = EXAMPLE_SQL.replace("'stream' = 'results'", "'stream' = 'nowhere'");
  const created = await aws("KinesisAnalytics_20150814.CreateApplication", { ApplicationName: "broken", ApplicationCode: sqlText });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const page = await newPage();
  await page.goto(`${endpoint}/console/#/apps/broken`);
  await page.locator("#app-detail").waitFor();
  await page.click("#app-start");
  await page.waitForFunction(() => document.querySelector("#app-action-error").textContent.length > 0);
  const api = await aws("KinesisAnalytics_20150814.StartApplication", { ApplicationName: "broken" });
  assert.equal(api.status, 400);
  assert.equal(await page.textContent("#app-action-error"), api.body.message);
  assert.equal(await page.textContent("#app-status"), "READY");
  await shot(page, "app-start-error");

  // Delete: Cancel keeps it, Delete removes it and goes back to the list.
  await page.click("#app-delete");
  assert.equal(await page.locator("#confirm-dialog").isVisible(), true);
  await page.keyboard.press("Escape");
  assert.equal(await page.locator("#confirm-dialog").isVisible(), false);
  assert.equal((await aws("KinesisAnalytics_20150814.DescribeApplication", { ApplicationName: "broken" })).status, 200);
  await page.click("#app-delete");
  await page.click("#confirm-ok");
  await page.waitForFunction(() => location.hash === "#/apps");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("Deleted broken"));
  await page.locator(`#app-rows tr[data-app="${APP}"]`).waitFor();
  assert.equal(await page.locator('#app-rows tr[data-app="broken"]').count(), 0);
  assert.equal((await aws("KinesisAnalytics_20150814.DescribeApplication", { ApplicationName: "broken" })).status, 400);
  await page.close();
});

test("applications pages at phone width: no horizontal scroll", async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await newPage(phone);
  await assertNoHorizontalScroll(page, endpoint, ["#/apps", `#/apps/${APP}`, "#/create-app"], shot);
  await phone.close();
});

test("no script errors or CSP violations on the applications pages", () => {
  assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
});
