//! Rate limiting, of two kinds.
//!
//! - [`Limiter`], the general API limit: a token bucket per API key (or per
//!   IP for unauthenticated requests), in memory, **per replica**. It
//!   protects each replica's own capacity, like a proxy's per-instance
//!   `limit_req`; sharing it would cost a database write per request.
//!   Over the limit: 429 with `Retry-After`. `GET /api/health` is exempt so
//!   load balancers never see a 429.
//! - [`SharedLimit`], limits that must hold **across replicas** because
//!   they are security limits (the login throttle: an attacker spreading
//!   guesses over N replicas must not get N times the guesses). They count
//!   in fixed windows in the store ([`Store::hit_rate_limit`]), one write
//!   per attempt, under a digest of the client, never the client itself.

use crate::config::RateLimit;
use ai_review_domain::Timestamp;
use ai_review_store::{RateLimitKey, Store, StoreResult};
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
    /// The client address, as [`ClientKey::ip`] normalises it.
    Ip(IpAddr),
}

impl ClientKey {
    /// Key for a client address. An IPv4 address written as IPv6
    /// (`::ffff:192.0.2.1`, from a dual-stack listener) counts as the IPv4
    /// address, and an IPv6 address counts as its /64 network: providers
    /// give one subscriber a whole /64, so counting its addresses apart
    /// would let one host rotate through 2^64 fresh budgets.
    pub fn ip(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 @ IpAddr::V4(_) => v4,
        };
        ClientKey::Ip(addr)
    }

    /// Key for a presented credential.
    pub fn credential(raw: &str) -> Self {
        let d = Sha256::digest(raw.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        ClientKey::Credential(k)
    }

    /// The bytes a [`SharedLimit`] digests into its store key: a tag for
    /// the kind, then the credential's hash prefix or the address in its
    /// canonical text form.
    fn subject(&self) -> Vec<u8> {
        match self {
            ClientKey::Credential(k) => [b"credential:".as_slice(), k].concat(),
            ClientKey::Ip(ip) => format!("ip:{ip}").into_bytes(),
        }
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

/// A limit every server replica shares through the store: at most `max`
/// attempts per client in each fixed window of `window` (windows aligned
/// to multiples of their length since the Unix epoch, the same on every
/// replica). Every attempt is one upsert ([`Store::hit_rate_limit`]); a
/// refused attempt counts too, which changes nothing about when the client
/// may try again: at the end of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedLimit {
    /// The limit's name, digested into every key so limits never share a
    /// count.
    pub name: &'static str,
    /// Attempts allowed per client and window.
    pub max: u64,
    /// The window's length.
    pub window: Duration,
}

impl SharedLimit {
    /// Login and setup attempts per client address (each costs an Argon2
    /// verification): 20 in each two-minute window. That keeps the
    /// previous per-replica limit's burst of 20 and its sustained rate of
    /// 10 a minute, now across all replicas together.
    pub const LOGIN: SharedLimit = SharedLimit {
        name: "login",
        max: 20,
        window: Duration::from_secs(120),
    };

    /// Counts one attempt by `client` at `now`: `Ok(Ok(()))` if it may
    /// proceed, `Ok(Err(wait))` if it is over the limit, `wait` being the
    /// time until the window ends (at least a millisecond).
    ///
    /// # Errors
    ///
    /// When the store cannot count the attempt (the caller refuses it:
    /// an unknown count is not a count under the limit).
    pub async fn check(
        &self,
        store: &dyn Store,
        client: &ClientKey,
        now: Timestamp,
    ) -> StoreResult<Result<(), Duration>> {
        let key = RateLimitKey::new(self.name, &client.subject());
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let window = store.hit_rate_limit(&key, now, window_ms).await?;
        if window.hits <= self.max {
            return Ok(Ok(()));
        }
        let left = u64::try_from(window.end.millis_since(now)).unwrap_or(0);
        Ok(Err(Duration::from_millis(left.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_tell_kinds_and_clients_apart() {
        let ip = ClientKey::Ip(IpAddr::from([192, 0, 2, 1]));
        let other = ClientKey::Ip(IpAddr::from([192, 0, 2, 11]));
        let cred = ClientKey::credential("ar_secret");
        assert_eq!(ip.subject(), b"ip:192.0.2.1");
        assert_ne!(ip.subject(), other.subject());
        assert!(cred.subject().starts_with(b"credential:"));
        assert_eq!(cred.subject().len(), "credential:".len() + 16);
    }

    #[test]
    fn one_ipv6_network_is_one_client_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| ClientKey::ip(s.parse().expect("address"));
        assert_eq!(
            ip("2001:db8:1:2::1"),
            ip("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(ip("2001:db8:1:2::1").subject(), b"ip:2001:db8:1:2::");
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
        assert_ne!(ip("192.0.2.1"), ip("192.0.2.2"));
    }
}
