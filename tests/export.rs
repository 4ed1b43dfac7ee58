//! The export of a one-year demo athlete (issue 15's acceptance): the worker builds it with
//! progress, and the archive holds every kind of record the athlete logged, each as JSON and
//! CSV with as many records as the log has, beside the whole log and the read models.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use serde_json::Value;
use store::testing::TestStore;

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        out.insert(f.name().unwrap().to_string(), body);
    }
    out
}

async fn a_year_of_demo_data_exports_whole(t: TestStore) {
    use devtools::demo::{self, DemoConfig};
    let bus = commands::CommandBus::new(
        t.store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let config = DemoConfig {
        seed: 11,
        athletes: 1,
        days: 365,
        end_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    };
    let summary = demo::run(&bus, &config, |_| {}).await.unwrap();
    let athlete = summary.athletes[0];
    let db = projections::ReadDb::connect(&t.url).await.unwrap();
    let engine = projections::Engine::new(t.store.clone(), db, projections::all());
    for name in engine.names() {
        let p = engine.projection(name).unwrap().clone();
        engine
            .catch_up(p.as_ref(), std::time::Duration::from_secs(300))
            .await
            .unwrap();
    }
    let pool = engine.db().pool.clone();

    let (job, created) = workers::exports::request(&pool, athlete).await.unwrap();
    assert!(created);
    assert_eq!((job.state.as_str(), job.progress_total), ("queued", 0));
    // Progress is written while the archive is built: watch it from beside the worker.
    let watcher = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let j = workers::exports::job(&pool, athlete, job.job_id)
                    .await
                    .unwrap()
                    .unwrap();
                seen.push((j.progress_done, j.progress_total));
                if j.state == "done" || j.state == "failed" {
                    return (j, seen);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    assert!(workers::exports::step(&engine, &t.store).await.unwrap());
    let (done, seen) = watcher.await.unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    let events = t.store.read_athlete(athlete, None).await.unwrap();
    let total = (events.len() + engine.names().len()) as i64;
    assert_eq!((done.progress_done, done.progress_total), (total, total));
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress only grows: {seen:?}"
    );
    eprintln!(
        "{} events; progress seen {} times; archive {} bytes",
        events.len(),
        seen.len(),
        done.byte_len.unwrap()
    );

    let blob: String = sqlx::query_scalar("SELECT blob_id FROM export_jobs WHERE job_id = $1")
        .bind(job.job_id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    let archive = t
        .store
        .get_blob(athlete, blob.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archive.len() as i64, done.byte_len.unwrap());
    let entries = unzip(&archive);
    assert!(entries.contains_key("README.md"));
    let all: Value = serde_json::from_slice(&entries["events.json"]).unwrap();
    assert_eq!(all["schema_version"], 1);
    assert_eq!(all["records"].as_array().unwrap().len(), events.len());

    // Every kind of record in the log, with every record of it.
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *per_kind.entry(e.event_type.as_str()).or_default() += 1;
    }
    assert!(
        per_kind.len() >= 6,
        "the demo logs many kinds: {per_kind:?}"
    );
    for (kind, n) in &per_kind {
        let json: Value =
            serde_json::from_slice(&entries[&format!("by_kind/{kind}.json")]).unwrap();
        assert_eq!(json["kind"], *kind);
        assert_eq!(json["records"].as_array().unwrap().len(), *n, "{kind}");
        let csv = String::from_utf8(entries[&format!("by_kind/{kind}.csv")].clone()).unwrap();
        // A header, then one line per record (no value of the demo has a line break).
        assert_eq!(csv.lines().count(), n + 1, "{kind}");
        assert!(csv.starts_with("position,recorded_at,stream"), "{kind}");
    }
    // The read models the API serves from: the profile, the journal, activities and their
    // efficiency metrics.
    for file in [
        "read_models/profile/profiles.json",
        "read_models/efficiency/metrics.json",
        "read_models/activities/activities.json",
        "read_models/journal/check_ins.json",
    ] {
        let json: Value = serde_json::from_slice(
            entries
                .get(file)
                .unwrap_or_else(|| panic!("no {file} in {:?}", entries.keys())),
        )
        .unwrap();
        assert!(!json["records"].as_array().unwrap().is_empty(), "{file}");
    }
    // A second request while none is open is a new export.
    let (again, created) = workers::exports::request(&pool, athlete).await.unwrap();
    assert!(created);
    assert_ne!(again.job_id, job.job_id);
}

/// Requests racing each other get one job between them.
async fn racing_requests_share_one_export(t: TestStore) {
    let db = projections::ReadDb::connect(&t.url).await.unwrap();
    let athlete = uuid::Uuid::new_v4();
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let pool = db.pool.clone();
            tokio::spawn(async move { workers::exports::request(&pool, athlete).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for r in requests {
        let (job, new) = r.await.unwrap().unwrap();
        ids.insert(job.job_id);
        created += usize::from(new);
    }
    assert_eq!((ids.len(), created), (1, 1));
}

store::on_both_backends!(
    a_year_of_demo_data_exports_whole,
    racing_requests_share_one_export
);
