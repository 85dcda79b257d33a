// The storefront under the strictest persisted-query mode, in a real
// browser: `shopgraph dev` with the operations registry as the safelist
// and free-form text refused (PERSISTED_QUERIES_SAFELIST=true,
// PERSISTED_QUERIES_ALLOW_TEXT=false), as a shop running only its own
// apps' operations would. Every request the page makes, over HTTP and the
// websocket, goes by id; shopping, checkout and the live notification work
// unchanged, and anything off the list is refused.
//
//   SHOPGRAPH_BIN=target/debug/shopgraph node --test web-demo/e2e/safelist.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as shop from './shop.mjs';

/** Waits this long at most for anything live to show up. */
const LIVE = 20_000;

const fixture = shop.shopAndBrowser({
  PERSISTED_QUERIES_MANIFEST: path.join(shop.repo, 'schema/operations.json'),
  PERSISTED_QUERIES_SAFELIST: 'true',
  PERSISTED_QUERIES_ALLOW_TEXT: 'false',
});

/** Records what `page` sends to /graphql: POST bodies and the payloads of
 * websocket `subscribe` messages, parsed. */
function recordOperations(page) {
  const sent = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/graphql' && request.method() === 'POST') {
      sent.push({ via: 'http', body: JSON.parse(request.postData() ?? '{}') });
    }
  });
  page.on('websocket', (ws) => {
    ws.on('framesent', ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type === 'subscribe') sent.push({ via: 'ws', body: message.payload });
    });
  });
  return sent;
}

test('alice shops, pays and is notified live with every operation sent by id', async () => {
  const { base } = fixture.running;
  const page = await shop.openPage(fixture.browser);
  const sent = recordOperations(page);
  await page.goto(`${base}/signin`);
  await page.getByRole('button', { name: 'Sign in as alice' }).click();
  await page.getByTestId('signed-in-as').filter({ hasText: 'alice' }).waitFor();

  await page.goto(`${base}/`);
  await page.getByLabel('Search', { exact: true }).fill('Yirgacheffe');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByTestId('result-count').filter({ hasText: 'matching “Yirgacheffe”' }).waitFor();
  await page.getByRole('button', { name: 'Add Ethiopia Yirgacheffe beans 250g to basket' }).click();
  await page.getByRole('status').filter({ hasText: 'Added' }).waitFor();
  await page.getByTestId('basket-count').filter({ hasText: '1' }).waitFor();

  await page.goto(`${base}/checkout`);
  await page.getByRole('button', { name: /^4242 / }).click();
  await page.getByRole('button', { name: /^Pay / }).click();
  await page.getByTestId('checkout-result').filter({ hasText: 'Payment completed' }).waitFor();
  await page.getByTestId('unread-count').filter({ hasText: '1' }).waitFor({ timeout: LIVE });

  await page.goto(`${base}/orders`);
  await page.getByTestId('order').first().getByTestId('order-status').filter({ hasText: 'Paid' }).waitFor();

  const subscriptions = sent.filter((s) => s.via === 'ws');
  assert.ok(sent.length >= 6 && subscriptions.length >= 1, `too few operations seen: ${JSON.stringify(sent)}`);
  for (const { via, body } of sent) {
    assert.ok(!body.query, `${via} sent query text: ${JSON.stringify(body)}`);
    assert.match(body.extensions?.persistedQuery?.sha256Hash ?? '', /^[0-9a-f]{64}$/, `${via}: ${JSON.stringify(body)}`);
  }
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the admin pages run under the safelist too', async () => {
  const { base } = fixture.running;
  const page = await shop.openPage(fixture.browser);
  await page.goto(`${base}/signin`);
  await page.getByRole('button', { name: 'Sign in as admin' }).click();
  await page.getByTestId('signed-in-as').filter({ hasText: 'admin' }).waitFor();
  await page.goto(`${base}/admin`);
  await page.getByRole('button', { name: /^Edit / }).first().waitFor();
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('what is not on the list is refused, even the text of a registered operation', async () => {
  const { base } = fixture.running;
  const token = await shop.tokenFor(base, 'alice');
  const post = async (body) => {
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const free = await post({ query: '{ products(first: 1) { nodes { id } } }' });
  assert.equal(free.status, 400);
  assert.equal(free.body.errors[0].extensions.code, 'QUERY_NOT_IN_SAFELIST');

  const registry = JSON.parse(readFileSync(path.join(shop.repo, 'schema/operations.json'), 'utf8'));
  const registered = registry.operations.find((operation) => operation.type === 'query');
  const text = await post({ query: registered.body });
  assert.equal(text.status, 400, 'ids only: the text of a registered operation is refused');
  assert.equal(text.body.errors[0].extensions.code, 'QUERY_NOT_IN_SAFELIST');
  const byId = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: registered.id } } });
  assert.equal(byId.status, 200);
  assert.equal(byId.body.errors, undefined, JSON.stringify(byId.body.errors));

  const unknown = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.errors[0].extensions.code, 'PERSISTED_QUERY_NOT_IN_LIST');
});
