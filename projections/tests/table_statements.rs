//! The statements a read-model table is written with, on both stores: a full chunk's insert is
//! a prepared statement, kept per connection, and must take whatever the next rows hold.

use projections::table::{Pending, Table};
use projections::{ReadDb, Tables, read_model_table};
use store::on_both_backends;
use store::testing::TestStore;

on_both_backends!(a_prepared_statement_takes_null_and_present_reals);

read_model_table! {
    pub struct NightRow in "nights", key 2, Replace {
        athlete_id: String,
        date: String,
        sleep_h: Option<f64>,
        hrv_ms: Option<f64>,
        stress: Option<i64>,
    }
}

fn nights(first_day: usize, sleep_h: Option<f64>) -> Vec<NightRow> {
    // One full chunk: the statement that is prepared.
    let rows = 5000 / NightRow::DEF.columns.len();
    (0..rows)
        .map(|i| NightRow {
            athlete_id: format!("a{}", i % 7),
            date: format!("d{:06}", first_day + i),
            sleep_h,
            hrv_ms: sleep_h.map(|h| h * 10.0),
            stress: sleep_h.map(|h| h as i64),
        })
        .collect()
}

/// A full chunk of NULL reals, then full chunks of present ones on the same connection: the
/// prepared statement's parameter types come from its first execution (see `NULL_DOUBLE` in
/// `projections::table`), and every row must land as written.
async fn a_prepared_statement_takes_null_and_present_reals(t: TestStore) {
    let db = ReadDb::connect(&t.url).await.unwrap();
    let tables = Tables::new("statements", 1);
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(NightRow::DEF.create_sql(&tables)))
        .execute(&mut *conn)
        .await
        .unwrap();
    let batches = [
        nights(0, None),
        nights(10_000, Some(7.25)),
        nights(20_000, None),
        nights(30_000, Some(6.5)),
    ];
    for batch in &batches {
        let mut pending = Pending::default();
        for row in batch {
            pending.put(row).unwrap();
        }
        pending.flush(&mut conn, &tables).await.unwrap();
    }
    let stored: Vec<NightRow> = sqlx::query_as(sqlx::AssertSqlSafe(
        NightRow::DEF.select_sql(&tables, "ORDER BY date"),
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let written: Vec<NightRow> = batches.concat();
    assert_eq!(stored.len(), written.len());
    assert_eq!(stored, written);
    assert_eq!(
        stored.iter().filter(|r| r.sleep_h == Some(7.25)).count(),
        5000 / 5
    );
}
