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

/// See [`Auth::login_pause`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginPause {
    pub strict: Option<Duration>,
    pub client: Option<Duration>,
}

#[derive(Clone)]
pub struct Auth {
    pub db: IdentityDb,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Passwords,
    client_key: Arc<[u8; 32]>,
    confirm_key: Arc<[u8; 32]>,
}

impl Auth {
    pub fn new(db: IdentityDb, tokens: TokenKeys, passwords: Passwords, secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"stridelog client tag\0");
        h.update(secret);
        let client_key = h.finalize().into();
        let mut h = Sha256::new();
        h.update(b"stridelog confirmation\0");
        h.update(secret);
        Self {
            db,
            tokens: Arc::new(tokens),
            passwords,
            client_key: Arc::new(client_key),
            confirm_key: Arc::new(h.finalize().into()),
        }
    }

    /// A confirmation token for `subject` (the exact request being confirmed, canonically
    /// encoded), good until `expires_s`: `<expires_s>.<HMAC-SHA256 hex>`. Stateless, so any
    /// server process with the same secret checks it.
    pub fn confirmation(&self, subject: &[u8], expires_s: u64) -> String {
        format!(
            "{expires_s}.{}",
            hex(&self.confirmation_mac(subject, expires_s))
        )
    }

    /// Whether `token` confirms `subject` and is not expired at `now_s`.
    pub fn confirms(&self, token: &str, subject: &[u8], now_s: u64) -> bool {
        use hmac::Mac as _;
        let Some((expires, mac)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires_s) = expires.parse::<u64>() else {
            return false;
        };
        let Some(mac) = unhex(mac) else { return false };
        let mut m =
            <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.confirm_key.as_slice())
                .expect("HMAC takes any key length");
        m.update(&expires_s.to_be_bytes());
        m.update(subject);
        // Constant-time comparison.
        m.verify_slice(&mac).is_ok() && now_s <= expires_s
    }

    fn confirmation_mac(&self, subject: &[u8], expires_s: u64) -> Vec<u8> {
        use hmac::Mac as _;
        let mut m =
            <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.confirm_key.as_slice())
                .expect("HMAC takes any key length");
        m.update(&expires_s.to_be_bytes());
        m.update(subject);
        m.finalize().into_bytes().to_vec()
    }

    /// A keyed hash of the client's address: enough to count failures per client, useless for
    /// finding out who the client was. Addresses are personal data and are never stored.
    pub fn client_tag(&self, addr: Option<SocketAddr>) -> String {
        let ip = addr.map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        self.address_tag(&ip)
    }

    /// [`Auth::client_tag`] for any address text, such as an address block (`192.0.2.0/24`).
    pub fn address_tag(&self, address: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.client_key.as_slice());
        h.update(address.as_bytes());
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

    /// The pauses on a login attempt, split by what they guard. `strict`: failures against
    /// this account from this client (or from strangers to it): the attempt is refused before
    /// the password is checked. `client`: failures from this client against any accounts: a
    /// correct password still signs in, so others failing from a shared address (a NAT, a
    /// proxy) cannot lock the owner out, while wrong guesses stay refused.
    pub async fn login_pause(
        &self,
        account: Option<Uuid>,
        client: &str,
    ) -> Result<LoginPause, sqlx::Error> {
        let mut strict = Vec::new();
        if let Some(a) = account {
            strict.push(format!("pair:{a}:{client}"));
            if !self.db.is_known_client(a, client).await? {
                strict.push(format!("account:{a}"));
            }
        }
        Ok(LoginPause {
            strict: self.db.blocked_for(&strict).await?,
            client: self.db.blocked_for(&[format!("client:{client}")]).await?,
        })
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &[u8]) -> Auth {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap();
        Auth::new(
            IdentityDb::new(pool),
            TokenKeys::new(secret, "i", "a").unwrap(),
            Passwords::new(1).unwrap(),
            secret,
        )
    }

    #[tokio::test]
    async fn a_confirmation_covers_its_subject_until_it_expires() {
        let a = auth(b"a-secret-of-at-least-thirty-two-bytes");
        let token = a.confirmation(b"subject", 1_000);
        assert!(a.confirms(&token, b"subject", 999));
        assert!(a.confirms(&token, b"subject", 1_000));
        assert!(!a.confirms(&token, b"subject", 1_001), "expired");
        assert!(!a.confirms(&token, b"subjecT", 999), "another request");
        let later = token.replacen("1000", "9000", 1);
        assert!(!a.confirms(&later, b"subject", 999), "expiry moved");
        for bad in ["", "1000", "1000.", "x.00", "1000.zz", "1000.0"] {
            assert!(!a.confirms(bad, b"subject", 0), "{bad:?}");
        }
        let other = auth(b"another-secret-of-thirty-two-bytes!!");
        assert!(
            !other.confirms(&token, b"subject", 999),
            "another server secret"
        );
    }
}
