//! The HTML rendering of a [`DriftReport`]: a summary table and one reference-vs-current
//! bar chart per column, as inline SVG.
//!
//! Key decision: no JavaScript and no external resources at all, so the file opens
//! offline and its size depends on the column count only (histograms are aggregated).

use std::fmt::Write as _;

use super::{ColumnDrift, DriftReport, Histogram};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
th{background:#f4f4f4}.drift{color:#b00020;font-weight:bold}.ok{color:#1b5e20}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
section{margin:2em 0}svg text{font-size:10px}";

const REFERENCE_COLOUR: &str = "#4e79a7";
const CURRENT_COLOUR: &str = "#f28e2b";

/// Escapes text for HTML content and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.6}")).unwrap_or_else(|| "–".into())
}

pub(super) fn render(report: &DriftReport) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let d = &report.dataset;
    let verdict = if d.drifted {
        "<span class=\"drift\">Dataset drift detected</span>"
    } else {
        "<span class=\"ok\">No dataset drift</span>"
    };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Drift report</title>\
         <style>{STYLE}</style></head><body><h1>Drift report</h1>\
         <p>{verdict}: {} of {} columns drifted (share {:.3}, threshold {:.3}).</p>\
         <p>Reference: {} ({} rows). Current: {} ({} rows).</p>",
        d.drifted_columns,
        d.columns,
        d.share,
        d.drift_share,
        escape(&report.reference.path),
        report.reference.rows,
        escape(&report.current.path),
        report.current.rows,
    );
    out.push_str("<table><tr><th>Column</th><th>Type</th><th>Test</th><th>Score</th><th>Threshold</th><th>p-value</th><th>Drift</th></tr>");
    for c in &report.columns {
        let _ = write!(
            out,
            "<tr><td><a href=\"#col-{i}\">{name}</a></td><td>{ty:?}</td><td>{test}</td><td>{score}</td><td>{th}</td><td>{p}</td><td class=\"{class}\">{drift}</td></tr>",
            i = escape(&c.name),
            name = escape(&c.name),
            ty = c.column_type,
            test = c.test.name(),
            score = number(c.score),
            th = c.threshold,
            p = number(c.p_value),
            class = if c.drifted { "drift" } else { "ok" },
            drift = if c.drifted { "drift" } else { "no drift" },
        );
    }
    out.push_str("</table>");
    if !report.skipped.is_empty() {
        out.push_str("<p>Skipped: ");
        for s in &report.skipped {
            let _ = write!(out, "{} ({}); ", escape(&s.name), escape(&s.reason));
        }
        out.push_str("</p>");
    }
    let _ = write!(
        out,
        "<p class=\"legend\"><span style=\"background:{REFERENCE_COLOUR}\"></span>reference\
         <span style=\"background:{CURRENT_COLOUR}\"></span>current (share of rows per bin)</p>"
    );
    for c in &report.columns {
        column_section(&mut out, c);
    }
    out.push_str("</body></html>\n");
    out
}

fn column_section(out: &mut String, c: &ColumnDrift) {
    let _ = write!(out, "<section id=\"col-{0}\"><h2>{0}</h2>", escape(&c.name));
    let (labels, reference, current) = match &c.histogram {
        Histogram::Numeric {
            edges,
            reference,
            current,
        } => (
            edges
                .windows(2)
                .map(|w| format!("{:.4}", w[0]))
                .collect::<Vec<_>>(),
            reference,
            current,
        ),
        Histogram::Categorical {
            labels,
            reference,
            current,
        } => (labels.clone(), reference, current),
    };
    bar_chart(out, &labels, reference, current);
    out.push_str("</section>");
}

/// Paired bars: the share of each sample's rows in each bin.
fn bar_chart(out: &mut String, labels: &[String], reference: &[u64], current: &[u64]) {
    let share = |counts: &[u64]| -> Vec<f64> {
        let total = counts.iter().sum::<u64>().max(1) as f64;
        counts.iter().map(|&n| n as f64 / total).collect()
    };
    let (r, c) = (share(reference), share(current));
    let top = r.iter().chain(&c).copied().fold(0.0f64, f64::max).max(1e-12);
    let (height, bar, gap) = (160.0, 12.0, 8.0);
    let width = labels.len() as f64 * (2.0 * bar + gap) + 40.0;
    let _ = write!(
        out,
        "<svg width=\"{width}\" height=\"{}\" role=\"img\">",
        height + 70.0
    );
    for (i, label) in labels.iter().enumerate() {
        let x = 30.0 + i as f64 * (2.0 * bar + gap);
        for (k, (value, colour)) in [(r[i], REFERENCE_COLOUR), (c[i], CURRENT_COLOUR)]
            .into_iter()
            .enumerate()
        {
            let h = value / top * height;
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{}: {:.4}</title></rect>",
                x + k as f64 * bar,
                10.0 + height - h,
                escape(label),
                value
            );
        }
        let _ = write!(
            out,
            "<text transform=\"translate({:.1},{:.1}) rotate(60)\">{}</text>",
            x + 4.0,
            height + 16.0,
            escape(&truncate(label, 18))
        );
    }
    out.push_str("</svg>");
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).chain(std::iter::once('…')).collect()
    }
}
