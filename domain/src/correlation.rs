//! Correlation discovery for one athlete: which daily inputs go with better or worse running
//! efficiency, and after how many days. Pure: it takes the athlete's days and runs and returns
//! findings; docs/correlations.md explains every step and threshold.
//!
//! The method, in order:
//! 1. Daily series on the athlete's calendar: inputs (carried forward only where declared),
//!    the training-load inputs derived from the runs, and per-day outcomes from qualifying runs.
//! 2. Known structure is removed from each outcome before any test: its slow trend (a centred
//!    28-day rolling median), then by least squares the weekday pattern, the run's length and
//!    the previous day's training load and form. Inputs lose their own slow trend the same way.
//! 3. Every (input, outcome, lag 0-7, method) is a test: Pearson and Spearman, p from Student's
//!    t on n_eff - 2 degrees of freedom, n_eff from the lag-1 autocorrelations (Bretherton
//!    1999), Fisher-z intervals on n_eff. Pairs of inputs (combinations) are tests too.
//! 4. Benjamini-Hochberg over every test run, so the choice of lag and method is paid for.
//! 5. A finding needs q <= 0.10, n and n_eff >= 20 and an interval that excludes zero.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::load;
use crate::stats;

/// Whether more of an outcome is better. The only place an outcome's direction is stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

#[derive(Debug, Clone, Copy)]
pub struct OutcomeSpec {
    pub name: &'static str,
    pub direction: Direction,
    /// How the effect is phrased: "efficiency" in %, "decoupling" in points.
    pub label: &'static str,
    pub relative: bool,
}

pub const OUTCOMES: &[OutcomeSpec] = &[
    OutcomeSpec {
        name: "efficiency_factor",
        direction: Direction::HigherIsBetter,
        label: "efficiency",
        relative: true,
    },
    OutcomeSpec {
        name: "decoupling_pct",
        direction: Direction::LowerIsBetter,
        label: "decoupling",
        relative: false,
    },
];

pub fn outcome(name: &str) -> Option<&'static OutcomeSpec> {
    OUTCOMES.iter().find(|o| o.name == name)
}

/// A run counts towards the outcomes with at least this much analysed time.
pub const MIN_ANALYZED_S: f64 = 1200.0;
pub const MAX_LAG_DAYS: u32 = 7;
pub const Q_THRESHOLD: f64 = 0.10;
/// Fewer aligned pairs (or effective pairs) than this surface nothing.
pub const MIN_PAIRS: usize = 20;
/// A test is run only with at least this many pairs; below it, it cannot reach significance
/// after correction and would only dilute the family.
pub const MIN_PAIRS_TO_TEST: usize = 10;
/// The centred rolling-median window for slow trends, in days.
pub const TREND_WINDOW_DAYS: i64 = 28;
/// The effect size the "how much more data" answer is for.
pub const POWER_EFFECT_R: f64 = 0.3;
pub const POWER: f64 = 0.8;
/// Training-load inputs derived from the runs; the outcome is also adjusted for the first and
/// the last.
pub const LOAD_INPUTS: [&str; 4] = [
    "load_prev_day",
    "ctl_prev_day",
    "atl_prev_day",
    "tsb_prev_day",
];

/// One calendar day's inputs: any numeric names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayInputs {
    pub date: NaiveDate,
    pub inputs: BTreeMap<String, f64>,
}

/// One run's outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub date: NaiveDate,
    pub efficiency_factor: Option<f64>,
    pub decoupling_pct: Option<f64>,
    pub analyzed_time_s: f64,
    /// The run's training load (TRIMP); absent counts as 0 for the load inputs.
    #[serde(default)]
    pub training_load: Option<f64>,
}

/// An athlete's data, as `stridelog correlations analyze --input` reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    #[serde(default)]
    pub days: Vec<DayInputs>,
    #[serde(default)]
    pub activities: Vec<RunOutcome>,
    /// Sparse inputs carried forward, and for how many days at most.
    #[serde(default)]
    pub carry_forward_days: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Pearson,
    Spearman,
    /// Combinations: both inputs high against both low.
    Quadrant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    WhatWorks,
    WhatDoesntWork,
}

/// Switches for the ablation runs that show why each step is there. Production uses the
/// default: everything on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub max_lag_days: u32,
    pub multiple_testing: bool,
    pub remove_structure: bool,
    pub combinations: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_lag_days: MAX_LAG_DAYS,
            multiple_testing: true,
            remove_structure: true,
            combinations: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// Stable across recomputes: the same input, outcome, lag and method always get the same
    /// id ([`finding_id`]), so feedback given on a finding still names it after the next
    /// snapshot. Snapshots stored before ids existed get theirs when read.
    #[serde(default)]
    pub id: String,
    /// The input, or "a+b" for a combination.
    pub input: String,
    pub outcome: String,
    pub lag_days: u32,
    pub method: Method,
    /// The correlation; for a combination, the standardised difference (Cohen's d).
    pub r: f64,
    pub p: f64,
    pub q: f64,
    pub n: usize,
    pub n_eff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub category: Category,
    /// The outcome's difference between high and low input days (median split; for a
    /// combination, both high against both low), adjusted as the test is: % of the mean for
    /// efficiency, points for decoupling.
    pub effect: f64,
    pub effect_ci_low: f64,
    pub effect_ci_high: f64,
    pub text: String,
}

/// An (input, outcome) without enough data to be tested fully.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Insufficient {
    pub input: String,
    pub outcome: String,
    /// Aligned pairs at the best-covered lag, and their effective number.
    pub n: usize,
    pub n_eff: f64,
    /// Effective pairs a correlation of 0.3 needs to pass the correction with 80 % power.
    pub needed: usize,
    /// About how many more days of logging that is at the athlete's current rate of runs.
    pub more_days: Option<u32>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Analysis {
    pub tests_run: usize,
    pub findings: Vec<Finding>,
    pub insufficient: Vec<Insufficient>,
}

/// The daily series on one calendar.
struct Series {
    first: NaiveDate,
    len: usize,
    inputs: BTreeMap<String, Vec<Option<f64>>>,
    /// Per outcome: the day's value, averaged over qualifying runs by analysed time.
    outcomes: BTreeMap<&'static str, Vec<Option<f64>>>,
    /// Analysed time of the day's qualifying runs, in hours.
    duration_h: Vec<f64>,
    run_days: usize,
}

impl Series {
    fn date(&self, i: usize) -> NaiveDate {
        self.first + chrono::Duration::days(i as i64)
    }
}

fn build(data: &Dataset) -> Option<Series> {
    let dates = data
        .days
        .iter()
        .map(|d| d.date)
        .chain(data.activities.iter().map(|a| a.date));
    let first = dates.clone().min()?;
    let last = dates.max()?;
    let len = (last - first).num_days() as usize + 1;
    let at = |d: NaiveDate| (d - first).num_days() as usize;

    let mut inputs = logged_inputs(data, len, at);
    let runs = run_outcomes(data, len, at);
    let run_days = runs.duration_h.iter().filter(|d| **d > 0.0).count();

    // Load inputs: the state at the end of the previous day.
    if let Some(first_load) = data.activities.iter().map(|a| a.date).min() {
        let series = load_series(first, first_load, last, &runs.daily_load, at(first_load));
        for (name, s) in LOAD_INPUTS.iter().zip(series) {
            inputs.insert(name.to_string(), s);
        }
    }
    Some(Series {
        first,
        len,
        inputs,
        outcomes: runs.outcomes,
        duration_h: runs.duration_h,
        run_days,
    })
}

/// The athlete's own inputs on the calendar: entry errors screened out, then sparse inputs
/// carried forward as far as declared. The load inputs are derived, never taken as logged.
fn logged_inputs(
    data: &Dataset,
    len: usize,
    at: impl Fn(NaiveDate) -> usize,
) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut inputs: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for day in &data.days {
        for (name, v) in &day.inputs {
            if !v.is_finite() || LOAD_INPUTS.contains(&name.as_str()) {
                continue;
            }
            inputs
                .entry(name.clone())
                .or_insert_with(|| vec![None; len])[at(day.date)] = Some(*v);
        }
    }
    for series in inputs.values_mut() {
        screen_entry_errors(series);
    }
    for (name, days) in &data.carry_forward_days {
        if let Some(series) = inputs.get_mut(name) {
            carry_forward(series, *days as usize);
        }
    }
    inputs
}

/// Fills each gap with the last value seen at most `days` days before it.
fn carry_forward(series: &mut [Option<f64>], days: usize) {
    let mut last: Option<(usize, f64)> = None;
    for (i, slot) in series.iter_mut().enumerate() {
        match *slot {
            Some(v) => last = Some((i, v)),
            None => {
                if let Some((j, v)) = last
                    && i - j <= days
                {
                    *slot = Some(v);
                }
            }
        }
    }
}

/// What the runs give each calendar day.
struct RunDays {
    /// Per outcome: the day's value, averaged over qualifying runs by analysed time.
    outcomes: BTreeMap<&'static str, Vec<Option<f64>>>,
    /// Analysed time of the day's qualifying runs, in hours.
    duration_h: Vec<f64>,
    /// The day's training load over every run, qualifying or not.
    daily_load: Vec<f64>,
}

/// Outcomes from qualifying runs, weighted by analysed time.
fn run_outcomes(data: &Dataset, len: usize, at: impl Fn(NaiveDate) -> usize) -> RunDays {
    let mut sums: BTreeMap<&'static str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut duration_h = vec![0.0; len];
    let mut daily_load = vec![0.0; len];
    for a in &data.activities {
        let i = at(a.date);
        daily_load[i] += a.training_load.filter(|l| l.is_finite()).unwrap_or(0.0);
        let qualifies = a.analyzed_time_s >= MIN_ANALYZED_S
            && a.efficiency_factor
                .is_some_and(|e| e.is_finite() && e > 0.0);
        if !qualifies {
            continue;
        }
        duration_h[i] += a.analyzed_time_s / 3600.0;
        for spec in OUTCOMES {
            let v = match spec.name {
                "efficiency_factor" => a.efficiency_factor,
                _ => a.decoupling_pct,
            };
            if let Some(v) = v.filter(|v| v.is_finite()) {
                let s = &mut sums
                    .entry(spec.name)
                    .or_insert_with(|| vec![(0.0, 0.0); len])[i];
                s.0 += v * a.analyzed_time_s;
                s.1 += a.analyzed_time_s;
            }
        }
    }
    let outcomes = sums
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.into_iter()
                    .map(|(s, w)| (w > 0.0).then(|| s / w))
                    .collect(),
            )
        })
        .collect();
    RunDays {
        outcomes,
        duration_h,
        daily_load,
    }
}

/// The load inputs in [`LOAD_INPUTS`] order, each day holding the previous day's end state.
/// `offset` is `first_load`'s index on the calendar that starts at `first`.
fn load_series(
    first: NaiveDate,
    first_load: NaiveDate,
    last: NaiveDate,
    daily_load: &[f64],
    offset: usize,
) -> [Vec<Option<f64>>; 4] {
    let len = daily_load.len();
    let loads: Vec<(NaiveDate, f64)> = (0..len)
        .map(|i| (first + chrono::Duration::days(i as i64), daily_load[i]))
        .collect();
    let pmc = load::pmc(first_load, last, &loads);
    let mut series: [Vec<Option<f64>>; 4] = std::array::from_fn(|_| vec![None; len]);
    for (k, day) in pmc.iter().enumerate() {
        let i = offset + k + 1;
        if i >= len {
            break;
        }
        series[0][i] = Some(day.load);
        series[1][i] = Some(day.ctl);
        series[2][i] = Some(day.atl);
        series[3][i] = Some(day.tsb);
    }
    series
}

/// Values further than this many robust standard deviations (1.4826 x MAD) from the input's
/// median are entry errors (a slipped decimal point, a 0 for "not measured") and count as
/// missing. Loose on purpose: a real but unusual day stays.
pub const ENTRY_ERROR_MADS: f64 = 6.0;

fn screen_entry_errors(series: &mut [Option<f64>]) {
    let values: Vec<f64> = series.iter().flatten().copied().collect();
    if values.len() < 10 {
        return;
    }
    let m = median(values.clone());
    let mad = 1.4826 * median(values.iter().map(|v| (v - m).abs()).collect());
    if mad <= 0.0 {
        return;
    }
    for v in series.iter_mut() {
        if v.is_some_and(|x| (x - m).abs() > ENTRY_ERROR_MADS * mad) {
            *v = None;
        }
    }
}

/// `x` minus its centred rolling median over the days that have a value (at least 5 of them
/// in the window; otherwise the series' median).
fn detrend(x: &[Option<f64>]) -> Vec<Option<f64>> {
    let half = TREND_WINDOW_DAYS / 2;
    let present: Vec<(usize, f64)> = x
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if present.is_empty() {
        return x.to_vec();
    }
    let global = median(present.iter().map(|p| p.1).collect());
    let mut out = vec![None; x.len()];
    let (mut lo, mut hi) = (0usize, 0usize);
    for &(i, v) in &present {
        while present[lo].0 + (half as usize) < i {
            lo += 1;
        }
        while hi < present.len() && present[hi].0 <= i + half as usize {
            hi += 1;
        }
        let window: Vec<f64> = present[lo..hi].iter().map(|p| p.1).collect();
        let m = if window.len() >= 5 {
            median(window)
        } else {
            global
        };
        out[i] = Some(v - m);
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The outcome on run days with known structure removed: its slow trend, then the weekday
/// pattern, the run's length, and the previous day's load and form. Training load is known
/// structure, not a discovery: the load inputs are tested against this outcome too, so only
/// what they add beyond it can surface.
fn adjusted_outcome(s: &Series, y: &[Option<f64>], options: &Options) -> Vec<Option<f64>> {
    if !options.remove_structure {
        return y.to_vec();
    }
    let dev = detrend(y);
    let days: Vec<usize> = (0..s.len).filter(|i| dev[*i].is_some()).collect();
    let values: Vec<f64> = days.iter().map(|i| dev[*i].unwrap_or(0.0)).collect();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    // Weekday dummies only with enough runs to estimate them (about 5 per parameter).
    if days.len() >= 50 {
        for wd in 1..7 {
            cols.push(
                days.iter()
                    .map(|i| f64::from(u8::from(s.date(*i).weekday().num_days_from_monday() == wd)))
                    .collect(),
            );
        }
    }
    cols.push(days.iter().map(|i| s.duration_h[*i]).collect());
    for name in [LOAD_INPUTS[0], LOAD_INPUTS[3]] {
        if let Some(series) = s.inputs.get(name) {
            cols.push(days.iter().map(|i| series[*i].unwrap_or(0.0)).collect());
        }
    }
    let e = if days.len() > cols.len() + 3 {
        stats::residuals(&values, &cols)
    } else {
        values
    };
    let mut out = vec![None; s.len];
    for (i, v) in days.iter().zip(e) {
        out[*i] = Some(v);
    }
    out
}

/// One test's numbers.
#[derive(Debug, Clone)]
struct Test {
    input: String,
    outcome: &'static OutcomeSpec,
    lag: u32,
    method: Method,
    r: f64,
    p: f64,
    n: usize,
    n_eff: f64,
    ci: (f64, f64),
    effect: (f64, f64, f64),
    threshold: Option<f64>,
    /// A combination's two groups (both high, both low), in effect units, for its bootstrap.
    groups: Option<Box<(Vec<f64>, Vec<f64>)>>,
}

/// (x, y, raw x, raw y) aligned: x from `lag` days before each outcome day.
struct Pairs {
    x: Vec<f64>,
    y: Vec<f64>,
    raw_x: Vec<f64>,
    raw_y: Vec<f64>,
}

fn pairs(
    x: &[Option<f64>],
    raw_x: &[Option<f64>],
    y: &[Option<f64>],
    raw_y: &[Option<f64>],
    lag: usize,
) -> Pairs {
    let mut p = Pairs {
        x: Vec::new(),
        y: Vec::new(),
        raw_x: Vec::new(),
        raw_y: Vec::new(),
    };
    for t in lag..y.len() {
        if let (Some(xv), Some(yv), Some(rx), Some(ry)) =
            (x[t - lag], y[t], raw_x[t - lag], raw_y[t])
        {
            p.x.push(xv);
            p.y.push(yv);
            p.raw_x.push(rx);
            p.raw_y.push(ry);
        }
    }
    p
}

/// High-minus-low difference of `y` split at the median of `split`, with a 95 % interval on
/// `n_eff`: (difference, low, high).
fn split_effect(split: &[f64], y: &[f64], n_eff: f64, n: usize) -> Option<(f64, f64, f64, f64)> {
    let m = median(split.to_vec());
    let (hi, lo): (Vec<f64>, Vec<f64>) = {
        let mut hi = Vec::new();
        let mut lo = Vec::new();
        for (s, v) in split.iter().zip(y) {
            if *s > m { hi.push(*v) } else { lo.push(*v) }
        }
        (hi, lo)
    };
    difference(&hi, &lo, n_eff, n).map(|(d, a, b)| (d, a, b, m))
}

/// Resamples for a combination's interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Percentile bootstrap 95 % interval of mean(a) - mean(b). Each resample draws
/// `ratio` (n_eff / n) of each group's size, so autocorrelated days do not count as
/// independent ones. Seeded, so the same data always gives the same interval.
fn bootstrap_difference(a: &[f64], b: &[f64], ratio: f64, seed: u64) -> (f64, f64) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let ratio = ratio.clamp(0.0, 1.0);
    let size = |n: usize| ((n as f64 * ratio).round() as usize).max(2);
    let (ma, mb) = (size(a.len()), size(b.len()));
    let mut mean_of = |v: &[f64], m: usize| {
        let mut sum = 0.0;
        for _ in 0..m {
            sum += v[rng.random_range(0..v.len())];
        }
        sum / m as f64
    };
    let mut diffs: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| mean_of(a, ma) - mean_of(b, mb))
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |p: f64| diffs[((p * (diffs.len() - 1) as f64).round() as usize).min(diffs.len() - 1)];
    (at(0.025), at(0.975))
}

/// The bootstrap's seed from a test's name. Not `DefaultHasher`: its output may change between
/// Rust releases, and an interval must not move when only the toolchain does.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Mean of `a` minus mean of `b`, with a t interval whose group sizes are scaled by n_eff / n.
fn difference(a: &[f64], b: &[f64], n_eff: f64, n: usize) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var =
        |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    let (ma, mb) = (mean(a), mean(b));
    let scale = (n_eff / n as f64).clamp(0.0, 1.0);
    let se = (var(a, ma) / (a.len() as f64 * scale) + var(b, mb) / (b.len() as f64 * scale)).sqrt();
    let df = (n_eff - 2.0).max(1.0);
    let t = statrs::distribution::StudentsT::new(0.0, 1.0, df)
        .map(|d| statrs::distribution::ContinuousCDF::inverse_cdf(&d, 0.975))
        .unwrap_or(f64::INFINITY);
    let d = ma - mb;
    Some((d, d - t * se, d + t * se))
}

/// Per (input, outcome): the most aligned pairs at any lag, and their effective number.
type Coverage = BTreeMap<(String, &'static str), (usize, f64)>;

/// Per (input, outcome): the index of its best surfaced test, and that test's q.
type Best = BTreeMap<(String, &'static str), (usize, f64)>;

/// Runs the whole analysis.
pub fn analyze(data: &Dataset, options: &Options) -> Analysis {
    let Some(s) = build(data) else {
        return Analysis {
            tests_run: 0,
            findings: Vec::new(),
            insufficient: Vec::new(),
        };
    };
    let detrended = detrended_inputs(&s, options);
    let mut tests: Vec<Test> = Vec::new();
    let mut coverage = Coverage::new();
    for spec in OUTCOMES {
        let Some(raw_y) = s.outcomes.get(spec.name) else {
            continue;
        };
        outcome_tests(
            &s,
            &detrended,
            spec,
            raw_y,
            options,
            &mut tests,
            &mut coverage,
        );
    }

    let p: Vec<f64> = tests.iter().map(|t| t.p).collect();
    let q = if options.multiple_testing {
        stats::benjamini_hochberg(&p)
    } else {
        p.clone()
    };
    bootstrap_combinations(&mut tests, &q);
    let best = best_surfaced(&tests, &q);
    let mut findings: Vec<Finding> = best
        .values()
        .map(|(i, qi)| finding(&tests[*i], *qi))
        .collect();
    findings.sort_by(|a, b| a.q.total_cmp(&b.q).then(b.r.abs().total_cmp(&a.r.abs())));

    let tests_run = tests.len();
    let family = family_size(detrended.len(), options);
    let insufficient = insufficient(&s, coverage, &best, family);
    Analysis {
        tests_run,
        findings,
        insufficient,
    }
}

/// Each input without its slow trend (or as it is, when structure is not removed).
fn detrended_inputs<'a>(s: &'a Series, options: &Options) -> BTreeMap<&'a str, Vec<Option<f64>>> {
    s.inputs
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                if options.remove_structure {
                    detrend(v)
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

/// Every test of one outcome: each input at each lag by each method, then the combinations.
/// Records each (input, outcome)'s coverage on the way, tested or not.
fn outcome_tests(
    s: &Series,
    detrended: &BTreeMap<&str, Vec<Option<f64>>>,
    spec: &'static OutcomeSpec,
    raw_y: &[Option<f64>],
    options: &Options,
    tests: &mut Vec<Test>,
    coverage: &mut Coverage,
) {
    let mean_y = {
        let v: Vec<f64> = raw_y.iter().flatten().copied().collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let scale = |d: f64| {
        if spec.relative && mean_y != 0.0 {
            100.0 * d / mean_y
        } else {
            d
        }
    };
    let y_full = adjusted_outcome(s, raw_y, options);
    for (name, x) in detrended {
        let y = &y_full;
        let raw_x = &s.inputs[*name];
        for lag in 0..=options.max_lag_days {
            let p = pairs(x, raw_x, y, raw_y, lag as usize);
            let n = p.x.len();
            let r1 = stats::lag1_autocorrelation(&p.x);
            let r2 = stats::lag1_autocorrelation(&p.y);
            let n_eff = stats::effective_n(n as f64, r1, r2);
            let c = coverage
                .entry((name.to_string(), spec.name))
                .or_insert((0, 0.0));
            if n > c.0 {
                *c = (n, n_eff);
            }
            if n < MIN_PAIRS_TO_TEST {
                continue;
            }
            for method in [Method::Pearson, Method::Spearman] {
                let key = (*name, spec, lag, method);
                tests.extend(correlation_test(key, &p, n_eff, &scale));
            }
        }
    }
    if options.combinations {
        combinations(s, detrended, &y_full, raw_y, spec, &scale, tests);
    }
}

/// One input against one outcome at one lag by one method; `None` when the numbers are not
/// defined (a constant series, too few pairs on one side of the median).
fn correlation_test(
    (name, spec, lag, method): (&str, &'static OutcomeSpec, u32, Method),
    p: &Pairs,
    n_eff: f64,
    scale: &dyn Fn(f64) -> f64,
) -> Option<Test> {
    let n = p.x.len();
    let r = match method {
        Method::Pearson => stats::pearson(&p.x, &p.y),
        _ => stats::spearman(&p.x, &p.y),
    }?;
    let (lo, hi) = stats::fisher_ci(r, n_eff, 0.95)?;
    let (effect, threshold) = split_effect(&p.raw_x, &p.y, n_eff, n)
        .map(|(d, a, b, m)| ((scale(d), scale(a), scale(b)), m))?;
    Some(Test {
        input: name.to_string(),
        outcome: spec,
        lag,
        method,
        r,
        p: stats::p_value(r, n_eff - 2.0),
        n,
        n_eff,
        ci: (lo, hi),
        effect,
        threshold: Some(threshold),
        groups: None,
    })
}

/// A combination that passes the correction gets its interval from a bootstrap.
fn bootstrap_combinations(tests: &mut [Test], q: &[f64]) {
    for (i, t) in tests.iter_mut().enumerate() {
        if q[i] > Q_THRESHOLD {
            continue;
        }
        if let Some(g) = &t.groups {
            let seed = fnv1a(format!("{}|{}", t.input, t.outcome.name).as_bytes());
            let (lo, hi) = bootstrap_difference(&g.0, &g.1, t.n_eff / t.n as f64, seed);
            t.effect.1 = lo;
            t.effect.2 = hi;
            t.ci = (lo, hi);
        }
    }
}

/// The best surfaced test per (input, outcome).
fn best_surfaced(tests: &[Test], q: &[f64]) -> Best {
    let mut best = Best::new();
    for (i, t) in tests.iter().enumerate() {
        let surfaced = q[i] <= Q_THRESHOLD
            && t.n >= MIN_PAIRS
            && t.n_eff >= MIN_PAIRS as f64
            && (t.ci.0 > 0.0 || t.ci.1 < 0.0);
        if !surfaced {
            continue;
        }
        let key = (t.input.clone(), t.outcome.name);
        // BH's step-up gives neighbouring tests equal q; the smaller p decides between them.
        let better = best
            .get(&key)
            .is_none_or(|(j, qj)| q[i] < *qj || (q[i] == *qj && t.p < tests[*j].p));
        if better {
            best.insert(key, (i, q[i]));
        }
    }
    best
}

/// The family a full data set gives this athlete with `inputs` inputs: every input x outcome x
/// lag x method, and every pair of inputs per outcome. A lone true effect passes BH when its p
/// is below q / family, so that is the alpha the power calculation uses.
fn family_size(inputs: usize, options: &Options) -> usize {
    let k = inputs;
    k * OUTCOMES.len() * (options.max_lag_days as usize + 1) * 2
        + if options.combinations {
            let m = k.saturating_sub(LOAD_INPUTS.len());
            m * m.saturating_sub(1) / 2 * OUTCOMES.len()
        } else {
            0
        }
}

/// The (input, outcome)s that surfaced nothing and have too few (effective) pairs to, with how
/// much more data they need.
fn insufficient(s: &Series, coverage: Coverage, best: &Best, family: usize) -> Vec<Insufficient> {
    let alpha = Q_THRESHOLD / family.max(1) as f64;
    let needed = stats::sample_size(POWER_EFFECT_R, alpha, POWER).ceil() as usize;
    let runs_per_day = s.run_days as f64 / s.len.max(1) as f64;
    coverage
        .into_iter()
        .filter(|(_, (n, n_eff))| *n < MIN_PAIRS || *n_eff < needed as f64)
        .filter(|(key, _)| !best.contains_key(key))
        .map(|((input, outcome), (n, n_eff))| {
            let missing = (needed as f64 - n_eff).max(0.0);
            // Pairs come from run days on which the input was logged too; the rate needs a
            // few weeks of history to mean anything.
            let more_days = (s.len >= 28 && n > 0 && runs_per_day > 0.0).then(|| {
                let pairs_per_day = runs_per_day * n as f64 / s.run_days.max(1) as f64;
                let eff_per_pair = (n_eff / n as f64).max(1e-6);
                (missing / (pairs_per_day * eff_per_pair)).ceil() as u32
            });
            let head = format!(
                "{} and {}: {n} paired {} so far; a correlation of {POWER_EFFECT_R} needs about {needed} ({:.0} % power after correcting for {family} tests)",
                display_name(&input),
                outcome_label(outcome),
                if n == 1 { "day" } else { "days" },
                POWER * 100.0
            );
            let text = match more_days {
                Some(d) => format!("{head}, about {d} more days at the current rate"),
                None => head,
            };
            Insufficient {
                input,
                outcome: outcome.to_string(),
                n,
                n_eff,
                needed,
                more_days,
                text,
            }
        })
        .collect()
}

/// Pairs of inputs at lag 1: days when both were above their medians against days when both
/// were at or below, on the adjusted outcome; Welch's t on n_eff.
fn combinations(
    s: &Series,
    detrended: &BTreeMap<&str, Vec<Option<f64>>>,
    y: &[Option<f64>],
    raw_y: &[Option<f64>],
    spec: &'static OutcomeSpec,
    scale: &dyn Fn(f64) -> f64,
    tests: &mut Vec<Test>,
) {
    let lag = 1usize;
    let names: Vec<&str> = detrended
        .keys()
        .copied()
        .filter(|n| !LOAD_INPUTS.contains(n))
        .collect();
    for (ia, a) in names.iter().enumerate() {
        for b in &names[ia + 1..] {
            let (xa, xb) = (&s.inputs[*a], &s.inputs[*b]);
            let mut rows: Vec<(f64, f64, f64)> = Vec::new();
            for t in lag..s.len {
                if let (Some(va), Some(vb), Some(yv), Some(_)) =
                    (xa[t - lag], xb[t - lag], y[t], raw_y[t])
                {
                    rows.push((va, vb, yv));
                }
            }
            if rows.len() < MIN_PAIRS {
                continue;
            }
            tests.extend(quadrant_test(&format!("{a}+{b}"), &rows, spec, lag, scale));
        }
    }
}

/// One combination's test from its (a, b, adjusted outcome) rows; `None` when either quadrant
/// has fewer than 5 days or the difference has no spread.
fn quadrant_test(
    input: &str,
    rows: &[(f64, f64, f64)],
    spec: &'static OutcomeSpec,
    lag: usize,
    scale: &dyn Fn(f64) -> f64,
) -> Option<Test> {
    let ma = median(rows.iter().map(|r| r.0).collect());
    let mb = median(rows.iter().map(|r| r.1).collect());
    let both_high: Vec<f64> = rows
        .iter()
        .filter(|r| r.0 > ma && r.1 > mb)
        .map(|r| r.2)
        .collect();
    let both_low: Vec<f64> = rows
        .iter()
        .filter(|r| r.0 <= ma && r.1 <= mb)
        .map(|r| r.2)
        .collect();
    let used = both_high.len() + both_low.len();
    if both_high.len() < 5 || both_low.len() < 5 {
        return None;
    }
    let seq: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let r1 = stats::lag1_autocorrelation(&seq);
    let n_eff = stats::effective_n(used as f64, r1, r1.max(0.0));
    let (d, lo, hi) = difference(&both_high, &both_low, n_eff, used)?;
    // Welch's t on the effective sizes, as a point-biserial r for the family.
    let se = (hi - d) / {
        let df = (n_eff - 2.0).max(1.0);
        statrs::distribution::StudentsT::new(0.0, 1.0, df)
            .map(|dist| statrs::distribution::ContinuousCDF::inverse_cdf(&dist, 0.975))
            .unwrap_or(f64::INFINITY)
    };
    if se.is_nan() || se <= 0.0 {
        return None;
    }
    let t = d / se;
    let df = (n_eff - 2.0).max(1.0);
    let r = t / (t * t + df).sqrt();
    let p = stats::p_value(r, df);
    let pooled = {
        let all: Vec<f64> = both_high.iter().chain(&both_low).copied().collect();
        let m = all.iter().sum::<f64>() / all.len() as f64;
        (all.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (all.len() - 1) as f64).sqrt()
    };
    let cohen_d = if pooled > 0.0 { d / pooled } else { 0.0 };
    Some(Test {
        input: input.to_string(),
        outcome: spec,
        lag: lag as u32,
        method: Method::Quadrant,
        r: cohen_d,
        p,
        n: used,
        n_eff,
        ci: (lo, hi),
        effect: (scale(d), scale(lo), scale(hi)),
        threshold: None,
        groups: Some(Box::new((
            both_high.iter().map(|v| scale(*v)).collect(),
            both_low.iter().map(|v| scale(*v)).collect(),
        ))),
    })
}

fn finding(t: &Test, q: f64) -> Finding {
    let better_when_up = match t.outcome.direction {
        Direction::HigherIsBetter => t.r > 0.0,
        Direction::LowerIsBetter => t.r < 0.0,
    };
    let category = if better_when_up {
        Category::WhatWorks
    } else {
        Category::WhatDoesntWork
    };
    Finding {
        id: finding_id(&t.input, t.outcome.name, t.lag, t.method),
        input: t.input.clone(),
        outcome: t.outcome.name.to_string(),
        lag_days: t.lag,
        method: t.method,
        r: t.r,
        p: t.p,
        q,
        n: t.n,
        n_eff: t.n_eff,
        ci_low: t.ci.0,
        ci_high: t.ci.1,
        category,
        effect: t.effect.0,
        effect_ci_low: t.effect.1,
        effect_ci_high: t.effect.2,
        text: text(t),
    }
}

/// `input:outcome:lag:method`, e.g. `sleep_hours:efficiency:1:spearman`: readable, and the
/// same for the same test in every snapshot (docs/correlations.md).
pub fn finding_id(input: &str, outcome: &str, lag_days: u32, method: Method) -> String {
    let method = match method {
        Method::Pearson => "pearson",
        Method::Spearman => "spearman",
        Method::Quadrant => "quadrant",
    };
    format!("{input}:{outcome}:{lag_days}:{method}")
}

impl Finding {
    /// Fills in the id of a finding stored before findings had one.
    pub fn with_id(mut self) -> Self {
        if self.id.is_empty() {
            self.id = finding_id(&self.input, &self.outcome, self.lag_days, self.method);
        }
        self
    }
}

fn outcome_label(name: &str) -> &'static str {
    outcome(name).map_or("the outcome", |o| o.label)
}

/// Readable names and units for the inputs stridelog itself logs; other names as given.
pub fn display_name(input: &str) -> String {
    match input {
        "sleep_hours" => "sleep".into(),
        "sleep_quality" => "sleep quality".into(),
        "hrv_rmssd_ms" => "HRV".into(),
        "resting_hr_bpm" => "resting heart rate".into(),
        "stress" => "stress".into(),
        "soreness" => "soreness".into(),
        "readiness" => "readiness".into(),
        "work_hours" => "work hours".into(),
        "work_stress" => "work stress".into(),
        "calories_kcal" => "calories".into(),
        "protein_g" => "protein".into(),
        "carbohydrate_g" => "carbohydrate".into(),
        "fat_g" => "fat".into(),
        "caffeine_mg" => "caffeine".into(),
        "weight_kg" => "weight".into(),
        "body_fat_pct" => "body fat".into(),
        "load_prev_day" => "the previous day's training load".into(),
        "ctl_prev_day" => "fitness (CTL)".into(),
        "atl_prev_day" => "fatigue (ATL)".into(),
        "tsb_prev_day" => "form (TSB)".into(),
        other => other.replace('_', " "),
    }
}

fn unit(input: &str) -> &'static str {
    match input {
        "sleep_hours" | "work_hours" => " h",
        "hrv_rmssd_ms" => " ms",
        "resting_hr_bpm" => " bpm",
        "calories_kcal" => " kcal",
        "protein_g" | "carbohydrate_g" | "fat_g" => " g",
        "caffeine_mg" => " mg",
        "weight_kg" => " kg",
        "body_fat_pct" => " %",
        _ => "",
    }
}

fn when(lag: u32) -> String {
    match lag {
        0 => "same day".into(),
        1 => "next day".into(),
        k => format!("{k} days later"),
    }
}

/// Numbers first, association only: "After nights with sleep over 7.5 h, efficiency was 2.1 %
/// higher (95 % CI 0.4 to 3.8 %, 64 days, next day)".
fn text(t: &Test) -> String {
    let (d, lo, hi) = t.effect;
    let (amount, unit_effect) = if t.outcome.relative {
        (format!("{:.1} %", d.abs()), " %")
    } else {
        (format!("{:.1} points", d.abs()), " points")
    };
    let direction = if d >= 0.0 { "higher" } else { "lower" };
    let condition = match (&t.threshold, t.method) {
        (Some(m), _) => format!(
            "{} with {} over {}{}",
            // Sleep is logged for the night before the date.
            if t.input.starts_with("sleep") {
                "nights"
            } else {
                "days"
            },
            display_name(&t.input),
            round_sig(*m),
            unit(&t.input)
        ),
        (None, _) => {
            let mut parts = t.input.splitn(2, '+');
            let a = parts.next().unwrap_or_default();
            let b = parts.next().unwrap_or_default();
            format!(
                "days with both {} and {} above usual",
                display_name(a),
                display_name(b)
            )
        }
    };
    let against = if t.threshold.is_some() {
        ""
    } else {
        " than with both below"
    };
    format!(
        "After {condition}, {} was {amount} {direction}{against} (95 % CI {:.1} to {:.1}{unit_effect}, {} days, {})",
        t.outcome.label,
        lo,
        hi,
        t.n,
        when(t.lag)
    )
}

fn round_sig(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Inputs a dataset holds (after the load inputs are derived), for listing.
pub fn input_names(data: &Dataset) -> BTreeSet<String> {
    build(data)
        .map(|s| s.inputs.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(i: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() + chrono::Duration::days(i)
    }

    #[test]
    fn series_average_runs_by_time_and_carry_forward_only_where_declared() {
        let data = Dataset {
            days: vec![DayInputs {
                date: day(0),
                inputs: BTreeMap::from([("weight_kg".into(), 60.0), ("sleep_hours".into(), 7.0)]),
            }],
            activities: vec![
                RunOutcome {
                    date: day(2),
                    efficiency_factor: Some(1.0),
                    decoupling_pct: Some(4.0),
                    analyzed_time_s: 1200.0,
                    training_load: Some(50.0),
                },
                RunOutcome {
                    date: day(2),
                    efficiency_factor: Some(1.3),
                    decoupling_pct: None,
                    analyzed_time_s: 2400.0,
                    training_load: Some(70.0),
                },
                // Too short to count for the outcomes; its load still counts.
                RunOutcome {
                    date: day(9),
                    efficiency_factor: Some(2.0),
                    decoupling_pct: Some(1.0),
                    analyzed_time_s: 600.0,
                    training_load: Some(10.0),
                },
            ],
            carry_forward_days: BTreeMap::from([("weight_kg".into(), 7)]),
        };
        let s = build(&data).unwrap();
        assert_eq!(s.len, 10);
        let ef = &s.outcomes["efficiency_factor"];
        assert!((ef[2].unwrap() - (1.0 * 1200.0 + 1.3 * 2400.0) / 3600.0).abs() < 1e-12);
        assert_eq!(ef[9], None);
        assert_eq!(s.outcomes["decoupling_pct"][2], Some(4.0));
        let w = &s.inputs["weight_kg"];
        assert_eq!(w[7], Some(60.0));
        assert_eq!(w[8], None, "carried 7 days at most");
        assert_eq!(
            s.inputs["sleep_hours"][1], None,
            "never carried, never zero"
        );
        // Load inputs hold the previous day's state.
        let load = &s.inputs["load_prev_day"];
        assert_eq!(load[2], None, "nothing before the first activity");
        assert_eq!(load[3], Some(120.0));
        assert_eq!(load[4], Some(0.0));
        assert_eq!(s.run_days, 1);
    }

    #[test]
    fn detrending_removes_a_slow_drift() {
        let x: Vec<Option<f64>> = (0..200)
            .map(|i| Some(f64::from(i) * 0.01 + if i % 2 == 0 { 0.1 } else { -0.1 }))
            .collect();
        let d = detrend(&x);
        let mid: Vec<f64> = d[20..180].iter().map(|v| v.unwrap()).collect();
        let mean = mid.iter().sum::<f64>() / mid.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
    }

    #[test]
    fn residuals_are_orthogonal_to_the_covariates() {
        let x1: Vec<f64> = (0..50).map(|i| f64::from(i % 7)).collect();
        let x2: Vec<f64> = (0..50).map(|i| f64::from(i).sin()).collect();
        let y: Vec<f64> = (0..50)
            .map(|i| 2.0 + 0.5 * x1[i] - 3.0 * x2[i] + if i % 3 == 0 { 0.2 } else { -0.1 })
            .collect();
        let e = stats::residuals(&y, &[x1.clone(), x2.clone()]);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        assert!(dot(&e, &x1).abs() < 1e-6);
        assert!(dot(&e, &x2).abs() < 1e-6);
        assert!(e.iter().sum::<f64>().abs() < 1e-6);
    }

    #[test]
    fn directions_live_in_one_table() {
        assert_eq!(
            outcome("efficiency_factor").unwrap().direction,
            Direction::HigherIsBetter
        );
        assert_eq!(
            outcome("decoupling_pct").unwrap().direction,
            Direction::LowerIsBetter
        );
    }

    /// strideiq.md V6 (alignment by date) and V7 (the lag search): the input on day t - lag
    /// pairs with the outcome on day t, and only dates both have count.
    #[test]
    fn pairs_align_by_date_and_lag() {
        let s1 = [Some(10.0), Some(20.0), Some(30.0)];
        let s2 = [Some(5.0), None, Some(15.0)];
        let p = pairs(&s1, &s1, &s2, &s2, 0);
        assert_eq!((p.x, p.y), (vec![10.0, 30.0], vec![5.0, 15.0]));
        let none = [None, None, None];
        assert!(pairs(&s1, &s1, &none, &none, 0).x.is_empty());

        // Input on Jan 1-5, output on Jan 2-6, on one calendar of 6 days.
        let input = [Some(7.0), Some(8.0), Some(9.0), Some(8.5), Some(7.5), None];
        let output = [
            None,
            Some(10.0),
            Some(12.0),
            Some(13.0),
            Some(12.5),
            Some(11.5),
        ];
        let expect = [(4, 0.1473), (5, 0.9615), (4, 0.0756), (3, -0.982)];
        for (lag, (n, r)) in expect.iter().enumerate() {
            let p = pairs(&input, &input, &output, &output, lag);
            assert_eq!(p.x.len(), *n, "lag {lag}");
            let got = stats::pearson(&p.x, &p.y).unwrap();
            assert!((got - r).abs() < 1e-3, "lag {lag}: {got}");
        }
        let p = pairs(&input, &input, &output, &output, 1);
        let r = stats::pearson(&p.x, &p.y).unwrap();
        assert!((stats::p_value(r, 3.0) - 0.0090).abs() < 1e-4);
    }

    /// strideiq.md V4: below the minimum number of pairs nothing is tested at all.
    #[test]
    fn too_few_pairs_are_not_tested() {
        let days: Vec<DayInputs> = (0..3)
            .map(|i| DayInputs {
                date: day(i),
                inputs: BTreeMap::from([("sleep_hours".into(), 7.0 + i as f64)]),
            })
            .collect();
        let activities = (0..3)
            .map(|i| RunOutcome {
                date: day(i),
                efficiency_factor: Some(1.0 + i as f64 / 10.0),
                decoupling_pct: None,
                analyzed_time_s: 2400.0,
                training_load: None,
            })
            .collect();
        let a = analyze(
            &Dataset {
                days,
                activities,
                carry_forward_days: BTreeMap::new(),
            },
            &Options::default(),
        );
        assert_eq!(a.tests_run, 0);
        assert!(a.findings.is_empty());
        assert!(
            a.insufficient
                .iter()
                .any(|i| i.input == "sleep_hours" && i.n == 3)
        );
    }

    /// strideiq.md V17: with z removed from both, y = x + 0.5 z correlates exactly with x.
    #[test]
    fn residualizing_gives_the_partial_correlation() {
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let z = [5.0, 3.0, 8.0, 1.0, 9.0, 2.0, 7.0, 4.0, 6.0, 10.0];
        let y: Vec<f64> = x.iter().zip(z).map(|(x, z)| x + 0.5 * z).collect();
        assert!((stats::pearson(&x, &y).unwrap() - 0.92844).abs() < 1e-5);
        let ex = stats::residuals(&x, &[z.to_vec()]);
        let ey = stats::residuals(&y, &[z.to_vec()]);
        assert!((stats::pearson(&ex, &ey).unwrap() - 1.0).abs() < 1e-9);
    }

    /// The bootstrap interval covers the difference, widens when fewer days are independent,
    /// and is reproducible.
    #[test]
    fn bootstrap_interval_of_a_difference() {
        let a: Vec<f64> = (0..40).map(|i| 1.0 + f64::from(i % 5) * 0.1).collect();
        let b: Vec<f64> = (0..40).map(|i| 0.8 + f64::from(i % 5) * 0.1).collect();
        let (lo, hi) = bootstrap_difference(&a, &b, 1.0, 7);
        assert!(lo < 0.2 && 0.2 < hi && lo > 0.1, "{lo} {hi}");
        let (lo_half, hi_half) = bootstrap_difference(&a, &b, 0.5, 7);
        assert!(hi_half - lo_half > hi - lo);
        assert_eq!(bootstrap_difference(&a, &b, 1.0, 7), (lo, hi));
    }
}
