//! Crypto-shredding. Each athlete has a random 256-bit data key; it encrypts every personal
//! payload of theirs (AES-256-GCM, the event id as associated data so a ciphertext cannot be
//! moved onto another event). Data keys are stored wrapped by the master key from configuration.
//! Erasure deletes the wrapped key: the ciphertexts stay, unreadable, wherever they were copied.
//!
//! Every sealed blob starts with a format byte so the scheme can change without rewriting events.

use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{StoreError, StoreResult};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// The key-encryption key. Never logged: `Debug` prints nothing of it.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        Self(Key::<Aes256Gcm>::generate())
    }

    /// Parses the configured form: 32 bytes, base64.
    pub fn from_base64(text: &str) -> StoreResult<Self> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| {
            StoreError::Crypto("the master key must be base64 (32 random bytes)".into())
        })?;
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            StoreError::Crypto(format!(
                "the master key must be 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self(key.into()))
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_slice())
    }

    /// A fresh data key, and its wrapped form for storage.
    pub fn new_data_key(&self) -> StoreResult<(DataKey, Vec<u8>)> {
        let key = DataKey(Key::<Aes256Gcm>::generate());
        let wrapped = seal(&self.0, key.0.as_slice(), b"stridelog-data-key")?;
        Ok((key, wrapped))
    }

    pub fn unwrap_data_key(&self, wrapped: &[u8]) -> StoreResult<DataKey> {
        let raw = open(&self.0, wrapped, b"stridelog-data-key")?;
        let key = <[u8; 32]>::try_from(raw.as_slice())
            .map_err(|_| StoreError::Crypto("a wrapped data key has the wrong length".into()))?;
        Ok(DataKey(key.into()))
    }
}

/// One athlete's payload key, only ever held in memory unwrapped.
#[derive(Clone)]
pub struct DataKey(Key<Aes256Gcm>);

impl DataKey {
    pub fn seal(&self, plaintext: &[u8], event_id: &uuid::Uuid) -> StoreResult<Vec<u8>> {
        seal(&self.0, plaintext, event_id.as_bytes())
    }

    pub fn open(&self, sealed: &[u8], event_id: &uuid::Uuid) -> StoreResult<Vec<u8>> {
        open(&self.0, sealed, event_id.as_bytes())
    }
}

/// Unwrapped data keys of recent writers, so an append needs no key lookup. Safe to keep per
/// process: a key never changes, it can only be destroyed, and the append statement itself
/// refuses athletes whose key is gone. Readers never use it: they join the key table, so an
/// erasure is visible to every process at once.
#[derive(Default)]
pub struct KeyCache {
    keys: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, DataKey>>,
}

/// Enough for every athlete active at once on one process; past it the cache starts over.
const KEY_CACHE_CAPACITY: usize = 10_000;

impl KeyCache {
    pub fn get(&self, athlete: uuid::Uuid) -> Option<DataKey> {
        self.keys
            .lock()
            .expect("not poisoned")
            .get(&athlete)
            .cloned()
    }

    pub fn put(&self, athlete: uuid::Uuid, key: DataKey) {
        let mut keys = self.keys.lock().expect("not poisoned");
        if keys.len() >= KEY_CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(athlete, key);
    }

    pub fn forget(&self, athlete: uuid::Uuid) {
        self.keys.lock().expect("not poisoned").remove(&athlete);
    }
}

fn seal(key: &Key<Aes256Gcm>, plaintext: &[u8], aad: &[u8]) -> StoreResult<Vec<u8>> {
    let nonce = Nonce::generate();
    let ct = Aes256Gcm::new(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &Key<Aes256Gcm>, sealed: &[u8], aad: &[u8]) -> StoreResult<Vec<u8>> {
    match sealed.split_first() {
        Some((&FORMAT_V1, rest)) if rest.len() > NONCE_LEN => {
            let (nonce, ct) = rest.split_at(NONCE_LEN);
            let nonce =
                Nonce::try_from(nonce).map_err(|_| StoreError::Crypto("malformed nonce".into()))?;
            Aes256Gcm::new(key)
                .decrypt(&nonce, Payload { msg: ct, aad })
                .map_err(|_| {
                    StoreError::Crypto(
                        "a ciphertext failed authentication (wrong master key, or tampering)"
                            .into(),
                    )
                })
        }
        _ => Err(StoreError::Crypto("unknown ciphertext format".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_round_trip_through_the_master_key() {
        let master = MasterKey::generate();
        let (key, wrapped) = master.new_data_key().unwrap();
        let event = uuid::Uuid::now_v7();
        let sealed = key.seal(br#"{"sleep_h":7.5}"#, &event).unwrap();
        let unwrapped = master.unwrap_data_key(&wrapped).unwrap();
        assert_eq!(
            unwrapped.open(&sealed, &event).unwrap(),
            br#"{"sleep_h":7.5}"#
        );
    }

    #[test]
    fn a_ciphertext_is_bound_to_its_event() {
        let (key, _) = MasterKey::generate().new_data_key().unwrap();
        let sealed = key.seal(b"x", &uuid::Uuid::now_v7()).unwrap();
        assert!(key.open(&sealed, &uuid::Uuid::now_v7()).is_err());
    }

    #[test]
    fn another_master_key_cannot_unwrap() {
        let (_, wrapped) = MasterKey::generate().new_data_key().unwrap();
        assert!(MasterKey::generate().unwrap_data_key(&wrapped).is_err());
    }

    #[test]
    fn master_keys_parse_from_base64() {
        let k = MasterKey::generate();
        let again = MasterKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(again.to_base64(), k.to_base64());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(..)");
    }
}
