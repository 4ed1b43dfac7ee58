//! The athlete's own account as they see it on their settings pages: profile, preferences,
//! physiology, onboarding, coach access, training availability and nutrition presets. Every
//! value is personal, so an erasure deletes every row of the athlete.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use domain::athlete::{
    AthleteEvent, CoachAccessScope, Digest, NotificationChoices, Nutrients, OnboardingStep,
    Physiology, Role, Sex, TrainingGoal, Units, WeeklyAvailability,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

use crate::decode::DomainEvent;
use crate::engine::{Projected, Projection, Tables};
use crate::read_model_table;
use crate::table::{Cell, Pending, Table};

pub struct ProfileProjection;

read_model_table! {
    /// One row per athlete. Preferences and physiology are replaced whole by their events, so
    /// they live here as columns rather than in tables of their own. Each event is folded into
    /// the stored row, which is written back whole.
    pub struct ProfileRow in "profiles", key 1, Replace {
        athlete_id: String,
        display_name: String,
        email: String,
        role: String,
        registered_at_us: i64,
        goals: String,
        units: String,
        timezone: String,
        notify_new_insights: i64,
        notify_sync_problems: i64,
        notify_coach_messages: i64,
        digest_frequency: String,
        digest_weekday: Option<String>,
        hr_max_bpm: Option<i64>,
        resting_hr_bpm: Option<i64>,
        threshold_hr_bpm: Option<i64>,
        threshold_pace_s_per_km: Option<f64>,
        sex: Option<String>,
        birth_date: Option<String>,
        height_cm: Option<f64>,
        onboarding_reached: Option<String>,
        onboarding_completed: Option<String>,
        availability: Option<String>,
        availability_set_at_us: Option<i64>,
    }
}

read_model_table! {
    /// One row per current grant; a revocation deletes it.
    pub struct CoachRow in "coaches", key 2, Replace {
        athlete_id: String,
        coach_id: String,
        scope: String,
        granted_at_us: i64,
    }
}

read_model_table! {
    /// Keyed by athlete too: preset ids come from clients, and one athlete's id must never
    /// overwrite another athlete's preset.
    pub struct PresetRow in "presets", key 2, Replace {
        athlete_id: String,
        preset_id: String,
        name: String,
        calories_kcal: Option<f64>,
        protein_g: Option<f64>,
        carbohydrate_g: Option<f64>,
        fat_g: Option<f64>,
        fibre_g: Option<f64>,
        caffeine_mg: Option<f64>,
        saved_at_us: i64,
    }
}

const TABLES: &[&str] = &[
    ProfileRow::DEF.base,
    CoachRow::DEF.base,
    PresetRow::DEF.base,
];

/// Profile rows loaded per `IN (…)` statement.
const LOAD_CHUNK: usize = 500;

#[async_trait::async_trait]
impl Projection for ProfileProjection {
    fn name(&self) -> &'static str {
        "profile"
    }

    /// 2: an erasure also deletes the grants others gave the erased athlete as a coach.
    fn version(&self) -> i64 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn schema(&self, t: &Tables) -> Vec<String> {
        vec![
            ProfileRow::DEF.create_sql(t),
            CoachRow::DEF.create_sql(t),
            PresetRow::DEF.create_sql(t),
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        self.apply_batch(conn, t, std::slice::from_ref(e)).await
    }

    /// Loads the stored profile row of every athlete the batch changes (one statement per
    /// [`LOAD_CHUNK`] athletes), folds the events into those rows in order, and writes each
    /// changed row back whole; grants and presets are pending writes and deletions of their
    /// key. An erasure writes everything pending, then deletes the athlete's rows.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        let mut profiles = Profiles::load(conn, t, events).await?;
        let mut pending = Pending::default();
        for e in events {
            let DomainEvent::Athlete(event) = e.event else {
                continue;
            };
            let Some(athlete) = e.recorded.metadata.athlete_id else {
                continue;
            };
            let athlete = athlete.to_string();
            if let AthleteEvent::AthleteErased(_) = event {
                profiles.stage(&mut pending)?;
                pending.flush(conn, t).await?;
                erase(conn, t, &athlete).await?;
                profiles.rows.insert(athlete, None);
                continue;
            }
            fold(&mut pending, &mut profiles, athlete, event)?;
        }
        profiles.stage(&mut pending)?;
        pending.flush(conn, t).await
    }

    fn order_by(&self, table: &str) -> &'static str {
        match table {
            "coaches" => "athlete_id, coach_id",
            "presets" => "athlete_id, preset_id",
            _ => "athlete_id",
        }
    }
}

/// The profile rows a batch reads and changes: `None` for an athlete with no row (not
/// registered, or erased earlier in the batch).
struct Profiles {
    rows: HashMap<String, Option<ProfileRow>>,
    changed: BTreeSet<String>,
}

impl Profiles {
    /// The stored rows of the athletes whose profile the batch changes.
    async fn load(
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<Self> {
        let athletes: BTreeSet<String> = events
            .iter()
            .filter(|e| match e.event {
                DomainEvent::Athlete(event) => changes_profile(event),
                _ => false,
            })
            .filter_map(|e| e.recorded.metadata.athlete_id)
            .map(|a| a.to_string())
            .collect();
        let athletes: Vec<String> = athletes.into_iter().collect();
        let mut rows: HashMap<String, Option<ProfileRow>> =
            athletes.iter().map(|a| (a.clone(), None)).collect();
        for chunk in athletes.chunks(LOAD_CHUNK) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = ProfileRow::DEF
                .select_sql(t, &format!("WHERE athlete_id IN ({})", params.join(", ")));
            // One statement text per chunk size: only the one-athlete form (every event
            // applied alone) is worth a prepared-statement cache entry.
            let mut q = sqlx::query_as::<_, ProfileRow>(sqlx::AssertSqlSafe(sql))
                .persistent(chunk.len() == 1);
            for athlete in chunk {
                q = q.bind(athlete);
            }
            for row in q.fetch_all(&mut *conn).await? {
                rows.insert(row.athlete_id.clone(), Some(row));
            }
        }
        Ok(Self {
            rows,
            changed: BTreeSet::new(),
        })
    }

    /// The athlete's row to change. The aggregate refuses every command before registration,
    /// so a profile event without a profile row means a broken log: failing makes the engine
    /// list the event as skipped instead of inventing a profile with no name or email.
    fn registered(&mut self, athlete: &str) -> anyhow::Result<&mut ProfileRow> {
        match self.rows.get_mut(athlete) {
            Some(Some(row)) => {
                self.changed.insert(athlete.to_string());
                Ok(row)
            }
            _ => bail!("no registered profile for this athlete"),
        }
    }

    /// Puts every changed row into `pending`.
    fn stage(&mut self, pending: &mut Pending) -> anyhow::Result<()> {
        for athlete in std::mem::take(&mut self.changed) {
            if let Some(Some(row)) = self.rows.get(&athlete) {
                pending.put(row)?;
            }
        }
        Ok(())
    }
}

/// Whether the event changes the athlete's profile row (the others write grants and presets,
/// or nothing).
fn changes_profile(event: &AthleteEvent) -> bool {
    match event {
        AthleteEvent::AthleteRegistered(_)
        | AthleteEvent::ProfileUpdated(_)
        | AthleteEvent::PreferencesChanged(_)
        | AthleteEvent::PhysiologyChanged(_)
        | AthleteEvent::OnboardingProgressed(_)
        | AthleteEvent::RoleChanged(_)
        | AthleteEvent::TrainingAvailabilitySet(_) => true,
        AthleteEvent::CoachAccessGranted(_)
        | AthleteEvent::CoachAccessRevoked(_)
        | AthleteEvent::NutritionPresetSaved(_)
        | AthleteEvent::AthleteErased(_)
        | AthleteEvent::AdminDataInjected(_)
        | AthleteEvent::ImpersonationStarted(_)
        | AthleteEvent::ImpersonationEnded(_) => false,
    }
}

/// The effect of one athlete event (an erasure is handled by the caller).
fn fold(
    pending: &mut Pending,
    profiles: &mut Profiles,
    athlete: String,
    event: &AthleteEvent,
) -> anyhow::Result<()> {
    match event {
        AthleteEvent::AthleteRegistered(r) => register(profiles, athlete, r)?,
        AthleteEvent::ProfileUpdated(p) => {
            let row = profiles.registered(&athlete)?;
            row.display_name = p.display_name.clone();
            row.email = p.email.clone();
            row.goals = serde_json::to_string(&p.goals)?;
        }
        AthleteEvent::PreferencesChanged(p) => set_preferences(profiles, &athlete, p)?,
        AthleteEvent::PhysiologyChanged(p) => set_physiology(profiles, &athlete, p)?,
        AthleteEvent::OnboardingProgressed(o) => {
            let reached = code(&o.reached)?;
            let completed = serde_json::to_string(&o.completed)?;
            let row = profiles.registered(&athlete)?;
            row.onboarding_reached = Some(reached);
            row.onboarding_completed = Some(completed);
        }
        AthleteEvent::RoleChanged(r) => {
            let role = code(&r.to)?;
            profiles.registered(&athlete)?.role = role;
        }
        AthleteEvent::TrainingAvailabilitySet(a) => {
            let availability = serde_json::to_string(&a.availability)?;
            let row = profiles.registered(&athlete)?;
            row.availability = Some(availability);
            row.availability_set_at_us = Some(a.at.timestamp_micros());
        }
        AthleteEvent::CoachAccessGranted(g) => pending.put(&CoachRow {
            athlete_id: athlete,
            coach_id: g.coach_id.to_string(),
            scope: code(&g.scope)?,
            granted_at_us: g.granted_at.timestamp_micros(),
        })?,
        AthleteEvent::CoachAccessRevoked(r) => pending.delete::<CoachRow>(vec![
            Cell::Text(Some(athlete)),
            Cell::Text(Some(r.coach_id.to_string())),
        ]),
        AthleteEvent::NutritionPresetSaved(p) => pending.put(&PresetRow::saved(athlete, p))?,
        AthleteEvent::AthleteErased(_) => bail!("erasures are not folded"),
        // Audit markers: the audit projection shows them; they say nothing about the profile.
        AthleteEvent::AdminDataInjected(_)
        | AthleteEvent::ImpersonationStarted(_)
        | AthleteEvent::ImpersonationEnded(_) => {}
    }
    Ok(())
}

/// A registration creates the row; a second one renames, and the settings stay.
fn register(
    profiles: &mut Profiles,
    athlete: String,
    r: &domain::athlete::AthleteRegistered,
) -> anyhow::Result<()> {
    let role = code(&r.role)?;
    let registered_at_us = r.registered_at.timestamp_micros();
    match profiles.rows.get_mut(&athlete) {
        Some(Some(row)) => {
            row.display_name = r.display_name.clone();
            row.email = r.email.clone();
            row.role = role;
            row.registered_at_us = registered_at_us;
        }
        _ => {
            let row = ProfileRow::registered(athlete.clone(), r, role, registered_at_us);
            profiles.rows.insert(athlete.clone(), Some(row));
        }
    }
    profiles.changed.insert(athlete);
    Ok(())
}

fn set_preferences(
    profiles: &mut Profiles,
    athlete: &str,
    p: &domain::athlete::PreferencesChanged,
) -> anyhow::Result<()> {
    let (frequency, weekday) = match p.digest {
        Digest::Off => ("off", None),
        Digest::Weekly { weekday } => ("weekly", Some(code(&weekday)?)),
        Digest::Monthly { weekday } => ("monthly", Some(code(&weekday)?)),
    };
    let units = code(&p.units)?;
    let row = profiles.registered(athlete)?;
    row.units = units;
    row.timezone = p.timezone.clone();
    row.notify_new_insights = i64::from(p.notifications.new_insights);
    row.notify_sync_problems = i64::from(p.notifications.sync_problems);
    row.notify_coach_messages = i64::from(p.notifications.coach_messages);
    row.digest_frequency = frequency.to_string();
    row.digest_weekday = weekday;
    Ok(())
}

fn set_physiology(
    profiles: &mut Profiles,
    athlete: &str,
    p: &domain::athlete::PhysiologyChanged,
) -> anyhow::Result<()> {
    let sex = p.sex.as_ref().map(code).transpose()?;
    let row = profiles.registered(athlete)?;
    row.hr_max_bpm = p.hr_max_bpm.map(i64::from);
    row.resting_hr_bpm = p.resting_hr_bpm.map(i64::from);
    row.threshold_hr_bpm = p.threshold_hr_bpm.map(i64::from);
    row.threshold_pace_s_per_km = p.threshold_pace_s_per_km;
    row.sex = sex;
    row.birth_date = p.birth_date.map(|d| d.to_string());
    row.height_cm = p.height_cm;
    Ok(())
}

impl PresetRow {
    fn saved(athlete_id: String, p: &domain::athlete::NutritionPresetSaved) -> Self {
        Self {
            athlete_id,
            preset_id: p.preset_id.to_string(),
            name: p.name.clone(),
            calories_kcal: p.calories_kcal,
            protein_g: p.protein_g,
            carbohydrate_g: p.carbohydrate_g,
            fat_g: p.fat_g,
            fibre_g: p.fibre_g,
            caffeine_mg: p.caffeine_mg,
            saved_at_us: p.at.timestamp_micros(),
        }
    }
}

/// Everything of the athlete, and the grants others gave them as a coach: those live in the
/// granting athletes' streams, where the erasure appends `CoachAccessRevoked` afterwards; the
/// read model forgets them at once, whether or not (or whenever) those revocations land.
async fn erase(conn: &mut AnyConnection, t: &Tables, athlete: &str) -> anyhow::Result<()> {
    for base in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE athlete_id = $1",
            t.table(base)
        )))
        .bind(athlete)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE coach_id = $1",
        t.table(CoachRow::DEF.base)
    )))
    .bind(athlete)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The athletes who granted `coach_id` access: whose streams an erasure of that coach revokes.
pub async fn grantors_of(pool: &AnyPool, t: &Tables, coach_id: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT athlete_id FROM {} WHERE coach_id = $1 ORDER BY athlete_id",
        t.table(CoachRow::DEF.base)
    )))
    .bind(coach_id.to_string())
    .fetch_all(pool)
    .await?;
    ids.iter().map(String::as_str).map(uuid).collect()
}

impl ProfileRow {
    /// A new registration, with the documented state before the first PreferencesChanged.
    fn registered(
        athlete_id: String,
        r: &domain::athlete::AthleteRegistered,
        role: String,
        registered_at_us: i64,
    ) -> Self {
        Self {
            athlete_id,
            display_name: r.display_name.clone(),
            email: r.email.clone(),
            role,
            registered_at_us,
            goals: "[]".into(),
            units: "metric".into(),
            timezone: "UTC".into(),
            notify_new_insights: 0,
            notify_sync_problems: 0,
            notify_coach_messages: 0,
            digest_frequency: "off".into(),
            digest_weekday: None,
            hr_max_bpm: None,
            resting_hr_bpm: None,
            threshold_hr_bpm: None,
            threshold_pace_s_per_km: None,
            sex: None,
            birth_date: None,
            height_cm: None,
            onboarding_reached: None,
            onboarding_completed: None,
            availability: None,
            availability_set_at_us: None,
        }
    }
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
    profile_row(pool, t, athlete_id)
        .await?
        .map(ProfileRow::into_profile)
        .transpose()
}

async fn profile_row(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Option<ProfileRow>> {
    let sql = ProfileRow::DEF.select_sql(t, "WHERE athlete_id = $1");
    Ok(sqlx::query_as::<_, ProfileRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete_id.to_string())
        .fetch_optional(pool)
        .await?)
}

impl ProfileRow {
    fn into_profile(self) -> anyhow::Result<Profile> {
        let bpm = |v: Option<i64>| -> anyhow::Result<Option<u16>> {
            v.map(u16::try_from)
                .transpose()
                .context("heart rate out of range")
        };
        let mut digest = serde_json::json!({ "frequency": self.digest_frequency });
        if let Some(weekday) = self.digest_weekday {
            digest["weekday"] = weekday.into();
        }
        let onboarding = match self.onboarding_reached {
            Some(reached) => Some(Onboarding {
                reached: from_code(reached)?,
                completed: match self.onboarding_completed {
                    Some(json) => serde_json::from_str(&json)?,
                    None => BTreeSet::new(),
                },
            }),
            None => None,
        };
        Ok(Profile {
            athlete_id: uuid(&self.athlete_id)?,
            display_name: self.display_name,
            email: self.email,
            role: from_code(self.role)?,
            registered_at: instant(self.registered_at_us)?,
            goals: serde_json::from_str(&self.goals)?,
            preferences: Preferences {
                units: from_code(self.units)?,
                timezone: self.timezone,
                notifications: NotificationChoices {
                    new_insights: self.notify_new_insights != 0,
                    sync_problems: self.notify_sync_problems != 0,
                    coach_messages: self.notify_coach_messages != 0,
                },
                digest: serde_json::from_value(digest).context("bad digest")?,
            },
            physiology: Physiology {
                hr_max_bpm: bpm(self.hr_max_bpm)?,
                resting_hr_bpm: bpm(self.resting_hr_bpm)?,
                threshold_hr_bpm: bpm(self.threshold_hr_bpm)?,
                threshold_pace_s_per_km: self.threshold_pace_s_per_km,
                sex: self.sex.map(from_code::<Sex>).transpose()?,
                birth_date: self
                    .birth_date
                    .map(|d| d.parse::<NaiveDate>())
                    .transpose()
                    .context("bad birth date")?,
                height_cm: self.height_cm,
            },
            onboarding,
        })
    }
}

/// The weekly grid, or `None` while the athlete has never set one (or has no profile).
pub async fn availability(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Option<Availability>> {
    let Some(row) = profile_row(pool, t, athlete_id).await? else {
        return Ok(None);
    };
    let Some(weekly) = row.availability else {
        return Ok(None);
    };
    // Both columns are written by the same event.
    let set_at_us = row
        .availability_set_at_us
        .context("availability without the time it was set")?;
    Ok(Some(Availability {
        weekly: serde_json::from_str(&weekly)?,
        set_at: instant(set_at_us)?,
    }))
}

/// The athlete's presets by name, as a picker lists them.
pub async fn nutrition_presets(
    pool: &AnyPool,
    t: &Tables,
    athlete_id: Uuid,
) -> anyhow::Result<Vec<Preset>> {
    let sql = PresetRow::DEF.select_sql(t, "WHERE athlete_id = $1 ORDER BY name, preset_id");
    let rows = sqlx::query_as::<_, PresetRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete_id.to_string())
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Preset {
                preset_id: uuid(&r.preset_id)?,
                name: r.name,
                nutrients: Nutrients {
                    calories_kcal: r.calories_kcal,
                    protein_g: r.protein_g,
                    carbohydrate_g: r.carbohydrate_g,
                    fat_g: r.fat_g,
                    fibre_g: r.fibre_g,
                    caffeine_mg: r.caffeine_mg,
                },
                saved_at: instant(r.saved_at_us)?,
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
    let sql = CoachRow::DEF.select_sql(t, "WHERE athlete_id = $1 ORDER BY granted_at_us, coach_id");
    let rows = sqlx::query_as::<_, CoachRow>(sqlx::AssertSqlSafe(sql))
        .bind(athlete_id.to_string())
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(CoachAccess {
                coach_id: uuid(&r.coach_id)?,
                scope: from_code(r.scope)?,
                granted_at: instant(r.granted_at_us)?,
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

/// A grant with the granting athlete's name.
#[derive(sqlx::FromRow)]
struct GrantWithName {
    #[sqlx(flatten)]
    grant: CoachRow,
    display_name: String,
}

/// The athletes who granted `coach_id` access, by name.
pub async fn athletes_of_coach(
    pool: &AnyPool,
    t: &Tables,
    coach_id: Uuid,
) -> anyhow::Result<Vec<CoachedAthlete>> {
    let rows = sqlx::query_as::<_, GrantWithName>(sqlx::AssertSqlSafe(format!(
        "SELECT {}, p.display_name FROM {} c JOIN {} p ON p.athlete_id = c.athlete_id \
         WHERE c.coach_id = $1 ORDER BY p.display_name, c.athlete_id",
        CoachRow::DEF.column_list_of("c"),
        t.table(CoachRow::DEF.base),
        t.table(ProfileRow::DEF.base)
    )))
    .bind(coach_id.to_string())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(CoachedAthlete {
                athlete_id: uuid(&r.grant.athlete_id)?,
                display_name: r.display_name,
                scope: from_code(r.grant.scope)?,
                granted_at: instant(r.grant.granted_at_us)?,
            })
        })
        .collect()
}
