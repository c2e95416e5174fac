# promtool for the alert-rule tests (Debian's `prometheus` package ships it; no download
# from elsewhere). Sourced by .ci/run: installs it when absent and exports its path.
if ! command -v promtool >/dev/null 2>&1; then
    echo "installing Debian's prometheus for promtool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi
DRIFTLINE_TEST_PROMTOOL="$(command -v promtool)"
export DRIFTLINE_TEST_PROMTOOL
echo "promtool: $DRIFTLINE_TEST_PROMTOOL ($("$DRIFTLINE_TEST_PROMTOOL" --version 2>&1 | head -1))"
