//! Web Push (RFC 8030) with message encryption (RFC 8291) and VAPID (RFC 8292).
//!
//! The sending side only: checking a browser's subscription, encrypting a
//! payload into one `aes128gcm` record (RFC 8188), signing the VAPID JWT,
//! and POSTing the message to the push service.
//!
//! Keys travel as base64url without padding (padded input is accepted):
//! a public key is an uncompressed P-256 point (65 bytes, `0x04 || x || y`),
//! a private key the 32-byte scalar, as `web-push generate-vapid-keys`
//! prints them. Error messages never contain an endpoint URL (it is a
//! capability: whoever knows it can push to the browser) nor a key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::{FieldBytes, PublicKey, SecretKey};
use rand::RngCore as _;
use sha2::Sha256;
use std::fmt;
use std::time::Duration;

/// Record size announced in the `aes128gcm` header.
const RECORD_SIZE: u32 = 4096;
/// Length of the `aes128gcm` header: salt (16), rs (4), idlen (1), keyid (65).
const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// AES-GCM authentication tag.
const TAG_LEN: usize = 16;
/// The largest plaintext that fits one 4096-byte record with its header:
/// 4096 − 16 (tag) − 1 (padding delimiter) − 86 (header) = 3993 bytes.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - TAG_LEN - 1 - HEADER_LEN;
/// Lifetime of a VAPID JWT (RFC 8292 allows at most 24 hours).
const JWT_LIFETIME_SECS: u64 = 12 * 3600;
/// Characters of a refused response's body kept for the error.
const DETAIL_CHARS: usize = 200;
/// Bytes of a refused response's body read at most.
const DETAIL_READ_LIMIT: usize = 4096;

/// Names of the inputs, as the API spells them, for error messages.
const VAPID_PUBLIC: &str = "vapidPublicKey";
const VAPID_PRIVATE: &str = "vapidPrivateKey";
const P256DH: &str = "keys.p256dh";
const AUTH: &str = "keys.auth";

/// Why a key, subscription, payload or VAPID claim cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebPushError {
    /// The field is not base64url.
    #[error("{field} is not valid base64url (expected letters, digits, '-' and '_')")]
    Base64 {
        /// Which input.
        field: &'static str,
    },
    /// The field decodes to the wrong number of bytes.
    #[error("{field} must decode to {expected} bytes ({what}), but it has {got}")]
    Length {
        /// Which input.
        field: &'static str,
        /// What the field should hold.
        what: &'static str,
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// The field has the right length but is not a usable P-256 key.
    #[error("{field} is not a valid P-256 key: {reason}")]
    Key {
        /// Which input.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The two halves of the VAPID pair do not belong together.
    #[error(
        "vapidPublicKey is not the public half of vapidPrivateKey: import both keys of the same pair (as `web-push generate-vapid-keys` prints them) or generate a new pair"
    )]
    KeyMismatch,
    /// The subscription endpoint cannot be used (the URL itself is never shown).
    #[error("endpoint {0}")]
    Endpoint(&'static str),
    /// The VAPID subject is not a contact URI.
    #[error(
        "the VAPID subject must be a mailto: or https: URI (for example mailto:admin@example.com); {0}"
    )]
    Subject(&'static str),
    /// The topic is not a valid RFC 8030 topic.
    #[error("the push topic must be 1 to 32 characters of base64url (letters, digits, '-', '_')")]
    Topic,
    /// The payload does not fit one record.
    #[error("the push payload is {len} bytes; Web Push carries at most {max} bytes")]
    PayloadTooLarge {
        /// Bytes given.
        len: usize,
        /// [`MAX_PLAINTEXT`].
        max: usize,
    },
    /// A cryptographic primitive failed (should not happen with valid keys).
    #[error("Web Push cryptography failed: {0}")]
    Crypto(&'static str),
}

/// A VAPID key pair (RFC 8292), base64url without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct VapidKeys {
    /// The uncompressed P-256 public key (65 bytes), the
    /// `applicationServerKey` browsers subscribe with.
    pub public_key: String,
    /// The 32-byte private scalar. Secret.
    pub private_key: String,
}

impl fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKeys")
            .field("public_key", &self.public_key)
            .field("private_key", &"***")
            .finish()
    }
}

/// Generates a fresh VAPID key pair.
pub fn generate_vapid_keys() -> VapidKeys {
    let secret = random_secret_key();
    VapidKeys {
        public_key: encode_public(&secret.public_key()),
        private_key: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
    }
}

/// Checks that both keys parse and that `public` is `private`'s public key.
pub fn check_vapid_keys(public: &str, private: &str) -> Result<(), WebPushError> {
    parse_vapid(public, private).map(|_| ())
}

/// Checks a browser's push subscription: `endpoint` is an absolute
/// `https://` URL (`http://` only for a loopback host, for local test
/// receivers), `p256dh` an uncompressed P-256 public key and `auth` a
/// 16-byte secret.
pub fn check_subscription(endpoint: &str, p256dh: &str, auth: &str) -> Result<(), WebPushError> {
    parse_endpoint(endpoint)?;
    parse_public(P256DH, p256dh)?;
    parse_auth(auth)?;
    Ok(())
}

/// Encrypts `plaintext` for a subscription (RFC 8291): one `aes128gcm`
/// record with a fresh salt and a fresh ephemeral sender key. The result
/// is the request body, header included.
pub fn encrypt(p256dh: &str, auth: &str, plaintext: &[u8]) -> Result<Vec<u8>, WebPushError> {
    let ua_public = parse_public(P256DH, p256dh)?;
    let auth = parse_auth(auth)?;
    check_plaintext(plaintext)?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    encrypt_with(&ua_public, &auth, plaintext, &random_secret_key(), salt)
}

/// RFC 8291 §3 with the sender's ephemeral key and the salt given.
fn encrypt_with(
    ua_public: &PublicKey,
    auth: &[u8; 16],
    plaintext: &[u8],
    as_secret: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, WebPushError> {
    check_plaintext(plaintext)?;
    let as_public = as_secret.public_key();
    let as_public_bytes = as_public.to_encoded_point(false);
    let ua_public_bytes = ua_public.to_encoded_point(false);

    // §3.3: combine the ECDH secret with the authentication secret.
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public_bytes.as_bytes());
    key_info.extend_from_slice(as_public_bytes.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|_| WebPushError::Crypto("HKDF expand of the input keying material"))?;

    // RFC 8188 §2.2–2.3: content-encryption key and nonce.
    let prk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| WebPushError::Crypto("HKDF expand of the content key"))?;
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| WebPushError::Crypto("HKDF expand of the nonce"))?;

    // One record, the last: plaintext, delimiter 0x02, no padding.
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek)
        .map_err(|_| WebPushError::Crypto("AES-128-GCM key setup"))?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .map_err(|_| WebPushError::Crypto("AES-128-GCM encryption"))?;

    // RFC 8188 §2.1 header: salt, rs, idlen, keyid (the sender's public key).
    let keyid = as_public_bytes.as_bytes();
    let idlen = u8::try_from(keyid.len()).map_err(|_| WebPushError::Crypto("key id length"))?;
    let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(idlen);
    body.extend_from_slice(keyid);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The `Authorization` header value for a push to `endpoint` (RFC 8292):
/// `vapid t=<JWT>, k=<public key>`, the JWT (ES256) claiming `aud` = the
/// endpoint's origin, `exp` = `now_unix_secs` + 12 h and `sub` = `subject`
/// (a `mailto:` or `https:` URI).
pub fn vapid_authorization(
    endpoint: &str,
    keys: &VapidKeys,
    subject: &str,
    now_unix_secs: u64,
) -> Result<String, WebPushError> {
    let url = parse_endpoint(endpoint)?;
    let secret = parse_vapid(&keys.public_key, &keys.private_key)?;
    check_subject(subject)?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = serde_json::json!({
        "aud": url.origin().ascii_serialization(),
        "exp": now_unix_secs.saturating_add(JWT_LIFETIME_SECS),
        "sub": subject,
    });
    let claims =
        serde_json::to_vec(&claims).map_err(|_| WebPushError::Crypto("encoding the JWT claims"))?;
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature: Signature = SigningKey::from(&secret)
        .try_sign(signing_input.as_bytes())
        .map_err(|_| WebPushError::Crypto("ES256 signing"))?;
    let signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
    let k = encode_public(&secret.public_key());
    Ok(format!("vapid t={signing_input}.{signature}, k={k}"))
}

/// How soon the push service should deliver (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Urgency {
    /// `very-low`: deliver when the device is on power and Wi-Fi.
    VeryLow,
    /// `low`: deliver when the device is on power or Wi-Fi.
    Low,
    /// `normal`: deliver when the device is not on low battery.
    #[default]
    Normal,
    /// `high`: deliver now.
    High,
}

impl Urgency {
    /// The `Urgency` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// One push message to one browser subscription.
#[derive(Clone, Copy)]
pub struct PushMessage<'a> {
    /// The subscription's endpoint (a capability URL).
    pub endpoint: &'a str,
    /// The browser's public key (base64url, uncompressed P-256).
    pub p256dh: &'a str,
    /// The browser's 16-byte authentication secret (base64url).
    pub auth: &'a str,
    /// The plaintext, at most [`MAX_PLAINTEXT`] bytes.
    pub payload: &'a [u8],
    /// How long the push service keeps the message for an offline browser.
    pub ttl_secs: u32,
    /// Delivery urgency.
    pub urgency: Urgency,
    /// A topic: a newer message with the same topic replaces an undelivered
    /// older one (1 to 32 base64url characters).
    pub topic: Option<&'a str>,
}

impl fmt::Debug for PushMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The endpoint and the auth secret are capabilities: never shown.
        f.debug_struct("PushMessage")
            .field("payload_len", &self.payload.len())
            .field("ttl_secs", &self.ttl_secs)
            .field("urgency", &self.urgency)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Why a push message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 404 or 410: the subscription no longer exists and should be deleted.
    #[error(
        "the push service says this browser subscription no longer exists (HTTP {status}); the browser has to subscribe again"
    )]
    Gone {
        /// The HTTP status.
        status: u16,
    },
    /// Any other non-2xx answer.
    #[error("{}", rejected_message(*status, detail))]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the response body (and `Retry-After` for 429).
        detail: String,
    },
    /// No answer within the timeout.
    #[error("the push service did not answer in time; it will be tried again")]
    Timeout,
    /// The push service could not be reached.
    #[error(
        "could not connect to the push service (check the server's network, DNS and outbound firewall)"
    )]
    Connect,
    /// Another transport failure.
    #[error("the push request failed: {0}")]
    Request(String),
    /// The message, subscription or VAPID settings cannot be used.
    #[error("cannot send this push message: {0}")]
    Invalid(#[from] WebPushError),
}

impl SendError {
    /// No later try can succeed: a gone subscription, invalid input, or a
    /// 4xx answer other than 408 (timeout) and 429 (rate limit).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Gone { .. } | Self::Invalid(_) => true,
            Self::Rejected { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            Self::Timeout | Self::Connect | Self::Request(_) => false,
        }
    }
}

fn rejected_message(status: u16, detail: &str) -> String {
    let hint = match status {
        400 => "; the push service found the request malformed",
        401 | 403 => {
            "; the VAPID signature was refused: the subscription was probably made for another VAPID key pair, or the subject is not accepted"
        }
        413 => "; the payload is too large for this push service",
        429 => "; too many messages, the push service asks to slow down",
        500..=599 => "; the push service has a problem, a later try may succeed",
        _ => "",
    };
    if detail.is_empty() {
        format!("the push service refused the message (HTTP {status}){hint}")
    } else {
        format!("the push service refused the message (HTTP {status}){hint}: {detail}")
    }
}

/// Sends one push message: encrypts the payload, signs the VAPID JWT and
/// POSTs to the endpoint within `timeout`. Any 2xx (push services answer
/// 201) is success.
pub async fn send(
    http: &reqwest::Client,
    msg: &PushMessage<'_>,
    keys: &VapidKeys,
    subject: &str,
    now_unix_secs: u64,
    timeout: Duration,
) -> Result<(), SendError> {
    check_subscription(msg.endpoint, msg.p256dh, msg.auth)?;
    if let Some(topic) = msg.topic {
        check_topic(topic)?;
    }
    let body = encrypt(msg.p256dh, msg.auth, msg.payload)?;
    let authorization = vapid_authorization(msg.endpoint, keys, subject, now_unix_secs)?;
    let mut request = http
        .post(msg.endpoint)
        .timeout(timeout)
        .header("TTL", msg.ttl_secs.to_string())
        .header("Urgency", msg.urgency.as_str())
        .header("Content-Encoding", "aes128gcm")
        .header("Content-Type", "application/octet-stream")
        .header("Authorization", authorization)
        .body(body);
    if let Some(topic) = msg.topic {
        request = request.header("Topic", topic);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| transport_error(e, msg.endpoint))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let status = status.as_u16();
    if status == 404 || status == 410 {
        return Err(SendError::Gone { status });
    }
    let retry_after = (status == 429)
        .then(|| response.headers().get("Retry-After"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(|v| clean_text(v, 64))
        .filter(|v| !v.is_empty());
    // The body is only for the message: a failure reading it is ignored.
    let mut raw = Vec::new();
    while raw.len() < DETAIL_READ_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = scrub(&String::from_utf8_lossy(&raw), msg.endpoint);
    let text = clean_text(&text, DETAIL_CHARS);
    let detail = match retry_after {
        Some(r) if text.is_empty() => format!("Retry-After: {r}"),
        Some(r) => format!("Retry-After: {r}; {text}"),
        None => text,
    };
    Err(SendError::Rejected { status, detail })
}

/// Classifies a transport error without leaking the endpoint.
fn transport_error(e: reqwest::Error, endpoint: &str) -> SendError {
    if e.is_timeout() {
        return SendError::Timeout;
    }
    if e.is_connect() {
        return SendError::Connect;
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    SendError::Request(clean_text(&scrub(&text, endpoint), 300))
}

/// Single-line printable text of at most `max` characters.
fn clean_text(s: &str, max: usize) -> String {
    let collapsed: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    collapsed.chars().take(max).collect()
}

/// Removes the endpoint (and its path, the capability part) from a text.
fn scrub(text: &str, endpoint: &str) -> String {
    let mut out = text.replace(endpoint, "<endpoint>");
    if let Ok(url) = url::Url::parse(endpoint) {
        let path = url.path();
        if path.len() > 1 {
            out = out.replace(path, "/<path>");
        }
    }
    out
}

fn check_plaintext(plaintext: &[u8]) -> Result<(), WebPushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(WebPushError::PayloadTooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT,
        });
    }
    Ok(())
}

fn check_subject(subject: &str) -> Result<(), WebPushError> {
    let url = url::Url::parse(subject).map_err(|_| WebPushError::Subject("it is not a URI"))?;
    match url.scheme() {
        "mailto" if url.path().contains('@') => Ok(()),
        "mailto" => Err(WebPushError::Subject("the mailto: URI has no address")),
        "https" => Ok(()),
        _ => Err(WebPushError::Subject("it uses another scheme")),
    }
}

fn check_topic(topic: &str) -> Result<(), WebPushError> {
    let ok = (1..=32).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(WebPushError::Topic) }
}

fn parse_endpoint(endpoint: &str) -> Result<url::Url, WebPushError> {
    let url = url::Url::parse(endpoint.trim())
        .map_err(|_| WebPushError::Endpoint("is not an absolute URL"))?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "https" => Err(WebPushError::Endpoint("has no host")),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(WebPushError::Endpoint(
            "must use https:// (http:// is only allowed for a loopback host such as 127.0.0.1, ::1 or localhost)",
        )),
        _ => Err(WebPushError::Endpoint("must be an https:// URL")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// base64url, padded or not (standard-alphabet input is tolerated too).
fn decode(field: &'static str, value: &str) -> Result<Vec<u8>, WebPushError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let normalized: String = value
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    LENIENT
        .decode(normalized)
        .map_err(|_| WebPushError::Base64 { field })
}

fn parse_public(field: &'static str, value: &str) -> Result<PublicKey, WebPushError> {
    let bytes = decode(field, value)?;
    if bytes.len() != 65 {
        return Err(WebPushError::Length {
            field,
            what: "an uncompressed P-256 public key",
            expected: 65,
            got: bytes.len(),
        });
    }
    if bytes.first() != Some(&4) {
        return Err(WebPushError::Key {
            field,
            reason: "an uncompressed point starts with the byte 0x04",
        });
    }
    PublicKey::from_sec1_bytes(&bytes).map_err(|_| WebPushError::Key {
        field,
        reason: "the point is not on the curve",
    })
}

fn parse_private(field: &'static str, value: &str) -> Result<SecretKey, WebPushError> {
    let bytes = decode(field, value)?;
    if bytes.len() != 32 {
        return Err(WebPushError::Length {
            field,
            what: "a P-256 private key",
            expected: 32,
            got: bytes.len(),
        });
    }
    SecretKey::from_bytes(FieldBytes::from_slice(&bytes)).map_err(|_| WebPushError::Key {
        field,
        reason: "the scalar is zero or not below the curve order",
    })
}

fn parse_auth(value: &str) -> Result<[u8; 16], WebPushError> {
    let bytes = decode(AUTH, value)?;
    let got = bytes.len();
    bytes.try_into().map_err(|_| WebPushError::Length {
        field: AUTH,
        what: "the authentication secret",
        expected: 16,
        got,
    })
}

/// Parses a VAPID pair and checks the halves belong together.
fn parse_vapid(public: &str, private: &str) -> Result<SecretKey, WebPushError> {
    let public = parse_public(VAPID_PUBLIC, public)?;
    let secret = parse_private(VAPID_PRIVATE, private)?;
    if secret.public_key() != public {
        return Err(WebPushError::KeyMismatch);
    }
    Ok(secret)
}

fn encode_public(key: &PublicKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_encoded_point(false).as_bytes())
}

fn random_secret_key() -> SecretKey {
    let mut rng = rand::rng();
    loop {
        let mut bytes = FieldBytes::default();
        rng.fill_bytes(&mut bytes);
        // Fails only for zero or a value ≥ the order (probability ~2^-32).
        if let Ok(key) = SecretKey::from_bytes(&bytes) {
            return key;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;
    use std::sync::{Arc, Mutex};

    // RFC 8291 Appendix A (and §5).
    const RFC_PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const RFC_AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const RFC_AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const RFC_UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const RFC_UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const RFC_AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const RFC_SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const RFC_BODY: &str = concat!(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS",
        "6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qu",
        "lcy4a-fN",
    );

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    /// The browser's side (RFC 8291 §3.4 / RFC 8188 §2): decrypts a body.
    fn ua_decrypt(body: &[u8], ua_secret: &SecretKey, auth: &[u8]) -> Vec<u8> {
        let salt = &body[..16];
        assert_eq!(u32::from_be_bytes(body[16..20].try_into().unwrap()), 4096);
        let idlen = usize::from(body[20]);
        assert_eq!(idlen, 65);
        let as_public = PublicKey::from_sec1_bytes(&body[21..21 + idlen]).unwrap();
        let ciphertext = &body[21 + idlen..];
        let shared =
            p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(ua_secret.public_key().to_encoded_point(false).as_bytes());
        info.extend_from_slice(as_public.to_encoded_point(false).as_bytes());
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .unwrap();
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let mut record = Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(Nonce::from_slice(&nonce), ciphertext)
            .unwrap();
        assert_eq!(record.pop(), Some(2), "last-record delimiter");
        record
    }

    fn rfc_secret(s: &str) -> SecretKey {
        SecretKey::from_slice(&b64(s)).unwrap()
    }

    fn browser() -> (SecretKey, String, String) {
        let secret = random_secret_key();
        let p256dh = encode_public(&secret.public_key());
        (secret, p256dh, URL_SAFE_NO_PAD.encode([7u8; 16]))
    }

    #[test]
    fn rfc8291_appendix_a_exact_body() {
        let as_secret = rfc_secret(RFC_AS_PRIVATE);
        assert_eq!(encode_public(&as_secret.public_key()), RFC_AS_PUBLIC);
        let ua_public = parse_public(P256DH, RFC_UA_PUBLIC).unwrap();
        let auth = parse_auth(RFC_AUTH).unwrap();
        let salt: [u8; 16] = b64(RFC_SALT).try_into().unwrap();
        let body = encrypt_with(
            &ua_public,
            &auth,
            RFC_PLAINTEXT.as_bytes(),
            &as_secret,
            salt,
        )
        .unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), RFC_BODY);
        assert_eq!(body, b64(RFC_BODY));
        // And the RFC's browser reads it back.
        let plain = ua_decrypt(&body, &rfc_secret(RFC_UA_PRIVATE), &auth);
        assert_eq!(plain, RFC_PLAINTEXT.as_bytes());
    }

    #[test]
    fn encrypt_round_trips_with_fresh_salt_and_key() {
        let (ua, p256dh, auth) = browser();
        let a = encrypt(&p256dh, &auth, b"{\"title\":\"hi\"}").unwrap();
        let b = encrypt(&p256dh, &auth, b"{\"title\":\"hi\"}").unwrap();
        assert_ne!(a[..16], b[..16], "fresh salt");
        assert_ne!(a[21..86], b[21..86], "fresh ephemeral key");
        assert_eq!(a.len(), HEADER_LEN + 14 + 1 + TAG_LEN);
        assert_eq!(ua_decrypt(&a, &ua, &[7u8; 16]), b"{\"title\":\"hi\"}");
        assert_eq!(ua_decrypt(&b, &ua, &[7u8; 16]), b"{\"title\":\"hi\"}");
        // Empty payloads are fine too.
        let e = encrypt(&p256dh, &auth, b"").unwrap();
        assert!(ua_decrypt(&e, &ua, &[7u8; 16]).is_empty());
    }

    #[test]
    fn max_plaintext_fills_exactly_one_4096_byte_body() {
        assert_eq!(MAX_PLAINTEXT, 3993);
        let (ua, p256dh, auth) = browser();
        let full = vec![b'x'; MAX_PLAINTEXT];
        let body = encrypt(&p256dh, &auth, &full).unwrap();
        assert_eq!(body.len(), 4096);
        assert_eq!(ua_decrypt(&body, &ua, &[7u8; 16]), full);
        let err = encrypt(&p256dh, &auth, &[0u8; MAX_PLAINTEXT + 1]).unwrap_err();
        assert_eq!(
            err,
            WebPushError::PayloadTooLarge {
                len: 3994,
                max: 3993
            }
        );
        assert!(err.to_string().contains("3994 bytes"), "{err}");
    }

    #[test]
    fn encrypt_refuses_bad_subscription_keys() {
        let (_, p256dh, auth) = browser();
        assert_eq!(
            encrypt("not base64!", &auth, b"x").unwrap_err(),
            WebPushError::Base64 { field: P256DH }
        );
        assert!(matches!(
            encrypt(&p256dh, &URL_SAFE_NO_PAD.encode([1u8; 15]), b"x").unwrap_err(),
            WebPushError::Length {
                field: AUTH,
                expected: 16,
                got: 15,
                ..
            }
        ));
    }

    #[test]
    fn generated_vapid_keys_have_the_web_push_format() {
        let keys = generate_vapid_keys();
        assert_eq!(keys.public_key.len(), 87);
        assert_eq!(keys.private_key.len(), 43);
        assert!(!keys.public_key.contains('='));
        assert_eq!(b64(&keys.public_key)[0], 4);
        check_vapid_keys(&keys.public_key, &keys.private_key).unwrap();
        assert_ne!(generate_vapid_keys(), keys);
        let debug = format!("{keys:?}");
        assert!(!debug.contains(&keys.private_key), "{debug}");
    }

    #[test]
    fn check_vapid_keys_accepts_imported_and_padded_keys() {
        // The RFC's sender key pair, as another tool would print it.
        check_vapid_keys(RFC_AS_PUBLIC, RFC_AS_PRIVATE).unwrap();
        let padded_public = format!("{RFC_AS_PUBLIC}=");
        let padded_private = format!("{RFC_AS_PRIVATE}=\n");
        check_vapid_keys(&padded_public, &padded_private).unwrap();
    }

    #[test]
    fn check_vapid_keys_names_the_wrong_field() {
        let keys = generate_vapid_keys();
        let err = check_vapid_keys("%%%", &keys.private_key).unwrap_err();
        assert_eq!(
            err,
            WebPushError::Base64 {
                field: VAPID_PUBLIC
            }
        );
        assert!(
            err.to_string()
                .starts_with("vapidPublicKey is not valid base64url")
        );

        let err = check_vapid_keys(&keys.public_key, "a*b").unwrap_err();
        assert_eq!(
            err,
            WebPushError::Base64 {
                field: VAPID_PRIVATE
            }
        );

        let short = URL_SAFE_NO_PAD.encode([4u8; 33]);
        let err = check_vapid_keys(&short, &keys.private_key).unwrap_err();
        assert!(matches!(
            err,
            WebPushError::Length {
                field: VAPID_PUBLIC,
                expected: 65,
                got: 33,
                ..
            }
        ));
        assert!(err.to_string().contains("65 bytes"), "{err}");

        let err =
            check_vapid_keys(&keys.public_key, &URL_SAFE_NO_PAD.encode([1u8; 31])).unwrap_err();
        assert!(matches!(
            err,
            WebPushError::Length {
                field: VAPID_PRIVATE,
                expected: 32,
                got: 31,
                ..
            }
        ));

        // Compressed form of a point: right curve, wrong encoding.
        let mut compressed = vec![3u8];
        compressed.extend_from_slice(&b64(&keys.public_key)[1..33]);
        compressed.extend_from_slice(&[0u8; 32]);
        let err =
            check_vapid_keys(&URL_SAFE_NO_PAD.encode(&compressed), &keys.private_key).unwrap_err();
        assert!(
            matches!(
                err,
                WebPushError::Key {
                    field: VAPID_PUBLIC,
                    ..
                }
            ),
            "{err}"
        );

        // Not on the curve.
        let mut off = b64(&keys.public_key);
        off[64] ^= 1;
        let err = check_vapid_keys(&URL_SAFE_NO_PAD.encode(&off), &keys.private_key).unwrap_err();
        assert!(
            matches!(
                err,
                WebPushError::Key {
                    field: VAPID_PUBLIC,
                    ..
                }
            ),
            "{err}"
        );

        // Zero scalar.
        let err =
            check_vapid_keys(&keys.public_key, &URL_SAFE_NO_PAD.encode([0u8; 32])).unwrap_err();
        assert!(
            matches!(
                err,
                WebPushError::Key {
                    field: VAPID_PRIVATE,
                    ..
                }
            ),
            "{err}"
        );

        // Both valid, not a pair.
        let other = generate_vapid_keys();
        let err = check_vapid_keys(&keys.public_key, &other.private_key).unwrap_err();
        assert_eq!(err, WebPushError::KeyMismatch);
        assert!(err.to_string().contains("not the public half"));
    }

    #[test]
    fn check_subscription_accepts_https_and_loopback_http() {
        let (_, p256dh, auth) = browser();
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
            "http://127.0.0.1:8080/push/1",
            "http://127.9.9.9/push",
            "http://[::1]:9000/push",
            "http://localhost:3000/push",
            "http://LOCALHOST/push",
        ] {
            check_subscription(endpoint, &p256dh, &auth).unwrap();
        }
        // Padded keys, as some browsers' JSON gives them.
        check_subscription(
            "https://push.example/x",
            &format!("{p256dh}="),
            &format!("{auth}=="),
        )
        .unwrap();
    }

    #[test]
    fn check_subscription_refuses_bad_endpoints_without_echoing_them() {
        let (_, p256dh, auth) = browser();
        for endpoint in [
            "http://push.example.com/secret-token",
            "http://10.0.0.1/secret-token",
            "http://[::2]/secret-token",
            "http://localhost.evil.example/secret-token",
            "ftp://push.example.com/secret-token",
            "/relative/secret-token",
            "secret-token",
        ] {
            let err = check_subscription(endpoint, &p256dh, &auth).unwrap_err();
            assert!(
                matches!(err, WebPushError::Endpoint(_)),
                "{endpoint}: {err}"
            );
            let text = err.to_string();
            assert!(text.starts_with("endpoint "), "{text}");
            assert!(!text.contains("secret-token"), "{text}");
        }
        let err = check_subscription("http://push.example.com/x", &p256dh, &auth).unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn check_subscription_names_the_bad_key() {
        let (_, p256dh, auth) = browser();
        let ep = "https://push.example/x";
        let err = check_subscription(ep, "!!!", &auth).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("keys.p256dh is not valid base64url"),
            "{err}"
        );
        let err = check_subscription(ep, &URL_SAFE_NO_PAD.encode([4u8; 64]), &auth).unwrap_err();
        assert!(
            matches!(
                err,
                WebPushError::Length {
                    field: P256DH,
                    got: 64,
                    ..
                }
            ),
            "{err}"
        );
        let err = check_subscription(ep, &p256dh, "!!").unwrap_err();
        assert_eq!(err, WebPushError::Base64 { field: AUTH });
        let err = check_subscription(ep, &p256dh, &URL_SAFE_NO_PAD.encode([0u8; 32])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "keys.auth must decode to 16 bytes (the authentication secret), but it has 32"
        );
    }

    /// Splits and verifies a VAPID header; returns the claims.
    fn verify_vapid(header: &str, keys: &VapidKeys) -> serde_json::Value {
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, keys.public_key);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let head: serde_json::Value = serde_json::from_slice(&b64(parts[0])).unwrap();
        assert_eq!(head, serde_json::json!({"typ": "JWT", "alg": "ES256"}));
        let sig_bytes = b64(parts[2]);
        assert_eq!(sig_bytes.len(), 64, "raw r||s");
        let signature = Signature::from_slice(&sig_bytes).unwrap();
        let verifying = VerifyingKey::from_sec1_bytes(&b64(k)).unwrap();
        verifying
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        serde_json::from_slice(&b64(parts[1])).unwrap()
    }

    #[test]
    fn vapid_authorization_is_a_valid_es256_jwt() {
        let keys = generate_vapid_keys();
        let header = vapid_authorization(
            "https://fcm.googleapis.com:443/fcm/send/abc?x=1",
            &keys,
            "mailto:admin@example.com",
            1_700_000_000,
        )
        .unwrap();
        let claims = verify_vapid(&header, &keys);
        assert_eq!(
            claims,
            serde_json::json!({
                "aud": "https://fcm.googleapis.com",
                "exp": 1_700_000_000u64 + 12 * 3600,
                "sub": "mailto:admin@example.com",
            })
        );

        // A non-default port stays in the audience; a padded key is sent unpadded.
        let padded = VapidKeys {
            public_key: format!("{}=", keys.public_key),
            private_key: keys.private_key.clone(),
        };
        let header = vapid_authorization(
            "http://127.0.0.1:8123/p/q",
            &padded,
            "https://example.com/contact",
            5,
        )
        .unwrap();
        let claims = verify_vapid(&header, &keys);
        assert_eq!(claims["aud"], "http://127.0.0.1:8123");
        assert_eq!(claims["exp"], 5 + 12 * 3600);

        // A tampered payload does not verify.
        let jwt = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split(", k=")
            .next()
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(br#"{"aud":"https://evil.example","exp":5,"sub":"mailto:a@b"}"#);
        let signature = Signature::from_slice(&b64(parts[2])).unwrap();
        let verifying = VerifyingKey::from_sec1_bytes(&b64(&keys.public_key)).unwrap();
        assert!(
            verifying
                .verify(format!("{}.{forged}", parts[0]).as_bytes(), &signature)
                .is_err()
        );
    }

    #[test]
    fn vapid_authorization_refuses_bad_input() {
        let keys = generate_vapid_keys();
        let ep = "https://push.example/x";
        for subject in [
            "admin@example.com",
            "http://example.com",
            "mailto:",
            "",
            "tel:+123",
        ] {
            let err = vapid_authorization(ep, &keys, subject, 0).unwrap_err();
            assert!(matches!(err, WebPushError::Subject(_)), "{subject}: {err}");
            assert!(err.to_string().contains("mailto: or https:"), "{err}");
        }
        let other = generate_vapid_keys();
        let mismatched = VapidKeys {
            public_key: keys.public_key.clone(),
            private_key: other.private_key,
        };
        assert_eq!(
            vapid_authorization(ep, &mismatched, "mailto:a@b.c", 0).unwrap_err(),
            WebPushError::KeyMismatch
        );
        assert!(matches!(
            vapid_authorization("http://push.example/x", &keys, "mailto:a@b.c", 0).unwrap_err(),
            WebPushError::Endpoint(_)
        ));
    }

    #[test]
    fn urgency_header_values() {
        assert_eq!(Urgency::VeryLow.as_str(), "very-low");
        assert_eq!(Urgency::Low.as_str(), "low");
        assert_eq!(Urgency::Normal.as_str(), "normal");
        assert_eq!(Urgency::High.as_str(), "high");
        assert_eq!(Urgency::default(), Urgency::Normal);
    }

    #[test]
    fn send_errors_are_actionable_and_classified() {
        assert!(SendError::Gone { status: 410 }.is_permanent());
        assert!(SendError::Gone { status: 404 }.is_permanent());
        assert!(SendError::Invalid(WebPushError::KeyMismatch).is_permanent());
        let rejected = |status| SendError::Rejected {
            status,
            detail: String::new(),
        };
        for status in [400, 401, 403, 413] {
            assert!(rejected(status).is_permanent(), "{status}");
        }
        for status in [408, 429, 500, 502, 503] {
            assert!(!rejected(status).is_permanent(), "{status}");
        }
        assert!(!SendError::Timeout.is_permanent());
        assert!(!SendError::Connect.is_permanent());
        assert!(!SendError::Request("x".into()).is_permanent());
        assert!(rejected(403).to_string().contains("VAPID"));
        assert_eq!(
            SendError::Rejected {
                status: 500,
                detail: "boom".into()
            }
            .to_string(),
            "the push service refused the message (HTTP 500); the push service has a problem, a later try may succeed: boom"
        );
        assert!(
            SendError::Gone { status: 410 }
                .to_string()
                .contains("subscribe again")
        );
        let debug = format!(
            "{:?}",
            PushMessage {
                endpoint: "https://push.example/secret-token",
                p256dh: "p",
                auth: "secret-auth",
                payload: b"x",
                ttl_secs: 1,
                urgency: Urgency::Low,
                topic: None,
            }
        );
        assert!(debug.contains("payload_len"), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn topic_validation() {
        check_topic("review-42_done").unwrap();
        check_topic(&"a".repeat(32)).unwrap();
        assert_eq!(check_topic(&"a".repeat(33)), Err(WebPushError::Topic));
        assert_eq!(check_topic(""), Err(WebPushError::Topic));
        assert_eq!(check_topic("a b"), Err(WebPushError::Topic));
    }

    /// What the local push service saw.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        headers: axum::http::HeaderMap,
        body: Vec<u8>,
    }

    /// A local push service: `/ok` → 201, `/gone` → 410, `/missing` → 404,
    /// `/fail` → 500 with a long body, `/busy` → 429 with `Retry-After`,
    /// `/slow` → never answers in time.
    async fn push_service() -> (String, Arc<Mutex<Vec<Seen>>>) {
        use axum::http::{StatusCode, Uri};
        use axum::response::IntoResponse;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(
            move |uri: Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let path = uri.path().to_owned();
                    log.lock().unwrap().push(Seen {
                        path: path.clone(),
                        headers,
                        body: body.to_vec(),
                    });
                    match path.as_str() {
                        "/ok" => StatusCode::CREATED.into_response(),
                        "/gone" => StatusCode::GONE.into_response(),
                        "/missing" => StatusCode::NOT_FOUND.into_response(),
                        "/busy" => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("Retry-After", "120")],
                            "slow down",
                        )
                            .into_response(),
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            StatusCode::CREATED.into_response()
                        }
                        _ => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("upstream\nfailure at /fail {}", "x".repeat(500)),
                        )
                            .into_response(),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), seen)
    }

    fn client() -> reqwest::Client {
        ai_review_forge::http_client(Duration::from_secs(30)).unwrap()
    }

    #[tokio::test]
    async fn send_posts_an_encrypted_signed_message() {
        let (base, seen) = push_service().await;
        let (ua, p256dh, auth) = browser();
        let keys = generate_vapid_keys();
        let endpoint = format!("{base}/ok");
        let msg = PushMessage {
            endpoint: &endpoint,
            p256dh: &p256dh,
            auth: &auth,
            payload: b"{\"title\":\"Review done\"}",
            ttl_secs: 86_400,
            urgency: Urgency::High,
            topic: Some("review-1"),
        };
        send(
            &client(),
            &msg,
            &keys,
            "mailto:ops@example.com",
            1_000,
            Duration::from_secs(5),
        )
        .await
        .unwrap();

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.path, "/ok");
        let h = |name: &str| req.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("ttl"), "86400");
        assert_eq!(h("urgency"), "high");
        assert_eq!(h("topic"), "review-1");
        assert_eq!(h("content-encoding"), "aes128gcm");
        assert_eq!(h("content-type"), "application/octet-stream");
        let claims = verify_vapid(&h("authorization"), &keys);
        assert_eq!(claims["aud"], base);
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        assert_eq!(
            ua_decrypt(&req.body, &ua, &[7u8; 16]),
            b"{\"title\":\"Review done\"}"
        );
    }

    #[tokio::test]
    async fn send_without_topic_sends_no_topic_header() {
        let (base, seen) = push_service().await;
        let (_, p256dh, auth) = browser();
        let keys = generate_vapid_keys();
        let endpoint = format!("{base}/ok");
        let msg = PushMessage {
            endpoint: &endpoint,
            p256dh: &p256dh,
            auth: &auth,
            payload: b"x",
            ttl_secs: 0,
            urgency: Urgency::VeryLow,
            topic: None,
        };
        send(
            &client(),
            &msg,
            &keys,
            "https://example.com",
            0,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(seen[0].headers.get("topic").is_none());
        assert_eq!(seen[0].headers.get("urgency").unwrap(), "very-low");
        assert_eq!(seen[0].headers.get("ttl").unwrap(), "0");
    }

    #[tokio::test]
    async fn send_classifies_refusals() {
        let (base, _) = push_service().await;
        let (_, p256dh, auth) = browser();
        let keys = generate_vapid_keys();
        let go = |path: &'static str| {
            let endpoint = format!("{base}{path}");
            let (p256dh, auth, keys) = (p256dh.clone(), auth.clone(), keys.clone());
            async move {
                let msg = PushMessage {
                    endpoint: &endpoint,
                    p256dh: &p256dh,
                    auth: &auth,
                    payload: b"hello",
                    ttl_secs: 60,
                    urgency: Urgency::Normal,
                    topic: None,
                };
                send(
                    &client(),
                    &msg,
                    &keys,
                    "mailto:a@b.example",
                    0,
                    Duration::from_millis(500),
                )
                .await
                .unwrap_err()
            }
        };

        let err = go("/gone").await;
        assert_eq!(err, SendError::Gone { status: 410 });
        assert!(err.is_permanent());
        assert_eq!(go("/missing").await, SendError::Gone { status: 404 });

        let err = go("/fail").await;
        let SendError::Rejected { status, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*status, 500);
        assert_eq!(detail.chars().count(), 200);
        assert!(
            detail.starts_with("upstream failure at /<path>"),
            "{detail}"
        );
        assert!(!err.is_permanent());

        let err = go("/busy").await;
        assert_eq!(
            err,
            SendError::Rejected {
                status: 429,
                detail: "Retry-After: 120; slow down".into()
            }
        );
        assert!(!err.is_permanent());

        assert_eq!(go("/slow").await, SendError::Timeout);
    }

    #[tokio::test]
    async fn send_reports_connection_failures_and_invalid_input() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (_, p256dh, auth) = browser();
        let keys = generate_vapid_keys();
        let endpoint = format!("http://{addr}/push/secret-token");
        let msg = PushMessage {
            endpoint: &endpoint,
            p256dh: &p256dh,
            auth: &auth,
            payload: b"x",
            ttl_secs: 60,
            urgency: Urgency::Normal,
            topic: None,
        };
        let err = send(
            &client(),
            &msg,
            &keys,
            "mailto:a@b.example",
            0,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err, SendError::Connect);
        assert!(!err.is_permanent());
        assert!(!err.to_string().contains("secret-token"));

        let big = vec![0u8; MAX_PLAINTEXT + 1];
        let err = send(
            &client(),
            &PushMessage {
                payload: &big,
                ..msg
            },
            &keys,
            "mailto:a@b.example",
            0,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                SendError::Invalid(WebPushError::PayloadTooLarge { .. })
            ),
            "{err}"
        );
        assert!(err.is_permanent());

        let remote = "http://push.example.com/secret-token";
        let err = send(
            &client(),
            &PushMessage {
                endpoint: remote,
                ..msg
            },
            &keys,
            "mailto:a@b.example",
            0,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, SendError::Invalid(WebPushError::Endpoint(_))),
            "{err}"
        );
        assert!(!err.to_string().contains("secret-token"), "{err}");

        let err = send(
            &client(),
            &PushMessage {
                topic: Some("not a topic"),
                ..msg
            },
            &keys,
            "mailto:a@b.example",
            0,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err, SendError::Invalid(WebPushError::Topic));

        let err = send(
            &client(),
            &msg,
            &keys,
            "ops@example.com",
            0,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, SendError::Invalid(WebPushError::Subject(_))),
            "{err}"
        );
    }
}
