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
}

pub async fn run(args: &StoreArgs, cmd: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::SetRole { email, role, json } = cmd;
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
