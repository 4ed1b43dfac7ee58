//! Running efficiency: grade-adjusted efficiency factor (EF), aerobic decoupling and the
//! quantities beside them, computed from an activity's samples exactly as docs/efficiency.md
//! specifies, so that results can be checked against other implementations.
//!
//! Every step is a named constant or a small function: cumulative distance, intervals between
//! samples, the moving test, the warm-up cut, the grade, Minetti's cost of running, and the two
//! halves for decoupling.

use serde::{Deserialize, Serialize};

use crate::activity::Sport;
use crate::load::{HrTime, LoadInput};

/// Mean Earth radius (IUGG), for great-circle distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// An interval longer than this is a pause or a gap in the recording and is left out.
pub const MAX_INTERVAL_S: f64 = 30.0;
/// Faster than this, an interval is moving.
pub const MOVING_SPEED_M_S: f64 = 0.5;
/// Cardiac lag: heart rate trails effort for the first minutes, so moving time up to here is
/// left out of EF and decoupling.
pub const WARM_UP_S: f64 = 360.0;
/// Grade is measured over this distance either side of a point, so per-sample altitude noise
/// does not become grade.
pub const GRADE_HALF_WINDOW_M: f64 = 25.0;
/// Minetti's polynomial is fitted on -0.45..+0.45.
pub const MAX_GRADE: f64 = 0.45;
/// Less analysed time than this gives no EF.
pub const MIN_ANALYZED_S: f64 = 300.0;
/// The grade model's name in every output.
pub const GAP_MODEL: &str = "minetti2002";
/// Yards per metre, for Friel's yd/min/bpm.
pub const YARDS_PER_METRE: f64 = 1.093_613_3;

/// Minetti et al. 2002: energy cost of running on grade `g` (a fraction), J/kg/m.
pub fn minetti_cr(g: f64) -> f64 {
    155.4 * g.powi(5) - 30.4 * g.powi(4) - 43.3 * g.powi(3) + 46.3 * g.powi(2) + 19.5 * g + 3.6
}

/// Great-circle distance between two points given in degrees (haversine).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// One recorded point. Any field may be missing; `t_s` counts from any fixed origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: Option<f64>,
    /// The file's own cumulative distance (FIT, TCX), when it has one.
    pub distance_m: Option<f64>,
    pub lat_deg: Option<f64>,
    pub lon_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    pub hr_bpm: Option<f64>,
}

/// Decoupling below 5 % is green, below 8 % yellow, else red (Friel's 5 % rule of thumb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DecouplingBadge {
    Green,
    Yellow,
    Red,
}

impl DecouplingBadge {
    pub fn of(decoupling_pct: f64) -> Self {
        if decoupling_pct < 5.0 {
            Self::Green
        } else if decoupling_pct < 8.0 {
            Self::Yellow
        } else {
            Self::Red
        }
    }
}

/// What one activity's samples give. Metrics that cannot be computed are `None`, and `reason`
/// says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Efficiency {
    pub sport: Sport,
    pub distance_m: f64,
    /// Time in moving intervals, warm-up included.
    pub moving_time_s: f64,
    /// Time in the intervals EF is computed over: moving, after the warm-up, with heart rate.
    pub analyzed_time_s: f64,
    /// Time-weighted over the analysed intervals.
    pub avg_hr: Option<f64>,
    /// Grade-adjusted metres per minute per beat; higher is better.
    pub efficiency_factor: Option<f64>,
    /// The same with plain distance.
    pub efficiency_factor_raw: Option<f64>,
    /// Friel's unit: grade-adjusted yards per minute per beat.
    pub efficiency_factor_yd: Option<f64>,
    /// 100 x (EF first half - EF second half) / EF first half; positive means heart rate
    /// drifted up against pace.
    pub decoupling_pct: Option<f64>,
    pub decoupling_badge: Option<DecouplingBadge>,
    pub elevation_gain_m: Option<f64>,
    pub elevation_loss_m: Option<f64>,
    pub gap_model: String,
    pub reason: Option<String>,
}

/// A sample that has both a time and a cumulative distance.
#[derive(Debug, Clone, Copy)]
struct Point {
    t_s: f64,
    d_m: f64,
    alt_m: Option<f64>,
    hr_bpm: Option<f64>,
}

/// Cumulative distance: the file's own where it has one, else summed haversine distances.
/// Samples without a time or a distance are left out.
fn points(samples: &[Sample]) -> Vec<Point> {
    let own = samples.iter().any(|s| s.distance_m.is_some());
    let mut out = Vec::with_capacity(samples.len());
    let mut summed = 0.0;
    let mut last_fix: Option<(f64, f64)> = None;
    for s in samples {
        let d = if own {
            s.distance_m
        } else {
            match (s.lat_deg, s.lon_deg) {
                (Some(lat), Some(lon)) => {
                    if let Some((plat, plon)) = last_fix {
                        summed += haversine_m(plat, plon, lat, lon);
                    }
                    last_fix = Some((lat, lon));
                    Some(summed)
                }
                _ => None,
            }
        };
        if let (Some(t_s), Some(d_m)) = (s.t_s, d)
            && t_s.is_finite()
            && d_m.is_finite()
        {
            out.push(Point {
                t_s,
                d_m,
                alt_m: s.altitude_m.filter(|a| a.is_finite()),
                hr_bpm: s.hr_bpm.filter(|h| h.is_finite()),
            });
        }
    }
    out
}

/// Altitude as a function of cumulative distance, linearly interpolated and clamped to the
/// ends of the track.
struct Profile {
    d_m: Vec<f64>,
    alt_m: Vec<f64>,
}

impl Profile {
    fn new(points: &[Point]) -> Option<Self> {
        let (mut d_m, mut alt_m) = (Vec::new(), Vec::new());
        for p in points {
            let Some(alt) = p.alt_m else { continue };
            // Distance must not go backwards along the profile; a step back is dropped here
            // as its interval is dropped from the metrics.
            if d_m.last().is_some_and(|last| p.d_m < *last) {
                continue;
            }
            d_m.push(p.d_m);
            alt_m.push(alt);
        }
        (!d_m.is_empty()).then_some(Self { d_m, alt_m })
    }

    fn altitude_at(&self, d: f64) -> f64 {
        let n = self.d_m.len();
        if d <= self.d_m[0] {
            return self.alt_m[0];
        }
        if d >= self.d_m[n - 1] {
            return self.alt_m[n - 1];
        }
        // First index with distance > d; d lies between i - 1 and i.
        let i = self.d_m.partition_point(|x| *x <= d);
        let (d0, d1) = (self.d_m[i - 1], self.d_m[i]);
        let (a0, a1) = (self.alt_m[i - 1], self.alt_m[i]);
        if d1 == d0 {
            return a1;
        }
        a0 + (a1 - a0) * (d - d0) / (d1 - d0)
    }

    fn grade_at(&self, d: f64) -> f64 {
        let rise =
            self.altitude_at(d + GRADE_HALF_WINDOW_M) - self.altitude_at(d - GRADE_HALF_WINDOW_M);
        (rise / (2.0 * GRADE_HALF_WINDOW_M)).clamp(-MAX_GRADE, MAX_GRADE)
    }
}

/// One interval that counts towards EF.
#[derive(Debug, Clone, Copy)]
struct Used {
    dt_s: f64,
    dd_m: f64,
    gad_m: f64,
    hr_bpm: f64,
}

/// EF over intervals, with grade-adjusted or plain distance: (metres per minute) / mean HR.
fn ef(used: &[Used], adjusted: bool) -> Option<f64> {
    let t: f64 = used.iter().map(|u| u.dt_s).sum();
    if t <= 0.0 {
        return None;
    }
    let d: f64 = used
        .iter()
        .map(|u| if adjusted { u.gad_m } else { u.dd_m })
        .sum();
    let hr = used.iter().map(|u| u.hr_bpm * u.dt_s).sum::<f64>() / t;
    (hr > 0.0).then(|| (d / t * 60.0) / hr)
}

pub fn is_running(sport: Sport) -> bool {
    matches!(sport, Sport::Run | Sport::TrailRun | Sport::TreadmillRun)
}

/// Analyses one activity's samples (in recording order).
pub fn analyze(sport: Sport, samples: &[Sample]) -> Efficiency {
    analyze_with_load(sport, samples).0
}

/// [`analyze`], and what the activity's training load is computed from, in one pass.
pub fn analyze_with_load(sport: Sport, samples: &[Sample]) -> (Efficiency, LoadInput) {
    let pts = points(samples);
    let profile = Profile::new(&pts);
    let distance_m = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => (b.d_m - a.d_m).max(0.0),
        _ => 0.0,
    };
    let (gain, loss) = elevation_m(&pts);
    let (used, load) = intervals(&pts, profile.as_ref());
    let elevation = profile.is_some().then_some((gain, loss));
    let mut out = totals(sport, distance_m, load.moving_time_s, &used, elevation);
    if let Some(reason) = not_a_run(sport) {
        out.reason = Some(reason);
        return (out, load);
    }
    let analyzed_time_s = out.analyzed_time_s;
    if analyzed_time_s < MIN_ANALYZED_S {
        out.reason = Some(format!(
            "{analyzed_time_s:.0} s analysed (moving, after the first {WARM_UP_S:.0} s, with heart rate); at least {MIN_ANALYZED_S:.0} s are needed"
        ));
        return (out, load);
    }
    fill_metrics(&mut out, &used);
    (out, load)
}

/// Total climb and descent over the points with an altitude: (gain, loss).
fn elevation_m(pts: &[Point]) -> (f64, f64) {
    let (mut gain, mut loss, mut last_alt) = (0.0, 0.0, None::<f64>);
    for p in pts {
        if let Some(a) = p.alt_m {
            if let Some(prev) = last_alt {
                let step = a - prev;
                if step > 0.0 {
                    gain += step;
                } else {
                    loss -= step;
                }
            }
            last_alt = Some(a);
        }
    }
    (gain, loss)
}

/// The intervals between consecutive points: those that count towards EF, and the load input
/// (which counts more of them).
fn intervals(pts: &[Point], profile: Option<&Profile>) -> (Vec<Used>, LoadInput) {
    let mut moving_time_s = 0.0;
    let mut used = Vec::new();
    let mut hr_time = HrTime::default();
    let mut gap_distance_m = 0.0;
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (dt, dd) = (b.t_s - a.t_s, b.d_m - a.d_m);
        if dt <= 0.0 || dt > MAX_INTERVAL_S {
            continue;
        }
        let hr = b.hr_bpm.filter(|h| *h > 0.0);
        // Load counts every recorded second with a heart rate, standing or moving.
        if let Some(hr) = hr {
            hr_time.add(hr, dt);
        }
        if dd < 0.0 || dd / dt <= MOVING_SPEED_M_S {
            continue;
        }
        let g = profile.map_or(0.0, |p| p.grade_at(b.d_m));
        let gad_m = dd * minetti_cr(g) / 3.6;
        gap_distance_m += gad_m;
        let moving_before = moving_time_s;
        moving_time_s += dt;
        // The interval that crosses the end of the warm-up is still warm-up.
        if moving_before < WARM_UP_S {
            continue;
        }
        let Some(hr) = hr else {
            continue;
        };
        used.push(Used {
            dt_s: dt,
            dd_m: dd,
            gad_m,
            hr_bpm: hr,
        });
    }
    let load = LoadInput {
        hr_time: hr_time.into_pairs(),
        moving_time_s,
        gap_distance_m,
    };
    (used, load)
}

/// What both kinds of activity report before any metric: totals, the analysed time over
/// `used` and its time-weighted heart rate, and the elevation (gain, loss) where known.
fn totals(
    sport: Sport,
    distance_m: f64,
    moving_time_s: f64,
    used: &[Used],
    elevation_m: Option<(f64, f64)>,
) -> Efficiency {
    // `+ 0.0`: an empty float sum is -0.0, which would print as "-0".
    let analyzed_time_s: f64 = used.iter().map(|u| u.dt_s).sum::<f64>() + 0.0;
    let avg_hr = (analyzed_time_s > 0.0)
        .then(|| used.iter().map(|u| u.hr_bpm * u.dt_s).sum::<f64>() / analyzed_time_s);
    Efficiency {
        sport,
        distance_m,
        moving_time_s,
        analyzed_time_s,
        avg_hr,
        efficiency_factor: None,
        efficiency_factor_raw: None,
        efficiency_factor_yd: None,
        decoupling_pct: None,
        decoupling_badge: None,
        elevation_gain_m: elevation_m.map(|e| e.0),
        elevation_loss_m: elevation_m.map(|e| e.1),
        gap_model: GAP_MODEL.to_string(),
        reason: None,
    }
}

/// Why an activity that is not a run has no EF or decoupling; `None` for a run.
fn not_a_run(sport: Sport) -> Option<String> {
    (!is_running(sport)).then(|| {
        format!("efficiency factor and decoupling are defined for runs; this is {sport:?}")
    })
}

/// EF, raw EF and decoupling over the used intervals (at least [`MIN_ANALYZED_S`] of them).
/// False when one half is empty, so there is no decoupling.
fn fill_metrics(out: &mut Efficiency, used: &[Used]) -> bool {
    out.efficiency_factor = ef(used, true);
    out.efficiency_factor_raw = ef(used, false);
    out.efficiency_factor_yd = out.efficiency_factor.map(|e| e * YARDS_PER_METRE);
    // An interval belongs to the first half when the analysed time before it is under T/2.
    let half = out.analyzed_time_s / 2.0;
    let mut before = 0.0;
    let split = used
        .iter()
        .position(|u| {
            let first = before < half;
            before += u.dt_s;
            !first
        })
        .unwrap_or(used.len());
    let (first, second) = used.split_at(split);
    let (Some(ef1), Some(ef2)) = (ef(first, true), ef(second, true)) else {
        return false;
    };
    let pct = 100.0 * (ef1 - ef2) / ef1;
    out.decoupling_pct = Some(pct);
    out.decoupling_badge = Some(DecouplingBadge::of(pct));
    true
}

/// A manually logged activity: EF from its splits (laps with distance, moving time and heart
/// rate) or, without usable splits, from its summary. The first 360 s are trimmed by time, a
/// split that straddles them keeping the later part in proportion. There is no altitude, so
/// grade-adjusted and raw EF are equal; decoupling needs splits on both sides of the middle.
pub fn analyze_manual(
    sport: Sport,
    distance_m: Option<f64>,
    moving_time_s: f64,
    avg_hr_bpm: Option<f64>,
    laps: &[crate::activity::Lap],
) -> Efficiency {
    analyze_manual_with_load(sport, distance_m, moving_time_s, avg_hr_bpm, laps).0
}

/// [`analyze_manual`], and the load input: the splits' (or the summary's) time at their heart
/// rates, warm-up included, and the plain distance as the grade-adjusted one.
pub fn analyze_manual_with_load(
    sport: Sport,
    distance_m: Option<f64>,
    moving_time_s: f64,
    avg_hr_bpm: Option<f64>,
    laps: &[crate::activity::Lap],
) -> (Efficiency, LoadInput) {
    let pieces = manual_pieces(distance_m, moving_time_s, avg_hr_bpm, laps);
    let load = LoadInput {
        hr_time: manual_hr_time(moving_time_s, avg_hr_bpm, laps).into_pairs(),
        moving_time_s,
        gap_distance_m: distance_m.unwrap_or(0.0),
    };
    let used = after_warm_up(&pieces);
    let mut out = totals(sport, distance_m.unwrap_or(0.0), moving_time_s, &used, None);
    if let Some(reason) = not_a_run(sport) {
        out.reason = Some(reason);
        return (out, load);
    }
    if pieces.is_empty() {
        out.reason = Some(
            "no samples, and no distance with heart rate in the summary or splits".to_string(),
        );
        return (out, load);
    }
    let analyzed_time_s = out.analyzed_time_s;
    if analyzed_time_s < MIN_ANALYZED_S {
        out.reason = Some(format!(
            "{analyzed_time_s:.0} s analysed (after the first {WARM_UP_S:.0} s); at least {MIN_ANALYZED_S:.0} s are needed"
        ));
        return (out, load);
    }
    if !fill_metrics(&mut out, &used) {
        out.reason = Some("decoupling needs splits on both sides of the middle".to_string());
    }
    (out, load)
}

/// What EF is computed from, as (moving time, distance, heart rate): the usable splits, or
/// without any, the summary when it has all three.
fn manual_pieces(
    distance_m: Option<f64>,
    moving_time_s: f64,
    avg_hr_bpm: Option<f64>,
    laps: &[crate::activity::Lap],
) -> Vec<(f64, f64, f64)> {
    let splits: Vec<(f64, f64, f64)> = laps
        .iter()
        .filter_map(|l| Some((l.moving_time_s?, l.distance_m?, l.avg_hr_bpm?)))
        .filter(|(dt, dd, hr)| *dt > 0.0 && *dd > 0.0 && *hr > 0.0)
        .collect();
    if splits.is_empty() {
        match (distance_m, avg_hr_bpm) {
            (Some(d), Some(hr)) if d > 0.0 && moving_time_s > 0.0 && hr > 0.0 => {
                vec![(moving_time_s, d, hr)]
            }
            _ => Vec::new(),
        }
    } else {
        splits
    }
}

/// Load counts every split with a heart rate, distance or not (a strength session, a
/// standing rest); EF counts only those that covered ground.
fn manual_hr_time(
    moving_time_s: f64,
    avg_hr_bpm: Option<f64>,
    laps: &[crate::activity::Lap],
) -> HrTime {
    let mut hr_time = HrTime::default();
    let timed: Vec<(f64, f64)> = laps
        .iter()
        .filter_map(|l| Some((l.moving_time_s?, l.avg_hr_bpm?)))
        .filter(|(dt, hr)| *dt > 0.0 && *hr > 0.0)
        .collect();
    if timed.is_empty() {
        if let Some(hr) = avg_hr_bpm.filter(|h| *h > 0.0 && moving_time_s > 0.0) {
            hr_time.add(hr, moving_time_s);
        }
    } else {
        for (dt, hr) in timed {
            hr_time.add(hr, dt);
        }
    }
    hr_time
}

/// The pieces after the first [`WARM_UP_S`] of moving time, a piece that straddles it keeping
/// the later part in proportion.
fn after_warm_up(pieces: &[(f64, f64, f64)]) -> Vec<Used> {
    let mut used = Vec::new();
    let mut elapsed = 0.0;
    for (dt, dd, hr) in pieces {
        let (start, end) = (elapsed, elapsed + dt);
        elapsed = end;
        if end <= WARM_UP_S {
            continue;
        }
        let keep = (end - start.max(WARM_UP_S)) / dt;
        used.push(Used {
            dt_s: dt * keep,
            dd_m: dd * keep,
            gad_m: dd * keep,
            hr_bpm: *hr,
        });
    }
    used
}

/// EF of a steady effort given as a pace and a heart rate: metres per minute per beat.
pub fn ef_of_pace(pace_s_per_km: f64, hr_bpm: f64) -> f64 {
    (1000.0 / pace_s_per_km * 60.0) / hr_bpm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    /// analytics.md TV4 and TV5: Minetti's cost at the paper's grades, its minimum and ends.
    #[test]
    fn minetti_matches_the_reference_vectors() {
        let grades = [-0.20, -0.15, -0.10, -0.05, 0.0, 0.05, 0.10, 0.15, 0.20];
        let expected = [
            1.8000, 1.8357, 2.1517, 2.7459, 3.6000, 4.6852, 5.9682, 7.4170, 9.0067,
        ];
        for (g, e) in grades.iter().zip(expected) {
            assert!(
                close(minetti_cr(*g), e, 1e-3),
                "Cr({g}) = {}",
                minetti_cr(*g)
            );
            // TV4b: relative cost.
            assert!(close(minetti_cr(*g) / 3.6, e / 3.6, 1e-3));
        }
        assert!(close(minetti_cr(-0.45), 4.032, 1e-3));
        assert!(close(minetti_cr(0.45), 19.426, 1e-3));
        // The minimum, found by scanning at 1e-4 steps.
        let (g_min, cr_min) = (-4500..=4500)
            .map(|i| f64::from(i) / 10_000.0)
            .map(|g| (g, minetti_cr(g)))
            .fold((0.0, f64::MAX), |m, x| if x.1 < m.1 { x } else { m });
        assert!((g_min - -0.1814).abs() < 2e-4, "{g_min}");
        assert!(close(cr_min, 1.7813, 1e-3), "{cr_min}");
    }

    /// TV6: energy-equivalent GAP of 5:00/km at +5 %, -5 %, +10 %.
    #[test]
    fn grade_adjusted_pace_is_energy_equivalent() {
        for (g, expected) in [(0.05, 230.5), (-0.05, 393.3), (0.10, 181.0)] {
            let gap = 300.0 * minetti_cr(0.0) / minetti_cr(g);
            assert!((gap - expected).abs() < 0.1, "{g}: {gap}");
        }
    }

    /// TV1 and TV2: EF in m/min/bpm and Friel's yd/min/bpm.
    #[test]
    fn ef_units_match_the_reference_vectors() {
        let ef = ef_of_pace(300.0, 150.0);
        assert!(close(ef, 1.33333, 1e-5));
        assert!(close(ef * YARDS_PER_METRE, 1.45815, 1e-5));
        // TV1: 8 mph = 234.667 yd/min at 150 bpm.
        let m_per_min = 8.0 * 1609.344 / 60.0;
        assert!(close(m_per_min * YARDS_PER_METRE / 150.0, 1.56444, 1e-5));
    }

    /// TV3: decoupling of two halves at 3.00 m/s / 140 bpm and 2.95 m/s / 145 bpm.
    #[test]
    fn decoupling_of_two_steady_halves() {
        // A flat 1 Hz run: 6 min of warm-up at 3.0 m/s, then 20 min per half.
        let mut samples = Vec::new();
        let (mut t, mut d) = (0.0, 0.0);
        let mut push = |speed: f64, hr: f64, seconds: usize| {
            for _ in 0..seconds {
                samples.push(Sample {
                    t_s: Some(t),
                    distance_m: Some(d),
                    altitude_m: Some(100.0),
                    hr_bpm: Some(hr),
                    ..Sample::default()
                });
                t += 1.0;
                d += speed;
            }
        };
        push(3.0, 130.0, 361);
        push(3.0, 140.0, 1200);
        push(2.95, 145.0, 1200);
        let e = analyze(Sport::Run, &samples);
        let pct = e.decoupling_pct.unwrap();
        assert!(close(pct, 5.0575, 2e-3), "{pct}");
        assert_eq!(e.decoupling_badge, Some(DecouplingBadge::Yellow));
        // Flat: grade-adjusted and raw EF agree; the analysed time is the two halves.
        assert!(close(
            e.efficiency_factor.unwrap(),
            e.efficiency_factor_raw.unwrap(),
            1e-12
        ));
        assert_eq!(e.analyzed_time_s, 2400.0);
        assert_eq!(e.moving_time_s, 2760.0);
        let ef1 = 3.0 * 60.0 / 140.0;
        let ef2 = 2.95 * 60.0 / 145.0;
        assert!(close(100.0 * (ef1 - ef2) / ef1, 5.0575, 1e-4));
    }

    #[test]
    fn warm_up_gaps_and_stops_are_left_out() {
        let mut samples = Vec::new();
        for i in 0..1000 {
            let t = f64::from(i);
            // A 40 s gap at 500 s and a standstill from 600 to 660 s.
            let t = if i >= 500 { t + 40.0 } else { t };
            let d = if (600..660).contains(&i) {
                600.0 * 3.0
            } else if i >= 660 {
                (f64::from(i) - 60.0) * 3.0
            } else {
                f64::from(i) * 3.0
            };
            samples.push(Sample {
                t_s: Some(t),
                distance_m: Some(d),
                hr_bpm: Some(150.0),
                ..Sample::default()
            });
        }
        let e = analyze(Sport::Run, &samples);
        // 999 intervals: one gap (40+1 s > 30 s) and 60 stopped ones are not moving.
        assert_eq!(e.moving_time_s, 999.0 - 1.0 - 60.0);
        assert_eq!(e.analyzed_time_s, e.moving_time_s - 360.0);
        assert!(close(e.efficiency_factor.unwrap(), 180.0 / 150.0, 1e-12));
        assert_eq!(e.elevation_gain_m, None, "no altitude, no elevation");
    }

    #[test]
    fn grade_uses_fifty_metres_of_profile_and_is_clamped() {
        let pts: Vec<Point> = (0..=100)
            .map(|i| Point {
                t_s: f64::from(i),
                d_m: f64::from(i) * 10.0,
                // A steady 4 % climb, then a wall.
                alt_m: Some(if i <= 50 {
                    f64::from(i) * 0.4
                } else {
                    20.0 + f64::from(i - 50) * 8.0
                }),
                hr_bpm: None,
            })
            .collect();
        let p = Profile::new(&pts).unwrap();
        assert!(close(p.grade_at(200.0), 0.04, 1e-9));
        assert_eq!(p.grade_at(800.0), MAX_GRADE);
        // At the start the window is clamped: (alt(25) - alt(0)) / 50.
        assert!(close(p.grade_at(0.0), 1.0 / 50.0, 1e-9));
    }

    #[test]
    fn non_runs_and_short_runs_have_no_ef_and_say_why() {
        let samples: Vec<Sample> = (0..400)
            .map(|i| Sample {
                t_s: Some(f64::from(i)),
                distance_m: Some(f64::from(i) * 3.0),
                hr_bpm: Some(140.0),
                ..Sample::default()
            })
            .collect();
        let short = analyze(Sport::Run, &samples);
        assert_eq!(short.efficiency_factor, None);
        assert!(short.reason.unwrap().contains("at least 300 s"));
        let ride = analyze(Sport::Ride, &samples);
        assert_eq!(ride.efficiency_factor, None);
        assert!(ride.reason.unwrap().contains("defined for runs"));
    }

    #[test]
    fn manual_activities_use_splits_after_the_warm_up() {
        let lap = |i: u32, dt: f64, dd: f64, hr: f64| crate::activity::Lap {
            index: i,
            distance_m: Some(dd),
            moving_time_s: Some(dt),
            avg_hr_bpm: Some(hr),
            elevation_gain_m: None,
        };
        // Four 10-minute splits: the first loses its first 6 minutes.
        let laps = [
            lap(0, 600.0, 1800.0, 130.0),
            lap(1, 600.0, 1800.0, 140.0),
            lap(2, 600.0, 1770.0, 145.0),
            lap(3, 600.0, 1770.0, 145.0),
        ];
        let e = analyze_manual(Sport::Run, Some(7140.0), 2400.0, Some(140.0), &laps);
        assert_eq!(e.analyzed_time_s, 2040.0);
        let (t, d) = (2040.0, 720.0 + 1800.0 + 1770.0 + 1770.0);
        let hr = (240.0 * 130.0 + 600.0 * 140.0 + 1200.0 * 145.0) / t;
        assert!(close(
            e.efficiency_factor.unwrap(),
            d / t * 60.0 / hr,
            1e-12
        ));
        assert_eq!(e.efficiency_factor, e.efficiency_factor_raw);
        assert!(e.decoupling_pct.unwrap() > 0.0);
        // The summary alone: constant pace, so EF is the summary's.
        let e = analyze_manual(Sport::Run, Some(10_000.0), 3000.0, Some(150.0), &[]);
        assert!(close(e.efficiency_factor.unwrap(), 200.0 / 150.0, 1e-12));
        assert_eq!(e.analyzed_time_s, 2640.0);
        assert!(e.reason.unwrap().contains("decoupling needs splits"));
        let e = analyze_manual(Sport::Run, Some(10_000.0), 3000.0, None, &[]);
        assert_eq!(e.efficiency_factor, None);
        assert!(e.reason.unwrap().contains("no samples"));
    }

    #[test]
    fn haversine_without_a_distance_field() {
        // One degree of latitude on the mean sphere.
        let d = haversine_m(45.0, 7.0, 46.0, 7.0);
        assert!(close(
            d,
            EARTH_RADIUS_M * std::f64::consts::PI / 180.0,
            1e-12
        ));
        let samples = [
            Sample {
                t_s: Some(0.0),
                lat_deg: Some(45.0),
                lon_deg: Some(7.0),
                ..Sample::default()
            },
            Sample {
                t_s: Some(10.0),
                lat_deg: Some(45.0003),
                lon_deg: Some(7.0),
                ..Sample::default()
            },
        ];
        let e = analyze(Sport::Run, &samples);
        assert!(close(
            e.distance_m,
            EARTH_RADIUS_M * 0.0003f64.to_radians(),
            1e-9
        ));
    }

    /// A session with heart rate but no distance has no EF (0 would say nothing) but still
    /// has load.
    #[test]
    fn no_distance_means_no_ef_but_load() {
        let (e, load) = analyze_manual_with_load(Sport::Run, Some(0.0), 3600.0, Some(130.0), &[]);
        assert_eq!(e.efficiency_factor, None);
        assert!(e.reason.is_some());
        assert_eq!(load.hr_time, vec![(130.0, 3600.0)]);
        let (e, load) = analyze_manual_with_load(Sport::Other, None, 1800.0, Some(110.0), &[]);
        assert_eq!(e.efficiency_factor, None);
        assert_eq!(load.hr_time, vec![(110.0, 1800.0)]);
    }
}
