//! The event catalogue as data: every event type, its current schema version, the aggregate whose
//! stream carries it, and whether its payload is personal data (and therefore encrypted with the
//! athlete's data key and unreadable after erasure). `docs/events.md` documents each entry; a test
//! keeps the two in step.

use cqrs_es::DomainEvent;

/// One row of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchema {
    pub aggregate_type: &'static str,
    pub event_type: &'static str,
    pub version: &'static str,
    pub personal: bool,
}

/// What the store needs to know about an event beyond cqrs-es's `DomainEvent`.
pub trait CataloguedEvent: DomainEvent {
    /// `false` only for events that must stay readable after the athlete's key is destroyed
    /// (the erasure record itself, administrative markers that carry no personal data).
    fn is_personal(&self) -> bool {
        true
    }

    /// `true` for the GDPR erasure record: the store appends it and destroys the athlete's data
    /// key in one transaction.
    fn is_erasure(&self) -> bool {
        false
    }
}

/// Every event type stridelog appends.
pub fn all() -> Vec<EventSchema> {
    [
        crate::athlete::CATALOGUE,
        crate::activity::CATALOGUE,
        crate::journal::CATALOGUE,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const DOCS: &str = include_str!("../../docs/events.md");

    #[test]
    fn event_types_are_unique() {
        let all = all();
        let names: HashSet<_> = all.iter().map(|e| e.event_type).collect();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn every_event_is_documented_with_its_version() {
        for e in all() {
            let heading = format!("### {} (v{})", e.event_type, e.version);
            assert!(
                DOCS.contains(&heading),
                "docs/events.md lacks the heading `{heading}`"
            );
        }
    }
}
