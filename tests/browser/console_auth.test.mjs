// Console sign-in, session cookie and CSRF protection, in real Chromium.
//
// Starts the real `lakehose` binary ($LAKEHOSE_BIN) with access keys configured, opens
// /console/ in headless Debian Chromium (driven by playwright-core), and checks what a user
// and an attacker can do: sign-in with a wrong secret fails, the right one sets an
// HttpOnly; Secure; SameSite=Strict cookie that scripts cannot read, the console creates and
// deletes streams, a call without the CSRF token (or with another session's) is refused and
// changes nothing, and signing out ends the session on the server.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startLakehose, launchChromium } from "./harness.mjs";

const ADMIN = { id: "AKIACONSOLEADMIN0001", secret: "console-admin-secret-0123456789abcdef" };
const READER = { id: "AKIACONSOLEREADER001", secret: "console-reader-secret-0123456789abcd" };

let lakehose;
let endpoint;
let browser;

before(async () => {
  lakehose = await startLakehose({
    config: `[[auth.keys]]
access_key_id = "${ADMIN.id}"
secret_access_key = "${ADMIN.secret}"
allow = [{ actions = ["*"] }]

[[auth.keys]]
access_key_id = "${READER.id}"
secret_access_key = "${READER.secret}"
allow = [{ actions = ["firehose:List*", "firehose:Describe*"] }]
`,
  });
  endpoint = lakehose.endpoint;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  lakehose?.stop();
});

async function signIn(page, key) {
  await page.goto(`${endpoint}/console/`);
  await page.locator("#login-form").waitFor();
  await page.fill("#login-key", key.id);
  await page.fill("#login-secret", key.secret);
  await page.click("#login-form button[type=submit]");
}

// A raw API call from inside the page, with the session cookie and a chosen CSRF header.
function rawCall(page, target, body, csrf) {
  return page.evaluate(
    async ({ target, body, csrf }) => {
      const headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": target,
      };
      if (csrf !== null) headers["X-CSRF-Token"] = csrf;
      const r = await fetch("/", { method: "POST", headers, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    },
    { target, body, csrf },
  );
}

const CREATE = (name) => ({
  DeliveryStreamName: name,
  ExtendedS3DestinationConfiguration: {
    RoleARN: "arn:aws:iam::123456789012:role/firehose",
    BucketARN: "arn:aws:s3:::console-bucket",
  },
});

test("signing in needs the right secret and sets a locked-down session cookie", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, { id: ADMIN.id, secret: "wrong-secret" });
  await assert.doesNotReject(
    page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0),
  );
  assert.equal(await page.locator("#streams").isVisible(), false);
  assert.equal((await context.cookies()).length, 0, "a failed sign-in sets no cookie");

  await page.fill("#login-secret", ADMIN.secret);
  await page.click("#login-form button[type=submit]");
  await page.locator("#streams").waitFor();
  assert.equal(await page.textContent("#who-key"), ADMIN.id);

  const cookies = await context.cookies();
  assert.equal(cookies.length, 1, JSON.stringify(cookies));
  const [cookie] = cookies;
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.ok(cookie.value.length >= 32, "the session id is long and random");
  assert.equal(await page.evaluate(() => document.cookie), "", "scripts cannot read it");
  await context.close();
});

test("the console creates and deletes streams through the session", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, ADMIN);
  await page.locator("#streams").waitFor();
  await page.click('#main-nav a[href="#/create"]');
  await page.fill("#create-name", "from-console");
  await page.fill("#create-bucket", "console-bucket");
  await page.click("#create-form button[type=submit]");
  await page.locator("#stream-rows tr", { hasText: "from-console" }).waitFor();

  // The confirmation is the page's own <dialog>.
  await page.click('button[aria-label="Delete from-console"]');
  await page.click("#confirm-ok");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("Deleted"));
  await context.close();
});

test("calls without this session's CSRF token are refused and change nothing", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, ADMIN);
  await page.locator("#streams").waitFor();
  const target = "Firehose_20150804.CreateDeliveryStream";

  const missing = await rawCall(page, target, CREATE("csrf-missing"), null);
  assert.equal(missing.status, 403, JSON.stringify(missing));
  assert.match(missing.body.__type, /AccessDenied|InvalidCsrf|Forbidden/);

  const forged = await rawCall(page, target, CREATE("csrf-forged"), "0".repeat(64));
  assert.equal(forged.status, 403, JSON.stringify(forged));

  // Another user's valid token does not work with this session either.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, ADMIN);
  await otherPage.locator("#streams").waitFor();
  const otherToken = await otherPage.evaluate(async () => {
    const r = await fetch("/console/api/session");
    return (await r.json()).csrfToken;
  });
  const crossed = await rawCall(page, target, CREATE("csrf-crossed"), otherToken);
  assert.equal(crossed.status, 403, JSON.stringify(crossed));

  const listed = await rawCall(page, "Firehose_20150804.ListDeliveryStreams", {}, await page.evaluate(async () => {
    const r = await fetch("/console/api/session");
    return (await r.json()).csrfToken;
  }));
  assert.equal(listed.status, 200, JSON.stringify(listed));
  for (const name of ["csrf-missing", "csrf-forged", "csrf-crossed"]) {
    assert.ok(!listed.body.DeliveryStreamNames.includes(name), `${name} must not exist`);
  }
  await other.close();
  await context.close();
});

test("a page on another site cannot use the session", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, ADMIN);
  await page.locator("#streams").waitFor();
  // Same server, other site: http://localhost:PORT is not http://127.0.0.1:PORT.
  const otherSite = endpoint.replace("127.0.0.1", "localhost");
  const attacker = await context.newPage();
  await attacker.goto(`${otherSite}/health`);
  const outcome = await attacker.evaluate(async (target) => {
    try {
      const r = await fetch(target, {
        method: "POST",
        mode: "cors",
        credentials: "include",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": "Firehose_20150804.CreateDeliveryStream",
        },
        body: JSON.stringify({
          DeliveryStreamName: "cross-site",
          ExtendedS3DestinationConfiguration: {
            RoleARN: "arn:aws:iam::123456789012:role/firehose",
            BucketARN: "arn:aws:s3:::console-bucket",
          },
        }),
      });
      return `status ${r.status}`;
    } catch (e) {
      return `blocked: ${e.message}`;
    }
  }, `${endpoint}/`);
  assert.ok(!outcome.startsWith("status 200"), outcome);
  const token = await page.evaluate(async () => (await (await fetch("/console/api/session")).json()).csrfToken);
  const listed = await rawCall(page, "Firehose_20150804.ListDeliveryStreams", {}, token);
  assert.ok(!listed.body.DeliveryStreamNames.includes("cross-site"), "the cross-site call changed nothing");
  await context.close();
});

test("a session has its key's permissions only", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, READER);
  await page.locator("#streams").waitFor();
  await page.click('#main-nav a[href="#/create"]');
  await page.fill("#create-name", "reader-made");
  await page.fill("#create-bucket", "console-bucket");
  await page.click("#create-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#create-error").textContent.length > 0);
  assert.match(await page.textContent("#create-error"), /not authorized/);
  await context.close();
});

test("signing out ends the session on the server, not only in the browser", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, ADMIN);
  await page.locator("#streams").waitFor();
  const [cookie] = await context.cookies();
  const token = await page.evaluate(async () => (await (await fetch("/console/api/session")).json()).csrfToken);
  await page.click("#sign-out");
  await page.locator("#login-form").waitFor();

  // Replaying the old cookie and token from outside the browser no longer works.
  const response = await fetch(`${endpoint}/`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "Firehose_20150804.ListDeliveryStreams",
      "X-CSRF-Token": token,
      Cookie: `${cookie.name}=${cookie.value}`,
    },
    body: "{}",
  });
  assert.notEqual(response.status, 200);
  await context.close();
});
