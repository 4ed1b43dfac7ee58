//! stridelog's domain: the events every athlete action produces, the aggregates that decide them,
//! the commands they answer and the validation those commands pass through.
//!
//! This crate is pure: no I/O, no clock reads, no randomness. Time and ids arrive through
//! [`services::DomainServices`] or inside the command, so every decision is reproducible in a test.

pub mod activity;
pub mod athlete;
pub mod catalogue;
pub mod correlation;
pub mod de;
pub mod efficiency;
pub mod error;
pub mod journal;
pub mod load;
pub mod patch;
pub mod services;
pub mod simulate;
pub mod stats;
pub mod time;
pub mod trends;
pub mod units;
pub mod validation;

pub use catalogue::{CataloguedEvent, EventSchema};
pub use error::DomainError;
pub use services::{Clock, DomainServices, FixedClock};

/// Every upcaster, for every reader of stored events (command loads, projections, the relay).
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    activity::upcasters()
}
