//! `ai-review`: the server, the runner, local and remote reviews and the
//! admin tools in one binary.

mod api;
mod image;
mod model_env;
mod reference;
mod report;
mod review;

use ai_review_domain::{ApiKeyId, ApiKeySecret, Email, Permission, Role, Timestamp, UserId};
use ai_review_server::clock::SystemClock;
use ai_review_server::{RunningServer, ServerConfig, open_store};
use ai_review_store::{DynStore, NewApiKey, NewUser};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::sync::Arc;

/// Self-hosted AI code review.
#[derive(Debug, Parser)]
#[command(name = "ai-review", version, about, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Review a local change end to end: embedded server and runner, the
    /// review in a Docker container, results printed (or queue it on a
    /// running server with --server).
    #[command(after_help = review::AFTER_HELP)]
    Review(review::ReviewArgs),
    /// Run the server (REST API, runner protocol, task queue).
    Server(ServerConfig),
    /// Run a runner: claim review tasks and execute them in Docker
    /// containers. Configured by environment variables only (listed below).
    #[command(after_help = ai_review_runner::config::RunnerConfig::help_text())]
    Runner,
    /// Administer users and API keys directly in the database.
    Admin(AdminArgs),
    /// Print the configuration reference (every environment variable of
    /// every component, as in docs/configuration.md).
    #[command(hide = true)]
    ConfigReference,
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

/// Where the database is (same variables as the server).
#[derive(Debug, clap::Args)]
struct DbArgs {
    /// Data directory (default as for `ai-review server`).
    #[arg(long, env = "AI_REVIEW_DATA_DIR", global = true)]
    data_dir: Option<std::path::PathBuf>,
    /// Database URL (default: the SQLite file in the data directory).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user.
    CreateUser {
        /// Login email.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters). Prefer --password-env in scripts.
        #[arg(long, conflicts_with = "password_env")]
        password: Option<String>,
        /// Read the password from this environment variable instead.
        #[arg(long)]
        password_env: Option<String>,
        /// Make the user an admin (every permission).
        #[arg(long)]
        admin: bool,
        /// Grant a permission (repeatable): review:create, project:create,
        /// project:update, config:create, config:update, config:delete.
        /// Default for non-admins: review:create.
        #[arg(long = "permission")]
        permissions: Vec<String>,
    },
    /// Create an API key for a user; the key is printed alone on the last
    /// line of stdout, once.
    CreateApiKey {
        /// The owner's email.
        #[arg(long)]
        email: String,
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke an API key, by id or by the key itself. Effective at once.
    RevokeApiKey {
        /// The key's id (see `GET /api/api-keys`).
        #[arg(long, conflicts_with = "key", required_unless_present = "key")]
        id: Option<String>,
        /// The key itself.
        #[arg(long)]
        key: Option<String>,
    },
}

impl DbArgs {
    fn url(&self) -> String {
        ai_review_server::config::resolve_database_url(
            self.data_dir.as_deref(),
            self.database_url.as_deref(),
        )
    }
}

fn init_logging(format: LogFormat, quiet: bool) {
    // `review` is an interactive command: its own progress goes to stderr,
    // the embedded server's and runner's logs only when something is wrong.
    let default = if quiet {
        "warn,sqlx=error"
    } else {
        "info,sqlx=warn,tower_http=info"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.command, Command::Review(_)));
    ai_review_protocol_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, Command::ConfigReference) {
        print!("{}", reference::configuration_markdown());
        return ExitCode::SUCCESS;
    }
    if matches!(cli.command, Command::Runner) {
        return rt.block_on(runner());
    }
    if let Command::Review(args) = cli.command {
        return rt.block_on(review::run(args));
    }
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Server(cfg) => serve(cfg).await,
        Command::Admin(a) => admin(a).await,
        Command::Runner | Command::Review(_) | Command::ConfigReference => {
            unreachable!("handled in main")
        }
    }
}

fn ai_review_protocol_init() {
    ai_review_protocol::client::ensure_crypto_provider();
}

/// `ai-review runner`: exit 0 after a clean drain, 2 for configuration
/// errors, 3 when the server refuses the token, 1 otherwise.
async fn runner() -> ExitCode {
    use ai_review_runner::agent::{Agent, EXIT_AUTH, EXIT_CONFIG, RunnerError};
    let cfg = match ai_review_runner::config::RunnerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: {e}\nrun `ai-review runner --help` for every variable and its default"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let engine = match ai_review_runner::docker::DockerEngine::connect(&cfg.docker_host).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new tasks; draining running ones");
        trigger.cancel();
    });
    match Agent::run(cfg, std::sync::Arc::new(engine), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ RunnerError::InvalidToken(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_AUTH)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cfg: ServerConfig) -> anyhow::Result<()> {
    let settings = cfg
        .settings()
        .map_err(|e| anyhow::anyhow!("invalid server configuration: {e}"))?;
    let url = cfg.database_url();
    let store = open_store(&url).await?;
    let server = RunningServer::start(settings, store, Arc::new(SystemClock), true)
        .await
        .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
    eprintln!(
        "ai-review server listening on {} (database: {})",
        server.url(),
        server.state.store.backend_name()
    );
    let trigger = server.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        let _ = trigger.send(true);
    });
    let mut server = server;
    server.wait().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn admin(a: AdminArgs) -> anyhow::Result<()> {
    let store = ai_review_server::open_store_beside_server(&a.db.url()).await?;
    match a.command {
        AdminCommand::CreateUser {
            email,
            password,
            password_env,
            admin,
            permissions,
        } => {
            let password = match (password, password_env) {
                (Some(p), _) => p,
                (None, Some(var)) => std::env::var(&var)
                    .with_context(|| format!("environment variable {var} is not set"))?,
                (None, None) => bail!("give --password or --password-env VAR"),
            };
            create_user(&store, &email, &password, admin, &permissions).await
        }
        AdminCommand::CreateApiKey {
            email,
            name,
            expires_in_days,
        } => create_api_key(&store, &email, &name, expires_in_days).await,
        AdminCommand::RevokeApiKey { id, key } => revoke_api_key(&store, id, key).await,
    }
}

async fn create_user(
    store: &DynStore,
    email: &str,
    password: &str,
    admin: bool,
    permissions: &[String],
) -> anyhow::Result<()> {
    let email = Email::parse(email)?;
    let mut perms = permissions
        .iter()
        .map(|p| Permission::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if perms.is_empty() && !admin {
        perms.push(Permission::ReviewCreate);
    }
    let hash = ai_review_server::passwords::hash_password(password)?;
    let user = store
        .create_user(NewUser {
            id: UserId::generate(),
            email,
            password_hash: hash,
            role: if admin { Role::Admin } else { Role::User },
            permissions: perms,
            now: Timestamp::now(),
        })
        .await?;
    println!(
        "created user {} ({}, role {})",
        user.email, user.id, user.role
    );
    Ok(())
}

async fn create_api_key(
    store: &DynStore,
    email: &str,
    name: &str,
    expires_in_days: Option<u32>,
) -> anyhow::Result<()> {
    let email = Email::parse(email)?;
    let user = store.user_by_email(&email).await?.with_context(|| {
        format!("no user with email {email}; create it with `ai-review admin create-user`")
    })?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("--name must be 1-100 characters");
    }
    let now = Timestamp::now();
    let secret = ApiKeySecret::generate();
    let key = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::generate(),
            user_id: user.id.clone(),
            name: name.to_owned(),
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            now,
            expires_at: expires_in_days.map(|d| now.plus_millis(i64::from(d) * 86_400_000)),
        })
        .await?;
    println!(
        "created API key {} ({}) for {}; it is shown once, store it now:",
        key.id, key.name, user.email
    );
    println!("{}", secret.expose());
    Ok(())
}

async fn revoke_api_key(
    store: &DynStore,
    id: Option<String>,
    key: Option<String>,
) -> anyhow::Result<()> {
    let id = match (id, key) {
        (Some(id), _) => ApiKeyId::parse(&id)?,
        (None, Some(k)) => {
            let secret = ApiKeySecret::parse(&k)?;
            let (key, _) = store
                .authenticate_api_key(&secret.digest(), Timestamp::now())
                .await?
                .context("no live API key matches (already revoked, expired or unknown)")?;
            key.id
        }
        (None, None) => bail!("give --id or --key"),
    };
    let revoked = store.revoke_api_key(&id, Timestamp::now()).await?;
    println!("revoked API key {} ({})", revoked.id, revoked.name);
    Ok(())
}
