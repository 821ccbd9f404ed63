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

/// A browser session token in clear: 32 random bytes, URL-safe base64.
/// It lives only in the `HttpOnly` cookie and, between receiving a request
/// and hashing it, in memory; storage keeps [`SessionSecret::digest`].
/// Its `Debug` never reveals it.
#[derive(Clone)]
pub struct SessionSecret(String);

/// Length of a session token's text (32 bytes in unpadded base64url).
const SESSION_TOKEN_LEN: usize = 43;

impl SessionSecret {
    /// A new random session token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes);
        Self(base64url(&bytes))
    }

    /// Checks the shape of a presented cookie value.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() == SESSION_TOKEN_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new("session", "malformed session cookie"))
        }
    }

    /// The token in clear, for the `Set-Cookie` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest stored instead of the token (fast hash: the token
    /// carries 256 bits of entropy).
    pub fn digest(&self) -> ApiKeyDigest {
        ApiKeyDigest(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// The CSRF token bound to this session: a one-way derivation, so it can
    /// sit in every form without storage and without revealing the session
    /// token, and a page from another site cannot know it.
    pub fn csrf_token(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"ai-review csrf v1\0");
        h.update(self.0.as_bytes());
        base64url(&h.finalize())
    }

    /// Constant-time check of a submitted CSRF token.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        self.csrf_token()
            .as_bytes()
            .ct_eq(submitted.as_bytes())
            .into()
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(***)")
    }
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
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

    #[test]
    fn session_tokens_parse_hide_and_bind_csrf() {
        let s = SessionSecret::generate();
        assert_eq!(s.expose().len(), SESSION_TOKEN_LEN);
        let p = SessionSecret::parse(s.expose()).expect("own token parses");
        assert!(p.digest().ct_eq(&s.digest()));
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(s.csrf_matches(&s.csrf_token()));
        let other = SessionSecret::generate();
        assert!(!s.csrf_matches(&other.csrf_token()));
        assert!(!s.csrf_matches(""));
        assert_ne!(s.csrf_token(), s.expose());
        assert!(SessionSecret::parse("short").is_err());
        assert!(SessionSecret::parse(&"=".repeat(SESSION_TOKEN_LEN)).is_err());
    }
}
