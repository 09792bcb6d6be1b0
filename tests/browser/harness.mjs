// What every browser test needs: the real `lakehose` binary on a temporary data dir, headless
// Debian Chromium, pages that record script errors and CSP violations, and AWS JSON calls.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const BIN = process.env.LAKEHOSE_BIN;
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const ROLE = "arn:aws:iam::123456789012:role/firehose";

/**
 * Starts `lakehose serve` on 127.0.0.1:0 with a fresh data dir (and `config` as its
 * lakehose.toml when given). Resolves to { server, endpoint, stop() } once it listens.
 */
export async function startLakehose({ prefix = "lakehose-console-", config } = {}) {
  assert.ok(BIN, "set LAKEHOSE_BIN to the lakehose binary");
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dataDir, "data")];
  if (config !== undefined) {
    const path = join(dataDir, "lakehose.toml");
    writeFileSync(path, config);
    args.push("--config", path);
  }
  const server = spawn(BIN, args, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const lines = createInterface({ input: server.stdout });
  const endpoint = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("lakehose did not start within 30 s")), 30000);
    server.once("exit", (code) => reject(new Error(`lakehose exited with ${code}`)));
    lines.on("line", (line) => {
      const m = line.match(/lakehose listening on (https?:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return {
    server,
    endpoint,
    dataDir,
    stop() {
      server.kill("SIGTERM");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium with the flags these tests need on this machine. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}

/** A page of `context` whose script errors and CSP violations are pushed to `errors`. */
export async function newPage(context, errors) {
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  return page;
}

/** An unsigned AWS JSON 1.1 call: { status, body }. */
export async function aws(endpoint, target, body) {
  const r = await fetch(`${endpoint}/`, {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/**
 * Opens each of `routes` (`#/...`) of the console on `page` and asserts the page is no wider
 * than the viewport (no horizontal scroll); `shot(page, name)` keeps a screenshot of each.
 */
export async function assertNoHorizontalScroll(page, endpoint, routes, shot) {
  for (const route of routes) {
    await page.goto(`${endpoint}/console/${route}`);
    await page.waitForFunction(() => document.querySelector("#view").children.length > 0);
    await page.waitForTimeout(800);
    const { scroll, client } = await page.evaluate(() => ({
      scroll: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
      client: document.documentElement.clientWidth,
    }));
    assert.ok(scroll <= client, `${route}: page is ${scroll}px wide in a ${client}px viewport`);
    await shot(page, `phone-${route.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "")}`);
  }
}
