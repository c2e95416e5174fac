# Headless Chromium for the dashboard's end-to-end test (Debian's package; no browser
# download). Sourced by .ci/run: installs it when absent and exports its path.
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium for the dashboard test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
fi
DRIFTLINE_TEST_CHROMIUM="$(command -v chromium)"
export DRIFTLINE_TEST_CHROMIUM
echo "chromium: $DRIFTLINE_TEST_CHROMIUM ($("$DRIFTLINE_TEST_CHROMIUM" --version 2>/dev/null))"
