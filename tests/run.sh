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
        echo "PostgreSQL at 127.0.0.1:5432 does not accept user postgres without a password." >&2
        echo "Set TEST_POSTGRES_URL=postgres://USER:PASSWORD@HOST:PORT/DB to a role that may CREATE DATABASE." >&2
        exit 1
    fi
}

ensure_rust_components
ensure_postgres

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test"
cargo test --workspace --locked "$@"
