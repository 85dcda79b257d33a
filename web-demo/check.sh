#!/usr/bin/env bash
# The freshness check of the embedded web builds (run by tests/run.sh, so
# by CI), as schema/check.sh checks the SDL files: the committed build
# output of the storefront (web-demo/dist, which the router embeds) and of
# GraphiQL (web-demo/graphiql/dist, which shopgraph-core embeds for the
# router and every subgraph), and the storefront's generated operation
# types (web-demo/src/gql) must be exactly what a clean
# `npm ci && npm run build` of each makes from the sources. The builds are
# deterministic (content-hashed names, no timestamps), so any diff means
# someone changed an app, a pinned package or schema/api.graphql without
# rebuilding.
#
#   web-demo/check.sh            check
#   web-demo/check.sh --write    rebuild (then commit the three folders)
set -euo pipefail
cd "$(dirname "$0")"

BUILT=(dist src/gql graphiql/dist)

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build > /dev/null
(cd graphiql && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build > /dev/null)
if [ "${1:-}" = "--write" ]; then
    echo "web-demo: rebuilt ${BUILT[*]}; commit them"
    exit 0
fi
# Untracked files count too (a new hashed asset name).
if [ -n "$(git status --porcelain -- "${BUILT[@]}")" ]; then
    echo "web-demo: a build is stale (run web-demo/check.sh --write and commit):"
    git status --short -- "${BUILT[@]}" | sed 's/^/    /'
    git --no-pager diff --stat -- "${BUILT[@]}" | sed 's/^/    /'
    exit 1
fi
echo "web-demo: ok, ${BUILT[*]} match a fresh build"
