//! The statistics the correlation engine and the trends rest on, with SciPy's conventions so
//! results can be checked against it (analytics.md section 3, TV21-TV29): Pearson and
//! Spearman with Student-t p-values, Fisher-z intervals, Benjamini-Hochberg, effective sample
//! size for autocorrelated series, and the sample size a correlation needs.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Pearson's r; `None` for fewer than 3 pairs or a constant series.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = x[..n].iter().sum::<f64>() / nf;
    let my = y[..n].iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Ranks from 1, ties sharing their average rank (SciPy's `rankdata(method="average")`).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|a, b| x[*a].total_cmp(&x[*b]));
    let mut out = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            out[*k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rho: Pearson's r of the ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    pearson(&ranks(&x[..n]), &ranks(&y[..n]))
}

/// Two-sided p-value of a correlation `r` with `df` degrees of freedom (n - 2, or n_eff - 2):
/// t = r sqrt(df / (1 - r^2)) against Student's t. `df` may be fractional.
pub fn p_value(r: f64, df: f64) -> f64 {
    if df <= 0.0 || !r.is_finite() {
        return 1.0;
    }
    if r.abs() >= 1.0 {
        return 0.0;
    }
    let t = r * (df / (1.0 - r * r)).sqrt();
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => (2.0 * d.sf(t.abs())).min(1.0),
        Err(_) => 1.0,
    }
}

/// The two-sided standard-normal quantile for a confidence `level` (0.95 gives 1.95996).
pub fn z_two_sided(level: f64) -> f64 {
    Normal::standard().inverse_cdf(0.5 + level / 2.0)
}

/// Fisher-z interval for r with sample size `n` (n_eff where autocorrelation applies):
/// tanh(atanh r -/+ z / sqrt(n - 3)). `None` when n <= 3.
pub fn fisher_ci(r: f64, n: f64, level: f64) -> Option<(f64, f64)> {
    if n <= 3.0 {
        return None;
    }
    let z = r.clamp(-0.999_999_999, 0.999_999_999).atanh();
    let half = z_two_sided(level) / (n - 3.0).sqrt();
    Some(((z - half).tanh(), (z + half).tanh()))
}

/// Benjamini-Hochberg adjusted p-values (q-values), in the input's order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let adjusted = p[i] * m as f64 / (rank + 1) as f64;
        running = running.min(adjusted).min(1.0);
        q[i] = running;
    }
    q
}

/// Lag-1 autocorrelation (the biased estimator, as in Bretherton et al. 1999); 0 for fewer
/// than 3 values or a constant series.
pub fn lag1_autocorrelation(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 3 {
        return 0.0;
    }
    let m = x.iter().sum::<f64>() / n as f64;
    let var: f64 = x.iter().map(|v| (v - m).powi(2)).sum();
    if var <= 0.0 {
        return 0.0;
    }
    let cov: f64 = x.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
    cov / var
}

/// Effective sample size of a correlation between two AR(1)-like series (Bretherton et al.
/// 1999): n (1 - r1x r1y) / (1 + r1x r1y), clamped to [3, n].
pub fn effective_n(n: f64, r1x: f64, r1y: f64) -> f64 {
    let rr = r1x * r1y;
    (n * (1.0 - rr) / (1.0 + rr)).clamp(3.0_f64.min(n), n)
}

/// Least-squares residuals of `y` on the columns of `x` (an intercept is added). Columns
/// that are constant or collinear are dropped by the small ridge term.
pub fn residuals(y: &[f64], x: &[Vec<f64>]) -> Vec<f64> {
    let n = y.len();
    let k = x.len() + 1;
    let col = |j: usize, i: usize| if j == 0 { 1.0 } else { x[j - 1][i] };
    let mut a = vec![vec![0.0; k + 1]; k];
    for (r, row) in a.iter_mut().enumerate() {
        for (c, cell) in row.iter_mut().take(k).enumerate() {
            *cell = (0..n).map(|i| col(r, i) * col(c, i)).sum();
        }
        row[k] = (0..n).map(|i| col(r, i) * y[i]).sum();
        // Ridge: keeps the system solvable when a covariate never varies.
        row[r] += 1e-9 * (n as f64);
    }
    // Gaussian elimination with partial pivoting.
    for c in 0..k {
        let p = (c..k)
            .max_by(|a1, b1| a[*a1][c].abs().total_cmp(&a[*b1][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        let d = a[c][c];
        if d.abs() < 1e-300 {
            continue;
        }
        let pivot = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / d;
                if f != 0.0 {
                    for (cell, p) in row.iter_mut().zip(&pivot).skip(c) {
                        *cell -= f * p;
                    }
                }
            }
        }
    }
    let beta: Vec<f64> = (0..k)
        .map(|c| {
            if a[c][c].abs() < 1e-300 {
                0.0
            } else {
                a[c][k] / a[c][c]
            }
        })
        .collect();
    (0..n)
        .map(|i| y[i] - (0..k).map(|j| beta[j] * col(j, i)).sum::<f64>())
        .collect()
}

/// Granger's F test at lag 1 for "x leads y": y_t on (1, y_(t-1)) against y_t on (1, y_(t-1),
/// x_(t-1)); F = (RSS_r - RSS_u) / (RSS_u / (n - 3)) with (1, n - 3) degrees of freedom.
/// Returns (F, p); `None` with fewer than 5 usable points. Only ever worded as "leads", never as
/// a cause.
pub fn granger_lag1(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let n = x.len().min(y.len());
    if n < 6 {
        return None;
    }
    let yt: Vec<f64> = y[1..n].to_vec();
    let y1: Vec<f64> = y[..n - 1].to_vec();
    let x1: Vec<f64> = x[..n - 1].to_vec();
    let rss = |e: Vec<f64>| e.iter().map(|v| v * v).sum::<f64>();
    let restricted = rss(residuals(&yt, std::slice::from_ref(&y1)));
    let unrestricted = rss(residuals(&yt, &[y1, x1]));
    let df = (yt.len() - 3) as f64;
    if unrestricted <= 0.0 {
        return None;
    }
    let f = (restricted - unrestricted) / (unrestricted / df);
    let p = statrs::distribution::FisherSnedecor::new(1.0, df)
        .map(|d| d.sf(f))
        .ok()?;
    Some((f, p))
}

/// Pairs needed to detect a correlation `rho` with a two-sided test at `alpha` and the given
/// power, by the Fisher-z approximation: ((z_(1-alpha/2) + z_power) / atanh rho)^2 + 3.
pub fn sample_size(rho: f64, alpha: f64, power: f64) -> f64 {
    let normal = Normal::standard();
    let za = normal.inverse_cdf(1.0 - alpha / 2.0);
    let zb = normal.inverse_cdf(power);
    ((za + zb) / rho.atanh()).powi(2) + 3.0
}

/// The smallest |r| that reaches two-sided `alpha` with `n` pairs: t / sqrt(df + t^2).
pub fn critical_r(n: f64, alpha: f64) -> f64 {
    let df = n - 2.0;
    let t = StudentsT::new(0.0, 1.0, df)
        .map(|d| d.inverse_cdf(1.0 - alpha / 2.0))
        .unwrap_or(f64::INFINITY);
    t / (df + t * t).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[track_caller]
    fn assert_close(a: f64, b: f64, rel: f64) {
        assert!(close(a, b, rel), "{a} vs {b}");
    }

    /// TV21.
    #[test]
    fn pearson_and_spearman_match_scipy_on_a_line() {
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let y = [2.0, 4.0, 5.0, 4.0, 5.0, 7.0, 8.0, 9.0, 10.0, 12.0];
        let r = pearson(&x, &y).unwrap();
        assert_close(r, 0.971908, 1e-5);
        assert_close(r * (8.0 / (1.0 - r * r)).sqrt(), 11.6797, 1e-5);
        assert_close(p_value(r, 8.0), 2.6340e-6, 1e-3);
        let (lo, hi) = fisher_ci(r, 10.0, 0.95).unwrap();
        assert_close(lo, 0.882029, 1e-5);
        assert_close(hi, 0.993545, 1e-5);
        let rho = spearman(&x, &y).unwrap();
        assert_close(rho, 0.969530, 1e-5);
        assert_close(p_value(rho, 8.0), 3.6349e-6, 1e-3);
    }

    /// TV22 and TV23 (an outlier moves Pearson, not Spearman).
    #[test]
    fn sleep_and_outlier_vectors() {
        let x = [7.5, 6.0, 8.0, 5.5, 7.0, 6.5, 8.5, 6.0];
        let y = [1.52, 1.47, 1.55, 1.49, 1.50, 1.51, 1.54, 1.45];
        let r = pearson(&x, &y).unwrap();
        assert_close(r, 0.852266, 1e-5);
        assert_close(p_value(r, 6.0), 0.0071940, 1e-3);
        let (lo, hi) = fisher_ci(r, 8.0, 0.95).unwrap();
        assert_close(lo, 0.369510, 1e-4);
        assert_close(hi, 0.972741, 1e-5);
        let rho = spearman(&x, &y).unwrap();
        assert_close(rho, 0.874267, 1e-5);
        assert_close(p_value(rho, 6.0), 0.0045124, 1e-3);

        let x: Vec<f64> = (1..=9).map(f64::from).chain([30.0]).collect();
        let y = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 8.0, 7.0, 10.0, 9.0];
        let r = pearson(&x, &y).unwrap();
        assert_close(r, 0.655284, 1e-5);
        assert_close(p_value(r, 8.0), 0.039712, 1e-3);
        let rho = spearman(&x, &y).unwrap();
        assert_close(rho, 0.951515, 1e-5);
        assert_close(p_value(rho, 8.0), 2.2799e-5, 1e-3);
    }

    /// TV24: a lag scan, x_(t-k) against y_t, and BH across the four lags.
    #[test]
    fn lag_scan_matches_the_reference() {
        let x = [
            6.5, 7.0, 8.0, 5.5, 6.0, 7.5, 8.5, 6.0, 7.0, 7.5, 5.0, 8.0, 6.5, 7.0,
        ];
        let y = [
            1.500, 1.507, 1.492, 1.520, 1.473, 1.496, 1.501, 1.524, 1.480, 1.503, 1.516, 1.473,
            1.512, 1.490,
        ];
        let expected = [
            (14, -0.471616, 0.088667),
            (13, 0.910377, 1.5486e-5),
            (12, -0.4229, 0.1708),
            (11, -0.1908, 0.5741),
        ];
        let mut p = Vec::new();
        for (k, (n, r_exp, p_exp)) in expected.iter().enumerate() {
            let (xs, ys) = (&x[..x.len() - k], &y[k..]);
            assert_eq!(xs.len(), *n);
            let r = pearson(xs, ys).unwrap();
            assert_close(r, *r_exp, 1e-3);
            let pk = p_value(r, *n as f64 - 2.0);
            assert_close(pk, *p_exp, 2e-3);
            p.push(pk);
        }
        let (lo, hi) = fisher_ci(pearson(&x[..13], &y[1..]).unwrap(), 13.0, 0.95).unwrap();
        assert!((lo - 0.721).abs() < 1e-3 && (hi - 0.973).abs() < 1e-3);
        let q = benjamini_hochberg(&p);
        for (a, b) in q.iter().zip([0.17733, 6.1946e-5, 0.22771, 0.57414]) {
            assert_close(*a, b, 2e-3);
        }
    }

    /// TV26.
    #[test]
    fn benjamini_hochberg_matches_the_reference() {
        let p = [
            0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205, 0.212, 0.216,
        ];
        let q = benjamini_hochberg(&p);
        let expected = [
            0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.10571, 0.216, 0.216, 0.216,
        ];
        for (a, b) in q.iter().zip(expected) {
            assert_close(*a, b, 1e-4);
        }
        assert_eq!(q.iter().filter(|q| **q <= 0.05).count(), 2);
        // Order in, order out.
        let rev: Vec<f64> = p.iter().rev().copied().collect();
        let q_rev = benjamini_hochberg(&rev);
        assert_close(q_rev[9], 0.01, 1e-9);
    }

    /// TV27.
    #[test]
    fn effective_n_lowers_significance() {
        let n_eff = effective_n(100.0, 0.6, 0.5);
        assert_close(n_eff, 53.846, 1e-4);
        assert_close(p_value(0.25, 98.0), 0.012123, 1e-3);
        assert_close(p_value(0.25, n_eff - 2.0), 0.068686, 1e-3);
        assert_eq!(effective_n(10.0, 0.99, 0.99), 3.0);
        assert_eq!(effective_n(10.0, -0.5, 0.5), 10.0);
    }

    /// TV28 and TV29.
    #[test]
    fn power_and_critical_values() {
        for (rho, n) in [(0.2, 194.0), (0.3, 84.9), (0.4, 46.7), (0.5, 29.0)] {
            assert!((sample_size(rho, 0.05, 0.8) - n).abs() < 0.1, "{rho}");
        }
        for (rho, n) in [(0.2, 326.9), (0.3, 142.0), (0.4, 77.2), (0.5, 47.1)] {
            assert!((sample_size(rho, 0.005, 0.8) - n).abs() < 0.1, "{rho}");
        }
        for (n, r) in [
            (10.0, 0.6319),
            (20.0, 0.4438),
            (30.0, 0.3610),
            (60.0, 0.2542),
            (90.0, 0.2072),
        ] {
            // The reference is rounded to 4 decimals.
            assert!((critical_r(n, 0.05) - r).abs() <= 5e-5, "{n}");
        }
        let (lo, hi) = fisher_ci(0.5, 30.0, 0.95).unwrap();
        assert_close(lo, 0.17043, 1e-4);
        assert_close(hi, 0.72896, 1e-4);
    }

    #[test]
    fn ranks_share_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }

    /// strideiq.md V1-V3 and V8: the original engine's |r| = 1, small-n and crude-p bugs.
    #[test]
    fn strideiq_correlation_vectors() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(pearson(&x, &[2.0, 4.0, 6.0, 8.0, 10.0]), Some(1.0));
        assert_eq!(p_value(1.0, 3.0), 0.0);
        assert_eq!(pearson(&x, &[10.0, 8.0, 6.0, 4.0, 2.0]), Some(-1.0));
        assert_eq!(p_value(-1.0, 3.0), 0.0);
        let r = pearson(&x, &[5.0, 2.0, 8.0, 1.0, 9.0]).unwrap();
        assert_close(r, 0.31305, 1e-4);
        assert_close(p_value(r, 3.0), 0.6080, 1e-3);
        for (r, n, p) in [
            (0.72, 10.0, 0.0189),
            (0.65, 10.0, 0.0419),
            (0.45, 30.0, 0.0126),
            (0.30, 60.0, 0.0199),
            (0.5, 30.0, 0.0049),
        ] {
            assert!((p_value(r, n - 2.0) - p).abs() < 5e-5, "r {r} n {n}");
        }
    }

    /// TV25: Granger at lag 1 on the TV24 data, both directions (statsmodels `ssr_ftest`).
    #[test]
    fn granger_matches_statsmodels() {
        let x = [
            6.5, 7.0, 8.0, 5.5, 6.0, 7.5, 8.5, 6.0, 7.0, 7.5, 5.0, 8.0, 6.5, 7.0,
        ];
        let y = [
            1.500, 1.507, 1.492, 1.520, 1.473, 1.496, 1.501, 1.524, 1.480, 1.503, 1.516, 1.473,
            1.512, 1.490,
        ];
        let (f, p) = granger_lag1(&x, &y).unwrap();
        assert_close(f, 36.9824, 1e-3);
        assert_close(p, 1.1859e-4, 2e-3);
        let (f, p) = granger_lag1(&y, &x).unwrap();
        assert_close(f, 0.77292, 1e-3);
        assert_close(p, 0.39995, 1e-3);
    }
}
