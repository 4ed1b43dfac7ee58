//! GDPR erasure (`DELETE /v1/me`): a unique marker is planted in every personal field the API
//! accepts, the account is erased, and a dump of the whole database (PostgreSQL: `pg_dump`;
//! SQLite: the database file and its WAL, as bytes) holds the marker in no form: plain, hex,
//! base64 (any alignment) or inside a zip entry. The dump is checked before erasure too, so
//! the search is known to find what is there. The read cache is Redis here: the marker is in a
//! cached answer before, and no key or value of the athlete is left after (D41).

mod common;

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use common::{Account, Api, PASSWORD, assert_problem};
use serde_json::{Value, json};
use store::testing::TestStore;
use uuid::Uuid;

const DAY: &str = "2026-03-02";
const WAIT: Duration = Duration::from_secs(20);

/// A marker no fixture or generated value contains by chance: lowercase, so emails keep it.
fn new_marker() -> String {
    format!("qx{}", &Uuid::new_v4().simple().to_string()[..20])
}

async fn register(api: &Api, email: &str, display_name: &str, kind: &str) -> Account {
    let r = api
        .send(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "display_name": display_name, "kind": kind})),
        )
        .await;
    assert_eq!(r.status, 201, "register {email}: {}", r.body);
    Account {
        id: r.body["account_id"].as_str().unwrap().parse().unwrap(),
        email: email.to_string(),
        access: r.body["access_token"].as_str().unwrap().to_string(),
        refresh: r.body["refresh_token"].as_str().unwrap().to_string(),
    }
}

/// Sends, asserts the status, returns the body.
async fn ok(api: &Api, method: &str, path: &str, token: &str, body: Value, status: u16) -> Value {
    let r = api.send(method, path, Some(token), Some(body)).await;
    assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
    r.body
}

/// The GPX test file with the marker as its track name.
fn gpx_with(marker: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/activities/run-2013-02-06.gpx"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("<name>Hill run</name>"));
    text.replacen(
        "<name>Hill run</name>",
        &format!("<name>Hill run {marker}</name>"),
        1,
    )
    .into_bytes()
}

async fn import(api: &Api, token: &str, file_name: &str, bytes: &[u8]) -> Value {
    let boundary = "erasure-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/gpx+xml\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri("/v1/activities/import")
        .header("authorization", format!("Bearer {token}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    let r = api.raw(req).await;
    assert!(r.status.is_success(), "import: {} {}", r.status, r.body);
    r.body
}

/// A correlation snapshot with one finding, as the worker would store it, so that insight
/// feedback (which must name a finding the athlete was shown) can carry a note. Computing a
/// real one needs months of data (api/tests/correlations.rs does that).
async fn plant_snapshot(api: &Api, athlete: Uuid) -> String {
    use domain::correlation::{Analysis, Category, Finding, Method, finding_id};
    let finding = Finding {
        id: finding_id("sleep_hours", "ef", 0, Method::Spearman),
        input: "sleep_hours".into(),
        outcome: "ef".into(),
        lag_days: 0,
        method: Method::Spearman,
        r: 0.4,
        p: 0.001,
        q: 0.01,
        n: 40,
        n_eff: 38.0,
        ci_low: 0.2,
        ci_high: 0.6,
        category: Category::WhatWorks,
        effect: 2.5,
        effect_ci_low: 1.0,
        effect_ci_high: 4.0,
        text: "More sleep went with higher efficiency.".into(),
    };
    let id = finding.id.clone();
    let analyses = std::collections::BTreeMap::from([(
        90u32,
        Analysis {
            tests_run: 1,
            findings: vec![finding],
            insufficient: vec![],
        },
    )]);
    sqlx::query(
        "INSERT INTO correlation_snapshots (athlete_id, position, computed_at_us, analyses_json) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(athlete.to_string())
    .bind(1i64)
    .bind(chrono::Utc::now().timestamp_micros())
    .bind(serde_json::to_string(&analyses).unwrap())
    .execute(&api.state.projections.db().pool)
    .await
    .unwrap();
    id
}

/// Plants the marker in every free-text field the API takes; returns the last position.
async fn plant_everywhere(api: &Api, a: &Account, marker: &str) -> i64 {
    let tok = a.access.as_str();
    ok(
        api,
        "PATCH",
        "/v1/me",
        tok,
        json!({"display_name": format!("Renamed {marker}")}),
        200,
    )
    .await;
    let note = format!("note {marker}");
    ok(
        api,
        "PUT",
        &format!("/v1/checkins/{DAY}"),
        tok,
        json!({"sleep_h": 7.5, "notes": note}),
        200,
    )
    .await;
    let entry = ok(
        api,
        "POST",
        "/v1/nutrition",
        tok,
        json!({"date": DAY, "entry_type": "daily", "calories_kcal": 2100.0, "notes": note}),
        201,
    )
    .await;
    ok(
        api,
        "PATCH",
        &format!("/v1/nutrition/{}", entry["id"].as_str().unwrap()),
        tok,
        json!({"notes": format!("changed {marker}")}),
        200,
    )
    .await;
    ok(
        api,
        "POST",
        "/v1/nutrition/presets",
        tok,
        json!({"name": format!("gel {marker}"), "nutrients": {"calories_kcal": 100.0}}),
        201,
    )
    .await;
    ok(
        api,
        "PUT",
        &format!("/v1/work/{DAY}"),
        tok,
        json!({"work_type": "desk", "hours_worked_h": 8.0, "notes": note}),
        200,
    )
    .await;
    ok(
        api,
        "PUT",
        &format!("/v1/body/{DAY}"),
        tok,
        json!({"weight_kg": 61.5, "notes": note}),
        200,
    )
    .await;
    let activity = ok(
        api,
        "POST",
        "/v1/activities",
        tok,
        json!({"sport": "run", "name": format!("run {marker}"), "start_time": "2026-03-02T07:00:00Z",
               "distance_m": 10000.0, "moving_time_s": 3000.0, "avg_hr_bpm": 145.0}),
        201,
    )
    .await;
    let activity = activity["id"].as_str().unwrap().to_string();
    ok(
        api,
        "PATCH",
        &format!("/v1/activities/{activity}"),
        tok,
        json!({"notes": note}),
        200,
    )
    .await;
    ok(
        api,
        "POST",
        &format!("/v1/activities/{activity}/feedback"),
        tok,
        json!({"effort": 6, "leg_feel": 4, "notes": note}),
        201,
    )
    .await;
    let insight = plant_snapshot(api, a.id).await;
    ok(
        api,
        "POST",
        "/v1/insights/feedback",
        tok,
        json!({"insight_id": insight, "helpful": true, "notes": note}),
        201,
    )
    .await;
    let imported = import(api, tok, &format!("{marker}.gpx"), &gpx_with(marker)).await;
    let last = api
        .send(
            "PUT",
            &format!("/v1/checkins/{DAY}"),
            Some(tok),
            Some(json!({"sleep_h": 7.0, "notes": format!("last {marker}")})),
        )
        .await;
    assert_eq!(last.status, 200, "{} / import: {imported}", last.body);
    last.position()
}

/// Every byte the database holds as an operator would copy it.
async fn dump(t: &TestStore) -> Vec<u8> {
    if t.url.starts_with("postgres") {
        let out = std::process::Command::new("pg_dump")
            .args(["--format=plain", "--no-owner", "--dbname", &t.url])
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.len() > 1000, "an empty dump proves nothing");
        return out.stdout;
    }
    let path = t
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let mut bytes = std::fs::read(&path).expect("the database file");
    // The WAL is part of the database until a checkpoint copies it back.
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend_from_slice(&wal);
    }
    bytes
}

/// The byte strings that betray `marker`: itself, its hex (both cases), and the part of its
/// base64 (standard and URL-safe) that does not depend on the bytes around it, for each of the
/// three alignments it can have inside a longer encoded value.
fn forms(marker: &str) -> Vec<(String, Vec<u8>)> {
    let m = marker.as_bytes();
    let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
    let mut forms = vec![
        ("plain".to_string(), m.to_vec()),
        ("hex".to_string(), hex.clone().into_bytes()),
        ("HEX".to_string(), hex.to_uppercase().into_bytes()),
    ];
    for (name, engine) in [
        ("base64", base64::engine::general_purpose::STANDARD_NO_PAD),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ] {
        for prefix in 0..3usize {
            let mut input = vec![0u8; prefix];
            input.extend_from_slice(m);
            let encoded = engine.encode(&input);
            // The first group mixes prefix bits in; the last may be partial.
            let start = if prefix == 0 { 0 } else { 4 };
            let end = (input.len() / 3) * 4;
            forms.push((
                format!("{name}+{prefix}"),
                encoded.as_bytes()[start..end].to_vec(),
            ));
        }
    }
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Each zip entry's content (local file headers, stored or deflated) found anywhere in `bytes`.
fn zip_entries(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some(offset) = bytes[at..].windows(4).position(|w| w == b"PK\x03\x04") {
        let h = at + offset;
        at = h + 4;
        if h + 30 > bytes.len() {
            break;
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[h + i], bytes[h + i + 1]]) as usize;
        let method = u16_at(8);
        let compressed =
            u32::from_le_bytes([bytes[h + 18], bytes[h + 19], bytes[h + 20], bytes[h + 21]])
                as usize;
        let data = h + 30 + u16_at(26) + u16_at(28);
        if data >= bytes.len() {
            continue;
        }
        // A size of 0 with a data descriptor: the entry runs to its own end marker.
        let end = if compressed == 0 {
            bytes.len()
        } else {
            (data + compressed).min(bytes.len())
        };
        let raw = &bytes[data..end];
        match method {
            0 => entries.push(raw.to_vec()),
            8 => {
                let mut out = Vec::new();
                // Whatever inflates before an error is what the entry held.
                let _ = flate2::read::DeflateDecoder::new(raw).read_to_end(&mut out);
                entries.push(out);
            }
            _ => {}
        }
    }
    entries
}

/// Where `marker` shows in `dump`: `form` or `zip/form`. Empty: nowhere.
fn find_marker(dump: &[u8], marker: &str) -> Vec<String> {
    let forms = forms(marker);
    let mut found: Vec<String> = forms
        .iter()
        .filter(|(_, f)| contains(dump, f))
        .map(|(name, _)| name.clone())
        .collect();
    for entry in zip_entries(dump) {
        for (name, f) in &forms {
            if contains(&entry, f) {
                found.push(format!("zip/{name}"));
            }
        }
    }
    found
}

#[test]
fn the_search_finds_every_form_it_looks_for() {
    let marker = new_marker();
    for (name, form) in forms(&marker) {
        let mut haystack = b"prefix ".to_vec();
        haystack.extend_from_slice(&form);
        assert!(find_marker(&haystack, &marker).contains(&name), "{name}");
    }
    // The marker inside a longer value, base64-encoded whole, at each alignment.
    for prefix in 0..3 {
        let mut value = vec![7u8; prefix];
        value.extend_from_slice(format!("<name>{marker}</name>").as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&value);
        assert!(
            find_marker(encoded.as_bytes(), &marker)
                .iter()
                .any(|f| f.starts_with("base64+")),
            "alignment {prefix}"
        );
    }
    // A deflated zip entry, built by hand: local header, then the raw deflate stream.
    let mut deflated = Vec::new();
    {
        use std::io::Write;
        let mut enc =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
        enc.write_all(
            format!("<gpx><name>{marker}</name></gpx>")
                .repeat(20)
                .as_bytes(),
        )
        .unwrap();
        enc.finish().unwrap();
    }
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&[20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    zip.extend_from_slice(&(deflated.len() as u32).to_le_bytes());
    zip.extend_from_slice(&[0, 0, 0, 0]);
    zip.extend_from_slice(&5u16.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip.extend_from_slice(b"a.gpx");
    zip.extend_from_slice(&deflated);
    assert!(!contains(&zip, marker.as_bytes()), "compressed, not plain");
    assert_eq!(find_marker(&zip, &marker), vec!["zip/plain".to_string()]);
}

async fn wait_for_all(api: &Api, position: i64) {
    let names = api.state.projections.names();
    assert!(
        api.state
            .projections
            .wait_for(&names, position, WAIT)
            .await
            .unwrap(),
        "projections reach {position}"
    );
}

const REDIS: &str = "redis://127.0.0.1:6379";

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379")
}

/// Every key under `prefix`, with its value.
async fn redis_entries(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut conn = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        out.push((k, v.unwrap_or_default()));
    }
    out
}

async fn remove_redis_entries(prefix: &str) {
    let keys: Vec<String> = redis_entries(prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    if !keys.is_empty() {
        let mut conn = redis_conn().await;
        let _: u64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

async fn erasure_leaves_the_marker_nowhere_in_the_database(t: TestStore) {
    // The read cache in Redis (D41), under a prefix of this test's own.
    let prefix = format!("stridelog-test-erasure-{}", Uuid::new_v4().simple());
    let cache = api::cache::ReadCache::redis(REDIS, &prefix).unwrap();
    let api = Api::start_with_cache(t, Some(cache)).await;
    let marker = new_marker();
    let other = register(&api, "other@example.org", "Other runner", "athlete").await;
    let a = register(
        &api,
        &format!("{marker}@example.org"),
        &format!("Runner {marker}"),
        "athlete",
    )
    .await;
    let last = plant_everywhere(&api, &a, &marker).await;
    wait_for_all(&api, last).await;
    // Cached answers: the activity list carries the planted names.
    for path in [
        "/v1/activities",
        "/v1/efficiency/trends",
        "/v1/training-load",
    ] {
        let path = format!("{path}?min_position={last}");
        let r = api.send("GET", &path, Some(&a.access), None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let cached = redis_entries(&prefix).await;
    assert!(
        cached.iter().any(|(k, _)| k.contains(&a.id.to_string())),
        "{cached:?}"
    );
    assert!(
        cached.iter().any(|(_, v)| contains(v, marker.as_bytes())),
        "the marker is in a cached answer before erasure"
    );
    // The other athlete's data, written after, must survive the erasure.
    let kept = ok(
        &api,
        "PUT",
        &format!("/v1/checkins/{DAY}"),
        &other.access,
        json!({"sleep_h": 6.5, "notes": "kept"}),
        200,
    )
    .await;
    wait_for_all(&api, kept["position"].as_i64().unwrap()).await;
    let wrapped_key = wrapped_key(&api, a.id).await;

    // The export, made before the erasure, holds every planted marker: each kind of event
    // whose payload carries it, the imported file, and the profile.
    let (archive, stale_link) = export(&api, &a).await;
    let own = api.t.store.read_athlete(a.id, None).await.unwrap();
    let marked_kinds: std::collections::BTreeSet<String> = own
        .iter()
        .filter(|e| {
            e.payload
                .json()
                .is_some_and(|p| p.to_string().contains(&marker))
        })
        .map(|e| e.event_type.clone())
        .collect();
    assert!(marked_kinds.len() >= 5, "{marked_kinds:?}");
    let entries = unzip(&archive);
    for kind in &marked_kinds {
        for ext in ["json", "csv"] {
            let name = format!("by_kind/{kind}.{ext}");
            let body = entries.get(&name).unwrap_or_else(|| panic!("no {name}"));
            assert!(contains(body, marker.as_bytes()), "{name} lacks the marker");
        }
    }
    let files: Vec<_> = entries.keys().filter(|k| k.ends_with(".gpx")).collect();
    assert_eq!(files.len(), 1, "{:?}", entries.keys());
    assert!(contains(&entries[files[0]], marker.as_bytes()));
    assert!(contains(
        &entries["read_models/profile/profiles.json"],
        marker.as_bytes()
    ));

    let before = dump(&api.t).await;
    let found = find_marker(&before, &marker);
    assert!(
        found.contains(&"plain".to_string()),
        "the planted marker is in the dump before erasure: {found:?}"
    );
    assert!(contains(&before, &wrapped_key), "the key is in the dump");

    let r = api
        .send(
            "DELETE",
            "/v1/me",
            Some(&a.access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["athlete_id"], a.id.to_string());
    assert_eq!(r.body["sessions_ended"], 1);
    assert_eq!(r.body["read_models_purged"], true, "{}", r.body);
    let position = r.position();
    wait_for_all(&api, position).await;

    // The export made before is gone: its link opens nothing, its job row is deleted.
    let r = api.send("GET", &stale_link, None, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM export_jobs WHERE athlete_id = $1")
        .bind(a.id.to_string())
        .fetch_one(&api.state.projections.db().pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);

    let cached = redis_entries(&prefix).await;
    assert!(
        !cached
            .iter()
            .any(|(k, v)| k.contains(&a.id.to_string()) || contains(v, marker.as_bytes())),
        "nothing of the athlete stays in Redis: {:?}",
        cached.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    remove_redis_entries(&prefix).await;

    let after = dump(&api.t).await;
    assert_eq!(
        find_marker(&after, &marker),
        Vec::<String>::new(),
        "the marker survived the erasure"
    );
    assert!(
        !contains(&after, &wrapped_key),
        "the destroyed data key is gone from every copy in the file"
    );

    // Rebuilt from the log, every read model is what the live one is: the erasure is
    // applied the same way, and the erased payloads add nothing.
    for name in api.state.projections.names() {
        assert_eq!(
            api.state.projections.verify(name).await.unwrap(),
            Vec::<String>::new(),
            "{name}"
        );
    }
    // The other athlete keeps everything.
    let r = api
        .send(
            "GET",
            &format!("/v1/checkins/{DAY}"),
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.to_string().contains("\"kept\""), "{}", r.body);
    api.stop().await;
}

/// Requests an export, runs the worker's step, downloads it once (a second use of the link is
/// refused) and answers the archive and a fresh, unused link.
async fn export(api: &Api, a: &Account) -> (Vec<u8>, String) {
    let r = api
        .send("POST", "/v1/me/export", Some(&a.access), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_string();
    let again = api
        .send("POST", "/v1/me/export", Some(&a.access), None)
        .await;
    assert_eq!(again.body["job_id"], r.body["job_id"], "one open job");
    assert!(
        workers::exports::step(&api.state.projections, &api.t.store)
            .await
            .unwrap()
    );
    let path = format!("/v1/me/export/{job}");
    let done = api.send("GET", &path, Some(&a.access), None).await;
    assert_eq!(done.body["state"], "done", "{}", done.body);
    assert_eq!(done.body["progress_done"], done.body["progress_total"]);
    let link = done.body["download_url"].as_str().unwrap().to_string();
    let res = api
        .raw(
            axum::http::Request::get(&link)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers["content-type"], "application/zip");
    // The harness decodes bodies as text, so the bytes are read through the store.
    let blob: String = sqlx::query_scalar("SELECT blob_id FROM export_jobs WHERE job_id = $1")
        .bind(&job)
        .fetch_one(&api.state.projections.db().pool)
        .await
        .unwrap();
    let bytes = api
        .t
        .store
        .get_blob(a.id, blob.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        api.send("GET", &link, None, None).await.status,
        404,
        "a link works once"
    );
    let fresh = api.send("GET", &path, Some(&a.access), None).await;
    let fresh = fresh.body["download_url"].as_str().unwrap().to_string();
    assert_ne!(fresh, link);
    (bytes, fresh)
}

/// Every entry of a zip, by name.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read as _;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        out.insert(f.name().unwrap().to_string(), body);
    }
    out
}

/// The athlete's wrapped data key as stored, before the erasure destroys it.
async fn wrapped_key(api: &Api, athlete: Uuid) -> Vec<u8> {
    let key: Option<Vec<u8>> = match (api.t.store.pg_pool(), api.t.store.sqlite_pool()) {
        (Some(p), _) => {
            sqlx::query_scalar("SELECT wrapped_key FROM athlete_keys WHERE athlete_id = $1")
                .bind(athlete)
                .fetch_one(p)
                .await
                .unwrap()
        }
        (_, Some(p)) => {
            sqlx::query_scalar("SELECT wrapped_key FROM athlete_keys WHERE athlete_id = ?1")
                .bind(athlete.to_string())
                .fetch_one(p)
                .await
                .unwrap()
        }
        _ => unreachable!("one backend"),
    };
    let key = key.expect("a live key");
    if api.t.url.starts_with("postgres") {
        // pg_dump writes bytea as hex.
        key.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes()
    } else {
        key
    }
}

async fn wrong_or_missing_password_changes_nothing(t: TestStore) {
    let api = Api::start(t).await;
    let a = register(&api, "keep@example.org", "Keep", "athlete").await;
    let before = api.t.store.read_athlete(a.id, None).await.unwrap().len();
    let r = api
        .send(
            "DELETE",
            "/v1/me",
            Some(&a.access),
            Some(json!({"password": "not the password"})),
        )
        .await;
    assert_problem(&r, 401);
    assert!(
        r.body["type"].as_str().unwrap().ends_with("wrong-password"),
        "{}",
        r.body
    );
    for body in [json!({}), json!({"password": ""})] {
        let r = api
            .send("DELETE", "/v1/me", Some(&a.access), Some(body.clone()))
            .await;
        assert_problem(&r, 422);
    }
    let r = api
        .send(
            "DELETE",
            "/v1/me",
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_problem(&r, 401);
    // Nothing was appended, and the account works as before.
    assert_eq!(
        api.t.store.read_athlete(a.id, None).await.unwrap().len(),
        before
    );
    let r = api.send("GET", "/v1/me", Some(&a.access), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["display_name"], "Keep");
    api.stop().await;
}

async fn after_erasure_tokens_login_and_grants_end(t: TestStore) {
    let api = Api::start(t).await;
    // A is a coach with data of their own: C coaches A, and A coaches B.
    let a = register(&api, "erase-me@example.org", "Erase Me", "coach").await;
    let b = register(&api, "b@example.org", "Bea", "athlete").await;
    let c = register(&api, "c@example.org", "Cleo", "coach").await;
    let second = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    ok(
        &api,
        "POST",
        &format!("/v1/me/coaches/{}", c.id),
        &a.access,
        json!(null),
        200,
    )
    .await;
    let granted = ok(
        &api,
        "POST",
        &format!("/v1/me/coaches/{}", a.id),
        &b.access,
        json!(null),
        200,
    )
    .await;
    wait_for_all(&api, granted["position"].as_i64().unwrap()).await;
    let roster = api
        .send("GET", "/v1/coach/athletes", Some(&a.access), None)
        .await;
    assert_eq!(roster.body.as_array().unwrap().len(), 1, "{}", roster.body);

    let r = api
        .send(
            "DELETE",
            "/v1/me",
            Some(&a.access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["sessions_ended"], 2, "both logins end");
    assert_eq!(r.body["coach_grants_revoked"], 1);
    let position = r.position();
    wait_for_all(&api, position).await;

    // Both sessions' tokens stop working; the password no longer logs in.
    for token in [&a.access, second.body["access_token"].as_str().unwrap()] {
        assert_problem(&api.send("GET", "/v1/me", Some(token), None).await, 401);
    }
    let r = api
        .send(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    assert_problem(&r, 401);
    let r = api
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": PASSWORD})),
        )
        .await;
    assert_problem(&r, 401);

    // B's grant to A was revoked in B's own stream, by the system, after the erasure.
    let b_events = api.t.store.read_athlete(b.id, None).await.unwrap();
    let revoked = b_events.last().unwrap();
    assert_eq!(revoked.event_type, "CoachAccessRevoked");
    assert_eq!(
        revoked.payload.json().unwrap()["coach_id"],
        a.id.to_string()
    );
    assert_eq!(revoked.metadata.actor, store::Actor::system());
    assert!(revoked.position > position);
    let r = api
        .send("GET", "/v1/me/coaches", Some(&b.access), None)
        .await;
    assert_eq!(r.body, json!([]), "B's coaches");
    // A's grant to C died with A's stream: C's roster forgets A.
    let r = api
        .send("GET", "/v1/coach/athletes", Some(&c.access), None)
        .await;
    assert_eq!(r.body, json!([]), "C's roster");
    let r = api
        .send(
            "GET",
            &format!("/v1/coach/athletes/{}/profile", a.id),
            Some(&c.access),
            None,
        )
        .await;
    assert_problem(&r, 404);

    // Identity keeps one record of the erasure, without email or client.
    let rows: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT kind, client, detail FROM security_log WHERE account_id = $1")
            .bind(a.id.to_string())
            .fetch_all(&api.state.projections.db().pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![(
            "account_erased".to_string(),
            None,
            Some("athlete_request".to_string())
        )]
    );
    for table in ["auth_accounts", "auth_sessions", "auth_known_clients"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(count(*) AS BIGINT) FROM {table} WHERE account_id = $1"
        )))
        .bind(a.id.to_string())
        .fetch_one(&api.state.projections.db().pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }

    // Erasing again is refused clearly, whoever asks.
    let eraser = api::erasure::Eraser {
        commands: &api.state.commands,
        projections: &api.state.projections,
        identity: &api.state.auth.db,
    };
    let again = eraser
        .erase(&api::erasure::EraseRequest {
            athlete_id: a.id,
            actor: store::Actor::system(),
            requested_by: Uuid::nil(),
            reason: domain::athlete::ErasureReason::AdminAction,
            wait: Duration::from_secs(1),
        })
        .await;
    assert!(
        matches!(again, Err(api::erasure::EraseError::AlreadyErased)),
        "{again:?}"
    );
    let unknown = eraser
        .erase(&api::erasure::EraseRequest {
            athlete_id: Uuid::now_v7(),
            actor: store::Actor::system(),
            requested_by: Uuid::nil(),
            reason: domain::athlete::ErasureReason::AdminAction,
            wait: Duration::from_secs(1),
        })
        .await;
    assert!(
        matches!(unknown, Err(api::erasure::EraseError::NotFound)),
        "{unknown:?}"
    );
    assert_eq!(
        api.t
            .store
            .read_athlete(a.id, None)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event_type == "AthleteErased")
            .count(),
        1
    );

    // The email is free again: a new account, with a new id and nothing of the old one.
    let reborn = register(&api, "erase-me@example.org", "Someone New", "athlete").await;
    assert_ne!(reborn.id, a.id);
    let r = api.send("GET", "/v1/me", Some(&reborn.access), None).await;
    assert_eq!(r.body["display_name"], "Someone New");
    api.stop().await;
}

store::on_both_backends!(
    erasure_leaves_the_marker_nowhere_in_the_database,
    wrong_or_missing_password_changes_nothing,
    after_erasure_tokens_login_and_grants_end,
);
