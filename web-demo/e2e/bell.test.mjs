// The bell of a shopper whose inbox is empty when the page loads, in a
// real browser against its own `shopgraph dev` (so bob has no
// notification yet): the websocket drops before anything arrived, a
// notification is created meanwhile, and it shows up exactly once when the
// socket is back. With no notification seen there is no id to resume
// after; the bell resumes from the start instead (the nil UUID), which for
// an inbox that was empty is exactly what it missed.
//
//   SHOPGRAPH_BIN=target/debug/shopgraph node --test web-demo/e2e/bell.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as shop from './shop.mjs';

/** Waits this long at most for anything live to show up. */
const LIVE = 20_000;

const fixture = shop.shopAndBrowser();

test('an empty bell misses nothing created while its websocket was down', async () => {
  const { base } = fixture.running;
  const admin = await shop.tokenFor(base, 'admin');
  const notify = (title) =>
    shop.gqlAt(base, admin, 'mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }', {
      input: { userId: 'bob', type: 'SYSTEM', title, message: 'Sent by the browser test.' },
    });
  const page = await shop.openPage(fixture.browser);
  const socket = await shop.cuttableWebSocket(page);
  await page.goto(`${base}/signin`);
  await page.getByRole('button', { name: 'Sign in as bob' }).click();
  await page.getByTestId('signed-in-as').filter({ hasText: 'bob' }).waitFor();
  await page.locator('.bell > button[aria-busy="false"]').waitFor();
  const bell = page.getByRole('button', { name: /^Notifications, \d+ unread$/ });
  assert.equal(await bell.getAttribute('aria-label'), 'Notifications, 0 unread', 'a fresh inbox');

  // Down before anything arrived: the bell has no id to resume after.
  await shop.eventually('the bell subscribed', async () => socket.connected > 0, LIVE);
  await socket.cut();
  const title = `While offline ${Date.now()}`;
  await notify(title);
  await page.waitForTimeout(1500);
  assert.equal(await bell.getAttribute('aria-label'), 'Notifications, 0 unread', 'nothing arrives while down');

  socket.restore();
  await page.getByRole('button', { name: 'Notifications, 1 unread' }).waitFor({ timeout: LIVE });
  // Give a duplicate time to show up.
  await page.waitForTimeout(1500);
  assert.equal(await bell.getAttribute('aria-label'), 'Notifications, 1 unread');
  await bell.click();
  assert.equal(await page.getByTestId('notification').filter({ hasText: title }).count(), 1);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
