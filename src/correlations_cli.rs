//! `stridelog correlations analyze --input <file>`: the correlation engine on a file, offline,
//! exactly as the worker runs it on an athlete's read models.

use anyhow::Context;
use clap::Subcommand;
use domain::correlation::{Dataset, Options, analyze};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum CorrelationsCommand {
    /// Analyse a JSON file of days and activities (docs/correlations.md, "Input format").
    Analyze {
        /// The input file; `-` reads standard input.
        #[arg(long)]
        input: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: CorrelationsCommand) -> anyhow::Result<()> {
    let CorrelationsCommand::Analyze { input, json } = cmd;
    let name = input.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(&input).with_context(|| format!("cannot read {name}"))?
    };
    let data: Dataset = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{name}: not the input format (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })?;
    if data.activities.is_empty() {
        anyhow::bail!("{name}: no activities, so there is no outcome to analyse");
    }
    let analysis = analyze(&data, &Options::default());
    if json {
        println!("{}", serde_json::to_string(&analysis)?);
        return Ok(());
    }
    println!(
        "{} tests over {} days and {} activities",
        analysis.tests_run,
        data.days.len(),
        data.activities.len()
    );
    if analysis.findings.is_empty() {
        println!("no findings (q <= 0.10, at least 20 pairs, interval excluding zero)");
    }
    for f in &analysis.findings {
        println!(
            "{}",
            json!({"category": f.category, "text": f.text, "r": f.r, "q": f.q})
        );
    }
    for i in &analysis.insufficient {
        println!("not enough data: {}", i.text);
    }
    Ok(())
}
