//! Property: read models built incrementally (catching up at arbitrary points while commands
//! arrive) equal a full rebuild from the log, for random command sequences.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use commands::{CommandBus, CommandContext};
use devtools::demo::{self, DemoConfig, PlannedCommand};
use domain::DomainServices;
use domain::activity::{Activity, ActivityCommand, DeleteActivity};
use domain::athlete::{Athlete, AthleteCommand, ErasureReason};
use projections::{Engine, ReadDb};
use proptest::prelude::*;
use store::testing::TestStore;

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    /// Catch up after the commands whose index has this bit set in the mask (mod 64).
    catch_up_mask: u64,
    /// Delete the n-th recorded activity (if there are that many).
    delete_activity: Option<usize>,
    /// Erase the first athlete at the end.
    erase_first: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(0usize..20),
        any::<bool>(),
    )
        .prop_map(|(seed, catch_up_mask, delete_activity, erase_first)| Case {
            seed,
            catch_up_mask,
            delete_activity,
            erase_first,
        })
}

async fn check(case: Case) {
    let t = TestStore::sqlite().await;
    let bus = CommandBus::new(
        t.store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let engine = Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        projections::all(),
    )
    .with_batch(7);
    let all = projections::all();
    let config = DemoConfig {
        seed: case.seed,
        athletes: 2,
        days: 10,
        end_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    };
    let plan = demo::plan(&config);
    let mut activities = Vec::new();
    for (i, command) in plan.into_iter().enumerate() {
        if let PlannedCommand::Activity {
            athlete_id,
            activity_id,
            command: ActivityCommand::RecordActivity(_),
        } = &command
        {
            activities.push((*athlete_id, *activity_id));
        }
        demo::execute(&bus, command).await.unwrap();
        if case.catch_up_mask & (1 << (i % 64)) != 0 {
            for p in &all {
                engine.step(p.as_ref()).await.unwrap();
            }
        }
    }
    if let Some((athlete, activity)) = case
        .delete_activity
        .and_then(|n| activities.get(n).copied())
    {
        bus.execute::<Activity>(
            &CommandContext::athlete(athlete),
            &activity.to_string(),
            ActivityCommand::DeleteActivity(DeleteActivity {
                athlete_id: athlete,
            }),
        )
        .await
        .unwrap();
    }
    if case.erase_first {
        let first = demo::athlete_id(&config, 0);
        bus.execute::<Athlete>(
            &CommandContext::athlete(first),
            &first.to_string(),
            AthleteCommand::Erase {
                requested_by: first,
                reason: ErasureReason::AthleteRequest,
            },
        )
        .await
        .unwrap();
    }
    for p in &all {
        engine
            .catch_up(p.as_ref(), Duration::from_secs(60))
            .await
            .unwrap();
        let diffs = engine.verify(p.name()).await.unwrap();
        assert!(
            diffs.is_empty(),
            "{} differs from a rebuild for {case:?}: {diffs:#?}",
            p.name()
        );
        let skipped = engine.skipped(p.name()).await.unwrap();
        assert!(
            skipped.is_empty(),
            "{} skipped events: {skipped:?}",
            p.name()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn incremental_read_models_equal_a_rebuild(case in cases()) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(check(case));
    }
}
