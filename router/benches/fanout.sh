#!/usr/bin/env bash
# Subscription fan-out benchmark (see router/benches/fanout.rs): builds
# `shopgraph` and the benchmark in release, then prints a table of
# deliveries/s, event-to-client latency and router memory per idle
# subscriber for 1k and 10k websocket subscribers on one router.
#
#   router/benches/fanout.sh
#   FANOUT_SIZES=1000 FANOUT_EVENTS=20 router/benches/fanout.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shopgraph-ci-target}"
cargo build --release --quiet --bin shopgraph
export SHOPGRAPH_BIN="$CARGO_TARGET_DIR/release/shopgraph"
# 10k subscribers need 10k sockets in this process and in the router.
ulimit -n "$(ulimit -Hn)"
cargo bench --quiet -p shopgraph-router --bench fanout
