#!/usr/bin/env bash
# Fuzzes the router's hostile-input surface with cargo-fuzz (libFuzzer):
#
#   http_request   the HTTP request reader, then parse, limits, validation, planning
#   variables      variable coercion against every client operation's declarations
#   ws_message     graphql-transport-ws frame handling (init token, subscribe → prepare)
#   merge_project  the executor merging and projecting hostile subgraph answers
#
# Usage:
#   tests/fuzz.sh                 CI mode: build, then each target for FUZZ_SECONDS (15 s;
#                                 about a minute of fuzzing for the four)
#   tests/fuzz.sh long [SECONDS]  long mode: each target for SECONDS (default 3600), one after
#                                 another, keeping what it learns in FUZZ_WORK across runs
#   tests/fuzz.sh [long [S]] TARGET...   only these targets
#
# The targets live in fuzz/, a Cargo workspace of its own (the main build
# never sees libfuzzer-sys or the router's `fuzzing` feature). Seeds are in
# fuzz/corpus/<target> (read only); new inputs go to FUZZ_WORK
# (/var/tmp/shopgraph-fuzz/corpus/<target>), crashes to
# fuzz/artifacts/<target>/ — reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-…
# (from fuzz/), and turn it into a regression test in the normal suite.
#
# Knobs: FUZZ_SECONDS (15), FUZZ_WORK (/var/tmp/shopgraph-fuzz), FUZZ_SANITIZER
# (none: the router is safe Rust, where libFuzzer's panic detection is what
# finds bugs and ASan only slows every run; `address` to use it),
# FUZZ_TARGET_DIR (cargo's target dir, default FUZZ_WORK/target).
# Needs only stable Rust: libFuzzer's compiler flags are unstable, so the
# build runs with RUSTC_BOOTSTRAP=1; cargo-fuzz is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=ci
seconds=${FUZZ_SECONDS:-15}
if [ "${1:-}" = long ]; then
    mode=long
    shift
    seconds=3600
    if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
        seconds=$1
        shift
    fi
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(http_request variables ws_message merge_project)
fi
work=${FUZZ_WORK:-/var/tmp/shopgraph-fuzz}
sanitizer=${FUZZ_SANITIZER:-none}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$work/target}
export RUSTC_BOOTSTRAP=1

say() { printf '\n== %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

say "building the fuzz targets (sanitizer: $sanitizer)"
started=$(date +%s)
# `cargo fuzz build` takes one target or none (all of them).
if [ $# -eq 0 ]; then
    (cd fuzz && cargo fuzz build -s "$sanitizer")
else
    for target in "${targets[@]}"; do
        (cd fuzz && cargo fuzz build -s "$sanitizer" "$target")
    done
fi
say "built in $(($(date +%s) - started)) s"

failed=()
summary=()
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    mkdir -p "$corpus"
    log="$work/$target.log"
    say "$target: $mode run, $seconds s (log: $log)"
    set +e
    (cd fuzz && cargo fuzz run -s "$sanitizer" "$target" "$corpus" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
        >"$log" 2>&1
    status=$?
    set -e
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
    line="$target: ${runs:-?} executions in $seconds s, corpus $(find "$corpus" -type f | wc -l) inputs"
    if [ $status -ne 0 ]; then
        line="$line — FAILED (exit $status; see $log and fuzz/artifacts/$target/)"
        failed+=("$target")
        tail -n 40 "$log"
    fi
    summary+=("$line")
done

say "summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
