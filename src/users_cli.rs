//! `stridelog users`: account administration an operator does before any admin exists, such
//! as making the first owner. Role changes are events (`RoleChanged`) and security-log entries,
//! like every other role change.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use domain::athlete::{Athlete, AthleteCommand};
use uuid::Uuid;

use crate::config::StoreArgs;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Give an account a role: athlete, coach, admin or owner.
    SetRole {
        email: String,
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// Erase an account and its data (GDPR): appends AthleteErased, destroys the data key,
    /// deletes read models, files, sessions and the account. Cannot be undone.
    Erase {
        /// The account's email or id.
        account: String,
        /// Required: confirms that the erasure is meant.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
        /// The Redis of `serve`'s read cache, whose keys of the athlete are deleted too (D41).
        #[arg(long, env = "STRIDELOG_REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        #[arg(long, env = "STRIDELOG_REDIS_PREFIX", default_value = api::cache::DEFAULT_PREFIX)]
        redis_prefix: String,
    },
}

pub async fn run(args: &StoreArgs, cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::SetRole { email, role, json } => set_role(args, email, role, json).await,
        UsersCommand::Erase {
            account,
            yes,
            json,
            redis_url,
            redis_prefix,
        } => {
            let cache = redis_url
                .as_deref()
                .map(|url| api::cache::ReadCache::redis(url, &redis_prefix))
                .transpose()
                .context("STRIDELOG_REDIS_URL")?;
            erase(args, &account, yes, json, cache).await
        }
    }
}

async fn set_role(args: &StoreArgs, email: String, role: String, json: bool) -> anyhow::Result<()> {
    let Some(role) = identity::db::parse_role(&role) else {
        bail!("role must be one of athlete, coach, admin, owner; got {role:?}");
    };
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    let read_db = projections::ReadDb::connect(&args.url()).await?;
    let identity = identity::IdentityDb::new(read_db.pool.clone());
    let normalized = email.trim().to_lowercase();
    let account = identity
        .account_by_email(&normalized)
        .await?
        .with_context(|| format!("no account with the email {normalized}"))?;
    let bus = commands::CommandBus::new(
        store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    // The operator acts as the system: there is no account behind a CLI call.
    let ctx = commands::CommandContext {
        actor: store::Actor::system(),
        impersonator_id: None,
        athlete_id: account.account_id,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
    };
    let executed = bus
        .execute_with_retry::<Athlete>(
            &ctx,
            &account.account_id.to_string(),
            AthleteCommand::ChangeRole {
                to: role,
                changed_by: Uuid::nil(),
            },
        )
        .await?;
    identity.set_role(account.account_id, role).await?;
    let role_name = identity::db::role_str(role);
    identity
        .log(
            "role_changed",
            Some(account.account_id),
            None,
            Some(role_name),
        )
        .await?;
    let position = executed.outcome.map(|o| o.cursor.position);
    if json {
        println!(
            "{}",
            serde_json::json!({"account_id": account.account_id, "role": role_name, "position": position})
        );
    } else {
        println!("{} is now {role_name}", account.account_id);
    }
    Ok(())
}

/// The operator a CLI read names with `--actor` (an email or an account id): an admin or owner.
/// `None` without `--actor`: the read is the system's.
pub async fn operator(
    identity: &identity::IdentityDb,
    actor: Option<&str>,
) -> anyhow::Result<Option<Uuid>> {
    let Some(actor) = actor else { return Ok(None) };
    let account = match actor.parse::<Uuid>() {
        Ok(id) => identity.account(id).await?,
        Err(_) => {
            identity
                .account_by_email(&actor.trim().to_lowercase())
                .await?
        }
    }
    .filter(|a| a.active)
    .with_context(|| format!("--actor: no active account {actor:?}"))?;
    if !matches!(
        account.role,
        domain::athlete::Role::Admin | domain::athlete::Role::Owner
    ) {
        bail!("--actor: {actor:?} is not an admin or owner");
    }
    Ok(Some(account.account_id))
}

/// A read of one athlete's history, in the security log as the API records an admin's.
pub async fn record_view(
    identity: &identity::IdentityDb,
    actor: Option<Uuid>,
    athlete: Uuid,
    what: &str,
) -> anyhow::Result<()> {
    identity
        .log_by(actor, "admin_viewed", Some(athlete), None, Some(what))
        .await?;
    Ok(())
}

/// How long the CLI waits for the projector of a running `serve` (or its own catch-up).
const ERASE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn erase(
    args: &StoreArgs,
    account: &str,
    yes: bool,
    json: bool,
    cache: Option<api::cache::ReadCache>,
) -> anyhow::Result<()> {
    if !yes {
        bail!("erasing {account} cannot be undone; run again with --yes to erase it");
    }
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    let read_db = projections::ReadDb::connect(&args.url()).await?;
    let identity = identity::IdentityDb::new(read_db.pool.clone());
    let athlete_id = erase_target(&identity, account).await?;
    let engine = projections::Engine::new(store.clone(), read_db, projections::all());
    // Without a `serve` running, nobody applies the erasure to the read models: this process
    // does, for every projection whose lease is free. With one running, its projector does.
    let mut held = Vec::new();
    for name in engine.names() {
        if engine.try_lease(name).await? {
            held.push(name);
        }
    }
    let bus = commands::CommandBus::new(
        store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let eraser = api::erasure::Eraser {
        commands: &bus,
        projections: &engine,
        identity: &identity,
    };
    let request = api::erasure::EraseRequest {
        athlete_id,
        actor: store::Actor::system(),
        requested_by: Uuid::nil(),
        reason: domain::athlete::ErasureReason::AdminAction,
        wait: ERASE_WAIT,
    };
    let result = erase_applying(&eraser, &engine, &store, &held, request).await;
    engine.release_leases().await?;
    let result = result?;
    // A running `serve`'s answers for the athlete, in Redis (an in-process cache is out of
    // this process's reach; its entries can no longer be served and expire within 10 min).
    if let Some(cache) = &cache
        && !matches!(result, Err(api::erasure::EraseError::NotFound))
    {
        cache
            .purge_athlete(athlete_id)
            .await
            .context("the erasure is done, but the read cache in Redis was not purged")?;
    }
    let mut report = match result {
        Ok(report) => report,
        Err(api::erasure::EraseError::AlreadyErased) => {
            bail!("account {athlete_id} was erased already; its remaining rows were cleaned up")
        }
        Err(api::erasure::EraseError::NotFound) => bail!("no account with the id {athlete_id}"),
        Err(api::erasure::EraseError::Failed(e)) => return Err(e),
    };
    if !held.is_empty() {
        let names = engine.names();
        report.read_models_purged = engine
            .wait_for(&names, report.position, std::time::Duration::ZERO)
            .await?;
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{athlete_id} erased at log position {}: {} session(s) ended, {} coach grant(s) revoked, read models {}",
            report.position,
            report.sessions_ended,
            report.coach_grants_revoked,
            if report.read_models_purged {
                "purged"
            } else {
                "purged when the projector next runs"
            }
        );
    }
    Ok(())
}

/// The account to erase, by id or email. By id the account row may be gone already (an
/// interrupted erasure): the log decides.
async fn erase_target(identity: &identity::IdentityDb, account: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = Uuid::parse_str(account.trim()) {
        return Ok(id);
    }
    let normalized = account.trim().to_lowercase();
    Ok(identity
        .account_by_email(&normalized)
        .await?
        .with_context(|| format!("no account with the email {normalized}"))?
        .account_id)
}

/// The erasure, with the projections this process `held` stepped until they have applied it.
/// The outer error is this process's own failure; the inner one the erasure's answer.
async fn erase_applying(
    eraser: &api::erasure::Eraser<'_>,
    engine: &projections::Engine,
    store: &store::EventStore,
    held: &[&str],
    request: api::erasure::EraseRequest,
) -> anyhow::Result<Result<api::erasure::ErasureReport, api::erasure::EraseError>> {
    if held.is_empty() {
        return Ok(eraser.erase(&request).await);
    }
    // Catch up first, so the grants read from the profile read model are current, then erase
    // while stepping the held projections until they have applied it.
    for name in held {
        engine
            .catch_up(engine.projection(name)?.as_ref(), ERASE_WAIT)
            .await?;
    }
    let quick = api::erasure::EraseRequest {
        wait: std::time::Duration::ZERO,
        ..request
    };
    let result = eraser.erase(&quick).await;
    if result.is_ok() {
        for name in held {
            engine
                .catch_up(engine.projection(name)?.as_ref(), ERASE_WAIT)
                .await?;
        }
        store.checkpoint_wal().await?;
    }
    Ok(result)
}
