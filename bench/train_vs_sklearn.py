#!/usr/bin/env python3
"""Training benchmark: driftline's logistic regression against scikit-learn's.

Run from the repository root (needs python3 with numpy and scikit-learn, GNU time at
/usr/bin/time, and cargo unless --no-build):

    python3 bench/train_vs_sklearn.py                  # N = 100,000 and 1,000,000, 5 runs each
    python3 bench/train_vs_sklearn.py --rows 100000 --repeats 3

For each N it generates a seeded synthetic binary-classification set (three raw numeric
columns: a lognormal amount, a Poisson count, a normal z-score; the label drawn from a
logistic of a nonlinear combination of them, ~7% positives) and a holdout of N/5 rows,
writes both to a temporary directory, then runs each side --repeats times, alternating,
every run a fresh process under `/usr/bin/time -f %M` (peak RSS, KiB):

- scikit-learn: `StandardScaler().fit_transform` + `LogisticRegression()` (lbfgs, C=1.0,
  tol=1e-4, max_iter=100) in a subprocess of this script (`--sklearn-worker`); times the
  scaler+fit and the bare fit with time.perf_counter; holdout ROC AUC by roc_auc_score.
- driftline: `cargo build --release --example fit_logistic -p driftline-models`, run as
  `fit_logistic TRAIN HOLDOUT`; times `LogisticRegressionParams::default().fit`, which
  standardises internally, so it compares with sklearn's scaler+fit.

Both sides exclude process start, imports and file reading from the fit time; peak RSS is
the whole process (for Python that includes the interpreter, numpy and scikit-learn).

File format (both sides read it without parsing), all little-endian: the 8 bytes
b"DLBENCH1", u64 rows, u64 columns, rows*columns f64 features row-major, rows u8 labels.

Prints a markdown table of medians; exits 1 if |AUC difference| > --max-auc-diff (0.002)
at any size. Both sides use the machine's cores by default: scikit-learn through
OpenMP/OpenBLAS, driftline's fit up to 4 threads (fixed 16,384-row chunks, the same bits on
any thread count). The controls are

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 bench/train_vs_sklearn.py --no-build
    python3 bench/train_vs_sklearn.py --no-build --driftline-threads 1

--wait-idle waits (up to 30 s) before each sklearn/driftline pair until the machine's CPUs
were less than 15% busy over half a second, for hosts shared with other work; the tables
say how many pairs started idle.

Results and how to read them: docs/benchmarks.md, "Training: logistic regression vs
scikit-learn".
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MAGIC = b"DLBENCH1"
SEED = 20261129
REPO = Path(__file__).resolve().parent.parent


def make_data(rng, n):
    """Three raw columns and labels; ~7% positives."""
    amount = rng.lognormal(3.5, 1.0, n)  # amount-like, heavy right tail
    count = rng.poisson(2.0, n).astype(np.float64)  # e.g. transactions in the last hour
    zscore = rng.normal(0.0, 1.0, n)  # e.g. amount z-score against the user's history
    logit = (
        -3.3
        + 0.8 * (np.log(amount) - 3.5)
        + 0.35 * (count - 2.0)
        + 0.9 * zscore
        + 0.3 * zscore**2
        - 0.15 * np.sqrt(count) * zscore
    )
    labels = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))
    features = np.column_stack([amount, count, zscore])
    return features, labels


def write_dataset(path, features, labels):
    rows, cols = features.shape
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(np.array([rows, cols], dtype="<u8").tobytes())
        f.write(np.ascontiguousarray(features, dtype="<f8").tobytes())
        f.write(labels.astype(np.uint8).tobytes())


def read_dataset(path):
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw[:8].tobytes() == MAGIC, f"{path}: not a DLBENCH1 file"
    rows, cols = (int(v) for v in raw[8:24].view("<u8"))
    end = 24 + rows * cols * 8
    features = raw[24:end].view("<f8").reshape(rows, cols)
    labels = raw[end : end + rows].astype(bool)
    return features, labels


def sklearn_worker(train_path, holdout_path):
    """One scikit-learn fit; prints a JSON line."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    x, y = read_dataset(train_path)
    xh, yh = read_dataset(holdout_path)
    cpu_start = time.process_time()
    start = time.perf_counter()
    scaler = StandardScaler()
    xs = scaler.fit_transform(x)
    fit_start = time.perf_counter()
    model = LogisticRegression()
    model.fit(xs, y)
    end = time.perf_counter()
    cpu_end = time.process_time()
    auc = roc_auc_score(yh, model.predict_proba(scaler.transform(xh))[:, 1])
    print(
        json.dumps(
            {
                "rows": len(y),
                "fit_seconds": end - start,
                "bare_fit_seconds": end - fit_start,
                "fit_cpu_seconds": cpu_end - cpu_start,
                "iterations": int(model.n_iter_[0]),
                "auc": float(auc),
            }
        )
    )


def timed_run(cmd, tmp):
    """Runs cmd under GNU time; returns (its JSON line, peak RSS in KiB, process user+sys s)."""
    out = Path(tmp) / "time.txt"
    proc = subprocess.run(
        ["/usr/bin/time", "-o", str(out), "-f", "%M %U %S", *cmd],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    rss, user, system = out.read_text().split()[-3:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), int(rss), float(user) + float(system)


def busy_fraction(seconds=0.5):
    """The share of all CPUs' time not idle over `seconds`, from /proc/stat."""

    def read():
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_idle(limit=0.15, timeout=30.0):
    """Waits until the machine is less than `limit` busy; False if it never was within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if busy_fraction() < limit:
            return True
    return False


def summarise(runs):
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    s = {k: med(k) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    s["fit_min"] = min(r["fit_seconds"] for r in runs)
    s["fit_max"] = max(r["fit_seconds"] for r in runs)
    s["auc_values"] = sorted({r["auc"] for r in runs})
    return s


def fmt_time(s):
    return f"{s['fit_seconds']:.3f} s ({s['fit_min']:.3f}–{s['fit_max']:.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="training rows (repeatable); default 100000 and 1000000")
    ap.add_argument("--repeats", type=int, default=5, help="runs per side and size (default 5)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-auc-diff", type=float, default=0.002)
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build first")
    ap.add_argument("--binary", help="fit_logistic binary (default: from CARGO_TARGET_DIR or ./target)")
    ap.add_argument("--keep", help="write the data files into this directory and keep them")
    ap.add_argument("--driftline-threads", type=int, help="pass THREADS to fit_logistic (default: automatic)")
    ap.add_argument("--wait-idle", action="store_true", help="before each pair, wait for an idle machine (Linux)")
    ap.add_argument("--sklearn-worker", nargs=2, metavar=("TRAIN", "HOLDOUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sklearn_worker:
        sklearn_worker(*args.sklearn_worker)
        return 0

    sizes = args.rows or [100_000, 1_000_000]
    if not args.no_build:
        subprocess.run(
            ["cargo", "build", "--release", "--example", "fit_logistic", "-p", "driftline-models"],
            cwd=REPO,
            check=True,
        )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = args.binary or str(target / "release" / "examples" / "fit_logistic")

    import sklearn

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}; "
        f"{args.repeats} runs per side, alternating; binary {binary}",
        flush=True,
    )
    tmp = args.keep or tempfile.mkdtemp(prefix="driftline-train-bench-")
    os.makedirs(tmp, exist_ok=True)
    rows_out, failed = [], False
    try:
        for n in sizes:
            rng = np.random.default_rng([args.seed, n])
            x, y = make_data(rng, n)
            xh, yh = make_data(rng, n // 5)
            train, holdout = f"{tmp}/train_{n}.bin", f"{tmp}/holdout_{n}.bin"
            write_dataset(train, x, y)
            write_dataset(holdout, xh, yh)
            print(f"N={n:,}: {y.mean():.2%} positives (holdout {yh.mean():.2%})", flush=True)
            sk, dl = [], []
            idle_pairs = 0
            for i in range(args.repeats):
                if args.wait_idle:
                    idle_pairs += wait_idle()
                out, rss, cpu = timed_run([sys.executable, __file__, "--sklearn-worker", train, holdout], tmp)
                sk.append({**out, "rss_kib": rss, "cpu_seconds": cpu})
                threads = [str(args.driftline_threads)] if args.driftline_threads else []
                out, rss, cpu = timed_run([binary, train, holdout, *threads], tmp)
                dl.append({**out, "rss_kib": rss, "cpu_seconds": cpu})
                print(
                    f"  run {i + 1}: sklearn {sk[-1]['fit_seconds']:.3f} s (bare {sk[-1]['bare_fit_seconds']:.3f}), "
                    f"{sk[-1]['rss_kib'] / 1024:.0f} MiB; driftline {dl[-1]['fit_seconds']:.3f} s, "
                    f"{dl[-1]['rss_kib'] / 1024:.0f} MiB",
                    flush=True,
                )
            s, d = summarise(sk), summarise(dl)
            diff = abs(s["auc"] - d["auc"])
            failed |= diff > args.max_auc_diff
            rows_out.append((n, s, d, diff))
            if args.wait_idle:
                print(f"  {idle_pairs}/{args.repeats} pairs started on an idle machine", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    dl_threads = args.driftline_threads or min(cpus, 4)
    print()
    print(
        "| N train | side | fit incl. scaling, median (min–max) | bare fit | iterations | "
        "peak RSS | CPU during the fit | holdout AUC |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, s, d, diff in rows_out:
        print(
            f"| {n:,} | scikit-learn | {fmt_time(s)} | {s['bare_fit_seconds']:.3f} s | {s['iterations']:.0f} | "
            f"{s['rss_kib'] / 1024:.0f} MiB | {s['fit_cpu_seconds']:.3f} s | {s['auc']:.5f} |"
        )
        print(
            f"| {n:,} | driftline | {fmt_time(d)} | — | {d['iterations']:.0f} | "
            f"{d['rss_kib'] / 1024:.0f} MiB | {dl_threads} thread(s) | {d['auc']:.5f} |"
        )
    print()
    print("| N train | speed-up (sklearn scaler+fit / driftline fit) | vs bare fit | RSS ratio (sklearn / driftline) | abs AUC diff |")
    print("|---|---|---|---|---|")
    for n, s, d, diff in rows_out:
        print(
            f"| {n:,} | **{s['fit_seconds'] / d['fit_seconds']:.2f}×** | {s['bare_fit_seconds'] / d['fit_seconds']:.2f}× | "
            f"{s['rss_kib'] / d['rss_kib']:.2f}× | {diff:.5f}{' **FAIL**' if diff > args.max_auc_diff else ''} |"
        )
    for n, s, d, _ in rows_out:
        if len(s["auc_values"]) > 1 or len(d["auc_values"]) > 1:
            print(f"note: N={n:,}: AUC varied across runs: sklearn {s['auc_values']}, driftline {d['auc_values']}")
    if failed:
        print(f"FAIL: |AUC difference| above {args.max_auc_diff}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
