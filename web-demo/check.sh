#!/usr/bin/env bash
# The storefront freshness check (run by tests/run.sh, so by CI), as
# schema/check.sh checks the SDL files: the committed build output
# (web-demo/dist, which the shopgraph binary embeds) and the generated
# operation types (web-demo/src/gql) must be exactly what a clean
# `npm ci && npm run build` makes from the sources. The build is
# deterministic (content-hashed names, no timestamps), so any diff means
# someone changed the app or schema/api.graphql without rebuilding.
#
#   web-demo/check.sh            check
#   web-demo/check.sh --write    rebuild (then commit web-demo/dist and web-demo/src/gql)
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build > /dev/null
if [ "${1:-}" = "--write" ]; then
    echo "web-demo: rebuilt dist/ and src/gql/; commit them"
    exit 0
fi
# Untracked files count too (a new hashed asset name).
if [ -n "$(git status --porcelain -- dist src/gql)" ]; then
    echo "web-demo/dist or web-demo/src/gql is stale (run web-demo/check.sh --write and commit):"
    git status --short -- dist src/gql | sed 's/^/    /'
    git --no-pager diff --stat -- dist src/gql | sed 's/^/    /'
    exit 1
fi
echo "web-demo: ok, dist/ and src/gql/ match a fresh build"
