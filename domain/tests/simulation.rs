//! The correlation engine on generated athletes (domain::simulate), written and read back in
//! the CLI's input format: (a) with no real effect, at most 12 % of athletes get any finding;
//! (b) with one planted effect (r about 0.5 at lag 1) it is found at lag 1 with the right
//! category for at least 75 % of athletes over 365 days. The ablations show that the
//! multiple-testing control and the removal of known structure are both needed for (a).

use domain::correlation::{Analysis, Category, Dataset, Options, analyze};
use domain::simulate::{Planted, Spec, athlete};

const ATHLETES: usize = 200;

fn population(spec: &Spec, options: &Options) -> Vec<Analysis> {
    (0..ATHLETES)
        .map(|i| {
            let data = athlete(spec, i);
            // Through the CLI's format and back.
            let json = serde_json::to_string(&data).unwrap();
            let data: Dataset = serde_json::from_str(&json).unwrap();
            analyze(&data, options)
        })
        .collect()
}

fn with_any_finding(results: &[Analysis]) -> f64 {
    results.iter().filter(|a| !a.findings.is_empty()).count() as f64 / results.len() as f64
}

fn found_planted(results: &[Analysis], planted: &Planted) -> f64 {
    results
        .iter()
        .filter(|a| {
            a.findings.iter().any(|f| {
                f.input == planted.input
                    && f.outcome == "efficiency_factor"
                    && f.lag_days == planted.lag_days
                    && f.category == Category::WhatWorks
            })
        })
        .count() as f64
        / results.len() as f64
}

#[test]
fn no_effect_rarely_gives_a_finding() {
    let spec = Spec {
        seed: 20_261_128,
        days: 365,
        planted: None,
    };
    let results = population(&spec, &Options::default());
    let rate = with_any_finding(&results);
    let tests = results.iter().map(|a| a.tests_run).sum::<usize>() / ATHLETES;
    eprintln!(
        "null: {:.1} % of athletes with a finding ({tests} tests each)",
        rate * 100.0
    );
    assert!(rate <= 0.12, "{rate}");

    let uncorrected = with_any_finding(&population(
        &spec,
        &Options {
            multiple_testing: false,
            ..Options::default()
        },
    ));
    eprintln!(
        "null without multiple-testing control: {:.1} %",
        uncorrected * 100.0
    );
    assert!(uncorrected > 0.12, "{uncorrected}");
    let unadjusted = with_any_finding(&population(
        &spec,
        &Options {
            remove_structure: false,
            ..Options::default()
        },
    ));
    eprintln!(
        "null without removing known structure: {:.1} %",
        unadjusted * 100.0
    );
    assert!(unadjusted > 0.12, "{unadjusted}");
}

#[test]
fn a_planted_effect_is_found_at_its_lag() {
    let planted = Planted {
        input: "sleep_hours",
        lag_days: 1,
        r: 0.5,
    };
    let year = Spec {
        seed: 77,
        days: 365,
        planted: Some(planted),
    };
    let results = population(&year, &Options::default());
    let found = found_planted(&results, &planted);
    let half = Spec { days: 180, ..year };
    let found_half = found_planted(&population(&half, &Options::default()), &planted);
    eprintln!(
        "planted r 0.5 at lag 1: found in {:.1} % at 365 days, {:.1} % at 180 days",
        found * 100.0,
        found_half * 100.0
    );
    assert!(found >= 0.75, "{found}");
}
