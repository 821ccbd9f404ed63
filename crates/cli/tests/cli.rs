//! The `ai-review` binary: admin commands against a real SQLite file, the
//! server's configuration errors, and a server started, queried (a second
//! one on the same SQLite file refused) and stopped with SIGTERM.

use ai_review_domain::{ApiKeySecret, Email, Role, Timestamp};
use ai_review_store::Store;
use ai_review_store_sqlite::SqliteStore;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ai-review"));
    c.env("AI_REVIEW_DATA_DIR", data)
        .env_remove("DATABASE_URL")
        .env_remove("PORT")
        .env_remove("HOST")
        .env("NO_COLOR", "1");
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().expect("run ai-review");
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[tokio::test]
async fn admin_commands_create_users_and_keys_and_revoke_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_ok(bin(dir.path()).args([
        "admin",
        "create-user",
        "--email",
        "Ops@Example.com",
        "--password",
        "s3cret-pass",
        "--admin",
    ]));
    let out = run_ok(bin(dir.path()).args([
        "admin",
        "create-api-key",
        "--email",
        "ops@example.com",
        "--name",
        "ci",
    ]));
    let key = out.lines().last().expect("a last line").to_owned();
    assert!(
        ApiKeySecret::parse(&key).is_ok(),
        "last stdout line is the key alone: {out:?}"
    );

    let dup = bin(dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "ops@example.com",
            "--password",
            "another-pass",
        ])
        .output()
        .expect("run");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let short = bin(dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "x@example.com",
            "--password",
            "short",
        ])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let missing = bin(dir.path())
        .args([
            "admin",
            "create-api-key",
            "--email",
            "nobody@example.com",
            "--name",
            "x",
        ])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user with email"));

    let url = format!("sqlite://{}", dir.path().join("ai-review.db").display());
    {
        let store = SqliteStore::connect(&url).await.expect("open");
        let digest = ApiKeySecret::parse(&key).expect("key").digest();
        let (_, user) = store
            .authenticate_api_key(&digest, Timestamp::now())
            .await
            .expect("auth")
            .expect("live key");
        assert_eq!(user.email, Email::parse("ops@example.com").expect("email"));
        assert_eq!(user.role, Role::Admin);
        assert!(
            user.password_hash.starts_with("$argon2id$"),
            "passwords are Argon2id hashes"
        );
        store.close().await;
    }
    run_ok(bin(dir.path()).args(["admin", "revoke-api-key", "--key", &key]));
    let store = SqliteStore::connect(&url).await.expect("open");
    let digest = ApiKeySecret::parse(&key).expect("key").digest();
    assert!(
        store
            .authenticate_api_key(&digest, Timestamp::now())
            .await
            .expect("auth")
            .is_none()
    );
}

#[test]
fn server_help_lists_every_setting_and_bad_values_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = run_ok(
        bin(dir.path())
            .args(["server", "--help"])
            .env("COLUMNS", "100"),
    );
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for var in [
        "HOST",
        "PORT",
        "AI_REVIEW_DATA_DIR",
        "DATABASE_URL",
        "RUNNER_HEARTBEAT_TIMEOUT_MS",
        "TASK_LEASE_MS",
        "TASK_MAX_ATTEMPTS",
        "TASK_UNCLAIMED_EXPIRY_MS",
        "TASK_LOG_MAX_BYTES",
        "MAX_POLL_WAIT_MS",
        "REAPER_INTERVAL_MS",
        "BODY_LIMIT_BYTES",
        "RATE_LIMIT_PER_SECOND",
        "RATE_LIMIT_BURST",
    ] {
        assert!(help.contains(&format!("env: {var}")), "--help misses {var}");
    }
    assert!(help.contains("[default: 3000]"));
    let out = bin(dir.path())
        .args(["server"])
        .env("HOST", "not-an-ip")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST=\"not-an-ip\""));
    let out = bin(dir.path())
        .args(["server"])
        .env("TASK_MAX_ATTEMPTS", "0")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TASK_MAX_ATTEMPTS must be at least 1"));
    let out = bin(dir.path())
        .args(["server"])
        .env("DATABASE_URL", "mysql://u:pw@h/db")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sqlite:// or postgres://") && !err.contains("pw"),
        "{err}"
    );
}

#[tokio::test]
async fn server_starts_answers_and_stops_gracefully_on_sigterm() {
    ai_review_protocol::client::ensure_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = bin(dir.path())
        .args(["server", "--host", "127.0.0.1", "--port", "0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server announces its address");
    let health: serde_json::Value = reqwest::get(format!("{url}/api/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["data"]["status"], "ok");
    assert_eq!(health["data"]["database"], "sqlite");
    assert!(
        dir.path().join("ai-review.db").exists(),
        "the default database lives in the data directory"
    );
    // A second server on the same SQLite file is refused, saying why and
    // what to do; admin commands still work beside the running server.
    let second = bin(dir.path())
        .args(["server", "--host", "127.0.0.1", "--port", "0"])
        .output()
        .expect("second server");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another ai-review process is using the SQLite database")
            && err.contains("PostgreSQL"),
        "{err}"
    );
    run_ok(bin(dir.path()).args([
        "admin",
        "create-user",
        "--email",
        "beside@example.com",
        "--password",
        "password123",
    ]));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn the_server_compose_file_is_valid_and_wires_postgres() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(&root)
        .env("POSTGRES_PASSWORD", "pw-example")
        .env("AI_REVIEW_SECRET_KEY", "a2V5LWV4YW1wbGU=")
        .output()
        .expect("docker-compose is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("postgres://ai_review:pw-example@postgres:5432/ai_review"),
        "{text}"
    );
    assert!(text.contains("service_healthy"), "{text}");
    let missing = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(&root)
        .env("POSTGRES_PASSWORD", "pw-example")
        .env_remove("AI_REVIEW_SECRET_KEY")
        .output()
        .expect("docker-compose");
    assert!(
        !missing.status.success(),
        "the shared secret key is required"
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("AI_REVIEW_SECRET_KEY"));
}

#[test]
fn the_runner_compose_file_is_valid_and_mounts_the_docker_socket() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.runner.yml", "config"])
        .current_dir(&root)
        .env("RUNNER_SERVER_URL", "http://server:3000")
        .env("RUNNER_TOKEN", "air_example")
        .output()
        .expect("docker-compose is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/var/run/docker.sock:/var/run/docker.sock"),
        "{text}"
    );
    assert!(text.contains("DOCKER_EXECUTOR_IMAGE"), "{text}");
    let missing = Command::new("docker-compose")
        .args(["-f", "docker-compose.runner.yml", "config"])
        .current_dir(&root)
        .env_remove("RUNNER_SERVER_URL")
        .env_remove("RUNNER_TOKEN")
        .output()
        .expect("docker-compose");
    assert!(!missing.status.success(), "required variables are enforced");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("RUNNER_SERVER_URL"));
}

#[test]
fn runner_help_lists_every_variable_with_its_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = run_ok(bin(dir.path()).args(["runner", "--help"]));
    for v in ai_review_runner::config::VARS {
        let default = match v.default {
            None => "[required]".to_owned(),
            Some("") => "[default: empty]".to_owned(),
            Some(d) => format!("[default: {d}]"),
        };
        assert!(
            help.contains(&format!("{} {default}", v.name)),
            "--help misses {} {default}:\n{help}",
            v.name
        );
    }
    assert!(help.contains("Exit codes"));
}
