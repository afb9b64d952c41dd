#!/usr/bin/env bash
# The whole check: start the servers, then rustfmt, clippy and the tests.
# Prints the wall time of each step, and a summary at the end.
#
# A server whose address variable is set to something other than the local
# default is not started here; the tests use that address instead, e.g.
#   MONGO_URL=mongodb://user:pass@db.example:27017 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# A check builds each target once: incremental caches would only take disk
# (gigabytes per build of the workspace's many test binaries), and a full disk
# fails the build.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

STEPS=()
run_step() { # name cmd...
    local name=$1 start rc=0
    shift
    printf '\n==> %s: %s\n' "$name" "$*"
    start=$(date +%s.%N)
    "$@" || rc=$?
    local secs
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    STEPS+=("$(printf '%-10s %7ss  %s' "$name" "$secs" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)")")")
    printf '==> %s: %s s (exit %d)\n' "$name" "$secs" "$rc"
    if [[ $rc -ne 0 ]]; then
        summary
        exit "$rc"
    fi
}
summary() {
    printf '\n==> step times\n'
    printf '  %s\n' "${STEPS[@]}"
}

# Which local servers to start: all, except those pointed elsewhere.
services=()
non_default() { [[ -n ${!1:-} && ${!1} != "$2" ]]; }
non_default REDIS_URL redis://127.0.0.1:6379 || services+=(redis)
[[ -n ${REDIS_CLUSTER_NODES:-} ]] || services+=(redis-cluster)
non_default MYSQL_URL mysql://root:public@127.0.0.1:3306/mqtt || services+=(mariadb)
non_default PGSQL_URL postgres://root:public@127.0.0.1:5432/mqtt || services+=(postgres)
non_default CASSA_NODES 127.0.0.1:9042 || services+=(cassandra)
[[ -n ${CASSA_CLUSTER_NODES:-} ]] || services+=(cassandra-cluster)
non_default MONGO_URL mongodb://127.0.0.1:27017 || services+=(ferretdb)
# The TLS-only servers of the TLS tests (certificates under target/services/tls).
non_default MYSQL_TLS_URL mysql://root:public@127.0.0.1:3307/mqtt || services+=(mariadb-tls)
non_default MONGO_TLS_URL mongodb://127.0.0.1:27018 || services+=(ferretdb-tls)

if ((${#services[@]})); then
    run_step services bash scripts/services.sh "${services[@]}"
fi
run_step fmt cargo fmt --all -- --check
run_step clippy cargo clippy --workspace --all-targets --all-features -- -D warnings
run_step test cargo test --workspace --all-features
# The backends built without their optional features (tls, sentinel): they
# compile, lint clean, and refuse those keys with a clear error.
lean=(-p mqtt-storage-redis -p mqtt-storage-pgsql -p mqtt-storage-mysql -p mqtt-storage-cassa)
run_step lean cargo clippy --no-default-features "${lean[@]}" --lib --tests -- -D warnings
run_step lean-test cargo test --no-default-features "${lean[@]}" --lib
summary
