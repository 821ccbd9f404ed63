//! Encryption at rest of the secrets users give the server (model API
//! keys now; forge tokens and webhook secrets with the platform configs).
//!
//! Secrets are sealed with XChaCha20-Poly1305 under a 256-bit server key
//! before they reach the store, and opened only where they are used (a
//! claim answer to a runner). The key comes from `AI_REVIEW_SECRET_KEY`
//! (base64 of 32 bytes) or, when unset, from `secret.key` in the data
//! directory, generated on first start with mode 0600.
//!
//! A sealed value reads `v1:<key id>:<base64(nonce ‖ ciphertext)>`, where
//! the key id is the first 8 hex digits of the key's SHA-256. Rotation:
//! start the server with the new key in `AI_REVIEW_SECRET_KEY` and the old
//! one in `AI_REVIEW_SECRET_KEY_PREVIOUS`; values sealed under either
//! open, and every value saved from then on is sealed under the new key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::Path;

use ai_review_domain::SecretString;

/// Bytes of a server key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const VERSION: &str = "v1";

/// Why a secret could not be sealed, opened or the key loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key material is malformed.
    #[error("{0}")]
    BadKey(String),
    /// The key file could not be read or written.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The stored value was sealed under a key this server does not have,
    /// or it was altered.
    #[error(
        "a stored secret cannot be decrypted: it was sealed under server key {key_id}, which this server does not have (set AI_REVIEW_SECRET_KEY to that key, or AI_REVIEW_SECRET_KEY_PREVIOUS during a rotation), or the value was altered; saving the secret again fixes it"
    )]
    WrongKey {
        /// The key id in the sealed value.
        key_id: String,
    },
    /// The stored value is not a sealed secret.
    #[error("a stored secret is malformed")]
    Malformed,
}

/// A 256-bit server key. Never printed.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_LEN]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// Parses base64 (standard alphabet) of exactly 32 bytes; `what` names
    /// the variable in the error.
    pub fn from_base64(s: &str, what: &str) -> Result<Self, SecretError> {
        let bytes = B64.decode(s.trim()).map_err(|_| {
            SecretError::BadKey(format!(
                "{what} is not base64; generate a key with `openssl rand -base64 32` or `ai-review admin generate-secret-key`"
            ))
        })?;
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            SecretError::BadKey(format!(
                "{what} decodes to {} bytes; it must be 32 bytes (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)",
                b.len()
            ))
        })?;
        Ok(Self(arr))
    }

    /// The key as base64, to write into a key file or show once.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Short public identifier: the first 8 hex digits of its SHA-256.
    pub fn id(&self) -> String {
        let d = Sha256::digest(self.0);
        d.iter().take(4).map(|b| format!("{b:02x}")).collect()
    }

    /// Reads the key file at `path`, or creates it with a new key (mode
    /// 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let file_err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(s) => Self::from_base64(&s, &format!("the key in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(file_err)?;
                }
                let key = Self::generate();
                write_private(path, format!("{}\n", key.to_base64()).as_bytes())
                    .map_err(file_err)?;
                tracing::info!(
                    path = %path.display(),
                    key.id = %key.id(),
                    "generated the server secret key; back it up with the database"
                );
                Ok(key)
            }
            Err(e) => Err(file_err(e)),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Seals and opens secrets with the current key (and previous keys during
/// a rotation).
#[derive(Clone)]
pub struct SecretBox {
    current: (String, XChaCha20Poly1305),
    previous: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.current.0)
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl SecretBox {
    /// A box sealing under `current` and also opening values sealed under
    /// `previous` keys.
    pub fn new(current: &SecretKey, previous: &[SecretKey]) -> Self {
        let entry = |k: &SecretKey| (k.id(), XChaCha20Poly1305::new(&k.0.into()));
        Self {
            current: entry(current),
            previous: previous.iter().map(entry).collect(),
        }
    }

    /// The id of the key new values are sealed under.
    pub fn key_id(&self) -> &str {
        &self.current.0
    }

    /// Seals a secret.
    pub fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and a fresh nonce cannot fail for
        // inputs below the AEAD's 256 GiB limit.
        let ct = self
            .current
            .1
            .encrypt(&nonce, plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{VERSION}:{}:{}", self.current.0, B64.encode(out))
    }

    /// Opens a sealed secret.
    pub fn open(&self, sealed: &str) -> Result<SecretString, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        let bytes = B64.decode(body).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        let wrong = || SecretError::WrongKey {
            key_id: key_id.to_owned(),
        };
        let cipher = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(id, _)| id == key_id)
            .map(|(_, c)| c)
            .ok_or_else(wrong)?;
        let plain = cipher.decrypt(nonce, ct).map_err(|_| wrong())?;
        String::from_utf8(plain)
            .map(SecretString::new)
            .map_err(|_| SecretError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_fresh_nonces() {
        let b = SecretBox::new(&SecretKey::generate(), &[]);
        let a = b.seal("sk-secret");
        let c = b.seal("sk-secret");
        assert_ne!(a, c, "nonces must differ");
        assert!(!a.contains("sk-secret"));
        assert!(a.starts_with(&format!("v1:{}:", b.key_id())));
        assert_eq!(b.open(&a).expect("open").expose(), "sk-secret");
    }

    #[test]
    fn refuses_other_keys_tampering_and_garbage_and_rotates() {
        let old = SecretKey::generate();
        let new = SecretKey::generate();
        let sealed_old = SecretBox::new(&old, &[]).seal("v");
        let only_new = SecretBox::new(&new, &[]);
        let err = only_new.open(&sealed_old).expect_err("other key");
        assert!(err.to_string().contains(&old.id()), "{err}");
        let rotating = SecretBox::new(&new, std::slice::from_ref(&old));
        assert_eq!(rotating.open(&sealed_old).expect("previous").expose(), "v");

        let mut tampered = rotating.seal("value").into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("utf8");
        assert!(matches!(
            rotating.open(&tampered),
            Err(SecretError::WrongKey { .. } | SecretError::Malformed)
        ));
        for junk in ["", "v1:", "v2:abc:def", "v1:00000000:!!!", "plain-text-key"] {
            assert!(rotating.open(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn key_files_are_created_once_private_and_validated() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("sub/secret.key");
        let k1 = SecretKey::load_or_create(&path).expect("create");
        let k2 = SecretKey::load_or_create(&path).expect("load");
        assert_eq!(k1.id(), k2.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{k1:?}").contains(&k1.to_base64()));
        let short = SecretKey::from_base64("AAAA", "AI_REVIEW_SECRET_KEY").expect_err("short");
        assert!(short.to_string().contains("32 bytes"), "{short}");
        let junk = SecretKey::from_base64("%%%", "AI_REVIEW_SECRET_KEY").expect_err("junk");
        assert!(junk.to_string().contains("AI_REVIEW_SECRET_KEY"), "{junk}");
    }
}
