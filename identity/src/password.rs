//! Password hashing: argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane), on the blocking
//! pool, with a cap on how many run at once so a login burst cannot take the memory with it.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;
/// Passwords are at least this many characters; there is no rule on their composition (NIST
/// SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Long enough for any passphrase, short enough that hashing cost stays bounded.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// What a login or a current password may be at most before it is refused unhashed.
pub const MAX_PASSWORD_BYTES: usize = 4 * MAX_PASSWORD_CHARS;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the account does not exist, so the
    /// answer takes as long as for a real account.
    decoy: Arc<String>,
}

impl Passwords {
    /// `concurrency` hashes at a time: each holds ~19 MiB while it runs.
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let decoy = hash_blocking(&uuid::Uuid::new_v4().to_string())?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy: Arc::new(decoy),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
    }

    /// True when `password` matches `hash` (a PHC string).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let (password, real) = (password.to_string(), hash.is_some());
        let hash = hash.map_or_else(|| self.decoy.as_str().to_string(), str::to_string);
        let ok = tokio::task::spawn_blocking(move || {
            hasher()
                .map(|h| {
                    h.verify_password(password.as_bytes(), hash.as_str())
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await?;
        Ok(ok && real)
    }

    /// [`Passwords::verify`] for what a caller typed: longer than [`MAX_PASSWORD_BYTES`], it is
    /// refused unhashed (no password that long can have been set).
    pub async fn verify_bounded(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        Ok(password.len() <= MAX_PASSWORD_BYTES && self.verify(password, hash).await?)
    }
}

fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let hash = hasher()?
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// The password rules, as the message a caller sees.
pub fn check_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters, got {chars}"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "must be at most {MAX_PASSWORD_CHARS} characters, got {chars}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let p = Passwords::new(2).unwrap();
        let hash = p.hash("correct horse battery").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            p.verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !p.verify("correct horse battery!", Some(&hash))
                .await
                .unwrap()
        );
        // The decoy never matches, whatever is typed.
        assert!(!p.verify("anything at all", None).await.unwrap());
    }

    #[test]
    fn password_rules_count_characters_not_bytes() {
        assert!(check_password("short").is_err());
        assert!(check_password("ééééééééé").is_err());
        assert!(check_password("éééééééééé").is_ok());
        assert!(check_password(&"é".repeat(128)).is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }
}
