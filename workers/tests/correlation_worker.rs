//! The correlation worker shared between processes: two workers stepping at once over the same
//! athletes compute each snapshot exactly once, at the position of the athlete's last input.

use std::time::Duration;

use chrono::Utc;
use devtools::demo::{self, DemoConfig};
use projections::correlations::snapshot;
use projections::{Engine, ReadDb};
use store::testing::TestStore;
use workers::correlations::step;

async fn two_workers_share_the_athletes(t: TestStore) {
    let config = DemoConfig {
        seed: 3,
        athletes: 6,
        days: 60,
        end_date: Utc::now().date_naive() - chrono::Duration::days(1),
    };
    demo::seed_direct(&t.store, &config, 3, |_, _| {})
        .await
        .unwrap();
    let engine = || async {
        Engine::new(
            t.store.clone(),
            ReadDb::connect(&t.url).await.unwrap(),
            projections::all(),
        )
    };
    let (first, second) = (engine().await, engine().await);
    for p in projections::all() {
        first
            .catch_up(p.as_ref(), Duration::from_secs(60))
            .await
            .unwrap();
    }
    // Each step takes a few athletes; together they must cover all six, once.
    let (mut a, mut b) = (0, 0);
    loop {
        let (sa, sb) = tokio::join!(step(&first, "worker-a", 2), step(&second, "worker-b", 2));
        let (sa, sb) = (sa.unwrap(), sb.unwrap());
        assert_eq!(sa.failed + sb.failed, 0);
        if sa.computed + sb.computed == 0 {
            break;
        }
        a += sa.computed;
        b += sb.computed;
    }
    assert_eq!(a + b, 6, "worker a {a}, worker b {b}");
    let pool = &first.db().pool;
    for i in 0..6 {
        let athlete = demo::athlete_id(&config, i);
        let s = snapshot(pool, athlete).await.unwrap().expect("a snapshot");
        let last = projections::correlations::changed_at(&first, athlete)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.position, last);
        assert_eq!(s.analyses.len(), 5);
    }
    // Nothing is due any more: a third pass computes nothing.
    assert_eq!(step(&second, "worker-b", 10).await.unwrap().computed, 0);
}

store::on_both_backends!(two_workers_share_the_athletes);
