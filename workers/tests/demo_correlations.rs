//! The athlete `stridelog demo` shows, written through the command path and analysed from the
//! read models exactly as the correlation worker does: a year serves findings, among them the
//! two planted effects (sleep on the night before last, the day's carbohydrate). The engine is
//! not tuned to this athlete; domain/tests/simulation.rs is its calibration.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use commands::CommandBus;
use devtools::demo::{self, DemoConfig};
use domain::DomainServices;
use domain::correlation::{Analysis, Category, Options, analyze};
use projections::{Engine, ReadDb};
use store::testing::TestStore;

/// A fixed last day, so the weekdays, and with them the whole plan, are the same on every run.
fn config() -> DemoConfig {
    DemoConfig {
        seed: demo::SHOWCASE_SEED,
        athletes: 1,
        days: 365,
        end_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    }
}

fn describe(analysis: &Analysis) -> String {
    analysis
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} -> {} lag {} {:?} r {:.2} q {:.1e} n {} n_eff {:.0} {:?}",
                f.input, f.outcome, f.lag_days, f.method, f.r, f.q, f.n, f.n_eff, f.category
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn the_demo_year_shows_the_planted_effects(t: TestStore) {
    let config = config();
    let bus = CommandBus::new(
        t.store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let summary = demo::run_showcase(&bus, &config, |_| {}).await.unwrap();
    assert!(
        summary.counts.nutrition_entries > 365,
        "{:?}",
        summary.counts
    );
    assert!(summary.counts.check_ins > 300, "{:?}", summary.counts);
    let athlete = demo::athlete_id(&config, 0);

    let engine = Engine::new(
        t.store.clone(),
        ReadDb::connect(&t.url).await.unwrap(),
        projections::all(),
    );
    for p in projections::all() {
        engine
            .catch_up(p.as_ref(), Duration::from_secs(120))
            .await
            .unwrap();
    }
    // The worker's 365-day window on the last day of data: the same series and the same
    // analysis `workers::correlations::compute` stores for `/v1/correlations?days=365`.
    let data =
        workers::correlations::dataset(&engine, athlete, config.first_date(), config.end_date)
            .await
            .unwrap();
    let year = analyze(&data, &Options::default());
    let found = describe(&year);
    eprintln!("{} tests, findings:\n{found}", year.tests_run);

    assert!(year.tests_run > 500, "{}", year.tests_run);
    let single: Vec<_> = year
        .findings
        .iter()
        .filter(|f| !f.input.contains('+'))
        .collect();
    assert!(single.len() >= 2, "{found}");
    let planted = |input: &str, lag_days: u32| {
        single
            .iter()
            .find(|f| f.input == input && f.outcome == "efficiency_factor")
            .filter(|f| f.lag_days == lag_days && f.category == Category::WhatWorks)
            .unwrap_or_else(|| panic!("{input} at lag {lag_days} in what works:\n{found}"))
    };
    for f in [planted("sleep_hours", 1), planted("carbohydrate_g", 0)] {
        // Planted near r = 0.5 after the engine's adjustments; comfortably past the floors.
        assert!((0.3..0.75).contains(&f.r), "{found}");
        assert!(f.q <= 0.05 && f.n >= 100 && f.n_eff >= 100.0, "{found}");
    }
}

store::on_both_backends!(the_demo_year_shows_the_planted_effects);
