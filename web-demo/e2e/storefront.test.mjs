// The storefront in a real browser (Debian's Chromium driven by
// playwright-core) against the real `shopgraph dev` binary on free ports,
// with a fresh data directory: sign in, browse and search, add to basket,
// pay, see the order and the bell's notification arrive live; a declined
// card; an admin's stock change reaching an open product page live;
// changed prices and sold-out units at checkout; an admin's refund
// reaching the shopper's orders page live. The tests run in order and
// build on each other's orders.
//
//   SHOPGRAPH_BIN=target/debug/shopgraph node --test web-demo/e2e/
//
// Environment: SHOPGRAPH_BIN (default ../target/debug/shopgraph, or
// $CARGO_TARGET_DIR/debug/shopgraph), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOT_DIR (where each page's screenshot is saved; default a temp
// folder, printed). Run by tests/run.sh after the Rust tests.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as shop from './shop.mjs';

const screenshots = process.env.SCREENSHOT_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'storefront-shots-'));
mkdirSync(screenshots, { recursive: true });

/** Waits this long at most for anything live to show up. */
const LIVE = 20_000;

const fixture = shop.shopAndBrowser();
/** The shop's origin (once the fixture has started it). */
const base = () => fixture.running.base;

after(() => {
  console.log(`# screenshots in ${screenshots}`);
});

/** A page in a fresh context (its own localStorage) that fails the test on
 * any CSP violation or uncaught error. */
function openPage(viewport) {
  return shop.openPage(fixture.browser, viewport);
}

async function signIn(page, user) {
  await page.goto(`${base()}/signin`);
  await page.getByRole('button', { name: `Sign in as ${user}` }).click();
  await page.getByTestId('signed-in-as').filter({ hasText: user }).waitFor();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

async function addToBasket(page, search, name) {
  await page.goto(`${base()}/`);
  await page.getByLabel('Search', { exact: true }).fill(search);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByTestId('result-count').filter({ hasText: `matching “${search}”` }).waitFor();
  await page.getByRole('button', { name: `Add ${name} to basket` }).click();
  await page.getByRole('status').filter({ hasText: 'Added' }).waitFor();
}

/** Polls `check` until it holds, failing after `within` ms. */
function eventually(what, check, within = LIVE) {
  return shop.eventually(what, check, within);
}

/** A demo user's token from the dev sign-in. */
function tokenFor(user) {
  return shop.tokenFor(base(), user);
}

/** A GraphQL request to the router, outside the browser (the "other
 * side": an admin changing the catalogue under a shopper). */
function gql(token, query, variables = {}) {
  return shop.gqlAt(base(), token, query, variables);
}

async function productId(token, search) {
  const data = await gql(token, 'query($s: String) { products(first: 1, filter: { search: $s }) { nodes { id } } }', {
    s: search,
  });
  return data.products.nodes[0].id;
}

async function payWith(page, last4) {
  await page.goto(`${base()}/checkout`);
  await page.getByRole('button', { name: new RegExp(`^${last4} `) }).click();
  await page.getByRole('button', { name: /^Pay / }).click();
}

test('the page is served with its security headers, and client routes fall back to it', async () => {
  const page = await fetch(`${base()}/orders`, { headers: { accept: 'text/html' } });
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  const token = await fetch(`${base()}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"user":"bob"}',
  });
  assert.equal(token.status, 200);
});

test('alice signs in, searches, buys, and sees her order and the notification arrive live', async () => {
  const page = await openPage();
  const started = Date.now();
  await page.goto(`${base()}/`);
  await page.getByRole('list', { name: 'Products' }).getByRole('listitem').first().waitFor();
  console.log(`# navigation to a rendered catalogue: ${Date.now() - started} ms`);
  await shot(page, 'catalogue');

  await signIn(page, 'alice');
  // Browse: a category filter and a sort order narrow and order the list.
  await page.goto(`${base()}/`);
  await page.getByLabel('Category').selectOption('Coffee');
  await page.getByLabel('Sort by').selectOption('PRICE');
  // The list settles on Coffee only, cheapest first (until the new page
  // arrives the previous one may still show).
  await eventually('the Coffee category, sorted by price', async () => {
    const categories = await page.locator('.card .category').allTextContents();
    const prices = await page.locator('.card .price').allTextContents();
    const amounts = prices.map((text) => Number(text.replace(/[^0-9.,]/g, '').replace(',', '.')));
    return (
      prices.length > 1 &&
      categories.every((category) => category === 'Coffee') &&
      amounts.every((amount, i) => i === 0 || amounts[i - 1] <= amount)
    );
  });

  await addToBasket(page, 'Yirgacheffe', 'Ethiopia Yirgacheffe beans 250g');
  await page.getByTestId('basket-count').filter({ hasText: '1' }).waitFor();
  await page.goto(`${base()}/basket`);
  await page.getByLabel('Quantity of Ethiopia Yirgacheffe beans 250g').fill('2');
  await page.getByLabel('Quantity of Ethiopia Yirgacheffe beans 250g').press('Enter');
  await page.getByTestId('basket-total').filter({ hasText: '25.80' }).waitFor();
  await shot(page, 'basket');

  await payWith(page, '4242');
  const paid = Date.now();
  await page.getByTestId('checkout-result').filter({ hasText: 'Payment completed' }).waitFor();
  await shot(page, 'checkout-paid');
  // The bell counts the PAYMENT_COMPLETED notification as it arrives.
  await page.getByTestId('unread-count').filter({ hasText: '1' }).waitFor({ timeout: LIVE });
  console.log(`# checkout to the notification in the page: ${Date.now() - paid} ms`);
  await page.getByRole('button', { name: /^Notifications, 1 unread/ }).click();
  const notification = page.getByTestId('notification').first();
  await notification.waitFor();
  assert.match(await notification.textContent(), /payment|paid|order/i);
  await shot(page, 'notifications');
  await notification.getByRole('button', { name: /Mark .* read/ }).click();
  await page.getByRole('button', { name: /^Notifications, 0 unread/ }).waitFor();

  await page.goto(`${base()}/orders`);
  const order = page.getByTestId('order').first();
  await order.getByTestId('order-status').filter({ hasText: 'Paid' }).waitFor();
  assert.match(await order.textContent(), /2 × Ethiopia Yirgacheffe beans 250g/);
  await shot(page, 'orders');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a declined card is told to the shopper, and nothing is charged', async () => {
  const page = await openPage();
  await signIn(page, 'bob');
  await addToBasket(page, 'Huila', 'Colombia Huila beans 1kg');
  await payWith(page, '0002');
  const answer = page.getByTestId('checkout-result');
  await answer.filter({ hasText: 'Your card was declined. Nothing was charged.' }).waitFor();
  await shot(page, 'checkout-declined');
  await page.goto(`${base()}/orders`);
  await page.getByTestId('order-status').first().filter({ hasText: 'Payment failed' }).waitFor();
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("an admin's stock change reaches an open product page live", async () => {
  const shopper = await openPage({ width: 390, height: 844 });
  await signIn(shopper, 'alice');
  await shopper.goto(`${base()}/`);
  await shopper.getByLabel('Search', { exact: true }).fill('Guatemala');
  await shopper.getByRole('button', { name: 'Search', exact: true }).click();
  await shopper.getByRole('link', { name: 'Guatemala Antigua beans 250g' }).click();
  const stock = shopper.getByTestId('stock');
  await stock.filter({ hasText: 'In stock (18)' }).waitFor();
  // The page must not scroll sideways on a phone.
  const overflow = await shopper.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px at 390px wide`);
  // The websocket is up once the live marker shows; give the subscription
  // a moment to be registered at the router.
  await stock.getByText('live').waitFor();
  await shopper.waitForTimeout(500);

  const admin = await openPage();
  await signIn(admin, 'admin');
  await admin.goto(`${base()}/admin`);
  await admin.getByLabel('Find a product').fill('Guatemala');
  await admin.getByRole('button', { name: 'Find', exact: true }).click();
  await admin.getByLabel('Units to add to Guatemala Antigua beans 250g').fill('7');
  await admin.getByRole('button', { name: 'Adjust stock of Guatemala Antigua beans 250g' }).click();
  await admin.getByRole('status').filter({ hasText: 'Stock is now 25.' }).waitFor();
  await shot(admin, 'admin');

  await stock.filter({ hasText: 'In stock (25)' }).waitFor({ timeout: LIVE });
  await shopper.getByTestId('stock-change').filter({ hasText: '+7 (adjustment)' }).waitFor();
  await shot(shopper, 'product-mobile');
  assert.deepEqual(shopper.problems, []);
  assert.deepEqual(admin.problems, []);
  await shopper.context().close();
  await admin.context().close();
});

test('changed prices and sold-out units are explained, and the shopper recovers from both', async () => {
  const admin = await tokenFor('admin');
  const jacket = await productId(admin, 'Rain jacket');
  // Bob's basket still holds what his declined card did not buy.
  await gql(await tokenFor('bob'), 'mutation { clearBasket { itemCount } }');
  const page = await openPage();
  await signIn(page, 'bob');
  await addToBasket(page, 'Rain jacket', 'Rain jacket');
  await page.getByRole('button', { name: 'Add Rain jacket to basket' }).click();
  await page.getByRole('status').filter({ hasText: 'Basket: 2 items' }).waitFor();

  // The price changes under the basket: checkout refuses, names both
  // prices, and the shopper takes the new one.
  await gql(admin, 'mutation($id: ID!) { updateProduct(id: $id, input: { price: "149.00" }) { id } }', { id: jacket });
  await payWith(page, '4242');
  const answer = page.getByTestId('checkout-result');
  await answer.filter({ hasText: 'Some prices changed' }).waitFor();
  assert.match(await answer.textContent(), /Rain jacket: was €159\.00, now €149\.00/);
  await shot(page, 'checkout-price-changed');
  await page.getByRole('button', { name: 'Accept the new prices' }).click();
  await page.getByText('Total: €298.00', { exact: true }).waitFor();

  // Units sell out under the basket: checkout refuses and says how many are left.
  await gql(admin, 'mutation($id: ID!) { adjustStock(id: $id, delta: -3) { stockQuantity } }', { id: jacket });
  await page.getByRole('button', { name: /^Pay / }).click();
  await answer.filter({ hasText: 'Only 1 left of Rain jacket (you asked for 2)' }).waitFor();
  assert.match(await answer.textContent(), /Nothing was charged/);
  await shot(page, 'checkout-out-of-stock');
  await answer.getByRole('link', { name: 'Change your basket' }).click();
  await page.getByLabel('Quantity of Rain jacket').fill('1');
  await page.getByLabel('Quantity of Rain jacket').press('Enter');
  await page.getByTestId('basket-total').filter({ hasText: '149.00' }).waitFor();
  await payWith(page, '4242');
  await answer.filter({ hasText: 'Payment completed' }).waitFor();
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("an admin's refund reaches the shopper's orders page live", async () => {
  const shopper = await openPage();
  await signIn(shopper, 'alice');
  await shopper.goto(`${base()}/orders`);
  const order = shopper.getByTestId('order').filter({ hasText: 'Ethiopia Yirgacheffe' });
  await order.getByTestId('order-status').filter({ hasText: 'Paid' }).waitFor();
  await shopper.waitForTimeout(500);

  const admin = await openPage();
  await signIn(admin, 'admin');
  await admin.goto(`${base()}/admin`);
  const payment = admin.getByRole('listitem').filter({ hasText: 'Ethiopia Yirgacheffe' });
  await payment.getByLabel('Refund amount').fill('5.80');
  await payment.getByRole('button', { name: 'Refund' }).click();
  await payment.getByRole('status').filter({ hasText: 'Now PARTIALLY_REFUNDED.' }).waitFor();

  await order.getByTestId('order-status').filter({ hasText: 'Partly refunded' }).waitFor({ timeout: LIVE });
  await order.getByText('Refunded: €5.80').waitFor();
  await shot(shopper, 'orders-refunded');
  assert.deepEqual(shopper.problems, []);
  assert.deepEqual(admin.problems, []);
  await shopper.context().close();
  await admin.context().close();
});

test('the bell resumes after the websocket drops: what was created meanwhile arrives once', async () => {
  const admin = await tokenFor('admin');
  const notify = (title) =>
    gql(
      admin,
      'mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }',
      { input: { userId: 'alice', type: 'SYSTEM', title, message: 'Sent by the browser test.' } },
    );
  const page = await openPage();
  const socket = await shop.cuttableWebSocket(page);
  await signIn(page, 'alice');
  const bell = page.getByRole('button', { name: /^Notifications, \d+ unread$/ });
  // Read the count once the bell has loaded it (aria-busy until then).
  await page.locator('.bell > button[aria-busy="false"]').waitFor();
  const unread = async () => Number((await bell.getAttribute('aria-label')).match(/(\d+) unread/)[1]);
  const before = await unread();
  const stamp = Date.now();

  await notify(`Live ${stamp}`);
  await page.getByRole('button', { name: `Notifications, ${before + 1} unread` }).waitFor({ timeout: LIVE });

  await socket.cut();
  await notify(`While offline ${stamp}`);
  // The client keeps retrying and is refused: nothing can arrive.
  await page.waitForTimeout(1500);
  assert.equal(await unread(), before + 1, 'nothing arrives while the socket is down');

  socket.restore();
  await page.getByRole('button', { name: `Notifications, ${before + 2} unread` }).waitFor({ timeout: LIVE });
  // Give a duplicate (a replay from an older `after`) time to show up.
  await page.waitForTimeout(1500);
  assert.equal(await unread(), before + 2);
  await bell.click();
  assert.equal(await page.getByTestId('notification').filter({ hasText: `While offline ${stamp}` }).count(), 1);
  assert.equal(await page.getByTestId('notification').filter({ hasText: `Live ${stamp}` }).count(), 1);
  await shot(page, 'bell-after-reconnect');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
