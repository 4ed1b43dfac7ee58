//! Training load: Banister TRIMP per activity, and fitness, fatigue and form (CTL, ATL, TSB)
//! per day. The conventions are named in every output and in docs/efficiency.md.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::athlete::{Physiology, Sex};

/// The exponential-decay convention: lambda = 1 - e^(-1/tau), as GoldenCheetah and
/// intervals.icu use it.
pub const PMC_CONVENTION: &str =
    "exponential: lambda = 1 - exp(-1/tau); TSB = CTL - ATL of the same day";
pub const CTL_TAU_DAYS: f64 = 42.0;
pub const ATL_TAU_DAYS: f64 = 7.0;
/// Used when the athlete has not given them (Runalyze's defaults).
pub const DEFAULT_HR_REST_BPM: f64 = 60.0;
pub const DEFAULT_HR_MAX_BPM: f64 = 200.0;

/// Banister's weighting constants (a, b) by sex: Banister 1975 for men, the literature's
/// 0.86/1.67 for women, and Runalyze's average of the two when sex is not known.
pub fn trimp_constants(sex: Option<Sex>) -> (f64, f64) {
    match sex {
        Some(Sex::Male) => (0.64, 1.92),
        Some(Sex::Female) => (0.86, 1.67),
        None => (0.725_215, 1.795),
    }
}

pub fn lambda(tau_days: f64) -> f64 {
    1.0 - (-1.0 / tau_days).exp()
}

/// Banister TRIMP summed over intervals: sum of minutes x HRr x a x e^(b x HRr), with
/// HRr = (HR - rest) / (max - rest) clamped to [0, 1]. Summing per interval, not once with the
/// average HR, because e^x is convex.
pub fn trimp(intervals: &[(f64, f64)], hr_rest: f64, hr_max: f64, sex: Option<Sex>) -> f64 {
    let (a, b) = trimp_constants(sex);
    let reserve = hr_max - hr_rest;
    if reserve <= 0.0 {
        return 0.0;
    }
    intervals
        .iter()
        .map(|(dt_s, hr)| {
            let hrr = ((hr - hr_rest) / reserve).clamp(0.0, 1.0);
            dt_s / 60.0 * hrr * a * (b * hrr).exp()
        })
        .sum()
}

/// rTSS: hours x IF^2 x 100, with IF = grade-adjusted speed / threshold speed (speeds, not
/// paces).
pub fn rtss(duration_s: f64, gap_speed_m_s: f64, threshold_pace_s_per_km: f64) -> f64 {
    let threshold_speed = 1000.0 / threshold_pace_s_per_km;
    let intensity = gap_speed_m_s / threshold_speed;
    duration_s / 3600.0 * intensity * intensity * 100.0
}

/// Seconds spent at each heart rate, kept to 0.1 bpm (files record whole beats, so this is
/// exact for them).
#[derive(Debug, Clone, Default)]
pub struct HrTime(BTreeMap<i64, f64>);

impl HrTime {
    pub fn add(&mut self, hr_bpm: f64, dt_s: f64) {
        *self.0.entry((hr_bpm * 10.0).round() as i64).or_default() += dt_s;
    }

    pub fn into_pairs(self) -> Vec<(f64, f64)> {
        self.0
            .into_iter()
            .map(|(k, s)| (k as f64 / 10.0, s))
            .collect()
    }
}

/// What an activity's load is computed from. Kept per activity, apart from the athlete's
/// resting and maximum heart rate, so a change to those re-weights every activity without
/// reading a file again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadInput {
    /// (heart rate in bpm, seconds at it), ascending: every interval of up to 30 s with a heart
    /// rate, moving or not, at the heart rate of its end sample.
    pub hr_time: Vec<(f64, f64)>,
    /// Moving time, warm-up included, and the grade-adjusted distance covered in it (rTSS).
    pub moving_time_s: f64,
    pub gap_distance_m: f64,
}

/// Where a value the load formulas use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Profile,
    Default,
}

/// The athlete's values the load formulas take, with the defaults filled in and named.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoadSettings {
    pub hr_rest_bpm: f64,
    pub hr_rest_source: Source,
    pub hr_max_bpm: f64,
    pub hr_max_source: Source,
    /// `None` when not given: the constants are then the average of the two.
    pub sex: Option<Sex>,
    /// Banister's a and b.
    pub trimp_a: f64,
    pub trimp_b: f64,
    /// rTSS is given only when this is set.
    pub threshold_pace_s_per_km: Option<f64>,
}

impl LoadSettings {
    pub fn of(p: &Physiology) -> Self {
        let (trimp_a, trimp_b) = trimp_constants(p.sex);
        let (hr_rest_bpm, hr_rest_source) = match p.resting_hr_bpm {
            Some(v) => (f64::from(v), Source::Profile),
            None => (DEFAULT_HR_REST_BPM, Source::Default),
        };
        let (hr_max_bpm, hr_max_source) = match p.hr_max_bpm {
            Some(v) => (f64::from(v), Source::Profile),
            None => (DEFAULT_HR_MAX_BPM, Source::Default),
        };
        Self {
            hr_rest_bpm,
            hr_rest_source,
            hr_max_bpm,
            hr_max_source,
            sex: p.sex,
            trimp_a,
            trimp_b,
            threshold_pace_s_per_km: p.threshold_pace_s_per_km,
        }
    }

    /// Banister TRIMP of one activity; `None` when it has no heart rate.
    pub fn trimp(&self, input: &LoadInput) -> Option<f64> {
        (!input.hr_time.is_empty()).then(|| {
            let intervals: Vec<(f64, f64)> =
                input.hr_time.iter().map(|(hr, dt)| (*dt, *hr)).collect();
            trimp(&intervals, self.hr_rest_bpm, self.hr_max_bpm, self.sex)
        })
    }

    /// rTSS of one activity; `None` without a threshold pace or moving time.
    pub fn rtss(&self, input: &LoadInput) -> Option<f64> {
        let threshold = self.threshold_pace_s_per_km?;
        (input.moving_time_s > 0.0 && threshold > 0.0).then(|| {
            rtss(
                input.moving_time_s,
                input.gap_distance_m / input.moving_time_s,
                threshold,
            )
        })
    }
}

/// One day of the performance-management chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoadDay {
    pub date: NaiveDate,
    /// The day's summed TRIMP; 0 on rest days.
    pub load: f64,
    /// Fitness: the 42-day exponentially weighted load.
    pub ctl: f64,
    /// Fatigue: the 7-day one.
    pub atl: f64,
    /// Form: CTL - ATL of the same day.
    pub tsb: f64,
    /// CTL today minus CTL 7 days before; `None` for the first week.
    pub ramp_7d: Option<f64>,
}

/// CTL, ATL and TSB for every day from `first` to `last`, from zero on `first` (the athlete's
/// first activity). `loads` are (date, load) pairs in any order; days without one are rest days.
pub fn pmc(first: NaiveDate, last: NaiveDate, loads: &[(NaiveDate, f64)]) -> Vec<LoadDay> {
    let (lc, la) = (lambda(CTL_TAU_DAYS), lambda(ATL_TAU_DAYS));
    let mut by_day: HashMap<NaiveDate, f64> = HashMap::new();
    for (d, l) in loads {
        *by_day.entry(*d).or_default() += l;
    }
    let mut out: Vec<LoadDay> = Vec::new();
    let (mut ctl, mut atl) = (0.0, 0.0);
    let mut day = first;
    while day <= last {
        let load = by_day.get(&day).copied().unwrap_or(0.0);
        ctl += lc * (load - ctl);
        atl += la * (load - atl);
        let ramp_7d = out.len().checked_sub(7).map(|i| ctl - out[i].ctl);
        out.push(LoadDay {
            date: day,
            load,
            ctl,
            atl,
            tsb: ctl - atl,
            ramp_7d,
        });
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn d(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .checked_add_days(chrono::Days::new(n))
            .unwrap()
    }

    /// analytics.md TV8, TV8b, TV9, TV10 (the exponential convention).
    #[test]
    fn pmc_matches_the_reference_vectors() {
        assert!(close(lambda(42.0), 0.023528, 1e-6));
        assert!(close(lambda(7.0), 0.133122, 1e-6));
        // 42 days of 100, then 7 rest days. Day index N-1 is "after N days".
        let loads: Vec<_> = (0..42).map(|i| (d(i), 100.0)).collect();
        let days = pmc(d(0), d(48), &loads);
        assert!(close(days[0].ctl, 2.3528, 1e-4), "TV10 {}", days[0].ctl);
        assert!(close(days[6].ctl, 15.352, 1e-3), "TV8 7 days");
        assert!(close(days[6].atl, 63.212, 1e-3), "TV8b 7 days");
        assert!(close(days[41].ctl, 63.212, 1e-3), "TV9 day 42 CTL");
        assert!(close(days[41].atl, 99.752, 1e-3), "TV9 day 42 ATL");
        assert!(close(days[41].tsb, -36.540, 1e-3), "TV9 day 42 TSB");
        assert!(close(days[48].ctl, 53.508, 1e-3), "TV9 day 49 CTL");
        assert!(close(days[48].atl, 36.697, 1e-3), "TV9 day 49 ATL");
        assert!(close(days[48].tsb, 16.811, 1e-3), "TV9 day 49 TSB");
        assert_eq!(days[5].ramp_7d, None);
        assert!(close(
            days[7].ramp_7d.unwrap(),
            days[7].ctl - days[0].ctl,
            1e-12
        ));
        // 84 days of constant load.
        let loads: Vec<_> = (0..84).map(|i| (d(i), 100.0)).collect();
        assert!(close(pmc(d(0), d(83), &loads)[83].ctl, 86.466, 1e-3));
    }

    /// TV11: 60 minutes at 150 bpm, rest 50, max 190.
    #[test]
    fn trimp_matches_the_reference_vectors() {
        let hour = [(3600.0, 150.0)];
        assert!(close(
            trimp(&hour, 50.0, 190.0, Some(Sex::Male)),
            108.095,
            1e-3
        ));
        assert!(close(
            trimp(&hour, 50.0, 190.0, Some(Sex::Female)),
            121.499,
            1e-3
        ));
        // Per interval equals once when HR is constant; 3600 one-second intervals.
        let seconds = vec![(1.0, 150.0); 3600];
        assert!(close(
            trimp(&seconds, 50.0, 190.0, Some(Sex::Male)),
            108.095,
            1e-3
        ));
        // TV12: TRIMP of an hour at LTHR 170 and HRSS of the TV11 run.
        let at_lthr = trimp(&[(3600.0, 170.0)], 50.0, 190.0, Some(Sex::Male));
        assert!(close(at_lthr, 170.651, 1e-3));
        assert!(close(100.0 * 108.095 / at_lthr, 63.343, 1e-3));
    }

    /// TV14: 30 min at 5:00/km with threshold 4:30/km.
    #[test]
    fn rtss_uses_speeds() {
        assert!(close(rtss(1800.0, 1000.0 / 300.0, 270.0), 40.5, 1e-9));
    }

    /// The kept heart-rate histogram gives the same TRIMP as the intervals it came from, and
    /// the defaults are named.
    #[test]
    fn settings_weight_the_kept_histogram() {
        let unknown = LoadSettings::of(&Physiology::default());
        assert_eq!(
            (unknown.hr_rest_bpm, unknown.hr_max_bpm),
            (DEFAULT_HR_REST_BPM, DEFAULT_HR_MAX_BPM)
        );
        assert_eq!(unknown.hr_rest_source, Source::Default);
        assert_eq!((unknown.trimp_a, unknown.trimp_b), (0.725_215, 1.795));
        assert_eq!(unknown.rtss(&LoadInput::default()), None);
        assert_eq!(unknown.trimp(&LoadInput::default()), None);

        let athlete = LoadSettings::of(&Physiology {
            resting_hr_bpm: Some(50),
            hr_max_bpm: Some(190),
            sex: Some(Sex::Male),
            threshold_pace_s_per_km: Some(270.0),
            ..Physiology::default()
        });
        assert_eq!(athlete.hr_max_source, Source::Profile);
        let mut h = HrTime::default();
        for _ in 0..1800 {
            h.add(150.0, 1.0);
        }
        h.add(150.04, 1800.0); // rounds to the same 0.1 bpm bin
        h.add(0.0, 0.0);
        let input = LoadInput {
            hr_time: h.into_pairs(),
            moving_time_s: 1800.0,
            gap_distance_m: 6000.0,
        };
        assert_eq!(input.hr_time, vec![(0.0, 0.0), (150.0, 3600.0)]);
        // TV11 and TV14 through the histogram.
        assert!(close(athlete.trimp(&input).unwrap(), 108.095, 1e-3));
        assert!(close(athlete.rtss(&input).unwrap(), 40.5, 1e-9));
    }
}
