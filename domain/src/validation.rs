//! Range checks shared by every command. A zero is a value (zero caffeine, zero stress), never
//! "not given": absence is `None`, and only absent fields skip their checks.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// One field that failed its check, with a message that says what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    pub field: &'static str,
    pub problem: String,
}

impl ValidationError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

pub type Checked<T = ()> = Result<T, ValidationError>;

/// `value` must be finite and within `[min, max]`; `unit` completes the message ("bpm", "h").
pub fn in_range(field: &'static str, value: f64, min: f64, max: f64, unit: &str) -> Checked {
    if !value.is_finite() {
        return Err(ValidationError::new(field, "must be a finite number"));
    }
    if value < min || value > max {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        return Err(ValidationError::new(
            field,
            format!("must be between {min} and {max}{unit}, got {value}{unit}"),
        ));
    }
    Ok(())
}

/// Like [`in_range`] for an optional field: `None` passes, `Some(0.0)` is checked like any value.
pub fn opt_in_range(
    field: &'static str,
    value: Option<f64>,
    min: f64,
    max: f64,
    unit: &str,
) -> Checked {
    value.map_or(Ok(()), |v| in_range(field, v, min, max, unit))
}

/// An integer scale such as effort 1-10 or sleep quality 1-5.
pub fn on_scale(field: &'static str, value: u8, min: u8, max: u8) -> Checked {
    if value < min || value > max {
        return Err(ValidationError::new(
            field,
            format!("must be on the {min}-{max} scale, got {value}"),
        ));
    }
    Ok(())
}

pub fn opt_on_scale(field: &'static str, value: Option<u8>, min: u8, max: u8) -> Checked {
    value.map_or(Ok(()), |v| on_scale(field, v, min, max))
}

/// Heart rates anywhere in the product: 25-250 bpm covers elite resting rates and maximal efforts.
pub fn heart_rate(field: &'static str, hr_bpm: Option<f64>) -> Checked {
    opt_in_range(field, hr_bpm, 25.0, 250.0, "bpm")
}

/// Instants may be at most one day ahead of `now` (time zones and clock skew), never more.
pub fn not_in_future(field: &'static str, at: DateTime<Utc>, now: DateTime<Utc>) -> Checked {
    if at > now + Duration::days(1) {
        return Err(ValidationError::new(
            field,
            format!("{} is more than a day in the future", at.to_rfc3339()),
        ));
    }
    Ok(())
}

/// Calendar dates may be at most one day after today's UTC date.
pub fn date_not_in_future(field: &'static str, date: NaiveDate, now: DateTime<Utc>) -> Checked {
    if date > now.date_naive() + Duration::days(1) {
        return Err(ValidationError::new(
            field,
            format!("{date} is more than a day in the future"),
        ));
    }
    Ok(())
}

/// Free text (notes) is bounded so one event cannot carry megabytes.
pub fn text(field: &'static str, value: Option<&str>, max_chars: usize) -> Checked {
    match value {
        Some(v) if v.chars().count() > max_chars => Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn zero_is_a_value_and_is_checked() {
        assert!(opt_in_range("caffeine_mg", Some(0.0), 0.0, 2000.0, "mg").is_ok());
        let err = opt_in_range("weight_kg", Some(0.0), 20.0, 400.0, "kg").unwrap_err();
        assert_eq!(err.field, "weight_kg");
        assert_eq!(err.problem, "must be between 20 and 400 kg, got 0 kg");
    }

    #[test]
    fn heart_rate_bounds_are_inclusive() {
        assert!(heart_rate("hr", Some(25.0)).is_ok());
        assert!(heart_rate("hr", Some(250.0)).is_ok());
        assert!(heart_rate("hr", Some(24.9)).is_err());
        assert!(heart_rate("hr", Some(f64::NAN)).is_err());
        assert!(heart_rate("hr", None).is_ok());
    }

    #[test]
    fn one_day_of_future_is_tolerated() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        assert!(not_in_future("at", now + Duration::hours(23), now).is_ok());
        assert!(not_in_future("at", now + Duration::hours(25), now).is_err());
        let tomorrow = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        assert!(date_not_in_future("date", tomorrow, now).is_ok());
        assert!(date_not_in_future("date", tomorrow.succ_opt().unwrap(), now).is_err());
    }
}
