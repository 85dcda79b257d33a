// The operations registry: every operation Shopgraph's own clients send,
// as an Apollo persisted query manifest (schema/operations.json).
//
//   node operations.mjs            write schema/operations.json
//   node operations.mjs --check    fail if it is not what the sources give
//
// Sources: the operations in tests/operations/*.graphql (one manifest entry
// per operation, with the fragments it spreads, printed by graphql-js), and
// the storefront's, as GraphQL Code Generator's client preset writes them
// (web-demo/src/gql/persisted-documents.json: SHA-256 → document, the id
// and text the storefront sends) or, without that file,
// web-demo/src/**/*.graphql.
//
// The manifest is what the router runs in safelist mode
// (PERSISTED_QUERIES_MANIFEST=schema/operations.json,
// PERSISTED_QUERIES_SAFELIST=true) and what schema/breaking.mjs holds a
// breaking change against: a change that breaks a registered operation
// fails the schema check, naming it.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print, visit } from 'graphql';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const manifestPath = join(here, 'operations.json');

/// Every file under `dir` whose name ends with `suffix`, sorted, skipping
/// node_modules and build output.
function filesUnder(dir, suffix) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...filesUnder(path, suffix));
    else if (name.endsWith(suffix)) found.push(path);
  }
  return found;
}

/// The fragments `definition` spreads, transitively, from `fragments`.
function fragmentsOf(definition, fragments, seen = new Set()) {
  visit(definition, {
    FragmentSpread(node) {
      const name = node.name.value;
      if (seen.has(name)) return;
      const fragment = fragments.get(name);
      if (!fragment) throw new Error(`fragment ${name} is not defined`);
      seen.add(name);
      fragmentsOf(fragment, fragments, seen);
    },
  });
  return [...seen].sort().map((name) => fragments.get(name));
}

/// One manifest entry per operation of the `.graphql` file at `path`.
function entriesOfFile(path, client) {
  const document = parse(readFileSync(path, 'utf8'));
  const fragments = new Map(
    document.definitions
      .filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  return document.definitions
    .filter((d) => d.kind === Kind.OPERATION_DEFINITION)
    .map((operation) => {
      if (!operation.name) throw new Error(`${relative(root, path)}: every registered operation needs a name`);
      const body = print({
        kind: Kind.DOCUMENT,
        definitions: [operation, ...fragmentsOf(operation, fragments)],
      });
      return entry(body, operation, client, relative(root, path));
    });
}

/// The manifest entry of `body`, whose id is the SHA-256 of the body (what
/// clients send as the APQ hash).
function entry(body, operation, client, source) {
  return {
    id: createHash('sha256').update(body).digest('hex'),
    name: operation.name?.value ?? '',
    type: operation.operation,
    body,
    clientName: client,
    source,
  };
}

/// The storefront's operations: as the codegen client preset persisted
/// them (the text and id the storefront sends) when it does, otherwise
/// from its `.graphql` files.
function storefrontEntries() {
  const persisted = join(root, 'web-demo/src/gql/persisted-documents.json');
  if (!existsSync(persisted)) {
    return filesUnder(join(root, 'web-demo/src'), '.graphql').flatMap((path) => entriesOfFile(path, 'web-demo'));
  }
  const documents = JSON.parse(readFileSync(persisted, 'utf8'));
  return Object.entries(documents).map(([hash, body]) => {
    const computed = createHash('sha256').update(body).digest('hex');
    if (computed !== hash) {
      throw new Error(`web-demo persisted document ${hash} does not hash to its id (${computed})`);
    }
    const operation = parse(body).definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION);
    return entry(body, operation, 'web-demo', relative(root, persisted));
  });
}

/// The manifest the sources give now.
export function collect() {
  const operations = [
    ...filesUnder(join(root, 'tests/operations'), '.graphql').flatMap((path) =>
      entriesOfFile(path, 'tests/operations'),
    ),
    ...storefrontEntries(),
  ];
  const byId = new Map();
  for (const operation of operations) {
    if (!byId.has(operation.id)) byId.set(operation.id, operation);
  }
  const sorted = [...byId.values()].sort(
    (a, b) => a.clientName.localeCompare(b.clientName) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
  );
  return { format: 'apollo-persisted-query-manifest', version: 1, operations: sorted };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const fresh = `${JSON.stringify(collect(), null, 2)}\n`;
  if (process.argv.includes('--check')) {
    const committed = existsSync(manifestPath) ? readFileSync(manifestPath, 'utf8') : '';
    if (committed !== fresh) {
      console.error('schema/operations.json is stale: run schema/check.sh --write (or node schema/operations.mjs) and commit');
      process.exit(1);
    }
    console.log(`operations registry: ok, ${JSON.parse(fresh).operations.length} operations in schema/operations.json`);
  } else {
    writeFileSync(manifestPath, fresh);
    console.log(`wrote schema/operations.json (${JSON.parse(fresh).operations.length} operations)`);
  }
}
