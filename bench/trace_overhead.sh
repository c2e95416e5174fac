#!/usr/bin/env bash
# What tracing costs `POST /predict`: a release `driftline serve` under
# `wrk -t2 -c64 -d10s --latency -s bench/predict.lua` with trace export off, on with 1% of
# traces sampled (OTEL_TRACES_SAMPLER=traceidratio, _ARG=0.01) and on with every trace
# sampled, exporting to `examples/otlp_sink.rs` (an OTLP/HTTP receiver that counts spans).
# Each round runs the three in turn, each on a freshly started server, with `/health` on
# the same server just before as the control; compare ratios within a round.
#
# Per run: requests/s, p50, p99, the server's CPU time per /predict request (utime+stime
# from /proc, so wrk's own CPU is not in it) and, with export on, the spans the sink
# received against those the server made (predict, validate, feature_lookup, model_score
# per sampled request), and the spans the export queue dropped
# (driftline_trace_spans_dropped_total from the server's /metrics).
#
#   bench/trace_overhead.sh                 # 3 rounds of 10 s runs
#   ROUNDS=5 DURATION=10s bench/trace_overhead.sh
#   NO_BUILD=1 bench/trace_overhead.sh      # binaries already in $CARGO_TARGET_DIR/release
#   BASE_DRIFTLINE=/tmp/driftline-old bench/trace_overhead.sh
#                                           # also runs that binary (base_off, base_sampled_1pct,
#                                           # base_all) in each round, to compare two builds
#
# Results: docs/benchmarks.md, "Tracing overhead".
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-3}"
duration="${DURATION:-10s}"
port="${PORT:-18080}"
sink_port="${SINK_PORT:-4318}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d /tmp/driftline-trace-bench.XXXXXX)"
driftline="$target/release/driftline"
sink="$target/release/examples/otlp_sink"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release --locked -p driftline --bin driftline --example otlp_sink
fi

# The data directory of docs/benchmarks.md's serving benchmark: 20,000 events of 200
# users, ingested, a logistic champion trained without the quality gates.
data="$work/data"
"$driftline" --data-dir "$data" gen --count 20000 --users 200 --to log >/dev/null
"$driftline" --data-dir "$data" ingest >/dev/null 2>&1
MIN_AVG_PRECISION=0 "$driftline" --data-dir "$data" train >/dev/null 2>&1

"$sink" "$sink_port" >"$work/sink.out" 2>&1 &
pids+=("$!")
sleep 1

# Spans the sink has received so far (it prints "N spans in M requests" as they change).
spans_received() {
    awk '/ spans in / { n = $1 } END { print n + 0 }' "$work/sink.out"
}

# CPU time (utime + stime, clock ticks) a process has used.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# `wrk` against a path; prints "requests/s p50 p99 requests" from its report.
load() {
    local path="$1"
    shift
    wrk -t2 -c64 -d"$duration" --latency "$@" "http://127.0.0.1:$port$path" | awk '
        /requests in/ { requests = $1 }
        /Requests\/sec/ { rate = $2 }
        $1 == "50%" { p50 = $2 }
        $1 == "99%" { p99 = $2 }
        END { print rate, p50, p99, requests }'
}

# One run: a server in `mode`, /health then /predict; prints a result line.
run() {
    local round="$1" mode="$2"
    local binary="$driftline"
    local -a otel=()
    if [[ "$mode" == base_* ]]; then
        binary="$BASE_DRIFTLINE"
    fi
    case "${mode#base_}" in
        off) ;;
        sampled_1pct) otel=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
                            OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
        all) otel=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
                   OTEL_TRACES_SAMPLER=always_on) ;;
    esac
    local before_spans
    before_spans="$(spans_received)"
    env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "${otel[@]}" \
        "$binary" --data-dir "$data" serve --addr "127.0.0.1:$port" 2>"$work/serve-$round-$mode.log" &
    local server="$!"
    until curl -fs "http://127.0.0.1:$port/ready" >/dev/null; do
        kill -0 "$server" 2>/dev/null || { cat "$work/serve-$round-$mode.log" >&2; exit 1; }
        sleep 0.2
    done
    local load_avg health predict ticks_before ticks_after
    load_avg="$(cut -d' ' -f1 /proc/loadavg)"
    health="$(load /health)"
    ticks_before="$(cpu_ticks "$server")"
    predict="$(load /predict -s bench/predict.lua)"
    ticks_after="$(cpu_ticks "$server")"
    local dropped
    dropped="$(curl -fs "http://127.0.0.1:$port/metrics" | awk '$1 == "driftline_trace_spans_dropped_total" { print $2 }')"
    kill -TERM "$server"
    wait "$server" || true
    sleep 1.5 # the sink prints its count once a second
    local received=$(( $(spans_received) - before_spans ))
    echo "$round $mode $load_avg $health $predict $(( ticks_after - ticks_before )) $received ${dropped:-n/a}"
}

echo "machine: $(nproc) cores, $(uname -r); start: $(uptime)" >&2
results="$work/results"
modes="off sampled_1pct all"
if [ -n "${BASE_DRIFTLINE:-}" ]; then
    modes="$modes base_off base_sampled_1pct base_all"
fi
for round in $(seq 1 "$rounds"); do
    for mode in $modes; do
        line="$(run "$round" "$mode")"
        echo "$line" >>"$results"
        echo "$line" >&2
    done
done
echo "end: $(uptime)" >&2

# The table: each /predict run beside its /health control and beside the round's export-off run.
ticks_per_second="$(getconf CLK_TCK)"
awk -v hz="$ticks_per_second" '
    function ms(latency) {
        if (latency ~ /us$/) return substr(latency, 1, length(latency) - 2) / 1000
        if (latency ~ /ms$/) return substr(latency, 1, length(latency) - 2) + 0
        if (latency ~ /s$/) return substr(latency, 1, length(latency) - 1) * 1000
        return latency
    }
    {
        round = $1; mode = $2
        rate[round, mode] = $8; p50[round, mode] = ms($9); p99[round, mode] = ms($10)
        line[NR] = $0
    }
    END {
        print "| round | export | load | /health req/s | /predict req/s | p50 | p99 | ÷ /health | ÷ export off, same binary (req/s, p99) | server CPU µs/req | spans made / received / dropped |"
        print "|---|---|---|---|---|---|---|---|---|---|---|"
        for (i = 1; i <= NR; i++) {
            split(line[i], f, " ")
            round = f[1]; mode = f[2]
            requests = f[11]; ticks = f[12]; received = f[13]; dropped = f[14]
            cpu = requests > 0 ? ticks / hz / requests * 1e6 : 0
            off = mode ~ /^base_/ ? "base_off" : "off"
            off_ratio = sprintf("%.2f, %.2fx", rate[round, mode] / rate[round, off], p99[round, mode] / p99[round, off])
            made = mode ~ /all$/ ? 4 * requests : (mode ~ /sampled_1pct$/ ? sprintf("~%d", 0.04 * requests) : "-")
            spans = mode ~ /off$/ ? "-" : made " / " received " / " dropped
            printf "| %s | %s | %s | %d | %d | %.2f ms | %.2f ms | %.2f | %s | %.1f | %s |\n",
                round, mode, f[3], f[4], rate[round, mode], p50[round, mode], p99[round, mode],
                rate[round, mode] / f[4], off_ratio, cpu, spans
        }
    }' "$results"
