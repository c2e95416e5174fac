#!/usr/bin/env python3
"""`driftline drift report` against Evidently 0.7 on many small, awkward files: verdict parity.

bench/drift_vs_evidently.py compares the two on one large, well-behaved pair of files;
this script hunts for the cases where they could part: reference sizes on both sides of
Evidently's 1,000-row switch (with and without missing cells), numbers with 1 to 7
distinct values (the 2- and 5-value switches), booleans, integers, text categories that
appear on one side only, constant columns, heavy ties, missing cells, negative and huge
values, and columns whose current values all moved. Each case is a seeded random pair of
files with several such columns, written as CSV (and every third case as Parquet); pandas
reads them for Evidently exactly as bench/drift_vs_evidently.py does, and driftline reads
the same file.

    python3 bench/parity_vs_evidently.py --binary $CARGO_TARGET_DIR/debug/driftline --cases 300

Compared per column: the test, the threshold, the score (within 1e-6 for the p-value
tests, 1e-9 for the distances, relative to the larger of 1 and the score), the drift
verdict; per dataset: the drifted count and the verdict. Columns Evidently leaves out and
files Evidently cannot read are reported as such. One divergence is by design and noted,
not counted: a text column with more than half of its current values distinct is free
text to Evidently, which trains a domain classifier on it; driftline skips it with that
reason (or, under 50 current values, where five events from five countries would count
as text, compares it as categories), so the dataset verdicts of such cases are not
compared. And where Evidently's own
dataset count disagrees with its column verdicts (it takes the count from its legacy
metric, which keeps infinite values and gets no distance where the per-column metric
drops them), driftline's column verdicts are compared and the count is noted. Exits 1 on any difference and prints
each failing case's seed, so `--only SEED --keep DIR` writes that case's files for a look.
Needs a Python with evidently==0.7.*, pandas<3 and pyarrow (bench/drift_vs_evidently.sh
makes one under /tmp/driftline-evidently-venv).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_vs_evidently import compare, evidently_worker  # noqa: E402

P_VALUE_TESTS = {"ks", "chisquare", "z"}
REFERENCE_SIZES = [8, 30, 200, 999, 1000, 1001, 1040, 3000]
CURRENT_SIZES = [5, 40, 300, 1000, 2500]


def column_makers(rng):
    """Column generators: name -> f(n, side) returning a list or array of n values."""

    def numeric(loc, scale, shift):
        def make(n, side):
            return rng.normal(loc + (shift if side == "current" else 0.0), scale, n)

        return make

    def few_values(k, moved):
        values = rng.choice(np.arange(-3, 50), size=k, replace=False)

        def make(n, side):
            p = np.ones(k) / k
            if side == "current" and moved:
                p = np.linspace(1, 3, k)
                p /= p.sum()
            return rng.choice(values, size=n, p=p)

        return make

    def categories(k, new_in_current, missing):
        names = [f"c{i}" for i in range(k)]

        def make(n, side):
            pool = names + (["new1", "new2"] if side == "current" and new_in_current else [])
            out = rng.choice(pool, size=n).astype(object)
            out[rng.uniform(size=n) < missing] = None
            return out

        return make

    def with_missing(inner, share):
        def make(n, side):
            out = np.asarray(inner(n, side), dtype=float)
            out[rng.uniform(size=n) < share] = np.nan
            return out

        return make

    def ties(n, side):
        return np.round(rng.normal(0, 1 if side == "reference" else 1.2, n), 1)

    def huge(n, side):
        return rng.lognormal(30, 2, n) * (1.0 if side == "reference" else 1.5)

    def constant(n, side):
        return np.full(n, 7.0)

    def constant_text(n, side):
        return np.array(["same"] * n, dtype=object)

    def booleans(n, side):
        return rng.uniform(size=n) < (0.3 if side == "reference" else 0.45)

    def integers(n, side):
        return rng.integers(-20, 200 if side == "reference" else 230, n)

    def moved(n, side):
        return rng.uniform(0, 1, n) + (0.0 if side == "reference" else 5.0)

    def binary01(n, side):
        return (rng.uniform(size=n) < (0.5 if side == "reference" else 0.6)).astype(int)

    def integers_missing_in_reference(n, side):
        # Float (NaN) in the reference, int64 with 8 values in the current.
        out = rng.integers(0, 8, n).astype(float)
        if side == "reference":
            out[rng.uniform(size=n) < 0.1] = np.nan
        else:
            out = out.astype(int)
        return out

    def with_infinities(n, side):
        out = rng.normal(0, 1, n)
        out[rng.uniform(size=n) < 0.02] = np.inf
        out[rng.uniform(size=n) < 0.01] = -np.inf
        return out

    def missing_in_current(n, side):
        return rng.normal(0, 1, n) if side == "reference" else np.full(n, np.nan)

    def mixed_text(n, side):
        return rng.choice(["1", "2", "2.5", "x", "y"], size=n).astype(object)

    return {
        "normal_same": numeric(0.0, 1.0, 0.0),
        "normal_shift": numeric(10.0, 2.0, rng.choice([0.1, 0.5, 2.0])),
        "few2": few_values(2, rng.uniform() < 0.5),
        "few3": few_values(3, rng.uniform() < 0.5),
        "few5": few_values(5, rng.uniform() < 0.5),
        "few6": few_values(6, rng.uniform() < 0.5),
        "few7": few_values(int(rng.integers(7, 25)), rng.uniform() < 0.5),
        "few10": few_values(10, rng.uniform() < 0.5),
        "few11": few_values(11, rng.uniform() < 0.5),
        "ints_nan_ref": integers_missing_in_reference,
        "infinities": with_infinities,
        "missing_current": missing_in_current,
        "mixed_text": mixed_text,
        "cat": categories(int(rng.integers(2, 12)), rng.uniform() < 0.5, 0.0),
        "cat_missing": categories(int(rng.integers(2, 6)), False, 0.1),
        "cat2": categories(2, False, 0.0),
        "missing_numbers": with_missing(numeric(5.0, 3.0, 0.3), float(rng.choice([0.05, 0.3]))),
        "ties": ties,
        "huge": huge,
        "constant": constant,
        "constant_text": constant_text,
        "bools": booleans,
        "ints": integers,
        "moved": moved,
        "binary01": binary01,
    }


def make_case(seed):
    rng = np.random.default_rng(seed)
    makers = column_makers(rng)
    names = sorted(rng.choice(sorted(makers), size=int(rng.integers(2, 7)), replace=False))
    n_ref = int(rng.choice(REFERENCE_SIZES))
    n_cur = int(rng.choice(CURRENT_SIZES))
    reference = pd.DataFrame({name: makers[name](n_ref, "reference") for name in names})
    current = pd.DataFrame({name: makers[name](n_cur, "current") for name in names})
    return reference, current


def write(frame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def run_driftline(binary, ref, cur, out):
    proc = subprocess.run(
        [binary, "drift", "report", "--reference", ref, "--current", cur, "--json", out, "--quiet"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    return json.loads(Path(out).read_text()), None


def close(ours, theirs, test):
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if np.isnan(ours) or np.isnan(theirs):
        return np.isnan(ours) and np.isnan(theirs)
    tolerance = 1e-6 if test in P_VALUE_TESTS else 1e-9
    return abs(ours - theirs) <= tolerance * max(1.0, abs(theirs))


def run_case(seed, binary, directory):
    reference, current = make_case(seed)
    suffix = ".parquet" if seed % 3 == 0 else ".csv"
    ref, cur = directory / f"reference{suffix}", directory / f"current{suffix}"
    write(reference, ref)
    write(current, cur)
    ev_out, dl_out = directory / "evidently.json", directory / "driftline.json"
    try:
        evidently_worker(ref, cur, ev_out)
        evidently = json.loads(ev_out.read_text())
    except Exception:  # noqa: BLE001 - Evidently failing on a file is a finding, not a crash
        evidently = None
        evidently_error = traceback.format_exc(limit=1).strip().splitlines()[-1]
    driftline, driftline_error = run_driftline(binary, ref, cur, dl_out)
    shape = f"{len(reference)} vs {len(current)} rows, {suffix[1:]}, columns {list(reference.columns)}"
    if evidently is None and driftline is None:
        return shape, [], f"both refused (Evidently: {evidently_error}; driftline: {driftline_error})"
    if evidently is None:
        return shape, [], f"Evidently failed ({evidently_error}); driftline reported"
    if driftline is None:
        return shape, [f"driftline failed where Evidently reported: {driftline_error}"], None
    problems, notes = compare(evidently, driftline, close)
    return shape, problems, "; ".join(notes) or None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the driftline binary")
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1, help="first case's seed; case i uses seed + i")
    ap.add_argument("--only", type=int, help="run the case of this seed only")
    ap.add_argument("--keep", help="write the case files here and keep them")
    args = ap.parse_args()
    seeds = [args.only] if args.only is not None else range(args.seed, args.seed + args.cases)
    failures, notes = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            shape, problems, note = run_case(seed, args.binary, directory)
            if problems:
                failures += 1
                print(f"case {seed} ({shape}): DIFFERENT\n  " + "\n  ".join(problems))
            elif note:
                notes += 1
                print(f"case {seed} ({shape}): {note}")
    total = len(seeds)
    print(f"{total - failures} of {total} cases agree ({notes} with a note above); {failures} differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
