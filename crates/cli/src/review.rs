//! `ai-review review`: the product's main job. By default on one machine:
//! starts an embedded server (SQLite in the data directory) and an
//! in-process runner with the Docker executor, serves the local repository
//! to it over `git daemon` on loopback, queues the change (with the model
//! from `AI_REVIEW_LLM_*`, if set), shows the phases and the task log live
//! and prints the result. With `--server` it queues the change on a running
//! server instead and follows it the same way.

use crate::api::{Api, ApiError};
use crate::image;
use crate::model_env::{self, ModelEnv};
use crate::report;
use ai_review_domain::{
    ApiKeyId, ApiKeySecret, CommitSha, ConfigId, Email, Permission, RepoUrl, Role, TaskState,
    Timestamp, UserId,
};
use ai_review_executor::checks::Severity;
use ai_review_protocol::api::{CreateReviewRequest, LogLineView, ReviewView};
use ai_review_protocol::configs::AiConfigView;
use ai_review_runner::agent::Agent;
use ai_review_runner::config::RunnerConfig;
use ai_review_runner::docker::DockerEngine;
use ai_review_runner::engine::{ContainerEngine, EngineError};
use ai_review_server::clock::SystemClock;
use ai_review_server::config::{Settings, resolve_database_url};
use ai_review_server::{RunningServer, open_store};
use ai_review_store::{DynStore, NewApiKey, NewUser, User};
use anyhow::{Context, anyhow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Exit code: a finding at or above the `--fail-on` threshold.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: bad usage or configuration (flags, variables, revisions,
/// repository URL, token or permissions refused).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the review could not run or did not complete (Docker, image,
/// server down, review failed).
pub const EXIT_FAILED: u8 = 3;

/// Shown after `ai-review review --help`.
pub const AFTER_HELP: &str = "\
Model, local reviews only (unset: deterministic checks only, and the report
says the AI review was skipped):
  AI_REVIEW_LLM_PROVIDER           openai (or compatible) | anthropic
  AI_REVIEW_LLM_MODEL              model name (required with a provider)
  AI_REVIEW_LLM_API_KEY            needed by the hosted APIs; never printed
  AI_REVIEW_LLM_BASE_URL           default: the provider's public API;
                                   e.g. http://localhost:11434/v1 (Ollama)
  AI_REVIEW_LLM_TOKEN_BUDGET       tokens per review (default 200000)
  AI_REVIEW_LLM_MAX_OUTPUT_TOKENS  tokens per answer (default 4096)
  AI_REVIEW_LLM_TIMEOUT_MS         per model call (default 120000)
  AI_REVIEW_LLM_TEMPERATURE        0 to 2 (default: the provider's)
With --server, the server's AI configs apply (--ai-config ID).

Exit codes:
  0  reviewed; no finding reached --fail-on
  1  a finding reached --fail-on
  2  usage or configuration error (flags, variables, revisions,
     repository URL, token or permission refused)
  3  the review could not run or complete (Docker, image, server, failure)";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: files, findings by file, summary, AI status, usage.
    Text,
    /// The result document as the executor wrote it.
    Json,
    /// A merge-request comment: a findings table per file.
    Markdown,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// Severity threshold for `--fail-on`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FailOn {
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
}

impl FailOn {
    fn met_by(self, worst: Option<Severity>) -> bool {
        let threshold = match self {
            FailOn::Warning => Severity::Warning,
            FailOn::Error => Severity::Error,
        };
        worst.is_some_and(|w| w >= threshold)
    }
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
    /// Output format (on stdout; progress goes to stderr).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit with code 1 when a finding of this severity or worse exists (for CI).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// Use this running server instead of an embedded one (its runners do
    /// the review: the repository must be reachable by them).
    #[arg(long, env = "AI_REVIEW_SERVER")]
    pub server: Option<String>,
    /// API key for --server (review:create permission). Prefer
    /// AI_REVIEW_TOKEN: other users can see command-line arguments.
    #[arg(long, env = "AI_REVIEW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --server: the URL runners clone (default: `git remote get-url
    /// origin`). Base and head must be pushed there.
    #[arg(long)]
    pub repo_url: Option<String>,
    /// With --server: the AI config to review with (default: the server's
    /// default AI config).
    #[arg(long)]
    pub ai_config: Option<String>,
    /// Executor image (local reviews).
    #[arg(
        long,
        env = "DOCKER_EXECUTOR_IMAGE",
        default_value = "ai-review-executor:latest"
    )]
    pub image: String,
    /// Do not build the executor image when it is missing.
    #[arg(long)]
    pub no_build: bool,
    /// Docker Engine socket (local reviews).
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

/// An error with the exit code it ends the command with.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn usage(e: impl Into<anyhow::Error>) -> Self {
        Self {
            code: EXIT_USAGE,
            error: e.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self {
            code: EXIT_FAILED,
            error,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self {
            code: if e.is_refusal() {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            },
            error: e.into(),
        }
    }
}

type Res<T> = Result<T, Failure>;

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("cannot run git: is it installed?")?;
    if !out.status.success() {
        anyhow::bail!(
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

/// The change under review.
struct Change {
    root: PathBuf,
    base: String,
    head: String,
    title: String,
    branch: Option<String>,
}

impl Change {
    fn find(args: &ReviewArgs) -> Res<Self> {
        let start_dir = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
        let root = PathBuf::from(
            git(&start_dir, &["rev-parse", "--show-toplevel"])
                .with_context(|| format!("{} is not inside a git repository", start_dir.display()))
                .map_err(Failure::usage)?,
        );
        let head = resolve(&root, &args.head).map_err(Failure::usage)?;
        let base = match &args.base {
            Some(b) => resolve(&root, b),
            None => default_base(&root, &head),
        }
        .map_err(Failure::usage)?;
        if base == head {
            return Err(Failure::usage(anyhow!(
                "base and head are the same commit ({}): nothing to review",
                &head[..12]
            )));
        }
        let title = git(&root, &["log", "-1", "--format=%s", &head])
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("local review of {}", root.display()));
        let branch = git(&root, &["rev-parse", "--abbrev-ref", &args.head])
            .ok()
            .filter(|b| !b.is_empty() && b != "HEAD");
        Ok(Self {
            root,
            base,
            head,
            title,
            branch,
        })
    }

    fn request(
        &self,
        repo_url: RepoUrl,
        ai_config_id: Option<ConfigId>,
    ) -> Res<CreateReviewRequest> {
        Ok(CreateReviewRequest {
            repo_url,
            base_sha: CommitSha::parse(&self.base).map_err(|e| anyhow!(e))?,
            head_sha: CommitSha::parse(&self.head).map_err(|e| anyhow!(e))?,
            branch: self.branch.clone(),
            title: Some(self.title.chars().take(500).collect()),
            tags: Vec::new(),
            ai_config_id,
            template_id: None,
            excludes: Vec::new(),
        })
    }
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

/// Runs the command and returns its exit code (errors are printed here).
pub async fn run(args: ReviewArgs) -> ExitCode {
    match review(args).await {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

async fn review(args: ReviewArgs) -> Res<ExitCode> {
    let server = args.server.clone().filter(|s| !s.trim().is_empty());
    if server.is_none() && (args.ai_config.is_some() || args.repo_url.is_some()) {
        return Err(Failure::usage(anyhow!(
            "--ai-config and --repo-url are for reviews on a running server: give --server URL (or AI_REVIEW_SERVER) too"
        )));
    }
    let change = Change::find(&args)?;
    let (done, hint) = match server {
        Some(server) => {
            let token = args
                .token
                .clone()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    Failure::usage(anyhow!(
                        "--server needs an API key: give --token KEY (or AI_REVIEW_TOKEN); create one with `ai-review admin create-api-key`"
                    ))
                })?;
            (
                remote(&args, &change, &server, &token).await?,
                "To enable it, pass --ai-config ID (see GET /api/ai-configs) or ask an admin to make an AI config the server's default.",
            )
        }
        None => (embedded(&args, &change).await?, model_env::ENABLE_HINT),
    };
    print_result(&done, args.format, args.fail_on, hint)
}

/// The clone URL runners get in remote mode. Local paths and `file://`
/// are refused: runners on other machines cannot clone them.
fn remote_repo_url(root: &Path, given: Option<&str>) -> Res<RepoUrl> {
    let raw = match given {
        Some(u) => u.trim().to_owned(),
        None => git(root, &["remote", "get-url", "origin"]).map_err(|_| {
            Failure::usage(anyhow!(
                "no --repo-url given and {} has no `origin` remote: give --repo-url with the URL the server's runners clone",
                root.display()
            ))
        })?,
    };
    let local = raw.starts_with("file:")
        || raw.starts_with('/')
        || raw.starts_with('.')
        || raw.starts_with('~')
        || (!raw.contains("://") && !raw.contains(':'))
        || Path::new(&raw).exists();
    if local {
        return Err(Failure::usage(anyhow!(
            "the repository URL {raw:?} is a local path: the server's runners must be able to clone it; give --repo-url https://host/group/repo.git (or git@host:group/repo.git) and push base and head there"
        )));
    }
    if let Ok(u) = reqwest::Url::parse(&raw)
        && (u.password().is_some() || (!u.username().is_empty() && u.scheme() != "ssh"))
    {
        return Err(Failure::usage(anyhow!(
            "the repository URL carries credentials (not shown): give --repo-url without them; runners get clone credentials from the server"
        )));
    }
    RepoUrl::parse(&raw).map_err(Failure::usage)
}

async fn remote(args: &ReviewArgs, change: &Change, server: &str, token: &str) -> Res<ReviewView> {
    let repo_url = remote_repo_url(&change.root, args.repo_url.as_deref())?;
    let ai_config_id = args
        .ai_config
        .as_deref()
        .map(|id| {
            ConfigId::parse(id.trim())
                .map_err(|e| Failure::usage(anyhow!("--ai-config: {e} (see GET /api/ai-configs)")))
        })
        .transpose()?;
    if model_env::ALL.iter().any(|k| std::env::var_os(k).is_some()) {
        eprintln!(
            "note: AI_REVIEW_LLM_* are ignored with --server: the server's AI configs apply (--ai-config ID)"
        );
    }
    eprintln!(
        "note: the server's runners clone {}: base and head must be pushed there",
        repo_url.as_str()
    );
    let on_remote =
        git(&change.root, &["branch", "-r", "--contains", &change.head]).unwrap_or_default();
    if on_remote.is_empty() {
        eprintln!(
            "warning: {} is on no remote-tracking branch: push it first, or the runners will not find it",
            &change.head[..12]
        );
    }
    let api = Api::new(server, token)?;
    let body = change.request(repo_url, ai_config_id)?;
    let created: ReviewView = api.post("/api/reviews", &body).await?;
    eprintln!(
        "queued review {} of {}..{} on {}",
        created.id,
        &change.base[..12],
        &change.head[..12],
        api.base()
    );
    follow(&api, created.id.as_str(), args.format == Format::Text, None).await
}

/// The embedded server's user. It needs `config:create`/`config:update`
/// for the AI config from the environment; a user made by an earlier
/// version lacks them and the store cannot change a user's permissions,
/// so a second one is made then.
async fn local_user(store: &DynStore) -> anyhow::Result<User> {
    const NEEDED: [Permission; 3] = [
        Permission::ReviewCreate,
        Permission::ConfigCreate,
        Permission::ConfigUpdate,
    ];
    for email in [
        "local-review@ai-review.invalid",
        "local-review-2@ai-review.invalid",
    ] {
        let email = Email::parse(email)?;
        match store.user_by_email(&email).await? {
            Some(u) if !u.disabled && NEEDED.iter().all(|p| u.has(*p)) => return Ok(u),
            Some(_) => continue,
            None => {
                return Ok(store
                    .create_user(NewUser {
                        id: UserId::generate(),
                        email,
                        password_hash: "!disabled".into(),
                        role: Role::User,
                        permissions: NEEDED.to_vec(),
                        now: Timestamp::now(),
                    })
                    .await?);
            }
        }
    }
    Err(anyhow!(
        "the local review users in the data directory lack permissions; remove local-review.db from it and try again"
    ))
}

/// Creates or updates the AI config named [`model_env::CONFIG_NAME`] with
/// the environment's model settings and returns its id.
async fn env_ai_config(api: &Api, model: &ModelEnv) -> Res<ConfigId> {
    let body = model.config_write();
    let existing: Vec<AiConfigView> = api.get("/api/ai-configs").await?;
    let saved: AiConfigView = match existing.iter().find(|c| c.name == model_env::CONFIG_NAME) {
        Some(c) => api.patch(&format!("/api/ai-configs/{}", c.id), &body).await,
        None => api.post("/api/ai-configs", &body).await,
    }
    .map_err(|e| match e {
        ApiError::Status {
            status: 400,
            detail,
        } => Failure::usage(anyhow!(
            "the model settings from AI_REVIEW_LLM_* were refused: {detail}"
        )),
        other => other.into(),
    })?;
    Ok(saved.id)
}

async fn ensure_image(engine: &DockerEngine, args: &ReviewArgs, root: &Path) -> Res<()> {
    match engine.check(&args.image).await {
        Ok(()) => Ok(()),
        Err(EngineError::ImageMissing(_)) => {
            let script = (!args.no_build)
                .then(|| image::find_build_script(root))
                .flatten();
            let Some(script) = script else {
                return Err(anyhow!(image::how_to_build(&args.image, args.no_build)).into());
            };
            image::build(&script, &args.image, &args.docker_host).await?;
            engine.check(&args.image).await.map_err(docker_help)?;
            Ok(())
        }
        Err(e) => Err(docker_help(e).into()),
    }
}

async fn embedded(args: &ReviewArgs, change: &Change) -> Res<ReviewView> {
    let model = ModelEnv::from_env().map_err(|e| {
        Failure::usage(anyhow!(
            "{e}\nrun `ai-review review --help` for the AI_REVIEW_LLM_* variables"
        ))
    })?;
    let engine = DockerEngine::connect(&args.docker_host)
        .await
        .map_err(docker_help)?;
    ensure_image(&engine, args, &change.root).await?;

    let daemon = GitDaemon::start(&change.root)?;
    let url = resolve_database_url(args.data_dir.as_deref(), None)
        .replace("ai-review.db", "local-review.db");
    let store = open_store(&url).await.map_err(|e| {
        if e.to_string().contains("lock file") {
            anyhow::anyhow!(
                "another `ai-review review` is running with the same data directory ({url}); wait for it to finish, or give this one its own with --data-dir"
            )
        } else {
            anyhow::Error::from(e)
        }
    })?;
    let user = local_user(&store).await?;
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
        .await
        .map_err(anyhow::Error::from)?;
    let settings = Settings {
        rate_limit: None,
        ..Settings::default()
    };
    let server = RunningServer::start(settings, store.clone(), Arc::new(SystemClock), true)
        .await
        .map_err(|e| anyhow!("cannot start the embedded server: {e}"))?;

    let workspaces = tempfile::tempdir().map_err(anyhow::Error::from)?;
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
    let cfg = RunnerConfig::from_map(&env).map_err(|e| anyhow!("{e}"))?;
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(Agent::run(cfg, Arc::new(engine), stop.clone()));
    let api = Api::new(&server.url(), secret.expose())?;

    let outcome: Res<ReviewView> = async {
        let ai_config_id = match &model {
            Some(m) => {
                let id = env_ai_config(&api, m).await?;
                eprintln!("model: {}", m.describe());
                Some(id)
            }
            None => None,
        };
        let repo_url = RepoUrl::parse(&daemon.url).map_err(|e| anyhow!(e))?;
        let created: ReviewView = api
            .post("/api/reviews", &change.request(repo_url, ai_config_id)?)
            .await?;
        eprintln!(
            "reviewing {}..{} in {}",
            &change.base[..12],
            &change.head[..12],
            change.root.display()
        );
        follow(
            &api,
            created.id.as_str(),
            args.format == Format::Text,
            Some(&runner),
        )
        .await
    }
    .await;

    stop.cancel();
    let runner_result = runner.await;
    let _ = store.revoke_api_key(&key.id, Timestamp::now()).await;
    server
        .stop()
        .await
        .map_err(|e| anyhow!("stopping the embedded server: {e}"))?;
    drop(daemon);
    if let Ok(Err(e)) = runner_result {
        eprintln!("warning: runner: {e}");
    }
    outcome
}

/// Polls the review until its task ends, printing new phases (always) and
/// new task log lines (when `logs`) on stderr.
async fn follow(
    api: &Api,
    id: &str,
    logs: bool,
    runner: Option<&tokio::task::JoinHandle<Result<(), ai_review_runner::agent::RunnerError>>>,
) -> Res<ReviewView> {
    let mut phases_shown = 0;
    let mut log_seq: i64 = 0;
    let mut log_failed = false;
    let mut failures = 0u32;
    loop {
        let r: ReviewView = match api.get(&format!("/api/reviews/{id}")).await {
            Ok(r) => {
                failures = 0;
                r
            }
            // A remote server may restart or a proxy hiccup: the review
            // goes on there, so a few misses are waited out.
            Err(e @ ApiError::Unreachable { .. }) if failures < 10 => {
                failures += 1;
                tracing::debug!("polling the review: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let phases: Vec<_> = r.task.events.iter().filter(|e| e.kind == "phase").collect();
        for p in phases.iter().skip(phases_shown) {
            eprintln!("  ● {}", p.detail);
        }
        phases_shown = phases.len();
        if logs {
            let lines: Vec<LogLineView> = match api
                .get(&format!("/api/reviews/{id}/logs?after={log_seq}"))
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    // The log is a convenience: say once why it is missing
                    // and go on following the review.
                    if !log_failed {
                        eprintln!("    (cannot read the task log: {e})");
                        log_failed = true;
                    }
                    Vec::new()
                }
            };
            for l in lines {
                log_seq = log_seq.max(l.seq);
                eprintln!("    │ {}", l.text);
            }
        }
        if r.task.state.is_terminal() {
            return Ok(r);
        }
        if runner.is_some_and(|h| h.is_finished()) {
            return Err(anyhow!("the embedded runner stopped unexpectedly").into());
        }
        let pause = if runner.is_some() { 150 } else { 500 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn docker_help(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::Unreachable { .. } => anyhow!(
            "{e}\nai-review review runs each review in a Docker container: install Docker (apt-get install docker.io), start it (systemctl start docker), and make sure you may use /var/run/docker.sock; or review on a running server with --server URL --token KEY"
        ),
        EngineError::ImageMissing(_) => {
            anyhow!("{e}\nfrom a checkout of ai-review: scripts/build-images.sh")
        }
        other => anyhow!(other),
    }
}

fn print_result(
    r: &ReviewView,
    format: Format,
    fail_on: Option<FailOn>,
    enable_hint: &str,
) -> Res<ExitCode> {
    if r.task.state != TaskState::Completed {
        return Err(anyhow!(
            "review {} {}: {}",
            r.id,
            r.task.state,
            r.task
                .failure_reason
                .as_deref()
                .unwrap_or("no reason given")
        )
        .into());
    }
    let raw = r
        .task
        .result
        .clone()
        .context("the review completed without a result")?;
    let out = report::parse(&raw)?;
    let rendered = match format {
        Format::Text => report::text(&out, enable_hint),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&raw).map_err(anyhow::Error::from)?
        ),
        Format::Markdown => report::markdown(&out, enable_hint),
        Format::Sarif => format!(
            "{}\n",
            serde_json::to_string_pretty(&report::sarif(&out)).map_err(anyhow::Error::from)?
        ),
    };
    print!("{rendered}");
    if fail_on.is_some_and(|f| f.met_by(report::worst_severity(&out))) {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_model_variable_and_exit_code() {
        for var in model_env::ALL {
            assert!(AFTER_HELP.contains(var), "{var}");
        }
        for code in [EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED] {
            assert!(AFTER_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
        assert!(AFTER_HELP.lines().all(|l| l.len() <= 80));
    }

    #[test]
    fn fail_on_thresholds() {
        assert!(FailOn::Warning.met_by(Some(Severity::Warning)));
        assert!(FailOn::Warning.met_by(Some(Severity::Error)));
        assert!(!FailOn::Warning.met_by(Some(Severity::Info)));
        assert!(!FailOn::Error.met_by(Some(Severity::Warning)));
        assert!(FailOn::Error.met_by(Some(Severity::Error)));
        assert!(!FailOn::Error.met_by(None));
    }

    #[test]
    fn remote_repo_urls_must_be_clonable_by_runners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for bad in [
            "file:///srv/repo.git",
            "/srv/repo.git",
            "./repo",
            "../repo",
            "~/repo",
            "repo",
        ] {
            let e = remote_repo_url(root, Some(bad)).expect_err(bad);
            assert_eq!(e.code, EXIT_USAGE);
            assert!(
                e.error.to_string().contains("local path"),
                "{bad}: {}",
                e.error
            );
        }
        let e = remote_repo_url(root, Some("https://bob:hunter2@git.example.com/r.git"))
            .expect_err("credentials");
        assert!(!e.error.to_string().contains("hunter2"), "{}", e.error);
        for good in [
            "https://git.example.com/group/repo.git",
            "git@git.example.com:group/repo.git",
            "ssh://git@git.example.com/group/repo.git",
        ] {
            assert_eq!(
                remote_repo_url(root, Some(good)).expect(good).as_str(),
                good
            );
        }
        let e = remote_repo_url(root, None).expect_err("not a repository, no origin");
        assert!(e.error.to_string().contains("--repo-url"), "{}", e.error);
    }

    #[test]
    fn api_refusals_are_usage_errors_and_outages_are_failures() {
        let f: Failure = ApiError::Status {
            status: 401,
            detail: "bad key".into(),
        }
        .into();
        assert_eq!(f.code, EXIT_USAGE);
        let f: Failure = ApiError::Status {
            status: 500,
            detail: "x".into(),
        }
        .into();
        assert_eq!(f.code, EXIT_FAILED);
    }
}
