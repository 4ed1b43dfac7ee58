//! Anonymised cross-athlete aggregates: a fixed catalogue of queries, never free-form. Every
//! cell describes at least [`MIN_ATHLETES`] athletes or is suppressed (no count, no value), and
//! nothing returned names or identifies an athlete. Erased athletes have no rows left to count.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{Datelike, NaiveDate, Utc};
use domain::correlation::Analysis;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::extract::Path;
use crate::problem::{ApiResult, Problem};

/// The smallest group a cell may describe.
pub const MIN_ATHLETES: usize = 10;

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct QueryInfo {
    pub id: &'static str,
    pub title: &'static str,
    /// What each cell is grouped by.
    pub dimensions: &'static [&'static str],
    /// What a cell's `value` is.
    pub value: &'static str,
}

pub const CATALOGUE: &[QueryInfo] = &[
    QueryInfo {
        id: "athletes_by_age_band_and_sex",
        title: "Athletes by age band and sex",
        dimensions: &["age_band", "sex"],
        value: "share of all counted athletes, 0-1",
    },
    QueryInfo {
        id: "median_ef_by_age_band_and_sex",
        title: "Median efficiency factor by age band and sex",
        dimensions: &["age_band", "sex"],
        value: "median over athletes of each athlete's median run EF (m/min per bpm)",
    },
    QueryInfo {
        id: "share_with_sleep_finding",
        title: "Share of analysed athletes with a sleep finding",
        dimensions: &[],
        value: "share of athletes with a correlation snapshot whose findings include a sleep \
                input, 0-1",
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cell {
    /// The group, in the query's `dimensions` order.
    pub group: Vec<String>,
    /// Absent when suppressed.
    pub athletes: Option<usize>,
    pub value: Option<f64>,
    /// Fewer than 10 athletes: neither count nor value is given.
    pub suppressed: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AggregateResult {
    pub query: QueryInfo,
    pub min_athletes: usize,
    pub cells: Vec<Cell>,
}

/// The catalogue of aggregate queries.
#[utoipa::path(get, path = "/v1/admin/aggregates", tag = "admin",
    responses((status = 200, body = Vec<QueryInfo>)))]
pub async fn catalogue() -> axum::Json<&'static [QueryInfo]> {
    axum::Json(CATALOGUE)
}

/// One aggregate of the catalogue, with every cell under 10 athletes suppressed.
#[utoipa::path(get, path = "/v1/admin/aggregates/{query_id}", tag = "admin",
    params(("query_id" = String, Path)),
    responses((status = 200, body = AggregateResult)))]
pub async fn run(
    State(state): State<AppState>,
    Path(query_id): Path<String>,
) -> ApiResult<axum::Json<AggregateResult>> {
    let query = *CATALOGUE
        .iter()
        .find(|q| q.id == query_id)
        .ok_or_else(|| Problem::not_found("aggregate query"))?;
    state.caught_up(&["profile", "efficiency"]).await?;
    let cells = match query.id {
        "athletes_by_age_band_and_sex" => {
            let groups = demographics(&state).await?;
            let counted = groups.len();
            let mut by: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
            for g in groups.into_values() {
                by.entry(g).or_default().push(1.0);
            }
            suppress(by, |v| v.len() as f64 / counted.max(1) as f64)
        }
        "median_ef_by_age_band_and_sex" => {
            let groups = demographics(&state).await?;
            let mut by: BTreeMap<Vec<String>, Vec<f64>> = BTreeMap::new();
            for (athlete, ef) in athlete_median_ef(&state).await? {
                if let Some(g) = groups.get(&athlete) {
                    by.entry(g.clone()).or_default().push(ef);
                }
            }
            suppress(by, |v| median(v).unwrap_or(f64::NAN))
        }
        "share_with_sleep_finding" => {
            let rows: Vec<String> =
                sqlx::query_scalar("SELECT analyses_json FROM correlation_snapshots")
                    .fetch_all(state.read_pool())
                    .await?;
            let mut with = Vec::with_capacity(rows.len());
            for json in rows {
                let analyses: BTreeMap<u32, Analysis> =
                    serde_json::from_str(&json).map_err(Problem::internal)?;
                let sleep = analyses
                    .values()
                    .flat_map(|a| &a.findings)
                    .any(|f| f.input.contains("sleep"));
                with.push(if sleep { 1.0 } else { 0.0 });
            }
            suppress(BTreeMap::from([(Vec::new(), with)]), |v| {
                v.iter().sum::<f64>() / v.len() as f64
            })
        }
        _ => unreachable!("the catalogue lists only these"),
    };
    Ok(axum::Json(AggregateResult {
        query,
        min_athletes: MIN_ATHLETES,
        cells,
    }))
}

/// Each value is one athlete's; groups under [`MIN_ATHLETES`] give no count and no value.
fn suppress(groups: BTreeMap<Vec<String>, Vec<f64>>, value: impl Fn(&[f64]) -> f64) -> Vec<Cell> {
    groups
        .into_iter()
        .map(|(group, values)| {
            if values.len() < MIN_ATHLETES {
                Cell {
                    group,
                    athletes: None,
                    value: None,
                    suppressed: true,
                }
            } else {
                Cell {
                    group,
                    athletes: Some(values.len()),
                    value: Some(value(&values)),
                    suppressed: false,
                }
            }
        })
        .collect()
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Ten-year bands from 20; `under_20`, `60_plus` and `unknown` at the ends.
fn age_band(birth: Option<NaiveDate>, today: NaiveDate) -> String {
    let Some(b) = birth else {
        return "unknown".into();
    };
    let mut age = today.year() - b.year();
    if (today.month(), today.day()) < (b.month(), b.day()) {
        age -= 1;
    }
    match age {
        i32::MIN..=19 => "under_20".into(),
        60.. => "60_plus".into(),
        a => {
            let low = a / 10 * 10;
            format!("{low}_{}", low + 9)
        }
    }
}

/// Every athlete-role profile's (age band, sex), by athlete id (kept inside this module).
async fn demographics(state: &AppState) -> ApiResult<BTreeMap<String, Vec<String>>> {
    let profiles = state.tables("profile").await?.table("profiles");
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT athlete_id, birth_date, sex FROM {profiles} WHERE role = 'athlete'"),
    ))
    .fetch_all(state.read_pool())
    .await?;
    let today = Utc::now().date_naive();
    let mut out = BTreeMap::new();
    for (id, birth, sex) in rows {
        let birth = birth.and_then(|b| b.parse().ok());
        out.insert(
            id,
            vec![
                age_band(birth, today),
                sex.unwrap_or_else(|| "unknown".into()),
            ],
        );
    }
    Ok(out)
}

/// Each athlete's median efficiency factor over their runs that have one.
async fn athlete_median_ef(state: &AppState) -> ApiResult<Vec<(String, f64)>> {
    let metrics = state.tables("efficiency").await?.table("metrics");
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT athlete_id, metrics_json FROM {metrics} WHERE sport = 'run'"
    )))
    .fetch_all(state.read_pool())
    .await?;
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (id, json) in rows {
        let m: serde_json::Value = serde_json::from_str(&json).map_err(Problem::internal)?;
        if let Some(ef) = m["efficiency_factor"].as_f64() {
            by.entry(id).or_default().push(ef);
        }
    }
    Ok(by
        .into_iter()
        .filter_map(|(id, v)| median(&v).map(|m| (id, m)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn age_bands() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let born = |y, m, d| Some(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(age_band(None, today), "unknown");
        assert_eq!(age_band(born(2007, 1, 1), today), "under_20");
        // 20 tomorrow: still 19 today.
        assert_eq!(age_band(born(2006, 12, 8), today), "under_20");
        assert_eq!(age_band(born(2006, 12, 7), today), "20_29");
        assert_eq!(age_band(born(1987, 6, 1), today), "30_39");
        assert_eq!(age_band(born(1966, 12, 7), today), "60_plus");
        assert_eq!(age_band(born(1966, 12, 8), today), "50_59");
    }

    #[test]
    fn cells_under_ten_athletes_say_nothing() {
        let groups = BTreeMap::from([
            (vec!["a".to_string()], vec![1.0; 10]),
            (vec!["b".to_string()], vec![5.0; 9]),
        ]);
        let cells = suppress(groups, |v| v.iter().sum());
        assert_eq!(
            cells,
            [
                Cell {
                    group: vec!["a".into()],
                    athletes: Some(10),
                    value: Some(10.0),
                    suppressed: false
                },
                Cell {
                    group: vec!["b".into()],
                    athletes: None,
                    value: None,
                    suppressed: true
                },
            ]
        );
    }
}
