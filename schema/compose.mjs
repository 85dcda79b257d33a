// Composes schema/<service>.graphql into schema/supergraph.graphql (the
// router's input, Apollo join/v0.x format) and schema/api.graphql (the
// public API clients see). Exits 1 listing composition errors.
//
//   node compose.mjs            write both files
//   node compose.mjs --check    fail if either file is stale

import { composeServices } from '@theguild/federation-composition';
import { parse } from 'graphql';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Service name and the URL the router uses in dev (overridable per replica
// with <SERVICE>_SERVICE_URLS at run time).
const services = [
  ['product', 'http://127.0.0.1:4001/graphql'],
  ['basket', 'http://127.0.0.1:4002/graphql'],
  ['payment', 'http://127.0.0.1:4003/graphql'],
  ['notification', 'http://127.0.0.1:4004/graphql'],
];

const result = composeServices(
  services.map(([name, url]) => ({
    name,
    url,
    typeDefs: parse(readFileSync(join(here, `${name}.graphql`), 'utf8')),
  })),
);

if (result.errors?.length) {
  console.error(`composition failed with ${result.errors.length} error(s):`);
  for (const error of result.errors) {
    const code = error.extensions?.code ? `[${error.extensions.code}] ` : '';
    console.error(`  - ${code}${error.message}`);
  }
  process.exit(1);
}

const outputs = {
  'supergraph.graphql': result.supergraphSdl.trimEnd() + '\n',
  'api.graphql': result.publicSdl.trimEnd() + '\n',
};
const check = process.argv.includes('--check');
let stale = false;
for (const [file, content] of Object.entries(outputs)) {
  const path = join(here, file);
  if (check) {
    if (!existsSync(path) || readFileSync(path, 'utf8') !== content) {
      console.error(`schema/${file} is stale: run \`node schema/compose.mjs\` and commit the result`);
      stale = true;
    }
  } else {
    writeFileSync(path, content);
  }
}
if (stale) process.exit(1);
console.log(check ? 'composition: ok, supergraph and API schema are up to date' : 'composition: ok, wrote schema/supergraph.graphql and schema/api.graphql');
