//! Limited-memory BFGS minimisation of a smooth function, with a strong-Wolfe line search.
//!
//! The design decision: stopping mirrors scipy's L-BFGS-B as scikit-learn calls it (stop
//! when the largest gradient component is `<= gtol`, or the relative decrease of `f` is
//! `<= ftol`), so a `tol` means the same thing here as in `LogisticRegression(tol=...)`.
//! Everything runs in a fixed order on one thread, so the same input gives bit-identical
//! output.
//!
//! The line search is Nocedal & Wright's (Algorithms 3.5 and 3.6): expand until the
//! interval brackets a point satisfying the strong Wolfe conditions, then zoom in with
//! safeguarded cubic interpolation. A non-finite value counts as "too far".

/// Options of [`minimize`].
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsOptions {
    /// Correction pairs kept (scipy's `maxcor`).
    pub memory: usize,
    /// Maximum iterations (accepted steps).
    pub max_iter: usize,
    /// Stop when `max_i |g_i| <= gtol`.
    pub gtol: f64,
    /// Stop when `(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`.
    pub ftol: f64,
    /// Maximum function evaluations per line search.
    pub max_linesearch: usize,
    /// Sufficient-decrease constant (Armijo).
    pub c1: f64,
    /// Curvature constant (strong Wolfe).
    pub c2: f64,
}

impl Default for LbfgsOptions {
    /// scipy's L-BFGS-B settings as scikit-learn uses them (`maxcor` 10, `maxls` 50,
    /// `ftol` 64·eps, line-search constants 1e-3 and 0.9), with `gtol` 1e-4.
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            max_iter: 1000,
            gtol: 1e-4,
            ftol: 64.0 * f64::EPSILON,
            max_linesearch: 50,
            c1: 1e-3,
            c2: 0.9,
        }
    }
}

/// Why [`minimize`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The largest gradient component fell to `gtol` or below.
    GradientTolerance,
    /// The relative decrease of the objective fell to `ftol` or below.
    FunctionTolerance,
    /// `max_iter` iterations were taken.
    MaxIter,
    /// No step along steepest descent satisfied the line search (usually: converged as far
    /// as floating point allows).
    LineSearchFailed,
}

impl Status {
    /// Whether the status means the minimum was reached to tolerance.
    pub fn converged(self) -> bool {
        matches!(self, Status::GradientTolerance | Status::FunctionTolerance)
    }
}

/// The outcome of [`minimize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The best point found.
    pub x: Vec<f64>,
    /// The objective there.
    pub f: f64,
    /// The largest gradient component there.
    pub grad_max: f64,
    /// Iterations taken.
    pub n_iter: usize,
    /// Objective evaluations made.
    pub n_evals: usize,
    /// Why it stopped.
    pub status: Status,
}

/// One point on the search line: step, value, directional derivative.
#[derive(Debug, Clone, Copy)]
struct Probe {
    a: f64,
    f: f64,
    dg: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Minimises `fun`, which returns `f(x)` and writes `∇f(x)` into its second argument, from
/// `x0`. Returns `None` when `f(x0)` or its gradient is not finite.
pub fn minimize<F>(mut fun: F, x0: Vec<f64>, opts: &LbfgsOptions) -> Option<Minimum>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut f = fun(&x, &mut g);
    let mut n_evals = 1;
    if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Ring buffer of correction pairs, oldest first.
    let mut s_hist: Vec<Vec<f64>> = Vec::with_capacity(opts.memory);
    let mut y_hist: Vec<Vec<f64>> = Vec::with_capacity(opts.memory);
    let mut rho_hist: Vec<f64> = Vec::with_capacity(opts.memory);
    let mut alpha_buf = vec![0.0; opts.memory];
    let mut d = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut n_iter = 0;
    let status = loop {
        if max_abs(&g) <= opts.gtol {
            break Status::GradientTolerance;
        }
        if n_iter >= opts.max_iter {
            break Status::MaxIter;
        }
        // Two-loop recursion: d = -H·g.
        d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
        for k in (0..s_hist.len()).rev() {
            let a = rho_hist[k] * dot(&s_hist[k], &d);
            alpha_buf[k] = a;
            d.iter_mut().zip(&y_hist[k]).for_each(|(di, yi)| *di -= a * yi);
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            d.iter_mut().for_each(|di| *di *= gamma);
        }
        for k in 0..s_hist.len() {
            let b = rho_hist[k] * dot(&y_hist[k], &d);
            let a = alpha_buf[k];
            d.iter_mut()
                .zip(&s_hist[k])
                .for_each(|(di, si)| *di += (a - b) * si);
        }
        let mut dg0 = dot(&g, &d);
        if dg0.is_nan() || dg0 >= 0.0 {
            // Not a descent direction (lost positive definiteness): restart.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
            dg0 = dot(&g, &d);
        }
        let a0 = if s_hist.is_empty() {
            1.0 / dot(&d, &d).sqrt()
        } else {
            1.0
        };
        let found = match line_search(
            &mut fun,
            &x,
            f,
            dg0,
            &d,
            a0,
            opts,
            &mut x_new,
            &mut g_new,
            &mut n_evals,
        ) {
            Some(p) => Some(p),
            None if !s_hist.is_empty() => {
                // Retry once along steepest descent with the memory dropped, as scipy does.
                s_hist.clear();
                y_hist.clear();
                rho_hist.clear();
                d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
                let dg0 = dot(&g, &d);
                let a0 = 1.0 / dot(&d, &d).sqrt();
                line_search(
                    &mut fun,
                    &x,
                    f,
                    dg0,
                    &d,
                    a0,
                    opts,
                    &mut x_new,
                    &mut g_new,
                    &mut n_evals,
                )
            }
            None => None,
        };
        let Some(probe) = found else {
            break Status::LineSearchFailed;
        };
        n_iter += 1;
        // x_new, g_new hold the accepted point; form the correction pair.
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        let f_old = f;
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        f = probe.f;
        if sy > f64::EPSILON * yy {
            if s_hist.len() == opts.memory {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
        }
        if (f_old - f) / f_old.abs().max(f.abs()).max(1.0) <= opts.ftol {
            break Status::FunctionTolerance;
        }
    };
    Some(Minimum {
        grad_max: max_abs(&g),
        x,
        f,
        n_iter,
        n_evals,
        status,
    })
}

/// Strong-Wolfe line search from `x` along `d` (`dg0 = ∇f(x)·d < 0`). On success the
/// accepted point and its gradient are in `x_out`, `g_out`.
#[allow(clippy::too_many_arguments)]
fn line_search<F>(
    fun: &mut F,
    x: &[f64],
    f0: f64,
    dg0: f64,
    d: &[f64],
    a_init: f64,
    opts: &LbfgsOptions,
    x_out: &mut Vec<f64>,
    g_out: &mut Vec<f64>,
    n_evals: &mut usize,
) -> Option<Probe>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    if dg0.is_nan() || dg0 >= 0.0 || !a_init.is_finite() || a_init <= 0.0 {
        return None;
    }
    let mut evals = 0;
    // Evaluates at step a, leaving the point and gradient in x_out, g_out.
    let mut probe = |a: f64, x_out: &mut Vec<f64>, g_out: &mut Vec<f64>| {
        x_out
            .iter_mut()
            .zip(x.iter().zip(d))
            .for_each(|(xo, (xi, di))| *xo = xi + a * di);
        let f = fun(x_out, g_out);
        *n_evals += 1;
        let dg = dot(g_out, d);
        if f.is_finite() && dg.is_finite() {
            Probe { a, f, dg }
        } else {
            Probe {
                a,
                f: f64::INFINITY,
                dg: f64::NAN,
            }
        }
    };
    let armijo = |p: &Probe| p.f <= f0 + opts.c1 * p.a * dg0;
    let curvature = |p: &Probe| p.dg.abs() <= -opts.c2 * dg0;

    let mut prev = Probe {
        a: 0.0,
        f: f0,
        dg: dg0,
    };
    let mut a = a_init;
    // Bracketing phase.
    let (mut lo, mut hi) = loop {
        if evals >= opts.max_linesearch {
            return None;
        }
        let p = probe(a, x_out, g_out);
        evals += 1;
        if !armijo(&p) || (prev.a > 0.0 && p.f >= prev.f) {
            break (prev, p);
        }
        if curvature(&p) {
            return Some(p);
        }
        if p.dg >= 0.0 {
            break (p, prev);
        }
        prev = p;
        a *= 2.0;
    };
    // Zoom phase: lo satisfies Armijo and has the lowest value so far; the minimiser of
    // interest lies between lo and hi.
    let mut best_lo: Option<Probe> = (lo.a > 0.0).then_some(lo);
    while evals < opts.max_linesearch {
        let (a_min, a_max) = if lo.a < hi.a { (lo.a, hi.a) } else { (hi.a, lo.a) };
        let width = a_max - a_min;
        if width <= f64::EPSILON * a_max {
            break;
        }
        let mut a_j = cubic_min(&lo, &hi).unwrap_or(f64::NAN);
        if !(a_j >= a_min + 0.1 * width && a_j <= a_max - 0.1 * width) {
            a_j = 0.5 * (lo.a + hi.a);
        }
        let p = probe(a_j, x_out, g_out);
        evals += 1;
        if !armijo(&p) || p.f >= lo.f {
            hi = p;
        } else {
            if curvature(&p) {
                return Some(p);
            }
            if p.dg * (hi.a - lo.a) >= 0.0 {
                hi = lo;
            }
            lo = p;
            best_lo = Some(p);
        }
    }
    // Out of evaluations: accept the best point with sufficient decrease, if any.
    let p = best_lo.filter(|p| p.f < f0)?;
    let _ = probe(p.a, x_out, g_out);
    Some(p)
}

/// The minimiser of the cubic through two probes' values and slopes, if it exists.
fn cubic_min(p: &Probe, q: &Probe) -> Option<f64> {
    if !(p.f.is_finite() && q.f.is_finite() && p.dg.is_finite() && q.dg.is_finite()) {
        return None;
    }
    let d1 = p.dg + q.dg - 3.0 * (p.f - q.f) / (p.a - q.a);
    let disc = d1 * d1 - p.dg * q.dg;
    if disc < 0.0 {
        return None;
    }
    let d2 = (q.a - p.a).signum() * disc.sqrt();
    let a = q.a - (q.a - p.a) * (q.dg + d2 - d1) / (q.dg - p.dg + 2.0 * d2);
    a.is_finite().then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
        let (a, b) = (x[0], x[1]);
        g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
        g[1] = 200.0 * (b - a * a);
        (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
    }

    #[test]
    fn minimises_rosenbrock() {
        let opts = LbfgsOptions {
            gtol: 1e-8,
            ftol: 0.0,
            ..LbfgsOptions::default()
        };
        let m = minimize(rosenbrock, vec![-1.2, 1.0], &opts).unwrap();
        assert_eq!(m.status, Status::GradientTolerance, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6,
            "{m:?}"
        );
    }

    #[test]
    fn minimises_an_ill_conditioned_quadratic() {
        let scales: Vec<f64> = (0..30).map(|i| 10f64.powf(i as f64 / 10.0)).collect();
        let quad = |x: &[f64], g: &mut [f64]| {
            let mut f = 0.0;
            for i in 0..x.len() {
                g[i] = scales[i] * (x[i] - 1.0);
                f += 0.5 * scales[i] * (x[i] - 1.0).powi(2);
            }
            f
        };
        let opts = LbfgsOptions {
            gtol: 1e-10,
            ftol: 0.0,
            ..LbfgsOptions::default()
        };
        let m = minimize(quad, vec![0.0; 30], &opts).unwrap();
        assert!(m.status.converged(), "{m:?}");
        assert!(m.x.iter().all(|v| (v - 1.0).abs() < 1e-9), "{m:?}");
    }

    #[test]
    fn rejects_a_non_finite_start() {
        let f = |_: &[f64], g: &mut [f64]| {
            g[0] = 0.0;
            f64::NAN
        };
        assert!(minimize(f, vec![0.0], &LbfgsOptions::default()).is_none());
    }
}
