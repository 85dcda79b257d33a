// GraphiQL in a real browser that can reach nothing but the shop: every
// request to another origin is aborted (and fails the test), as on a
// machine with no internet. On the router, in `dev`: a query typed and
// run; a token put in the headers tab and `notificationAdded` run as a
// subscription over the websocket, with a notification made over HTTP
// showing up in the result pane; on subgraphs: a query (product) and the
// same subscription (notification, at its `/graphql/ws`).
//
//   SHOPGRAPH_BIN=target/debug/shopgraph node --test web-demo/e2e/graphiql.test.mjs
//
// Environment as storefront.test.mjs (shop.mjs); SCREENSHOT_DIR gets
// graphiql-*.png when set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as shop from './shop.mjs';

/** Waits this long at most for anything live to show up. */
const LIVE = 20_000;

const fixture = shop.shopAndBrowser();

/** A page whose requests may go to `origin` only; the others are aborted
 * and listed in `page.blocked`. */
async function offlinePage(origin) {
  const page = await shop.openPage(fixture.browser);
  page.blocked = [];
  await page.context().route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin || url.startsWith('data:')) return route.continue();
    page.blocked.push(url);
    return route.abort('internetdisconnected');
  });
  return page;
}

/** Fails if the page reached for another host, broke its CSP or threw;
 * then closes it. */
async function finish(page) {
  assert.deepEqual(page.blocked, [], 'the page reached for another host');
  assert.deepEqual(page.problems, []);
  await page.context().close();
}

async function shot(page, name) {
  if (!process.env.SCREENSHOT_DIR) return;
  mkdirSync(process.env.SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(process.env.SCREENSHOT_DIR, `graphiql-${name}.png`) });
}

/** Opens GraphiQL of the server whose `/graphql` is `url`. */
async function openGraphiql(url) {
  const page = await offlinePage(new URL(url).origin);
  const response = await page.goto(url);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self';/);
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  return page;
}

/** Replaces the text of the (visible) CodeMirror editor in `container`
 * by `text`, typed as a person pastes it (no auto-closed brackets). */
async function typeInto(page, container, text) {
  await page.locator(`${container} .CodeMirror >> visible=true`).click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

async function run(page) {
  await page.getByRole('button', { name: /^Execute query/ }).click();
}

/** The text of the result pane. */
function result(page) {
  return page.locator('.result-window').innerText();
}

test("the router's GraphiQL runs a query with nothing but the shop reachable", async () => {
  const page = await openGraphiql(fixture.running.urls.router);
  await typeInto(page, '.graphiql-query-editor', '{ products(first: 2) { nodes { name } } }');
  await run(page);
  await shop.eventually('the query result', async () => /"nodes"/.test(await result(page)), LIVE);
  const text = await result(page);
  assert.match(text, /"name": "/, text);
  assert.doesNotMatch(text, /"errors"/, text);
  await shot(page, 'query');
  await finish(page);
});

/**
 * Runs `subscription { notificationAdded { id title } }` in `page` as
 * alice (her token in the headers tab), checks the websocket's
 * `connection_init` carried it, and has the admin create notifications
 * for alice over HTTP until one shows in the result pane (the
 * subscription may still be opening when the first is made; every one
 * made after it is open is sent). Resolves to the result pane's text.
 */
async function notificationShowsUp(page) {
  const alice = await shop.tokenFor(fixture.running.base, 'alice');
  const admin = await shop.tokenFor(fixture.running.base, 'admin');
  const inits = [];
  page.on('websocket', (socket) => {
    socket.on('framesent', ({ payload }) => {
      const message = JSON.parse(payload);
      if (message.type === 'connection_init') inits.push(message.payload);
    });
  });
  await typeInto(page, '.graphiql-query-editor', 'subscription { notificationAdded { id title } }');
  await page.getByRole('button', { name: 'Headers', exact: true }).click();
  await typeInto(page, '.graphiql-editor-tool', JSON.stringify({ Authorization: `Bearer ${alice}` }));
  await run(page);
  await shop.eventually('the websocket to be open', () => inits.length > 0, LIVE);
  assert.deepEqual(inits, [{ headers: { Authorization: `Bearer ${alice}` } }]);

  const titles = [];
  const shown = (text) => titles.some((sent) => text.includes(sent));
  const deadline = Date.now() + LIVE;
  let text = '';
  for (let attempt = 1; !shown(text); attempt++) {
    assert.ok(Date.now() < deadline, `no notification in the result pane within ${LIVE} ms:\n${text}\n${fixture.running.logTail()}`);
    const title = `From GraphiQL's test #${attempt} at ${Date.now()}`;
    titles.push(title);
    await shop.gqlAt(
      fixture.running.base,
      admin,
      'mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }',
      { input: { userId: 'alice', type: 'SYSTEM', title, message: 'Sent by the GraphiQL browser test.' } },
    );
    for (const until = Date.now() + 2_000; Date.now() < until && !shown(text); ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      text = await result(page);
    }
  }
  assert.match(text, /"notificationAdded": \{/, text);
  assert.doesNotMatch(text, /"errors"/, text);
  return text;
}

test('a subscription runs over the websocket as the user of the headers tab', async () => {
  const page = await openGraphiql(fixture.running.urls.router);
  await notificationShowsUp(page);
  await shot(page, 'subscription');
  await finish(page);
});

test("a subgraph's GraphiQL runs a query", async () => {
  const page = await openGraphiql(fixture.running.urls.product);
  assert.equal(await page.title(), 'product');
  await typeInto(page, '.graphiql-query-editor', '{ products(first: 1) { nodes { id name } } }');
  await run(page);
  await shop.eventually('the query result', async () => /"name": "/.test(await result(page)), LIVE);
  assert.doesNotMatch(await result(page), /"errors"/);
  await finish(page);
});

test("a subgraph's GraphiQL runs a subscription as the user of the headers tab", async () => {
  const page = await openGraphiql(fixture.running.urls.notification);
  await notificationShowsUp(page);
  await finish(page);
});
