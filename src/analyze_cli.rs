//! `stridelog analyze activity <file>`: the efficiency metrics of one activity file, offline,
//! through exactly the parser and the specification the import path uses.

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AnalyzeCommand {
    /// Parse a FIT, GPX or TCX file and print its efficiency metrics (no database).
    Activity {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: AnalyzeCommand) -> anyhow::Result<()> {
    let AnalyzeCommand::Activity { file, json } = cmd;
    let name = file.display().to_string();
    let format = ingest::Format::of_name(&name)
        .with_context(|| format!("{name}: unsupported file type (expected .fit, .gpx or .tcx)"))?;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
    let parsed = ingest::parse(format, &bytes).with_context(|| name.clone())?;
    let e = domain::efficiency::analyze(parsed.sport, &parsed.samples);
    if json {
        let mut v = serde_json::to_value(&e)?;
        v["start_time"] = serde_json::json!(parsed.start_time);
        v["samples"] = serde_json::json!(parsed.samples.len());
        println!("{v}");
    } else {
        let show = |x: Option<f64>, digits: usize| {
            x.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
        };
        println!("{name}: {:?}, started {}", e.sport, parsed.start_time);
        println!(
            "  distance {:.0} m, moving {:.0} s, analysed {:.0} s, average HR {}",
            e.distance_m,
            e.moving_time_s,
            e.analyzed_time_s,
            show(e.avg_hr, 1)
        );
        println!(
            "  EF {} m/min/bpm (raw {}), decoupling {} % {}",
            show(e.efficiency_factor, 4),
            show(e.efficiency_factor_raw, 4),
            show(e.decoupling_pct, 1),
            e.decoupling_badge
                .map(|b| format!("({b:?})").to_lowercase())
                .unwrap_or_default()
        );
        if let Some(reason) = &e.reason {
            println!("  {reason}");
        }
    }
    Ok(())
}
