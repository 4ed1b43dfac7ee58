//! Verify: a shadow generation built from the log and compared row by row with the live one.

use super::*;

/// Every row of a table as text, in a total order, for comparisons.
async fn dump(
    conn: &mut AnyConnection,
    table: &str,
    order_by: &str,
) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {table} ORDER BY {order_by}"
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(row_text).collect())
}

/// One row as `column=value …` text: what `verify` compares and reports, and what the
/// batch-equivalence tests compare.
pub fn row_text(row: &sqlx::any::AnyRow) -> String {
    use sqlx::{Column, ValueRef};
    let mut parts = Vec::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).expect("column exists");
        let text = if raw.is_null() {
            "null".to_string()
        } else if let Ok(v) = row.try_get::<i64, _>(i) {
            v.to_string()
        } else if let Ok(v) = row.try_get::<f64, _>(i) {
            format!("{v}")
        } else if let Ok(v) = row.try_get::<String, _>(i) {
            format!("{v:?}")
        } else {
            "?".to_string()
        };
        parts.push(format!("{}={text}", col.name()));
    }
    parts.join(" ")
}

impl Engine {
    /// Builds a shadow copy from the log and compares it with the live generation at the same
    /// checkpoint. Returns the differing rows (empty: equal). The shadow is dropped after.
    pub async fn verify(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let p = self.projection(name)?.clone();
        // A rebuild may switch reads to a new generation (and drop the one being compared)
        // while this runs: then compare with the new one. A transient failure (on SQLite, the
        // write lock taken by `serve` or a rebuild) is waited out like the projector's own.
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut failures = 0;
        let mut switches = 0;
        while switches < 3 {
            let state = self.ensure_state(p.as_ref()).await?;
            let result = self
                .verify_generation(p.as_ref(), state.active_generation)
                .await;
            let now = self.ensure_state(p.as_ref()).await?;
            match result {
                Err(e) if classify(&e).is_transient() => {
                    failures += 1;
                    self.wait_out(p.name(), e, failures, deadline).await?;
                }
                result if result.is_ok() || now.active_generation == state.active_generation => {
                    return result;
                }
                _ => switches += 1,
            }
        }
        bail!("{name} kept switching generations; verify again when its rebuild has finished")
    }

    async fn verify_generation(
        &self,
        p: &dyn Projection,
        live: i64,
    ) -> anyhow::Result<Vec<String>> {
        let head = self.log.head().await?;
        // The shadow's number is picked inside the transaction that creates it, as
        // `start_build` picks a new generation's: picked before it, a rebuild starting in
        // between could take the same number ("no checkpoint for ... generation 2002").
        let mut tx = self.db.begin_write().await?;
        let shadow: i64 = sqlx::query_scalar(
            "SELECT CAST(coalesce(max(generation), 0) + 1000 AS BIGINT) FROM projection_checkpoints WHERE name = $1",
        )
        .bind(p.name())
        .fetch_one(&mut *tx)
        .await?;
        // Compared, never read by a query that needs an index, and dropped.
        create_generation(&mut tx, p, shadow, head, Indexes::Deferred).await?;
        tx.commit().await?;
        let result = self.compare(p, live, shadow).await;
        drop_generation(&self.db, p, shadow).await?;
        result
    }

    async fn compare(
        &self,
        p: &dyn Projection,
        live: i64,
        shadow: i64,
    ) -> anyhow::Result<Vec<String>> {
        for _ in 0..50 {
            let target = self.checkpoint(p.name(), live).await?.cursor;
            // The shadow serves no reads and is dropped after: nothing in it needs a flush.
            let mut cp = self.checkpoint(p.name(), shadow).await?;
            loop {
                let (applied, next) = self
                    .apply_next(p, shadow, cp, Some(target), Commit::Deferred)
                    .await?;
                if applied == 0 {
                    break;
                }
                cp = next;
            }
            // Compare inside one read transaction in which the live checkpoint is still
            // `target`, so both sides reflect exactly the same events.
            // A transaction sqlx knows about, so that it is rolled back whenever this returns
            // early (a rebuild may drop the live tables mid-compare): a BEGIN sent by hand went
            // back to the pool still open, and the next batch on that connection ran inside its
            // stale snapshot ("... was advanced by another runner").
            let mut conn = self
                .db
                .pool
                .begin_with(if self.db.is_sqlite() {
                    "BEGIN"
                } else {
                    "BEGIN ISOLATION LEVEL REPEATABLE READ"
                })
                .await?;
            let now: (i64, i64) = {
                let r = sqlx::query(
                    "SELECT tx, position FROM projection_checkpoints WHERE name = $1 AND generation = $2",
                )
                .bind(p.name())
                .bind(live)
                .fetch_one(&mut *conn)
                .await?;
                (r.get(0), r.get(1))
            };
            if (now.0, now.1) != (target.tx, target.position) {
                conn.rollback().await?;
                continue;
            }
            let mut diffs = Vec::new();
            for base in p.tables() {
                let a = dump(
                    &mut conn,
                    &Tables::new(p.name(), live).table(base),
                    p.order_by(base),
                )
                .await?;
                let b = dump(
                    &mut conn,
                    &Tables::new(p.name(), shadow).table(base),
                    p.order_by(base),
                )
                .await?;
                for row in a.iter().filter(|r| !b.contains(r)) {
                    diffs.push(format!("{base}: live only: {row}"));
                }
                for row in b.iter().filter(|r| !a.contains(r)) {
                    diffs.push(format!("{base}: rebuilt only: {row}"));
                }
            }
            conn.rollback().await?;
            return Ok(diffs);
        }
        bail!("the live projection kept moving; verify again when the log is quieter")
    }
}
