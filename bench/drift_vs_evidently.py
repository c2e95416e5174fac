#!/usr/bin/env python3
"""`driftline drift report` against Evidently 0.7's data-drift preset, same files, same run.

Run from the repository root through bench/drift_vs_evidently.sh (it makes a virtualenv
with evidently==0.7.*, pandas<3 and pyarrow, and builds driftline in release), or directly
with a Python that has them:

    bash bench/drift_vs_evidently.sh                       # 1M vs 1M rows, CSV and Parquet, 3 runs each
    python3 bench/drift_vs_evidently.py --rows 100000 --repeats 1 --no-build

It generates a seeded reference and current file of --rows rows and three columns:

- `amount`: lognormal float with 1% missing cells; the current one 15% larger (drifts);
- `items`: a Poisson(3) integer count, the same law on both sides (does not drift);
- `country`: text, 7 values; the current mix moves 12% of the mass (drifts);

writes each pair as CSV and as Parquet, then runs each side --repeats times, alternating,
every run a fresh whole process under `/usr/bin/time -v` (wall clock and peak RSS):

- Evidently: this script as `--evidently-worker REF CUR OUT`: pandas reads both files,
  `Report([DataDriftPreset()], include_tests=True).run(current, reference)`, and the
  per-column method, threshold, score and drift verdict (the preset's own test status)
  are written to OUT as JSON;
- driftline: `driftline drift report --reference REF --current CUR --json OUT --quiet`.

Then it compares the verdicts column by column: the same test, the same threshold,
scores within --tolerance (absolute), the same drift verdicts and dataset verdict; it
exits 1 on any difference. It prints a markdown table of medians and ratios (recorded in
docs/benchmarks.md, "drift report vs Evidently").

--wait-idle waits (up to 30 s) before each Evidently/driftline pair until the machine's
CPUs were less than 15% busy over half a second, for hosts shared with other work.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = 20260515
REPO = Path(__file__).resolve().parent.parent
COUNTRIES = ["US", "CA", "GB", "DE", "FR", "IN", "BR"]
REFERENCE_MIX = [0.40, 0.10, 0.12, 0.12, 0.10, 0.08, 0.08]
CURRENT_MIX = [0.28, 0.10, 0.12, 0.12, 0.10, 0.16, 0.12]

# Evidently's method names -> driftline's test names.
METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "PSI": "psi",
    "Hellinger distance (normed)": "hellinger",
}


def make_frames(rows, seed):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def frame(amount_scale, mix):
        amount = np.round(rng.lognormal(3.5, 1.0, rows) * amount_scale, 2)
        amount[rng.uniform(size=rows) < 0.01] = np.nan
        items = rng.poisson(3.0, rows)
        country = np.array(COUNTRIES)[rng.choice(len(COUNTRIES), rows, p=mix)]
        return pd.DataFrame({"amount": amount, "items": items, "country": country})

    return frame(1.0, REFERENCE_MIX), frame(1.15, CURRENT_MIX)


def write_files(rows, seed, directory):
    reference, current = make_frames(rows, seed)
    paths = {}
    for kind in ("csv", "parquet"):
        for name, frame in (("reference", reference), ("current", current)):
            path = Path(directory) / f"{name}.{kind}"
            if kind == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            paths[(kind, name)] = path
    return paths


def read_frame(path):
    import pandas as pd

    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def evidently_worker(reference_path, current_path, out_path):
    """One whole Evidently run; writes its per-column verdicts as JSON."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = read_frame(reference_path)
    current = read_frame(current_path)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current_data=current, reference_data=reference)
    result = snapshot.dict()
    columns = {}
    dataset = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "score": metric["value"],
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            dataset = {
                "drifted_columns": int(metric["value"]["count"]),
                "share": metric["value"]["share"],
                "drift_share": config["drift_share"],
            }
    for test in result["tests"]:
        match = re.match(r"Value Drift for column (.+)$", test["name"])
        if match and match.group(1) in columns:
            columns[match.group(1)]["drifted"] = test["status"] == "FAIL"
    Path(out_path).write_text(json.dumps({"columns": columns, "dataset": dataset}))


def timed(cmd):
    """Runs cmd under GNU time -v; returns (wall seconds, peak RSS KiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as log:
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", log.name, *cmd], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr}")
        text = Path(log.name).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return seconds, rss


def busy_fraction(seconds=0.5):
    def read():
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_idle(limit=0.15, timeout=30.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if busy_fraction() < limit:
            return True
    return False


def within(tolerance):
    """Scores equal within an absolute `tolerance` (a missing score is never close)."""

    def close(ours, theirs, test):
        return abs(theirs - (ours if ours is not None else float("nan"))) <= tolerance

    return close


def compare(evidently, driftline, close):
    """Differences between the two verdicts, as sentences, and notes on known divergences
    (text columns; Evidently's dataset count disagreeing with its own column verdicts):
    `(differences, notes)`, both empty when they agree. `close(ours, theirs, test)` judges
    two scores."""
    problems, notes = [], []
    ours = {c["name"]: c for c in driftline["columns"]}
    skipped = {c["name"]: c["reason"] for c in driftline["skipped"]}
    text = []
    for name, theirs in sorted(evidently["columns"].items()):
        mine = ours.get(name)
        if "text content drift" in theirs["method"]:
            text.append(f"{name} ({'skipped' if name in skipped else mine['test']})")
            continue
        if mine is None:
            problems.append(f"{name}: Evidently ran {theirs['method']}, driftline did not test it")
            continue
        test = METHODS.get(theirs["method"], theirs["method"])
        if test != mine["test"]:
            problems.append(f"{name}: Evidently ran {theirs['method']}, driftline {mine['test']}")
            continue
        if abs(theirs["threshold"] - mine["threshold"]) > 1e-12:
            problems.append(f"{name}: threshold {theirs['threshold']} vs {mine['threshold']}")
        if not close(mine["score"], theirs["score"], test):
            problems.append(f"{name} ({test}): score Evidently {theirs['score']!r}, driftline {mine['score']!r}")
        if theirs.get("drifted") != mine["drifted"]:
            problems.append(f"{name}: drift Evidently {theirs.get('drifted')}, driftline {mine['drifted']}")
    extra = sorted(set(ours) - set(evidently["columns"]))
    if extra:
        problems.append(f"driftline also tested {extra}")
    e, d = evidently["dataset"], driftline["dataset"]
    if text:
        notes.append(f"text columns {text}: Evidently ran its text classifier")
    elif e is not None:
        own = sum(bool(c.get("drifted")) for c in evidently["columns"].values())
        if own != e["drifted_columns"]:
            # Its dataset count comes from the legacy DatasetDriftMetric, which keeps
            # infinities (a NaN distance, no drift) where ValueDrift drops them.
            notes.append(f"Evidently's dataset count {e['drifted_columns']} disagrees with its own column verdicts ({own})")
        elif (e["drifted_columns"], e["share"] >= e["drift_share"]) != (d["drifted_columns"], d["drifted"]):
            problems.append(f"dataset: Evidently {e}, driftline {d}")
    return problems, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--format", choices=["csv", "parquet", "both"], default="both")
    ap.add_argument("--tolerance", type=float, default=1e-9, help="absolute tolerance on scores")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build first")
    ap.add_argument("--binary", help="driftline binary (default: CARGO_TARGET_DIR or ./target, release)")
    ap.add_argument("--keep", help="write the data files into this directory and keep them")
    ap.add_argument("--wait-idle", action="store_true", help="before each pair, wait for an idle machine")
    ap.add_argument("--evidently-worker", nargs=3, metavar=("REF", "CUR", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.evidently_worker:
        evidently_worker(*args.evidently_worker)
        return 0

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "driftline"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = Path(args.binary) if args.binary else target / "release" / "driftline"
    if not binary.exists():
        sys.exit(f"{binary} does not exist: build it or pass --binary")

    import evidently

    formats = ["csv", "parquet"] if args.format == "both" else [args.format]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep) if args.keep else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        paths = write_files(args.rows, args.seed, directory)
        print(f"wrote {args.rows:,} rows x 3 columns per file in {time.monotonic() - started:.1f} s to {directory}")
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"evidently {evidently.__version__}; load average before: {os.getloadavg()[0]:.2f}"
        )
        failed = False
        rows_md = []
        for kind in formats:
            ref, cur = paths[(kind, "reference")], paths[(kind, "current")]
            size_mb = (ref.stat().st_size + cur.stat().st_size) / 2 / 1e6
            ev_out, dl_out = directory / f"evidently-{kind}.json", directory / f"driftline-{kind}.json"
            ev_cmd = [sys.executable, __file__, "--evidently-worker", ref, cur, ev_out]
            dl_cmd = [binary, "drift", "report", "--reference", ref, "--current", cur, "--json", dl_out, "--quiet"]
            runs = {"evidently": [], "driftline": []}
            idle = 0
            for _ in range(args.repeats):
                if args.wait_idle:
                    idle += wait_idle()
                runs["evidently"].append(timed(ev_cmd))
                runs["driftline"].append(timed(dl_cmd))
            evidently_json = json.loads(ev_out.read_text())
            driftline_json = json.loads(dl_out.read_text())
            problems, notes = compare(evidently_json, driftline_json, within(args.tolerance))
            failed |= bool(problems)
            med = {side: (statistics.median(w for w, _ in r), statistics.median(m for _, m in r)) for side, r in runs.items()}
            (ev_s, ev_kib), (dl_s, dl_kib) = med["evidently"], med["driftline"]
            print(f"\n## {kind} ({size_mb:.0f} MB a file), {args.repeats} runs each" + (f", {idle} started idle" if args.wait_idle else ""))
            for side, r in runs.items():
                print(f"{side:<10} wall " + ", ".join(f"{w:.2f} s" for w, _ in r) + "; peak RSS " + ", ".join(f"{m / 1024:.0f} MB" for _, m in r))
            print("verdicts:")
            for name, c in sorted(evidently_json["columns"].items()):
                mine = next((m for m in driftline_json["columns"] if m["name"] == name), {})
                print(
                    f"  {name:<8} Evidently {c['method']} {c['score']!r} drift={c.get('drifted')}; "
                    f"driftline {mine.get('test')} {mine.get('score')!r} drift={mine.get('drifted')}"
                )
            print("  dataset: Evidently", evidently_json["dataset"], "driftline", driftline_json["dataset"])
            print("verdict parity: " + ("OK" if not problems else "DIFFERENT\n  " + "\n  ".join(problems)))
            for note in notes:
                print(f"note: {note}")
            rows_md.append(
                f"| {kind} | {ev_s:.2f} s | {ev_kib / 1024:.0f} MB | {dl_s:.3f} s | {dl_kib / 1024:.0f} MB "
                f"| {ev_s / dl_s:.1f}x | {ev_kib / dl_kib:.1f}x | {'same' if not problems else 'differ'} |"
            )
        print("\n| files | Evidently wall | Evidently peak RSS | driftline wall | driftline peak RSS | faster | smaller | verdicts |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(rows_md))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
