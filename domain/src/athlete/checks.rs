//! Validation specific to athletes.

use super::*;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::validation::{self, Checked, ValidationError};

pub(super) fn invalid(field: &'static str, problem: impl Into<String>) -> DomainError {
    DomainError::Invalid(ValidationError::new(field, problem))
}

/// A shape check, not deliverability: the address is proven by the verification mail.
/// Returns the canonical (trimmed, lowercased) form.
pub fn check_email(value: &str) -> Checked<String> {
    let email = value.trim().to_lowercase();
    let chars = email.chars().count();
    if chars > 254 {
        return Err(ValidationError::new(
            "email",
            format!("must be at most 254 characters, got {chars}"),
        ));
    }
    if email.chars().any(char::is_whitespace) {
        return Err(ValidationError::new("email", "must not contain spaces"));
    }
    validation::refuse_unstorable("email", &email, false)?;
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => Err(ValidationError::new(
            "email",
            "must contain exactly one @ with text on both sides",
        )),
    }
}

/// Names are shown in lists and emails: 1-100 characters after trimming, one line, nothing
/// [`validation::text`] refuses.
/// Returns the trimmed form.
pub fn check_name(field: &'static str, value: &str) -> Checked<String> {
    let name = value.trim();
    let chars = name.chars().count();
    if !(1..=100).contains(&chars) {
        return Err(ValidationError::new(
            field,
            format!("must be 1-100 characters, got {chars}"),
        ));
    }
    // One line: no tabs or line breaks either.
    validation::refuse_unstorable(field, name, false)?;
    Ok(name.to_string())
}

/// IANA areas. A zone is "UTC" or `Area/Location[/Sublocation]` with one of these areas (the
/// shape the API's schema states) and must be known to the IANA database. Legacy aliases
/// ("US/Pacific", "EST5EDT") are refused so the schema and this check agree.
pub(super) const TZ_AREAS: &[&str] = &[
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
    "Etc",
];

pub fn check_timezone(value: &str) -> Checked {
    if value == "UTC" {
        return Ok(());
    }
    let segments: Vec<&str> = value.split('/').collect();
    let location_ok = |s: &&str| {
        s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
    };
    let well_formed = value.len() <= 64
        && (2..=3).contains(&segments.len())
        && TZ_AREAS.contains(&segments[0])
        && segments[1..].iter().all(location_ok);
    if well_formed && crate::time::zone(value).is_some() {
        Ok(())
    } else {
        Err(ValidationError::new(
            "timezone",
            format!("must be \"UTC\" or an IANA name such as \"Europe/Paris\", got {value:?}"),
        ))
    }
}

/// Reason codes stand in for free text on audit markers, which must stay free of personal data.
/// A reason given for an admin action: a snake_case code of at most 40 characters, never
/// prose (it stays in the athlete's history after their personal data is gone).
pub fn is_reason_code(value: &str) -> bool {
    (1..=40).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(super) fn check_reason_code(value: &str) -> Checked {
    if is_reason_code(value) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "reason",
            format!("must be a snake_case code of at most 40 characters, got {value:?}"),
        ))
    }
}

pub(super) fn check_injected_types(event_types: &BTreeSet<String>) -> Checked {
    if event_types.is_empty() {
        return Err(ValidationError::new(
            "event_types",
            "must name at least one event type",
        ));
    }
    let known = crate::catalogue::all();
    for event_type in event_types {
        if NOT_INJECTABLE.contains(&event_type.as_str()) {
            return Err(ValidationError::new(
                "event_types",
                format!("{event_type} cannot be injected by an admin"),
            ));
        }
        if !known.iter().any(|s| s.event_type == event_type) {
            return Err(ValidationError::new(
                "event_types",
                format!("{event_type} is not a known event type"),
            ));
        }
    }
    Ok(())
}

/// Threshold pace bounds: 2:00/km is faster than any human threshold, 20:00/km is a walk.
pub(super) const THRESHOLD_PACE_S_PER_KM: (f64, f64) = (120.0, 1200.0);

pub(super) fn check_physiology(p: &Physiology, now: DateTime<Utc>) -> Checked {
    let bpm = |v: Option<u16>| v.map(f64::from);
    validation::heart_rate("hr_max_bpm", bpm(p.hr_max_bpm))?;
    validation::heart_rate("resting_hr_bpm", bpm(p.resting_hr_bpm))?;
    validation::heart_rate("threshold_hr_bpm", bpm(p.threshold_hr_bpm))?;
    // Zones and hrTSS divide by (threshold - resting) and (max - resting): a misordered set would
    // give negative or infinite intensities.
    let rest = ("resting_hr_bpm", p.resting_hr_bpm);
    let threshold = ("threshold_hr_bpm", p.threshold_hr_bpm);
    let max = ("hr_max_bpm", p.hr_max_bpm);
    hr_order(rest, threshold, true)?;
    hr_order(rest, max, true)?;
    hr_order(threshold, max, false)?;
    let (min_pace, max_pace) = THRESHOLD_PACE_S_PER_KM;
    validation::opt_in_range(
        "threshold_pace_s_per_km",
        p.threshold_pace_s_per_km,
        min_pace,
        max_pace,
        "s/km",
    )?;
    validation::opt_in_range("height_cm", p.height_cm, 50.0, 272.0, "cm")?;
    if let Some(birth_date) = p.birth_date {
        validation::date_not_in_future("birth_date", birth_date, now)?;
        let age_years = now.date_naive().years_since(birth_date).unwrap_or(0);
        if !(5..=120).contains(&age_years) {
            return Err(ValidationError::new(
                "birth_date",
                format!("must give an age of 5-120 years, got {age_years}"),
            ));
        }
    }
    Ok(())
}

/// `low` must be below `high` (or equal, when not `strict`); only checked when both are given.
pub(super) fn hr_order(
    (low_name, low): (&'static str, Option<u16>),
    (high_name, high): (&'static str, Option<u16>),
    strict: bool,
) -> Checked {
    if let (Some(low), Some(high)) = (low, high)
        && (low > high || (strict && low == high))
    {
        let relation = if strict { "below" } else { "at most" };
        return Err(ValidationError::new(
            low_name,
            format!("must be {relation} {high_name} ({high} bpm), got {low} bpm"),
        ));
    }
    Ok(())
}

pub(super) fn check_nutrients(n: &Nutrients) -> Checked {
    let all = [
        n.calories_kcal,
        n.protein_g,
        n.carbohydrate_g,
        n.fat_g,
        n.fibre_g,
        n.caffeine_mg,
    ];
    if all.iter().all(Option::is_none) {
        return Err(ValidationError::new(
            "nutrients",
            "a preset needs at least one value (0 counts)",
        ));
    }
    validation::opt_in_range("calories_kcal", n.calories_kcal, 0.0, 10_000.0, "kcal")?;
    validation::opt_in_range("protein_g", n.protein_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("carbohydrate_g", n.carbohydrate_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("fat_g", n.fat_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("fibre_g", n.fibre_g, 0.0, 1000.0, "g")?;
    validation::opt_in_range("caffeine_mg", n.caffeine_mg, 0.0, 2000.0, "mg")?;
    Ok(())
}
