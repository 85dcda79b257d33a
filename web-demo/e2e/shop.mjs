// What every browser test here starts from: the real `shopgraph dev`
// binary on free ports with a fresh data directory, and Debian's Chromium
// driven by playwright-core. Shared by the *.test.mjs files here (not a
// test file itself: `node --test` runs only
// `*.test.mjs`).
//
// Environment: SHOPGRAPH_BIN (default ../target/debug/shopgraph, or
// $CARGO_TARGET_DIR/debug/shopgraph), CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary =
  process.env.SHOPGRAPH_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug/shopgraph');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The services `dev` prints a URL for, as it names them. */
const SERVICES = ['router', 'product', 'basket', 'payment', 'notification'];

/**
 * Starts `shopgraph dev` and waits until the router is ready. Resolves to
 * `{ base, urls, logTail, stop }`: `base` is the router's origin
 * (`http://127.0.0.1:<port>`), `urls` each service's printed `/graphql`
 * URL by name. `extraEnv` adds settings (a test of a non-default mode).
 */
export async function startShop(extraEnv = {}) {
  assert.ok(existsSync(binary), `no shopgraph binary at ${binary}: cargo build --bin shopgraph, or set SHOPGRAPH_BIN`);
  // Every port 0: `dev` binds free ones itself (no race with other
  // processes for a port picked beforehand) and prints where they are.
  const ports = {};
  for (const name of [
    'ROUTER_PORT',
    'ADMIN_PORT',
    'PRODUCT_PORT',
    'BASKET_PORT',
    'PAYMENT_PORT',
    'NOTIFICATION_PORT',
    'PRODUCT_METRICS_PORT',
    'BASKET_METRICS_PORT',
    'PAYMENT_METRICS_PORT',
    'NOTIFICATION_METRICS_PORT',
  ]) {
    ports[name] = '0';
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'shopgraph-e2e-data-'));
  const logPath = path.join(dataDir, 'shopgraph.log');
  const logTail = () => {
    try {
      return readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const env = { ...process.env, ...ports, SHOPGRAPH_DATA_DIR: dataDir, LOG_LEVEL: 'warn', LOG_FORMAT: 'json' };
  // Nothing from the caller's shell that would change what `dev` runs.
  for (const name of ['KAFKA_BROKERS', 'JWT_SECRET', 'JWT_JWKS_URL', 'JWT_JWKS_FILE', 'STOREFRONT', 'GRAPHIQL', 'REDIS_URL']) {
    delete env[name];
  }
  Object.assign(env, extraEnv);
  const log = openSync(logPath, 'w');
  const shop = spawn(binary, ['dev'], { cwd: repo, env, stdio: ['ignore', 'pipe', log] });
  const stop = async () => {
    if (shop.exitCode === null) {
      shop.kill('SIGTERM');
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          shop.kill('SIGKILL');
          resolve();
        }, 10_000);
        shop.on('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const printed = [];
  const urls = {};
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`shopgraph dev printed no router URL within 120s:\n${printed.join('\n')}\n${logTail()}`)), 120_000);
      createInterface({ input: shop.stdout }).on('line', (line) => {
        printed.push(line);
        const service = /^\s*(\w+)\s+(http:\/\/127\.0\.0\.1:\d+\/graphql)\b/.exec(line);
        if (service && SERVICES.includes(service[1])) urls[service[1]] = service[2];
        // The router's line comes after the subgraphs'.
        if (service?.[1] === 'router') {
          clearTimeout(timer);
          resolve();
        }
      });
      shop.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`shopgraph dev exited (${code}):\n${printed.join('\n')}\n${logTail()}`));
      });
    });
    const base = new URL(urls.router).origin;
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (shop.exitCode !== null) throw new Error(`shopgraph dev exited (${shop.exitCode}):\n${logTail()}`);
      try {
        const response = await fetch(`${base}/health/ready`);
        if (response.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`shopgraph dev not ready within 120s:\n${logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return { base, urls, logTail, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The fixture of every browser suite: before the file's tests, a shop
 * (`startShop(extraEnv)`) and a browser; after them, both stopped. Its
 * `running` and `browser` are set once the `before` hook has run. */
export function shopAndBrowser(extraEnv = {}) {
  const fixture = { running: undefined, browser: undefined };
  before(async () => {
    fixture.running = await startShop(extraEnv);
    fixture.browser = await launchBrowser();
  });
  after(async () => {
    await fixture.browser?.close();
    await fixture.running?.stop();
  });
  return fixture;
}

/** Headless Chromium, kept off the network beyond what a test opens. */
export async function launchBrowser() {
  assert.ok(existsSync(chromiumPath), `no Chromium at ${chromiumPath}: apt-get install chromium (tests/run.sh does), or set CHROMIUM`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Playwright starts Chromium with a fresh temporary profile
    // (--user-data-dir) of its own; these keep it off the network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page in a fresh context of `browser` (its own localStorage) that
 * collects any CSP violation or uncaught error in `page.problems`. */
export async function openPage(browser, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`CSP: ${message.text()}`);
    }
  });
  page.problems = problems;
  return page;
}

/** A demo user's token from the dev sign-in of the router at `base`. */
export async function tokenFor(base, user) {
  const response = await fetch(`${base}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

/** A GraphQL request to the router at `base`, outside the browser; fails
 * on any error. */
export async function gqlAt(base, token, query, variables = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

/** Polls `check` until it holds, failing after `within` ms. */
export async function eventually(what, check, within) {
  const deadline = Date.now() + within;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `not within ${within} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Routes `page`'s GraphQL websocket through the test, so it can cut the
 * connection as a network drop would and refuse reconnections until
 * restored. Call before the page opens its socket. */
export async function cuttableWebSocket(page) {
  let down = false;
  const open = [];
  await page.routeWebSocket(/\/graphql$/, (ws) => {
    if (down) {
      void ws.close({ code: 1001, reason: 'offline' });
      return;
    }
    ws.connectToServer();
    open.push(ws);
  });
  return {
    /** How many sockets went through since the last cut. */
    get connected() {
      return open.length;
    },
    /** Drops every open socket and refuses new ones. */
    async cut() {
      down = true;
      await Promise.all(open.splice(0).map((ws) => ws.close({ code: 1001, reason: 'network drop' })));
    },
    /** Lets the page's reconnection attempts through again. */
    restore() {
      down = false;
    },
  };
}
