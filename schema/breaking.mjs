// The usage-aware breaking-change check of the public API.
//
// Diffs schema/api.graphql against its version at a base revision and
// classifies every BREAKING change by the registered operations it breaks
// (schema/operations.json, written by operations.mjs):
//
//   * a change that breaks a registered operation fails the check, naming
//     the operations, unless schema/approved-breaking-changes lists it;
//   * a change no registered operation uses is reported and allowed (like
//     Hive's and GraphOS's conditional breaking changes, offline).
//
//   node breaking.mjs [BASE_REV]
//
// The base: BASE_REV, else $SCHEMA_BASE_REV, else the merge base of HEAD
// and main (origin/main when there is one) — or, when HEAD is main itself,
// the commit before it. A base that cannot be read fails the check (a
// shallow clone: fetch more history or set SCHEMA_BASE_REV); a base that
// has no schema/api.graphql yet has nothing to compare.
//
// schema/approved-breaking-changes: one change per line, `<path>: <reason>`,
// where <path> is the change's path as printed below (e.g. `Query.products`).
// Lines starting with # are comments.

import { diff, CriticalityLevel } from '@graphql-inspector/core';
import { buildSchema, parse } from 'graphql';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { coordinatesOf, operationsBrokenBy } from './usage.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function git(...args) {
  return execFileSync('git', args, {
    cwd: here,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

function fail(message) {
  console.error(`breaking changes: ${message}`);
  process.exit(1);
}

/// The revision to compare with (see the header).
function baseRevision() {
  const given = process.argv[2] ?? process.env.SCHEMA_BASE_REV;
  if (given) return given;
  const main = ['origin/main', 'main'].find((ref) => {
    try {
      git('rev-parse', '--verify', '--quiet', `${ref}^{commit}`);
      return true;
    } catch {
      return false;
    }
  });
  if (!main) fail('no main branch to compare with; set SCHEMA_BASE_REV to a revision');
  try {
    const head = git('rev-parse', 'HEAD');
    const mergeBase = git('merge-base', 'HEAD', main);
    return mergeBase === head ? `${head}~1` : mergeBase;
  } catch (err) {
    fail(`cannot find the merge base of HEAD and ${main} (${err.stderr?.trim() || err.message}); fetch more history or set SCHEMA_BASE_REV`);
  }
}

const base = baseRevision();
try {
  git('rev-parse', '--verify', '--quiet', `${base}^{commit}`);
} catch {
  fail(`cannot read the base revision ${base} (a shallow clone?); fetch more history or set SCHEMA_BASE_REV`);
}
let previous;
try {
  previous = git('show', `${base}:schema/api.graphql`);
} catch {
  console.log(`breaking changes: ${base} has no schema/api.graphql yet; nothing to compare`);
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
      fail(`schema/approved-breaking-changes: "${trimmed}" needs a reason after the colon`);
    }
    approved.set(path.trim(), reason.join(':').trim());
  }
}

const previousSchema = buildSchema(previous);
const manifestPath = join(here, 'operations.json');
const registered = existsSync(manifestPath)
  ? JSON.parse(readFileSync(manifestPath, 'utf8')).operations
  : fail('schema/operations.json is missing: run node schema/operations.mjs');
const usages = registered.map((operation) => ({
  operation,
  used: coordinatesOf(parse(operation.body), previousSchema),
}));

const changes = await diff(previousSchema, buildSchema(current));
const by = (level) => changes.filter((c) => c.criticality.level === level);
const failures = [];
let allowed = 0;

for (const change of by(CriticalityLevel.Breaking)) {
  const path = change.path ?? '-';
  const broken = operationsBrokenBy(change, usages);
  const names = broken.map((op) => `${op.name} (${op.clientName})`).join(', ');
  let note;
  if (approved.has(path)) {
    note = `approved: ${approved.get(path)}${broken.length ? `; breaks ${names}` : ''}`;
  } else if (broken.length) {
    note = `breaks ${broken.length} registered operation(s): ${names}`;
    failures.push(path);
  } else {
    note = 'no registered operation uses it: allowed';
    allowed += 1;
  }
  console.log(`  ${'BREAKING'.padEnd(12)} ${path}: ${change.message}  (${note})`);
}
for (const [label, level] of [
  ['DANGEROUS', CriticalityLevel.Dangerous],
  ['NON_BREAKING', CriticalityLevel.NonBreaking],
]) {
  for (const change of by(level)) {
    console.log(`  ${label.padEnd(12)} ${change.path ?? '-'}: ${change.message}`);
  }
}
if (failures.length) {
  fail(
    `${failures.length} BREAKING change(s) against ${base} break registered operations (schema/operations.json): ` +
      `${failures.join(', ')}. Keep the old shape, update the clients first, or list the path with a reason in ` +
      'schema/approved-breaking-changes',
  );
}
console.log(
  `breaking changes: none that breaks a registered operation against ${base} ` +
    `(${changes.length} change(s) in all, ${allowed} breaking but unused, ${registered.length} operations registered)`,
);
