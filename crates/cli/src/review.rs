//! `ai-review review`: the product's main job on one machine. Starts an
//! embedded server (SQLite in the data directory) and an in-process runner
//! with the Docker executor, serves the local repository to it over
//! `git daemon` on loopback, queues the change, shows the phases live and
//! prints the result.

use ai_review_domain::{ApiKeyId, ApiKeySecret, Email, Permission, Role, Timestamp, UserId};
use ai_review_protocol::api::ReviewView;
use ai_review_runner::agent::Agent;
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::docker::DockerEngine;
use ai_review_runner::engine::{ContainerEngine, EngineError};
use ai_review_server::clock::SystemClock;
use ai_review_server::config::{Settings, resolve_database_url};
use ai_review_server::{RunningServer, open_store};
use ai_review_store::{NewApiKey, NewUser};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// The executor's result document.
    Json,
}

/// Severity threshold for `--fail-on`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FailOn {
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
}

/// `ai-review review` options.
#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// The repository (default: the current directory).
    pub path: Option<PathBuf>,
    /// Base revision (default: the merge base with the upstream branch, else HEAD~1).
    #[arg(long)]
    pub base: Option<String>,
    /// Head revision to review.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with code 1 when a finding of this severity or worse exists (for CI).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// Executor image.
    #[arg(
        long,
        env = "DOCKER_EXECUTOR_IMAGE",
        default_value = "ai-review-executor:latest"
    )]
    pub image: String,
    /// Docker Engine socket.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Data directory (the embedded database lives here).
    #[arg(long, env = "AI_REVIEW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("cannot run git: is it installed?")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn resolve(root: &Path, rev: &str) -> anyhow::Result<String> {
    git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .with_context(|| format!("{rev:?} is not a commit in {}", root.display()))
}

fn default_base(root: &Path, head: &str) -> anyhow::Result<String> {
    if let Ok(upstream) = git(
        root,
        &[
            "rev-parse",
            "--abbrev-ref",
            "--symbolic-full-name",
            "@{upstream}",
        ],
    ) && let Ok(mb) = git(root, &["merge-base", head, &upstream])
        && mb != head
    {
        return Ok(mb);
    }
    resolve(root, &format!("{head}~1"))
        .context("nothing to compare with: the head commit has no parent; give --base")
}

/// Serves `root` (and nothing else) read-only over git:// on loopback.
struct GitDaemon {
    child: std::process::Child,
    url: String,
}

impl GitDaemon {
    fn start(root: &Path) -> anyhow::Result<Self> {
        let parent = root
            .parent()
            .context("the repository has no parent directory")?;
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .context("repository directory name")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                "--informative-errors",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", parent.display()))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start git daemon")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            url: format!("git://127.0.0.1:{port}/{name}"),
        })
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the command; the exit code says whether the review completed.
pub async fn run(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let start_dir = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let root = PathBuf::from(
        git(&start_dir, &["rev-parse", "--show-toplevel"])
            .with_context(|| format!("{} is not inside a git repository", start_dir.display()))?,
    );
    let head = resolve(&root, &args.head)?;
    let base = match &args.base {
        Some(b) => resolve(&root, b)?,
        None => default_base(&root, &head)?,
    };
    if base == head {
        bail!(
            "base and head are the same commit ({}): nothing to review",
            &head[..12]
        );
    }
    let engine = DockerEngine::connect(&args.docker_host)
        .await
        .map_err(docker_help)?;
    engine.check(&args.image).await.map_err(docker_help)?;

    let daemon = GitDaemon::start(&root)?;
    let data_dir = args.data_dir.clone();
    let url =
        resolve_database_url(data_dir.as_deref(), None).replace("ai-review.db", "local-review.db");
    let store = open_store(&url).await?;
    let email = Email::parse("local-review@ai-review.invalid")?;
    let user = match store.user_by_email(&email).await? {
        Some(u) => u,
        None => {
            store
                .create_user(NewUser {
                    id: UserId::generate(),
                    email,
                    password_hash: "!disabled".into(),
                    role: Role::User,
                    permissions: vec![Permission::ReviewCreate],
                    now: Timestamp::now(),
                })
                .await?
        }
    };
    let secret = ApiKeySecret::generate();
    let key = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::generate(),
            user_id: user.id.clone(),
            name: "ai-review review".into(),
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            now: Timestamp::now(),
            expires_at: Some(Timestamp::now().plus_millis(86_400_000)),
        })
        .await?;
    let settings = Settings {
        rate_limit: None,
        ..Settings::default()
    };
    let server = RunningServer::start(settings, store.clone(), Arc::new(SystemClock), true).await?;

    let workspaces = tempfile::tempdir()?;
    let env: HashMap<String, String> = [
        ("RUNNER_SERVER_URL", server.url()),
        ("RUNNER_TOKEN", secret.expose().to_owned()),
        ("RUNNER_NAME", format!("local-{}", std::process::id())),
        ("DOCKER_EXECUTOR_IMAGE", args.image.clone()),
        (
            "DOCKER_WORKSPACE_BASE",
            workspaces.path().display().to_string(),
        ),
        ("DOCKER_HOST", args.docker_host.clone()),
        ("DOCKER_POOL_SIZE", "0".into()),
        ("RUNNER_POLL_TIMEOUT_MS", "2000".into()),
        ("RUNNER_HEARTBEAT_INTERVAL_MS", "2000".into()),
        ("RUNNER_DRAIN_TIMEOUT_MS", "2000".into()),
        ("RUNNER_CLONE_DEPTH", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let cfg = RunnerConfig::from_map(&env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(Agent::run(cfg, Arc::new(engine), stop.clone()));

    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "repoUrl": daemon.url,
        "baseSha": base,
        "headSha": head,
        "title": format!("local review of {}", root.display()),
    });
    let created: serde_json::Value = http
        .post(format!("{}/api/reviews", server.url()))
        .bearer_auth(secret.expose())
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = created["data"]["id"]
        .as_str()
        .context("the server did not queue the review")?
        .to_owned();
    eprintln!(
        "reviewing {}..{} in {}",
        &base[..12],
        &head[..12],
        root.display()
    );
    let mut phases_shown = 0;
    let done: ReviewView = loop {
        let v: serde_json::Value = http
            .get(format!("{}/api/reviews/{id}", server.url()))
            .bearer_auth(secret.expose())
            .send()
            .await?
            .json()
            .await?;
        let r: ReviewView = serde_json::from_value(v["data"].clone())?;
        let phases: Vec<_> = r.task.events.iter().filter(|e| e.kind == "phase").collect();
        for p in phases.iter().skip(phases_shown) {
            eprintln!("  ● {}", p.detail);
        }
        phases_shown = phases.len();
        if r.task.state.is_terminal() {
            break r;
        }
        if runner.is_finished() {
            bail!("the embedded runner stopped unexpectedly");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    stop.cancel();
    let runner_result = runner.await;
    let _ = store.revoke_api_key(&key.id, Timestamp::now()).await;
    server.stop().await?;
    drop(daemon);
    if let Ok(Err(e)) = runner_result {
        eprintln!("warning: runner: {e}");
    }
    print_result(&done, args.format, args.fail_on)
}

fn docker_help(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::Unreachable { .. } => anyhow::anyhow!(
            "{e}\nai-review review runs each review in a Docker container: install Docker (apt-get install docker.io), start it (systemctl start docker), and make sure you may use /var/run/docker.sock"
        ),
        EngineError::ImageMissing(_) => {
            anyhow::anyhow!("{e}\nfrom a checkout of ai-review: scripts/build-images.sh")
        }
        other => anyhow::anyhow!(other),
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "error" => 2,
        "warning" => 1,
        _ => 0,
    }
}

fn print_result(
    r: &ReviewView,
    format: Format,
    fail_on: Option<FailOn>,
) -> anyhow::Result<ExitCode> {
    if r.task.state != ai_review_domain::TaskState::Completed {
        eprintln!(
            "review {}: {}",
            r.task.state,
            r.task
                .failure_reason
                .as_deref()
                .unwrap_or("no reason given")
        );
        return Ok(ExitCode::FAILURE);
    }
    let out = r.task.result.clone().unwrap_or_default();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Text => {
            let t = &out["totals"];
            println!(
                "{} files changed, +{} -{}",
                t["files"].as_u64().unwrap_or(0),
                t["additions"].as_u64().unwrap_or(0),
                t["deletions"].as_u64().unwrap_or(0)
            );
            for f in out["files"].as_array().into_iter().flatten() {
                let code = match f["status"].as_str().unwrap_or("") {
                    "added" => "A",
                    "deleted" => "D",
                    "renamed" => "R",
                    "copied" => "C",
                    "typechange" => "T",
                    _ => "M",
                };
                let path = f["path"].as_str().unwrap_or("");
                let stats = if f["binary"].as_bool().unwrap_or(false) {
                    "binary".to_owned()
                } else {
                    format!(
                        "+{} -{}",
                        f["additions"].as_u64().unwrap_or(0),
                        f["deletions"].as_u64().unwrap_or(0)
                    )
                };
                match f["oldPath"].as_str() {
                    Some(old) => println!("  {code} {old} -> {path}  {stats}"),
                    None => println!("  {code} {path}  {stats}"),
                }
            }
            print_findings(&out["findings"]);
            println!(
                "AI review: skipped: no model is configured in this release; the deterministic checks (secrets, merge-conflict markers) ran."
            );
        }
    }
    let threshold = fail_on.map(|f| match f {
        FailOn::Warning => 1,
        FailOn::Error => 2,
    });
    let worst = out["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| severity_rank(f["severity"].as_str().unwrap_or("")))
        .max();
    if let (Some(t), Some(w)) = (threshold, worst)
        && w >= t
    {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_findings(findings: &serde_json::Value) {
    let list = findings.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("Findings: none.");
        return;
    }
    println!("Findings ({}):", list.len());
    let mut by_file: std::collections::BTreeMap<String, Vec<&serde_json::Value>> =
        Default::default();
    for f in &list {
        by_file
            .entry(f["file"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(f);
    }
    for (file, items) in by_file {
        println!("  {file}");
        for f in items {
            println!(
                "    {:>5}  {:<7} {:<15} {}",
                f["line"].as_u64().unwrap_or(0),
                f["severity"].as_str().unwrap_or(""),
                f["category"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            );
        }
    }
}
