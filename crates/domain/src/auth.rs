use crate::{ParseError, state::string_enum};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

string_enum!(
    /// A permission a user holds; API keys inherit their owner's.
    Permission, "permission" {
        /// Queue reviews (manual, local, API).
        ReviewCreate => "review:create",
        /// Add projects.
        ProjectCreate => "project:create",
        /// Change project settings.
        ProjectUpdate => "project:update",
        /// Create platform, AI and notification configs.
        ConfigCreate => "config:create",
        /// Change configs.
        ConfigUpdate => "config:update",
        /// Delete configs.
        ConfigDelete => "config:delete",
    }
);

string_enum!(
    /// A user's role. `admin` implies every permission and admin-only
    /// endpoints (users, decrypted secrets, other users' keys).
    Role, "role" {
        /// Ordinary user: exactly the permissions granted.
        User => "user",
        /// Administrator.
        Admin => "admin",
    }
);

/// The visible prefix of every API key, so leaked keys are recognisable by
/// secret scanners and in support requests.
pub const API_KEY_PREFIX: &str = "air_";
const API_KEY_BODY_LEN: usize = 40;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// An API key in clear: exists only between generation and the one response
/// that shows it, and between receiving a request and hashing it. Its
/// `Debug` and `Display` never reveal it.
#[derive(Clone)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// A new random key: `air_` and 40 alphanumerics (about 238 bits).
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let body: String = (0..API_KEY_BODY_LEN)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(format!("{API_KEY_PREFIX}{body}"))
    }

    /// Checks the shape of a presented key (prefix, length, alphabet)
    /// without touching storage, so malformed keys get a precise message.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let body = s.strip_prefix(API_KEY_PREFIX).ok_or_else(|| {
            ParseError::new("API key", format!("it must start with {API_KEY_PREFIX}"))
        })?;
        if body.len() != API_KEY_BODY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError::new(
                "API key",
                format!(
                    "expected {API_KEY_PREFIX} followed by {API_KEY_BODY_LEN} letters and digits"
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key in clear. Call only to show it once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first characters, safe to display to identify the key.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(API_KEY_PREFIX.len() + 6).collect()
    }

    /// The SHA-256 digest stored instead of the key. A fast hash is right
    /// here: the key has ~238 bits of entropy, so there is nothing to
    /// brute-force, and every request must verify one.
    pub fn digest(&self) -> ApiKeyDigest {
        ApiKeyDigest(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.display_prefix())
    }
}

/// The stored SHA-256 digest of an API key (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest(String);

impl ApiKeyDigest {
    /// Wraps a digest read from storage.
    pub fn from_hex(s: String) -> Self {
        Self(s)
    }

    /// The digest as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for comparing a looked-up digest with the
    /// digest of the presented key.
    pub fn ct_eq(&self, other: &ApiKeyDigest) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_never_print() {
        let k = ApiKeySecret::generate();
        assert!(k.expose().starts_with("air_"));
        let parsed = ApiKeySecret::parse(k.expose()).expect("own key parses");
        assert!(parsed.digest().ct_eq(&k.digest()));
        assert!(!format!("{k:?}").contains(&k.expose()[10..]));
        assert_ne!(ApiKeySecret::generate().digest(), k.digest());
    }

    #[test]
    fn malformed_keys_are_explained() {
        let e = ApiKeySecret::parse("sk-123").expect_err("wrong prefix");
        assert!(e.to_string().contains("air_"), "{e}");
        assert!(ApiKeySecret::parse("air_short").is_err());
        assert!(ApiKeySecret::parse(&format!("air_{}", "!".repeat(40))).is_err());
    }

    #[test]
    fn permission_strings_are_the_documented_ones() {
        let names: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "review:create",
                "project:create",
                "project:update",
                "config:create",
                "config:update",
                "config:delete"
            ]
        );
    }
}
