//! The PostgreSQL and SQLite migrations are two files per step, written by hand. This test
//! keeps them in step: it migrates a fresh database of each kind and compares what they built
//! (tables, columns, nullability, a type family per column, and index names). A migration added
//! to one directory and not the other, or a column typed differently, fails here.
//!
//! The event-store tables are where the two backends differ on purpose (native types for
//! times and ids, PostgreSQL's `transaction_id` for gap-safe reading); every such difference is
//! listed in `EXPECTED_DIFFERENCES` with its reason, so anything else is a mistake.

use std::collections::BTreeMap;

use sqlx::Row;
use store::testing::TestStore;

/// (table, column or index, why the backends differ). Each entry must still be a difference:
/// a stale entry fails the test too, so the list never outlives the schema it describes.
const EXPECTED_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "events",
        "transaction_id",
        "PostgreSQL orders the log by transaction id (gap-safe reading); SQLite serialises writers",
    ),
    (
        "events",
        "index events_log_order",
        "the index over PostgreSQL's (transaction_id, global_position) order",
    ),
    (
        "events",
        "encrypted",
        "boolean on PostgreSQL; SQLite has none, so INTEGER with CHECK (encrypted IN (0, 1))",
    ),
    (
        "events",
        "recorded_at",
        "timestamptz on PostgreSQL, microseconds since the epoch (recorded_at_us) on SQLite",
    ),
    ("events", "recorded_at_us", "see recorded_at"),
    (
        "athlete_keys",
        "created_at",
        "timestamptz on PostgreSQL, created_at_us on SQLite",
    ),
    ("athlete_keys", "created_at_us", "see created_at"),
    (
        "athlete_keys",
        "destroyed_at",
        "timestamptz on PostgreSQL, destroyed_at_us on SQLite",
    ),
    ("athlete_keys", "destroyed_at_us", "see destroyed_at"),
    (
        "idempotency_keys",
        "created_at",
        "timestamptz on PostgreSQL, created_at_us on SQLite",
    ),
    ("idempotency_keys", "created_at_us", "see created_at"),
    (
        "sample_blobs",
        "created_at",
        "timestamptz on PostgreSQL, created_at_us on SQLite",
    ),
    ("sample_blobs", "created_at_us", "see created_at"),
];

/// What a column can hold, as both backends' code sees it through sqlx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Integer,
    Real,
    Text,
    Bytes,
    Boolean,
    Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    family: Family,
    nullable: bool,
}

#[derive(Debug, Default)]
struct Schema {
    /// table -> column -> shape
    columns: BTreeMap<String, BTreeMap<String, Column>>,
    /// table -> index names (constraint-backed indexes excluded: they are the columns' keys)
    indexes: BTreeMap<String, Vec<String>>,
}

fn postgres_family(data_type: &str) -> Family {
    match data_type {
        "bigint" | "integer" | "smallint" => Family::Integer,
        "double precision" | "real" | "numeric" => Family::Real,
        // uuid and jsonb travel as text through the shared (sqlx Any) code.
        "text" | "character varying" | "uuid" | "jsonb" | "json" => Family::Text,
        "bytea" => Family::Bytes,
        "boolean" => Family::Boolean,
        "timestamp with time zone" => Family::Time,
        // xid8 (the log's ordering key) is PostgreSQL's own; it only appears in the
        // event-store tables and is listed as an expected difference.
        "xid8" => Family::Integer,
        other => panic!("PostgreSQL type {other:?} has no family in this test: add it"),
    }
}

/// SQLite's own affinity rules (https://www.sqlite.org/datatype3.html, 3.1), by declared type.
fn sqlite_family(declared: &str) -> Family {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Family::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Family::Text
    } else if t.contains("BLOB") || t.is_empty() {
        Family::Bytes
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Family::Real
    } else if t.contains("BOOL") {
        Family::Boolean
    } else {
        panic!("SQLite declared type {declared:?} has no family in this test: add it")
    }
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let mut schema = Schema::default();
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .expect("columns");
    for r in rows {
        let (table, column, data_type, nullable): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        schema.columns.entry(table).or_default().insert(
            column,
            Column {
                family: postgres_family(&data_type),
                nullable: nullable == "YES",
            },
        );
    }
    // Indexes created by CREATE INDEX, not those behind PRIMARY KEY / UNIQUE constraints.
    let rows = sqlx::query(
        "SELECT t.relname::text, i.relname::text FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    for r in rows {
        schema
            .indexes
            .entry(r.get(0))
            .or_default()
            .push(r.get::<String, _>(1));
    }
    pool.close().await;
    schema
}

async fn sqlite_schema(url: &str) -> Schema {
    let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    for table in tables {
        let rows = sqlx::query("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)")
            .bind(&table)
            .fetch_all(&pool)
            .await
            .expect("table info");
        let columns = schema.columns.entry(table.clone()).or_default();
        for r in rows {
            let (column, declared, not_null, pk): (String, String, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            // A single-column INTEGER PRIMARY KEY is the rowid: never null, whatever is declared.
            let nullable = not_null == 0 && pk == 0;
            columns.insert(
                column,
                Column {
                    family: sqlite_family(&declared),
                    nullable,
                },
            );
        }
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? \
             AND name NOT LIKE 'sqlite_autoindex_%'",
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .expect("indexes");
        if !indexes.is_empty() {
            schema.indexes.insert(table, indexes);
        }
    }
    pool.close().await;
    schema
}

/// Every difference between the two schemas, one line each, keyed by (table, column or index).
fn differences(pg: &Schema, lite: &Schema) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let tables: std::collections::BTreeSet<&String> =
        pg.columns.keys().chain(lite.columns.keys()).collect();
    for table in tables {
        let (Some(p), Some(s)) = (pg.columns.get(table), lite.columns.get(table)) else {
            out.insert(
                (table.clone(), String::new()),
                format!(
                    "table {table} exists only on {}",
                    if pg.columns.contains_key(table) {
                        "PostgreSQL"
                    } else {
                        "SQLite"
                    }
                ),
            );
            continue;
        };
        let columns: std::collections::BTreeSet<&String> = p.keys().chain(s.keys()).collect();
        for column in columns {
            let line = match (p.get(column), s.get(column)) {
                (Some(a), Some(b)) if a == b => continue,
                (Some(a), Some(b)) => format!("{table}.{column}: PostgreSQL {a:?}, SQLite {b:?}"),
                (Some(_), None) => format!("{table}.{column} exists only on PostgreSQL"),
                (None, _) => format!("{table}.{column} exists only on SQLite"),
            };
            out.insert((table.clone(), column.clone()), line);
        }
        let none = Vec::new();
        let pi = pg.indexes.get(table).unwrap_or(&none);
        let si = lite.indexes.get(table).unwrap_or(&none);
        for index in pi.iter().filter(|i| !si.contains(i)) {
            out.insert(
                (table.clone(), format!("index {index}")),
                format!("index {index} on {table} exists only on PostgreSQL"),
            );
        }
        for index in si.iter().filter(|i| !pi.contains(i)) {
            out.insert(
                (table.clone(), format!("index {index}")),
                format!("index {index} on {table} exists only on SQLite"),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_build_the_same_schema() {
    let pg = TestStore::postgres().await;
    let lite = TestStore::sqlite().await;
    let pg_schema = postgres_schema(&pg.url).await;
    let lite_schema = sqlite_schema(&lite.url).await;
    assert!(
        pg_schema.columns.len() >= 10,
        "the migrations built {} tables",
        pg_schema.columns.len()
    );

    let mut found = differences(&pg_schema, &lite_schema);
    let mut stale = Vec::new();
    for (table, item, _why) in EXPECTED_DIFFERENCES {
        if found
            .remove(&(table.to_string(), item.to_string()))
            .is_none()
        {
            stale.push(format!("{table} {item}"));
        }
    }
    assert!(
        found.is_empty(),
        "the PostgreSQL and SQLite migrations disagree:\n{}",
        found.into_values().collect::<Vec<_>>().join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed as expected differences but the same on both backends: {stale:?}"
    );
}

#[test]
fn a_difference_is_reported() {
    let mut a = Schema::default();
    let mut b = Schema::default();
    let col = |family, nullable| Column { family, nullable };
    a.columns.entry("t".into()).or_default().extend([
        ("x".to_string(), col(Family::Integer, false)),
        ("y".to_string(), col(Family::Text, true)),
    ]);
    b.columns.entry("t".into()).or_default().extend([
        ("x".to_string(), col(Family::Integer, true)),
        ("z".to_string(), col(Family::Text, true)),
    ]);
    b.indexes.insert("t".into(), vec!["t_by_z".into()]);
    let found: Vec<String> = differences(&a, &b).into_values().collect();
    assert_eq!(
        found,
        vec![
            "index t_by_z on t exists only on SQLite",
            "t.x: PostgreSQL Column { family: Integer, nullable: false }, SQLite Column { family: Integer, nullable: true }",
            "t.y exists only on PostgreSQL",
            "t.z exists only on SQLite",
        ]
    );
}
