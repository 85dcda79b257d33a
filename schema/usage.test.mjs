// Tests of the usage-aware classification (run by schema/check.sh):
// each kind of breaking change against operations that do and do not use
// what it changes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diff, CriticalityLevel } from '@graphql-inspector/core';
import { buildSchema, parse } from 'graphql';

import { coordinatesOf, operationsBrokenBy } from './usage.mjs';

const base = (replace = {}) => {
  let sdl = `
  type Query { products(first: Int, filter: Filter): [Product!]! product(id: ID!): Product me: User }
  input Filter { category: String inStock: Boolean }
  enum Status { ACTIVE RETIRED }
  type Product { id: ID! name: String! status: Status! legacyCode: String }
  type User { id: ID! name: String! }
  type Mutation { rename(id: ID!, name: String!): Product! }
`;
  for (const [from, to] of Object.entries(replace)) sdl = sdl.replace(from, to);
  return sdl;
};

const before = buildSchema(base());

const operations = {
  catalogue: 'query Catalogue($f: Filter) { products(first: 5, filter: $f) { id name } }',
  product: 'query Product { product(id: "1") { ...P } } fragment P on Product { status }',
  me: 'query Me { me { id } }',
  rename: 'mutation Rename { rename(id: "1", name: "x") { id } }',
};

const usages = Object.entries(operations).map(([name, body]) => ({
  operation: { name, clientName: 'test' },
  used: coordinatesOf(parse(body), before),
}));

/// `{ path: [operation names it breaks] }` for every breaking change from
/// `before` to `after`.
async function brokenBy(after) {
  const changes = await diff(before, buildSchema(after));
  return Object.fromEntries(
    changes
      .filter((c) => c.criticality.level === CriticalityLevel.Breaking)
      .map((c) => [c.path, operationsBrokenBy(c, usages).map((o) => o.name).sort()]),
  );
}

test('coordinates cover fields, arguments, fragments and every field of a passed input', () => {
  const used = usages.find((u) => u.operation.name === 'catalogue').used;
  for (const c of ['Query', 'Query.products', 'Query.products.first', 'Query.products.filter', 'Filter.category', 'Filter.inStock', 'Product.id', 'Product.name']) {
    assert.ok(used.has(c), c);
  }
  assert.ok(!used.has('Product.legacyCode'));
  const product = usages.find((u) => u.operation.name === 'product').used;
  assert.ok(product.has('Product.status') && product.has('Status.RETIRED'), 'fragment fields and enum values');
});

test('removing a field breaks exactly the operations that select it', async () => {
  assert.deepEqual(await brokenBy(base({ 'name: String! status': 'status' })), { 'Product.name': ['catalogue'] });
  assert.deepEqual(await brokenBy(base({ ' legacyCode: String': '' })), { 'Product.legacyCode': [] });
});

test('a new required argument breaks every user of the field, used or not', async () => {
  assert.deepEqual(await brokenBy(base({ 'me: User': 'me(tenant: ID!): User' })), { 'Query.me.tenant': ['me'] });
});

test('changes to an input type break the operations that pass it', async () => {
  assert.deepEqual(await brokenBy(base({ 'inStock: Boolean }': 'inStock: Boolean shop: ID! }' })), {
    'Filter.shop': ['catalogue'],
  });
  assert.deepEqual(await brokenBy(base({ 'category: String inStock': 'inStock' })), { 'Filter.category': ['catalogue'] });
});

test('removing an enum value breaks the operations that read the enum', async () => {
  assert.deepEqual(await brokenBy(base({ 'ACTIVE RETIRED': 'ACTIVE' })), { 'Status.RETIRED': ['product'] });
});

test('removing a type breaks everything that touches it', async () => {
  const after = base({ ' me: User }': ' }', 'type User { id: ID! name: String! }': '' });
  const broken = await brokenBy(after);
  assert.deepEqual(broken['Query.me'], ['me']);
  assert.deepEqual(broken.User, ['me']);
});
