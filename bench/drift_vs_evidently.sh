#!/usr/bin/env bash
# `driftline drift report` beside Evidently 0.7 on the same 1M-row files, same run.
#
# Makes (once) a virtualenv with evidently==0.7.*, pandas<3 (Evidently 0.7 does not import
# under pandas 3) and pyarrow under ${DRIFT_BENCH_VENV:-/tmp/driftline-evidently-venv},
# builds driftline in release, then runs bench/drift_vs_evidently.py with that Python.
# Extra arguments go to the script (e.g. --rows 100000 --repeats 5 --wait-idle).
# Results: docs/benchmarks.md, "drift report vs Evidently".
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DRIFT_BENCH_VENV:-/tmp/driftline-evidently-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import evidently, pyarrow' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'evidently==0.7.*' 'pandas>=2.2,<3' pyarrow
fi
cargo build --release --locked -p driftline
exec "$venv/bin/python" bench/drift_vs_evidently.py --no-build "$@"
