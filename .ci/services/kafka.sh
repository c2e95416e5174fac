# Brings up a Kafka API broker for the Kafka backend's tests and exports its address as
# DRIFTLINE_TEST_KAFKA_BROKERS. Sourced by .ci/run (under set -euo pipefail).
#
# The broker is tansu (Apache-2.0, a Kafka-compatible broker in Rust, installed from
# crates.io), in memory, on a free loopback port. It is started once and reused while the
# process recorded in /tmp/driftline-ci-kafka.pid is alive and answering. The Python
# client confluent-kafka (librdkafka 2.x) is installed for the interoperability test.
# Debian's kcat links librdkafka 2.0.2, whose ApiVersions handshake tansu 0.6 rejects,
# so it is not used.

driftline_kafka_up() {
    local tansu="$HOME/.cargo/bin/tansu"
    local pidfile=/tmp/driftline-ci-kafka.pid portfile=/tmp/driftline-ci-kafka.port
    local logfile=/tmp/driftline-ci-kafka.log
    if [ ! -x "$tansu" ]; then
        echo "installing tansu 0.6.0 (a Kafka API broker) with cargo install"
        # Its own target directory: CI's CARGO_TARGET_DIR is for the workspace.
        CARGO_TARGET_DIR="$HOME/.cache/tansu-install-target" \
            cargo install tansu --version 0.6.0 --features dynostore --quiet
    fi
    local pid="" port=""
    [ -f "$pidfile" ] && pid=$(cat "$pidfile")
    [ -f "$portfile" ] && port=$(cat "$portfile")
    if [ -n "$pid" ] && [ -n "$port" ] && kill -0 "$pid" 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "reusing the Kafka broker (pid $pid) on 127.0.0.1:$port"
    else
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        nohup "$tansu" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine memory://tansu/ >"$logfile" 2>&1 &
        pid=$!
        echo "$pid" >"$pidfile"
        echo "$port" >"$portfile"
        local waited=0
        until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
            if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 300 ]; then
                echo "the Kafka broker did not start; its log:" >&2
                cat "$logfile" >&2
                return 1
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        echo "started a Kafka broker (tansu, pid $pid) on 127.0.0.1:$port"
    fi
    export DRIFTLINE_TEST_KAFKA_BROKERS="127.0.0.1:$port"
    if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
        echo "installing confluent-kafka for the Kafka interoperability test"
        python3 -m pip install --quiet --disable-pip-version-check confluent-kafka \
            || echo "pip could not install confluent-kafka; the interop test will say so" >&2
    fi
}

driftline_kafka_up
