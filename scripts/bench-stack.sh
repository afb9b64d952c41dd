#!/usr/bin/env bash
# The whole-stack benchmark: the example broker in release, real MQTT
# publishers, storage on against storage off for each backend, in one run,
# beside the raw backend's batched rate; every stored message is checked.
#
#   scripts/bench-stack.sh [stack_bench options]
#   e.g. scripts/bench-stack.sh --backends redis,pgsql --messages 80000
#
# Starts the servers it needs with scripts/services.sh (unless their
# address variables point elsewhere), builds release binaries, runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh start redis postgres mariadb cassandra ferretdb >/dev/null
cargo build --release -p examples \
    --bin broker --bin stack_bench
exec target/release/stack_bench "$@"
