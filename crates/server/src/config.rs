//! Server settings. [`ServerConfig`] is what `ai-review server` parses from
//! flags and environment variables (`--help` lists every one with its
//! default); [`Settings`] is the validated form the server runs with.

use crate::secrets::{SecretBox, SecretKey};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `ai-review server` options. Every flag can also be set through the
/// environment variable named in its help.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Directory for the embedded SQLite database and other state.
    /// Default: $AI_REVIEW_DATA_DIR, else $XDG_DATA_HOME/ai-review, else ~/.local/share/ai-review.
    #[arg(long, env = "AI_REVIEW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: `sqlite:///path/file.db` (embedded, single server) or
    /// `postgres://user:pass@host/db` (several server replicas).
    /// Default: a SQLite file `ai-review.db` in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// A runner silent for this long is marked offline.
    #[arg(long, env = "RUNNER_HEARTBEAT_TIMEOUT_MS", default_value_t = 60_000)]
    pub runner_heartbeat_timeout_ms: u64,

    /// Lease length of a claim; heartbeats and phase reports renew it. A
    /// task whose lease runs out goes back to the queue.
    #[arg(long, env = "TASK_LEASE_MS", default_value_t = 60_000)]
    pub task_lease_ms: u64,

    /// Claims a task may use before it fails for good.
    #[arg(long, env = "TASK_MAX_ATTEMPTS", default_value_t = 3)]
    pub task_max_attempts: u32,

    /// A pending task nobody claims within this time expires.
    #[arg(long, env = "TASK_UNCLAIMED_EXPIRY_MS", default_value_t = 86_400_000)]
    pub task_unclaimed_expiry_ms: u64,

    /// Per-task cap on stored log bytes; later lines are dropped with a marker.
    #[arg(long, env = "TASK_LOG_MAX_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub task_log_max_bytes: u64,

    /// Longest long-poll hold granted to `GET /api/runners/tasks/pending`.
    #[arg(long, env = "MAX_POLL_WAIT_MS", default_value_t = 30_000)]
    pub max_poll_wait_ms: u64,

    /// How often the reaper looks for expired leases, unclaimed tasks and
    /// silent runners.
    #[arg(long, env = "REAPER_INTERVAL_MS", default_value_t = 1_000)]
    pub reaper_interval_ms: u64,

    /// Largest request body accepted (bytes); larger ones get 413.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub body_limit_bytes: usize,

    /// Sustained requests per second per client (API key, else IP), per
    /// replica: each server replica keeps its own buckets in memory, so N
    /// replicas behind a load balancer allow up to N times this in total
    /// (the login throttle, by contrast, is shared across replicas); 0
    /// disables rate limiting.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// Burst allowance on top of the sustained rate (per replica, like the
    /// rate).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// Reverse proxies and load balancers whose `X-Forwarded-For` is
    /// believed: a comma-separated list of IP addresses and CIDR networks,
    /// e.g. `10.0.0.0/8,192.168.1.10,fd00::/8`. For a request from one of
    /// them, the client address (for rate limits and the login throttle) is
    /// the rightmost `X-Forwarded-For` entry that is not itself a trusted
    /// proxy; from anyone else the header is ignored. Unset: the TCP peer
    /// is the client, and behind a load balancer every client shares its
    /// address.
    #[arg(long, env = "AI_REVIEW_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// The server's public base URL as forges and browsers reach it, e.g.
    /// `https://ai-review.example.com`: webhook URLs are checked against
    /// `<url>/api/webhook/gitlab|github`, and posted summaries link to
    /// `<url>/reviews/<id>`.
    #[arg(long, env = "AI_REVIEW_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Server key sealing secrets at rest (model API keys, forge tokens):
    /// base64 of 32 random bytes (`openssl rand -base64 32`). Default: a
    /// key generated once into `secret.key` in the data directory. Several
    /// replicas must share it. Back it up with the database: without it
    /// the stored secrets cannot be decrypted.
    #[arg(long, env = "AI_REVIEW_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// The previous server key during a rotation: values sealed under it
    /// still open; values saved from now on use `AI_REVIEW_SECRET_KEY`.
    #[arg(long, env = "AI_REVIEW_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    pub secret_key_previous: Option<String>,

    /// Whether the dashboard's session cookie carries `Secure` (sent over
    /// HTTPS only): `auto` (when `AI_REVIEW_PUBLIC_URL` is https), `true`
    /// or `false`.
    #[arg(long, env = "AI_REVIEW_COOKIE_SECURE", default_value = "auto")]
    pub cookie_secure: String,

    /// The session cookie's `SameSite`: `lax` (links from merge requests
    /// open the dashboard logged in) or `strict`.
    #[arg(long, env = "AI_REVIEW_COOKIE_SAMESITE", default_value = "lax")]
    pub cookie_samesite: String,

    /// A dashboard session ends after this many hours without a request.
    #[arg(long, env = "AI_REVIEW_SESSION_IDLE_HOURS", default_value_t = 168)]
    pub session_idle_hours: u64,

    /// A dashboard session ends this many hours after login however much
    /// it is used; then the user logs in again.
    #[arg(long, env = "AI_REVIEW_SESSION_MAX_HOURS", default_value_t = 720)]
    pub session_max_hours: u64,

    /// How long one notification delivery may take before it counts as
    /// failed (and is retried).
    #[arg(long, env = "NOTIFY_TIMEOUT_MS", default_value_t = 10_000)]
    pub notify_timeout_ms: u64,

    /// How often a held long-poll looks at the queue without a wake-up.
    /// Enqueues wake polls at once (across replicas too, on PostgreSQL);
    /// this is the fallback for a missed wake-up.
    #[arg(long, env = "POLL_RECHECK_MS", default_value_t = 1_000)]
    pub poll_recheck_ms: u64,

    /// Serve `GET /metrics` on this address only (e.g. `127.0.0.1:9464`,
    /// reachable by Prometheus but not by the public); unset: on the main
    /// listener.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// A PEM file of CA certificates trusted for the SMTP server's TLS
    /// certificate, besides the Mozilla roots (a relay with a private CA).
    #[arg(long, env = "NOTIFY_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
}

impl ServerConfig {
    /// The secret box from `AI_REVIEW_SECRET_KEY` (and
    /// `AI_REVIEW_SECRET_KEY_PREVIOUS`), or from `secret.key` in the data
    /// directory, created on first start.
    pub fn secret_box(&self) -> Result<SecretBox, String> {
        let current = match self.secret_key.as_deref().filter(|k| !k.trim().is_empty()) {
            Some(k) => {
                SecretKey::from_base64(k, "AI_REVIEW_SECRET_KEY").map_err(|e| e.to_string())?
            }
            None => {
                let dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
                if self
                    .database_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("postgres"))
                {
                    tracing::warn!(
                        "AI_REVIEW_SECRET_KEY is not set: using {}/secret.key; every server replica on this PostgreSQL must use the same key",
                        dir.display()
                    );
                }
                SecretKey::load_or_create(&dir.join("secret.key")).map_err(|e| e.to_string())?
            }
        };
        let previous = match self
            .secret_key_previous
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            Some(k) => vec![
                SecretKey::from_base64(k, "AI_REVIEW_SECRET_KEY_PREVIOUS")
                    .map_err(|e| e.to_string())?,
            ],
            None => Vec::new(),
        };
        Ok(SecretBox::new(&current, &previous))
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        resolve_database_url(self.data_dir.as_deref(), self.database_url.as_deref())
    }

    /// Validates the options into [`Settings`].
    pub fn settings(&self) -> Result<Settings, String> {
        let ip: std::net::IpAddr = self.host.parse().map_err(|_| {
            format!(
                "HOST={:?} is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)",
                self.host
            )
        })?;
        let mut problems = Vec::new();
        for (name, v) in [
            (
                "RUNNER_HEARTBEAT_TIMEOUT_MS",
                self.runner_heartbeat_timeout_ms,
            ),
            ("TASK_LEASE_MS", self.task_lease_ms),
            ("TASK_UNCLAIMED_EXPIRY_MS", self.task_unclaimed_expiry_ms),
            ("REAPER_INTERVAL_MS", self.reaper_interval_ms),
            ("TASK_LOG_MAX_BYTES", self.task_log_max_bytes),
            ("NOTIFY_TIMEOUT_MS", self.notify_timeout_ms),
            ("POLL_RECHECK_MS", self.poll_recheck_ms),
        ] {
            if v == 0 {
                problems.push(format!("{name} must be greater than 0"));
            }
        }
        if self.task_max_attempts == 0 {
            problems.push("TASK_MAX_ATTEMPTS must be at least 1".into());
        }
        if self.session_idle_hours == 0 {
            problems.push("AI_REVIEW_SESSION_IDLE_HOURS must be at least 1".into());
        }
        if self.session_max_hours == 0 {
            problems.push("AI_REVIEW_SESSION_MAX_HOURS must be at least 1".into());
        }
        let cookie_secure = match self.cookie_secure.trim().to_ascii_lowercase().as_str() {
            "auto" => None,
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            other => {
                problems.push(format!(
                    "AI_REVIEW_COOKIE_SECURE={other:?} must be auto, true or false"
                ));
                None
            }
        };
        let cookie_strict = match self.cookie_samesite.trim().to_ascii_lowercase().as_str() {
            "lax" => false,
            "strict" => true,
            other => {
                problems.push(format!(
                    "AI_REVIEW_COOKIE_SAMESITE={other:?} must be lax or strict"
                ));
                false
            }
        };
        if self.body_limit_bytes < 1024 {
            problems.push("BODY_LIMIT_BYTES must be at least 1024".into());
        }
        let smtp_extra_roots = match &self.smtp_ca_file {
            None => None,
            Some(path) => match std::fs::read_to_string(path) {
                Ok(pem) => match crate::notify::email::check_ca_pem(&pem) {
                    Ok(()) => Some(pem),
                    Err(e) => {
                        problems.push(format!("NOTIFY_SMTP_CA_FILE={}: {e}", path.display()));
                        None
                    }
                },
                Err(e) => {
                    problems.push(format!(
                        "NOTIFY_SMTP_CA_FILE={} cannot be read ({e})",
                        path.display()
                    ));
                    None
                }
            },
        };
        let metrics_listen = match self.metrics_addr.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => match a.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(format!(
                        "METRICS_ADDR={a:?} is not an address with a port, e.g. 127.0.0.1:9464"
                    ));
                    None
                }
            },
        };
        let trusted_proxies =
            TrustedProxies::parse(self.trusted_proxies.as_deref().unwrap_or_default())
                .unwrap_or_else(|e| {
                    problems.push(e);
                    TrustedProxies::default()
                });
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Settings {
            trusted_proxies,
            smtp_extra_roots,
            metrics_listen,
            poll_recheck: Duration::from_millis(self.poll_recheck_ms),
            listen: SocketAddr::new(ip, self.port),
            heartbeat_timeout: Duration::from_millis(self.runner_heartbeat_timeout_ms),
            lease: Duration::from_millis(self.task_lease_ms),
            max_attempts: self.task_max_attempts,
            unclaimed_expiry: Duration::from_millis(self.task_unclaimed_expiry_ms),
            task_log_max_bytes: self.task_log_max_bytes,
            max_poll_wait: Duration::from_millis(self.max_poll_wait_ms),
            reaper_interval: Duration::from_millis(self.reaper_interval_ms),
            body_limit_bytes: self.body_limit_bytes,
            rate_limit: (self.rate_limit_per_second > 0).then_some(RateLimit {
                per_second: self.rate_limit_per_second,
                burst: self.rate_limit_burst.max(1),
            }),
            secrets: self.secret_box()?,
            notify_timeout: Duration::from_millis(self.notify_timeout_ms),
            session: SessionSettings {
                secure: cookie_secure.unwrap_or_else(|| {
                    self.public_url
                        .as_deref()
                        .is_some_and(|u| u.trim().starts_with("https://"))
                }),
                same_site_strict: cookie_strict,
                idle: Duration::from_secs(self.session_idle_hours.saturating_mul(3600)),
                max_lifetime: Duration::from_secs(self.session_max_hours.saturating_mul(3600)),
            },
            public_url: match self
                .public_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
            {
                None => None,
                Some(u) => {
                    let parsed = url::Url::parse(u).map_err(|e| {
                        format!("AI_REVIEW_PUBLIC_URL={u:?} is not a URL ({e}); e.g. https://ai-review.example.com")
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(
                            "AI_REVIEW_PUBLIC_URL must be an http:// or https:// URL".into()
                        );
                    }
                    Some(u.trim_end_matches('/').to_owned())
                }
            },
        })
    }
}

/// The database URL for a data directory and an explicit URL, either
/// optional: the URL if given, else `ai-review.db` in the data directory
/// (itself defaulting as documented on [`ServerConfig::data_dir`]).
pub fn resolve_database_url(
    data_dir: Option<&std::path::Path>,
    database_url: Option<&str>,
) -> String {
    match database_url {
        Some(u) => u.to_owned(),
        None => {
            let dir = data_dir.map_or_else(default_data_dir, std::path::Path::to_path_buf);
            format!("sqlite://{}", dir.join("ai-review.db").display())
        }
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("ai-review");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/ai-review");
    }
    PathBuf::from("data")
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Silence after which a runner is offline.
    pub heartbeat_timeout: Duration,
    /// Lease length of a claim.
    pub lease: Duration,
    /// Claims per task before it fails.
    pub max_attempts: u32,
    /// Expiry of unclaimed tasks.
    pub unclaimed_expiry: Duration,
    /// Per-task log cap in bytes.
    pub task_log_max_bytes: u64,
    /// Longest long-poll hold.
    pub max_poll_wait: Duration,
    /// Reaper period.
    pub reaper_interval: Duration,
    /// Request body cap.
    pub body_limit_bytes: usize,
    /// Per-client rate limit, if enabled.
    pub rate_limit: Option<RateLimit>,
    /// Proxies whose `X-Forwarded-For` names the client (see
    /// [`crate::app::client_ip`]).
    pub trusted_proxies: TrustedProxies,
    /// Seals secrets (model API keys) at rest.
    pub secrets: SecretBox,
    /// Public base URL (webhook checks, links in posted summaries).
    pub public_url: Option<String>,
    /// Dashboard session cookie settings.
    pub session: SessionSettings,
    /// Time allowed for one notification delivery.
    pub notify_timeout: Duration,
    /// Extra CA certificates (PEM) for the SMTP server's TLS.
    pub smtp_extra_roots: Option<String>,
    /// A separate listener for `/metrics` (else on the main one).
    pub metrics_listen: Option<SocketAddr>,
    /// Long-poll re-check interval without a wake-up.
    pub poll_recheck: Duration,
}

/// How dashboard sessions and their cookie behave.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// `Secure` attribute on the cookie.
    pub secure: bool,
    /// `SameSite=Strict` instead of `Lax`.
    pub same_site_strict: bool,
    /// Idle time after which a session ends.
    pub idle: Duration,
    /// Time after login at which a session ends, used or not.
    pub max_lifetime: Duration,
}

/// A per-client token bucket.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Burst size.
    pub burst: u32,
}

impl Default for Settings {
    /// The documented defaults, listening on 127.0.0.1 port 0 (tests).
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            heartbeat_timeout: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            max_attempts: 3,
            unclaimed_expiry: Duration::from_secs(86_400),
            task_log_max_bytes: 5 * 1024 * 1024,
            max_poll_wait: Duration::from_secs(30),
            reaper_interval: Duration::from_secs(1),
            body_limit_bytes: 10 * 1024 * 1024,
            rate_limit: Some(RateLimit {
                per_second: 100,
                burst: 200,
            }),
            trusted_proxies: TrustedProxies::default(),
            secrets: SecretBox::new(&SecretKey::generate(), &[]),
            public_url: None,
            notify_timeout: Duration::from_secs(10),
            smtp_extra_roots: None,
            metrics_listen: None,
            poll_recheck: Duration::from_secs(1),
            session: SessionSettings {
                secure: false,
                same_site_strict: false,
                idle: Duration::from_secs(168 * 3600),
                max_lifetime: Duration::from_secs(720 * 3600),
            },
        }
    }
}

/// The reverse proxies trusted to report the client's address in
/// `X-Forwarded-For` (`AI_REVIEW_TRUSTED_PROXIES`): IP addresses and CIDR
/// networks, IPv4 and IPv6. Empty by default: nobody is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses (`192.168.1.10`, `::1`)
    /// and networks (`10.0.0.0/8`, `fd00::/8`); blank entries are skipped.
    /// The error names the variable and every entry that is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        let mut bad = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_network(entry) {
                Some(n) => networks.push(n),
                None => bad.push(format!("{entry:?}")),
            }
        }
        if bad.is_empty() {
            Ok(Self { networks })
        } else {
            Err(format!(
                "AI_REVIEW_TRUSTED_PROXIES: {} not an IP address or CIDR network (e.g. 10.0.0.0/8, 192.168.1.10 or fd00::/8)",
                if bad.len() == 1 {
                    format!("{} is", bad[0])
                } else {
                    format!("{} are", bad.join(", "))
                }
            ))
        }
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is a trusted proxy. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, what a dual-stack listener reports for IPv4
    /// peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

/// `addr` or `addr/prefix` as a network address and prefix length (host
/// bits beyond the prefix are ignored, as `10.1.2.3/8` means `10.0.0.0/8`).
fn parse_network(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().ok().filter(|&p| p <= max)?
        }
        Some(_) => return None,
    };
    Some((addr, prefix))
}

/// Milliseconds of a duration as the `i64` timestamps use.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::TrustedProxies;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_networks() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.10 ,fd00::/8,,::1 ,").expect("valid");
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.168.1.10",
            "fd00::1",
            "fdff:ffff::9",
            "::1",
            // What a dual-stack listener reports for an IPv4 peer.
            "::ffff:10.1.2.3",
        ] {
            assert!(t.contains(ip(yes)), "{yes} is trusted");
        }
        for no in [
            "11.0.0.1",
            "9.255.255.255",
            "192.168.1.11",
            "fe00::1",
            "::2",
            "203.0.113.7",
            // An IPv4 network does not cover IPv6 addresses or the reverse.
            "::a00:1",
        ] {
            assert!(!t.contains(ip(no)), "{no} is not trusted");
        }
        assert!(TrustedProxies::parse("").expect("empty").is_empty());
        assert!(TrustedProxies::parse(" , ").expect("blank").is_empty());
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn trusted_proxies_prefix_edges() {
        let all = TrustedProxies::parse("0.0.0.0/0,::/0").expect("everything");
        assert!(all.contains(ip("203.0.113.7")) && all.contains(ip("2001:db8::1")));
        // Host bits beyond the prefix are ignored.
        let t = TrustedProxies::parse("10.1.2.3/8,2001:db8::1/32").expect("host bits");
        assert!(t.contains(ip("10.9.9.9")) && t.contains(ip("2001:db8:ffff::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        let one = TrustedProxies::parse("10.0.0.1/32,2001:db8::1/128").expect("single");
        assert!(one.contains(ip("10.0.0.1")) && !one.contains(ip("10.0.0.2")));
        assert!(one.contains(ip("2001:db8::1")) && !one.contains(ip("2001:db8::2")));
    }

    #[test]
    fn malformed_trusted_proxies_are_named_in_the_error() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0",
            "proxy.example.com",
            "10.0.0.1:80",
            "[::1]",
            "*",
        ] {
            let e = TrustedProxies::parse(&format!("172.16.0.1, {bad}")).expect_err(bad);
            assert!(e.starts_with("AI_REVIEW_TRUSTED_PROXIES"), "{e}");
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
            assert!(!e.contains("172.16.0.1"), "only the bad entry: {e}");
        }
        let e = TrustedProxies::parse("x,10.0.0.0/8,y").expect_err("two");
        assert!(e.contains(r#""x", "y" are not"#), "{e}");
    }
}
