//! Efficiency over time: rolling means, the trend with its confidence interval, and how one
//! run compares with similar earlier runs and with the best at its distance. Pure functions
//! over the per-run metrics; docs/efficiency.md states each rule.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use uuid::Uuid;

use crate::activity::{Sport, WorkoutType};

/// Rolling windows, in days, ending at each run (the run included).
pub const ROLLING_WINDOWS_DAYS: [i64; 3] = [7, 28, 90];
/// Fewer runs with an EF than this give no trend: below it the interval is too wide to mean
/// anything.
pub const MIN_TREND_RUNS: usize = 8;
/// "Similar": the same sport (and workout type, when the run has one), distance within this
/// fraction.
pub const SIMILAR_DISTANCE: f64 = 0.10;
/// How many of the most recent similar earlier runs a run is compared with.
pub const SIMILAR_RUNS: usize = 10;
pub const TREND_METHOD: &str = "ordinary least squares of EF on days; 95 % interval from \
    Student's t with n_eff - 2 degrees of freedom, n_eff = n (1 - r1) / (1 + r1) from the lag-1 \
    autocorrelation r1 of the residuals (Santer et al. 2000)";

/// One run with an efficiency factor, as the trend and comparisons see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEf {
    pub activity_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub sport: Sport,
    pub workout_type: Option<WorkoutType>,
    pub distance_m: f64,
    pub efficiency_factor: f64,
}

/// Mean EF of the runs that started in the `window_days` up to and including `at`.
/// `runs` must be sorted by start time.
pub fn rolling_mean(runs: &[RunEf], at: DateTime<Utc>, window_days: i64) -> Option<f64> {
    let since = at - Duration::days(window_days);
    let values: Vec<f64> = runs
        .iter()
        .filter(|r| r.start_time > since && r.start_time <= at)
        .map(|r| r.efficiency_factor)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// A linear trend of EF over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trend {
    pub runs: usize,
    /// Change in EF per 30 days (m/min/bpm per 30 days).
    pub slope_per_30d: f64,
    pub ci95_low_per_30d: f64,
    pub ci95_high_per_30d: f64,
    /// The slope as a percentage of the mean EF.
    pub slope_pct_per_30d: f64,
    /// The sample size the interval is computed with, after allowing for autocorrelation.
    pub effective_n: f64,
    pub method: String,
}

/// Why there is no trend.
#[derive(Debug, Clone, PartialEq)]
pub enum NoTrend {
    TooFewRuns {
        runs: usize,
        needed: usize,
    },
    /// All runs on one day: time does not vary, so there is no slope.
    OneDay,
}

impl NoTrend {
    pub fn message(&self) -> String {
        match self {
            Self::TooFewRuns { runs, needed } => format!(
                "{runs} runs with an efficiency factor in this period; a trend needs {needed}, so {} more",
                needed - runs
            ),
            Self::OneDay => {
                "all runs in this period are on one day; a trend needs runs on different days"
                    .to_string()
            }
        }
    }
}

/// The least-squares trend of (days, EF) points, with a 95 % interval widened for
/// autocorrelated residuals.
pub fn trend(points: &[(f64, f64)]) -> Result<Trend, NoTrend> {
    let n = points.len();
    if n < MIN_TREND_RUNS {
        return Err(NoTrend::TooFewRuns {
            runs: n,
            needed: MIN_TREND_RUNS,
        });
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return Err(NoTrend::OneDay);
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let residuals: Vec<f64> = points
        .iter()
        .map(|p| p.1 - (my + slope * (p.0 - mx)))
        .collect();
    let sse: f64 = residuals.iter().map(|e| e * e).sum();
    let r1 = crate::stats::lag1_autocorrelation(&residuals);
    // Positive autocorrelation means fewer independent observations; a negative r1 is not
    // allowed to claim more than n.
    let effective_n = if r1 > 0.0 {
        (nf * (1.0 - r1) / (1.0 + r1)).clamp(3.0, nf)
    } else {
        nf
    };
    let df = effective_n - 2.0;
    let se = (sse / df / sxx).sqrt();
    let t = StudentsT::new(0.0, 1.0, df)
        .map(|d| d.inverse_cdf(0.975))
        .unwrap_or(f64::INFINITY);
    let per30 = |v: f64| v * 30.0;
    Ok(Trend {
        runs: n,
        slope_per_30d: per30(slope),
        ci95_low_per_30d: per30(slope - t * se),
        ci95_high_per_30d: per30(slope + t * se),
        slope_pct_per_30d: if my != 0.0 {
            100.0 * per30(slope) / my
        } else {
            0.0
        },
        effective_n,
        method: TREND_METHOD.to_string(),
    })
}

/// Runs "like" `run`: the same sport, the same workout type when `run` has one, and a
/// distance within [`SIMILAR_DISTANCE`] of it. `run` itself is never among them.
pub fn is_similar(run: &RunEf, other: &RunEf) -> bool {
    other.activity_id != run.activity_id
        && other.sport == run.sport
        && (run.workout_type.is_none() || other.workout_type == run.workout_type)
        && within_distance(run.distance_m, other.distance_m)
}

fn within_distance(base_m: f64, other_m: f64) -> bool {
    base_m > 0.0 && (other_m - base_m).abs() <= SIMILAR_DISTANCE * base_m
}

/// `run` against the mean of the most recent similar runs that started before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarComparison {
    /// How many earlier similar runs the mean is over (at most 10).
    pub runs: usize,
    pub mean_efficiency_factor: Option<f64>,
    /// 100 x (this run's EF - the mean) / the mean.
    pub difference_pct: Option<f64>,
    pub activity_ids: Vec<Uuid>,
    /// Set when there is nothing to compare with.
    pub note: Option<String>,
}

pub fn compare_with_similar(run: &RunEf, history: &[RunEf]) -> SimilarComparison {
    let mut earlier: Vec<&RunEf> = history
        .iter()
        .filter(|o| o.start_time < run.start_time && is_similar(run, o))
        .collect();
    earlier.sort_by_key(|o| std::cmp::Reverse(o.start_time));
    earlier.truncate(SIMILAR_RUNS);
    if earlier.is_empty() {
        return SimilarComparison {
            runs: 0,
            mean_efficiency_factor: None,
            difference_pct: None,
            activity_ids: Vec::new(),
            note: Some(format!(
                "no earlier {} within 10 % of {:.2} km yet",
                kind(run),
                run.distance_m / 1000.0
            )),
        };
    }
    let mean = earlier.iter().map(|o| o.efficiency_factor).sum::<f64>() / earlier.len() as f64;
    SimilarComparison {
        runs: earlier.len(),
        mean_efficiency_factor: Some(mean),
        difference_pct: Some(100.0 * (run.efficiency_factor - mean) / mean),
        activity_ids: earlier.iter().map(|o| o.activity_id).collect(),
        note: None,
    }
}

fn kind(run: &RunEf) -> String {
    let sport = match run.sport {
        Sport::TrailRun => "trail run",
        Sport::TreadmillRun => "treadmill run",
        _ => "run",
    };
    match run.workout_type {
        Some(w) => {
            let w = serde_json::to_value(w)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{w} {sport}")
        }
        None => sport.to_string(),
    }
}

/// The athlete's best EF among runs of the same sport within 10 % of `run`'s distance,
/// `run` included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BestComparison {
    pub activity_id: Uuid,
    pub local_date: NaiveDate,
    pub efficiency_factor: f64,
    /// 100 x (this run's EF - the best) / the best; 0 when this run is the best.
    pub difference_pct: f64,
    pub is_this_run: bool,
    /// How many runs the best is taken over.
    pub runs: usize,
}

pub fn compare_with_best(run: &RunEf, history: &[RunEf]) -> BestComparison {
    let candidates: Vec<&RunEf> = history
        .iter()
        .filter(|o| {
            o.activity_id != run.activity_id
                && o.sport == run.sport
                && within_distance(run.distance_m, o.distance_m)
        })
        .chain(std::iter::once(run))
        .collect();
    let best = candidates
        .iter()
        .copied()
        .max_by(|a, b| a.efficiency_factor.total_cmp(&b.efficiency_factor))
        .unwrap_or(run);
    BestComparison {
        activity_id: best.activity_id,
        local_date: best.local_date,
        efficiency_factor: best.efficiency_factor,
        difference_pct: 100.0 * (run.efficiency_factor - best.efficiency_factor)
            / best.efficiency_factor,
        is_this_run: best.activity_id == run.activity_id,
        runs: candidates.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run(i: u128, day: i64, km: f64, ef: f64, w: Option<WorkoutType>) -> RunEf {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 7, 0, 0).unwrap() + Duration::days(day);
        RunEf {
            activity_id: Uuid::from_u128(i),
            start_time: start,
            local_date: start.date_naive(),
            sport: Sport::Run,
            workout_type: w,
            distance_m: km * 1000.0,
            efficiency_factor: ef,
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn rolling_means_cover_the_window_up_to_each_run() {
        let runs = [
            run(1, 0, 10.0, 1.0, None),
            run(2, 5, 10.0, 2.0, None),
            run(3, 7, 10.0, 3.0, None),
        ];
        // At day 7 the 7-day window is (day 0, day 7]: runs 2 and 3.
        assert_eq!(rolling_mean(&runs, runs[2].start_time, 7), Some(2.5));
        assert_eq!(rolling_mean(&runs, runs[2].start_time, 28), Some(2.0));
        assert_eq!(rolling_mean(&runs, runs[0].start_time, 7), Some(1.0));
        assert_eq!(
            rolling_mean(&runs, runs[0].start_time - Duration::days(1), 7),
            None
        );
    }

    /// An exact line has a zero-width interval; the slope is per 30 days.
    #[test]
    fn trend_of_a_line_is_its_slope() {
        let points: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i) * 3.0, 1.0 + 0.001 * f64::from(i) * 3.0))
            .collect();
        let t = trend(&points).unwrap();
        assert!(close(t.slope_per_30d, 0.03, 1e-12));
        assert!(close(t.ci95_low_per_30d, 0.03, 1e-9));
        assert!(close(t.ci95_high_per_30d, 0.03, 1e-9));
    }

    /// Reference values computed independently with the textbook formulas: slope
    /// Sxy/Sxx = 0.0030033, se = sqrt(SSE/(n-2)/Sxx) = 0.00073989, and with t(0.975, 8) =
    /// 2.306004 (tables) a half-width of 0.0017062. The residuals zigzag (lag-1
    /// autocorrelation -0.92), which is not allowed to claim more than n observations.
    #[test]
    fn trend_interval_matches_a_t_interval() {
        let x = [0.0, 2.0, 5.0, 7.0, 9.0, 12.0, 14.0, 16.0, 19.0, 21.0];
        let y = [0.98, 1.01, 0.99, 1.03, 1.00, 1.04, 1.02, 1.05, 1.03, 1.06];
        let points: Vec<(f64, f64)> = x.iter().copied().zip(y).collect();
        let t = trend(&points).unwrap();
        assert!(close(t.slope_per_30d / 30.0, 0.003_003_3, 1e-7), "{t:?}");
        assert_eq!(t.effective_n, 10.0);
        let half = (t.ci95_high_per_30d - t.ci95_low_per_30d) / 2.0 / 30.0;
        assert!(close(half, 0.001_706_2, 1e-7), "{half}");
    }

    /// Residuals that drift together count as fewer observations, so the interval widens.
    #[test]
    fn autocorrelated_residuals_widen_the_interval() {
        let wave = |i: i32| (f64::from(i) / 4.0).sin() * 0.02;
        let points: Vec<(f64, f64)> = (0..40)
            .map(|i| (f64::from(i), 1.0 + 0.001 * f64::from(i) + wave(i)))
            .collect();
        let t = trend(&points).unwrap();
        assert!(t.effective_n < 20.0, "{t:?}");
        assert!(t.effective_n >= 3.0);
        assert!(t.ci95_low_per_30d < t.slope_per_30d && t.slope_per_30d < t.ci95_high_per_30d);
    }

    #[test]
    fn too_few_runs_say_how_many_more() {
        let points = [(0.0, 1.0), (1.0, 1.1), (2.0, 1.0)];
        let e = trend(&points).unwrap_err();
        assert_eq!(e, NoTrend::TooFewRuns { runs: 3, needed: 8 });
        assert_eq!(
            e.message(),
            "3 runs with an efficiency factor in this period; a trend needs 8, so 5 more"
        );
        let same_day = [(4.0, 1.0); 9];
        assert_eq!(trend(&same_day).unwrap_err(), NoTrend::OneDay);
    }

    #[test]
    fn comparisons_take_similar_earlier_runs_and_the_best_at_the_distance() {
        use WorkoutType::{Easy, Tempo};
        let history = vec![
            run(1, 0, 10.0, 0.90, Some(Easy)),
            run(2, 2, 10.9, 1.00, Some(Easy)),  // within 10 %
            run(3, 4, 11.5, 1.30, Some(Easy)),  // too far
            run(4, 6, 10.0, 1.20, Some(Tempo)), // another kind, but counts for the best
            run(5, 8, 9.5, 0.95, None),
            run(6, 20, 10.0, 1.50, Some(Easy)), // later
        ];
        let this = run(7, 10, 10.0, 1.045, Some(Easy));
        let s = compare_with_similar(&this, &history);
        assert_eq!(s.runs, 2);
        assert_eq!(s.activity_ids, vec![Uuid::from_u128(2), Uuid::from_u128(1)]);
        assert!(close(s.mean_efficiency_factor.unwrap(), 0.95, 1e-12));
        assert!(close(s.difference_pct.unwrap(), 10.0, 1e-9));
        // Without a workout type every run of the sport is a candidate.
        let untyped = RunEf {
            workout_type: None,
            ..this.clone()
        };
        assert_eq!(compare_with_similar(&untyped, &history).runs, 4);

        let b = compare_with_best(&this, &history);
        assert_eq!(b.activity_id, Uuid::from_u128(6));
        assert!(!b.is_this_run);
        assert_eq!(b.runs, 6);
        assert!(close(b.difference_pct, 100.0 * (1.045 - 1.5) / 1.5, 1e-9));

        let first = run(8, 0, 42.2, 0.8, None);
        let lone = compare_with_similar(&first, &history);
        assert_eq!(lone.runs, 0);
        assert_eq!(
            lone.note.as_deref(),
            Some("no earlier run within 10 % of 42.20 km yet")
        );
        let best = compare_with_best(&first, &history);
        assert!(best.is_this_run && best.difference_pct == 0.0 && best.runs == 1);
    }
}
