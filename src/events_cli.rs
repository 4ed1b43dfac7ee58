//! `stridelog events`: operators' view of the log.

use anyhow::Context;
use futures::StreamExt;
use store::{AsOf, EventLog, EventStore, LogCursor, RecordedEvent, StreamId};
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Follow the global log live (Ctrl-C to stop).
    Tail {
        /// Start after this log position instead of at the current end (0: from the beginning).
        #[arg(long)]
        after: Option<i64>,
        /// Print this many events, then exit.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One stream, e.g. `activity/0193…`, optionally as it was at a position or time.
    Stream {
        stream: StreamId,
        /// A log position (e.g. 1200) or an RFC 3339 time (e.g. 2026-11-27T08:00:00Z).
        #[arg(long)]
        as_of: Option<AsOf>,
        #[arg(long)]
        json: bool,
    },
    /// Every event of one athlete, across their streams (audit, export).
    Athlete {
        athlete_id: Uuid,
        #[arg(long)]
        as_of: Option<AsOf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(store: EventStore, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Tail { after, limit, json } => tail(store, after, limit, json).await,
        EventsCommand::Stream {
            stream,
            as_of,
            json,
        } => print_all(&store.read_stream(&stream, 0, as_of).await?, json),
        EventsCommand::Athlete {
            athlete_id,
            as_of,
            json,
        } => print_all(&store.read_athlete(athlete_id, as_of).await?, json),
    }
}

async fn tail(
    store: EventStore,
    after: Option<i64>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let from = match after {
        None => store.head().await?,
        Some(0) => LogCursor::START,
        Some(p) => store
            .cursor_of(p)
            .await?
            .with_context(|| format!("no event at log position {p}"))?,
    };
    // On stderr, so a script can wait for it before appending; stdout carries events only.
    eprintln!("following the log after position {}", from.position);
    let mut events = Box::pin(store::follow(store, from, 500));
    let mut printed = 0;
    loop {
        if limit.is_some_and(|l| printed >= l) {
            return Ok(());
        }
        tokio::select! {
            next = events.next() => match next {
                Some(Ok(event)) => {
                    print_one(&event, json)?;
                    printed += 1;
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn print_all(events: &[RecordedEvent], json: bool) -> anyhow::Result<()> {
    for e in events {
        print_one(e, json)?;
    }
    if !json {
        eprintln!("{} events", events.len());
    }
    Ok(())
}

fn print_one(e: &RecordedEvent, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, e)?;
        writeln!(out)?;
    } else {
        let actor = match e.metadata.actor.user_id {
            Some(id) => format!("{}:{id}", e.metadata.actor.role),
            None => e.metadata.actor.role.clone(),
        };
        let erased = if e.payload.json().is_none() {
            " [erased]"
        } else {
            ""
        };
        writeln!(
            out,
            "{:>8}  {}  {} v{}  {} v{}  by {actor}{erased}",
            e.position,
            e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            e.stream,
            e.stream_version,
            e.event_type,
            e.event_version,
        )?;
    }
    out.flush()?;
    Ok(())
}
