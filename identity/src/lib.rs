//! Identity: accounts, password hashing, access tokens, sessions and login throttling, in plain
//! tables beside the log (docs/decisions.md D12, D29). Nothing here knows about HTTP: the API
//! crate turns requests into these calls and their results into responses, and the operator CLI
//! (`stridelog users`) uses the same calls.

pub mod db;
pub mod password;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use db::IdentityDb;
pub use password::Passwords;
pub use tokens::TokenKeys;

/// Failures from one client address (any accounts) before delays start.
pub const FREE_FAILURES_PER_CLIENT: i64 = 20;
/// Failures against one account from one client before delays start.
pub const FREE_FAILURES_PER_PAIR: i64 = 5;
/// Failures against one account from clients that never logged in to it before delays start.
/// Clients that did log in to it are not subject to this counter, so a stranger's guessing
/// cannot lock the owner out of their usual devices.
pub const FREE_FAILURES_PER_ACCOUNT: i64 = 10;
/// The longest delay any counter imposes.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
pub struct Auth {
    pub db: IdentityDb,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Passwords,
    client_key: Arc<[u8; 32]>,
}

impl Auth {
    pub fn new(db: IdentityDb, tokens: TokenKeys, passwords: Passwords, secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"stridelog client tag\0");
        h.update(secret);
        Self {
            db,
            tokens: Arc::new(tokens),
            passwords,
            client_key: Arc::new(h.finalize().into()),
        }
    }

    /// A keyed hash of the client's address: enough to count failures per client, useless for
    /// finding out who the client was. Addresses are personal data and are never stored.
    pub fn client_tag(&self, addr: Option<SocketAddr>) -> String {
        let ip = addr.map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let mut h = Sha256::new();
        h.update(self.client_key.as_slice());
        h.update(ip.as_bytes());
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A keyed hash of a session id for one `purpose`: a value only this server can compute,
    /// stable for the session's life and useless for any other session, such as the admin
    /// console's CSRF token (a form must carry its session's tag).
    pub fn session_tag(&self, purpose: &str, session_id: Uuid) -> String {
        let mut h = Sha256::new();
        h.update(self.client_key.as_slice());
        h.update(b"session tag\0");
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(session_id.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The throttle keys a login attempt is checked against.
    pub async fn throttle_keys(
        &self,
        account: Option<Uuid>,
        client: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut keys = vec![format!("client:{client}")];
        if let Some(a) = account {
            keys.push(format!("pair:{a}:{client}"));
            if !self.db.is_known_client(a, client).await? {
                keys.push(format!("account:{a}"));
            }
        }
        Ok(keys)
    }

    /// How long login attempts from `client` (against `account`, when there is one) are paused.
    pub async fn paused_for(
        &self,
        account: Option<Uuid>,
        client: &str,
    ) -> Result<Option<Duration>, sqlx::Error> {
        let keys = self.throttle_keys(account, client).await?;
        self.db.blocked_for(&keys).await
    }

    pub async fn record_login_failure(
        &self,
        account: Option<Uuid>,
        client: &str,
    ) -> Result<(), sqlx::Error> {
        self.db
            .record_failure(
                &format!("client:{client}"),
                FREE_FAILURES_PER_CLIENT,
                MAX_DELAY,
            )
            .await?;
        if let Some(a) = account {
            self.db
                .record_failure(
                    &format!("pair:{a}:{client}"),
                    FREE_FAILURES_PER_PAIR,
                    MAX_DELAY,
                )
                .await?;
            self.db
                .record_failure(
                    &format!("account:{a}"),
                    FREE_FAILURES_PER_ACCOUNT,
                    MAX_DELAY,
                )
                .await?;
        }
        Ok(())
    }

    pub async fn record_login_success(
        &self,
        account: Uuid,
        client: &str,
    ) -> Result<(), sqlx::Error> {
        self.db
            .clear_failures(&format!("pair:{account}:{client}"))
            .await?;
        self.db.remember_client(account, client).await
    }

    /// Best effort: failing to remember a client only means throttling treats it as new.
    pub async fn remember_client_quietly(&self, account: Uuid, client: &str) {
        if let Err(e) = self.db.remember_client(account, client).await {
            tracing::warn!(error = %e, "could not remember a client");
        }
    }
}
