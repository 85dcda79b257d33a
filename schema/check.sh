#!/usr/bin/env bash
# The schema check (run by tests/run.sh, so by CI):
#   1. every committed schema/<service>.graphql equals what `shopgraph sdl`
#      prints now (a diff is shown when it does not);
#   2. the subgraphs compose, and schema/supergraph.graphql and
#      schema/api.graphql are up to date;
#   3. every operation clients use (tests/operations/, web-demo/) is valid
#      against the API schema and plans with the router's planner, and the
#      operations registry (schema/operations.json, a persisted query
#      manifest of them all) is up to date;
#   4. no BREAKING change of schema/api.graphql against the merge base with
#      main (HEAD~1 on main itself; SCHEMA_BASE_REV to choose) breaks a
#      registered operation, unless schema/approved-breaking-changes lists
#      it; breaking changes no operation uses are reported and allowed.
#
#   schema/check.sh            check
#   schema/check.sh --write    regenerate the SDL files, supergraph, API schema and operations registry
set -euo pipefail
cd "$(dirname "$0")/.."

services=(product basket payment notification)
write=false
[ "${1:-}" = "--write" ] && write=true

if [ ! -d schema/node_modules ]; then
    (cd schema && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --quiet --locked --bin shopgraph
bin="${CARGO_TARGET_DIR:-target}/debug/shopgraph"

failed=false
for service in "${services[@]}"; do
    fresh=$(mktemp)
    "$bin" sdl "$service" > "$fresh"
    if $write; then
        mv "$fresh" "schema/$service.graphql"
    elif ! diff -u "schema/$service.graphql" "$fresh" > "$fresh.diff"; then
        echo "schema/$service.graphql is stale (run schema/check.sh --write and commit):"
        sed 's/^/    /' "$fresh.diff"
        failed=true
    fi
    rm -f "$fresh" "$fresh.diff"
done
$failed && exit 1
echo "subgraph SDL: ok, schema/{$(IFS=,; echo "${services[*]}")}.graphql match the code"

if $write; then
    node schema/compose.mjs
    node schema/operations.mjs
else
    node schema/compose.mjs --check
    node tests/federation/compose.mjs --check
    mapfile -t operations < <(find tests/operations web-demo -name '*.graphql' -not -path '*/node_modules/*' 2>/dev/null | sort)
    "$bin" plan --supergraph schema/supergraph.graphql "${operations[@]}"
    node schema/operations.mjs --check
    node --test --test-reporter=dot schema/usage.test.mjs
    node schema/breaking.mjs
fi
