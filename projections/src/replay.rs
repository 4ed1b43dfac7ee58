//! An athlete as they were at a moment: their events up to a log position or a time, folded
//! through the same projections that serve live reads, into a private in-memory database.
//! Nothing live is touched, so admins can replay any history at any time.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use store::{AsOf, EventStore};
use uuid::Uuid;

use crate::decode::{Decoder, DomainEvent};
use crate::engine::{Projected, Tables};
use crate::{journal, profile};

#[derive(Debug, Clone, Serialize)]
pub struct AthleteAt {
    pub athlete_id: Uuid,
    /// Events of this athlete up to the moment.
    pub events: usize,
    /// The last of them: its log position and time.
    pub last_position: Option<i64>,
    pub last_recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    pub erased: bool,
    pub profile: Option<profile::Profile>,
    /// Events per type: how much of each kind of data existed then.
    pub counts: BTreeMap<String, usize>,
    /// The most recent journal days (up to 3), newest first.
    pub latest_journal_days: Vec<journal::JournalDay>,
}

pub async fn athlete_at(
    store: &EventStore,
    athlete: Uuid,
    as_of: AsOf,
) -> anyhow::Result<AthleteAt> {
    let events = store.read_athlete(athlete, Some(as_of)).await?;
    sqlx::any::install_default_drivers();
    // One connection: every connection to `sqlite::memory:` is a database of its own.
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    let projections = crate::all();
    let decoder = Decoder::default();
    let mut conn = pool.acquire().await?;
    for p in &projections {
        for ddl in p.schema(&Tables::new(p.name(), 1)) {
            sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(&mut *conn)
                .await?;
        }
    }
    let mut counts = BTreeMap::new();
    let mut erased = false;
    for e in &events {
        *counts.entry(e.event_type.clone()).or_insert(0) += 1;
        erased |= e.event_type == "AthleteErased";
        let decoded = decoder.decode(e).unwrap_or(DomainEvent::Foreign);
        let projected = Projected {
            recorded: e,
            event: &decoded,
            store,
            live: false,
        };
        for p in &projections {
            // A replay shows what can be shown: an event a read model refuses is counted above
            // and left out of that model, exactly as the live engine would skip it.
            let _ = p
                .apply(&mut conn, &Tables::new(p.name(), 1), &projected)
                .await;
        }
    }
    drop(conn);
    let profile = profile::profile(&pool, &Tables::new("profile", 1), athlete).await?;
    let mut days = journal::range(
        &pool,
        &Tables::new("journal", 1),
        athlete,
        // Dates compare as text: stay inside four-digit years.
        NaiveDate::from_ymd_opt(1, 1, 1).expect("a date"),
        NaiveDate::from_ymd_opt(9999, 12, 31).expect("a date"),
    )
    .await?;
    days.reverse();
    days.truncate(3);
    Ok(AthleteAt {
        athlete_id: athlete,
        events: events.len(),
        last_position: events.last().map(|e| e.position),
        last_recorded_at: events.last().map(|e| e.recorded_at),
        erased,
        profile,
        counts,
        latest_journal_days: days,
    })
}
