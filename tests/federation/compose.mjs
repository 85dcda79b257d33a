// Composes the federation suite's fixture subgraphs
// (tests/federation/fixtures/<name>.graphql) into
// tests/federation/supergraph.graphql, with the composer schema/ installs
// (run `npm ci` in schema/ first). The URLs are placeholders: each test
// points the router at its own fixture servers.
//
//   node tests/federation/compose.mjs            write the supergraph
//   node tests/federation/compose.mjs --check    fail if it is stale

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Resolve both packages from schema/node_modules, so the composer and
// `parse` share one copy of graphql.
const require = createRequire(join(here, '../../schema/package.json'));
const { composeServices } = require('@theguild/federation-composition');
const { parse } = require('graphql');

const services = ['accounts', 'products', 'reviews', 'inventory'];

const result = composeServices(
  services.map((name) => ({
    name,
    url: `http://${name}.fixture.invalid/graphql`,
    typeDefs: parse(readFileSync(join(here, 'fixtures', `${name}.graphql`), 'utf8')),
  })),
);

if (result.errors?.length) {
  console.error(`fixture composition failed with ${result.errors.length} error(s):`);
  for (const error of result.errors) {
    const code = error.extensions?.code ? `[${error.extensions.code}] ` : '';
    console.error(`  - ${code}${error.message}`);
  }
  process.exit(1);
}

const file = join(here, 'supergraph.graphql');
const content = result.supergraphSdl.trimEnd() + '\n';
if (process.argv.includes('--check')) {
  if (!existsSync(file) || readFileSync(file, 'utf8') !== content) {
    console.error('tests/federation/supergraph.graphql is stale: run `node tests/federation/compose.mjs` and commit the result');
    process.exit(1);
  }
  console.log('fixture composition: ok, tests/federation/supergraph.graphql is up to date');
} else {
  writeFileSync(file, content);
  console.log('fixture composition: ok, wrote tests/federation/supergraph.graphql');
}
