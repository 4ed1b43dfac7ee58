//! Test support: every test gets its own database (a fresh PostgreSQL database or a fresh
//! SQLite file), dropped when the guard goes. Never compiled into the binary.

use std::time::Duration;

use crate::{EventStore, MasterKey, StoreOptions};

/// Where tests find PostgreSQL; the user must be allowed to create databases.
pub fn postgres_admin_url() -> String {
    std::env::var("STRIDELOG_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A store on a database that exists for one test only.
pub struct TestStore {
    pub store: EventStore,
    pub url: String,
    pub master: MasterKey,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/events.db", dir.path().display());
        Self::open(url, Cleanup::Sqlite(dir)).await
    }

    /// Fails loudly when PostgreSQL is unreachable: a skipped backend is not a passed one.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("stridelog_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is needed by the tests: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = replace_db(&admin_url, &name);
        Self::open(url, Cleanup::Postgres { admin_url, name }).await
    }

    async fn open(url: String, cleanup: Cleanup) -> Self {
        let master = MasterKey::generate();
        let store = EventStore::connect(
            &url,
            master.clone(),
            StoreOptions {
                max_connections: 40,
            },
        )
        .await
        .expect("connect test store");
        store.migrate().await.expect("migrate test store");
        Self {
            store,
            url,
            master,
            cleanup,
        }
    }

    /// Another handle on the same database, as a second process would have.
    pub async fn reopen(&self) -> EventStore {
        EventStore::connect(&self.url, self.master.clone(), StoreOptions::default())
            .await
            .expect("reconnect")
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; a thread with its own runtime may block.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A pause inside each append's transaction, after its rows are written and before COMMIT,
/// so tests can make transactions commit out of position order.
pub type CommitDelay = std::sync::Arc<dyn Fn() -> Duration + Send + Sync>;

/// Declares each listed `async fn name(t: TestStore)` as two tests, `sqlite::name` and
/// `postgres::name`: every behavioural test runs on both stores.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::testing::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::testing::TestStore::postgres().await).await;
                }
            )*
        }
    };
}

/// Sends `signal` ("TERM", "KILL", ...) to a child process, through kill(1): the tests need
/// SIGTERM for graceful shutdowns, std only sends SIGKILL, and the workspace forbids `unsafe`.
pub fn send_signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -s {signal} {} failed", child.id());
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            super::replace_db("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::replace_db("postgres://u@h/db?sslmode=disable", "t2"),
            "postgres://u@h/t2?sslmode=disable"
        );
    }
}
