//! The real activity files in testdata/activities (see its NOTICE.md), through the parser and
//! the efficiency specification, against the figures the efficiency issue gives for them.

use std::path::PathBuf;

use domain::activity::Sport;
use domain::efficiency::analyze;
use ingest::{Format, ImportError, parse};

fn file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/activities")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn within(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= rel * expected.abs()
}

#[test]
fn the_fit_run_gives_the_reference_efficiency() {
    let p = parse(Format::Fit, &file("run-2013-02-06.fit")).unwrap();
    assert_eq!(p.samples.len(), 590, "NOTICE.md: 590 records");
    assert_eq!(p.sport, Sport::Run);
    assert_eq!(p.start_time.to_rfc3339(), "2013-02-06T12:11:14+00:00");
    let e = analyze(Sport::Run, &p.samples);
    let ef = e.efficiency_factor.unwrap();
    let raw = e.efficiency_factor_raw.unwrap();
    let dec = e.decoupling_pct.unwrap();
    // The issue allows 1 % (0.5 points for decoupling); the specification reproduces the
    // reference to its printed digits, so this holds it there.
    assert!(within(ef, 0.9688, 1e-4), "EF {ef}");
    assert!(within(raw, 0.8886, 1e-4), "raw EF {raw}");
    assert!((dec - 28.9).abs() <= 0.05, "decoupling {dec}");
    assert_eq!(e.moving_time_s, 2110.0);
    assert_eq!(e.analyzed_time_s, 1749.0);
    assert_eq!(
        e.decoupling_badge,
        Some(domain::efficiency::DecouplingBadge::Red)
    );
    assert_eq!(e.gap_model, "minetti2002");
}

#[test]
fn the_gpx_of_the_same_run_agrees_with_the_fit() {
    let fit = analyze(
        Sport::Run,
        &parse(Format::Fit, &file("run-2013-02-06.fit"))
            .unwrap()
            .samples,
    );
    let gpx = parse(Format::Gpx, &file("run-2013-02-06.gpx")).unwrap();
    let e = analyze(Sport::Run, &gpx.samples);
    let (a, b) = (e.efficiency_factor.unwrap(), fit.efficiency_factor.unwrap());
    assert!(within(a, b, 0.02), "GPX EF {a} vs FIT {b}");
    let no_hr = parse(Format::Gpx, &file("run-2013-02-06-no-hr.gpx")).unwrap();
    let e = analyze(Sport::Run, &no_hr.samples);
    assert_eq!(e.efficiency_factor, None);
    assert!(e.reason.unwrap().contains("with heart rate"));
}

#[test]
fn a_one_minute_run_has_no_ef_and_says_why() {
    let p = parse(Format::Fit, &file("run-short-fenix5.fit")).unwrap();
    let e = analyze(p.sport, &p.samples);
    assert_eq!(e.efficiency_factor, None);
    let reason = e.reason.unwrap();
    assert!(reason.contains("at least 300 s"), "{reason}");
}

#[test]
fn broken_files_are_refused_with_a_reason() {
    for (name, format) in [
        ("bad/unexpected-eof.fit", Format::Fit),
        ("bad/corrupt-header.fit", Format::Fit),
        ("bad/truncated.gpx", Format::Gpx),
        ("bad/not-xml.gpx", Format::Gpx),
    ] {
        let err = parse(format, &file(name)).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ImportError::Fit(_) | ImportError::Xml(..)),
            "{name}: {text}"
        );
        assert!(text.len() > 20, "{name}: {text}");
    }
}
