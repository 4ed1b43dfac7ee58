//! Read models and the engine that keeps them: every read in stridelog comes from a projection
//! of the event log. `docs/projections.md` explains how to add one.

pub mod activities;
pub mod admin_metrics;
pub mod audit;
pub mod correlations;
pub mod cpu;
pub mod decode;
pub mod efficiency;
pub mod engine;
pub mod fault;
pub mod journal;
pub mod profile;
pub mod replay;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use decode::{Decoder, DomainEvent};
pub use engine::{
    BUILD_BATCH, Engine, Progress, Projected, Projection, ReadDb, Resolution, Skipped, Status,
    Tables,
};

/// Every projection this build maintains.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(audit::AuditLog),
        std::sync::Arc::new(profile::ProfileProjection),
        std::sync::Arc::new(journal::JournalProjection),
        std::sync::Arc::new(activities::ActivitiesProjection),
        std::sync::Arc::new(admin_metrics::AdminMetricsProjection),
        std::sync::Arc::new(efficiency::EfficiencyProjection::default()),
        std::sync::Arc::new(correlations::CorrelationInputsProjection),
    ]
}
