//! Display strings in the athlete's units. Stored and computed values stay SI; only fields
//! named `display` follow the preference.

use serde::{Deserialize, Serialize};

use crate::athlete::Units;
use crate::efficiency::YARDS_PER_METRE;

pub const METRES_PER_MILE: f64 = 1609.344;
pub const FEET_PER_METRE: f64 = 3.280_839_9;

pub fn distance(units: Units, m: f64) -> String {
    match units {
        Units::Metric => format!("{:.2} km", m / 1000.0),
        Units::Imperial => format!("{:.2} mi", m / METRES_PER_MILE),
    }
}

/// Pace as minutes:seconds per kilometre or mile; `None` without distance or time.
pub fn pace(units: Units, distance_m: f64, time_s: f64) -> Option<String> {
    if distance_m <= 0.0 || time_s <= 0.0 {
        return None;
    }
    let (per, unit) = match units {
        Units::Metric => (1000.0, "/km"),
        Units::Imperial => (METRES_PER_MILE, "/mi"),
    };
    let s = (time_s / distance_m * per).round() as i64;
    Some(format!("{}:{:02} {unit}", s / 60, s % 60))
}

/// Metric EF is metres per minute per beat; imperial is Friel's yards per minute per beat.
pub fn efficiency_factor(units: Units, ef: f64) -> String {
    match units {
        Units::Metric => format!("{ef:.3} m/min/bpm"),
        Units::Imperial => format!("{:.3} yd/min/bpm", ef * YARDS_PER_METRE),
    }
}

pub fn elevation(units: Units, m: f64) -> String {
    match units {
        Units::Metric => format!("{m:.0} m"),
        Units::Imperial => format!("{:.0} ft", m * FEET_PER_METRE),
    }
}

/// The display fields of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDisplay {
    pub units: Units,
    pub distance: String,
    pub pace: Option<String>,
    pub efficiency_factor: Option<String>,
    pub elevation_gain: Option<String>,
}

impl RunDisplay {
    pub fn new(
        units: Units,
        distance_m: f64,
        moving_time_s: f64,
        ef: Option<f64>,
        elevation_gain_m: Option<f64>,
    ) -> Self {
        Self {
            units,
            distance: distance(units, distance_m),
            pace: pace(units, distance_m, moving_time_s),
            efficiency_factor: ef.map(|e| efficiency_factor(units, e)),
            elevation_gain: elevation_gain_m.map(|g| elevation(units, g)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_unit_systems_format_the_same_run() {
        let m = RunDisplay::new(Units::Metric, 10_000.0, 3000.0, Some(0.96882), Some(123.4));
        assert_eq!(m.distance, "10.00 km");
        assert_eq!(m.pace.as_deref(), Some("5:00 /km"));
        assert_eq!(m.efficiency_factor.as_deref(), Some("0.969 m/min/bpm"));
        assert_eq!(m.elevation_gain.as_deref(), Some("123 m"));
        let i = RunDisplay::new(
            Units::Imperial,
            10_000.0,
            3000.0,
            Some(0.96882),
            Some(123.4),
        );
        assert_eq!(i.distance, "6.21 mi");
        // 3000 s / 6.2137 mi = 482.8 s/mi.
        assert_eq!(i.pace.as_deref(), Some("8:03 /mi"));
        assert_eq!(i.efficiency_factor.as_deref(), Some("1.060 yd/min/bpm"));
        assert_eq!(i.elevation_gain.as_deref(), Some("405 ft"));
        assert_eq!(pace(Units::Metric, 0.0, 100.0), None);
    }
}
