//! `stridelog bench analyze`: parse + efficiency analysis of a one-hour 1 Hz run, beside
//! parsing the same file alone, in the same run.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be positive");
    }
    measure(args.rounds, args.json)
}

/// A one-hour run at 1 Hz as GPX 1.1, with elevation and heart rate in Garmin's extension:
/// rolling hills and a slow heart-rate drift, deterministic.
pub fn hour_run_gpx() -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="stridelog bench" xmlns="http://www.topografix.com/GPX/1/1"
 xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1"><trk><type>running</type><trkseg>
"#,
    );
    let start = chrono::DateTime::parse_from_rfc3339("2026-05-01T06:00:00Z").unwrap();
    let (mut lat, lon) = (45.0_f64, 7.0_f64);
    for i in 0..3600 {
        let t = f64::from(i);
        let speed = 3.0 + 0.3 * (t / 300.0).sin();
        lat += speed / 111_195.0;
        let ele = 200.0 + 15.0 * (t / 400.0).sin();
        let hr = 130.0 + 20.0 * (t / 3600.0) + 3.0 * (t / 50.0).sin();
        let at = start + chrono::Duration::seconds(i64::from(i));
        let _ = writeln!(
            s,
            r#"<trkpt lat="{lat:.7}" lon="{lon:.7}"><ele>{ele:.1}</ele><time>{}</time><extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>{hr:.0}</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions></trkpt>"#,
            at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    s.push_str("</trkseg></trk></gpx>\n");
    s
}

fn measure(rounds: usize, json: bool) -> anyhow::Result<()> {
    let file = hour_run_gpx();
    let bytes = file.as_bytes();
    let samples = ingest::parse(ingest::Format::Gpx, bytes)?.samples.len();
    // Interleaved, so both see the same machine state.
    let (mut parse_s, mut both_s) = (0.0, 0.0);
    let mut check = 0.0;
    for _ in 0..rounds {
        let t = Instant::now();
        let p = ingest::parse(ingest::Format::Gpx, bytes)?;
        parse_s += t.elapsed().as_secs_f64();
        check += p.samples.len() as f64;

        let t = Instant::now();
        let p = ingest::parse(ingest::Format::Gpx, bytes)?;
        let e = domain::efficiency::analyze(p.sport, &p.samples);
        both_s += t.elapsed().as_secs_f64();
        check += e.efficiency_factor.unwrap_or_default();
    }
    let total = (samples * rounds) as f64;
    let line = json!({
        "bench": "analyze",
        "samples": samples,
        "rounds": rounds,
        "samples_per_s": (total / both_s).round(),
        "baseline_samples_per_s": (total / parse_s).round(),
        "ratio": ((parse_s / both_s) * 1000.0).round() / 1000.0,
    });
    if check.is_nan() {
        anyhow::bail!("no result");
    }
    if json {
        println!("{line}");
    } else {
        println!(
            "parse + analysis {} samples/s, parse alone {} samples/s, ratio {}",
            line["samples_per_s"], line["baseline_samples_per_s"], line["ratio"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_benchmark_run_is_an_hour_of_analysable_running() {
        let p = ingest::parse(ingest::Format::Gpx, super::hour_run_gpx().as_bytes()).unwrap();
        assert_eq!(p.samples.len(), 3600);
        let e = domain::efficiency::analyze(p.sport, &p.samples);
        assert_eq!(e.moving_time_s, 3599.0);
        assert_eq!(e.analyzed_time_s, 3599.0 - 360.0);
        // About 3 m/s at about 142 bpm: EF near 180 / 142.
        let ef = e.efficiency_factor.unwrap();
        assert!((1.2..1.35).contains(&ef), "{ef}");
        assert!(e.decoupling_pct.is_some() && e.reason.is_none());
    }
}
