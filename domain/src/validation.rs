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

/// Instants may be at most one day ahead of `now` (time zones and clock skew), never more, and
/// fall in [`YEARS`].
pub fn not_in_future(field: &'static str, at: DateTime<Utc>, now: DateTime<Utc>) -> Checked {
    plausible_date(field, at.date_naive())?;
    if at > now + Duration::days(1) {
        return Err(ValidationError::new(
            field,
            format!("{} is more than a day in the future", at.to_rfc3339()),
        ));
    }
    Ok(())
}

/// Calendar dates may be at most one day after today's UTC date, and fall in [`YEARS`].
pub fn date_not_in_future(field: &'static str, date: NaiveDate, now: DateTime<Utc>) -> Checked {
    plausible_date(field, date)?;
    if date > now.date_naive() + Duration::days(1) {
        return Err(ValidationError::new(
            field,
            format!("{date} is more than a day in the future"),
        ));
    }
    Ok(())
}

/// Free text (names, notes, ids) is bounded so one event cannot carry megabytes, and holds only
/// characters every store and every client keep as they are: no control characters other than
/// tab, line feed and carriage return (a NUL cannot be stored in PostgreSQL text at all), and no
/// Unicode noncharacters. Everything else, astral planes, format characters and private use
/// included, is stored and read back byte for byte (decisions.md, "what text may hold").
pub fn text(field: &'static str, value: Option<&str>, max_chars: usize) -> Checked {
    let Some(v) = value else {
        return Ok(());
    };
    if v.chars().count() > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    refuse_unstorable(field, v, true)
}

/// Whether `c` may appear in stored text. Line breaks and tabs only where `multiline`.
pub fn storable_char(c: char, multiline: bool) -> bool {
    if multiline && matches!(c, '\t' | '\n' | '\r') {
        return true;
    }
    !(c.is_control() || is_noncharacter(c))
}

/// U+FDD0-U+FDEF and the last two code points of every plane: reserved for a program's internal
/// use, never for interchange.
pub fn is_noncharacter(c: char) -> bool {
    let u = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE
}

/// The first character `text` may not hold, named by code point and position (1-based), so the
/// sender can find it even when it is invisible.
pub fn refuse_unstorable(field: &'static str, value: &str, multiline: bool) -> Checked {
    match value
        .chars()
        .enumerate()
        .find(|(_, c)| !storable_char(*c, multiline))
    {
        None => Ok(()),
        Some((i, c)) => {
            let allowed = if multiline {
                "; tab and line breaks are allowed"
            } else {
                ""
            };
            let kind = if c.is_control() {
                "a control character"
            } else {
                "a Unicode noncharacter"
            };
            Err(ValidationError::new(
                field,
                format!(
                    "must not contain {kind} (U+{:04X} at character {}){allowed}",
                    u32::from(c),
                    i + 1
                ),
            ))
        }
    }
}

/// The years a date or instant may fall in. Nothing an athlete logs is older (birth dates
/// included) and the one-day-ahead rule ends long before; the bound also keeps date arithmetic
/// (ages, week starts, ranges) far from chrono's limits.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// A calendar date within [`YEARS`].
pub fn plausible_date(field: &'static str, date: NaiveDate) -> Checked {
    use chrono::Datelike;
    if YEARS.contains(&date.year()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "must be in the years {}-{}, got {date}",
                YEARS.start(),
                YEARS.end()
            ),
        ))
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

    #[test]
    fn text_refuses_controls_other_than_tab_and_line_breaks() {
        assert!(text("notes", Some("a\tb\nc\r\nd"), 100).is_ok());
        for bad in ['\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}'] {
            let value = format!("ok{bad}");
            let err = text("notes", Some(&value), 100).unwrap_err();
            assert_eq!(err.field, "notes");
            assert_eq!(
                err.problem,
                format!(
                    "must not contain a control character (U+{:04X} at character 3); \
                     tab and line breaks are allowed",
                    u32::from(bad)
                )
            );
        }
        let err = text("name", Some("\u{fffe}"), 100).unwrap_err();
        assert_eq!(
            err.problem,
            "must not contain a Unicode noncharacter (U+FFFE at character 1); \
             tab and line breaks are allowed"
        );
        assert!(text("notes", Some("\u{10ffff}"), 100).is_err());
        assert!(text("notes", Some("\u{fdd0}"), 100).is_err());
    }

    #[test]
    fn text_keeps_every_plane_and_format_characters() {
        let value = "\u{feff}\u{202e}\u{1f3c3}\u{20000}\u{e0001}\u{f0000}\u{100000}\u{fffd}é";
        assert!(text("notes", Some(value), 100).is_ok());
        // The limit counts characters, not bytes: 4-byte characters up to the limit pass.
        assert!(text("notes", Some(&"\u{1f3c3}".repeat(100)), 100).is_ok());
        assert!(text("notes", Some(&"\u{1f3c3}".repeat(101)), 100).is_err());
    }

    #[test]
    fn single_line_text_refuses_line_breaks() {
        assert!(refuse_unstorable("display_name", "a\nb", false).is_err());
        assert!(refuse_unstorable("display_name", "a\tb", false).is_err());
        assert!(refuse_unstorable("display_name", "Zoë \u{1f3c3}", false).is_ok());
    }

    #[test]
    fn dates_fall_in_1900_to_2100() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert!(date_not_in_future("date", day(1900, 1, 1), now).is_ok());
        let err = date_not_in_future("date", day(1899, 12, 31), now).unwrap_err();
        assert_eq!(
            err.problem,
            "must be in the years 1900-2100, got 1899-12-31"
        );
        assert!(plausible_date("date", day(2100, 12, 31)).is_ok());
        assert!(plausible_date("date", day(2101, 1, 1)).is_err());
        let early = Utc.with_ymd_and_hms(1899, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            not_in_future("start_time", early, now).unwrap_err().field,
            "start_time"
        );
    }
}
