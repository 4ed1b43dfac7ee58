//! Access tokens: HS256 JWTs of at most 15 minutes. The algorithm is pinned, and every
//! registered claim we rely on is required and checked; a token that passes still has its
//! session looked up on each request, so logout and password changes take effect at once.

use std::time::Duration;

use base64::Engine as _;
use domain::athlete::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest access token we issue or accept.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_S: u64 = 30;
/// HS256 keys shorter than the hash output are guessable in principle; we refuse them.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The account id.
    pub sub: String,
    /// The session (refresh-token family) this token belongs to.
    pub sid: String,
    pub role: Role,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// The admin acting as `sub`: present in impersonation sessions only, so every client and
    /// proxy that reads the token can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imp: Option<String>,
}

/// What a verified token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub impersonator_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed, expired, not yet valid, or not ours")]
    Invalid,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        if secret.len() < MIN_SECRET_BYTES {
            anyhow::bail!(
                "the JWT signing secret must be at least {MIN_SECRET_BYTES} bytes, got {}",
                secret.len()
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl: MAX_ACCESS_TTL,
        })
    }

    /// A secret given as base64 (standard or URL-safe) of at least 32 bytes.
    pub fn from_base64(secret: &str, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let secret = secret.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret))
            .map_err(|_| anyhow::anyhow!("the JWT signing secret must be base64"))?;
        Self::new(&bytes, issuer, audience)
    }

    pub fn issue(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        role: Role,
        now_s: u64,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: account_id.to_string(),
            sid: session_id.to_string(),
            role,
            exp: now_s + self.access_ttl.as_secs(),
            nbf: now_s,
            iat: now_s,
            jti: Uuid::new_v4().to_string(),
            imp: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, algorithm, issuer, audience, `exp`, `nbf` (with [`LEEWAY_S`]), that
    /// `iat` is not in the future, that the lifetime is at most [`MAX_ACCESS_TTL`], and that
    /// `sub`, `sid` and `jti` are UUIDs.
    /// The access token of an impersonation session: `imp` names the admin, and it expires at
    /// `expires_s` (at most [`MAX_ACCESS_TTL`] away), when the session does.
    pub fn issue_impersonation(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        role: Role,
        admin: Uuid,
        now_s: u64,
        expires_s: u64,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            expires_s > now_s && expires_s - now_s <= MAX_ACCESS_TTL.as_secs(),
            "an impersonation token lives at most {} s",
            MAX_ACCESS_TTL.as_secs()
        );
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: account_id.to_string(),
            sid: session_id.to_string(),
            role,
            exp: expires_s,
            nbf: now_s,
            iat: now_s,
            jti: Uuid::new_v4().to_string(),
            imp: Some(admin.to_string()),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str, now_s: u64) -> Result<Verified, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let c = data.claims;
        if data.header.alg != Algorithm::HS256
            || c.iat > now_s + LEEWAY_S
            || c.exp.saturating_sub(c.iat) > MAX_ACCESS_TTL.as_secs()
            || Uuid::parse_str(&c.jti).is_err()
        {
            return Err(TokenError::Invalid);
        }
        let account_id = Uuid::parse_str(&c.sub).map_err(|_| TokenError::Invalid)?;
        let session_id = Uuid::parse_str(&c.sid).map_err(|_| TokenError::Invalid)?;
        let impersonator_id = c
            .imp
            .as_deref()
            .map(Uuid::parse_str)
            .transpose()
            .map_err(|_| TokenError::Invalid)?;
        Ok(Verified {
            account_id,
            session_id,
            impersonator_id,
        })
    }
}

pub fn now_s() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}
