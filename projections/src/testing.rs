//! Test support for this and other crates: a projection whose failures a test chooses, for the
//! engine's failure handling and for what readiness reports. Never compiled into the binary.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::AnyConnection;

use crate::{Projected, Projection, Tables};

/// What a [`Fault::Broken`] event fails with; a public answer must never quote it.
pub const BROKEN: &str = "the activity has no samples";

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// What a pool timeout looks like when it reaches a projection through the store (the
    /// efficiency projection reading a kept file).
    PoolTimeout,
    /// A bug or bad data: fails the same way every time.
    Broken,
}

/// Records every position it applies; fails as told at chosen positions.
#[derive(Default)]
pub struct Flaky {
    /// Position -> (fault, attempts left to fail).
    faults: Mutex<HashMap<i64, (Fault, u32)>>,
    /// Position -> how many times it failed.
    failed: Mutex<HashMap<i64, u32>>,
}

impl Flaky {
    /// The event at `position` fails with `fault` on its next `attempts` applications.
    pub fn fail(&self, position: i64, fault: Fault, attempts: u32) {
        self.faults
            .lock()
            .unwrap()
            .insert(position, (fault, attempts));
    }

    /// No event fails any more: the cause was fixed.
    pub fn heal(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// How many times the event at `position` failed.
    pub fn failures(&self, position: i64) -> u32 {
        self.failed
            .lock()
            .unwrap()
            .get(&position)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Projection for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["seen"]
    }
    fn schema(&self, t: &Tables) -> Vec<String> {
        vec![format!(
            "CREATE TABLE {} (position BIGINT PRIMARY KEY)",
            t.table("seen")
        )]
    }
    fn needs_payload(&self) -> bool {
        false
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        t: &Tables,
        e: &Projected<'_>,
    ) -> anyhow::Result<()> {
        // Write first, then fail: the failed attempt's row must be rolled back with it.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (position) VALUES ($1)",
            t.table("seen")
        )))
        .bind(e.recorded.position)
        .execute(conn)
        .await?;
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            match faults.get_mut(&e.recorded.position) {
                Some((fault, left)) if *left > 0 => {
                    *left -= 1;
                    Some(*fault)
                }
                _ => None,
            }
        };
        let Some(fault) = fault else {
            return Ok(());
        };
        *self
            .failed
            .lock()
            .unwrap()
            .entry(e.recorded.position)
            .or_default() += 1;
        Err(match fault {
            Fault::PoolTimeout => {
                anyhow::Error::from(store::StoreError::Database(sqlx::Error::PoolTimedOut))
                    .context("reading the kept file")
            }
            Fault::Broken => anyhow::anyhow!(BROKEN),
        })
    }
    fn order_by(&self, _: &str) -> &'static str {
        "position"
    }
}
