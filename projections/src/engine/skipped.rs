//! Poison events: the skipped list, and what an operator does about each (retry, dismiss).

use super::*;

/// Records `e` as poison for `name`'s `generation`: `/health` is not ready until an operator
/// retries or dismisses it.
pub(super) async fn record_poison(
    conn: &mut AnyConnection,
    name: &'static str,
    generation: i64,
    e: &RecordedEvent,
    err: &anyhow::Error,
) -> anyhow::Result<()> {
    tracing::warn!(projection = name, generation, position = e.position, event_type = %e.event_type, "skipping an event the projection cannot apply (poison)");
    sqlx::query(
        "INSERT INTO projection_skipped (name, generation, position, event_id, event_type, error, skipped_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(generation)
    .bind(e.position)
    .bind(e.event_id.to_string())
    .bind(&e.event_type)
    .bind(format!("{err:#}"))
    .bind(now_us())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: String,
    pub generation: i64,
    pub position: i64,
    pub event_id: String,
    pub event_type: String,
    pub error: String,
    pub skipped_at: chrono::DateTime<chrono::Utc>,
    /// When an operator resolved it; `None` while it keeps readiness failing.
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
    pub resolution: Option<Resolution>,
}

/// What an operator did about a skipped event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// `projections retry`: applied through the projection after the cause was fixed.
    Applied,
    /// `projections retry --dismiss`: accepted as missing from the read model.
    Dismissed,
}

impl Resolution {
    pub fn text(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Dismissed => "dismissed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "applied" => Some(Self::Applied),
            "dismissed" => Some(Self::Dismissed),
            _ => None,
        }
    }
}

impl Skipped {
    /// Why it was skipped, as a fixed phrase that never quotes the event (for `/health`,
    /// which anyone may read; the full error is in `projections skipped`).
    pub fn reason(&self) -> &'static str {
        if self.error.starts_with(DECODE_FAILURE) {
            "this build cannot decode the event"
        } else {
            "the projection failed to apply the event"
        }
    }
}

const SKIPPED_COLUMNS: &str = "name, generation, position, event_id, event_type, error, \
     skipped_at_us, resolved_at_us, resolution";

fn skipped_of(r: &sqlx::any::AnyRow) -> Skipped {
    let time = |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    Skipped {
        name: r.get(0),
        generation: r.get(1),
        position: r.get(2),
        event_id: r.get(3),
        event_type: r.get(4),
        error: r.get(5),
        skipped_at: time(r.get(6)),
        resolved_at: r.get::<Option<i64>, _>(7).map(time),
        resolution: r
            .get::<Option<String>, _>(8)
            .as_deref()
            .and_then(Resolution::parse),
    }
}

impl Engine {
    /// Every event the live generation skipped, resolved or not, in log order.
    pub async fn skipped(&self, name: &str) -> anyhow::Result<Vec<Skipped>> {
        let p = self.projection(name)?;
        let state = self.ensure_state(p.as_ref()).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SKIPPED_COLUMNS} FROM projection_skipped \
             WHERE name = $1 AND generation = $2 ORDER BY position"
        )))
        .bind(name)
        .bind(state.active_generation)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(skipped_of).collect())
    }

    /// Unresolved skipped events of the generations serving reads, at most `limit`, by
    /// projection and position: what keeps readiness failing.
    pub async fn unresolved(&self, limit: i64) -> anyhow::Result<Vec<Skipped>> {
        let columns = SKIPPED_COLUMNS
            .split(", ")
            .map(|c| format!("s.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM projection_skipped s \
             JOIN projection_state st ON st.name = s.name AND st.active_generation = s.generation \
             WHERE s.resolved_at_us IS NULL ORDER BY s.name, s.position LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        // Projections this build no longer has serve nothing: their leftovers do not count.
        let known = self.names();
        Ok(rows
            .iter()
            .map(skipped_of)
            .filter(|s| known.contains(&s.name.as_str()))
            .collect())
    }

    /// Re-applies one skipped event of the live generation through the projection, after the
    /// cause was fixed, and marks it `applied`. The event is applied now, after the events that
    /// followed it; that is right for a missing input (a kept file restored, a transient
    /// failure the classification did not know). A code fix is a new version instead: the
    /// rebuild applies every event in order. When it still fails, the event stays skipped
    /// with the new error, and the error is returned.
    pub async fn retry_skipped(&self, name: &str, position: i64) -> anyhow::Result<()> {
        let p = self.projection(name)?.clone();
        let generation = self.unresolved_at(name, position).await?;
        let recorded = self.event_at(position).await?;
        let cp = self.checkpoint(name, generation).await?;
        let t = Tables::new(p.name(), generation);
        let mut tx = self.db.begin_write().await?;
        // Taken first: runners write this row last in every batch, so on PostgreSQL the retry
        // and a batch of the same generation serialize instead of interleaving.
        let still_live = sqlx::query(
            "UPDATE projection_checkpoints SET events_applied = events_applied + 1, updated_at_us = $3 \
             WHERE name = $1 AND generation = $2 \
               AND generation = (SELECT active_generation FROM projection_state WHERE name = $1)",
        )
        .bind(name)
        .bind(generation)
        .bind(now_us())
        .execute(&mut *tx)
        .await?;
        if still_live.rows_affected() != 1 {
            bail!("{name} switched to a new generation meanwhile; list its skipped events again");
        }
        let decoded = match self.reader.decoder.decode(&recorded) {
            Err(_) if !p.needs_payload() => Ok(DomainEvent::Foreign),
            other => other,
        };
        let result = match &decoded {
            Ok(event) => {
                let projected = Projected {
                    recorded: &recorded,
                    event,
                    store: &self.log,
                    live: recorded.cursor > cp.gate,
                };
                p.apply(&mut tx, &t, &projected).await
            }
            Err(err) => Err(decode_error(&recorded, err)),
        };
        if let Err(err) = result {
            let _ = tx.rollback().await;
            sqlx::query(
                "UPDATE projection_skipped SET error = $4 \
                 WHERE name = $1 AND generation = $2 AND position = $3",
            )
            .bind(name)
            .bind(generation)
            .bind(position)
            .bind(format!("{err:#}"))
            .execute(&self.db.pool)
            .await?;
            return Err(err.context(format!(
                "{name} still cannot apply the event at position {position}; it stays skipped"
            )));
        }
        self.resolve(&mut tx, name, generation, position, Resolution::Applied)
            .await?;
        tx.commit().await?;
        tracing::info!(
            projection = name,
            generation,
            position,
            "skipped event applied by an operator"
        );
        Ok(())
    }

    /// The one event at a log position.
    async fn event_at(&self, position: i64) -> anyhow::Result<RecordedEvent> {
        let cursor = self
            .log
            .cursor_of(position)
            .await?
            .with_context(|| format!("no event at log position {position}"))?;
        // The log returns events after a cursor: start just before this one.
        let before = LogCursor {
            tx: cursor.tx,
            position: cursor.position - 1,
        };
        self.log
            .read_log(before, 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.position == position)
            .with_context(|| format!("the event at position {position} is not readable yet"))
    }

    /// Marks a skipped event `dismissed`: the operator accepts that the live read model lacks
    /// it (until a rebuild applies it, if a later build can), and readiness recovers.
    pub async fn dismiss_skipped(&self, name: &str, position: i64) -> anyhow::Result<()> {
        self.projection(name)?;
        let generation = self.unresolved_at(name, position).await?;
        let mut tx = self.db.begin_write().await?;
        self.resolve(&mut tx, name, generation, position, Resolution::Dismissed)
            .await?;
        tx.commit().await?;
        tracing::info!(
            projection = name,
            generation,
            position,
            "skipped event dismissed by an operator"
        );
        Ok(())
    }

    /// The live generation, if it has an unresolved skipped event at `position`.
    async fn unresolved_at(&self, name: &str, position: i64) -> anyhow::Result<i64> {
        let p = self.projection(name)?;
        let state = self.ensure_state(p.as_ref()).await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM projection_skipped \
             WHERE name = $1 AND generation = $2 AND position = $3 AND resolved_at_us IS NULL",
        )
        .bind(name)
        .bind(state.active_generation)
        .bind(position)
        .fetch_optional(&self.db.pool)
        .await?;
        if found.is_none() {
            bail!(
                "{name} has no unresolved skipped event at position {position} \
                 (`stridelog projections skipped {name}` lists them)"
            );
        }
        Ok(state.active_generation)
    }

    async fn resolve(
        &self,
        conn: &mut AnyConnection,
        name: &str,
        generation: i64,
        position: i64,
        resolution: Resolution,
    ) -> anyhow::Result<()> {
        let done = sqlx::query(
            "UPDATE projection_skipped SET resolved_at_us = $4, resolution = $5 \
             WHERE name = $1 AND generation = $2 AND position = $3 AND resolved_at_us IS NULL",
        )
        .bind(name)
        .bind(generation)
        .bind(position)
        .bind(now_us())
        .bind(resolution.text())
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() != 1 {
            bail!("the event at position {position} of {name} was resolved meanwhile");
        }
        Ok(())
    }
}
