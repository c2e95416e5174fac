#!/usr/bin/env bash
# Kafka ingest throughput (docs/benchmarks.md, "Kafka → Redis ingest"): one topic of
# 1,000,000 generated events, read in alternating rounds by
#   1. a plain rdkafka consumer (the control: joins a group, reads to the end, nothing else),
#   2. `driftline ingest --from kafka` with the embedded online store,
#   3. `driftline ingest --from kafka` writing entity state to Redis,
# each on a fresh consumer group and data directory (and Redis key prefix), so every run
# reads the whole topic. Usage: bench/kafka_ingest.sh [ROUNDS] [EVENTS]
# Needs: a release build in $CARGO_TARGET_DIR (cargo build --release --workspace --bins
# --examples), a Kafka-API broker (.ci/services/kafka.sh starts tansu; or set
# BROKERS=host:port), Redis at REDIS_HOST:REDIS_PORT (default 127.0.0.1:6379).
# CONTROL_DRIFTLINE=path: also run the Redis ingest with that binary in every round (an
# earlier build, say), beside this one's.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-1000000}
if [ -z "${BROKERS:-}" ]; then
    # shellcheck source=/dev/null
    source .ci/services/kafka.sh >/dev/null
    BROKERS=$DRIFTLINE_TEST_KAFKA_BROKERS
fi
redis_host=${REDIS_HOST:-127.0.0.1}
redis_port=${REDIS_PORT:-6379}
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
driftline="$target/release/driftline"
plain="$target/release/examples/kafka_plain_consumer"
work=$(mktemp -d /tmp/driftline-kafka-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
topic="bench-ingest-$$-$(date +%s)"
cd "$work"

tansu_bin=${TANSU:-$HOME/.cargo/bin/tansu}
"$tansu_bin" topic create "$topic" --broker "tcp://$BROKERS" --partitions 3 >/dev/null
echo "producing $events events to $topic on $BROKERS"
REDPANDA_BROKERS=$BROKERS EVENT_TOPIC=$topic "$driftline" gen --count "$events" --seed 11 \
    --users 2000 --to kafka >/dev/null

redis_cpu() { # CPU seconds redis-server has used so far (0 when it is not local)
    local pid
    pid=$(pgrep -o -x redis-server || true)
    [ -n "$pid" ] || { echo 0; return; }
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat"
}

redis_calls() { # how often the Redis server has run command $1 so far
    redis-cli -h "$redis_host" -p "$redis_port" INFO commandstats \
        | awk -F'[:=,]' -v c="cmdstat_$1" '$1 == c { n = $3 } END { print n + 0 }'
}

measure() { # label, command...: prints wall seconds, events/s and CPU seconds
    local label=$1
    shift
    /usr/bin/time -f "%e %U %S" -o time.txt "$@" >out.txt 2>err.txt || {
        cat err.txt >&2
        exit 1
    }
    read -r wall user sys <time.txt
    awk -v l="$label" -v w="$wall" -v u="$user" -v s="$sys" -v n="$events" \
        'BEGIN { printf "%-28s %7.2f s  %9.0f events/s  CPU %5.2f s\n", l, w, n / w, u + s }'
}

redis_run() { # label, binary, run name: one Redis ingest, with redis-server's CPU and calls
    local label=$1 binary=$2 run=$3
    printf '[kafka]\ngroup = "redis-%s-%s"\n\n[online_store]\nbackend = "redis"\n\n[redis]\nhost = "%s"\nport = %s\nkey_prefix = "bench-%s-%s:"\n' \
        "$run" "$$" "$redis_host" "$redis_port" "$$" "$run" >redis.toml
    local before sets evals
    before=$(redis_cpu)
    sets=$(redis_calls set)
    evals=$(redis_calls eval)
    REDPANDA_BROKERS=$BROKERS EVENT_TOPIC=$topic measure "$label" \
        "$binary" --config redis.toml --data-dir "redis-$run" ingest --from kafka
    awk -v a="$before" -v b="$(redis_cpu)" 'BEGIN { printf "%-28s CPU %5.2f s (redis-server)\n", "", b - a }'
    echo "                             $(($(redis_calls set) - sets)) SETs in $(($(redis_calls eval) - evals)) EVALs"
    redis-cli -h "$redis_host" -p "$redis_port" --scan --pattern "bench-$$-$run:*" \
        | xargs -r -n 1000 redis-cli -h "$redis_host" -p "$redis_port" DEL >/dev/null
    rm -rf "redis-$run"
}

echo "load: $(uptime)"
for round in $(seq 1 "$rounds"); do
    echo "round $round"
    measure "plain consumer" "$plain" "$BROKERS" "$topic"
    printf '[kafka]\ngroup = "embedded-%s-%s"\n' "$round" "$$" >embedded.toml
    REDPANDA_BROKERS=$BROKERS EVENT_TOPIC=$topic measure "ingest (embedded store)" \
        "$driftline" --config embedded.toml --data-dir "embedded-$round" ingest --from kafka
    redis_run "ingest (Redis store)" "$driftline" "$round"
    if [ -n "${CONTROL_DRIFTLINE:-}" ]; then
        redis_run "ingest (Redis, control bin)" "$CONTROL_DRIFTLINE" "$round-control"
    fi
    rm -rf "embedded-$round"
done
echo "load: $(uptime)"
