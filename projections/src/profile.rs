//! The athlete's own account as they see it on their settings pages: profile, preferences,
//! physiology, onboarding, coach access, training availability and nutrition presets. Every
//! value is personal, so an erasure deletes every row of the athlete.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::{
    AthleteEvent, CoachAccessScope, Digest, NotificationChoices, Nutrients, OnboardingStep,
    Physiology, Role, Sex, TrainingGoal, Units, WeeklyAvailability,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};

pub struct ProfileProjection;

const TABLES: &[&str] = &["profiles", "coaches", "presets"];

#[async_trait::async_trait]
impl Projection for ProfileProjection {
    fn name(&self) -> &'static str {
        "profile"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        let profiles = t.table("profiles");
        let coaches = t.table("coaches");
        let presets = t.table("presets");
        vec![
            // One row per athlete. Preferences and physiology are replaced whole by their
            // events, so they live here as columns rather than in tables of their own.
            format!(
                "CREATE TABLE {profiles} (
                    athlete_id              TEXT   PRIMARY KEY,
                    display_name            TEXT   NOT NULL,
                    email                   TEXT   NOT NULL,
                    role                    TEXT   NOT NULL,
                    registered_at_us        BIGINT NOT NULL,
                    goals                   TEXT   NOT NULL,
                    units                   TEXT   NOT NULL,
                    timezone                TEXT   NOT NULL,
                    notify_new_insights     BIGINT NOT NULL,
                    notify_sync_problems    BIGINT NOT NULL,
                    notify_coach_messages   BIGINT NOT NULL,
                    digest_frequency        TEXT   NOT NULL,
                    digest_weekday          TEXT,
                    hr_max_bpm              BIGINT,
                    resting_hr_bpm          BIGINT,
                    threshold_hr_bpm        BIGINT,
                    threshold_pace_s_per_km DOUBLE PRECISION,
                    sex                     TEXT,
                    birth_date              TEXT,
                    height_cm               DOUBLE PRECISION,
                    onboarding_reached      TEXT,
                    onboarding_completed    TEXT,
                    availability            TEXT,
                    availability_set_at_us  BIGINT
                )"
            ),
            format!(
                "CREATE TABLE {coaches} (
                    athlete_id    TEXT   NOT NULL,
                    coach_id      TEXT   NOT NULL,
                    scope         TEXT   NOT NULL,
                    granted_at_us BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, coach_id)
                )"
            ),
            // Keyed by athlete too: preset ids come from clients, and one athlete's id must
            // never overwrite another athlete's preset.
            format!(
                "CREATE TABLE {presets} (
                    athlete_id     TEXT   NOT NULL,
                    preset_id      TEXT   NOT NULL,
                    name           TEXT   NOT NULL,
                    calories_kcal  DOUBLE PRECISION,
                    protein_g      DOUBLE PRECISION,
                    carbohydrate_g DOUBLE PRECISION,
                    fat_g          DOUBLE PRECISION,
                    fibre_g        DOUBLE PRECISION,
                    caffeine_mg    DOUBLE PRECISION,
                    saved_at_us    BIGINT NOT NULL,
                    PRIMARY KEY (athlete_id, preset_id)
                )"
            ),
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        let DomainEvent::Athlete(event) = e.event else {
            return Ok(());
        };
        let Some(athlete) = e.recorded.metadata.athlete_id else {
            return Ok(());
        };
        let athlete = athlete.to_string();
        let profiles = t.table("profiles");
        match event {
            AthleteEvent::AthleteRegistered(r) => {
                // The defaults are the documented state before the first PreferencesChanged.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {profiles} (athlete_id, display_name, email, role, registered_at_us, \
                       goals, units, timezone, notify_new_insights, notify_sync_problems, \
                       notify_coach_messages, digest_frequency) \
                     VALUES ($1, $2, $3, $4, $5, '[]', 'metric', 'UTC', 0, 0, 0, 'off') \
                     ON CONFLICT (athlete_id) DO UPDATE SET display_name = excluded.display_name, \
                       email = excluded.email, role = excluded.role, \
                       registered_at_us = excluded.registered_at_us"
                )))
                .bind(&athlete)
                .bind(&r.display_name)
                .bind(&r.email)
                .bind(code(&r.role)?)
                .bind(r.registered_at.timestamp_micros())
                .execute(conn)
                .await?;
            }
            AthleteEvent::ProfileUpdated(p) => {
                let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {profiles} SET display_name = $2, email = $3, goals = $4 \
                     WHERE athlete_id = $1"
                )))
                .bind(&athlete)
                .bind(&p.display_name)
                .bind(&p.email)
                .bind(serde_json::to_string(&p.goals)?)
                .execute(conn)
                .await?;
                registered(updated.rows_affected())?;
            }
            AthleteEvent::PreferencesChanged(p) => {
                let (frequency, weekday) = match p.digest {
                    Digest::Off => ("off", None),
                    Digest::Weekly { weekday } => ("weekly", Some(code(&weekday)?)),
                    Digest::Monthly { weekday } => ("monthly", Some(code(&weekday)?)),
                };
                let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {profiles} SET units = $2, timezone = $3, notify_new_insights = $4, \
                       notify_sync_problems = $5, notify_coach_messages = $6, \
                       digest_frequency = $7, digest_weekday = $8 \
                     WHERE athlete_id = $1"
                )))
                .bind(&athlete)
                .bind(code(&p.units)?)
                .bind(&p.timezone)
                .bind(i64::from(p.notifications.new_insights))
                .bind(i64::from(p.notifications.sync_problems))
                .bind(i64::from(p.notifications.coach_messages))
                .bind(frequency)
                .bind(weekday)
                .execute(conn)
                .await?;
                registered(updated.rows_affected())?;
            }
            AthleteEvent::PhysiologyChanged(p) => {
                let updated = uncached(format!(
                    "UPDATE {profiles} SET hr_max_bpm = $2, resting_hr_bpm = $3, \
                       threshold_hr_bpm = $4, threshold_pace_s_per_km = $5, sex = $6, \
                       birth_date = $7, height_cm = $8 \
                     WHERE athlete_id = $1"
                ))
                .bind(&athlete)
                .bind(p.hr_max_bpm.map(i64::from))
                .bind(p.resting_hr_bpm.map(i64::from))
                .bind(p.threshold_hr_bpm.map(i64::from))
                .bind(p.threshold_pace_s_per_km)
                .bind(p.sex.as_ref().map(code).transpose()?)
                .bind(p.birth_date.map(|d| d.to_string()))
                .bind(p.height_cm)
                .execute(conn)
                .await?;
                registered(updated.rows_affected())?;
            }
            AthleteEvent::OnboardingProgressed(o) => {
                let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {profiles} SET onboarding_reached = $2, onboarding_completed = $3 \
                     WHERE athlete_id = $1"
                )))
                .bind(&athlete)
                .bind(code(&o.reached)?)
                .bind(serde_json::to_string(&o.completed)?)
                .execute(conn)
                .await?;
                registered(updated.rows_affected())?;
            }
            AthleteEvent::RoleChanged(r) => {
                let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {profiles} SET role = $2 WHERE athlete_id = $1"
                )))
                .bind(&athlete)
                .bind(code(&r.to)?)
                .execute(conn)
                .await?;
                registered(updated.rows_affected())?;
            }
            AthleteEvent::TrainingAvailabilitySet(a) => {
                let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {profiles} SET availability = $2, availability_set_at_us = $3 \
                     WHERE athlete_id = $1"
                )))
                .bind(&athlete)
                .bind(serde_json::to_string(&a.availability)?)
                .bind(a.at.timestamp_micros())
                .execute(conn)
                .await?;
                registered(updated.rows_affected())?;
            }
            AthleteEvent::CoachAccessGranted(g) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {} (athlete_id, coach_id, scope, granted_at_us) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (athlete_id, coach_id) DO UPDATE SET scope = excluded.scope, \
                       granted_at_us = excluded.granted_at_us",
                    t.table("coaches")
                )))
                .bind(&athlete)
                .bind(g.coach_id.to_string())
                .bind(code(&g.scope)?)
                .bind(g.granted_at.timestamp_micros())
                .execute(conn)
                .await?;
            }
            AthleteEvent::CoachAccessRevoked(r) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE athlete_id = $1 AND coach_id = $2",
                    t.table("coaches")
                )))
                .bind(&athlete)
                .bind(r.coach_id.to_string())
                .execute(conn)
                .await?;
            }
            AthleteEvent::NutritionPresetSaved(p) => {
                uncached(format!(
                    "INSERT INTO {} (athlete_id, preset_id, name, calories_kcal, protein_g, \
                       carbohydrate_g, fat_g, fibre_g, caffeine_mg, saved_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (athlete_id, preset_id) DO UPDATE SET name = excluded.name, \
                       calories_kcal = excluded.calories_kcal, protein_g = excluded.protein_g, \
                       carbohydrate_g = excluded.carbohydrate_g, fat_g = excluded.fat_g, \
                       fibre_g = excluded.fibre_g, caffeine_mg = excluded.caffeine_mg, \
                       saved_at_us = excluded.saved_at_us",
                    t.table("presets")
                ))
                .bind(&athlete)
                .bind(p.preset_id.to_string())
                .bind(&p.name)
                .bind(p.calories_kcal)
                .bind(p.protein_g)
                .bind(p.carbohydrate_g)
                .bind(p.fat_g)
                .bind(p.fibre_g)
                .bind(p.caffeine_mg)
                .bind(p.at.timestamp_micros())
                .execute(conn)
                .await?;
            }
            AthleteEvent::AthleteErased(_) => {
                for base in TABLES {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {} WHERE athlete_id = $1",
                        t.table(base)
                    )))
                    .bind(&athlete)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            // Audit markers: the audit projection shows them; they say nothing about the profile.
            AthleteEvent::AdminDataInjected(_)
            | AthleteEvent::ImpersonationStarted(_)
            | AthleteEvent::ImpersonationEnded(_) => {}
        }
        Ok(())
    }

    fn order_by(&self, table: &str) -> &'static str {
        match table {
            "coaches" => "athlete_id, coach_id",
            "presets" => "athlete_id, preset_id",
            _ => "athlete_id",
        }
    }
}

/// The aggregate refuses every command before registration, so a profile event without a
/// profile row means a broken log: failing makes the engine list the event as skipped instead
/// of inventing a profile with no name or email.
fn registered(rows_affected: u64) -> anyhow::Result<()> {
    if rows_affected == 0 {
        bail!("no registered profile for this athlete");
    }
    Ok(())
}

/// A statement PostgreSQL prepares afresh on every execution. sqlx 0.9.0's `Any` driver declares a
/// NULL `f64` as `float4` (transact-rs/sqlx#4284), and a cached statement keeps the parameter
/// types of its first execution: after a NULL, a non-NULL `f64` in the same statement is refused
/// ("incorrect binary data format"). Statements binding an optional `f64` therefore use this, at
/// the cost of one more round trip.
pub(crate) fn uncached<'q>(sql: String) -> Query<'q, Any, AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false)
}

/// The serde name of a unit-like enum variant ("read_only", "imperial"), so the stored code is
/// the one `events.md` documents and reads back through the same serde definition.
pub(crate) fn code<T: Serialize>(value: &T) -> anyhow::Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(s) => Ok(s),
        other => bail!("expected a string code, got {other}"),
    }
}

pub(crate) fn from_code<T: DeserializeOwned>(code: String) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(code.clone()))
        .with_context(|| format!("unknown code {code:?}"))
}

pub(crate) fn instant(us: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).with_context(|| format!("bad timestamp {us}"))
}

pub(crate) fn uuid(text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("bad UUID {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    pub athlete_id: Uuid,
    pub display_name: String,
    pub email: String,
    pub role: Role,
    pub registered_at: DateTime<Utc>,
    pub goals: BTreeSet<TrainingGoal>,
    pub preferences: Preferences,
    pub physiology: Physiology,
    /// `None` until the athlete first moves through the wizard.
    pub onboarding: Option<Onboarding>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preferences {
    pub units: Units,
    pub timezone: String,
    pub notifications: NotificationChoices,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Onboarding {
    pub reached: OnboardingStep,
    pub completed: BTreeSet<OnboardingStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Availability {
    pub weekly: WeeklyAvailability,
    pub set_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preset {
    pub preset_id: Uuid,
    pub name: String,
    pub nutrients: Nutrients,
    pub saved_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoachAccess {
    pub coach_id: Uuid,
    pub scope: CoachAccessScope,
    pub granted_at: DateTime<Utc>,
}

pub async fn profile(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Option<Profile>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT athlete_id, display_name, email, role, registered_at_us, goals, units, timezone, \
           notify_new_insights, notify_sync_problems, notify_coach_messages, digest_frequency, \
           digest_weekday, hr_max_bpm, resting_hr_bpm, threshold_hr_bpm, \
           threshold_pace_s_per_km, sex, birth_date, height_cm, onboarding_reached, \
           onboarding_completed \
         FROM {} WHERE athlete_id = $1",
        t.table("profiles")
    )))
    .bind(athlete_id.to_string())
    .fetch_optional(pool)
    .await?;
    row.map(|r| profile_from_row(&r)).transpose()
}

fn profile_from_row(r: &AnyRow) -> anyhow::Result<Profile> {
    let bpm = |i: usize| -> anyhow::Result<Option<u16>> {
        r.try_get::<Option<i64>, _>(i)?
            .map(u16::try_from)
            .transpose()
            .context("heart rate out of range")
    };
    let mut digest = serde_json::json!({ "frequency": r.try_get::<String, _>(11)? });
    if let Some(weekday) = r.try_get::<Option<String>, _>(12)? {
        digest["weekday"] = weekday.into();
    }
    let onboarding = match r.try_get::<Option<String>, _>(20)? {
        Some(reached) => Some(Onboarding {
            reached: from_code(reached)?,
            completed: match r.try_get::<Option<String>, _>(21)? {
                Some(json) => serde_json::from_str(&json)?,
                None => BTreeSet::new(),
            },
        }),
        None => None,
    };
    Ok(Profile {
        athlete_id: uuid(&r.try_get::<String, _>(0)?)?,
        display_name: r.try_get(1)?,
        email: r.try_get(2)?,
        role: from_code(r.try_get(3)?)?,
        registered_at: instant(r.try_get(4)?)?,
        goals: serde_json::from_str(&r.try_get::<String, _>(5)?)?,
        preferences: Preferences {
            units: from_code(r.try_get(6)?)?,
            timezone: r.try_get(7)?,
            notifications: NotificationChoices {
                new_insights: r.try_get::<i64, _>(8)? != 0,
                sync_problems: r.try_get::<i64, _>(9)? != 0,
                coach_messages: r.try_get::<i64, _>(10)? != 0,
            },
            digest: serde_json::from_value(digest).context("bad digest")?,
        },
        physiology: Physiology {
            hr_max_bpm: bpm(13)?,
            resting_hr_bpm: bpm(14)?,
            threshold_hr_bpm: bpm(15)?,
            threshold_pace_s_per_km: r.try_get(16)?,
            sex: r
                .try_get::<Option<String>, _>(17)?
                .map(from_code::<Sex>)
                .transpose()?,
            birth_date: r
                .try_get::<Option<String>, _>(18)?
                .map(|d| d.parse::<NaiveDate>())
                .transpose()
                .context("bad birth date")?,
            height_cm: r.try_get(19)?,
        },
        onboarding,
    })
}

/// The weekly grid, or `None` while the athlete has never set one (or has no profile).
pub async fn availability(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Option<Availability>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT availability, availability_set_at_us FROM {} \
         WHERE athlete_id = $1 AND availability IS NOT NULL",
        t.table("profiles")
    )))
    .bind(athlete_id.to_string())
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Availability {
            weekly: serde_json::from_str(&r.try_get::<String, _>(0)?)?,
            set_at: instant(r.try_get(1)?)?,
        })
    })
    .transpose()
}

/// The athlete's presets by name, as a picker lists them.
pub async fn nutrition_presets(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Vec<Preset>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT preset_id, name, calories_kcal, protein_g, carbohydrate_g, fat_g, fibre_g, \
           caffeine_mg, saved_at_us \
         FROM {} WHERE athlete_id = $1 ORDER BY name, preset_id",
        t.table("presets")
    )))
    .bind(athlete_id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Preset {
                preset_id: uuid(&r.try_get::<String, _>(0)?)?,
                name: r.try_get(1)?,
                nutrients: Nutrients {
                    calories_kcal: r.try_get(2)?,
                    protein_g: r.try_get(3)?,
                    carbohydrate_g: r.try_get(4)?,
                    fat_g: r.try_get(5)?,
                    fibre_g: r.try_get(6)?,
                    caffeine_mg: r.try_get(7)?,
                },
                saved_at: instant(r.try_get(8)?)?,
            })
        })
        .collect()
}

/// Coaches who currently have access, longest-standing grant first.
pub async fn coaches(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Vec<CoachAccess>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT coach_id, scope, granted_at_us FROM {} WHERE athlete_id = $1 \
         ORDER BY granted_at_us, coach_id",
        t.table("coaches")
    )))
    .bind(athlete_id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CoachAccess {
                coach_id: uuid(&r.try_get::<String, _>(0)?)?,
                scope: from_code(r.try_get(1)?)?,
                granted_at: instant(r.try_get(2)?)?,
            })
        })
        .collect()
}

/// An athlete who granted a coach access, as the coach's roster lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoachedAthlete {
    pub athlete_id: Uuid,
    pub display_name: String,
    pub scope: CoachAccessScope,
    pub granted_at: DateTime<Utc>,
}

/// The athletes who granted `coach_id` access, by name.
pub async fn athletes_of_coach(
    pool: &AnyPool,
    t: &Tables,
    coach_id: Uuid,
) -> anyhow::Result<Vec<CoachedAthlete>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.athlete_id, p.display_name, c.scope, c.granted_at_us \
         FROM {} c JOIN {} p ON p.athlete_id = c.athlete_id \
         WHERE c.coach_id = $1 ORDER BY p.display_name, c.athlete_id",
        t.table("coaches"),
        t.table("profiles")
    )))
    .bind(coach_id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CoachedAthlete {
                athlete_id: uuid(&r.try_get::<String, _>(0)?)?,
                display_name: r.try_get(1)?,
                scope: from_code(r.try_get(2)?)?,
                granted_at: instant(r.try_get(3)?)?,
            })
        })
        .collect()
}
