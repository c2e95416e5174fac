//! Fits driftline's logistic regression on a benchmark training file and scores a holdout:
//! the Rust side of `bench/train_vs_sklearn.py`.
//!
//! ```sh
//! cargo run --release --example fit_logistic -p driftline-models -- TRAIN.bin HOLDOUT.bin [THREADS]
//! ```
//!
//! `THREADS` sets `LogisticRegressionParams::threads` (default: unset, automatic); the fit
//! is the same to the bit whatever it is, only its time changes.
//!
//! Both files are in the script's raw format, all little-endian: the 8 bytes `DLBENCH1`,
//! `u64` rows, `u64` columns, then `rows × columns` `f64` features row-major (`NaN` =
//! missing), then `rows` label bytes (0 or 1). Column names are `x0`, `x1`, …
//!
//! Prints one JSON line: `rows`, `fit_seconds` (only `LogisticRegressionParams::fit`, which
//! includes its standardisation), `iterations` and `evaluations` (L-BFGS), `status`, and
//! `auc` (ROC AUC on the holdout), and the fitted `intercept` and `coefficients` (of the
//! standardised columns), so two builds can be checked for the same fit.

use std::error::Error;
use std::time::Instant;

use driftline_models::dataset::Dataset;
use driftline_models::logistic::LogisticRegressionParams;
use driftline_models::metrics::roc_auc;
use driftline_models::model::Model;

const MAGIC: &[u8; 8] = b"DLBENCH1";

fn read_dataset(path: &str) -> Result<Dataset, Box<dyn Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let word = |i: usize| -> Result<[u8; 8], Box<dyn Error>> {
        Ok(bytes
            .get(i * 8..i * 8 + 8)
            .ok_or("truncated header")?
            .try_into()?)
    };
    if &word(0)? != MAGIC {
        return Err(format!("{path}: not a DLBENCH1 file").into());
    }
    let rows = usize::try_from(u64::from_le_bytes(word(1)?))?;
    let cols = usize::try_from(u64::from_le_bytes(word(2)?))?;
    let body = &bytes[24..];
    let n_values = rows.checked_mul(cols).ok_or("size overflows")?;
    if body.len() != n_values * 8 + rows {
        return Err(format!(
            "{path}: {} body bytes, expected {}",
            body.len(),
            n_values * 8 + rows
        )
        .into());
    }
    let (values, labels) = body.split_at(n_values * 8);
    let features = values
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")))
        .collect();
    let labels = labels.iter().map(|&b| b != 0).collect();
    let columns = (0..cols).map(|j| format!("x{j}")).collect();
    Ok(Dataset::new(features, labels, columns)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (train_path, holdout_path, threads) = match args.as_slice() {
        [_, train, holdout] => (train, holdout, None),
        [_, train, holdout, threads] => (train, holdout, Some(threads.parse::<usize>()?)),
        _ => return Err("usage: fit_logistic TRAIN.bin HOLDOUT.bin [THREADS]".into()),
    };
    let train = read_dataset(train_path)?;
    let holdout = read_dataset(holdout_path)?;

    let start = Instant::now();
    let params = LogisticRegressionParams {
        threads,
        ..LogisticRegressionParams::default()
    };
    let model = params.fit(&train)?;
    let fit_seconds = start.elapsed().as_secs_f64();

    let scores = model.predict_dataset(&holdout)?;
    let auc = roc_auc(&scores, holdout.labels()).ok_or("holdout has a single class")?;
    let summary = model.fit_summary();
    let line = serde_json::json!({
        "rows": train.n_rows(),
        "fit_seconds": fit_seconds,
        "iterations": summary.n_iter,
        "evaluations": summary.n_evals,
        "status": summary.status,
        "auc": auc,
        "intercept": model.intercept(),
        "coefficients": model.coefficients(),
    });
    println!("{line}");
    Ok(())
}
