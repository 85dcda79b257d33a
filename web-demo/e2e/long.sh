#!/usr/bin/env bash
# The browser suites' long mode: every storefront and GraphiQL test, round
# after round, each round on a fresh `shopgraph dev`, until ROUNDS pass or
# one fails. CI runs one round (tests/run.sh); this finds what fails once
# in fifty, and gives the figures the tests print as distributions.
#
#   web-demo/e2e/long.sh            # 20 rounds
#   web-demo/e2e/long.sh 100        # 100 rounds
#
# SHOPGRAPH_BIN names the binary (default: the debug build `cargo build`
# makes, under CARGO_TARGET_DIR or target/); CHROMIUM the browser, as for
# the short mode.
set -euo pipefail

cd "$(dirname "$0")/../.."
rounds=${1:-20}
export SHOPGRAPH_BIN="${SHOPGRAPH_BIN:-${CARGO_TARGET_DIR:-target}/debug/shopgraph}"
if [ ! -x "$SHOPGRAPH_BIN" ]; then
    echo "no shopgraph binary at $SHOPGRAPH_BIN: run cargo build first" >&2
    exit 1
fi
figures=$(mktemp)
trap 'rm -f "$figures"' EXIT

for round in $(seq 1 "$rounds"); do
    log=$(mktemp)
    started=$(date +%s)
    if ! node --test --test-concurrency=1 --test-reporter=spec web-demo/e2e/ >"$log" 2>&1; then
        cat "$log"
        echo "round ${round} of ${rounds} failed (output above)" >&2
        rm -f "$log"
        exit 1
    fi
    # The figures the tests print, as "# name: N ms".
    sed -n 's/^[[:space:]]*# \(.*\): \([0-9][0-9]*\) ms$/\1\t\2/p' "$log" >>"$figures"
    echo "round ${round}/${rounds}: passed in $(($(date +%s) - started)) s"
    rm -f "$log"
done

echo
echo "${rounds} rounds passed; figures over all rounds (min / median / max ms):"
sort -t$'\t' -k1,1 -k2,2n "$figures" | awk -F'\t' '
    { values[$1] = values[$1] " " $2; count[$1]++ }
    END {
        for (name in values) {
            n = split(substr(values[name], 2), v, " ")
            printf "  %s: %d / %d / %d (n=%d)\n", name, v[1], v[int((n + 1) / 2)], v[n], n
        }
    }'
