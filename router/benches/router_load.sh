#!/usr/bin/env bash
# shellcheck disable=SC2016  # GraphQL $variables in single-quoted queries are literal
# Router load benchmark, in one of two modes (BENCH_COMPARE):
#
#   hive (default): the Shopgraph router against Hive Router (and against
#     calling the product subgraph directly), on the same supergraph, the
#     same four release-built subgraphs and the same seeded data, with the
#     traffic of a shop: many distinct signed-in users (BENCH_USERS, 64 and
#     1000 by default), each with their own basket, payments and
#     notifications, every request carrying the next user's token. With
#     BENCH_CALLGRIND=N it also counts the instructions each router executes
#     per request (both routers, both queries, tokens rotated).
#   protections: what the router's traffic-management protections cost
#     (issue 6: under 5 % of throughput). Two Shopgraph routers over the
#     same subgraphs, no Hive Router:
#       "protected" — every protection on: per-client rate limit (budget of
#         1,000,000 req/s and burst 1,000,000, far above the load, so nothing
#         is refused: a 429 fails the run), circuit breakers, retries, load
#         balancing with 1 s active health checks and outlier ejection,
#         the default GRAPHQL_MAX_* operation limits, automatic persisted
#         queries, CSRF prevention, CORS for BENCH_ORIGIN, security headers;
#       "bare" — all of them off (0 disables each operation limit);
#     both with the same dedupe settings (BENCH_DEDUPE), plus, when Redis
#     answers at BENCH_REDIS_URL, "protected + Redis": the protected router
#     keeping its rate-limit budget in Redis (a unique key prefix per run).
#     wrk sends both queries as the one bench user (bearer token) with
#     `Origin: BENCH_ORIGIN`, so the rate limiter keys on the JWT subject,
#     the per-client hot path. The routers run alternately in BENCH_ROUNDS
#     rounds (ABBA order: protected, bare, then bare, protected... so that
#     drift cancels); the summary gives per router and query the mean
#     req/s, p99 and router CPU per request, and the overhead
#     1 − protected/bare req/s, paired within each round, then averaged,
#     with its 95 % confidence interval (min..max over rounds alongside).
#     With BENCH_CALLGRIND=N it also counts the instructions each router
#     executes per request (valgrind's callgrind, N requests of each query
#     after a warm-up, one at a time over one keep-alive connection): unlike
#     req/s on a shared 2-core machine, that count repeats run after run, so
#     it shows a difference of 1 % that the load test cannot resolve. Then
#     N products requests BENCH_CONNECTIONS at a time, where (as under wrk)
#     most join an identical query in flight, and from those "joined only":
#     one joined request, the executed ones taken out at their one-at-a-time
#     cost. It counts the router process only (every thread; not the
#     kernel, not the client).
#
#   router/benches/router_load.sh                          # from the repository root
#   BENCH_COMPARE=protections router/benches/router_load.sh
#
# What it does:
#   1. installs what is missing: wrk, jq, curl (apt-get), in hive mode Hive
#      Router 0.0.84 (cargo install into $HIVE_ROOT, built in
#      /var/tmp/hive-router-build);
#   2. builds `shopgraph` in release;
#   3. starts product/basket/payment/notification (one `shopgraph dev`
#      process, its in-process bus carrying a checkout's events between
#      them; its own router idle) on fresh SQLite files in a temporary
#      directory, then the routers, all on 127.0.0.1. Hive mode: the Shopgraph router, Hive Router (default
#      config: in-flight subgraph request dedupe ON), and both again with
#      every dedupe OFF (QUERY_DEDUPE / SUBGRAPH_DEDUPE for Shopgraph,
#      traffic_shaping.dedupe_enabled for Hive; BENCH_HIVE_NODEDUPE=0 skips
#      them). Protections mode: the routers above, and it checks that each
#      protection is really on in "protected" and off in "bare" (response
#      headers, a CSRF-refused request, an over-limit query, an APQ hash,
#      the circuit breakers in /health/detailed);
#   4. seeds, through the (first) Shopgraph router, a bench user with 20
#      basket lines, 15 completed payments (each snapshots the 20 lines) and
#      40 notifications, and the largest BENCH_USERS of users user-1..N with
#      5 basket lines, 3 completed payments of 5 lines and 10 notifications
#      each (parallel curl batches; stock raised first so no checkout fails);
#   5. checks the two queries once on every target (no errors, identical
#      JSON from every router), then load-tests each with wrk:
#        heavy    — me { basket, payments(15) × 20 lines × product, notifications(40) }
#        products — products(first: 50), in hive mode also straight to the
#                   product subgraph (anonymous in hive mode, as the bench
#                   user in protections mode);
#      printing req/s, p50/p95/p99, subgraph requests and CPU per request,
#      and router RSS at rest / peak under load. Each users count gets its
#      own rows (heavy@64, products@64...): the heavy query as the next
#      user each request, products pages the same (signed in, as a shop's
#      pages are). BENCH_USERS=1 is the single bench user (heavy as that
#      user, products anonymous), where most requests join an identical
#      one already in flight.
#   The "other CPU" column is CPU used by processes outside the benchmark
#   during a run (other builds and tests on a shared machine): above 0.25
#   core the report warns that numbers are noisy. Compare ratios within one
#   run rather than absolute numbers across runs.
#   Fails (exit 1) on GraphQL errors, non-2xx answers (a 429 in protections
#   mode means the rate-limit budget is too low for the load) or socket errors.
#
# Knobs (environment):
#   BENCH_COMPARE=hive      hive | protections (see above)
#   BENCH_SECONDS=10        measured seconds per run
#   BENCH_CONNECTIONS=32    wrk connections
#   BENCH_THREADS=2         wrk threads
#   BENCH_WARMUP_SECONDS=2  wrk warm-up before every measured run
#   BENCH_PORT_BASE=14000   router on BASE (+12 without dedupe), subgraphs BASE+1..4 (their metrics
#                           listeners +100), Hive BASE+10, BASE+11;
#                           protections: protected on BASE, bare BASE+12, protected + Redis BASE+13
#   BENCH_USERS="64 1000"   distinct users the load comes from, one table each (1: the single bench user);
#                           protections mode: one number (default 64)
#   BENCH_HIVE_NODEDUPE=1   also run both routers with every dedupe disabled (hive mode)
#   BENCH_ROUNDS=3          protections: rounds of runs per router and query (at least 2;
#                           0 skips the load test, with BENCH_CALLGRIND)
#   BENCH_QUERIES="heavy products"  protections: the queries to load-test
#   BENCH_CALLGRIND=0       N > 0 restarts each router (hive mode: ours and Hive) under callgrind after the load test
#                           and counts its instructions per request over N requests of each query
#                           (1000 take ~3 minutes per router; with BENCH_KEEP=1, callgrind_annotate
#                           $WORK/callgrind.<router>.<dump> shows where they go)
#   BENCH_DEDUPE=true       protections: QUERY_DEDUPE and SUBGRAPH_DEDUPE of every router
#   BENCH_ORIGIN=https://shop.example   protections: Origin wrk sends, the protected routers' CORS allowlist
#   BENCH_REDIS=auto        protections: add "protected + Redis" when Redis answers (1: require it, 0: skip)
#   BENCH_REDIS_URL=redis://127.0.0.1:6379
#   BENCH_ROUTER_ENV=       extra VAR=VALUE words for every Shopgraph router, e.g.
#                           "LD_PRELOAD=/lib/x86_64-linux-gnu/libmimalloc.so.2"
#   BENCH_PROTECTED_ENV=    protections: extra VAR=VALUE words for the protected router(s) only,
#                           to find what one protection costs, e.g. "CORS_ALLOWED_ORIGINS= RATE_LIMIT_ENABLED=false"
#   BENCH_KEEP=1            keep the temporary directory (logs, databases)
#   BENCH_PERF=1            perf-record each router during its runs (protections: the
#                           first round only), print its top BENCH_PERF_TOP (30) symbols
#   BENCH_PERF_RECORD_ARGS= extra `perf record` words, e.g. "--call-graph dwarf" (with BENCH_KEEP=1,
#                           `perf report -i $WORK/perf.<run>.<router>.data --children` afterwards)
#   HIVE_ROOT=/var/tmp/hive-router   where Hive Router is installed
#   CARGO_TARGET_DIR=/var/tmp/shopgraph-ci-target
#   SHOPGRAPH_BIN=          a shopgraph binary to measure instead of building one (to compare two builds)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-2}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-14000}
BENCH_HIVE_NODEDUPE=${BENCH_HIVE_NODEDUPE:-1}
BENCH_COMPARE=${BENCH_COMPARE:-hive}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
if [ "$BENCH_COMPARE" = protections ]; then
    BENCH_USERS=${BENCH_USERS:-64}
else
    BENCH_USERS=${BENCH_USERS:-64 1000}
fi
read -r -a USER_COUNTS <<<"$BENCH_USERS"
BENCH_QUERIES=${BENCH_QUERIES:-heavy products}
BENCH_CALLGRIND=${BENCH_CALLGRIND:-0}
BENCH_DEDUPE=${BENCH_DEDUPE:-true}
BENCH_ORIGIN=${BENCH_ORIGIN:-https://shop.example}
BENCH_REDIS=${BENCH_REDIS:-auto}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
HIVE_VERSION=0.0.84
HIVE_ROOT=${HIVE_ROOT:-/var/tmp/hive-router}
HIVE_BIN=$HIVE_ROOT/bin/hive_router
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/shopgraph-ci-target}
BIN=${SHOPGRAPH_BIN:-$CARGO_TARGET_DIR/release/shopgraph}
LUA=$ROOT/router/benches/router_load.lua

JWT_SECRET_BENCH="shopgraph-router-load-bench-secret-0123456789abcdef"
ROUTER_PORT_B=$BENCH_PORT_BASE
PRODUCT_PORT_B=$((BENCH_PORT_BASE + 1))
BASKET_PORT_B=$((BENCH_PORT_BASE + 2))
PAYMENT_PORT_B=$((BENCH_PORT_BASE + 3))
NOTIFICATION_PORT_B=$((BENCH_PORT_BASE + 4))
HIVE_PORT_B=$((BENCH_PORT_BASE + 10))
HIVE_ND_PORT_B=$((BENCH_PORT_BASE + 11))
ROUTER_ND_PORT_B=$((BENCH_PORT_BASE + 12))
BARE_PORT_B=$((BENCH_PORT_BASE + 12))
REDIS_ROUTER_PORT_B=$((BENCH_PORT_BASE + 13))
SUBGRAPHS=(product basket payment notification)

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

case $BENCH_COMPARE in
    hive | protections) ;;
    *) die "BENCH_COMPARE must be hive or protections, not '$BENCH_COMPARE'" ;;
esac
[ ${#USER_COUNTS[@]} -gt 0 ] || die "BENCH_USERS names no number of users"
MAX_USERS=1
for n in "${USER_COUNTS[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 100000 ] || die "BENCH_USERS: '$n' is not a number of users (1..100000)"
    [ "$n" -gt "$MAX_USERS" ] && MAX_USERS=$n
done
[[ $BENCH_CALLGRIND =~ ^[0-9]+$ ]] || die "BENCH_CALLGRIND must be a number of requests, not '$BENCH_CALLGRIND'"
[ "$BENCH_COMPARE" = hive ] || [ ${#USER_COUNTS[@]} = 1 ] || die "protections mode takes one BENCH_USERS number"
if [ "$BENCH_COMPARE" = protections ]; then
    [[ $BENCH_ROUNDS =~ ^[0-9]+$ ]] || die "BENCH_ROUNDS must be a number of rounds, not '$BENCH_ROUNDS'"
    if [ "$BENCH_ROUNDS" = 0 ]; then
        [ "$BENCH_CALLGRIND" -gt 0 ] || die "BENCH_ROUNDS=0 skips the load test: it needs BENCH_CALLGRIND"
    elif [ "$BENCH_ROUNDS" -lt 2 ]; then
        die "BENCH_ROUNDS must be at least 2 (or 0 with BENCH_CALLGRIND), not $BENCH_ROUNDS"
    fi
    read -r -a LOAD_QUERIES <<<"$BENCH_QUERIES"
    [ ${#LOAD_QUERIES[@]} -gt 0 ] || die "BENCH_QUERIES names no query"
    for q in "${LOAD_QUERIES[@]}"; do
        case $q in heavy | products) ;; *) die "BENCH_QUERIES: unknown query '$q' (heavy, products)" ;; esac
    done
    case $BENCH_DEDUPE in true | false) ;; *) die "BENCH_DEDUPE must be true or false" ;; esac
    case $BENCH_REDIS in auto | 0 | 1) ;; *) die "BENCH_REDIS must be auto, 0 or 1" ;; esac
fi

# ---------------------------------------------------------------- installs

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [ "$BENCH_COMPARE" = protections ] && [ "$BENCH_CALLGRIND" -gt 0 ]; then
        { command -v valgrind && command -v callgrind_control; } >/dev/null 2>&1 || missing+=(valgrind)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

ensure_hive_router() {
    if [ -x "$HIVE_BIN" ]; then
        return
    fi
    say "installing Hive Router $HIVE_VERSION into $HIVE_ROOT (10+ minutes on 2 cores)"
    CARGO_TARGET_DIR=/var/tmp/hive-router-build \
        cargo install "hive-router@$HIVE_VERSION" --locked --features graphiql --root "$HIVE_ROOT"
}

# redis_answers URL — whether a Redis server answers PING at URL.
redis_answers() {
    local url=$1
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(timeout 5 redis-cli -u "$url" ping 2>/dev/null)" = PONG ]
        return
    fi
    # Without redis-cli: plain redis://host[:port] URLs only.
    local hostport=${url#redis://}
    hostport=${hostport%%/*}
    [[ $hostport == *@* ]] && return 1
    local host=${hostport%:*} port=6379
    [ "$host" != "$hostport" ] && port=${hostport##*:}
    (
        exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 3 line <&3 && [ "${line%$'\r'}" = +PONG ]
    ) 2>/dev/null
}

# ------------------------------------------------------- processes, cleanup

WORK=""
PIDS=()
declare -A PID_OF=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ ${#PIDS[@]} -gt 0 ]; then
        for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for _ in $(seq 1 50); do
            local alive=0
            for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            [ "$alive" = 0 ] && break
            sleep 0.2
        done
        for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$rc" != 0 ]; then
            for log in "$WORK"/*.log; do
                [ -s "$log" ] || continue
                printf '\n--- last lines of %s\n' "$(basename "$log")" >&2
                tail -n 15 "$log" >&2
            done
        fi
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            echo "kept $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME CMD... — runs CMD in the background, logging to $WORK/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    PID_OF[$name]=$!
}

# wait_http NAME URL [SECONDS] — until URL answers 2xx (60 s at most by default).
wait_http() {
    local name=$1 url=$2 seconds=${3:-60}
    for _ in $(seq 1 $((seconds * 5))); do
        if curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; then
            return 0
        fi
        kill -0 "${PID_OF[$name]}" 2>/dev/null || die "$name exited during start-up"
        sleep 0.2
    done
    die "$name did not become ready at $url within $seconds s"
}

# stop NAME — stops a process started with `start` and waits for it to exit.
stop() {
    local pid=${PID_OF[$1]}
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# listening_ports PID — the TCP ports PID listens on (IPv4 and IPv6).
listening_ports() {
    local inodes
    inodes=$(find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' | sort -u)
    [ -n "$inodes" ] || return 0
    awk -v inodes="$inodes" 'BEGIN {n = split(inodes, a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1}
        FNR > 1 && $4 == "0A" && ($10 in want) {split($2, addr, ":"); print addr[2]}' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        while read -r hex; do echo $((16#$hex)); done | sort -un
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
# Busy CPU ticks of the whole machine (user, nice, system, irq, softirq, steal).
machine_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# CPU ticks of every process this script started.
bench_cpu_ticks() {
    local total=0 pid
    for pid in "${PIDS[@]}"; do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}

# ------------------------------------------------------------------ GraphQL

# gql PORT TOKEN BODY — POSTs BODY (JSON) to 127.0.0.1:PORT/graphql.
gql() {
    local port=$1 token=$2 body=$3
    local auth=()
    [ -n "$token" ] && auth=(-H "authorization: Bearer $token")
    curl -sS --max-time 30 "http://127.0.0.1:$port/graphql" \
        -H 'content-type: application/json' -H 'accept: application/json' \
        "${auth[@]}" --data-binary "$body"
}

# body QUERY [VARIABLES-JSON] — a GraphQL-over-HTTP request body.
body() {
    local vars=${2:-}
    if [ -z "$vars" ]; then vars='{}'; fi
    jq -nc --arg q "$1" --argjson v "$vars" '{query: $q, variables: $v}'
}

# ok WHAT RESPONSE — fails unless RESPONSE has data and no errors.
ok() {
    if ! jq -e '(.errors // [] | length == 0) and .data != null' >/dev/null 2>&1 <<<"$2"; then
        die "$1: $(head -c 600 <<<"$2")"
    fi
}

# subgraph_metrics_port PORT — the metrics listener of the subgraph on
# PORT (set at start): subgraphs serve /metrics there only.
subgraph_metrics_port() { echo $(($1 + 100)); }
# subgraph_requests PORT — graphql_requests_total of the subgraph on PORT.
# subgraph_requests PORT [SERVICE] — graphql_requests_total of the
# subgraph on PORT (its `service` label SERVICE only, when given: the dev
# process's listeners all serve its one registry).
subgraph_requests() {
    curl -fsS --max-time 5 "http://127.0.0.1:$(subgraph_metrics_port "$1")/metrics" |
        awk -v want="${2:+service=\"$2\"}" '/^graphql_requests_total[{ ]/ && index($0, want) {s += $NF} END {printf "%d\n", s}'
}
# router_admin_port PORT — the admin listener of the router on PORT (set by
# start_router): the router serves /metrics and /health/detailed there only.
router_admin_port() { echo $(($1 + 100)); }
# metric_sum PORT NAME — sum of the Prometheus series NAME of the router on
# PORT, read from its admin listener's /metrics (0 if absent).
metric_sum() {
    curl -fsS --max-time 5 "http://127.0.0.1:$(router_admin_port "$1")/metrics" |
        awk -v name="$2" '$1 == name || index($1, name "{") == 1 {s += $NF} END {printf "%d\n", s}'
}
port_of_subgraph() {
    case $1 in
        product) echo "$PRODUCT_PORT_B" ;;
        basket) echo "$BASKET_PORT_B" ;;
        payment) echo "$PAYMENT_PORT_B" ;;
        notification) echo "$NOTIFICATION_PORT_B" ;;
    esac
}
# All four subgraphs' requests: one `dev` process, whose metrics listeners
# all serve its one registry, so one of them tells.
all_subgraph_requests() { subgraph_requests "$PRODUCT_PORT_B"; }
subgraph_cpu_ticks() { cpu_ticks "${PID_OF[subgraphs]}"; }

HEAVY_QUERY='{ me { id basket { total { amount } items { quantity product { name price { amount } stockQuantity } } } payments(first: 15) { edges { node { status amount { amount } items { quantity product { name category } } } } } notifications(first: 40) { edges { node { title status } } } unreadNotificationCount } }'
PRODUCTS_QUERY='{ products(first: 50) { edges { node { id name price { amount currency } } } } }'

# ====================================================================== main

ensure_tools
[ "$BENCH_COMPARE" = hive ] && ensure_hive_router
WITH_REDIS=0
if [ "$BENCH_COMPARE" = protections ] && [ "$BENCH_REDIS" != 0 ]; then
    if redis_answers "$BENCH_REDIS_URL"; then
        WITH_REDIS=1
    elif [ "$BENCH_REDIS" = 1 ]; then
        die "no Redis answers at $BENCH_REDIS_URL (BENCH_REDIS=1)"
    else
        say "no Redis at $BENCH_REDIS_URL: skipping the \"protected + Redis\" router"
    fi
fi

if [ -z "${SHOPGRAPH_BIN:-}" ]; then
    say "building shopgraph (release)"
    cargo build --release --locked --bin shopgraph
fi
[ -x "$BIN" ] || die "no binary at $BIN"

if [ "$BENCH_COMPARE" = protections ]; then
    BENCH_PORTS=("$ROUTER_PORT_B" "$BARE_PORT_B")
    [ "$WITH_REDIS" = 1 ] && BENCH_PORTS+=("$REDIS_ROUTER_PORT_B")
else
    BENCH_PORTS=("$ROUTER_PORT_B" "$HIVE_PORT_B")
    [ "$BENCH_HIVE_NODEDUPE" = 1 ] && BENCH_PORTS+=("$ROUTER_ND_PORT_B" "$HIVE_ND_PORT_B")
fi
for port in "${BENCH_PORTS[@]}" "$PRODUCT_PORT_B" "$BASKET_PORT_B" "$PAYMENT_PORT_B" "$NOTIFICATION_PORT_B"; do
    port_in_use "$port" && die "port $port is in use (set BENCH_PORT_BASE)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shopgraph-router-bench.XXXXXX")
mkdir -p "$WORK/data"
# The signed hop: our router signs, the subgraphs trust its key. Hive
# Router does not sign; the subgraphs serve its unsigned requests because
# they accept direct tokens (ACCEPT_DIRECT_TOKENS=true below).
"$BIN" hop-keys "$WORK/keys" >/dev/null

# The four subgraphs in one `shopgraph dev` process: its in-process event
# bus carries a checkout's events to basket and product (as Kafka would
# between `serve` processes), so the seeded checkouts settle and release
# their basket locks. Its own router is not measured; it sits idle on a
# port of its own.
say "starting the subgraphs on 127.0.0.1:$PRODUCT_PORT_B-$NOTIFICATION_PORT_B (shopgraph dev, SQLite in $WORK/data)"
start subgraphs env -u DATABASE_URL -u KAFKA_BROKERS -u REDIS_URL \
    HOST=127.0.0.1 JWT_SECRET="$JWT_SECRET_BENCH" ACCEPT_DIRECT_TOKENS=true \
    HOP_SIGNING_KEY_FILE="$WORK/keys/hop.key" HOP_TRUSTED_KEYS_FILE="$WORK/keys/hop.pub" \
    LOG_LEVEL=warn LOG_FORMAT=json SHOPGRAPH_DATA_DIR="$WORK/data" SEED_DEMO_DATA=true \
    ROUTER_PORT=$((BENCH_PORT_BASE + 20)) ADMIN_PORT=$((BENCH_PORT_BASE + 21)) \
    PRODUCT_PORT="$PRODUCT_PORT_B" PRODUCT_METRICS_PORT="$(subgraph_metrics_port "$PRODUCT_PORT_B")" \
    BASKET_PORT="$BASKET_PORT_B" BASKET_METRICS_PORT="$(subgraph_metrics_port "$BASKET_PORT_B")" \
    PAYMENT_PORT="$PAYMENT_PORT_B" PAYMENT_METRICS_PORT="$(subgraph_metrics_port "$PAYMENT_PORT_B")" \
    NOTIFICATION_PORT="$NOTIFICATION_PORT_B" NOTIFICATION_METRICS_PORT="$(subgraph_metrics_port "$NOTIFICATION_PORT_B")" \
    "$BIN" dev
for s in "${SUBGRAPHS[@]}"; do
    PID_OF[$s]=${PID_OF[subgraphs]}
    wait_http "$s" "http://127.0.0.1:$(port_of_subgraph "$s")/health/ready"
done

read -r -a router_extra_env <<<"${BENCH_ROUTER_ENV:-}"
read -r -a protected_extra_env <<<"${BENCH_PROTECTED_ENV:-}"
# Protections mode: what each router must not inherit from the caller's
# environment (every protection knob, Redis, extra replicas), so that only
# the settings below apply.
ROUTER_UNSET=()
if [ "$BENCH_COMPARE" = protections ]; then
    for var in REDIS_URL RATE_LIMIT_ENABLED RATE_LIMIT_REQUESTS RATE_LIMIT_WINDOW RATE_LIMIT_BURST \
        RATE_LIMIT_TRUSTED_PROXY_HEADER RATE_LIMIT_REDIS_TIMEOUT RATE_LIMIT_KEY_PREFIX \
        CIRCUIT_BREAKER_ENABLED CIRCUIT_BREAKER_INTERVAL CIRCUIT_BREAKER_TIMEOUT CIRCUIT_BREAKER_MAX_REQUESTS \
        CIRCUIT_BREAKER_FAILURE_RATIO CIRCUIT_BREAKER_MIN_REQUESTS RETRY_ENABLED RETRY_ATTEMPTS \
        RETRY_BACKOFF_MIN RETRY_BACKOFF_MAX RETRY_BUDGET_RATIO RETRY_BUDGET_MIN_PER_SECOND \
        LOAD_BALANCER_ENABLED LOAD_BALANCER_STRATEGY HEALTH_CHECK_INTERVAL HEALTH_CHECK_TIMEOUT \
        HEALTH_CHECK_PATH OUTLIER_CONSECUTIVE_FAILURES OUTLIER_EJECTION_TIME GRAPHQL_MAX_DEPTH \
        GRAPHQL_MAX_ALIASES GRAPHQL_MAX_ROOT_FIELDS GRAPHQL_MAX_COMPLEXITY GRAPHQL_MAX_TOKENS \
        GRAPHQL_DEFAULT_LIST_SIZE APQ_ENABLED APQ_CACHE_SIZE APQ_KEY_PREFIX APQ_REDIS_TTL \
        PERSISTED_QUERIES_SAFELIST PERSISTED_QUERIES_MANIFEST PERSISTED_QUERIES_ALLOW_TEXT \
        CSRF_PREVENTION CSRF_REQUIRED_HEADERS CORS_ALLOWED_ORIGINS CORS_ALLOW_CREDENTIALS \
        SECURITY_HEADERS HSTS_MAX_AGE SUBGRAPH_TIMEOUT SUBGRAPH_COMPRESSION \
        PRODUCT_SERVICE_URLS BASKET_SERVICE_URLS PAYMENT_SERVICE_URLS NOTIFICATION_SERVICE_URLS; do
        ROUTER_UNSET+=(-u "$var")
    done
fi
# A command the routers run under (BENCH_CALLGRIND: valgrind), and how long
# they may take to become ready.
ROUTER_WRAP=()
ROUTER_READY_SECONDS=60
start_router() { # NAME PORT DEDUPE [VAR=VALUE...]
    local name=$1 port=$2 dedupe=$3
    shift 3
    start "$name" env "${ROUTER_UNSET[@]}" HOST=127.0.0.1 ROUTER_PORT="$port" \
        ADMIN_HOST=127.0.0.1 ADMIN_PORT="$(router_admin_port "$port")" \
        SUPERGRAPH_PATH="$ROOT/schema/supergraph.graphql" \
        PRODUCT_SERVICE_URL="http://127.0.0.1:$PRODUCT_PORT_B/graphql" \
        BASKET_SERVICE_URL="http://127.0.0.1:$BASKET_PORT_B/graphql" \
        PAYMENT_SERVICE_URL="http://127.0.0.1:$PAYMENT_PORT_B/graphql" \
        NOTIFICATION_SERVICE_URL="http://127.0.0.1:$NOTIFICATION_PORT_B/graphql" \
        QUERY_DEDUPE="$dedupe" SUBGRAPH_DEDUPE="$dedupe" \
        JWT_SECRET="$JWT_SECRET_BENCH" HOP_SIGNING_KEY_FILE="$WORK/keys/hop.key" \
        LOG_LEVEL=warn LOG_FORMAT=json GRAPHIQL=false \
        "$@" "${router_extra_env[@]}" "${ROUTER_WRAP[@]}" "$BIN" serve router
    wait_http "$name" "http://127.0.0.1:$port/health/ready" "$ROUTER_READY_SECONDS"
}

hive_config() { # PORT DEDUPE
    cat <<EOF
supergraph:
  source: file
  path: $WORK/supergraph.hive.graphql
http:
  host: 127.0.0.1
  port: $1
log:
  level: warn
headers:
  all:
    request:
      - propagate:
          named: authorization
traffic_shaping:
  all:
    dedupe_enabled: $2
EOF
}
start_hive() { # NAME PORT DEDUPE
    hive_config "$2" "$3" >"$WORK/$1.config.yaml"
    # Hive reads PORT/HOST/LOG_LEVEL/SUPERGRAPH_FILE_PATH... from the
    # environment too; set them so nothing inherited overrides the file.
    start "$1" env -u SUPERGRAPH_FILE_PATH -u HIVE_CDN_ENDPOINT -u HIVE_CDN_KEY \
        -u HIVE_ACCESS_TOKEN -u HIVE_TARGET -u LOG_FILTER \
        ROUTER_CONFIG_FILE_PATH="$WORK/$1.config.yaml" PORT="$2" HOST=127.0.0.1 \
        LOG_LEVEL=warn "${ROUTER_WRAP[@]}" "$HIVE_BIN"
    wait_http "$1" "http://127.0.0.1:$2/readiness" "$ROUTER_READY_SECONDS"
}

if [ "$BENCH_COMPARE" = protections ]; then
    # Every protection on. The rate-limit budget is the most the router
    # accepts (one request per microsecond, a burst of 1,000,000): far above
    # what two cores can serve, so the limiter decides on every request but
    # never refuses. The GRAPHQL_MAX_* limits keep their defaults.
    PROTECTED_ENV=(
        RATE_LIMIT_ENABLED=true RATE_LIMIT_REQUESTS=1000000 RATE_LIMIT_WINDOW=1s RATE_LIMIT_BURST=1000000
        CIRCUIT_BREAKER_ENABLED=true RETRY_ENABLED=true
        LOAD_BALANCER_ENABLED=true HEALTH_CHECK_INTERVAL=1s
        APQ_ENABLED=true CSRF_PREVENTION=true SECURITY_HEADERS=true
        CORS_ALLOWED_ORIGINS="$BENCH_ORIGIN"
        "${protected_extra_env[@]}"
    )
    # All off. The zero limits go to this router only: the subgraphs read
    # GRAPHQL_MAX_DEPTH / GRAPHQL_MAX_COMPLEXITY too and refuse 0.
    BARE_ENV=(
        RATE_LIMIT_ENABLED=false CIRCUIT_BREAKER_ENABLED=false RETRY_ENABLED=false
        LOAD_BALANCER_ENABLED=false HEALTH_CHECK_INTERVAL=0s OUTLIER_CONSECUTIVE_FAILURES=0
        GRAPHQL_MAX_DEPTH=0 GRAPHQL_MAX_ALIASES=0 GRAPHQL_MAX_ROOT_FIELDS=0 GRAPHQL_MAX_COMPLEXITY=0
        APQ_ENABLED=false CSRF_PREVENTION=false SECURITY_HEADERS=false
    )
    # start_protections_router NAME — starts (or, for BENCH_CALLGRIND,
    # restarts) one of this mode's routers with its settings.
    start_protections_router() {
        case $1 in
            protected) start_router protected "$ROUTER_PORT_B" "$BENCH_DEDUPE" "${PROTECTED_ENV[@]}" ;;
            bare) start_router bare "$BARE_PORT_B" "$BENCH_DEDUPE" "${BARE_ENV[@]}" ;;
            protected_redis)
                start_router protected_redis "$REDIS_ROUTER_PORT_B" "$BENCH_DEDUPE" "${PROTECTED_ENV[@]}" \
                    REDIS_URL="$BENCH_REDIS_URL" RATE_LIMIT_KEY_PREFIX="$REDIS_PREFIX:ratelimit" \
                    APQ_KEY_PREFIX="$REDIS_PREFIX:apq"
                ;;
        esac
    }
    say "starting the protected Shopgraph router on 127.0.0.1:$ROUTER_PORT_B (every protection on, dedupe $BENCH_DEDUPE)"
    start_protections_router protected
    say "starting the bare Shopgraph router on 127.0.0.1:$BARE_PORT_B (every protection off, dedupe $BENCH_DEDUPE)"
    start_protections_router bare
    ROUTERS=(protected bare)
    if [ "$WITH_REDIS" = 1 ]; then
        REDIS_PREFIX="shopgraph-bench-$(date +%s)-$$"
        say "starting the protected Shopgraph router with Redis ($BENCH_REDIS_URL, keys $REDIS_PREFIX:*) on 127.0.0.1:$REDIS_ROUTER_PORT_B"
        start_protections_router protected_redis
        ROUTERS+=(protected_redis)
    fi
else
    say "starting the Shopgraph router on 127.0.0.1:$ROUTER_PORT_B (query and subgraph dedupe on, its default)"
    start_router router "$ROUTER_PORT_B" true

    # Hive Router: the same supergraph with the subgraph URLs pointed at the
    # bench ports; the client's Authorization header goes to every subgraph
    # (they verify it themselves: ACCEPT_DIRECT_TOKENS=true).
    sed -E \
        -e "s#(@join__graph\(name: \"product\", url: \")[^\"]*#\1http://127.0.0.1:$PRODUCT_PORT_B/graphql#" \
        -e "s#(@join__graph\(name: \"basket\", url: \")[^\"]*#\1http://127.0.0.1:$BASKET_PORT_B/graphql#" \
        -e "s#(@join__graph\(name: \"payment\", url: \")[^\"]*#\1http://127.0.0.1:$PAYMENT_PORT_B/graphql#" \
        -e "s#(@join__graph\(name: \"notification\", url: \")[^\"]*#\1http://127.0.0.1:$NOTIFICATION_PORT_B/graphql#" \
        schema/supergraph.graphql >"$WORK/supergraph.hive.graphql"
    for s in "${SUBGRAPHS[@]}"; do
        grep -q "@join__graph(name: \"$s\", url: \"http://127.0.0.1:$(port_of_subgraph "$s")/graphql\")" \
            "$WORK/supergraph.hive.graphql" ||
            die "could not rewrite the join__graph URL of $s in schema/supergraph.graphql"
    done

    say "starting Hive Router $HIVE_VERSION on 127.0.0.1:$HIVE_PORT_B (subgraph dedupe on, its default)"
    start_hive hive "$HIVE_PORT_B" true
    ROUTERS=(router hive)
    if [ "$BENCH_HIVE_NODEDUPE" = 1 ]; then
        say "starting the Shopgraph router on 127.0.0.1:$ROUTER_ND_PORT_B (dedupe off)"
        start_router router_nodedupe "$ROUTER_ND_PORT_B" false
        say "starting Hive Router on 127.0.0.1:$HIVE_ND_PORT_B (subgraph dedupe off)"
        start_hive hive_nodedupe "$HIVE_ND_PORT_B" false
        ROUTERS+=(router_nodedupe hive_nodedupe)
    fi
fi
declare -A PORT_OF=([router]=$ROUTER_PORT_B [hive]=$HIVE_PORT_B [router_nodedupe]=$ROUTER_ND_PORT_B [hive_nodedupe]=$HIVE_ND_PORT_B [direct]=$PRODUCT_PORT_B
    [protected]=$ROUTER_PORT_B [bare]=$BARE_PORT_B [protected_redis]=$REDIS_ROUTER_PORT_B)
declare -A LABEL=([router]="shopgraph router" [hive]="hive router" [router_nodedupe]="shopgraph (dedupe off)" [hive_nodedupe]="hive (dedupe off)" [direct]="product subgraph"
    [protected]="protected" [bare]="bare" [protected_redis]="protected + Redis")
# The router every other target's answers are compared with, and seeding goes through.
BASE_ROUTER=${ROUTERS[0]}

# ------------------------------------------------------------------- seed

SEED_PORT=${PORT_OF[$BASE_ROUTER]}
say "seeding through ${LABEL[$BASE_ROUTER]}: 20 basket lines, 15 payments, 40 notifications"
TOKEN=$(JWT_SECRET="$JWT_SECRET_BENCH" "$BIN" token --user bench)
ADMIN_TOKEN=$(JWT_SECRET="$JWT_SECRET_BENCH" "$BIN" token --user bench-admin --admin)

resp=$(gql "$SEED_PORT" "" "$(body '{ products(first: 20, filter: {inStock: true}) { edges { node { id } } } }')")
ok "products(first: 20)" "$resp"
mapfile -t PRODUCT_IDS < <(jq -r '.data.products.edges[].node.id' <<<"$resp")
[ ${#PRODUCT_IDS[@]} = 20 ] || die "expected 20 products in stock, got ${#PRODUCT_IDS[@]}"
# Enough stock for every seeded checkout and basket: checkouts sell it.
USER_LINES=5 USER_PAYMENTS=3 USER_NOTIFICATIONS=10
for id in "${PRODUCT_IDS[@]}"; do
    resp=$(gql "$SEED_PORT" "$ADMIN_TOKEN" "$(body 'mutation($id: ID!, $delta: Int!) { adjustStock(id: $id, delta: $delta) { stockQuantity } }' \
        "$(jq -nc --arg id "$id" --argjson d $((20 + MAX_USERS * (USER_PAYMENTS + 1) * USER_LINES)) '{id: $id, delta: $d}')")")
    ok "adjustStock($id)" "$resp"
done
# basket_emptied TOKEN — waits until the holder of TOKEN's basket is empty:
# a completed checkout's event reached basket (lines removed, lock gone).
basket_emptied() {
    for _ in $(seq 1 100); do
        [ "$(gql "$SEED_PORT" "$1" "$(body '{ me { basket { itemCount } } }')" | jq -r '.data.me.basket.itemCount // 0')" = 0 ] && return
        sleep 0.1
    done
    die "a checked-out basket was not emptied within 10 s (its PaymentCompleted event did not reach basket)"
}
fill_basket() {
    for id in "${PRODUCT_IDS[@]}"; do
        resp=$(gql "$SEED_PORT" "$TOKEN" "$(body 'mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }' \
            "$(jq -nc --arg id "$id" '{id: $id}')")")
        ok "addBasketItem($id)" "$resp"
    done
}
for i in $(seq 1 15); do
    fill_basket
    resp=$(gql "$SEED_PORT" "$TOKEN" "$(body 'mutation($key: String!) { checkout(input: {idempotencyKey: $key, method: CARD, card: {number: "4242424242424242", expMonth: 12, expYear: 2030, cvc: "123"}}) { id status } }' \
        "$(jq -nc --arg k "bench-checkout-$i" '{key: $k}')")")
    ok "checkout #$i" "$resp"
    [ "$(jq -r '.data.checkout.status' <<<"$resp")" = COMPLETED ] || die "checkout #$i: $resp"
    basket_emptied "$TOKEN"
done
fill_basket
for i in $(seq 1 40); do
    resp=$(gql "$SEED_PORT" "$ADMIN_TOKEN" "$(body 'mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id status } }' \
        "$(jq -nc --arg t "Bench notification $i" '{input: {userId: "bench", type: "PAYMENT_COMPLETED", title: $t, message: "Your order was paid."}}')")")
    ok "createNotification #$i" "$resp"
done

# batch NAME FILE [PARALLEL] — sends the requests of the curl config FILE
# (each ended by `next`), PARALLEL (16) at a time, 1 meaning one after the
# other over one keep-alive connection; fails unless every answer is a 200
# without GraphQL errors.
batch() {
    local name=$1 file=$2 parallel=${3:-16} n answers
    local at_once=()
    [ "$parallel" -gt 1 ] && at_once=(--parallel --parallel-max "$parallel")
    sed -i '${/^next$/d}' "$file"
    n=$(grep -c '^url = ' "$file")
    answers=$(curl -sS --no-progress-meter --max-time 600 "${at_once[@]}" -K "$file" 2>&1) || die "$name: curl failed"
    [ "$(grep -c '^HTTP 200$' <<<"$answers")" = "$n" ] && ! grep -q '"errors"' <<<"$answers" ||
        die "$name: not every one of $n requests answered 200 without errors: $(grep -v '^HTTP 200$' <<<"$answers" | head -c 600)"
}
# request PORT TOKEN BODY — one request of a curl config, for `batch`.
request() {
    printf 'url = "http://127.0.0.1:%s/graphql"\n' "$1"
    printf 'header = "%s"\n' 'content-type: application/json' 'accept: application/json' "authorization: Bearer $2"
    local escaped=${3//\\/\\\\} # backslashes first, then quotes
    printf 'data-binary = "%s"\n' "${escaped//\"/\\\"}"
    echo 'write-out = "\nHTTP %{http_code}\n"'
    echo next
}

if [ "$MAX_USERS" -gt 1 ]; then
    say "seeding $MAX_USERS users through ${LABEL[$BASE_ROUTER]}: $USER_LINES basket lines, $USER_PAYMENTS payments of $USER_LINES lines, $USER_NOTIFICATIONS notifications each"
    : >"$WORK/tokens.all"
    for i in $(seq 1 "$MAX_USERS"); do
        JWT_SECRET="$JWT_SECRET_BENCH" "$BIN" token --user "user-$i" >>"$WORK/tokens.all"
    done
    mapfile -t USER_TOKENS <"$WORK/tokens.all"
    # Request bodies from templates (one jq each, not one per request).
    ADD_LINE=$(body 'mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }' '{"id": "@ID@"}')
    CHECKOUT=$(body 'mutation($key: String!) { checkout(input: {idempotencyKey: $key, method: CARD, card: {number: "4242424242424242", expMonth: 12, expYear: 2030, cvc: "123"}}) { status } }' \
        '{"key": "@KEY@"}')
    # add_lines ROUND — every user adds USER_LINES lines; one user's
    # requests are MAX_USERS apart in the batch, never at once.
    add_lines() {
        local round=$1 line i
        for line in $(seq 1 "$USER_LINES"); do
            for i in $(seq 1 "$MAX_USERS"); do
                request "$SEED_PORT" "${USER_TOKENS[$((i - 1))]}" \
                    "${ADD_LINE//@ID@/${PRODUCT_IDS[$(((i + line + round) % 20))]}}"
            done
        done >"$WORK/seed.curl"
        batch "basket lines, round $round" "$WORK/seed.curl"
    }
    for round in $(seq 1 "$USER_PAYMENTS"); do
        add_lines "$round"
        for i in $(seq 1 "$MAX_USERS"); do
            request "$SEED_PORT" "${USER_TOKENS[$((i - 1))]}" "${CHECKOUT//@KEY@/bench-user-$i-$round}"
        done >"$WORK/seed.curl"
        batch "checkouts, round $round" "$WORK/seed.curl"
        basket_emptied "${USER_TOKENS[0]}"
        basket_emptied "${USER_TOKENS[$((MAX_USERS - 1))]}"
        sleep 1 # the others' events, processed in order behind the last one's
    done
    add_lines 0
    for first in $(seq 1 100 $((MAX_USERS * USER_NOTIFICATIONS))); do
        inputs=$(jq -nc --argjson from "$first" --argjson users "$MAX_USERS" --argjson total $((MAX_USERS * USER_NOTIFICATIONS)) \
            '[range($from; [$from + 100, $total + 1] | min) | {userId: "user-\((. - 1) % $users + 1)", type: "PAYMENT_COMPLETED", title: "Bench notification \(.)", message: "Your order was paid."}]')
        request "$SEED_PORT" "$ADMIN_TOKEN" \
            "$(body 'mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id } }' \
                "$(jq -nc --argjson i "$inputs" '{inputs: $i}')")"
    done >"$WORK/seed.curl"
    batch "notifications" "$WORK/seed.curl"
    for n in "${USER_COUNTS[@]}"; do head -n "$n" "$WORK/tokens.all" >"$WORK/tokens.$n"; done
fi

# ------------------------------------------------------------------ check

HEAVY_BODY=$WORK/heavy.json
PRODUCTS_BODY=$WORK/products.json
body "$HEAVY_QUERY" >"$HEAVY_BODY"
body "$PRODUCTS_QUERY" >"$PRODUCTS_BODY"
# Protections mode sends every request as the bench user (the rate limiter
# keys on the JWT subject); hive mode sends products anonymously.
PRODUCTS_TOKEN=""
[ "$BENCH_COMPARE" = protections ] && PRODUCTS_TOKEN=$TOKEN
declare -A BODY_OF=([heavy]=$HEAVY_BODY [products]=$PRODUCTS_BODY)

say "checking both queries on every target"
for r in "${ROUTERS[@]}"; do
    resp=$(gql "${PORT_OF[$r]}" "$TOKEN" "$(cat "$HEAVY_BODY")")
    ok "heavy query on ${LABEL[$r]}" "$resp"
    jq -S . <<<"$resp" >"$WORK/heavy.$r.json"
    resp=$(gql "${PORT_OF[$r]}" "$PRODUCTS_TOKEN" "$(cat "$PRODUCTS_BODY")")
    ok "products query on ${LABEL[$r]}" "$resp"
    jq -S . <<<"$resp" >"$WORK/products.$r.json"
done
resp=$(gql "$PRODUCT_PORT_B" "" "$(cat "$PRODUCTS_BODY")")
ok "products query on the product subgraph" "$resp"
jq -S '{data}' <<<"$resp" >"$WORK/products.direct.json"
jq -e '.data.me | (.basket.items | length) == 20 and (.payments.edges | length) == 15
        and all(.payments.edges[]; (.node.items | length) == 20)
        and (.notifications.edges | length) == 40' "$WORK/heavy.$BASE_ROUTER.json" >/dev/null ||
    die "the heavy query does not see the seeded data: $(head -c 400 "$WORK/heavy.$BASE_ROUTER.json")"
jq -e '(.data.products.edges | length) == 50' "$WORK/products.$BASE_ROUTER.json" >/dev/null ||
    die "products(first: 50) did not return 50 products"
for r in "${ROUTERS[@]}"; do
    [ "$r" = "$BASE_ROUTER" ] && continue
    diff -u "$WORK/heavy.$BASE_ROUTER.json" "$WORK/heavy.$r.json" >"$WORK/heavy.diff" ||
        die "heavy query: ${LABEL[$BASE_ROUTER]} and ${LABEL[$r]} answer differently:
$(head -n 40 "$WORK/heavy.diff")"
    diff -u "$WORK/products.$BASE_ROUTER.json" "$WORK/products.$r.json" >"$WORK/products.diff" ||
        die "products query: ${LABEL[$BASE_ROUTER]} and ${LABEL[$r]} answer differently:
$(head -n 40 "$WORK/products.diff")"
done
jq -S '{data}' "$WORK/products.$BASE_ROUTER.json" | diff -u - "$WORK/products.direct.json" >"$WORK/products.diff" ||
    die "products query: the router and the product subgraph answer differently"
HEAVY_BYTES=$(jq -c . "$WORK/heavy.$BASE_ROUTER.json" | wc -c)
if [ "$MAX_USERS" -gt 1 ]; then
    for who in 1 "$MAX_USERS"; do
        user_token=${USER_TOKENS[$((who - 1))]}
        for r in "${ROUTERS[@]}"; do
            resp=$(gql "${PORT_OF[$r]}" "$user_token" "$(cat "$HEAVY_BODY")")
            ok "heavy query as user-$who on ${LABEL[$r]}" "$resp"
            jq -S . <<<"$resp" >"$WORK/heavy.user-$who.$r.json"
            diff -u "$WORK/heavy.user-$who.$BASE_ROUTER.json" "$WORK/heavy.user-$who.$r.json" >"$WORK/heavy.diff" ||
                die "heavy query as user-$who: ${LABEL[$BASE_ROUTER]} and ${LABEL[$r]} answer differently:
$(head -n 40 "$WORK/heavy.diff")"
        done
        jq -e --argjson l "$USER_LINES" --argjson p "$USER_PAYMENTS" --argjson n "$USER_NOTIFICATIONS" \
            '.data.me | (.basket.items | length) == $l and (.payments.edges | length) == $p
             and all(.payments.edges[]; (.node.items | length) == $l) and (.notifications.edges | length) == $n + $p' \
            "$WORK/heavy.user-$who.$BASE_ROUTER.json" >/dev/null ||
            die "user-$who does not see their seeded data: $(head -c 400 "$WORK/heavy.user-$who.$BASE_ROUTER.json")"
    done
    USER_HEAVY_BYTES=$(jq -c . "$WORK/heavy.user-1.$BASE_ROUTER.json" | wc -c)
    echo "heavy answer of user-1: $USER_HEAVY_BYTES bytes, identical on ${ROUTERS[*]} (user-$MAX_USERS too)" >&2
fi
echo "heavy answer: $HEAVY_BYTES bytes, identical on ${ROUTERS[*]}; products answer identical everywhere" >&2

# post PORT CONTENT-TYPE BODYFILE OUT [CURL-ARGS...] — POSTs as the bench user
# with BENCH_ORIGIN; the body goes to OUT, lower-cased headers to OUT.headers,
# prints the HTTP status.
post() {
    local port=$1 ctype=$2 bodyfile=$3 out=$4
    shift 4
    curl -sS --max-time 30 "http://127.0.0.1:$port/graphql" -D "$out.headers" -o "$out" -w '%{http_code}' \
        -H "content-type: $ctype" -H 'accept: application/json' -H "authorization: Bearer $TOKEN" \
        -H "origin: $BENCH_ORIGIN" "$@" --data-binary @"$bodyfile"
    tr -d '\r' <"$out.headers" | tr '[:upper:]' '[:lower:]' >"$out.headers.lc" && mv "$out.headers.lc" "$out.headers"
}
# first_code FILE — extensions.code of the first GraphQL error in FILE, or "none".
first_code() { jq -r '.errors[0].extensions.code // "none"' "$1" 2>/dev/null || echo "unparseable"; }

if [ "$BENCH_COMPARE" = protections ]; then
    say "checking that every protection is on in the protected router(s) and off in bare"
    aliases=$(for i in $(seq 0 30); do printf 'a%d: id ' "$i"; done)
    body "{ products(first: 1) { edges { node { $aliases } } } }" >"$WORK/aliases.json"
    jq -nc '{extensions: {persistedQuery: {version: 1, sha256Hash: "0000000000000000000000000000000000000000000000000000000000000000"}}}' >"$WORK/apq.json"
    for r in "${ROUTERS[@]}"; do
        port=${PORT_OF[$r]} on=1 problems=()
        [ "$r" = bare ] && on=0
        status=$(post "$port" application/json "$PRODUCTS_BODY" "$WORK/p.$r")
        [ "$status" = 200 ] || die "${LABEL[$r]}: products query answered HTTP $status"
        for h in ratelimit-limit ratelimit-remaining x-content-type-options x-frame-options access-control-allow-origin; do
            has=0
            grep -q "^$h:" "$WORK/p.$r.headers" && has=1
            [ "$has" = "$on" ] || problems+=("response header $h $([ "$has" = 1 ] && echo present || echo missing)")
        done
        # CSRF: a form-like content type, no preflight header.
        status=$(post "$port" text/plain "$PRODUCTS_BODY" "$WORK/csrf.$r")
        code=$(first_code "$WORK/csrf.$r")
        if [ "$on" = 1 ]; then
            [ "$status" = 400 ] && [ "$code" = CSRF_PREVENTION ] || problems+=("text/plain POST not refused by CSRF prevention (HTTP $status, $code)")
        else
            [ "$code" != CSRF_PREVENTION ] || problems+=("text/plain POST refused by CSRF prevention")
        fi
        # Operation limits: 31 aliases (default GRAPHQL_MAX_ALIASES is 30).
        status=$(post "$port" application/json "$WORK/aliases.json" "$WORK/aliases.$r")
        code=$(first_code "$WORK/aliases.$r")
        if [ "$on" = 1 ]; then
            [ "$code" = MAX_ALIASES_LIMIT ] || problems+=("31 aliases not refused (HTTP $status, $code)")
        else
            [ "$status" = 200 ] && [ "$code" = none ] || problems+=("31 aliases refused (HTTP $status, $code)")
        fi
        # Automatic persisted queries: an unknown hash.
        post "$port" application/json "$WORK/apq.json" "$WORK/apq.$r" >/dev/null
        code=$(first_code "$WORK/apq.$r")
        want=PERSISTED_QUERY_NOT_SUPPORTED
        [ "$on" = 1 ] && want=PERSISTED_QUERY_NOT_FOUND
        [ "$code" = "$want" ] || problems+=("unknown APQ hash answered $code, expected $want")
        # Circuit breakers (null when off) in /health/detailed.
        breakers=$(curl -fsS --max-time 10 "http://127.0.0.1:$(router_admin_port "$port")/health/detailed" |
            jq '[.subgraphs[] | select(.circuit_breaker != null)] | length')
        want=0
        [ "$on" = 1 ] && want=${#SUBGRAPHS[@]}
        [ "$breakers" = "$want" ] || problems+=("$breakers circuit breakers in /health/detailed, expected $want")
        # The rest (load balancer, health checks, outlier ejection, retries,
        # rate-limit store) from the admin API's protections summary.
        admin_port=$(listening_ports "${PID_OF[$r]}" | grep -vx "$port" | head -n 1)
        if [ -z "$admin_port" ]; then
            problems+=("no admin listener found")
        else
            curl -fsS --max-time 10 -H "authorization: Bearer $ADMIN_TOKEN" \
                "http://127.0.0.1:$admin_port/admin/status" | jq -c .protections >"$WORK/protections.$r.json" ||
                problems+=("no /admin/status on port $admin_port")
            store=memory
            [ "$r" = protected_redis ] && store=redis
            if [ "$on" = 1 ]; then
                want='.load_balancer.enabled and .load_balancer.health_check_interval_ms == 1000
                    and .load_balancer.outlier_consecutive_failures > 0 and .circuit_breaker.enabled
                    and .retry.enabled and .retry.attempts > 0 and .rate_limit.enabled
                    and .rate_limit.store == $store and .persisted_queries.apq
                    and ([.operation_limits.max_depth, .operation_limits.max_aliases,
                          .operation_limits.max_root_fields, .operation_limits.max_complexity] | all(. > 0))'
            else
                want='(.load_balancer.enabled | not) and .load_balancer.health_check_interval_ms == null
                    and .load_balancer.outlier_consecutive_failures == null and (.circuit_breaker.enabled | not)
                    and (.retry.enabled | not) and (.rate_limit.enabled | not) and .rate_limit.store == $store
                    and (.persisted_queries.apq | not)
                    and ([.operation_limits.max_depth, .operation_limits.max_aliases,
                          .operation_limits.max_root_fields, .operation_limits.max_complexity] | all(. == null or . == 0))'
            fi
            jq -e --arg store "$store" "$want" "$WORK/protections.$r.json" >/dev/null 2>&1 ||
                problems+=("admin protections summary $(cat "$WORK/protections.$r.json" 2>/dev/null)")
        fi
        if [ ${#problems[@]} -gt 0 ]; then
            if [ "$r" != bare ] && [ -n "${BENCH_PROTECTED_ENV:-}" ]; then
                echo "note: ${LABEL[$r]} runs with BENCH_PROTECTED_ENV=$BENCH_PROTECTED_ENV: $(printf '%s; ' "${problems[@]}")" >&2
            else
                die "${LABEL[$r]} is not configured as intended: $(printf '%s; ' "${problems[@]}")"
            fi
        fi
    done
    if [ "$WITH_REDIS" = 1 ]; then
        n=$(metric_sum "$REDIS_ROUTER_PORT_B" router_rate_limit_fallback_total)
        [ "$n" = 0 ] || die "protected + Redis: $n rate-limit decisions fell back to the local limiter (Redis unusable?)"
    fi
    echo "protections as the admin API reports them:" >&2
    for r in "${ROUTERS[@]}"; do printf '  %-18s %s\n' "${LABEL[$r]}" "$(cat "$WORK/protections.$r.json")" >&2; done
    if [ -z "${BENCH_PROTECTED_ENV:-}" ]; then
        echo "checked: protected router(s) send rate-limit, security and CORS headers, refuse CSRF-able requests," >&2
        echo "31 aliases and unknown APQ hashes as expected, and have circuit breakers; bare does none of it" >&2
    fi
fi

# Subgraph requests one heavy query causes, per subgraph (20 sequential queries).
declare -A FETCHES=()
for r in "${ROUTERS[@]}"; do
    declare -A before=()
    for s in "${SUBGRAPHS[@]}"; do before[$s]=$(subgraph_requests "$(port_of_subgraph "$s")" "$s"); done
    for _ in $(seq 1 20); do gql "${PORT_OF[$r]}" "$TOKEN" "$(cat "$HEAVY_BODY")" >/dev/null; done
    line=""
    for s in "${SUBGRAPHS[@]}"; do
        after=$(subgraph_requests "$(port_of_subgraph "$s")" "$s")
        line+="$s=$(awk -v d=$((after - before[$s])) 'BEGIN {printf "%.2f", d / 20}') "
    done
    FETCHES[$r]=$line
    unset before
done
# A few products queries too, so every router has served both queries.
for r in "${ROUTERS[@]}"; do
    for _ in $(seq 1 20); do gql "${PORT_OF[$r]}" "$PRODUCTS_TOKEN" "$(cat "$PRODUCTS_BODY")" >/dev/null; done
done

declare -A RSS_REST=() RSS_PEAK=()
for r in "${ROUTERS[@]}"; do
    RSS_REST[$r]=$(rss_kb "${PID_OF[$r]}")
    RSS_PEAK[$r]=${RSS_REST[$r]}
done

# ------------------------------------------------------------------- load

FAILURES=()
PERF_REPORTS=()
NOISY=""
declare -A RES=()
if [ "${BENCH_PERF:-0}" = 1 ] && ! command -v perf >/dev/null 2>&1; then
    say "installing perf (BENCH_PERF=1)"
    apt_install linux-perf
fi

LOAD_PERF=1 # BENCH_PERF=1: whether load() perf-records this run

# load SCENARIO TARGET BODYFILE TOKEN [TOKENS-FILE] — with TOKENS-FILE,
# every request carries the next token of that file instead of TOKEN.
load() {
    local scenario=$1 target=$2 bodyfile=$3 token=$4 tokens=${5:-}
    local port=${PORT_OF[$target]} url out pid=""
    url="http://127.0.0.1:$port/graphql"
    [ "$target" != direct ] && pid=${PID_OF[$target]}
    export BENCH_BODY_FILE=$bodyfile BENCH_TOKEN=$token BENCH_TOKENS_FILE=$tokens

    timeout $((BENCH_WARMUP_SECONDS + 30)) wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" \
        -d "${BENCH_WARMUP_SECONDS}s" --timeout 10s -s "$LUA" "$url" >/dev/null 2>&1 || true
    sleep 1 # let the requests wrk abandoned finish before counting

    # Sample the router's RSS while wrk runs (bounded by wrk's lifetime and a deadline).
    local rss_file=$WORK/rss.$scenario.$target sampler=""
    echo 0 >"$rss_file"
    if [ -n "$pid" ]; then
        (
            # Builtins only (one `sleep` per sample): the sampler must not load the machine.
            max=0
            end=$((SECONDS + BENCH_SECONDS + 15))
            while [ "$SECONDS" -le "$end" ]; do
                while read -r key value _; do
                    if [ "$key" = VmRSS: ]; then
                        if [ "$value" -gt "$max" ]; then
                            max=$value
                            echo "$max" >"$rss_file"
                        fi
                        break
                    fi
                done <"/proc/$pid/status" || break
                sleep 0.2
            done
        ) &
        sampler=$!
    fi
    local sg_before sg_cpu_before r_cpu_before=0 busy_before bench_before
    sg_before=$(all_subgraph_requests)
    sg_cpu_before=$(subgraph_cpu_ticks)
    [ -n "$pid" ] && r_cpu_before=$(cpu_ticks "$pid")
    busy_before=$(machine_busy_ticks)
    bench_before=$(bench_cpu_ticks)

    local perf_pid=""
    if [ "${BENCH_PERF:-0}" = 1 ] && [ "$LOAD_PERF" = 1 ] && [ -n "$pid" ]; then
        # shellcheck disable=SC2086  # BENCH_PERF_RECORD_ARGS is a list of words
        timeout $((BENCH_SECONDS + 30)) perf record -q -F 499 ${BENCH_PERF_RECORD_ARGS:-} -p "$pid" \
            -o "$WORK/perf.$scenario.$target.data" -- sleep "$BENCH_SECONDS" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    # `times` adds the CPU wrk used (children's user and system time).
    out=$(
        timeout $((BENCH_SECONDS + 30)) wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" \
            -d "${BENCH_SECONDS}s" --timeout 10s -s "$LUA" "$url" 2>&1 || true
        times
    )
    local busy_after bench_after
    busy_after=$(machine_busy_ticks)
    bench_after=$(bench_cpu_ticks)

    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" 2>/dev/null || true
        PERF_REPORTS+=("$scenario.$target")
    fi
    local sg_after sg_cpu_after r_cpu_after=0
    sg_after=$(all_subgraph_requests)
    sg_cpu_after=$(subgraph_cpu_ticks)
    [ -n "$pid" ] && r_cpu_after=$(cpu_ticks "$pid")
    if [ -n "$sampler" ]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        local peak
        peak=$(cat "$rss_file")
        [ "$peak" -gt "${RSS_PEAK[$target]}" ] && RSS_PEAK[$target]=$peak
    fi

    local result
    result=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$result" ]; then
        FAILURES+=("$scenario/${LABEL[$target]}: wrk produced no result: $(tail -n 5 <<<"$out")")
        return
    fi
    local kv
    for kv in ${result#RESULT }; do RES[$scenario.$target.${kv%%=*}]=${kv#*=}; done
    local n=${RES[$scenario.$target.requests]}
    RES[$scenario.$target.sg_per_op]=$(awk -v d=$((sg_after - sg_before)) -v n="$n" 'BEGIN {printf "%.2f", n ? d / n : 0}')
    RES[$scenario.$target.sg_cpu_us]=$(awk -v d=$((sg_cpu_after - sg_cpu_before)) -v n="$n" -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", n ? d / hz * 1e6 / n : 0}')
    if [ -n "$pid" ]; then
        RES[$scenario.$target.r_cpu_us]=$(awk -v d=$((r_cpu_after - r_cpu_before)) -v n="$n" -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", n ? d / hz * 1e6 / n : 0}')
    else
        RES[$scenario.$target.r_cpu_us]="-"
    fi
    # CPU the rest of the machine used meanwhile (other builds, tests...): noise.
    local wrk_seconds
    wrk_seconds=$(tail -n 1 <<<"$out" | awk '{t = 0; for (i = 1; i <= NF; i++) {split($i, p, "m"); t += p[1] * 60 + p[2]}; print t}')
    RES[$scenario.$target.other]=$(awk -v busy=$((busy_after - busy_before)) -v bench=$((bench_after - bench_before)) \
        -v w="$wrk_seconds" -v hz="$CLK_TCK" -v us="${RES[$scenario.$target.duration_us]}" \
        'BEGIN {o = ((busy - bench) / hz - w) / (us / 1e6); if (o < 0) o = 0; printf "%.2f", o}')
    local bad=0 k
    for k in non2xx connect_err read_err write_err timeout_err gql_errors bad_status; do
        [ "${RES[$scenario.$target.$k]}" != 0 ] && bad=1
    done
    if [ "$bad" = 1 ] || [ "$n" = 0 ]; then
        local first hint=""
        first=$(grep '^FIRST_ERROR ' <<<"$out" || true)
        [[ $first == "FIRST_ERROR HTTP 429"* ]] &&
            hint=" — HTTP 429: the rate limiter refused requests; its budget (RATE_LIMIT_*) must be far above the load"
        FAILURES+=("$scenario/${LABEL[$target]}: $result $first$hint")
    fi
    if awk -v o="${RES[$scenario.$target.other]}" 'BEGIN {exit !(o > 0.25)}'; then
        NOISY+=" $scenario/${LABEL[$target]} (${RES[$scenario.$target.other]})"
    fi
    printf '  %-11s %-18s %9s req/s  p50 %7s ms  p95 %7s ms  p99 %7s ms  (other CPU %s)\n' "$scenario" "${LABEL[$target]}" \
        "${RES[$scenario.$target.rps]}" "${RES[$scenario.$target.p50_ms]}" \
        "${RES[$scenario.$target.p95_ms]}" "${RES[$scenario.$target.p99_ms]}" "${RES[$scenario.$target.other]}" >&2
}

[ "$BENCH_COMPARE" = protections ] && [ "$BENCH_ROUNDS" = 0 ] ||
    say "load: ${BENCH_SECONDS}s per run, $BENCH_CONNECTIONS connections, $BENCH_THREADS wrk threads, ${BENCH_WARMUP_SECONDS}s warm-up each"
if [ "$BENCH_COMPARE" = protections ]; then
    # Alternating rounds, ABBA: odd rounds run the routers in order, even
    # rounds in reverse, so a slow drift of the machine hits both alike.
    export BENCH_ORIGIN
    USERS_FILE=""
    [ "$MAX_USERS" -gt 1 ] && USERS_FILE=$WORK/tokens.$MAX_USERS
    for round in $(seq 1 "$BENCH_ROUNDS"); do
        order=("${ROUTERS[@]}")
        if [ $((round % 2)) = 0 ]; then
            order=()
            for ((i = ${#ROUTERS[@]} - 1; i >= 0; i--)); do order+=("${ROUTERS[$i]}"); done
        fi
        LOAD_PERF=0
        [ "$round" = 1 ] && LOAD_PERF=1
        echo "  round $round/$BENCH_ROUNDS: ${order[*]}" >&2
        for q in "${LOAD_QUERIES[@]}"; do
            for r in "${order[@]}"; do load "$q-$round" "$r" "${BODY_OF[$q]}" "$TOKEN" "$USERS_FILE"; done
        done
    done
else
    for users in "${USER_COUNTS[@]}"; do
        if [ "$users" = 1 ]; then
            for r in "${ROUTERS[@]}"; do load heavy@1 "$r" "$HEAVY_BODY" "$TOKEN"; done
            load products@1 direct "$PRODUCTS_BODY" ""
            for r in "${ROUTERS[@]}"; do load products@1 "$r" "$PRODUCTS_BODY" ""; done
        else
            for r in "${ROUTERS[@]}"; do load "heavy@$users" "$r" "$HEAVY_BODY" "" "$WORK/tokens.$users"; done
            load "products@$users" direct "$PRODUCTS_BODY" "" "$WORK/tokens.$users"
            for r in "${ROUTERS[@]}"; do load "products@$users" "$r" "$PRODUCTS_BODY" "" "$WORK/tokens.$users"; done
        fi
    done
fi

# Protections mode: the rate limiter must have let everything through, and
# the Redis router must have decided in Redis, not in its local fallback.
if [ "$BENCH_COMPARE" = protections ]; then
    for r in "${ROUTERS[@]}"; do
        n=$(metric_sum "${PORT_OF[$r]}" router_rate_limited_total)
        [ "$n" = 0 ] || FAILURES+=("${LABEL[$r]}: $n requests rate-limited (HTTP 429): the RATE_LIMIT_* budget is too low for the load")
    done
    # Not a failure (the router answered every request, as designed), but
    # those decisions did not pay for the Redis round trip: say so.
    REDIS_FALLBACKS=0
    if [ "$WITH_REDIS" = 1 ]; then
        REDIS_FALLBACKS=$(metric_sum "$REDIS_ROUTER_PORT_B" router_rate_limit_fallback_total)
    fi
fi

declare -A RSS_AFTER=()
for r in "${ROUTERS[@]}"; do RSS_AFTER[$r]=$(rss_kb "${PID_OF[$r]}"); done

# ------------------------------------------------------------- callgrind

# send_requests PORT BODYFILE N [PARALLEL] [TOKENS-FILE] — POSTs BODYFILE
# N times as the bench user (or, with TOKENS-FILE, as the next user of that
# file each time) with BENCH_ORIGIN, one after the other over one
# keep-alive connection (one curl, which reuses it), or PARALLEL at a time;
# fails unless every answer is a 200 without errors.
send_requests() {
    local port=$1 bodyfile=$2 n=$3 parallel=${4:-1} tokens_file=${5:-} i
    local tokens=("$TOKEN")
    [ -n "$tokens_file" ] && mapfile -t tokens <"$tokens_file"
    for i in $(seq 1 "$n"); do
        printf 'url = "http://127.0.0.1:%s/graphql"\n' "$port"
        printf 'header = "%s"\n' 'content-type: application/json' 'accept: application/json' \
            "authorization: Bearer ${tokens[$((i % ${#tokens[@]}))]}" "origin: $BENCH_ORIGIN"
        printf 'data-binary = "@%s"\n' "$bodyfile"
        echo 'write-out = "\nHTTP %{http_code}\n"'
        echo next
    done >"$WORK/requests.curl"
    batch "$n requests to port $port" "$WORK/requests.curl" "$parallel"
}

# Each router in turn is restarted under callgrind, warmed up, and counted
# over BENCH_CALLGRIND requests of each query, and of products again with
# BENCH_CONNECTIONS in flight, as under wrk, where most of them join an
# identical query already executing (query dedupe) (counters zeroed before,
# dumped after, through callgrind_control, which exits 0 even when it
# reached no process: a missing dump file is the failure). valgrind names
# its control pipe after $USER and $HOST, so both are set alike on both sides.
declare -A INSTR=() JOINED=()
if [ "$BENCH_CALLGRIND" -gt 0 ]; then
    cg_user=${USER:-$(id -un)}
    ROUTER_READY_SECONDS=300
    cg_control() { USER=$cg_user HOST=127.0.0.1 callgrind_control "$@" >/dev/null 2>&1; }
    # under_callgrind NAME START-COMMAND... — restarts router NAME under callgrind.
    under_callgrind() {
        local name=$1
        shift
        stop "$name"
        CG_DUMP=0 # callgrind numbers a process's dumps from 1
        ROUTER_WRAP=(env USER="$cg_user" valgrind --tool=callgrind "--callgrind-out-file=$WORK/callgrind.$name")
        "$@"
        ROUTER_WRAP=()
    }
    # count NAME SEND-ARGS... — instructions router NAME executes while
    # send_requests SEND-ARGS runs (its N requests), per request, into CG_COUNT.
    count() {
        local name=$1 vpid=${PID_OF[$1]} file total
        shift
        cg_control -z "$vpid"
        send_requests "$@"
        cg_control -d "$vpid"
        CG_DUMP=$((CG_DUMP + 1))
        file=$WORK/callgrind.$name.$CG_DUMP
        for _ in $(seq 1 100); do [ -s "$file" ] && grep -q '^totals:' "$file" && break; sleep 0.2; done
        total=$(awk '/^totals:/ {print $2}' "$file")
        [ -n "$total" ] || die "callgrind_control did not make ${LABEL[$name]} (pid $vpid) dump its counts to $file"
        CG_TOTAL=$total
        CG_COUNT=$(awk -v t="$total" -v n="$3" 'BEGIN {printf "%.0f", t / n}')
    }
fi
if [ "$BENCH_COMPARE" = hive ] && [ "$BENCH_CALLGRIND" -gt 0 ]; then
    # Both routers, dedupe on (their defaults), the next user each request.
    say "counting instructions per request under callgrind: $BENCH_CALLGRIND requests of each query per router"
    CG_TOKENS=""
    [ "$MAX_USERS" -gt 1 ] && CG_TOKENS=$WORK/tokens.$MAX_USERS
    for r in router hive; do
        case $r in
            router) under_callgrind router start_router router "$ROUTER_PORT_B" true ;;
            hive) under_callgrind hive start_hive hive "$HIVE_PORT_B" true ;;
        esac
        send_requests "${PORT_OF[$r]}" "$HEAVY_BODY" 20 1 "$CG_TOKENS"
        send_requests "${PORT_OF[$r]}" "$PRODUCTS_BODY" 200 1 "$CG_TOKENS"
        for q in heavy products; do
            count "$r" "${PORT_OF[$r]}" "${BODY_OF[$q]}" "$BENCH_CALLGRIND" 1 "$CG_TOKENS"
            INSTR[$q.$r]=$CG_COUNT
            printf '  %-9s %-18s %12s instructions per request\n' "$q" "${LABEL[$r]}" "${INSTR[$q.$r]}" >&2
        done
        stop "$r"
    done
fi
if [ "$BENCH_COMPARE" = protections ] && [ "$BENCH_CALLGRIND" -gt 0 ]; then
    say "counting instructions per request under callgrind: $BENCH_CALLGRIND requests of each query per router"
    for r in "${ROUTERS[@]}"; do
        under_callgrind "$r" start_protections_router "$r"
        send_requests "${PORT_OF[$r]}" "$HEAVY_BODY" 20
        send_requests "${PORT_OF[$r]}" "$PRODUCTS_BODY" 200
        for q in heavy products products_joined; do
            joined_before=$(metric_sum "${PORT_OF[$r]}" router_query_dedupe_hits_total)
            if [ "$q" = products_joined ]; then
                count "$r" "${PORT_OF[$r]}" "$PRODUCTS_BODY" "$BENCH_CALLGRIND" "$BENCH_CONNECTIONS"
            else
                count "$r" "${PORT_OF[$r]}" "${BODY_OF[$q]}" "$BENCH_CALLGRIND"
            fi
            joined=$(($(metric_sum "${PORT_OF[$r]}" router_query_dedupe_hits_total) - joined_before))
            INSTR[$q.$r]=$CG_COUNT
            JOINED[$q.$r]=$(awk -v j="$joined" -v n="$BENCH_CALLGRIND" 'BEGIN {printf "%.0f %%", j / n * 100}')
            printf '  %-15s %-18s %12s instructions per request, %s joined\n' "$q" "${LABEL[$r]}" \
                "${INSTR[$q.$r]}" "${JOINED[$q.$r]}" >&2
            if [ "$q" = products_joined ]; then
                # What one joined request costs: the executed ones are
                # taken out at what an execution cost one at a time.
                [ "$joined" -gt 0 ] || die "${LABEL[$r]}: none of $BENCH_CALLGRIND products requests $BENCH_CONNECTIONS at a time joined another"
                INSTR[joined_only.$r]=$(awk -v t="$CG_TOTAL" -v n="$BENCH_CALLGRIND" -v j="$joined" \
                    -v e="${INSTR[products.$r]}" 'BEGIN {printf "%.0f", (t - (n - j) * e) / j}')
                JOINED[joined_only.$r]="100 %"
                printf '  %-15s %-18s %12s instructions per joined request\n' joined_only "${LABEL[$r]}" \
                    "${INSTR[joined_only.$r]}" >&2
            fi
        done
        stop "$r"
    done
fi

# ------------------------------------------------------------------ report

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "n/a"}'; }

report_hive() {
    local users sc t k
    echo
    echo "Router load benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, shopgraph $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- router src subgraphs 2>/dev/null || echo '+dirty'), hive-router $HIVE_VERSION"
    echo "wrk: ${BENCH_SECONDS}s, $BENCH_CONNECTIONS connections, $BENCH_THREADS threads; subgraphs on SQLite"
    for users in "${USER_COUNTS[@]}"; do
        echo
        if [ "$users" = 1 ]; then
            echo "one user: heavy as the bench user (20 lines, 15 payments, 40 notifications; $HEAVY_BYTES bytes), products anonymous"
        else
            echo "$users users, the next user's token on every request: heavy as that user ($USER_LINES lines, $USER_PAYMENTS payments, $((USER_NOTIFICATIONS + USER_PAYMENTS)) notifications;"
            echo "$USER_HEAVY_BYTES bytes for user-1), products signed in as that user (straight to the product subgraph too)"
        fi
        echo
        printf '%-14s %-22s %9s %8s %8s %8s %10s %12s %13s %10s\n' scenario target "req/s" "p50 ms" "p95 ms" "p99 ms" "sub req/op" "router µs/op" "subgr. µs/op" "other CPU"
        printf '%-14s %-22s %9s %8s %8s %8s %10s %12s %13s %10s\n' -------------- ---------------------- --------- -------- -------- -------- ---------- ------------ ------------- ----------
        for sc in heavy products; do
            local targets=("${ROUTERS[@]}")
            [ "$sc" = products ] && targets=(direct "${ROUTERS[@]}")
            for t in "${targets[@]}"; do
                k=$sc@$users.$t
                [ -n "${RES[$k.rps]:-}" ] || continue
                printf '%-14s %-22s %9s %8s %8s %8s %10s %12s %13s %10s\n' "$sc@$users" "${LABEL[$t]}" \
                    "${RES[$k.rps]}" "${RES[$k.p50_ms]}" "${RES[$k.p95_ms]}" "${RES[$k.p99_ms]}" \
                    "${RES[$k.sg_per_op]}" "${RES[$k.r_cpu_us]}" "${RES[$k.sg_cpu_us]}" "${RES[$k.other]}"
            done
        done
        echo
        echo "$users user(s), shopgraph ÷ hive:      req/s   p95    router CPU/op"
        for sc in heavy products; do
            k=$sc@$users
            printf '  %-8s dedupe on (default)    %5s   %5s   %5s\n' "$sc" \
                "$(ratio "${RES[$k.router.rps]:-}" "${RES[$k.hive.rps]:-}")" \
                "$(ratio "${RES[$k.router.p95_ms]:-}" "${RES[$k.hive.p95_ms]:-}")" \
                "$(ratio "${RES[$k.router.r_cpu_us]:-}" "${RES[$k.hive.r_cpu_us]:-}")"
            [ "$BENCH_HIVE_NODEDUPE" = 1 ] &&
                printf '  %-8s dedupe off             %5s   %5s   %5s\n' "$sc" \
                    "$(ratio "${RES[$k.router_nodedupe.rps]:-}" "${RES[$k.hive_nodedupe.rps]:-}")" \
                    "$(ratio "${RES[$k.router_nodedupe.p95_ms]:-}" "${RES[$k.hive_nodedupe.p95_ms]:-}")" \
                    "$(ratio "${RES[$k.router_nodedupe.r_cpu_us]:-}" "${RES[$k.hive_nodedupe.r_cpu_us]:-}")"
        done
        k=products@$users
        echo "  products via the router ÷ straight to the product subgraph: shopgraph $(ratio "${RES[$k.router.rps]:-}" "${RES[$k.direct.rps]:-}"), hive $(ratio "${RES[$k.hive.rps]:-}" "${RES[$k.direct.rps]:-}")"
    done
    if [ "$BENCH_CALLGRIND" -gt 0 ]; then
        echo
        echo "router instructions per request (callgrind, the router process only, $BENCH_CALLGRIND requests of each query one at a"
        echo "time over one connection after a warm-up, the next of $MAX_USERS users' tokens on each; repeatable, unlike req/s):"
        echo
        printf '%-9s %-22s %16s %14s\n' query router "instructions/op" "÷ hive"
        printf '%-9s %-22s %16s %14s\n' --------- ---------------------- ---------------- --------------
        for sc in heavy products; do
            for t in router hive; do
                printf '%-9s %-22s %16s %14s\n' "$sc" "${LABEL[$t]}" "${INSTR[$sc.$t]:-}" \
                    "$(ratio "${INSTR[$sc.$t]:-}" "${INSTR[$sc.hive]:-}")"
            done
        done
    fi
    echo
}

# stats VALUES... — "mean min max ci95" of the numbers given; ci95 is the
# half-width of the 95 % confidence interval of the mean (Student's t,
# n − 1 degrees of freedom; 0 for a single value).
stats() {
    awk 'BEGIN {split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", t, " ")
        for (i = 1; i < ARGC; i++) {v[i] = ARGV[i] + 0; s += v[i]; if (i == 1 || v[i] < lo) lo = v[i]; if (i == 1 || v[i] > hi) hi = v[i]}
        n = ARGC - 1; if (!n) {print "nan nan nan nan"; exit}
        m = s / n; for (i = 1; i <= n; i++) ss += (v[i] - m) ^ 2
        ci = 0; if (n > 1) {tv = (n - 1 <= 30 ? t[n - 1] : 2.042); ci = tv * sqrt(ss / (n - 1)) / sqrt(n)}
        printf "%.6f %.6f %.6f %.6f\n", m, lo, hi, ci}' "$@"
}

# bare_first — the protections-mode routers, the baseline (bare) first.
bare_first() {
    local t
    echo bare
    for t in "${ROUTERS[@]}"; do
        if [ "$t" != bare ]; then echo "$t"; fi
    done
}

report_protections() {
    echo
    echo "Protections overhead — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, shopgraph $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- router src subgraphs 2>/dev/null || echo '+dirty')"
    [ "$BENCH_ROUNDS" -gt 0 ] && report_protections_load
    [ "$BENCH_CALLGRIND" -gt 0 ] && report_protections_instructions
    echo
}

# The callgrind counts: instructions the router executes per request.
report_protections_instructions() {
    local q t line="router instructions per request, protected vs bare (callgrind):"
    echo
    echo "router instructions per request (callgrind, the router process only; $BENCH_CALLGRIND requests per query after a"
    echo "warm-up, one at a time over one connection: repeatable to about 0.3 %; then products $BENCH_CONNECTIONS at a time,"
    echo "\"products ($BENCH_CONNECTIONS)\", where as under wrk most requests join an identical query in flight: those rows move"
    echo "by ~8 % with each point of the joined share, as one execution costs as much as ~8 joined requests; \"joined only\""
    echo "takes the executed ones out at their one-at-a-time cost, leaving what one joined request costs. Under"
    echo "valgrind the 1 s health checks run ~50× more often per request than under load, and count as protected work):"
    echo
    printf '%-15s %-18s %16s %12s %8s\n' query router "instructions/op" "vs bare" joined
    printf '%-15s %-18s %16s %12s %8s\n' --------------- ------------------ ---------------- ------------ --------
    for q in heavy products products_joined joined_only; do
        local name=$q
        [ "$q" = products_joined ] && name="products ($BENCH_CONNECTIONS)"
        [ "$q" = joined_only ] && name="joined only"
        for t in $(bare_first); do
            local vs="(baseline)"
            [ "$t" != bare ] && vs=$(awk -v p="${INSTR[$q.$t]}" -v b="${INSTR[$q.bare]}" 'BEGIN {printf "%+.2f %%", (p / b - 1) * 100}')
            printf '%-15s %-18s %16s %12s %8s\n' "$name" "${LABEL[$t]}" "${INSTR[$q.$t]}" "$vs" "${JOINED[$q.$t]}"
            [ "$t" = protected ] && line+=" $name $vs;"
        done
    done
    echo
    echo "${line%;}"
}

# The load test: req/s, latency and router CPU per round, then the overhead.
report_protections_load() {
    local sc t r round
    echo "wrk: ${BENCH_SECONDS}s per run, $BENCH_CONNECTIONS connections, $BENCH_THREADS threads, ${BENCH_WARMUP_SECONDS}s warm-up; $BENCH_ROUNDS rounds, ABBA order;"
    if [ "$MAX_USERS" -gt 1 ]; then
        echo "every request as the next of $MAX_USERS users (bearer tokens rotated), Origin $BENCH_ORIGIN; dedupe $BENCH_DEDUPE; subgraphs on SQLite"
    else
        echo "every request as the bench user (bearer token), Origin $BENCH_ORIGIN; dedupe $BENCH_DEDUPE; subgraphs on SQLite; heavy answer $HEAVY_BYTES bytes"
    fi
    echo
    printf '%-9s %5s %-18s %9s %8s %8s %8s %10s %12s %13s %10s\n' query round target "req/s" "p50 ms" "p95 ms" "p99 ms" "sub req/op" "router µs/op" "subgr. µs/op" "other CPU"
    printf '%-9s %5s %-18s %9s %8s %8s %8s %10s %12s %13s %10s\n' --------- ----- ------------------ --------- -------- -------- -------- ---------- ------------ ------------- ----------
    for sc in heavy products; do
        for round in $(seq 1 "$BENCH_ROUNDS"); do
            for t in "${ROUTERS[@]}"; do
                local k=$sc-$round.$t
                [ -n "${RES[$k.rps]:-}" ] || continue
                printf '%-9s %5s %-18s %9s %8s %8s %8s %10s %12s %13s %10s\n' "$sc" "$round" "${LABEL[$t]}" \
                    "${RES[$k.rps]}" "${RES[$k.p50_ms]}" "${RES[$k.p95_ms]}" "${RES[$k.p99_ms]}" \
                    "${RES[$k.sg_per_op]}" "${RES[$k.r_cpu_us]}" "${RES[$k.sg_cpu_us]}" "${RES[$k.other]}"
            done
        done
    done
    echo
    echo "summary, mean over $BENCH_ROUNDS rounds; overhead = 1 − protected/bare req/s and CPU = router µs/op ÷ bare − 1,"
    echo "each paired within a round, then averaged: mean ± 95 % confidence interval (min..max over the rounds):"
    echo
    printf '%-9s %-18s %9s %8s %12s %32s %30s\n' query router "req/s" "p99 ms" "router µs/op" "throughput overhead" "router CPU/op"
    printf '%-9s %-18s %9s %8s %12s %32s %30s\n' --------- ------------------ --------- -------- ------------ -------------------------------- ------------------------------
    VERDICT=()
    for sc in heavy products; do
        for t in $(bare_first); do
            local rps=() p99=() cpu=() over=() cpuover=()
            for round in $(seq 1 "$BENCH_ROUNDS"); do
                local k=$sc-$round.$t b=$sc-$round.bare
                [ -n "${RES[$k.rps]:-}" ] || continue
                rps+=("${RES[$k.rps]}")
                p99+=("${RES[$k.p99_ms]}")
                cpu+=("${RES[$k.r_cpu_us]}")
                if [ "$t" != bare ] && [ -n "${RES[$b.rps]:-}" ]; then
                    over+=("$(awk -v p="${RES[$k.rps]}" -v b="${RES[$b.rps]}" 'BEGIN {printf "%.6f", (b > 0 ? 1 - p / b : 0)}')")
                    cpuover+=("$(awk -v p="${RES[$k.r_cpu_us]}" -v b="${RES[$b.r_cpu_us]}" 'BEGIN {printf "%.6f", (b > 0 ? p / b - 1 : 0)}')")
                fi
            done
            [ ${#rps[@]} -gt 0 ] || continue
            local o="(baseline)" c="(baseline)"
            if [ ${#over[@]} -gt 0 ]; then
                o=$(stats "${over[@]}" | awk '{printf "%.1f ± %.1f %% (%.1f..%.1f)", $1 * 100, $4 * 100, $2 * 100, $3 * 100}')
                c=$(stats "${cpuover[@]}" | awk '{printf "%+.1f ± %.1f %% (%+.1f..%+.1f)", $1 * 100, $4 * 100, $2 * 100, $3 * 100}')
                [ "$t" = protected ] && VERDICT+=("$sc $(stats "${over[@]}" | awk '{printf "%.1f %.1f", $1 * 100, $4 * 100}')")
            fi
            printf '%-9s %-18s %9s %8s %12s %32s %30s\n' "$sc" "${LABEL[$t]}" \
                "$(stats "${rps[@]}" | awk '{printf "%.1f", $1}')" "$(stats "${p99[@]}" | awk '{printf "%.2f", $1}')" \
                "$(stats "${cpu[@]}" | awk '{printf "%.0f", $1}')" "$o" "$c"
        done
    done
    echo
    local v line="issue 6 target, protected vs bare throughput overhead < 5 %:"
    local pass=1
    local query mean ci sure=1
    for v in "${VERDICT[@]}"; do
        read -r query mean ci <<<"$v"
        line+=" $query $mean ± $ci %"
        awk -v o="$mean" 'BEGIN {exit !(o >= 5)}' && pass=0
        awk -v o="$mean" -v c="$ci" 'BEGIN {exit !(o + c >= 5)}' && sure=0
    done
    if [ "$pass" = 0 ]; then
        echo "$line — NOT met"
    elif [ "$sure" = 1 ]; then
        echo "$line — met (the whole confidence interval is below 5 %)"
    else
        echo "$line — met on the mean; the confidence interval reaches 5 % (more BENCH_ROUNDS narrow it)"
    fi
    if [ "$WITH_REDIS" = 1 ] && [ "$REDIS_FALLBACKS" != 0 ]; then
        echo "note: protected + Redis took $REDIS_FALLBACKS rate-limit decisions locally (Redis slower than"
        echo "RATE_LIMIT_REDIS_TIMEOUT, then the 1 s back-off): its figures partly measure the local limiter."
    fi
}

report_common() {
    echo "subgraph requests per heavy query (20 sequential queries):"
    for r in "${ROUTERS[@]}"; do printf '  %-18s %s\n' "${LABEL[$r]}" "${FETCHES[$r]}"; done
    echo
    echo "router memory (VmRSS, MiB):"
    printf '  %-18s %8s %8s %8s\n' router "at rest" "peak" "after"
    for r in "${ROUTERS[@]}"; do
        printf '  %-18s %8s %8s %8s\n' "${LABEL[$r]}" "$(mib "${RSS_REST[$r]}")" "$(mib "${RSS_PEAK[$r]}")" "$(mib "${RSS_AFTER[$r]}")"
    done
    echo
    echo "sub req/op: subgraph HTTP requests per router request under load (graphql_requests_total);"
    echo "µs/op: CPU time (user+sys) of the router process / of the four subgraphs per request."
    echo "other CPU: cores busy with processes outside this benchmark during the run (noise; $(nproc) cores in all)."
    if [ -n "$NOISY" ]; then
        echo "WARNING: other processes used > 0.25 core during:$NOISY — rerun on a quiet machine for comparable numbers."
    fi
}

{
    if [ "$BENCH_COMPARE" = protections ]; then report_protections; else report_hive; fi
    report_common
}

# BENCH_PERF=1: where each router spends its CPU (flat profile, self time).
for run in "${PERF_REPORTS[@]}"; do
    [ -s "$WORK/perf.$run.data" ] || continue
    printf '\nperf, %s: top symbols by self CPU\n' "$run"
    perf report -i "$WORK/perf.$run.data" --no-children -g none --sort dso,symbol --stdio 2>/dev/null |
        grep -v -e '^#' -e '^$' | sed -E 's/[[:space:]]+(-[[:space:]]+)*$//' |
        awk -v n="${BENCH_PERF_TOP:-30}" 'NR <= n {print substr($0, 1, 160)}' || true
done

if [ ${#FAILURES[@]} -gt 0 ]; then
    printf '\nFAILED runs (errors under load):\n' >&2
    for f in "${FAILURES[@]}"; do printf '  %s\n' "$f" >&2; done
    exit 1
fi
