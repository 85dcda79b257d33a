#!/usr/bin/env bash
# The compose stack for real, on a Docker daemon of its own (a step of
# tests/run.sh; the README's "Deploying" section):
#
#   1. a Docker daemon in a network namespace of its own (nsenter, so its
#      cgroups work), with a data root made for this run;
#   2. the local base image: `debootstrap --variant=minbase bookworm` with
#      ca-certificates, curl, libssl3 and tini baked in (no registry is
#      reachable here); the stores image: the same plus Debian's
#      PostgreSQL, MariaDB, Redis and jq; both trees cached as tarballs
#      under $SHOPGRAPH_COMPOSE_CI_HOME (keyed by their package lists);
#   3. the Shopgraph image, built from the Dockerfile on the local base
#      around the binary this checkout built (BINARY_FROM; the Rust build
#      stage needs a Rust image, which cannot be pulled here);
#   4. `docker compose up --wait` of the whole stack with the CI override
#      (compose.ci.yaml: the stores, the test broker and the test OTLP
#      receiver on the stores image), timed;
#   5. the smoke test from a container on the stack's network
#      (smoke.sh flow): browse, add, check out, a subscription on the other
#      router receives the notification, the checkout is one trace over
#      the router and every subgraph it crossed;
#   6. steady reads through both routers while a product replica's process
#      is killed (smoke.sh steady): no request may fail, and the replica
#      must come back (restart policy) healthy;
#   7. `down -v`, the daemon stopped by its PID, its namespace removed.
#
#   deploy/compose/ci/run.sh          # short CI mode: 20 s of steady load, one kill
#   deploy/compose/ci/run.sh long     # long mode: 120 s of steady load, a product
#                                     # replica killed every 20 s, in turn
#
# SHOPGRAPH_BIN names a built binary (else cargo builds it, a no-op after
# `cargo test`); the test broker comes from tests/kafka-broker.sh install.
set -euo pipefail
cd "$(dirname "$0")/../../.."

mode=${1:-short}
case "$mode" in
    short) steady_seconds=20 kill_every=5 ;;
    long) steady_seconds=120 kill_every=20 ;;
    *) echo "usage: $0 [short|long]" >&2; exit 2 ;;
esac

started=$(date +%s)
say() { printf 'compose: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# -- tools ---------------------------------------------------------------
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's client: it has BuildKit (another `docker` on PATH may not).
docker=/usr/bin/docker
compose="$(deploy/tools/venv.sh)/bin/docker-compose"
tansu=$(tests/kafka-broker.sh install)
if [ -z "${SHOPGRAPH_BIN:-}" ]; then
    cargo build --quiet --locked --bin shopgraph
    SHOPGRAPH_BIN="${CARGO_TARGET_DIR:-target}/debug/shopgraph"
fi
cargo build --quiet --locked -p otlp-receiver --bin otlp-receiver
receiver="${CARGO_TARGET_DIR:-target}/debug/otlp-receiver"

home="${SHOPGRAPH_COMPOSE_CI_HOME:-/var/tmp/shopgraph-compose-ci}"
mkdir -p "$home"
run=$(mktemp -d "$home/run.XXXXXX")
ns="shopgraph-compose-$$"
project="shopgraph-ci-$$"
daemon_pid=""
compose_cmd=("$compose" -p "$project" --project-directory deploy/compose
    -f deploy/compose/compose.yaml -f deploy/compose/ci/compose.ci.yaml)
# What compose.ci.yaml interpolates.
export SHOPGRAPH_IMAGE=shopgraph:ci CI_STORES_IMAGE=local/shopgraph-stores:ci \
    CI_TANSU_BIN="$tansu" CI_OTLP_RECEIVER_BIN="$(readlink -f "$receiver")" \
    CI_SECRETS_DIR="$run/secrets" LOG_LEVEL=warn

cleanup() {
    local status=$?
    if [ -n "$daemon_pid" ]; then
        if [ "$status" != 0 ]; then
            say "failed; the stack's logs:"
            "${compose_cmd[@]}" logs --no-color --tail=60 2>&1 | tail -n 400 || true
        fi
        "${compose_cmd[@]}" down -v --timeout 5 >/dev/null 2>&1 || true
        kill "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$daemon_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$daemon_pid" 2>/dev/null || true
    fi
    # The daemon leaves mounts (nsfs, overlays) under its roots.
    { grep -o " $run/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mount; do
        umount -l "$mount" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "$run"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- 1. the daemon -------------------------------------------------------
as_root ip netns add "$ns"
as_root ip -n "$ns" link set lo up
nsenter --net="/var/run/netns/$ns" dockerd \
    --data-root "$run/docker" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
    -H "unix://$run/docker.sock" >"$run/dockerd.log" 2>&1 &
daemon_pid=$!
export DOCKER_HOST="unix://$run/docker.sock"
for _ in $(seq 1 100); do
    "$docker" info >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$run/dockerd.log"; exit 1; }
    sleep 0.2
done
"$docker" info >/dev/null
say "daemon up ($(dockerd --version))"

# -- 2. base and stores images -------------------------------------------
TREE_VERSION=1
base_packages="ca-certificates curl libssl3 tini"
stores_packages="postgresql mariadb-server redis-server jq"
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
# tree NAME PACKAGES [FROM_TARBALL]: a cached tarball of a bookworm tree with
# PACKAGES installed (on FROM_TARBALL's tree, else a fresh debootstrap).
tree() {
    local name=$1 packages=$2 from=${3:-}
    local key
    # Bump TREE_VERSION when the preparation below changes.
    key=$(printf '%s|%s|%s|%s' "$TREE_VERSION" "$name" "$packages" "$from" | sha256sum | cut -c1-16)
    local tarball="$home/$name-$key.tar"
    if [ ! -s "$tarball" ]; then
        local dir="$run/tree-$name"
        if [ -n "$from" ]; then
            mkdir -p "$dir" && tar -C "$dir" -xf "$from"
        else
            debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$run/debootstrap.log" 2>&1 \
                || { tail -n 30 "$run/debootstrap.log"; exit 1; }
            # No service starts inside the tree while packages install.
            printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
            chmod +x "$dir/usr/sbin/policy-rc.d"
        fi
        chroot "$dir" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages \
            && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man" >"$run/apt-$name.log" 2>&1 \
            || { tail -n 30 "$run/apt-$name.log"; exit 1; }
        if [ "$name" = stores ]; then
            # Data directories the entrypoints fill on first start (the
            # packages' own clusters are not used); sockets' directory.
            chroot "$dir" sh -c 'rm -rf /var/lib/postgresql/* /etc/postgresql/* /var/lib/mysql/* \
                && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
                && install -d -o postgres -g postgres /var/run/postgresql'
        fi
        tar -C "$dir" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$dir"
        # Older trees of this name are stale.
        find "$home" -maxdepth 1 -name "$name-*.tar" ! -name "$(basename "$tarball")" -delete
    fi
    echo "$tarball"
}
base_tar=$(tree base "$base_packages")
stores_tar=$(tree stores "$stores_packages" "$base_tar")
"$docker" import - local/shopgraph-base:ci < "$base_tar" >/dev/null
"$docker" import - local/shopgraph-stores:ci < "$stores_tar" >/dev/null
say "base images imported ($(( $(date +%s) - started )) s in)"

# -- 3. the Shopgraph image ----------------------------------------------
mkdir -p "$run/binary/out"
# Debug info stripped: the image carries what runs.
strip -o "$run/binary/out/shopgraph" "$SHOPGRAPH_BIN"
tar -C "$run/binary" -c out | "$docker" import - local/shopgraph-binary:ci >/dev/null
DOCKER_BUILDKIT=1 "$docker" build -q \
    --build-arg BASE_IMAGE=local/shopgraph-base:ci \
    --build-arg BINARY_FROM=local/shopgraph-binary:ci \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t shopgraph:ci . >/dev/null
image_bytes=$("$docker" image inspect -f '{{.Size}}' shopgraph:ci)
say "image shopgraph:ci built: $((image_bytes / 1000000)) MB (base $(( $("$docker" image inspect -f '{{.Size}}' local/shopgraph-base:ci) / 1000000 )) MB, binary $(( $(stat -c %s "$run/binary/out/shopgraph") / 1000000 )) MB)"
user=$("$docker" image inspect -f '{{.Config.User}}' shopgraph:ci)
[ "$user" = "10001:10001" ] || { echo "the image runs as '$user', not 10001"; exit 1; }

# -- 4. up ---------------------------------------------------------------
deploy/compose/secrets.sh "$run/secrets" >/dev/null
ALICE_TOKEN=$(JWT_SECRET="$(cat "$run/secrets/jwt-secret")" "$SHOPGRAPH_BIN" token --user "smoke-$$" --ttl 1h)
up_started=$(date +%s)
if ! "${compose_cmd[@]}" up -d --no-build --wait --wait-timeout 300 >"$run/up.log" 2>&1; then
    tail -n 40 "$run/up.log"
    "${compose_cmd[@]}" ps -a
    exit 1
fi
up_seconds=$(( $(date +%s) - up_started ))
say "stack up and healthy in ${up_seconds} s (cold: fresh volumes, migrations, seed)"
"${compose_cmd[@]}" ps --format '{{.Service}}: {{.Status}}' | sed 's/^/compose:   /'

# -- 5. smoke ------------------------------------------------------------
# A container of the stores image on the stack's network, as a client in
# the same cluster would be.
smoke() {
    "$docker" run --rm --network "${project}_default" \
        -v "$(pwd)/deploy/compose/ci:/ci:ro" -e ALICE_TOKEN="$ALICE_TOKEN" \
        --entrypoint /ci/smoke.sh local/shopgraph-stores:ci "$@"
}
# Its verdict is its exit status: make sure a failure gets through.
if smoke no-such-mode >/dev/null 2>&1; then
    echo "the smoke container's failure does not reach this script"
    exit 1
fi
smoke flow

# -- 6. a replica's process killed under steady load ---------------------
kill_product() {
    local replica=$1
    # The service's process, not tini: the container exits as if it had
    # crashed, and the restart policy brings it back.
    "${compose_cmd[@]}" exec -T "$replica" sh -c \
        'for p in /proc/[0-9]*; do if tr "\0" " " < "$p/cmdline" 2>/dev/null | grep -q "^/usr/local/bin/shopgraph serve"; then kill -9 "${p#/proc/}"; fi; done'
    say "killed the shopgraph process of $replica"
}
smoke steady "$steady_seconds" &
load=$!
replicas=(product-1 product-2)
kills=0
elapsed=0
while [ $((elapsed + kill_every)) -lt "$steady_seconds" ]; do
    sleep "$kill_every"
    elapsed=$((elapsed + kill_every))
    kill_product "${replicas[$((kills % 2))]}"
    kills=$((kills + 1))
    [ "$mode" = short ] && break
done
wait "$load"
for replica in product-1 product-2; do
    container=$("${compose_cmd[@]}" ps -q "$replica")
    for _ in $(seq 1 150); do
        [ "$("$docker" inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] && break
        sleep 0.2
    done
    health=$("$docker" inspect -f '{{.State.Health.Status}} {{.RestartCount}}' "$container")
    [ "${health%% *}" = healthy ] || { echo "$replica did not come back: $health"; exit 1; }
    say "$replica: ${health%% *}, restarted ${health##* } time(s)"
done

# -- 7. down -------------------------------------------------------------
"${compose_cmd[@]}" down -v --timeout 10 >/dev/null 2>&1
say "ok ($mode mode, $kills kill(s) under load, $(( $(date +%s) - started )) s in all; stack up in ${up_seconds} s; image $((image_bytes / 1000000)) MB)"
