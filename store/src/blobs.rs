//! Activity files as imported, sealed with the athlete's data key. The blob id is derived from
//! the athlete and the bytes' SHA-256, so storing the same file twice stores it once.

use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::crypto::{DataKey, MasterKey};
use crate::error::{StoreError, StoreResult};
use crate::{Backend, EventStore};

/// Where a stored file is and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub blob_id: Uuid,
    pub format: String,
    /// SHA-256 of the plaintext bytes, 64 lowercase hex digits.
    pub sha256: String,
    pub byte_len: u64,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The blob id of `bytes` for `athlete`: the same file gives the same id.
pub fn blob_id(athlete: Uuid, sha256: &str) -> Uuid {
    Uuid::new_v5(&athlete, sha256.as_bytes())
}

impl EventStore {
    /// Seals and stores a file for `athlete`; storing the same bytes again changes nothing.
    /// Refused for an erased athlete.
    pub async fn put_blob(
        &self,
        athlete: Uuid,
        format: &str,
        bytes: &[u8],
    ) -> StoreResult<BlobRef> {
        let sha256 = sha256_hex(bytes);
        let r = BlobRef {
            blob_id: blob_id(athlete, &sha256),
            format: format.to_string(),
            sha256,
            byte_len: bytes.len() as u64,
        };
        let key = self.write_key(athlete).await?;
        let sealed = key.seal(bytes, &r.blob_id)?;
        match &self.backend {
            Backend::Postgres(p) => {
                sqlx::query(
                    "INSERT INTO sample_blobs (blob_id, athlete_id, format, sha256, byte_len, sealed) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (blob_id) DO NOTHING",
                )
                .bind(r.blob_id)
                .bind(athlete)
                .bind(&r.format)
                .bind(&r.sha256)
                .bind(r.byte_len as i64)
                .bind(&sealed)
                .execute(p)
                .await?;
            }
            Backend::Sqlite(p) => {
                sqlx::query(
                    "INSERT INTO sample_blobs (blob_id, athlete_id, format, sha256, byte_len, sealed, created_at_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (blob_id) DO NOTHING",
                )
                .bind(r.blob_id.to_string())
                .bind(athlete.to_string())
                .bind(&r.format)
                .bind(&r.sha256)
                .bind(r.byte_len as i64)
                .bind(&sealed)
                .bind(Utc::now().timestamp_micros())
                .execute(p)
                .await?;
            }
        }
        Ok(r)
    }

    /// The file's bytes; `None` when there is no such blob for this athlete, or the athlete's
    /// data was erased. The bytes are checked against the stored SHA-256.
    pub async fn get_blob(&self, athlete: Uuid, blob_id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>, String, Option<Vec<u8>>)> = match &self.backend {
            Backend::Postgres(p) => {
                sqlx::query_as(
                    "SELECT b.sealed, b.sha256, k.wrapped_key FROM sample_blobs b \
                     LEFT JOIN athlete_keys k ON k.athlete_id = b.athlete_id \
                     WHERE b.blob_id = $1 AND b.athlete_id = $2",
                )
                .bind(blob_id)
                .bind(athlete)
                .fetch_optional(p)
                .await?
            }
            Backend::Sqlite(p) => {
                sqlx::query_as(
                    "SELECT b.sealed, b.sha256, k.wrapped_key FROM sample_blobs b \
                     LEFT JOIN athlete_keys k ON k.athlete_id = b.athlete_id \
                     WHERE b.blob_id = ?1 AND b.athlete_id = ?2",
                )
                .bind(blob_id.to_string())
                .bind(athlete.to_string())
                .fetch_optional(p)
                .await?
            }
        };
        let Some((sealed, sha256, Some(wrapped))) = row else {
            return Ok(None);
        };
        let key = self.master.unwrap_data_key(&wrapped)?;
        let bytes = key.open(&sealed, &blob_id)?;
        if sha256_hex(&bytes) != sha256 {
            return Err(StoreError::Corrupt(format!(
                "blob {blob_id} does not match its SHA-256"
            )));
        }
        Ok(Some(bytes))
    }

    /// The athlete's stored files (not their bytes), oldest first, but those of `format`
    /// `skip` (the export archives, which are sealed blobs too).
    pub async fn list_blobs(&self, athlete: Uuid, skip: &str) -> StoreResult<Vec<BlobRef>> {
        let rows: Vec<(String, String, String, i64)> = match &self.backend {
            Backend::Postgres(p) => {
                sqlx::query_as(
                    "SELECT blob_id::text, format, sha256, byte_len FROM sample_blobs \
                     WHERE athlete_id = $1 AND format <> $2 ORDER BY created_at, blob_id",
                )
                .bind(athlete)
                .bind(skip)
                .fetch_all(p)
                .await?
            }
            Backend::Sqlite(p) => {
                sqlx::query_as(
                    "SELECT blob_id, format, sha256, byte_len FROM sample_blobs \
                     WHERE athlete_id = ?1 AND format <> ?2 ORDER BY created_at_us, blob_id",
                )
                .bind(athlete.to_string())
                .bind(skip)
                .fetch_all(p)
                .await?
            }
        };
        rows.into_iter()
            .map(|(id, format, sha256, byte_len)| {
                Ok(BlobRef {
                    blob_id: id
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("blob id {id:?}")))?,
                    format,
                    sha256,
                    byte_len: byte_len as u64,
                })
            })
            .collect()
    }

    /// The athlete's data key for writing, created on first use; refuses erased athletes.
    async fn write_key(&self, athlete: Uuid) -> StoreResult<DataKey> {
        if let Some(key) = self.keys.get(athlete) {
            return Ok(key);
        }
        for _ in 0..2 {
            let row: Option<Option<Vec<u8>>> = match &self.backend {
                Backend::Postgres(p) => {
                    sqlx::query_scalar("SELECT wrapped_key FROM athlete_keys WHERE athlete_id = $1")
                        .bind(athlete)
                        .fetch_optional(p)
                        .await?
                }
                Backend::Sqlite(p) => {
                    sqlx::query_scalar("SELECT wrapped_key FROM athlete_keys WHERE athlete_id = ?1")
                        .bind(athlete.to_string())
                        .fetch_optional(p)
                        .await?
                }
            };
            match row {
                Some(Some(wrapped)) => {
                    let key = self.master.unwrap_data_key(&wrapped)?;
                    self.keys.put(athlete, key.clone());
                    return Ok(key);
                }
                Some(None) => return Err(StoreError::AthleteErased(athlete)),
                None => insert_key(&self.backend, &self.master, athlete).await?,
            }
        }
        Err(StoreError::Crypto(format!(
            "could not create a data key for athlete {athlete}"
        )))
    }
}

/// A concurrent first write may win; the caller then reads its key.
async fn insert_key(backend: &Backend, master: &MasterKey, athlete: Uuid) -> StoreResult<()> {
    let (_, wrapped) = master.new_data_key()?;
    match backend {
        Backend::Postgres(p) => {
            sqlx::query(
                "INSERT INTO athlete_keys (athlete_id, wrapped_key) VALUES ($1, $2) \
                 ON CONFLICT (athlete_id) DO NOTHING",
            )
            .bind(athlete)
            .bind(&wrapped)
            .execute(p)
            .await?;
        }
        Backend::Sqlite(p) => {
            sqlx::query(
                "INSERT INTO athlete_keys (athlete_id, wrapped_key, created_at_us) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (athlete_id) DO NOTHING",
            )
            .bind(athlete.to_string())
            .bind(&wrapped)
            .bind(Utc::now().timestamp_micros())
            .execute(p)
            .await?;
        }
    }
    Ok(())
}
