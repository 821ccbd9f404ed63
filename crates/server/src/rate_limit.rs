//! Per-client rate limiting: a token bucket per API key (or per IP for
//! unauthenticated requests). Over the limit: 429 with `Retry-After`.
//! `GET /api/health` is exempt so load balancers never see a 429.

use crate::config::RateLimit;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The credential's hash prefix (never the credential).
    Credential([u8; 16]),
    /// The peer address.
    Ip(IpAddr),
}

impl ClientKey {
    /// Key for a presented credential.
    pub fn credential(raw: &str) -> Self {
        let d = Sha256::digest(raw.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        ClientKey::Credential(k)
    }
}

/// The keyed limiter.
pub struct Limiter {
    inner: RateLimiter<
        ClientKey,
        governor::state::keyed::DefaultKeyedStateStore<ClientKey>,
        DefaultClock,
    >,
}

impl Limiter {
    /// A limiter with the given quota.
    pub fn new(limit: RateLimit) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            inner: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// A limiter with an explicit quota (e.g. per minute).
    pub fn with_quota(quota: Quota) -> Self {
        Self {
            inner: RateLimiter::keyed(quota),
        }
    }

    /// `Ok` if the request may proceed, else how long to wait.
    pub fn check(&self, key: &ClientKey) -> Result<(), Duration> {
        self.inner
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose buckets are full again (bounded memory).
    pub fn sweep(&self) {
        self.inner.retain_recent();
    }
}
