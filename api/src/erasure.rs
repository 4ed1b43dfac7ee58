//! GDPR erasure of one account, for `DELETE /v1/me` and `stridelog users erase` alike.
//! docs/privacy.md lists what is removed and what is kept; docs/decisions.md D35 the why.
//!
//! The order makes the one irreversible step come first and every later step repeatable:
//! 1. the athletes who granted this account coach access are read (from the profile read
//!    model, before the erasure makes it forget them);
//! 2. `AthleteErased` is appended through the command bus, which hands it to
//!    [`store::EventStore::erase_athlete`]: the data key is destroyed and the kept files
//!    deleted in the same transaction, so every personal payload in the log is unreadable;
//! 3. identity rows go (sessions, refresh tokens, known clients, throttle counters, security
//!    log rows, the account);
//! 4. `CoachAccessRevoked` is appended, as the system, to each granting athlete's stream;
//! 5. the projections delete the read-model rows, snapshots and jobs when they apply the
//!    erasure: this waits for them (bounded), then empties SQLite's WAL.
//!
//! A crash after step 2 leaves the account erased in the log; running the erasure again
//! answers [`EraseError::AlreadyErased`] after doing steps 3-5 again, so nothing stays behind.

use std::time::Duration;

use commands::{CommandBus, CommandContext, CommandError};
use domain::DomainError;
use domain::athlete::{Athlete, AthleteCommand, ErasureReason};
use identity::IdentityDb;
use projections::Engine;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Who asked, and how long to wait for the read models.
#[derive(Debug, Clone)]
pub struct EraseRequest {
    pub athlete_id: Uuid,
    /// The actor recorded on `AthleteErased`: the athlete themselves, or the system for an
    /// operator's command.
    pub actor: store::Actor,
    /// The id recorded as `requested_by`: the athlete, or nil for an operator.
    pub requested_by: Uuid,
    pub reason: ErasureReason,
    /// How long to wait for the projections, before reading grants and after the erasure.
    pub wait: Duration,
}

/// What an erasure did. Counts and ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErasureReport {
    pub athlete_id: Uuid,
    /// The log position of `AthleteErased`.
    pub position: i64,
    /// Sessions ended (each one's access and refresh tokens stop working).
    pub sessions_ended: u64,
    /// Grants other athletes had given this account as a coach, now revoked.
    pub coach_grants_revoked: usize,
    /// Whether every read model applied the erasure within the wait. When false they do so as
    /// soon as the projector runs; nothing needs to be done by hand.
    pub read_models_purged: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no account with that id")]
    NotFound,
    /// The log already holds `AthleteErased` for the account. The identity rows and grants
    /// were cleaned up again before this was answered.
    #[error("this account was erased already")]
    AlreadyErased,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<CommandError> for EraseError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Erased => EraseError::AlreadyErased,
            CommandError::Domain(DomainError::NotFound { .. }) => EraseError::NotFound,
            CommandError::Domain(DomainError::Conflict(_)) => EraseError::AlreadyErased,
            other => EraseError::Failed(other.into()),
        }
    }
}

/// The parts of a process an erasure touches.
pub struct Eraser<'a> {
    pub commands: &'a CommandBus,
    pub projections: &'a Engine,
    pub identity: &'a IdentityDb,
}

impl Eraser<'_> {
    pub async fn erase(&self, req: &EraseRequest) -> Result<ErasureReport, EraseError> {
        let grantors = self.grantors(req).await?;
        let ctx = CommandContext {
            actor: req.actor.clone(),
            impersonator_id: None,
            athlete_id: req.athlete_id,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
        };
        let erased = self
            .commands
            .execute_with_retry::<Athlete>(
                &ctx,
                &req.athlete_id.to_string(),
                AthleteCommand::Erase {
                    requested_by: req.requested_by,
                    reason: req.reason,
                },
            )
            .await;
        let position = match erased {
            Ok(executed) => executed
                .outcome
                .map(|o| o.cursor.position)
                .ok_or_else(|| anyhow::anyhow!("the erasure appended nothing"))?,
            Err(e) => {
                let e = EraseError::from(e);
                if matches!(e, EraseError::AlreadyErased) {
                    // Finish whatever an interrupted erasure left.
                    self.identity
                        .erase_account(req.athlete_id, reason_code(req.reason))
                        .await
                        .map_err(anyhow::Error::from)?;
                    workers::exports::forget(&self.projections.db().pool, req.athlete_id).await?;
                    self.revoke_grants(&ctx, req.athlete_id, &grantors).await?;
                    if let Err(e) = self.commands.store().checkpoint_wal().await {
                        tracing::warn!(error = %e, "WAL checkpoint after an erasure failed");
                    }
                }
                return Err(e);
            }
        };
        let account = self
            .identity
            .erase_account(req.athlete_id, reason_code(req.reason))
            .await
            .map_err(anyhow::Error::from)?;
        workers::exports::forget(&self.projections.db().pool, req.athlete_id).await?;
        let revoked = self.revoke_grants(&ctx, req.athlete_id, &grantors).await?;
        let names = self.projections.names();
        let purged = self
            .projections
            .wait_for(&names, position, req.wait)
            .await?;
        if !self
            .commands
            .store()
            .checkpoint_wal()
            .await
            .map_err(anyhow::Error::from)?
        {
            tracing::warn!(
                position,
                "the WAL checkpoint after an erasure did not complete (a reader was busy); the \
                 next checkpoint moves the remaining frames"
            );
        }
        tracing::info!(
            position,
            sessions = account.sessions,
            coach_grants_revoked = revoked,
            read_models_purged = purged,
            "athlete erased"
        );
        Ok(ErasureReport {
            athlete_id: req.athlete_id,
            position,
            sessions_ended: account.sessions,
            coach_grants_revoked: revoked,
            read_models_purged: purged,
        })
    }

    /// The athletes who granted the account access as a coach, from the profile read model
    /// once it has caught up with the log (or after `wait`, as far as it got).
    async fn grantors(&self, req: &EraseRequest) -> Result<Vec<Uuid>, EraseError> {
        let head = self
            .commands
            .store()
            .last_committed()
            .await
            .map_err(anyhow::Error::from)?
            .position;
        if head > 0
            && !self
                .projections
                .wait_for(&["profile"], head, req.wait)
                .await?
        {
            tracing::warn!(
                "the profile read model lags the log: grants it has not applied yet are \
                 forgotten by the read model but not revoked in the granting streams"
            );
        }
        let t = self.projections.active_tables("profile").await?;
        Ok(
            projections::profile::grantors_of(&self.projections.db().pool, &t, req.athlete_id)
                .await?,
        )
    }

    /// `CoachAccessRevoked` in each granting athlete's stream, as the system. A grant already
    /// gone (revoked meanwhile, or that athlete erased too) is skipped.
    async fn revoke_grants(
        &self,
        erasure: &CommandContext,
        coach_id: Uuid,
        grantors: &[Uuid],
    ) -> Result<usize, EraseError> {
        let mut revoked = 0;
        for &athlete in grantors {
            let ctx = CommandContext {
                actor: store::Actor::system(),
                impersonator_id: None,
                athlete_id: athlete,
                correlation_id: erasure.correlation_id,
                causation_id: None,
                idempotency_key: None,
            };
            match self
                .commands
                .execute_with_retry::<Athlete>(
                    &ctx,
                    &athlete.to_string(),
                    AthleteCommand::RevokeCoachAccess { coach_id },
                )
                .await
            {
                Ok(e) if e.outcome.is_some() => revoked += 1,
                Ok(_) | Err(CommandError::Erased) | Err(CommandError::Domain(_)) => {}
                Err(e) => return Err(EraseError::Failed(e.into())),
            }
        }
        Ok(revoked)
    }
}

/// The security log's detail code for an erasure.
fn reason_code(reason: ErasureReason) -> &'static str {
    match reason {
        ErasureReason::AthleteRequest => "athlete_request",
        ErasureReason::AdminAction => "admin_action",
    }
}
