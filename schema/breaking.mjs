// Diffs the public API (schema/api.graphql) against its version in a base
// git revision and fails on BREAKING changes that schema/approved-breaking-changes
// does not list.
//
//   node breaking.mjs [BASE_REV]     (default HEAD~1)
//
// schema/approved-breaking-changes: one change per line, `<path>: <reason>`,
// where <path> is the change's path as printed below (e.g. `Query.products`).
// Lines starting with # are comments.

import { diff, CriticalityLevel } from '@graphql-inspector/core';
import { buildSchema } from 'graphql';
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const base = process.argv[2] ?? 'HEAD~1';

let previous;
try {
  previous = execFileSync('git', ['show', `${base}:schema/api.graphql`], {
    cwd: here,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
} catch {
  console.log(`breaking changes: no schema/api.graphql at ${base}; nothing to compare`);
  process.exit(0);
}
const current = readFileSync(join(here, 'api.graphql'), 'utf8');

const approvedFile = join(here, 'approved-breaking-changes');
const approved = new Map();
if (existsSync(approvedFile)) {
  for (const line of readFileSync(approvedFile, 'utf8').split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const [path, ...reason] = trimmed.split(':');
    if (!reason.join(':').trim()) {
      console.error(`schema/approved-breaking-changes: "${trimmed}" needs a reason after the colon`);
      process.exit(1);
    }
    approved.set(path.trim(), reason.join(':').trim());
  }
}

const changes = await diff(buildSchema(previous), buildSchema(current));
const by = (level) => changes.filter((c) => c.criticality.level === level);
const breaking = by(CriticalityLevel.Breaking);
const unapproved = breaking.filter((c) => !approved.has(c.path ?? ''));

for (const [label, list] of [
  ['BREAKING', breaking],
  ['DANGEROUS', by(CriticalityLevel.Dangerous)],
  ['NON_BREAKING', by(CriticalityLevel.NonBreaking)],
]) {
  for (const change of list) {
    const note = label === 'BREAKING' && approved.has(change.path ?? '') ? `  (approved: ${approved.get(change.path)})` : '';
    console.log(`  ${label.padEnd(12)} ${change.path ?? '-'}: ${change.message}${note}`);
  }
}
if (unapproved.length) {
  console.error(
    `breaking changes: ${unapproved.length} unapproved BREAKING change(s) against ${base}; ` +
      'list each path with a reason in schema/approved-breaking-changes if intended',
  );
  process.exit(1);
}
console.log(`breaking changes: none unapproved against ${base} (${changes.length} change(s) in all)`);
