#!/usr/bin/env bash
# `/predict` reading entity state from Redis beside the embedded store (docs/benchmarks.md,
# "/predict: Redis online store beside the embedded store"). One data directory with
# 200,000 events of 2,000 users and a logistic champion; the same events are also
# ingested into Redis; two release `serve` processes run on it, one per store, and wrk
# loads them in alternating rounds with users drawn at random (bench/predict_users.lua),
# /health of the embedded one as the control. Usage: bench/predict_online_store.sh [ROUNDS]
# Needs a release build in $CARGO_TARGET_DIR, wrk, Redis at REDIS_HOST:REDIS_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
bench=$PWD/bench
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
driftline="$target/release/driftline"
redis_host=${REDIS_HOST:-127.0.0.1}
redis_port=${REDIS_PORT:-6379}
prefix="bench-predict-$$:"
work=$(mktemp -d /tmp/driftline-predict-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    redis-cli -h "$redis_host" -p "$redis_port" --scan --pattern "$prefix*" \
        | xargs -r -n 1000 redis-cli -h "$redis_host" -p "$redis_port" DEL >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
printf '[online_store]\nbackend = "redis"\n\n[redis]\nhost = "%s"\nport = %s\nkey_prefix = "%s"\n' \
    "$redis_host" "$redis_port" "$prefix" >redis.toml
"$driftline" gen --count 200000 --users 2000 --seed 5 --out events.jsonl >/dev/null
"$driftline" ingest --from events.jsonl >/dev/null 2>&1
"$driftline" --config redis.toml --data-dir redis-data ingest --from events.jsonl >/dev/null 2>&1
MIN_ROC_AUC=0 MIN_AVG_PRECISION=0 "$driftline" train >/dev/null 2>&1
# The Redis replica reads the same registry and artifacts; only its online store differs.
"$driftline" serve --addr 127.0.0.1:18181 >embedded.log 2>&1 &
pids+=($!)
"$driftline" --config redis.toml serve --addr 127.0.0.1:18182 >redis.log 2>&1 &
pids+=($!)
for port in 18181 18182; do
    until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
done
sizes=$(redis-cli -h "$redis_host" -p "$redis_port" --scan --pattern "${prefix}state:*" | awk "NR <= 500" \
    | while read -r key; do redis-cli -h "$redis_host" -p "$redis_port" STRLEN "$key"; done)
echo "$sizes" | awk '{ n++; s += $1 } END { printf "Redis values: %d sampled, mean %.0f bytes\n", n, s / n }'
for port in 18181 18182; do # same answer from both stores for a user with state
    curl -s -XPOST -H 'Content-Type: application/json' "http://127.0.0.1:$port/predict" \
        -d '{"user_id":"user-00042","event":{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}'
    echo
done

run() { # label, wrk arguments...
    local label=$1
    shift
    wrk -t2 -c64 -d10s --latency "$@" >wrk.txt
    awk -v l="$label" '
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "%-24s %10.0f req/s  p50 %-8s p99 %-8s non-2xx %s\n", l, rps, p50, p99, bad + 0 }' wrk.txt
}
degraded() {
    curl -s http://127.0.0.1:18182/metrics | awk '/^driftline_online_store_degraded_total / { print $2 + 0 }'
}
echo "load: $(uptime)"
for round in $(seq 1 "$rounds"); do
    echo "round $round"
    run "/health (control)" http://127.0.0.1:18181/health
    run "/predict embedded" -s "$bench/predict_users.lua" http://127.0.0.1:18181/predict
    before=$(degraded)
    run "/predict Redis" -s "$bench/predict_users.lua" http://127.0.0.1:18182/predict
    echo "  answered with request-only features (Redis too slow or down): $(($(degraded) - before))"
done
echo "load: $(uptime)"
curl -s http://127.0.0.1:18182/metrics | grep -E '^driftline_online_store_(up|degraded_total|errors_total)'
