//! One declaration per read-model table. [`read_model_table!`] declares a row struct; from it
//! come the table's DDL (the same for both stores: the engine speaks one SQL dialect through
//! sqlx `Any`), its batched upsert, its column list for reads, and the struct itself is read
//! back through `sqlx::FromRow` by column name. A column is written in one place only.
//!
//! Writes go through [`Pending`]: a batch folds into one operation per row key, then each table
//! is written with multi-row statements, so applying one event and applying a batch are the same
//! code (the batch-equivalence tests hold by construction).

use std::collections::BTreeMap;

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool};

use crate::engine::Tables;

/// Column types, as both stores declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Text,
    BigInt,
    Double,
}

impl SqlType {
    fn ddl(self) -> &'static str {
        match self {
            SqlType::Text => "TEXT",
            SqlType::BigInt => "BIGINT",
            SqlType::Double => "DOUBLE PRECISION",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: SqlType,
    pub nullable: bool,
}

/// How a table's pending rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `ON CONFLICT DO UPDATE` replaces every other column: the last row of a key wins.
    Replace,
    /// Plain INSERT: a key twice fails the batch, as a second per-event INSERT would fail.
    Insert,
    /// The non-key `i64` columns are counters: pending rows of a key are summed, then added
    /// to the stored row. A non-key text column is an attribute of the key (the same in every
    /// row of it, like a week's first day): the first one written stays.
    Add,
    /// `ON CONFLICT DO NOTHING`: the first row of a key stays (a first sighting, a first
    /// registration).
    Keep,
}

/// A table: its base name (the engine prefixes it per generation), its columns (the first
/// `key` of which are the primary key) and how rows are written.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    pub base: &'static str,
    pub columns: &'static [Column],
    pub key: usize,
    pub write: Write,
}

impl TableDef {
    /// `CREATE TABLE` for this generation's copy of the table.
    pub fn create_sql(&self, t: &Tables) -> String {
        let mut lines: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{null}", c.name, c.ty.ddl())
            })
            .collect();
        lines.push(format!("PRIMARY KEY ({})", self.key_columns().join(", ")));
        format!("CREATE TABLE {} ({})", t.table(self.base), lines.join(", "))
    }

    pub fn key_columns(&self) -> Vec<&'static str> {
        self.columns[..self.key].iter().map(|c| c.name).collect()
    }

    /// The column list a `SELECT` reads, in declaration order.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The column list with each column taken from the table aliased `alias` in a join (and
    /// named as declared, so the row struct reads it).
    pub fn column_list_of(&self, alias: &str) -> String {
        self.columns
            .iter()
            .map(|c| format!("{alias}.{} AS {}", c.name, c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT <every column> FROM <table> <rest>`: `rest` holds the WHERE and ORDER BY.
    pub fn select_sql(&self, t: &Tables, rest: &str) -> String {
        format!(
            "SELECT {} FROM {} {rest}",
            self.column_list(),
            t.table(self.base)
        )
    }

    /// Like [`TableDef::select_sql`], with each column in `blank` read as `''` (text) instead:
    /// for list pages that do not need a long column.
    pub fn select_sql_blanking(&self, t: &Tables, blank: &[&str], rest: &str) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if blank.contains(&c.name) {
                    debug_assert!(c.ty == SqlType::Text);
                    format!("'' AS {}", c.name)
                } else {
                    c.name.to_string()
                }
            })
            .collect();
        format!(
            "SELECT {} FROM {} {rest}",
            columns.join(", "),
            t.table(self.base)
        )
    }

    /// [`TableDef::select_sql`] for a table the migrations create rather than a projection
    /// (one copy, named by its base in every generation).
    pub fn select_fixed_sql(&self, rest: &str) -> String {
        format!("SELECT {} FROM {} {rest}", self.column_list(), self.base)
    }

    /// The same table written another way (an `Insert` table's row replaced by a later event).
    pub const fn writing(self, write: Write) -> Self {
        Self { write, ..self }
    }

    /// `INSERT … VALUES (…), … ON CONFLICT …` for `rows` rows.
    fn insert_sql(&self, table: &str, rows: usize, placeholders: Placeholders) -> String {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", self.column_list());
        // Built in place: a full chunk has 5,000 placeholders, and a string per placeholder
        // showed in rebuild profiles.
        placeholders.rows(&mut sql, rows, self.columns.len());
        let keys = self.key_columns().join(", ");
        let rest = self.columns[self.key..].iter();
        let set: Vec<String> = match self.write {
            Write::Insert => return sql,
            Write::Keep => {
                sql.push_str(&format!(" ON CONFLICT ({keys}) DO NOTHING"));
                return sql;
            }
            Write::Replace => rest
                .map(|c| format!("{} = excluded.{}", c.name, c.name))
                .collect(),
            Write::Add => rest
                .filter(|c| c.ty != SqlType::Text)
                .map(|c| format!("{} = {table}.{} + excluded.{}", c.name, c.name, c.name))
                .collect(),
        };
        sql.push_str(&format!(
            " ON CONFLICT ({keys}) DO UPDATE SET {}",
            set.join(", ")
        ));
        sql
    }

    /// Rows per multi-row statement: under both stores' parameter limits (SQLite: 32766,
    /// PostgreSQL: 65535) whatever the width.
    fn chunk(&self) -> usize {
        (5000 / self.columns.len()).max(1)
    }
}

/// How a statement's parameters are written on the store it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2, …`: what PostgreSQL needs (and what every hand-written statement uses).
    Numbered,
    /// `?, ?, …` in order. For SQLite's long multi-row statements: sqlx binds each parameter
    /// after asking SQLite its name (`sqlite3_bind_parameter_name`), which scans every named
    /// parameter before it, so a 5,000-parameter statement cost quadratic time; a rebuild on
    /// SQLite spent 62% of its time there. Anonymous parameters have no name to find.
    Anonymous,
}

impl Placeholders {
    /// The placeholders for statements sent on `conn`.
    pub fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
            Placeholders::Anonymous
        } else {
            Placeholders::Numbered
        }
    }

    /// Appends the `n`th (from 1) parameter's placeholder; anonymous ones must be appended in
    /// order.
    pub fn push(self, sql: &mut String, n: usize) {
        use std::fmt::Write as _;
        match self {
            Placeholders::Numbered => {
                let _ = write!(sql, "${n}");
            }
            Placeholders::Anonymous => sql.push('?'),
        }
    }

    /// `(…), (…), …`: `rows` rows of `columns` parameters each, numbered from 1.
    pub fn rows(self, sql: &mut String, rows: usize, columns: usize) {
        sql.reserve(rows * columns * 7);
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 1..=columns {
                if c > 1 {
                    sql.push_str(", ");
                }
                self.push(sql, r * columns + c);
            }
            sql.push(')');
        }
    }
}

/// One bound value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl Cell {
    /// The cell as part of a map key (key cells are never NULL).
    fn key(&self) -> KeyCell {
        match self {
            Cell::Int(v) => KeyCell::Int(*v),
            Cell::Real(v) => KeyCell::Real(v.map(f64::to_bits)),
            Cell::Text(v) => KeyCell::Text(v.clone()),
        }
    }
}

/// A key cell, ordered and compared as the map of pending rows needs (a float by its bits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyCell {
    Int(Option<i64>),
    Real(Option<u64>),
    Text(Option<String>),
}

/// A Rust type a column can hold, and how it is declared and bound.
pub trait SqlValue {
    const TYPE: SqlType;
    const NULLABLE: bool;
    fn cell(&self) -> Cell;
}

macro_rules! sql_value {
    ($t:ty, $sql:ident, $cell:ident) => {
        impl SqlValue for $t {
            const TYPE: SqlType = SqlType::$sql;
            const NULLABLE: bool = false;
            fn cell(&self) -> Cell {
                Cell::$cell(Some(self.clone()))
            }
        }
        impl SqlValue for Option<$t> {
            const TYPE: SqlType = SqlType::$sql;
            const NULLABLE: bool = true;
            fn cell(&self) -> Cell {
                Cell::$cell(self.clone())
            }
        }
    };
}
sql_value!(String, Text, Text);
sql_value!(i64, BigInt, Int);
sql_value!(f64, Double, Real);

/// A row struct declared with [`read_model_table!`].
pub trait Table {
    const DEF: TableDef;
    /// The row's values in column order.
    fn cells(&self) -> Vec<Cell>;
}

/// Declares a read-model table as its row struct:
///
/// ```ignore
/// read_model_table! {
///     /// One check-in per athlete and day.
///     pub struct CheckInRow in "check_ins", key 2, Replace {
///         athlete_id: String,
///         date: String,
///         sleep_h: Option<f64>,
///     }
/// }
/// ```
///
/// The first `key` fields are the primary key; `Option` fields are nullable columns.
#[macro_export]
macro_rules! read_model_table {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $base:literal, key $key:literal, $write:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty ),*
        }

        impl $crate::table::Table for $name {
            const DEF: $crate::table::TableDef = $crate::table::TableDef {
                base: $base,
                columns: &[$(
                    $crate::table::Column {
                        name: stringify!($field),
                        ty: <$ty as $crate::table::SqlValue>::TYPE,
                        nullable: <$ty as $crate::table::SqlValue>::NULLABLE,
                    }
                ),*],
                key: $key,
                write: $crate::table::Write::$write,
            };

            fn cells(&self) -> Vec<$crate::table::Cell> {
                vec![$( $crate::table::SqlValue::cell(&self.$field) ),*]
            }
        }
    };
}

enum Op {
    /// The whole row.
    Write(Vec<Cell>),
    /// The key cells of a row to delete.
    Delete(Vec<Cell>),
}

/// What a batch has done to each table so far, one operation per row key; written by
/// [`Pending::flush`]. Tables are flushed in the order they were first touched.
#[derive(Default)]
pub struct Pending {
    tables: Vec<(TableDef, BTreeMap<Vec<KeyCell>, Op>)>,
}

impl Pending {
    fn map(&mut self, def: TableDef) -> &mut BTreeMap<Vec<KeyCell>, Op> {
        let i = match self.tables.iter().position(|(d, _)| d.base == def.base) {
            Some(i) => {
                debug_assert_eq!(
                    self.tables[i].0.write, def.write,
                    "one write mode per batch"
                );
                i
            }
            None => {
                self.tables.push((def, BTreeMap::new()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[i].1
    }

    fn key(def: &TableDef, cells: &[Cell]) -> Vec<KeyCell> {
        cells[..def.key].iter().map(Cell::key).collect()
    }

    /// Writes `row` (or, for an `Add` table, adds it to the pending sum of its key).
    pub fn put<T: Table>(&mut self, row: &T) -> anyhow::Result<()> {
        self.put_as(T::DEF, row)
    }

    /// [`Pending::put`] with the table's write mode replaced by `def`'s; rows of one table
    /// must be put with one mode in a batch.
    pub fn put_as<T: Table>(&mut self, def: TableDef, row: &T) -> anyhow::Result<()> {
        debug_assert_eq!(def.base, T::DEF.base);
        let cells = row.cells();
        let key = Self::key(&def, &cells);
        let map = self.map(def);
        match def.write {
            Write::Replace => {
                map.insert(key, Op::Write(cells));
            }
            Write::Insert => {
                if map.insert(key, Op::Write(cells)).is_some() {
                    anyhow::bail!("two {} rows with one key in a batch", def.base);
                }
            }
            Write::Keep => {
                map.entry(key).or_insert(Op::Write(cells));
            }
            Write::Add => match map.get_mut(&key) {
                Some(Op::Write(sum)) => {
                    for (s, c) in sum.iter_mut().zip(cells).skip(def.key) {
                        match (s, c) {
                            (Cell::Int(Some(s)), Cell::Int(Some(c))) => *s += c,
                            (Cell::Text(_), Cell::Text(_)) => {}
                            _ => anyhow::bail!("{} adds only whole numbers", def.base),
                        }
                    }
                }
                _ => {
                    map.insert(key, Op::Write(cells));
                }
            },
        }
        Ok(())
    }

    /// Deletes the row whose key cells are `key` (a pending write of that key is replaced).
    pub fn delete<T: Table>(&mut self, key: Vec<Cell>) {
        let def = T::DEF;
        debug_assert!(def.write == Write::Replace && key.len() == def.key);
        let k = Self::key(&def, &key);
        self.map(def).insert(k, Op::Delete(key));
    }

    /// Writes and forgets everything pending: per table, the deletions, then the rows.
    pub async fn flush(&mut self, conn: &mut AnyConnection, t: &Tables) -> anyhow::Result<()> {
        for (def, map) in &mut self.tables {
            if map.is_empty() {
                continue;
            }
            let table = t.table(def.base);
            let placeholders = Placeholders::of(conn);
            let (mut rows, mut deletes) = (Vec::new(), Vec::new());
            for op in std::mem::take(map).into_values() {
                match op {
                    Op::Write(cells) => rows.push(cells),
                    Op::Delete(key) => deletes.push(key),
                }
            }
            for chunk in deletes.chunks(DELETE_CHUNK) {
                let mut n = 0;
                let condition = chunk
                    .iter()
                    .map(|_| {
                        let terms: Vec<String> = def
                            .key_columns()
                            .iter()
                            .map(|c| {
                                n += 1;
                                let mut term = format!("{c} = ");
                                placeholders.push(&mut term, n);
                                term
                            })
                            .collect();
                        format!("({})", terms.join(" AND "))
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let sql = format!("DELETE FROM {table} WHERE {condition}");
                bind_all(uncached(sql), chunk.iter().flatten())
                    .execute(&mut *conn)
                    .await?;
            }
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<Vec<Cell>> = rows.by_ref().take(def.chunk()).collect();
                let full = chunk.len() == def.chunk();
                bind_owned(
                    statement(def.insert_sql(&table, chunk.len(), placeholders), full),
                    chunk.into_iter().flatten(),
                )
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// Writes one row, as its declaration says, into a table the migrations create rather than a
/// projection (named by its base: see [`TableDef::select_fixed_sql`]).
pub async fn write_fixed<T: Table>(pool: &AnyPool, row: &T) -> anyhow::Result<()> {
    let cells = row.cells();
    bind_all(
        uncached(T::DEF.insert_sql(T::DEF.base, 1, Placeholders::Numbered)),
        cells.iter(),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Keys per multi-row DELETE (deletions are rare).
const DELETE_CHUNK: usize = 100;

/// Statements built per batch size are not worth a prepared-statement cache entry each: only a
/// full chunk's statement, the one a rebuild sends again and again, is prepared once per
/// connection (parsing and planning thousands of placeholders cost PostgreSQL more than
/// inserting the rows in rebuild profiles).
fn statement<'q>(sql: String, prepared: bool) -> Query<'q, Any, AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(prepared)
}

fn uncached<'q>(sql: String) -> Query<'q, Any, AnyArguments> {
    statement(sql, false)
}

/// A NULL `f64` as a prepared statement can take it. sqlx 0.9.0's `Any` driver declares a NULL
/// of an `f64` as `float4` and a NULL of an `f32` as `float8` (the two kinds are swapped in
/// `AnyArguments::convert_into`, transact-rs/sqlx#4284), and PostgreSQL keeps a prepared
/// statement's first parameter types: after a `float4` NULL, every later `f64` bound in that
/// place is refused ("incorrect binary data format"). Bound as an `f32` NULL, the place is
/// `float8` like every present value. `a_prepared_statement_takes_null_and_present_reals`
/// fails if a sqlx upgrade corrects the swap without this being undone.
const NULL_DOUBLE: Option<f32> = None;

/// [`bind_all`] for cells the statement may keep: the rows of a flush are written once.
fn bind_owned<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    cells: impl Iterator<Item = Cell>,
) -> Query<'q, Any, AnyArguments> {
    for cell in cells {
        q = match cell {
            Cell::Int(v) => q.bind(v),
            Cell::Real(None) => q.bind(NULL_DOUBLE),
            Cell::Real(v) => q.bind(v),
            Cell::Text(v) => q.bind(v),
        };
    }
    q
}

fn bind_all<'q>(
    q: Query<'q, Any, AnyArguments>,
    cells: impl Iterator<Item = &'q Cell>,
) -> Query<'q, Any, AnyArguments> {
    bind_owned(q, cells.cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::read_model_table! {
        /// A table for the tests.
        pub struct Sample in "samples", key 2, Replace {
            athlete_id: String,
            date: String,
            sleep_h: Option<f64>,
            stress: Option<i64>,
            recorded_at_us: i64,
        }
    }

    crate::read_model_table! {
        pub struct Counter in "counters", key 1, Add {
            id: String,
            helpful_count: i64,
        }
    }

    crate::read_model_table! {
        pub struct WeekCounter in "weeks", key 1, Add {
            iso_week: String,
            week_start: String,
            athletes: i64,
        }
    }

    crate::read_model_table! {
        pub struct Sighting in "sightings", key 2, Keep {
            athlete_id: String,
            day: String,
            first_event_type: String,
        }
    }

    #[test]
    fn ddl_upsert_and_select_come_from_the_declaration() {
        let t = Tables::new("journal", 3);
        assert_eq!(
            Sample::DEF.create_sql(&t),
            format!(
                "CREATE TABLE {} (athlete_id TEXT NOT NULL, date TEXT NOT NULL, \
                 sleep_h DOUBLE PRECISION, stress BIGINT, recorded_at_us BIGINT NOT NULL, \
                 PRIMARY KEY (athlete_id, date))",
                t.table("samples")
            )
        );
        assert_eq!(
            Sample::DEF.insert_sql("s", 2, Placeholders::Numbered),
            "INSERT INTO s (athlete_id, date, sleep_h, stress, recorded_at_us) \
             VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10) \
             ON CONFLICT (athlete_id, date) DO UPDATE SET sleep_h = excluded.sleep_h, \
             stress = excluded.stress, recorded_at_us = excluded.recorded_at_us"
        );
        assert_eq!(
            Counter::DEF.insert_sql("c", 1, Placeholders::Numbered),
            "INSERT INTO c (id, helpful_count) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET helpful_count = c.helpful_count + excluded.helpful_count"
        );
        assert_eq!(
            Sample::DEF.select_sql(&t, "WHERE athlete_id = $1"),
            format!(
                "SELECT athlete_id, date, sleep_h, stress, recorded_at_us FROM {} \
                 WHERE athlete_id = $1",
                t.table("samples")
            )
        );
        assert_eq!(
            WeekCounter::DEF.insert_sql("w", 1, Placeholders::Numbered),
            "INSERT INTO w (iso_week, week_start, athletes) VALUES ($1, $2, $3) \
             ON CONFLICT (iso_week) DO UPDATE SET athletes = w.athletes + excluded.athletes"
        );
        assert_eq!(
            Sighting::DEF.insert_sql("s", 1, Placeholders::Numbered),
            "INSERT INTO s (athlete_id, day, first_event_type) VALUES ($1, $2, $3) \
             ON CONFLICT (athlete_id, day) DO NOTHING"
        );
        assert_eq!(
            Counter::DEF.insert_sql("c", 2, Placeholders::Anonymous),
            "INSERT INTO c (id, helpful_count) VALUES (?, ?), (?, ?) \
             ON CONFLICT (id) DO UPDATE SET helpful_count = c.helpful_count + excluded.helpful_count"
        );
        assert_eq!(
            Counter::DEF.column_list_of("c"),
            "c.id AS id, c.helpful_count AS helpful_count"
        );
    }

    #[test]
    fn pending_keeps_the_last_row_of_a_key_and_adds_counters() {
        let mut p = Pending::default();
        let row = |sleep: f64| Sample {
            athlete_id: "a".into(),
            date: "2026-01-01".into(),
            sleep_h: Some(sleep),
            stress: None,
            recorded_at_us: 1,
        };
        p.put(&row(6.0)).unwrap();
        p.put(&row(7.5)).unwrap();
        let c = |n| Counter {
            id: "x".into(),
            helpful_count: n,
        };
        p.put(&c(1)).unwrap();
        p.put(&c(2)).unwrap();
        let samples: Vec<_> = p.tables[0].1.values().collect();
        assert_eq!(samples.len(), 1);
        assert!(matches!(samples[0], Op::Write(cells) if cells[2] == Cell::Real(Some(7.5))));
        let counters: Vec<_> = p.tables[1].1.values().collect();
        assert!(matches!(counters[0], Op::Write(cells) if cells[1] == Cell::Int(Some(3))));
        let week = |athletes| WeekCounter {
            iso_week: "2026-W47".into(),
            week_start: "2026-11-16".into(),
            athletes,
        };
        p.put(&week(2)).unwrap();
        p.put(&week(1)).unwrap();
        let sighting = |event_type: &str| Sighting {
            athlete_id: "a".into(),
            day: "2026-11-20".into(),
            first_event_type: event_type.into(),
        };
        p.put(&sighting("ActivityRecorded")).unwrap();
        p.put(&sighting("DailyCheckInLogged")).unwrap();
        let weeks: Vec<_> = p.tables[2].1.values().collect();
        assert!(matches!(weeks[0], Op::Write(cells)
            if cells[1] == Cell::Text(Some("2026-11-16".into())) && cells[2] == Cell::Int(Some(3))));
        let sightings: Vec<_> = p.tables[3].1.values().collect();
        assert!(matches!(sightings[..], [Op::Write(cells)]
            if cells[2] == Cell::Text(Some("ActivityRecorded".into()))));
        p.delete::<Sample>(vec![
            Cell::Text(Some("a".into())),
            Cell::Text(Some("2026-01-01".into())),
        ]);
        assert!(matches!(
            p.tables[0].1.values().next().unwrap(),
            Op::Delete(_)
        ));
    }
}
