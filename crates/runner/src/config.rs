//! Runner settings from the environment (the seed page's variables).
//!
//! Every variable is read at once and every problem is reported together, so
//! a misconfigured runner fails with one message naming each bad variable
//! (and the binary exits with code 2).

use ai_review_domain::{RunnerId, TagSet};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One documented variable: name, default (`None` = required), meaning.
#[derive(Debug, Clone, Copy)]
pub struct VarSpec {
    /// Environment variable.
    pub name: &'static str,
    /// Default value, or `None` if required.
    pub default: Option<&'static str>,
    /// What it sets.
    pub help: &'static str,
}

/// Every variable the runner reads, in `--help` order.
pub const VARS: &[VarSpec] = &[
    VarSpec {
        name: "RUNNER_SERVER_URL",
        default: None,
        help: "URL of the ai-review server, e.g. http://server:3000",
    },
    VarSpec {
        name: "RUNNER_TOKEN",
        default: None,
        help: "API key the runner authenticates with (ai-review admin create-api-key)",
    },
    VarSpec {
        name: "RUNNER_NAME",
        default: None,
        help: "display name of this runner instance",
    },
    VarSpec {
        name: "DOCKER_EXECUTOR_IMAGE",
        default: None,
        help: "image that executes reviews (built from Dockerfile.executor)",
    },
    VarSpec {
        name: "RUNNER_ID",
        default: Some("RUNNER_NAME"),
        help: "stable runner id (A-Z a-z 0-9 . _ -); defaults to RUNNER_NAME",
    },
    VarSpec {
        name: "RUNNER_TAGS",
        default: Some(""),
        help: "comma-separated routing tags this runner offers",
    },
    VarSpec {
        name: "RUNNER_MAX_CONCURRENT_JOBS",
        default: Some("2"),
        help: "reviews run in parallel",
    },
    VarSpec {
        name: "RUNNER_POLL_INTERVAL_MS",
        default: Some("2000"),
        help: "pause after an empty or failed poll",
    },
    VarSpec {
        name: "RUNNER_POLL_TIMEOUT_MS",
        default: Some("30000"),
        help: "long-poll hold of each poll request",
    },
    VarSpec {
        name: "RUNNER_HEARTBEAT_INTERVAL_MS",
        default: Some("10000"),
        help: "heartbeat period (renews task leases)",
    },
    VarSpec {
        name: "RUNNER_REQUEST_TIMEOUT_MS",
        default: Some("15000"),
        help: "timeout of each request to the server (polls add their hold)",
    },
    VarSpec {
        name: "RUNNER_CLONE_DEPTH",
        default: Some("50"),
        help: "git clone depth (0 = full history)",
    },
    VarSpec {
        name: "RUNNER_DRAIN_TIMEOUT_MS",
        default: Some("60000"),
        help: "on SIGTERM/SIGINT, how long running tasks may finish before they are interrupted",
    },
    VarSpec {
        name: "RUNNER_METRICS_ADDR",
        default: Some(""),
        help: "serve Prometheus metrics at GET /metrics on this IP address and port (e.g. 0.0.0.0:9101); empty: no metrics listener",
    },
    VarSpec {
        name: "DOCKER_MEMORY_LIMIT",
        default: Some("1g"),
        help: "memory limit per container (bytes, or with k/m/g suffix)",
    },
    VarSpec {
        name: "DOCKER_CPU_LIMIT",
        default: Some("1"),
        help: "CPUs per container (e.g. 0.5, 2)",
    },
    VarSpec {
        name: "DOCKER_PIDS_LIMIT",
        default: Some("256"),
        help: "process limit per container",
    },
    VarSpec {
        name: "DOCKER_NETWORK_MODE",
        default: Some("none"),
        help: "container network mode (none, bridge, or a network name)",
    },
    VarSpec {
        name: "DOCKER_WORKSPACE_BASE",
        default: Some("/tmp/ai-review-workspaces"),
        help: "host directory for per-task checkouts and the model response cache (model-cache/)",
    },
    VarSpec {
        name: "DOCKER_TIMEOUT_SECONDS",
        default: Some("600"),
        help: "wall-clock limit of one review container",
    },
    VarSpec {
        name: "DOCKER_POOL_SIZE",
        default: Some("1"),
        help: "pre-warmed containers kept ready (0 disables the pool)",
    },
    VarSpec {
        name: "DOCKER_HOST",
        default: Some("unix:///var/run/docker.sock"),
        help: "Docker Engine socket",
    },
];

/// Validated runner settings.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Server base URL.
    pub server_url: String,
    /// API key (never logged).
    pub token: String,
    /// Display name.
    pub name: String,
    /// Runner id.
    pub id: RunnerId,
    /// Routing tags.
    pub tags: TagSet,
    /// Executor image.
    pub image: String,
    /// Parallel reviews.
    pub max_concurrent_jobs: u32,
    /// Pause after an empty/failed poll.
    pub poll_interval: Duration,
    /// Long-poll hold.
    pub poll_timeout: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Clone depth (0 = full).
    pub clone_depth: u32,
    /// Drain grace period.
    pub drain_timeout: Duration,
    /// Where `GET /metrics` is served (`None`: nowhere).
    pub metrics_addr: Option<SocketAddr>,
    /// Container memory limit in bytes.
    pub memory_bytes: i64,
    /// Container CPU limit in nano-CPUs.
    pub nano_cpus: i64,
    /// Container pids limit.
    pub pids_limit: i64,
    /// Container network mode.
    pub network_mode: String,
    /// Host directory for checkouts.
    pub workspace_base: PathBuf,
    /// Container wall-clock limit.
    pub container_timeout: Duration,
    /// Warm pool size.
    pub pool_size: u32,
    /// Docker socket.
    pub docker_host: String,
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("server_url", &self.server_url)
            .field("token", &"***")
            .field("id", &self.id)
            .field("image", &self.image)
            .field("max_concurrent_jobs", &self.max_concurrent_jobs)
            .finish_non_exhaustive()
    }
}

/// Every problem found in the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid runner configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

struct Reader<'a> {
    env: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn default_of(name: &str) -> &'static str {
        VARS.iter()
            .find(|v| v.name == name)
            .and_then(|v| v.default)
            .unwrap_or("")
    }

    fn required(&mut self, name: &str) -> String {
        match self.raw(name) {
            Some(v) => v.to_owned(),
            None => {
                let help = VARS.iter().find(|v| v.name == name).map_or("", |v| v.help);
                self.errors.push(format!("{name} is required ({help})"));
                String::new()
            }
        }
    }

    fn text(&self, name: &str) -> String {
        self.raw(name).unwrap_or(Self::default_of(name)).to_owned()
    }

    fn number<T>(&mut self, name: &str, min: T, max: T, what: &str) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let raw = self.text(name);
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            _ => {
                self.errors
                    .push(format!("{name}={raw:?} must be {what} from {min} to {max}"));
                min
            }
        }
    }

    fn millis(&mut self, name: &str, min: u64) -> Duration {
        Duration::from_millis(self.number(name, min, 86_400_000, "a whole number of milliseconds"))
    }
}

/// Parses `1g`, `512m`, `1048576`, `64k` into bytes.
pub fn parse_bytes(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1024_i64),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    let bytes = (n * mult as f64) as i64;
    (n.is_finite() && n > 0.0).then_some(bytes)
}

impl RunnerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables (tests).
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, ConfigErrors> {
        let mut r = Reader {
            env,
            errors: Vec::new(),
        };
        let server_url = r.required("RUNNER_SERVER_URL");
        if !server_url.is_empty()
            && url::Url::parse(&server_url)
                .map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            r.errors.push(format!(
                "RUNNER_SERVER_URL={server_url:?} must be an http:// or https:// URL"
            ));
        }
        let token = r.required("RUNNER_TOKEN");
        if !token.is_empty() && ai_review_domain::ApiKeySecret::parse(&token).is_err() {
            r.errors.push("RUNNER_TOKEN is not an ai-review API key (expected air_ followed by 40 letters and digits)".into());
        }
        let name = r.required("RUNNER_NAME");
        let image = r.required("DOCKER_EXECUTOR_IMAGE");
        let id_raw = r
            .raw("RUNNER_ID")
            .map(str::to_owned)
            .unwrap_or_else(|| name.clone());
        let id = match RunnerId::parse(&id_raw) {
            Ok(id) if id.as_str() == crate::gateway::CACHE_DIR => {
                r.errors.push(format!(
                    "RUNNER_ID={id_raw:?} is reserved: DOCKER_WORKSPACE_BASE/{id_raw} holds the model response cache; choose another id"
                ));
                None
            }
            Ok(id) => Some(id),
            Err(e) if !id_raw.is_empty() => {
                let var = if r.raw("RUNNER_ID").is_some() {
                    "RUNNER_ID"
                } else {
                    "RUNNER_NAME (used as RUNNER_ID)"
                };
                r.errors
                    .push(format!("{var}: {e}; set RUNNER_ID to a valid id"));
                None
            }
            Err(_) => None,
        };
        let tags = match TagSet::parse_comma_list(&r.text("RUNNER_TAGS")) {
            Ok(t) => t,
            Err(e) => {
                r.errors.push(format!("RUNNER_TAGS: {e}"));
                TagSet::default()
            }
        };
        let max_concurrent_jobs =
            r.number("RUNNER_MAX_CONCURRENT_JOBS", 1u32, 256, "a whole number");
        let poll_interval = r.millis("RUNNER_POLL_INTERVAL_MS", 1);
        let poll_timeout = r.millis("RUNNER_POLL_TIMEOUT_MS", 0);
        let heartbeat_interval = r.millis("RUNNER_HEARTBEAT_INTERVAL_MS", 100);
        let request_timeout = r.millis("RUNNER_REQUEST_TIMEOUT_MS", 100);
        let clone_depth = r.number("RUNNER_CLONE_DEPTH", 0u32, 1_000_000, "a whole number");
        let drain_timeout = r.millis("RUNNER_DRAIN_TIMEOUT_MS", 0);
        let metrics_addr = match r.raw("RUNNER_METRICS_ADDR").map(str::to_owned) {
            None => None,
            Some(raw) => match raw.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    r.errors.push(format!(
                        "RUNNER_METRICS_ADDR={raw:?} must be an IP address and port, e.g. 0.0.0.0:9101 or 127.0.0.1:9101 (unset it for no metrics listener)"
                    ));
                    None
                }
            },
        };
        let mem_raw = r.text("DOCKER_MEMORY_LIMIT");
        let memory_bytes = match parse_bytes(&mem_raw) {
            Some(b) if b >= 6 * 1024 * 1024 => b,
            _ => {
                r.errors.push(format!(
                    "DOCKER_MEMORY_LIMIT={mem_raw:?} must be a size of at least 6m, e.g. 512m or 2g"
                ));
                0
            }
        };
        let cpu_raw = r.text("DOCKER_CPU_LIMIT");
        let nano_cpus = match cpu_raw.parse::<f64>() {
            Ok(c) if c > 0.0 && c <= 1024.0 => (c * 1e9) as i64,
            _ => {
                r.errors.push(format!(
                    "DOCKER_CPU_LIMIT={cpu_raw:?} must be a number of CPUs above 0, e.g. 0.5 or 2"
                ));
                0
            }
        };
        let pids_limit = r.number("DOCKER_PIDS_LIMIT", 16i64, 1_000_000, "a whole number");
        let network_mode = r.text("DOCKER_NETWORK_MODE");
        if network_mode == "host" {
            r.errors.push("DOCKER_NETWORK_MODE=host would give review containers the host's network; use none (default) or a dedicated network".into());
        }
        let workspace_base = PathBuf::from(r.text("DOCKER_WORKSPACE_BASE"));
        if !workspace_base.is_absolute() {
            r.errors.push(format!(
                "DOCKER_WORKSPACE_BASE={:?} must be an absolute path",
                workspace_base.display()
            ));
        }
        let container_timeout = Duration::from_secs(r.number(
            "DOCKER_TIMEOUT_SECONDS",
            1u64,
            86_400,
            "a whole number of seconds",
        ));
        let pool_size = r.number("DOCKER_POOL_SIZE", 0u32, 64, "a whole number");
        let docker_host = r.text("DOCKER_HOST");
        if !(docker_host.starts_with("unix://")
            || docker_host.starts_with("tcp://")
            || docker_host.starts_with("http://"))
        {
            r.errors.push(format!(
                "DOCKER_HOST={docker_host:?} must be unix:///path/to/docker.sock or tcp://host:port"
            ));
        }
        match (r.errors.is_empty(), id) {
            (true, Some(id)) => Ok(RunnerConfig {
                server_url: server_url.trim_end_matches('/').to_owned(),
                token,
                name,
                id,
                tags,
                image,
                max_concurrent_jobs,
                poll_interval,
                poll_timeout,
                heartbeat_interval,
                request_timeout,
                clone_depth,
                drain_timeout,
                metrics_addr,
                memory_bytes,
                nano_cpus,
                pids_limit,
                network_mode,
                workspace_base,
                container_timeout,
                pool_size,
                docker_host,
            }),
            _ => Err(ConfigErrors(r.errors)),
        }
    }

    /// The `--help` text listing every variable with its default.
    pub fn help_text() -> String {
        let mut s = String::from("Environment variables:\n");
        for v in VARS {
            let d = match v.default {
                None => "required".to_owned(),
                Some("") => "default: empty".to_owned(),
                Some(d) => format!("default: {d}"),
            };
            s.push_str(&format!("  {} [{}]\n      {}\n", v.name, d, v.help));
        }
        s.push_str("\nExit codes: 0 after a clean drain, 1 on errors, 2 for invalid configuration, 3 when the server refuses RUNNER_TOKEN.\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const KEY: &str = "air_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let c = RunnerConfig::from_map(&env(&[
            ("RUNNER_SERVER_URL", "http://server:3000/"),
            ("RUNNER_TOKEN", KEY),
            ("RUNNER_NAME", "runner-1"),
            ("DOCKER_EXECUTOR_IMAGE", "ai-review-executor:latest"),
        ]))
        .expect("valid");
        assert_eq!(c.server_url, "http://server:3000");
        assert_eq!(c.id.as_str(), "runner-1");
        assert_eq!(c.max_concurrent_jobs, 2);
        assert_eq!(c.memory_bytes, 1024 * 1024 * 1024);
        assert_eq!(c.nano_cpus, 1_000_000_000);
        assert_eq!(c.network_mode, "none");
        assert_eq!(c.container_timeout, Duration::from_secs(600));
        assert_eq!(c.metrics_addr, None, "no metrics listener unless asked");
        assert!(!format!("{c:?}").contains(KEY), "the token never prints");
    }

    #[test]
    fn every_bad_variable_is_named_at_once() {
        let e = RunnerConfig::from_map(&env(&[
            ("RUNNER_TOKEN", "secret"),
            ("RUNNER_NAME", "has space"),
            ("RUNNER_MAX_CONCURRENT_JOBS", "many"),
            ("DOCKER_MEMORY_LIMIT", "lots"),
            ("DOCKER_CPU_LIMIT", "-1"),
            ("DOCKER_NETWORK_MODE", "host"),
            ("DOCKER_WORKSPACE_BASE", "relative/dir"),
        ]))
        .expect_err("invalid");
        let text = e.to_string();
        for var in [
            "RUNNER_SERVER_URL is required",
            "DOCKER_EXECUTOR_IMAGE is required",
            "RUNNER_TOKEN is not an ai-review API key",
            "RUNNER_NAME (used as RUNNER_ID)",
            "RUNNER_MAX_CONCURRENT_JOBS=\"many\"",
            "DOCKER_MEMORY_LIMIT=\"lots\"",
            "DOCKER_CPU_LIMIT=\"-1\"",
            "DOCKER_NETWORK_MODE=host",
            "DOCKER_WORKSPACE_BASE",
        ] {
            assert!(text.contains(var), "missing {var:?} in:\n{text}");
        }
        assert!(!text.contains("secret"), "the token value is never echoed");
    }

    fn with_metrics_addr(value: &str) -> Result<RunnerConfig, ConfigErrors> {
        RunnerConfig::from_map(&env(&[
            ("RUNNER_SERVER_URL", "http://server:3000"),
            ("RUNNER_TOKEN", KEY),
            ("RUNNER_NAME", "runner-1"),
            ("DOCKER_EXECUTOR_IMAGE", "ai-review-executor:latest"),
            ("RUNNER_METRICS_ADDR", value),
        ]))
    }

    #[test]
    fn the_metrics_address_is_an_ip_and_port() {
        let c = with_metrics_addr("0.0.0.0:9101").expect("valid");
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9101".parse().expect("addr")));
        let c = with_metrics_addr("[::1]:0").expect("valid");
        assert_eq!(c.metrics_addr, Some("[::1]:0".parse().expect("addr")));
        assert_eq!(with_metrics_addr("  ").expect("blank").metrics_addr, None);
        for bad in [
            "9101",
            "localhost:9101",
            "0.0.0.0",
            "0.0.0.0:99999",
            "http://0.0.0.0:9101",
        ] {
            let e = with_metrics_addr(bad).expect_err(bad);
            assert_eq!(e.0.len(), 1, "one error: {e}");
            assert!(
                e.0[0].starts_with(&format!(
                    "RUNNER_METRICS_ADDR={bad:?} must be an IP address and port"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn the_model_cache_directory_name_is_not_a_runner_id() {
        let e = RunnerConfig::from_map(&env(&[
            ("RUNNER_SERVER_URL", "http://server:3000"),
            ("RUNNER_TOKEN", KEY),
            ("RUNNER_NAME", "model-cache"),
            ("DOCKER_EXECUTOR_IMAGE", "ai-review-executor:latest"),
        ]))
        .expect_err("reserved");
        assert!(e.to_string().contains("is reserved"), "{e}");
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_bytes("512m"), Some(512 * 1024 * 1024));
        assert_eq!(parse_bytes("2G"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("64kb"), Some(64 * 1024));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("-5m"), None);
    }
}
