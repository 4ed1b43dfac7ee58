//! Command handling: load the aggregate, let it decide (validation and the domain rules live in
//! `domain`), append what it decided with the caller's metadata, and answer with where the
//! events landed in the log.
//!
//! We use cqrs-es's `Aggregate`, `EventSink` and upcasters, but not `CqrsFramework::execute`:
//! it returns `()`, and callers need the append's log position (read-your-writes) and the
//! stored outcome of an idempotent retry. `store::repository` still lets `CqrsFramework` run
//! on the same store; docs/decisions.md has the reasoning.

mod executor;
pub mod import;
pub mod scope;

pub use executor::{CommandBus, CommandContext, CommandError, Executed, SystemClock, new_events};
