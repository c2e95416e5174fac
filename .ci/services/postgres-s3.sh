# Sourced by .ci/run (under `set -euo pipefail`): makes sure PostgreSQL and Redis answer
# on loopback, starting them when stopped (and installing redis-server from Debian when
# absent: the Redis tests also start private servers to stop under load), and that an S3-compatible server (moto) runs,
# installing it from PyPI when absent; then exports where the backend tests find them.
#
# Exports DRIFTLINE_TEST_POSTGRES_URL, DRIFTLINE_TEST_REDIS_URL, DRIFTLINE_TEST_S3_ENDPOINT.
# Functions and variables are prefixed `ci_pgs3_` so they cannot clash with other scripts.

ci_pgs3_state_dir=/tmp/driftline-ci-moto
ci_pgs3_wait_secs=30

# ci_pgs3_wait NAME COMMAND...: retries COMMAND each 0.5 s until it succeeds or time is up.
ci_pgs3_wait() {
    local name=$1 tries=$((ci_pgs3_wait_secs * 2))
    shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            echo "$name did not answer within ${ci_pgs3_wait_secs}s" >&2
            return 1
        fi
        sleep 0.5
    done
}

ci_pgs3_postgres_up() {
    pg_isready -q -h 127.0.0.1 -p 5432 && psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null
}

ci_pgs3_redis_up() {
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
}

ci_pgs3_ensure_postgres() {
    if ci_pgs3_postgres_up; then
        echo "PostgreSQL answers on 127.0.0.1:5432"
        return 0
    fi
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
    ci_pgs3_wait PostgreSQL ci_pgs3_postgres_up
}

# The Redis tests also start private servers (redis-server) to stop and kill under load.
ci_pgs3_install_redis() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return 0
    fi
    echo "installing redis-server from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
}

ci_pgs3_ensure_redis() {
    ci_pgs3_install_redis
    if ci_pgs3_redis_up; then
        echo "Redis answers on 127.0.0.1:6379"
        return 0
    fi
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    ci_pgs3_wait Redis ci_pgs3_redis_up
}

# ci_pgs3_s3_up PORT: the server answers a bucket listing over HTTP.
ci_pgs3_s3_up() {
    python3 - "$1" <<'EOF'
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).read()
EOF
}

ci_pgs3_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Reuses the moto server an earlier run started (its pid and port are recorded), else
# installs moto[server] when absent and starts one on a free port, left running.
ci_pgs3_ensure_s3() {
    mkdir -p "$ci_pgs3_state_dir"
    local pid_file=$ci_pgs3_state_dir/pid port_file=$ci_pgs3_state_dir/port port pid
    if [ -s "$pid_file" ] && [ -s "$port_file" ]; then
        pid=$(cat "$pid_file")
        port=$(cat "$port_file")
        if kill -0 "$pid" 2>/dev/null && ci_pgs3_s3_up "$port"; then
            echo "moto (pid $pid) answers on 127.0.0.1:$port"
            DRIFTLINE_TEST_S3_ENDPOINT=http://127.0.0.1:$port
            return 0
        fi
    fi
    if ! python3 -c 'import moto.server, flask, werkzeug' >/dev/null 2>&1; then
        echo "installing moto[server]"
        python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
    fi
    port=$(ci_pgs3_free_port)
    echo "starting moto on 127.0.0.1:$port"
    nohup python3 -m moto.server -H 127.0.0.1 -p "$port" </dev/null >"$ci_pgs3_state_dir/moto.log" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    echo "$port" >"$port_file"
    if ! ci_pgs3_wait moto ci_pgs3_s3_up "$port"; then
        tail -n 20 "$ci_pgs3_state_dir/moto.log" >&2 || true
        return 1
    fi
    DRIFTLINE_TEST_S3_ENDPOINT=http://127.0.0.1:$port
}

ci_pgs3_ensure_postgres
ci_pgs3_ensure_redis
ci_pgs3_ensure_s3
export DRIFTLINE_TEST_POSTGRES_URL=${DRIFTLINE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export DRIFTLINE_TEST_REDIS_URL=${DRIFTLINE_TEST_REDIS_URL:-redis://127.0.0.1:6379}
export DRIFTLINE_TEST_S3_ENDPOINT
echo "DRIFTLINE_TEST_POSTGRES_URL=$DRIFTLINE_TEST_POSTGRES_URL"
echo "DRIFTLINE_TEST_REDIS_URL=$DRIFTLINE_TEST_REDIS_URL"
echo "DRIFTLINE_TEST_S3_ENDPOINT=$DRIFTLINE_TEST_S3_ENDPOINT"
