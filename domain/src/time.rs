//! Local calendar dates. Daily load, check-ins and "today" are all on the athlete's calendar,
//! which needs the IANA database: `chrono-tz` compiles it in, so no zone files are read at
//! run time and every process agrees.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// The zone named `timezone`, if the IANA database knows it.
pub fn zone(timezone: &str) -> Option<Tz> {
    timezone.parse::<Tz>().ok()
}

/// The local calendar date of `instant` in `timezone`. A name the database does not know
/// (only possible in events written before names were checked against it) counts as UTC.
pub fn local_date(instant: DateTime<Utc>, timezone: &str) -> NaiveDate {
    match zone(timezone) {
        Some(tz) => instant.with_timezone(&tz).date_naive(),
        None => instant.date_naive(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn dates_follow_the_zone_and_its_daylight_saving() {
        // 06:00 in Sydney (UTC+11 in January) is 19:00 UTC the day before.
        assert_eq!(
            local_date(at(2026, 1, 9, 19, 0), "Australia/Sydney"),
            date(2026, 1, 10)
        );
        // 23:30 in New York: UTC-5 in January, UTC-4 in July.
        assert_eq!(
            local_date(at(2026, 1, 10, 4, 30), "America/New_York"),
            date(2026, 1, 9)
        );
        assert_eq!(
            local_date(at(2026, 7, 10, 3, 30), "America/New_York"),
            date(2026, 7, 9)
        );
        assert_eq!(
            local_date(at(2026, 7, 10, 4, 30), "America/New_York"),
            date(2026, 7, 10)
        );
        // The POSIX sign of the Etc zones: Etc/GMT+5 is five hours behind UTC.
        assert_eq!(
            local_date(at(2026, 3, 1, 3, 0), "Etc/GMT+5"),
            date(2026, 2, 28)
        );
        assert_eq!(local_date(at(2026, 3, 1, 23, 0), "UTC"), date(2026, 3, 1));
        assert_eq!(
            local_date(at(2026, 3, 1, 23, 0), "Mars/Olympus_Mons"),
            date(2026, 3, 1)
        );
    }
}
