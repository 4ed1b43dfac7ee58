//! Accounts, sessions, refresh tokens, login throttling and the security log, in the store's
//! database (migrations/*/0003_identity.sql). One SQL dialect serves both stores.

use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use domain::athlete::Role;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, AssertSqlSafe};
use uuid::Uuid;

/// A refresh token is good for this long after it is issued (and is single-use).
pub const REFRESH_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// A session ends this long after its login, however often it is refreshed.
pub const SESSION_MAX: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct Account {
    pub account_id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub active: bool,
    /// Suspended by an admin: no login, no live session, until reinstated.
    pub suspended: bool,
    /// When the row was inserted: how long a `pending` row has waited for its registration.
    pub created_at_us: i64,
}

/// The columns [`AccountRow`] reads, for every query that returns accounts.
const ACCOUNT_COLUMNS: &str = "account_id, email, password_hash, role, status, created_at_us";

/// An `auth_accounts` row as stored: ids and roles are `TEXT` on both stores.
#[derive(sqlx::FromRow)]
struct AccountRow {
    account_id: String,
    email: String,
    password_hash: String,
    role: String,
    status: String,
    created_at_us: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = sqlx::Error;

    fn try_from(r: AccountRow) -> Result<Self, Self::Error> {
        Ok(Account {
            account_id: Uuid::parse_str(&r.account_id)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            email: r.email,
            password_hash: r.password_hash,
            role: parse_role(&r.role).unwrap_or(Role::Athlete),
            active: r.status == "active",
            suspended: r.status == "suspended",
            created_at_us: r.created_at_us,
        })
    }
}

/// A refresh token with the session it belongs to, as [`IdentityDb::rotate_refresh`] checks it.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: String,
    used_at_us: Option<i64>,
    expires_at_us: i64,
    account_id: String,
    revoked_at_us: Option<i64>,
    session_expires_at_us: i64,
}

/// The session a refresh token belongs to, and its account.
#[derive(sqlx::FromRow)]
struct SessionOwnerRow {
    session_id: String,
    account_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("unknown, expired or revoked refresh token")]
    Invalid,
    /// An already-used token came back: someone holds a copy. The whole family is revoked.
    #[error("refresh token reused")]
    Reused { account_id: Uuid },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a session check returns for a verified access token.
#[derive(Debug, Clone, Copy)]
pub struct LiveSession {
    pub account_id: Uuid,
    pub role: Role,
    /// The admin acting as the account, in an impersonation session.
    pub impersonator_id: Option<Uuid>,
}

#[derive(Clone)]
pub struct IdentityDb {
    pool: AnyPool,
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub fn role_str(role: Role) -> &'static str {
    match role {
        Role::Athlete => "athlete",
        Role::Coach => "coach",
        Role::Admin => "admin",
        Role::Owner => "owner",
    }
}

pub fn parse_role(s: &str) -> Option<Role> {
    Some(match s {
        "athlete" => Role::Athlete,
        "coach" => Role::Coach,
        "admin" => Role::Admin,
        "owner" => Role::Owner,
        _ => return None,
    })
}

/// SHA-256, hex: refresh tokens are stored only this way.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

impl IdentityDb {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// False when the email is taken.
    pub async fn insert_pending(
        &self,
        account_id: Uuid,
        email: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<bool, sqlx::Error> {
        let now = now_us();
        let inserted = sqlx::query(
            "INSERT INTO auth_accounts (account_id, email, password_hash, role, status, \
               created_at_us, password_changed_at_us) VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
        )
        .bind(account_id.to_string())
        .bind(email)
        .bind(password_hash)
        .bind(role_str(role))
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marks the account active once its `AthleteRegistered` is in the log. False when the row
    /// is gone: a registration that stalled past the API's `PENDING_GRACE` had its row
    /// reclaimed. Activating an active row is harmless (two completions may race); a
    /// suspended one stays suspended.
    pub async fn activate(&self, account_id: Uuid) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query(
            "UPDATE auth_accounts SET status = 'active' \
             WHERE account_id = $1 AND status IN ('pending', 'active')",
        )
        .bind(account_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Suspends an active account (`suspend: true`) or reinstates a suspended one. False when
    /// the account was not in the state the change starts from.
    pub async fn set_suspended(
        &self,
        account_id: Uuid,
        suspend: bool,
    ) -> Result<bool, sqlx::Error> {
        let (from, to) = if suspend {
            ("active", "suspended")
        } else {
            ("suspended", "active")
        };
        let updated = sqlx::query(
            "UPDATE auth_accounts SET status = $1 WHERE account_id = $2 AND status = $3",
        )
        .bind(to)
        .bind(account_id.to_string())
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Accounts (not pending) holding `role`.
    pub async fn count_with_role(&self, role: Role) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM auth_accounts WHERE role = $1 AND status <> 'pending'",
        )
        .bind(role_str(role))
        .fetch_one(&self.pool)
        .await
    }

    /// The account's sessions, newest first (at most `limit`).
    pub async fn sessions(
        &self,
        account_id: Uuid,
        limit: i64,
    ) -> Result<Vec<SessionRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT session_id, created_at_us, expires_at_us, revoked_at_us, revoked_reason, \
               impersonator_id FROM auth_sessions WHERE account_id = $1 ORDER BY created_at_us DESC LIMIT $2",
        )
        .bind(account_id.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Undoes [`IdentityDb::insert_pending`] when the registration event could not be appended.
    pub async fn delete_pending(&self, account_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM auth_accounts WHERE account_id = $1 AND status = 'pending'")
            .bind(account_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes an abandoned `pending` row, only if it is still the row that was inspected
    /// (same insert time, still pending): of two registrations reclaiming it, one deletes it.
    pub async fn reclaim_pending(
        &self,
        account_id: Uuid,
        created_at_us: i64,
    ) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM auth_accounts \
             WHERE account_id = $1 AND status = 'pending' AND created_at_us = $2",
        )
        .bind(account_id.to_string())
        .bind(created_at_us)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected() > 0)
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, sqlx::Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE email = $1");
        let row = sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Account::try_from).transpose()
    }

    pub async fn account(&self, account_id: Uuid) -> Result<Option<Account>, sqlx::Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE account_id = $1");
        let row = sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
            .bind(account_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Account::try_from).transpose()
    }

    pub async fn set_password(&self, account_id: Uuid, hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE auth_accounts SET password_hash = $1, password_changed_at_us = $2 \
             WHERE account_id = $3",
        )
        .bind(hash)
        .bind(now_us())
        .bind(account_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_role(&self, account_id: Uuid, role: Role) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE auth_accounts SET role = $1 WHERE account_id = $2")
            .bind(role_str(role))
            .bind(account_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_email(&self, account_id: Uuid, email: &str) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query("UPDATE auth_accounts SET email = $1 WHERE account_id = $2")
            .bind(email)
            .bind(account_id.to_string())
            .execute(&self.pool)
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A new session (login) and its first refresh token.
    pub async fn create_session(&self, account_id: Uuid) -> Result<(Uuid, String), sqlx::Error> {
        let session_id = Uuid::new_v4();
        let now = now_us();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO auth_sessions (session_id, account_id, created_at_us, expires_at_us) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_id.to_string())
        .bind(account_id.to_string())
        .bind(now)
        .bind(now + us(SESSION_MAX))
        .execute(&mut *tx)
        .await?;
        let token = new_refresh_token();
        insert_refresh(&mut tx, session_id, &token, now).await?;
        tx.commit().await?;
        Ok((session_id, token))
    }

    /// Spends `token` and issues its successor in the same session. A token that was already
    /// spent revokes the session: the legitimate holder and the thief both have to log in again.
    pub async fn rotate_refresh(
        &self,
        token: &str,
    ) -> Result<(Account, Uuid, String), RefreshError> {
        let hash = token_hash(token);
        let now = now_us();
        let row = sqlx::query_as::<_, RefreshRow>(
            "SELECT r.session_id, r.used_at_us, r.expires_at_us, s.account_id, \
               s.revoked_at_us, s.expires_at_us AS session_expires_at_us \
             FROM auth_refresh_tokens r JOIN auth_sessions s ON s.session_id = r.session_id \
             WHERE r.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Err(RefreshError::Invalid);
        };
        let session_id = Uuid::parse_str(&row.session_id).map_err(|_| RefreshError::Invalid)?;
        let account_id = Uuid::parse_str(&row.account_id).map_err(|_| RefreshError::Invalid)?;
        if row.used_at_us.is_some() {
            self.revoke_session(session_id, "refresh_token_reuse")
                .await?;
            return Err(RefreshError::Reused { account_id });
        }
        if row.revoked_at_us.is_some()
            || row.expires_at_us <= now
            || row.session_expires_at_us <= now
        {
            return Err(RefreshError::Invalid);
        }
        let mut tx = self.pool.begin().await?;
        let spent = sqlx::query(
            "UPDATE auth_refresh_tokens SET used_at_us = $1 \
             WHERE token_hash = $2 AND used_at_us IS NULL",
        )
        .bind(now)
        .bind(&hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if spent == 0 {
            // Another request spent it between our read and this write: the same reuse.
            drop(tx);
            self.revoke_session(session_id, "refresh_token_reuse")
                .await?;
            return Err(RefreshError::Reused { account_id });
        }
        let next = new_refresh_token();
        insert_refresh(&mut tx, session_id, &next, now).await?;
        tx.commit().await?;
        let account = self
            .account(account_id)
            .await?
            .filter(|a| a.active)
            .ok_or(RefreshError::Invalid)?;
        Ok((account, session_id, next))
    }

    pub async fn revoke_session(&self, session_id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at_us = $1, revoked_reason = $2 \
             WHERE session_id = $3 AND revoked_at_us IS NULL",
        )
        .bind(now_us())
        .bind(reason)
        .bind(session_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Logout by refresh token: the session it belongs to, if any, ends. Returns its account.
    pub async fn revoke_by_refresh(&self, token: &str) -> Result<Option<Uuid>, sqlx::Error> {
        let row = sqlx::query_as::<_, SessionOwnerRow>(
            "SELECT s.session_id, s.account_id FROM auth_refresh_tokens r \
             JOIN auth_sessions s ON s.session_id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if let Ok(session_id) = Uuid::parse_str(&row.session_id) {
            self.revoke_session(session_id, "logout").await?;
        }
        Ok(Uuid::parse_str(&row.account_id).ok())
    }

    /// Ends every session of the account but `keep`. Returns how many ended.
    pub async fn revoke_other_sessions(
        &self,
        account_id: Uuid,
        keep: Option<Uuid>,
        reason: &str,
    ) -> Result<u64, sqlx::Error> {
        let keep = keep.map(|k| k.to_string()).unwrap_or_default();
        Ok(sqlx::query(
            "UPDATE auth_sessions SET revoked_at_us = $1, revoked_reason = $2 \
             WHERE account_id = $3 AND session_id <> $4 AND revoked_at_us IS NULL",
        )
        .bind(now_us())
        .bind(reason)
        .bind(account_id.to_string())
        .bind(keep)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The live session behind an access token: not revoked, not expired, account active. The
    /// role comes from here, not from the token, so a role change applies to the next request.
    pub async fn live_session(
        &self,
        session_id: Uuid,
        account_id: Uuid,
    ) -> Result<Option<LiveSession>, sqlx::Error> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT a.role, s.impersonator_id FROM auth_sessions s \
             JOIN auth_accounts a ON a.account_id = s.account_id \
             WHERE s.session_id = $1 AND s.account_id = $2 AND s.revoked_at_us IS NULL \
               AND s.expires_at_us > $3 AND a.status = 'active'",
        )
        .bind(session_id.to_string())
        .bind(account_id.to_string())
        .bind(now_us())
        .fetch_optional(&self.pool)
        .await?;
        let Some((role, impersonator)) = row else {
            return Ok(None);
        };
        let impersonator_id = match impersonator {
            Some(i) => Some(Uuid::parse_str(&i).map_err(|e| sqlx::Error::Decode(Box::new(e)))?),
            None => None,
        };
        Ok(parse_role(&role).map(|role| LiveSession {
            account_id,
            role,
            impersonator_id,
        }))
    }

    /// An impersonation session: `admin` acting as `account_id` until `expires_at_us`. It has
    /// no refresh token, so it cannot outlive its first access token.
    pub async fn create_impersonation_session_with_id(
        &self,
        session_id: Uuid,
        account_id: Uuid,
        admin: Uuid,
        expires_at_us: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO auth_sessions \
               (session_id, account_id, created_at_us, expires_at_us, impersonator_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_id.to_string())
        .bind(account_id.to_string())
        .bind(now_us())
        .bind(expires_at_us)
        .bind(admin.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- throttling ----------------------------------------------------------------------

    /// The longest remaining block among `keys`, if any.
    pub async fn blocked_for(&self, keys: &[String]) -> Result<Option<Duration>, sqlx::Error> {
        let now = now_us();
        let mut longest: Option<i64> = None;
        for key in keys {
            let until: Option<i64> =
                sqlx::query_scalar("SELECT blocked_until_us FROM auth_throttle WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(until) = until.filter(|u| *u > now) {
                longest = Some(longest.map_or(until, |l| l.max(until)));
            }
        }
        Ok(longest.map(|u| Duration::from_micros(u64::try_from(u - now).unwrap_or(0))))
    }

    /// Counts a failure against `key`; after `free` failures each one blocks the key for twice
    /// as long as the last, from 1 s up to `cap`. Counters forget after a day without failures.
    pub async fn record_failure(
        &self,
        key: &str,
        free: i64,
        cap: Duration,
    ) -> Result<i64, sqlx::Error> {
        let now = now_us();
        let forget_before = now - us(Duration::from_secs(24 * 3600));
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO auth_throttle (key, failures, blocked_until_us, updated_at_us) \
             VALUES ($1, 1, 0, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN auth_throttle.updated_at_us < $3 THEN 1 \
                               ELSE auth_throttle.failures + 1 END, \
               updated_at_us = $2 \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(forget_before)
        .fetch_one(&self.pool)
        .await?;
        if failures > free {
            let exponent = u32::try_from((failures - free - 1).min(20)).unwrap_or(20);
            let delay = Duration::from_secs(1u64 << exponent).min(cap);
            sqlx::query("UPDATE auth_throttle SET blocked_until_us = $1 WHERE key = $2")
                .bind(now + us(delay))
                .bind(key)
                .execute(&self.pool)
                .await?;
        }
        Ok(failures)
    }

    pub async fn clear_failures(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM auth_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn is_known_client(
        &self,
        account_id: Uuid,
        client: &str,
    ) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT last_success_us FROM auth_known_clients WHERE account_id = $1 AND client = $2",
        )
        .bind(account_id.to_string())
        .bind(client)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    pub async fn remember_client(&self, account_id: Uuid, client: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO auth_known_clients (account_id, client, last_success_us) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, client) DO UPDATE SET last_success_us = $3",
        )
        .bind(account_id.to_string())
        .bind(client)
        .bind(now_us())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- erasure -------------------------------------------------------------------------

    /// Deletes everything identity holds about the account, in one transaction: refresh
    /// tokens, sessions (so every access token stops working on its next request), known
    /// clients, the throttle counters keyed by the account, the security log's rows of the
    /// account, and the account row itself (email, password hash), so the email may register
    /// again. One `account_erased` row is written in their place: the account id (already in
    /// the event log's metadata), the time and a reason code; no email, no client.
    /// Safe to repeat: a second call finds nothing to delete and writes no second record.
    pub async fn erase_account(
        &self,
        account_id: Uuid,
        reason: &str,
    ) -> Result<AccountErased, sqlx::Error> {
        let id = account_id.to_string();
        let mut tx = self.pool.begin().await?;
        let refresh_tokens = sqlx::query(
            "DELETE FROM auth_refresh_tokens WHERE session_id IN \
               (SELECT session_id FROM auth_sessions WHERE account_id = $1)",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let sessions = sqlx::query("DELETE FROM auth_sessions WHERE account_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM auth_known_clients WHERE account_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        // `client:<tag>` counters are per address, with no account in them: they stay. An id
        // holds only hex digits and dashes, so it needs no escaping inside the LIKE pattern.
        sqlx::query("DELETE FROM auth_throttle WHERE key = $1 OR key LIKE $2")
            .bind(format!("account:{id}"))
            .bind(format!("pair:{id}:%"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM security_log WHERE account_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let account = sqlx::query("DELETE FROM auth_accounts WHERE account_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if account > 0 {
            sqlx::query(
                "INSERT INTO security_log (at_us, kind, account_id, client, detail) \
                 VALUES ($1, 'account_erased', $2, NULL, $3)",
            )
            .bind(now_us())
            .bind(&id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AccountErased {
            account: account > 0,
            sessions,
            refresh_tokens,
        })
    }

    // --- security log --------------------------------------------------------------------

    /// An action of the account itself (or of nobody in particular: a failed login).
    pub async fn log(
        &self,
        kind: &str,
        account_id: Option<Uuid>,
        client: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        self.log_by(None, kind, account_id, client, detail).await
    }

    /// An action `actor` took on `account_id`: an admin's, or the system's with `None`.
    pub async fn log_by(
        &self,
        actor: Option<Uuid>,
        kind: &str,
        account_id: Option<Uuid>,
        client: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO security_log (at_us, kind, account_id, client, detail, actor_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_us())
        .bind(kind)
        .bind(account_id.map(|a| a.to_string()))
        .bind(client.map(str::to_string))
        .bind(detail.map(str::to_string))
        .bind(actor.map(|a| a.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The whole security log, newest first, filtered; `before_id` pages (keyset).
    pub async fn security_log_search(
        &self,
        filter: &SecurityFilter,
    ) -> Result<Vec<SecurityEntry>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, at_us, kind, account_id, actor_id, detail FROM security_log \
             WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR actor_id = $2) \
               AND ($3 IS NULL OR kind = $3) AND at_us >= $4 AND id < $5 \
               AND ($7 = 0 OR kind IN ('admin_viewed', 'impersonation_started', \
                    'impersonation_ended', 'account_suspended', 'account_reinstated', \
                    'role_changed')) \
               AND ($8 IS NULL OR detail = $8) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind(filter.account_id.map(|a| a.to_string()))
        .bind(filter.actor_id.map(|a| a.to_string()))
        .bind(filter.kind.clone())
        .bind(filter.since_us.unwrap_or(i64::MIN))
        .bind(filter.before_id.unwrap_or(i64::MAX))
        .bind(filter.limit)
        .bind(i64::from(filter.admin_actions_only))
        .bind(filter.detail.clone())
        .fetch_all(&self.pool)
        .await
    }

    /// The account's security log, newest first.
    pub async fn security_log(
        &self,
        account_id: Uuid,
        limit: i64,
    ) -> Result<Vec<SecurityRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT at_us, kind, detail FROM security_log WHERE account_id = $1 \
             ORDER BY at_us DESC, id DESC LIMIT $2",
        )
        .bind(account_id.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

/// What [`IdentityDb::security_log_search`] selects.
#[derive(Debug, Clone, Default)]
pub struct SecurityFilter {
    pub account_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub kind: Option<String>,
    pub since_us: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
    /// Only what admins (or operators, as the system) did with the account: views of its
    /// history, impersonation, suspension, role changes. Not the account's own logins.
    pub admin_actions_only: bool,
    /// Rows with exactly this detail code.
    pub detail: Option<String>,
}

/// A security-log row as admins read it. The client (a keyed hash) is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecurityEntry {
    pub id: i64,
    pub at_us: i64,
    pub kind: String,
    pub account_id: Option<String>,
    pub actor_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub session_id: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub revoked_at_us: Option<i64>,
    pub revoked_reason: Option<String>,
    pub impersonator_id: Option<String>,
}

/// What [`IdentityDb::erase_account`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountErased {
    /// False when there was no account row (erased before, or never registered).
    pub account: bool,
    pub sessions: u64,
    pub refresh_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecurityRecord {
    pub at_us: i64,
    pub kind: String,
    pub detail: Option<String>,
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: Uuid,
    token: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_refresh_tokens (token_hash, session_id, issued_at_us, expires_at_us) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(token))
    .bind(session_id.to_string())
    .bind(now)
    .bind(now + us(REFRESH_TTL))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
