//! What the batch-equivalence tests share: the command bus, the per-event reference and the
//! checked override of a projection, and every row of a read model as text to compare.
// Each test file uses its own part of this.
#![allow(dead_code)]

use std::sync::Arc;

use commands::{CommandBus, CommandContext};
use domain::DomainServices;
use domain::activity::{Activity, ActivityCommand};
use projections::engine::row_text;
use projections::{Engine, Projected, Projection, Tables};
use sqlx::{AnyConnection, AnyPool};
use store::testing::TestStore;
use uuid::Uuid;

pub fn bus(t: &TestStore) -> CommandBus {
    CommandBus::new(
        t.store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    )
}

/// The projection with the trait's default `apply_batch`: one `apply` per event.
pub struct PerEvent<P>(pub P);

#[async_trait::async_trait]
impl<P: Projection> Projection for PerEvent<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn version(&self) -> i64 {
        self.0.version()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.0.tables()
    }
    fn schema(&self, t: &Tables) -> Vec<String> {
        self.0.schema(t)
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        self.0.apply(conn, t, e).await
    }
    fn order_by(&self, table: &str) -> &'static str {
        self.0.order_by(table)
    }
    fn needs_payload(&self) -> bool {
        self.0.needs_payload()
    }
}

/// The override, failing the test when it fails: the engine would retry the batch one event at
/// a time through `apply`, and the comparison would prove nothing.
pub struct Checked<P>(pub P);

#[async_trait::async_trait]
impl<P: Projection> Projection for Checked<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn version(&self) -> i64 {
        self.0.version()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.0.tables()
    }
    fn schema(&self, t: &Tables) -> Vec<String> {
        self.0.schema(t)
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        self.0.apply(conn, t, e).await
    }
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        events: &[Projected<'_>],
    ) -> anyhow::Result<()> {
        if let Err(e) = self.0.apply_batch(conn, t, events).await {
            panic!("{} apply_batch failed: {e:#}", self.0.name());
        }
        Ok(())
    }
    fn order_by(&self, table: &str) -> &'static str {
        self.0.order_by(table)
    }
    fn needs_payload(&self) -> bool {
        self.0.needs_payload()
    }
}

/// Every row of every table of the projection's active generation, as text.
pub async fn dump(engine: &Engine, pool: &AnyPool, p: &dyn Projection) -> Vec<String> {
    let tables = engine.active_tables(p.name()).await.unwrap();
    let mut out = Vec::new();
    for base in p.tables() {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM {} ORDER BY {}",
            tables.table(base),
            p.order_by(base)
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        out.extend(rows.iter().map(|r| format!("{base}: {}", row_text(r))));
    }
    out
}

pub async fn on_activity(
    bus: &CommandBus,
    athlete: Uuid,
    activity: Uuid,
    command: ActivityCommand,
) {
    bus.execute::<Activity>(
        &CommandContext::athlete(athlete),
        &activity.to_string(),
        command,
    )
    .await
    .unwrap();
}

/// Fails unless each projection's rows rebuilt with `batch` are the per-event reference's.
pub fn assert_same(names: &[&str], batch: i64, single: &[Vec<String>], batched: &[Vec<String>]) {
    for (p, (one, many)) in names.iter().zip(single.iter().zip(batched)) {
        let only_single: Vec<_> = one.iter().filter(|r| !many.contains(r)).collect();
        let only_batched: Vec<_> = many.iter().filter(|r| !one.contains(r)).collect();
        assert!(
            one == many,
            "{p} with batch {batch}: per-event only {only_single:#?}, batched only {only_batched:#?}"
        );
    }
}
