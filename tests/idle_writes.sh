#!/usr/bin/env bash
# Disk writes of an idle `shopgraph dev`: the process's write_bytes
# (/proc/<pid>/io, bytes it caused to reach the disk) over 60 s, measured
# after start-up has settled, plus the SQLite files' sizes at the end.
#
#   tests/idle_writes.sh [BINARY]     # default: target/debug/shopgraph
#
# Runs in a fresh temporary data directory on ports 24000-24104, so it
# neither touches .shopgraph-data nor collides with a running `dev`.
set -euo pipefail

bin=$(realpath "${1:-target/debug/shopgraph}")
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/shopgraph-idle-XXXX")
log=$(mktemp)
trap 'kill -INT "$pid" 2>/dev/null || true; rm -rf "$dir" "$log"' EXIT
cd "$dir"
env PRODUCT_PORT=24001 BASKET_PORT=24002 PAYMENT_PORT=24003 NOTIFICATION_PORT=24004 \
    ROUTER_PORT=24000 ADMIN_PORT=24100 PRODUCT_METRICS_PORT=24101 BASKET_METRICS_PORT=24102 \
    PAYMENT_METRICS_PORT=24103 NOTIFICATION_METRICS_PORT=24104 \
    "$bin" dev >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
    grep -q "Shopgraph dev is up" "$log" && break
    sleep 1
done
grep -q "Shopgraph dev is up" "$log" || { cat "$log"; echo "dev did not start" >&2; exit 1; }
# Past the kernel's 30 s dirty-page expiry: start-up's own writes (schema,
# demo data) reach the disk before the window opens.
sleep 40
written() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$pid/io"; }
before=$(written)
sleep 60
after=$(written)
echo "idle dev: $((after - before)) bytes written to disk in 60 s ($(((after - before) / 60)) B/s)"
ls -l .shopgraph-data
