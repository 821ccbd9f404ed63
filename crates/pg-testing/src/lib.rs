//! A real PostgreSQL server for tests, and a fresh database per test.
//!
//! If `AI_REVIEW_TEST_POSTGRES_URL` is set (an admin URL such as
//! `postgres://postgres@127.0.0.1:54329/postgres`, as `.ci/run` sets it),
//! that server is used. Otherwise the first call in a test process starts a
//! throwaway cluster: `initdb` into a temporary directory and `pg_ctl start`
//! on a free loopback port (as the `postgres` OS user when running as root,
//! since PostgreSQL refuses to run as root). The cluster is stopped when the
//! test process exits normally (a watchdog process stops it if the test
//! process dies). No PostgreSQL binaries: a panic that says how to install
//! them. Never a skipped test.

use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::sync::OnceCell;

static SERVER: OnceCell<String> = OnceCell::const_new();

/// The admin URL of the test server, starting one if needed.
pub async fn admin_url() -> String {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("AI_REVIEW_TEST_POSTGRES_URL")
                && !url.is_empty()
            {
                return url;
            }
            tokio::task::spawn_blocking(start_cluster)
                .await
                .expect("start PostgreSQL")
        })
        .await
        .clone()
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn fresh_database_url() -> String {
    let admin = admin_url().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = None;
    for _ in 0..50 {
        match <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let mut conn =
        conn.unwrap_or_else(|| panic!("cannot connect to the test PostgreSQL at {admin}"));
    // The name is generated above from a UUID: safe to splice.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

fn pg_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: \
             apt-get install postgresql, or set AI_REVIEW_TEST_POSTGRES_URL"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(root: bool, program: &Path, args: &[&str]) {
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_cluster() -> String {
    let bin = pg_bin_dir();
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("ai-review-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create cluster dir");
    if root {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "chown {} to postgres failed", dir.display());
    }
    let data = dir.join("data");
    let data_s = data.to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();
    run(
        root,
        &bin.join("initdb"),
        &["-A", "trust", "-U", "postgres", "-D", &data_s],
    );
    let port = free_port();
    let opts = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {dir_s} -c fsync=off -c synchronous_commit=off -c max_connections=300"
    );
    let log = dir.join("log").to_string_lossy().into_owned();
    run(
        root,
        &bin.join("pg_ctl"),
        &["-D", &data_s, "-l", &log, "-w", "-o", &opts, "start"],
    );
    spawn_watchdog(root, &bin, &data_s, &dir_s);
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// Stops the cluster and removes its directory once this test process is
/// gone, however it ends.
fn spawn_watchdog(root: bool, bin: &Path, data: &str, dir: &str) {
    let pid = std::process::id();
    let pg_ctl = bin.join("pg_ctl");
    let stop = if root {
        format!(
            "runuser -u postgres -- {} -D {data} -m immediate stop",
            pg_ctl.display()
        )
    } else {
        format!("{} -D {data} -m immediate stop", pg_ctl.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
