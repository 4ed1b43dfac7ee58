//! Typed events for projections: a stored event, upcast to its current version and
//! deserialised into the aggregate's event enum.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use domain::activity::ActivityEvent;
use domain::athlete::AthleteEvent;
use domain::journal::JournalEvent;
use store::{Payload, RecordedEvent};

/// What a projection gets for one log entry.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Athlete(AthleteEvent),
    Activity(ActivityEvent),
    Journal(JournalEvent),
    /// The payload was shredded with its athlete: only the metadata is known.
    Erased,
    /// A stream type this build does not know (written by a newer version, or a test).
    Foreign,
}

pub struct Decoder {
    upcasters: Vec<Box<dyn EventUpcaster>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            upcasters: domain::upcasters(),
        }
    }
}

impl Decoder {
    pub fn decode(&self, e: &RecordedEvent) -> Result<DomainEvent, serde_json::Error> {
        let Payload::Json(payload) = &e.payload else {
            return Ok(DomainEvent::Erased);
        };
        let upcast = self
            .upcasters
            .iter()
            .any(|u| u.can_upcast(&e.event_type, &e.event_version));
        if !upcast {
            // The common case, read in place: cloning every payload tree cost a rebuild about
            // a tenth of its client time.
            return typed(&e.stream.stream_type, payload);
        }
        let mut serialized = SerializedEvent::new(
            e.stream.stream_id.clone(),
            e.stream_version as usize,
            e.stream.stream_type.clone(),
            e.event_type.clone(),
            e.event_version.clone(),
            payload.clone(),
            serde_json::Value::Null,
        );
        for upcaster in &self.upcasters {
            if upcaster.can_upcast(&serialized.event_type, &serialized.event_version) {
                serialized = upcaster.upcast(serialized);
            }
        }
        typed(&e.stream.stream_type, &serialized.payload)
    }
}

/// The payload as its stream type's event enum.
fn typed(stream_type: &str, payload: &serde_json::Value) -> Result<DomainEvent, serde_json::Error> {
    use serde::Deserialize;
    Ok(match stream_type {
        "athlete" => DomainEvent::Athlete(AthleteEvent::deserialize(payload)?),
        "activity" => DomainEvent::Activity(ActivityEvent::deserialize(payload)?),
        "journal" => DomainEvent::Journal(JournalEvent::deserialize(payload)?),
        _ => DomainEvent::Foreign,
    })
}
