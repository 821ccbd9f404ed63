//! A Web Push service on loopback that checks and decrypts what it
//! receives, for tests of a push sender.
//!
//! It plays the receiving side of RFC 8030 (generic event delivery using
//! HTTP push), RFC 8291 (message encryption, with the `aes128gcm` content
//! coding of RFC 8188) and RFC 8292 (VAPID), written from the RFCs with
//! RustCrypto primitives, not from a Web Push library, so that it checks a
//! sender independently.
//!
//! [`PushService::subscribe`] does what a browser's
//! `pushManager.subscribe({applicationServerKey})` does: it makes the user
//! agent's key pair and auth secret, keeps them, and hands out an endpoint
//! on this service. `POST /push/{id}` then checks the request the way a
//! push service does (in this order):
//!
//! | check | refusal |
//! | --- | --- |
//! | the subscription exists | 404 |
//! | it was not [`PushService::gone`] | 410 |
//! | injected failure ([`PushService::fail_next`]) | that status |
//! | `Authorization: vapid t=<JWT>, k=<key>`: JWT header `{"typ":"JWT","alg":"ES256"}`, ES256 signature (r‖s) by `k`, `aud` = the endpoint's origin, `exp` in the future and at most 24 h ahead, `sub` a `mailto:` or `https:` URI | 401 |
//! | `k` is the subscription's `applicationServerKey` | 403 |
//! | `TTL` present (a non-negative integer); `Urgency` and `Topic` valid if present | 400 |
//! | `Content-Encoding: aes128gcm` | 400 when absent, 415 when another |
//! | body at most 4096 octets | 413 |
//! | the body decrypts (RFC 8291 §3.3–3.4, one record, delimiter 0x02) | 400 |
//!
//! and answers `201 Created` with a `Location` once the message decrypted.
//! Every refusal (but injected failures) is kept in
//! [`PushService::rejections`] with its reason.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, OsRng};
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// The largest body a push service must accept (RFC 8291 §4), and the
/// largest this one accepts.
pub const MAX_BODY: usize = 4096;
/// RFC 8292 §2: `exp` at most 24 hours after the request.
const MAX_VAPID_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// What a browser's `pushManager.subscribe()` gives the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSubscription {
    /// The subscription's id (last path segment of the endpoint).
    pub id: String,
    /// `http://127.0.0.1:PORT/push/<id>`.
    pub endpoint: String,
    /// The user agent's public key: base64url (no padding) of the 65-octet
    /// uncompressed P-256 point.
    pub p256dh: String,
    /// The 16-octet auth secret, base64url (no padding).
    pub auth: String,
}

impl BrowserSubscription {
    /// The browser's `PushSubscription.toJSON()`:
    /// `{"endpoint", "expirationTime": null, "keys": {"p256dh", "auth"}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": { "p256dh": self.p256dh, "auth": self.auth },
        })
    }
}

/// A push message that passed every check and decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    /// The endpoint it was sent to.
    pub subscription_endpoint: String,
    /// The decrypted payload (padding removed).
    pub plaintext: Vec<u8>,
    /// The `TTL` header.
    pub ttl: u32,
    /// The `Urgency` header, if sent.
    pub urgency: Option<String>,
    /// The `Topic` header, if sent.
    pub topic: Option<String>,
    /// The VAPID JWT's `sub` claim.
    pub vapid_sub: String,
}

impl PushMessage {
    /// The payload as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.plaintext).into_owned()
    }

    /// The payload parsed as JSON.
    ///
    /// # Panics
    /// If the payload is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.plaintext)
            .unwrap_or_else(|e| panic!("push payload is not JSON ({e}): {}", self.text()))
    }
}

/// A valid VAPID `Authorization` header, as read by [`verify_vapid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vapid {
    /// `k`: the application server's public key (65-octet uncompressed
    /// P-256 point).
    pub key: Vec<u8>,
    /// The `sub` claim.
    pub sub: String,
    /// The `exp` claim (seconds since the Unix epoch).
    pub exp: i64,
}

struct Subscription {
    endpoint: String,
    ua_key: SecretKey,
    auth: [u8; 16],
    server_key: Vec<u8>,
    gone: bool,
}

#[derive(Default)]
struct Failure {
    remaining: usize,
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Book {
    subscriptions: HashMap<String, Subscription>,
    received: Vec<PushMessage>,
    rejections: Vec<String>,
    fail: Failure,
    hang: bool,
    clock_skew: i64,
    attempts: usize,
}

struct Shared {
    origin: String,
    book: Mutex<Book>,
    changed: Notify,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A panicking test must not hide what was recorded.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running push service; stops when dropped.
pub struct PushService {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for PushService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushService")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The id in `endpoint_or_id` (`…/push/<id>` or the id itself).
fn id_of(endpoint_or_id: &str) -> &str {
    endpoint_or_id
        .rsplit_once("/push/")
        .map_or(endpoint_or_id, |(_, id)| id)
}

impl PushService {
    /// Starts the service on `127.0.0.1:0`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the push service on loopback");
        let addr = listener.local_addr().expect("local address");
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            origin: format!("http://{addr}"),
            book: Mutex::new(Book::default()),
            changed: Notify::new(),
            shutdown,
        });
        let app = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(shared.clone());
        let mut down = shared.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = down.wait_for(|v| *v).await;
                })
                .await;
        });
        Self { addr, shared, stop }
    }

    /// The origin (`http://127.0.0.1:PORT`), which is the VAPID `aud`.
    pub fn url(&self) -> String {
        self.shared.origin.clone()
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Subscribes a simulated browser with `application_server_key` (the
    /// VAPID public key, base64url of the uncompressed P-256 point), as
    /// `pushManager.subscribe({applicationServerKey})` does.
    ///
    /// # Panics
    /// If the key is not base64url of a P-256 point (the browser would
    /// throw).
    pub fn subscribe(&self, application_server_key: &str) -> BrowserSubscription {
        let server_key = B64URL
            .decode(application_server_key.trim_end_matches('='))
            .ok()
            .filter(|k| k.len() == 65 && PublicKey::from_sec1_bytes(k).is_ok())
            .unwrap_or_else(|| {
                panic!(
                    "applicationServerKey {application_server_key:?} is not base64url of an uncompressed P-256 point"
                )
            });
        let ua_key = SecretKey::random(&mut OsRng);
        let mut auth = [0u8; 16];
        OsRng.fill_bytes(&mut auth);
        let mut raw_id = [0u8; 16];
        OsRng.fill_bytes(&mut raw_id);
        let id = B64URL.encode(raw_id);
        let endpoint = format!("{}/push/{id}", self.shared.origin);
        let p256dh = B64URL.encode(ua_key.public_key().to_encoded_point(false).as_bytes());
        let sub = BrowserSubscription {
            id: id.clone(),
            endpoint: endpoint.clone(),
            p256dh,
            auth: B64URL.encode(auth),
        };
        self.shared.book().subscriptions.insert(
            id,
            Subscription {
                endpoint,
                ua_key,
                auth,
                server_key,
                gone: false,
            },
        );
        sub
    }

    /// The user agent's private key and auth secret of a subscription.
    pub fn subscription_keys(&self, endpoint_or_id: &str) -> Option<(SecretKey, [u8; 16])> {
        self.shared
            .book()
            .subscriptions
            .get(id_of(endpoint_or_id))
            .map(|s| (s.ua_key.clone(), s.auth))
    }

    /// From now on the subscription answers `410 Gone` (the user
    /// unsubscribed).
    ///
    /// # Panics
    /// If there is no such subscription.
    pub fn gone(&self, endpoint_or_id: &str) {
        self.shared
            .book()
            .subscriptions
            .get_mut(id_of(endpoint_or_id))
            .unwrap_or_else(|| panic!("no push subscription {endpoint_or_id:?}"))
            .gone = true;
    }

    /// Answers the next `n` pushes to existing, live subscriptions with
    /// `status` (e.g. 500, 503 or 429); 429 and 503 carry `Retry-After: 1`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let retry_after = matches!(status, 429 | 503).then_some(1);
        self.fail_next_retry_after(n, status, retry_after);
    }

    /// Like [`PushService::fail_next`] with an explicit `Retry-After`
    /// (seconds), or none.
    pub fn fail_next_retry_after(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.shared.book().fail = Failure {
            remaining: n,
            status,
            retry_after,
        };
    }

    /// While on, requests are read and never answered (until the service
    /// is dropped).
    pub fn hang(&self, on: bool) {
        self.shared.book().hang = on;
    }

    /// Shifts the service's clock for the VAPID `exp` checks by `secs`
    /// (for a sender whose clock is moved by the test).
    pub fn set_clock_skew(&self, secs: i64) {
        self.shared.book().clock_skew = secs;
    }

    /// Messages accepted for one subscription, in order.
    pub fn received(&self, endpoint_or_id: &str) -> Vec<PushMessage> {
        let id = id_of(endpoint_or_id);
        self.shared
            .book()
            .received
            .iter()
            .filter(|m| id_of(&m.subscription_endpoint) == id)
            .cloned()
            .collect()
    }

    /// Every message accepted, in order.
    pub fn received_all(&self) -> Vec<PushMessage> {
        self.shared.book().received.clone()
    }

    /// Why each refused request was refused (`"<status> <endpoint>:
    /// <reason>"`), injected failures excepted.
    pub fn rejections(&self) -> Vec<String> {
        self.shared.book().rejections.clone()
    }

    /// How many push requests arrived (any outcome).
    pub fn attempts(&self) -> usize {
        self.shared.book().attempts
    }

    /// Waits until at least `n` messages were accepted and returns them
    /// all.
    ///
    /// # Panics
    /// When `timeout` passes first, showing what arrived and the
    /// rejections.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<PushMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            let got = self.received_all();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let got = self.received_all();
                if got.len() >= n {
                    return got;
                }
                panic!(
                    "push service: waited {timeout:?} for {n} message(s), got {} after {} request(s): {got:#?}\nrejections: {:#?}",
                    got.len(),
                    self.attempts(),
                    self.rejections()
                );
            }
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn answer(status: u16, reason: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, reason.to_owned()).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| format!("{name} is not visible ASCII"))
        })
        .transpose()
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hang = {
        let mut book = shared.book();
        book.attempts += 1;
        book.hang
    };
    if hang {
        let mut down = shared.shutdown.clone();
        let _ = down.wait_for(|v| *v).await;
        return answer(503, "shutting down");
    }
    let endpoint = format!("{}/push/{id}", shared.origin);
    let result = check(&shared, &id, &headers, &body);
    let mut book = shared.book();
    match result {
        Ok(message) => {
            let n = book.received.len() + 1;
            let ttl = message.ttl;
            book.received.push(message);
            drop(book);
            shared.changed.notify_waiters();
            let location = format!("{}/message/{n}", shared.origin);
            let mut resp = StatusCode::CREATED.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp.headers_mut().insert("ttl", HeaderValue::from(ttl));
            resp
        }
        Err(Refusal::Injected(status, retry_after)) => {
            drop(book);
            let mut resp = answer(status, "injected failure");
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
        Err(Refusal::Checked(status, reason)) => {
            book.rejections
                .push(format!("{status} {endpoint}: {reason}"));
            drop(book);
            shared.changed.notify_waiters();
            answer(status, &reason)
        }
    }
}

enum Refusal {
    Injected(u16, Option<u64>),
    Checked(u16, String),
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal::Checked(status, reason.into())
}

/// Runs every check of a push request; the message when it passes.
fn check(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<PushMessage, Refusal> {
    let (endpoint, ua_key, auth, server_key, now) = {
        let mut book = shared.book();
        let now = now_secs() + book.clock_skew;
        let Some(sub) = book.subscriptions.get(id) else {
            return Err(refuse(404, "no such subscription"));
        };
        if sub.gone {
            return Err(refuse(410, "the subscription is gone (unsubscribed)"));
        }
        let found = (
            sub.endpoint.clone(),
            sub.ua_key.clone(),
            sub.auth,
            sub.server_key.clone(),
            now,
        );
        if book.fail.remaining > 0 {
            book.fail.remaining -= 1;
            return Err(Refusal::Injected(book.fail.status, book.fail.retry_after));
        }
        found
    };

    let authorization = header_str(headers, "authorization")
        .map_err(|e| refuse(401, e))?
        .ok_or_else(|| refuse(401, "no Authorization header (VAPID required)"))?;
    let vapid = verify_vapid(authorization, &shared.origin, now).map_err(|e| refuse(401, e))?;
    if vapid.key != server_key {
        return Err(refuse(
            403,
            "VAPID key k is not the applicationServerKey the subscription was made with",
        ));
    }

    let ttl = header_str(headers, "ttl")
        .map_err(|e| refuse(400, e))?
        .ok_or_else(|| refuse(400, "no TTL header"))?;
    let ttl: u32 = ttl
        .trim()
        .parse()
        .map_err(|_| refuse(400, format!("TTL {ttl:?} is not a non-negative integer")))?;
    let urgency = header_str(headers, "urgency")
        .map_err(|e| refuse(400, e))?
        .map(str::to_owned);
    if let Some(u) = &urgency
        && !matches!(u.as_str(), "very-low" | "low" | "normal" | "high")
    {
        return Err(refuse(
            400,
            format!("Urgency {u:?} is not very-low, low, normal or high"),
        ));
    }
    let topic = header_str(headers, "topic")
        .map_err(|e| refuse(400, e))?
        .map(str::to_owned);
    if let Some(t) = &topic
        && (t.is_empty()
            || t.len() > 32
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(refuse(
            400,
            format!("Topic {t:?} is not 1 to 32 characters of the base64url alphabet"),
        ));
    }

    match header_str(headers, "content-encoding").map_err(|e| refuse(400, e))? {
        None => return Err(refuse(400, "no Content-Encoding (aes128gcm required)")),
        Some(ce) if !ce.trim().eq_ignore_ascii_case("aes128gcm") => {
            return Err(refuse(
                415,
                format!("Content-Encoding {ce:?} is not aes128gcm"),
            ));
        }
        Some(_) => {}
    }
    if body.len() > MAX_BODY {
        return Err(refuse(
            413,
            format!("body of {} octets exceeds {MAX_BODY}", body.len()),
        ));
    }
    let plaintext = decrypt(&ua_key, &auth, body)
        .map_err(|e| refuse(400, format!("decryption failed: {e}")))?;
    Ok(PushMessage {
        subscription_endpoint: endpoint,
        plaintext,
        ttl,
        urgency,
        topic,
        vapid_sub: vapid.sub,
    })
}

/// Checks a VAPID `Authorization` header (RFC 8292) for `audience` (the
/// push resource's origin) at `now` (seconds since the Unix epoch): the
/// scheme `vapid` with `t` and `k`, the JWT header `{"typ":"JWT",
/// "alg":"ES256"}`, the ES256 signature (64-octet r‖s) by `k`, `aud`,
/// `exp` (in the future, at most 24 h ahead) and `sub` (`mailto:` or
/// `https:`). Does not compare `k` with a subscription's key.
///
/// # Errors
/// The reason the header is not acceptable.
pub fn verify_vapid(authorization: &str, audience: &str, now: i64) -> Result<Vapid, String> {
    let (scheme, params) = authorization
        .trim()
        .split_once(' ')
        .ok_or("Authorization is not `vapid t=…, k=…`")?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!("Authorization scheme {scheme:?} is not vapid"));
    }
    let (mut t, mut k) = (None, None);
    for param in params.split(',') {
        let Some((name, value)) = param.trim().split_once('=') else {
            return Err(format!(
                "Authorization parameter {param:?} is not name=value"
            ));
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "t" => t = Some(value),
            "k" => k = Some(value),
            _ => {}
        }
    }
    let t = t.ok_or("Authorization has no t (the JWT)")?;
    let k = k.ok_or("Authorization has no k (the public key)")?;

    let key = B64URL
        .decode(k)
        .map_err(|_| "k is not base64url without padding".to_owned())?;
    if key.len() != 65 || key[0] != 4 {
        return Err(format!(
            "k is {} octets; expected a 65-octet uncompressed P-256 point",
            key.len()
        ));
    }
    let verifying =
        VerifyingKey::from_sec1_bytes(&key).map_err(|_| "k is not a P-256 point".to_owned())?;

    let parts: Vec<&str> = t.split('.').collect();
    let [head, claims, sig] = parts.as_slice() else {
        return Err("t is not a JWS compact serialization (three parts)".to_owned());
    };
    let json_part = |part: &str, what: &str| -> Result<Value, String> {
        let raw = B64URL
            .decode(part)
            .map_err(|_| format!("JWT {what} is not base64url without padding"))?;
        serde_json::from_slice(&raw).map_err(|_| format!("JWT {what} is not JSON"))
    };
    let jwt_header = json_part(head, "header")?;
    if jwt_header["alg"] != "ES256" {
        return Err(format!("JWT alg is {}, not ES256", jwt_header["alg"]));
    }
    if jwt_header["typ"] != "JWT" {
        return Err(format!("JWT typ is {}, not JWT", jwt_header["typ"]));
    }
    let sig = B64URL
        .decode(sig)
        .map_err(|_| "JWT signature is not base64url without padding".to_owned())?;
    if sig.len() != 64 {
        return Err(format!(
            "JWT signature is {} octets; ES256 is 64 (r||s), not DER",
            sig.len()
        ));
    }
    let sig =
        Signature::from_slice(&sig).map_err(|_| "JWT signature is not a valid r||s".to_owned())?;
    let signed = &t[..head.len() + 1 + claims.len()];
    verifying
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "JWT signature does not verify with k".to_owned())?;

    let claims = json_part(claims, "claims")?;
    if claims["aud"] != audience {
        return Err(format!(
            "JWT aud is {}, expected {audience:?}",
            claims["aud"]
        ));
    }
    let exp = claims["exp"]
        .as_i64()
        .ok_or_else(|| format!("JWT exp is {}, not an integer", claims["exp"]))?;
    if exp <= now {
        return Err(format!("JWT expired (exp {exp} <= now {now})"));
    }
    if exp - now > MAX_VAPID_LIFETIME_SECS {
        return Err(format!(
            "JWT exp is {} s ahead; at most 24 h (86400 s) allowed",
            exp - now
        ));
    }
    let sub = claims["sub"]
        .as_str()
        .ok_or_else(|| format!("JWT sub is {}, not a string", claims["sub"]))?;
    let scheme_ok = sub.strip_prefix("mailto:").is_some_and(|a| a.contains('@'))
        || sub.strip_prefix("https://").is_some_and(|h| !h.is_empty());
    if !scheme_ok {
        return Err(format!("JWT sub {sub:?} is not a mailto: or https: URI"));
    }
    Ok(Vapid {
        key,
        sub: sub.to_owned(),
        exp,
    })
}

/// Decrypts an `aes128gcm` Web Push body (RFC 8291 §3.3–3.4 over RFC 8188)
/// with the user agent's private key and auth secret; the plaintext
/// without padding.
///
/// # Errors
/// Why the body is not a valid single-record Web Push message for these
/// keys.
pub fn decrypt(ua_private: &SecretKey, auth: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, String> {
    // RFC 8188 §2.1: salt (16) | rs (4) | idlen (1) | keyid (idlen).
    if body.len() < 21 {
        return Err(format!(
            "body of {} octets is shorter than the aes128gcm header",
            body.len()
        ));
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes([body[16], body[17], body[18], body[19]]);
    let idlen = usize::from(body[20]);
    if idlen != 65 {
        return Err(format!(
            "keyid is {idlen} octets; RFC 8291 requires the sender's 65-octet public key"
        ));
    }
    let Some(as_public_raw) = body.get(21..21 + idlen) else {
        return Err("body ends inside the keyid".to_owned());
    };
    let as_public = PublicKey::from_sec1_bytes(as_public_raw)
        .map_err(|_| "keyid is not a P-256 public key".to_owned())?;
    let record = &body[21 + idlen..];
    if rs < 18 {
        return Err(format!("record size {rs} is below the minimum of 18"));
    }
    if record.len() < 17 {
        return Err(format!(
            "record of {} octets cannot hold a 16-octet tag and the delimiter",
            record.len()
        ));
    }
    if record.len() > rs as usize {
        return Err(format!(
            "{} octets of records exceed rs {rs}: Web Push messages are one record",
            record.len()
        ));
    }

    // RFC 8291 §3.3–3.4.
    let ua_public = ua_private.public_key().to_encoded_point(false);
    let ecdh = p256::ecdh::diffie_hellman(ua_private.to_nonzero_scalar(), as_public.as_affine());
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public_raw);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), ecdh.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|e| e.to_string())?;

    // RFC 8188 §2.2–2.3.
    let hkdf = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    hkdf.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    let mut nonce = [0u8; 12];
    hkdf.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;
    // One record: sequence number 0, so the nonce is used as derived.
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let padded = cipher
        .decrypt(Nonce::from_slice(&nonce), record)
        .map_err(|_| {
            "the AES-GCM tag does not verify (wrong keys, auth secret or salt)".to_owned()
        })?;

    // RFC 8188 §2: data | delimiter | zero padding; 0x02 ends the last record.
    let Some(end) = padded.iter().rposition(|b| *b != 0) else {
        return Err("the record is all zeros: no padding delimiter".to_owned());
    };
    match padded[end] {
        2 => Ok(padded[..end].to_vec()),
        1 => Err(
            "delimiter 0x01 marks a non-final record; a push message is one final record (0x02)"
                .to_owned(),
        ),
        d => Err(format!("padding delimiter is {d:#04x}, expected 0x02")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    const WAIT: Duration = Duration::from_secs(10);

    fn b64(s: &str) -> Vec<u8> {
        B64URL.decode(s).expect("test vector is base64url")
    }

    // RFC 8291 Appendix A.
    const RFC_UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const RFC_UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const RFC_AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const RFC_AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const RFC_SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const RFC_HEADER: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const RFC_CIPHERTEXT: &str =
        "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ";
    const RFC_BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    const RFC_PLAINTEXT: &str = "V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24";

    fn rfc_keys() -> (SecretKey, [u8; 16]) {
        let ua = SecretKey::from_slice(&b64(RFC_UA_PRIVATE)).expect("RFC private key");
        let auth: [u8; 16] = b64(RFC_AUTH).try_into().expect("16-octet auth");
        (ua, auth)
    }

    #[test]
    fn decrypts_the_rfc_8291_example() {
        let (ua, auth) = rfc_keys();
        // The vectors agree with each other before they test the code.
        assert_eq!(
            ua.public_key().to_encoded_point(false).as_bytes(),
            b64(RFC_UA_PUBLIC).as_slice()
        );
        let body = b64(RFC_BODY);
        let mut joined = b64(RFC_HEADER);
        joined.extend(b64(RFC_CIPHERTEXT));
        assert_eq!(body, joined);
        assert_eq!(&body[..16], b64(RFC_SALT).as_slice());
        assert_eq!(&body[21..86], b64(RFC_AS_PUBLIC).as_slice());
        assert_eq!(
            u32::from_be_bytes([body[16], body[17], body[18], body[19]]),
            4096
        );

        let plain = decrypt(&ua, &auth, &body).expect("decrypt the RFC example");
        assert_eq!(plain, b"When I grow up, I want to be a watermelon");
        assert_eq!(plain, b64(RFC_PLAINTEXT));
    }

    #[test]
    fn decrypt_refuses_tampering_and_wrong_keys() {
        let (ua, auth) = rfc_keys();
        let body = b64(RFC_BODY);
        let mut flipped = body.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(
            decrypt(&ua, &auth, &flipped)
                .expect_err("tampered")
                .contains("tag")
        );
        let mut wrong_auth = auth;
        wrong_auth[0] ^= 1;
        assert!(decrypt(&ua, &wrong_auth, &body).is_err());
        assert!(decrypt(&SecretKey::random(&mut OsRng), &auth, &body).is_err());
        assert!(decrypt(&ua, &auth, &body[..40]).is_err());
        let mut small_rs = body.clone();
        small_rs[16..20].copy_from_slice(&20u32.to_be_bytes());
        assert!(
            decrypt(&ua, &auth, &small_rs)
                .expect_err("rs")
                .contains("one record")
        );
    }

    /// The sender's side, written out for the tests: RFC 8291 encryption.
    fn encrypt(sub: &BrowserSubscription, plaintext: &[u8], delimiter: u8) -> Vec<u8> {
        let ua_public = b64(&sub.p256dh);
        let auth = b64(&sub.auth);
        let as_key = SecretKey::random(&mut OsRng);
        let as_public = as_key.public_key().to_encoded_point(false);
        let ua = PublicKey::from_sec1_bytes(&ua_public).expect("p256dh");
        let ecdh = p256::ecdh::diffie_hellman(as_key.to_nonzero_scalar(), ua.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&ua_public);
        info.extend_from_slice(as_public.as_bytes());
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&auth), ecdh.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .expect("ikm");
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let hkdf = Hkdf::<Sha256>::new(Some(&salt), &ikm);
        let mut cek = [0u8; 16];
        hkdf.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .expect("cek");
        let mut nonce = [0u8; 12];
        hkdf.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .expect("nonce");
        let mut padded = plaintext.to_vec();
        padded.push(delimiter);
        padded.extend_from_slice(&[0, 0, 0]);
        let ct = Aes128Gcm::new_from_slice(&cek)
            .expect("key")
            .encrypt(Nonce::from_slice(&nonce), padded.as_slice())
            .expect("encrypt");
        let mut body = salt.to_vec();
        body.extend_from_slice(&4096u32.to_be_bytes());
        body.push(65);
        body.extend_from_slice(as_public.as_bytes());
        body.extend_from_slice(&ct);
        body
    }

    fn jwt(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig: Signature = key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64URL.encode(sig.to_bytes()))
    }

    fn public_b64(key: &SigningKey) -> String {
        B64URL.encode(key.verifying_key().to_encoded_point(false).as_bytes())
    }

    fn vapid_header(key: &SigningKey, aud: &str, exp: i64, sub: &str) -> String {
        let token = jwt(
            key,
            &serde_json::json!({"typ": "JWT", "alg": "ES256"}),
            &serde_json::json!({"aud": aud, "exp": exp, "sub": sub}),
        );
        format!("vapid t={token}, k={}", public_b64(key))
    }

    #[test]
    fn verifies_a_vapid_token_and_refuses_bad_ones() {
        let key = SigningKey::random(&mut OsRng);
        let aud = "http://127.0.0.1:9";
        let now = 1_700_000_000;
        let good = vapid_header(&key, aud, now + 3600, "mailto:ops@example.com");
        let v = verify_vapid(&good, aud, now).expect("valid VAPID");
        assert_eq!(v.sub, "mailto:ops@example.com");
        assert_eq!(v.exp, now + 3600);
        assert_eq!(B64URL.encode(&v.key), public_b64(&key));
        assert!(
            verify_vapid(
                &vapid_header(&key, aud, now + 60, "https://example.com"),
                aud,
                now
            )
            .is_ok()
        );

        let err = |h: &str| verify_vapid(h, aud, now).expect_err("refused");
        assert!(
            err(&vapid_header(
                &key,
                "http://127.0.0.1:10",
                now + 60,
                "mailto:a@b"
            ))
            .contains("aud")
        );
        assert!(err(&vapid_header(&key, aud, now - 1, "mailto:a@b")).contains("expired"));
        assert!(err(&vapid_header(&key, aud, now + 86_401, "mailto:a@b")).contains("24 h"));
        assert!(err(&vapid_header(&key, aud, now + 60, "ops@example.com")).contains("sub"));
        // Signed by another key than k.
        let other = SigningKey::random(&mut OsRng);
        let forged = good.replace(&public_b64(&key), &public_b64(&other));
        assert!(err(&forged).contains("does not verify"));
        // A wrong header.
        let hs = jwt(
            &key,
            &serde_json::json!({"typ": "JWT", "alg": "HS256"}),
            &serde_json::json!({"aud": aud, "exp": now + 60, "sub": "mailto:a@b"}),
        );
        assert!(err(&format!("vapid t={hs}, k={}", public_b64(&key))).contains("ES256"));
        // A DER signature is not JWS.
        let token = good
            .strip_prefix("vapid t=")
            .and_then(|r| r.split(',').next())
            .expect("token");
        let (input, _) = token.rsplit_once('.').expect("signature");
        let sig: Signature = key.sign(input.as_bytes());
        let der = format!(
            "vapid t={input}.{}, k={}",
            B64URL.encode(sig.to_der()),
            public_b64(&key)
        );
        assert!(err(&der).contains("not DER"));
        assert!(err(&format!("WebPush {token}")).contains("scheme"));
        assert!(err("vapid k=abc").contains("no t"));
    }

    struct Sender {
        http: reqwest::Client,
        key: SigningKey,
    }

    impl Sender {
        fn new() -> Self {
            ai_review_protocol::client::ensure_crypto_provider();
            Self {
                http: reqwest::Client::builder()
                    .timeout(WAIT)
                    .build()
                    .expect("http client"),
                key: SigningKey::random(&mut OsRng),
            }
        }

        fn public(&self) -> String {
            public_b64(&self.key)
        }

        fn request(
            &self,
            svc: &PushService,
            sub: &BrowserSubscription,
            body: Vec<u8>,
        ) -> reqwest::RequestBuilder {
            self.request_with(svc, sub, body, &[])
        }

        /// A push with the usual headers, `overrides` replacing (`Some`)
        /// or removing (`None`) some.
        fn request_with(
            &self,
            svc: &PushService,
            sub: &BrowserSubscription,
            body: Vec<u8>,
            overrides: &[(&'static str, Option<&str>)],
        ) -> reqwest::RequestBuilder {
            let vapid = vapid_header(
                &self.key,
                &svc.url(),
                now_secs() + 3600,
                "mailto:ops@example.com",
            );
            let mut h = reqwest::header::HeaderMap::new();
            let mut set = |name: &'static str, value: Option<&str>| match value {
                Some(v) => {
                    h.insert(name, v.parse().expect("header value"));
                }
                None => {
                    h.remove(name);
                }
            };
            set("authorization", Some(&vapid));
            set("ttl", Some("60"));
            set("content-encoding", Some("aes128gcm"));
            for (name, value) in overrides {
                set(name, *value);
            }
            self.http.post(&sub.endpoint).headers(h).body(body)
        }

        async fn status(&self, rb: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap) {
            let resp = rb.send().await.expect("push request");
            (resp.status().as_u16(), resp.headers().clone())
        }
    }

    #[tokio::test]
    async fn accepts_an_encrypted_push_and_answers_like_a_push_service() {
        let svc = PushService::start().await;
        let sender = Sender::new();
        let sub = svc.subscribe(&sender.public());
        assert!(sub.endpoint.starts_with(&format!("{}/push/", svc.url())));
        assert_eq!(b64(&sub.p256dh).len(), 65);
        assert_eq!(b64(&sub.auth).len(), 16);
        let json = sub.to_json();
        assert_eq!(json["endpoint"], sub.endpoint);
        assert!(json["expirationTime"].is_null());
        assert_eq!(json["keys"]["auth"], sub.auth);

        let body = encrypt(&sub, br#"{"title":"Review done"}"#, 2);
        let (status, headers) = sender
            .status(sender.request_with(
                &svc,
                &sub,
                body,
                &[("urgency", Some("high")), ("topic", Some("review-42"))],
            ))
            .await;
        assert_eq!(status, 201, "{:?}", svc.rejections());
        assert!(headers.contains_key("location"));
        let got = svc.wait_for(1, WAIT).await;
        assert_eq!(got[0].json()["title"], "Review done");
        assert_eq!(got[0].ttl, 60);
        assert_eq!(got[0].urgency.as_deref(), Some("high"));
        assert_eq!(got[0].topic.as_deref(), Some("review-42"));
        assert_eq!(got[0].vapid_sub, "mailto:ops@example.com");
        assert_eq!(svc.received(&sub.endpoint).len(), 1);
        assert_eq!(svc.received(&sub.id).len(), 1);
        assert!(svc.rejections().is_empty());
    }

    #[tokio::test]
    async fn refuses_what_a_push_service_refuses() {
        let svc = PushService::start().await;
        let sender = Sender::new();
        let sub = svc.subscribe(&sender.public());
        let ok = || encrypt(&sub, b"hi", 2);

        let unknown = BrowserSubscription {
            endpoint: format!("{}/push/nope", svc.url()),
            ..sub.clone()
        };
        assert_eq!(
            sender.status(sender.request(&svc, &unknown, ok())).await.0,
            404
        );
        let no_auth = sender.request_with(&svc, &sub, ok(), &[("authorization", None)]);
        assert_eq!(sender.status(no_auth).await.0, 401);
        // Subscribed with another application server key.
        let stranger = Sender::new();
        assert_eq!(
            sender.status(stranger.request(&svc, &sub, ok())).await.0,
            403
        );
        let too_long = vapid_header(
            &sender.key,
            &svc.url(),
            now_secs() + 2 * 86_400,
            "mailto:a@b",
        );
        let bad_exp = sender.request_with(&svc, &sub, ok(), &[("authorization", Some(&too_long))]);
        assert_eq!(sender.status(bad_exp).await.0, 401);
        let no_ttl = sender.request_with(&svc, &sub, ok(), &[("ttl", None)]);
        assert_eq!(sender.status(no_ttl).await.0, 400);
        let aesgcm = sender.request_with(&svc, &sub, ok(), &[("content-encoding", Some("aesgcm"))]);
        assert_eq!(sender.status(aesgcm).await.0, 415);
        let big = encrypt(&sub, &[b'x'; 4100], 2);
        assert_eq!(sender.status(sender.request(&svc, &sub, big)).await.0, 413);
        let not_last = encrypt(&sub, b"hi", 1);
        assert_eq!(
            sender.status(sender.request(&svc, &sub, not_last)).await.0,
            400
        );
        let bad_urgency = sender.request_with(&svc, &sub, ok(), &[("urgency", Some("urgent"))]);
        assert_eq!(sender.status(bad_urgency).await.0, 400);
        assert!(svc.received_all().is_empty());
        let rejections = svc.rejections();
        assert_eq!(rejections.len(), 9, "{rejections:#?}");
        assert!(
            rejections[7].contains("decryption failed"),
            "{rejections:#?}"
        );

        // Injected failures, then success, then gone.
        svc.fail_next(1, 429);
        let (status, headers) = sender.status(sender.request(&svc, &sub, ok())).await;
        assert_eq!(status, 429);
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1")
        );
        svc.fail_next(1, 500);
        assert_eq!(sender.status(sender.request(&svc, &sub, ok())).await.0, 500);
        assert_eq!(sender.status(sender.request(&svc, &sub, ok())).await.0, 201);
        svc.gone(&sub.endpoint);
        assert_eq!(sender.status(sender.request(&svc, &sub, ok())).await.0, 410);
        assert_eq!(svc.received_all().len(), 1);
        assert_eq!(svc.attempts(), 13);
    }

    #[tokio::test]
    async fn hang_never_answers() {
        let svc = PushService::start().await;
        let sender = Sender::new();
        let sub = svc.subscribe(&sender.public());
        svc.hang(true);
        let rb = sender
            .request(&svc, &sub, encrypt(&sub, b"x", 2))
            .timeout(Duration::from_millis(300));
        let err = rb.send().await.expect_err("a hanging service times out");
        assert!(err.is_timeout(), "{err}");
        svc.hang(false);
        let rb = sender.request(&svc, &sub, encrypt(&sub, b"x", 2));
        assert_eq!(sender.status(rb).await.0, 201);
    }
}
