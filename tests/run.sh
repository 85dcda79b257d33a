#!/usr/bin/env bash
# The full test suite, from a fresh machine of the rust-svc kind:
# installs or starts what the tests need, then runs format and lint checks,
# unit tests and the integration tests against real servers.
#
#   tests/run.sh            # everything
#   tests/run.sh -- NAME    # only tests whose name contains NAME
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

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

ensure_rust_components() {
    for component in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
            say "installing rust component ${component}"
            rustup component add "${component}"
        fi
    done
}

# PostgreSQL: the integration tests create and drop their own databases on
# the server at TEST_POSTGRES_URL (default: local server, user postgres).
ensure_postgres() {
    if [ -n "${TEST_POSTGRES_URL:-}" ]; then
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        say "installing PostgreSQL"
        apt_install postgresql postgresql-client
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        say "starting PostgreSQL"
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 1
        done
    fi
    if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
        # A fresh Debian install asks for a password over TCP: give the
        # postgres role a known one, for this machine's tests only.
        if as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'shopgraph-test'\"" >/dev/null 2>&1 \
            && PGPASSWORD=shopgraph-test psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
            export TEST_POSTGRES_URL="postgres://postgres:shopgraph-test@127.0.0.1:5432/postgres"
            return
        fi
        echo "PostgreSQL at 127.0.0.1:5432 does not accept user postgres without a password." >&2
        echo "Set TEST_POSTGRES_URL=postgres://USER:PASSWORD@HOST:PORT/DB to a role that may CREATE DATABASE." >&2
        exit 1
    fi
}

# MariaDB: the payment subgraph's production store; tests create and drop
# their own databases on the server at TEST_MARIADB_URL (default: local
# server, root without a password).
ensure_mariadb() {
    if [ -n "${TEST_MARIADB_URL:-}" ]; then
        return
    fi
    if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
        say "installing MariaDB"
        apt_install mariadb-server mariadb-client
    fi
    if ! mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root status >/dev/null 2>&1; then
        say "starting MariaDB"
        as_root mkdir -p /run/mysqld
        as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        for _ in $(seq 1 30); do
            mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root status >/dev/null 2>&1 && break
            sleep 1
        done
    fi
    if ! mysql --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; then
        # A fresh install lets root in over the socket only: add a TCP root
        # without a password, for this machine's tests only.
        as_root mysql -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" >/dev/null 2>&1 || true
    fi
    if ! mysql --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; then
        echo "MariaDB at 127.0.0.1:3306 does not accept root without a password over TCP." >&2
        echo "Set TEST_MARIADB_URL=mysql://USER:PASSWORD@HOST:PORT/DB to a user that may CREATE DATABASE." >&2
        exit 1
    fi
}

# Redis: the router's shared rate-limit budget and persisted queries are
# tested against a real server at TEST_REDIS_URL (default: local server).
# Tests use their own key prefixes and delete their keys; the fault tests
# that kill Redis start a private server of their own.
ensure_redis() {
    if [ -n "${TEST_REDIS_URL:-}" ]; then
        return
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        say "installing Redis"
        apt_install redis-server
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        say "starting Redis"
        as_root mkdir -p /var/lib/redis /var/log/redis
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
            --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        for _ in $(seq 1 30); do
            redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
            sleep 1
        done
    fi
}

# Node.js runs the schema composition and breaking-change check.
ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        say "installing Node.js"
        apt_install nodejs npm
    fi
}

# The Kafka-protocol test broker (tansu, pinned and checksummed), the S3
# server it keeps its data in (moto, hash-pinned wheels in a virtualenv),
# and the Node clients the subscription tests drive (graphql-ws, and
# Apollo Client for multipart HTTP subscriptions).
ensure_event_test_tools() {
    if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
        say "installing python3-venv"
        apt_install python3-venv
    fi
    say "test broker: $(tests/kafka-broker.sh install)"
    if [ ! -d tests/subscriptions/node_modules/graphql-ws ] \
        || [ ! -d tests/subscriptions/node_modules/@apollo/client ]; then
        (cd tests/subscriptions && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

# Debian's Chromium for the storefront's browser tests (Playwright drives
# it; its own browser downloads are not reachable from CI).
ensure_chromium() {
    if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        say "installing Chromium"
        apt_install chromium
    fi
}

# librdkafka links the system OpenSSL (Kafka TLS and SASL), found with
# pkg-config; the Kafka TLS test puts socat's TLS listener in front of the
# test broker and makes its certificates with the openssl tool.
ensure_build_libraries() {
    local missing=()
    pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev pkg-config)
    command -v socat >/dev/null 2>&1 || missing+=(socat)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

ensure_rust_components
ensure_build_libraries
ensure_postgres
ensure_mariadb
ensure_redis
ensure_node
ensure_event_test_tools
ensure_chromium

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "schema check"
schema/check.sh

say "storefront check"
web-demo/check.sh

say "deploy check"
deploy/check.sh

say "cargo test"
# The last thing cargo prints is the (empty) doc-test run of the last
# crate; close with the totals of every test binary instead.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"

# The storefront in a real browser (under a minute): the debug binary
# `cargo test` just built runs `dev` on free ports, driven by Playwright in
# Chromium. Only for the whole suite, not a filtered run.
if [ "$#" -eq 0 ] && [ "${SKIP_BROWSER_TESTS:-0}" != 1 ]; then
    say "browser tests (storefront, GraphiQL)"
    # One file at a time: each starts its own `dev`.
    SHOPGRAPH_BIN="${CARGO_TARGET_DIR:-target}/debug/shopgraph" \
        node --test --test-concurrency=1 --test-reporter=spec web-demo/e2e/ || status=$?
fi

# The compose stack on a Docker daemon of its own (short CI mode, about
# 2 minutes once its base images are cached, 3 on a fresh machine): image
# built, `docker compose up`, smoke test from a container, a replica killed
# under load; the long mode is `deploy/compose/ci/run.sh long`. Only for
# the whole suite, not a filtered run.
if [ "$#" -eq 0 ] && [ "${SKIP_COMPOSE:-0}" != 1 ]; then
    say "compose stack (short CI mode)"
    deploy/compose/ci/run.sh || status=$?
fi

# Fuzzing, short mode (about a minute of runs once built; the long mode is
# `tests/fuzz.sh long`). Only for the whole suite, not a filtered run.
if [ "$#" -eq 0 ] && [ "${SKIP_FUZZ:-0}" != 1 ]; then
    say "fuzzing (short CI mode)"
    tests/fuzz.sh || status=$?
fi
exit "$status"
