//! Generated athletes for calibrating the correlation engine (docs/correlations.md): a year of
//! daily inputs and runs with the structure real data has, and optionally one planted effect.
//! Used by the simulation tests and `stridelog bench correlations`; seeded, so a seed always
//! gives the same athletes on the same platform.
//!
//! What every athlete has:
//! - ten inputs, each an AR(1) process with its own coefficient in 0.3-0.85, logged on about
//!   70-85 % of days, weight only twice a week (carried forward 7 days), and a few entry errors
//!   (a decimal point slipped, a zero);
//! - weekday patterns: more sleep and less work at weekends, more calories on Sundays;
//! - 3-5 runs a week on a weekly pattern: a Sunday long run, a Tuesday quality session, easy
//!   runs on Thursday and some Wednesdays and Saturdays;
//! - a slow trend (a season) shared by efficiency and HRV;
//! - training load that lowers the next day's efficiency and raises the next day's soreness
//!   and resting heart rate;
//! - efficiency lower on long runs, noisy, with its own autocorrelation.
//!
//! Without a planted effect no input has any effect on efficiency or decoupling beyond that
//! structure, so every finding is a false one.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::correlation::{Dataset, DayInputs, RunOutcome};

/// One effect to plant: `input` on day t-`lag` moves efficiency on day t with correlation
/// about `r` (after the known structure is removed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planted {
    pub input: &'static str,
    pub lag_days: u32,
    pub r: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub seed: u64,
    pub days: u32,
    pub planted: Option<Planted>,
}

/// The inputs every generated athlete logs: (name, mean, sd).
pub const INPUTS: [(&str, f64, f64); 10] = [
    ("sleep_hours", 7.2, 0.7),
    ("sleep_quality", 3.5, 0.8),
    ("hrv_rmssd_ms", 62.0, 9.0),
    ("resting_hr_bpm", 50.0, 3.0),
    ("stress", 2.6, 0.9),
    ("soreness", 2.2, 0.8),
    ("work_hours", 7.5, 1.2),
    ("calories_kcal", 2450.0, 280.0),
    ("protein_g", 115.0, 22.0),
    ("weight_kg", 61.0, 0.6),
];

/// Efficiency's day-to-day noise (m/min/bpm) once the structure is accounted for.
const EF_NOISE: f64 = 0.025;

struct Dice(Xoshiro256PlusPlus);

impl Dice {
    fn new(seed: u64, index: usize) -> Self {
        let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
            ^ (index as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        Self(Xoshiro256PlusPlus::seed_from_u64(mixed))
    }

    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A stationary AR(1) series with unit variance.
fn ar1(d: &mut Dice, phi: f64, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut z = d.normal();
    let innovation = (1.0 - phi * phi).sqrt();
    for _ in 0..n {
        out.push(z);
        z = phi * z + innovation * d.normal();
    }
    out
}

/// Athlete `index` of the population `spec` describes, in the CLI's input format.
pub fn athlete(spec: &Spec, index: usize) -> Dataset {
    // The phases draw from one generator in this order; reordering them changes every athlete.
    let mut d = Dice::new(spec.seed, index);
    let n = spec.days as usize;
    let season: Vec<f64> = {
        let phase = d.uniform(0.0, std::f64::consts::TAU);
        (0..n)
            .map(|i| (std::f64::consts::TAU * i as f64 / 365.0 + phase).sin())
            .collect()
    };
    let runs = Runs::schedule(&mut d, n);
    let mut values: Vec<Vec<Option<f64>>> = Vec::new();
    let mut latent: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (name, mean, sd) in INPUTS {
        let (series, z) = logged_input(&mut d, (name, mean, sd), &season, &runs);
        latent.insert(name, z);
        values.push(series);
    }
    let activities = outcomes(&mut d, spec, &runs, &season, &latent);

    let days = (0..n)
        .map(|i| DayInputs {
            date: date(i),
            inputs: INPUTS
                .iter()
                .zip(&values)
                .filter_map(|((name, _, _), s)| s[i].map(|v| (name.to_string(), v)))
                .collect(),
        })
        .filter(|day| !day.inputs.is_empty())
        .collect();
    Dataset {
        days,
        activities,
        carry_forward_days: BTreeMap::from([("weight_kg".to_string(), 7)]),
    }
}

/// Day `i` of every athlete's calendar. It starts on a Monday, so weekdays line up the same
/// way for every athlete.
fn date(i: usize) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(2025, 1, 6).expect("a valid date");
    start + Duration::days(i as i64)
}

/// Runs and their load.
struct Runs {
    /// (day, minutes)
    runs: Vec<(usize, f64)>,
    load: Vec<f64>,
    /// 0 none, 1 easy, 2 quality, 3 long
    kind: Vec<u8>,
}

impl Runs {
    fn schedule(d: &mut Dice, n: usize) -> Self {
        let mut runs: Vec<(usize, f64)> = Vec::new();
        let mut load = vec![0.0; n];
        let mut kind = vec![0u8; n];
        for (i, k) in kind.iter_mut().enumerate() {
            let wd = date(i).weekday().num_days_from_monday();
            let (minutes, intensity, k_) = match wd {
                6 => (d.uniform(80.0, 110.0), 1.1, 3),
                1 => (d.uniform(45.0, 60.0), 1.6, 2),
                3 => (d.uniform(35.0, 50.0), 1.0, 1),
                2 if d.chance(0.4) => (d.uniform(30.0, 45.0), 1.0, 1),
                5 if d.chance(0.5) => (d.uniform(30.0, 50.0), 1.0, 1),
                _ => continue,
            };
            // Now and then a planned run does not happen.
            if d.chance(0.08) {
                continue;
            }
            runs.push((i, minutes));
            load[i] = minutes * intensity * d.uniform(0.85, 1.15);
            *k = k_;
        }
        Self { runs, load, kind }
    }

    /// The previous day's load, standardised.
    fn prev_load_z(&self, i: usize) -> f64 {
        let prev_load = if i == 0 { 0.0 } else { self.load[i - 1] };
        (prev_load - 60.0) / 50.0
    }
}

/// One input's logged series (with gaps and a few entry errors) and the latent AR(1) series
/// behind it, for planting an effect.
fn logged_input(
    d: &mut Dice,
    (name, mean, sd): (&str, f64, f64),
    season: &[f64],
    runs: &Runs,
) -> (Vec<Option<f64>>, Vec<f64>) {
    let n = season.len();
    let phi = d.uniform(0.3, 0.85);
    let z = ar1(d, phi, n);
    let logged = d.uniform(0.7, 0.85);
    let mut series = Vec::with_capacity(n);
    for i in 0..n {
        let weekend = date(i).weekday().num_days_from_monday() >= 5;
        let sunday = date(i).weekday().num_days_from_monday() == 6;
        let mut v = mean + sd * z[i];
        match name {
            "sleep_hours" if weekend => v += 0.6,
            "work_hours" if weekend => v = (v - 6.5).max(0.0),
            "calories_kcal" if sunday => v += 350.0,
            "hrv_rmssd_ms" => v += 7.0 * season[i],
            "soreness" => v += 0.5 * runs.prev_load_z(i),
            "resting_hr_bpm" => v += 1.5 * runs.prev_load_z(i),
            _ => {}
        }
        let present = if name == "weight_kg" {
            matches!(date(i).weekday().num_days_from_monday(), 0 | 3) && d.chance(0.9)
        } else {
            d.chance(logged)
        };
        series.push(present.then_some(v));
    }
    // A few entry errors.
    for _ in 0..3 {
        let i = (d.unit() * n as f64) as usize;
        if let Some(Some(v)) = series.get(i).copied() {
            series[i] = Some(if d.chance(0.5) { v * 10.0 } else { 0.0 });
        }
    }
    (series, z)
}

/// Each run's outcomes: the known structure, noise, and the planted effect if any.
fn outcomes(
    d: &mut Dice,
    spec: &Spec,
    runs: &Runs,
    season: &[f64],
    latent: &BTreeMap<&str, Vec<f64>>,
) -> Vec<RunOutcome> {
    let n = season.len();
    let ef_noise = ar1(d, 0.3, n);
    let base_ef = d.uniform(0.9, 1.3);
    let planted_beta = spec.planted.map(|p| {
        // Efficiency's noise on run days is EF_NOISE; an added b x z with z of unit variance
        // correlates r = b / sqrt(b^2 + EF_NOISE^2) with z.
        (p, EF_NOISE * p.r / (1.0 - p.r * p.r).sqrt())
    });
    let mut activities = Vec::new();
    for (i, minutes) in &runs.runs {
        let i = *i;
        let hours = minutes / 60.0;
        let mut ef =
            base_ef + 0.04 * season[i] - 0.03 * runs.prev_load_z(i) - 0.02 * (hours - 0.75)
                + EF_NOISE * ef_noise[i];
        if runs.kind[i] == 2 {
            ef += 0.02;
        }
        if let Some((p, beta)) = planted_beta
            && let Some(z) = latent.get(p.input)
            && i >= p.lag_days as usize
        {
            ef += beta * z[i - p.lag_days as usize];
        }
        let decoupling = 3.0 + 2.5 * (hours - 0.75) + 0.8 * runs.prev_load_z(i) + 1.5 * d.normal();
        activities.push(RunOutcome {
            date: date(i),
            efficiency_factor: Some(ef),
            decoupling_pct: Some(decoupling),
            analyzed_time_s: minutes * 60.0 - 360.0,
            training_load: Some(runs.load[i]),
        });
    }
    activities
}
