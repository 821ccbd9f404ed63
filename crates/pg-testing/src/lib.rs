//! A real PostgreSQL server for tests, and a fresh database per test.
//!
//! Tests call [`fresh_database_url`] and connect to the URL it returns: a
//! brand-new, empty database of their own, so tests run in parallel without
//! seeing each other's rows and every test starts from the migrations.
//!
//! Which server holds those databases:
//!
//! - If `AI_REVIEW_TEST_POSTGRES_URL` is set (an admin URL such as
//!   `postgres://postgres@127.0.0.1:54329/postgres`, as `.ci/run` sets it),
//!   that server is used. The role must be allowed to `CREATE DATABASE`.
//!   The databases are left behind: point it at a throwaway cluster.
//! - Otherwise the first call in a test process starts a throwaway cluster,
//!   shared by every test of that process: `initdb -A trust -U postgres`
//!   into a new directory under the temporary directory, then
//!   `pg_ctl start` listening on a free loopback port only (its Unix socket
//!   in the same directory), with `fsync` off since the data is worthless.
//!   PostgreSQL refuses to run as root, so when the tests run as root
//!   (checked with `id -u`; the workspace forbids unsafe code, so no libc)
//!   the directory is given to the `postgres` OS user and both commands run
//!   through `runuser -u postgres --`. A small `sh` watchdog, started with
//!   the cluster, waits for the test process to exit, however it ends, then
//!   stops the cluster (`pg_ctl stop -m immediate`) and deletes its
//!   directory within about a second.
//!
//! Without PostgreSQL server binaries under `/usr/lib/postgresql/*/bin`
//! the tests panic with a message saying how to install them: they are
//! never skipped silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Environment variable naming an existing server to use instead of
/// starting one.
pub const SERVER_URL_ENV: &str = "AI_REVIEW_TEST_POSTGRES_URL";

static SERVER: OnceCell<String> = OnceCell::const_new();

/// The admin URL of this test process's PostgreSQL server: the one named by
/// `AI_REVIEW_TEST_POSTGRES_URL`, or a throwaway cluster started on first
/// use (see the crate docs).
///
/// # Panics
///
/// If no server is configured and none can be started, notably when the
/// PostgreSQL server binaries are not installed.
pub async fn admin_url() -> String {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(SERVER_URL_ENV)
                && !url.trim().is_empty()
            {
                return url.trim().to_owned();
            }
            match tokio::task::spawn_blocking(start_cluster).await {
                Ok(url) => url,
                // Re-raise with the original message ("binaries not found…").
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("starting the test PostgreSQL was cancelled: {e}"),
            }
        })
        .await
        .clone()
}

/// Creates an empty database with a unique name on the test server and
/// returns its URL (the admin URL with the database name replaced).
///
/// # Panics
///
/// If the server cannot be started or reached, or refuses the database.
pub async fn fresh_database_url() -> String {
    let admin = admin_url().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = connect_with_retries(&admin).await;
    // `CREATE DATABASE` takes no bind parameters. The name is generated
    // above from a UUID (`t_` and hex digits only): safe to splice.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("create test database {name} on {admin}: {e}"));
    let _ = sqlx::Connection::close(conn).await;
    with_database(&admin, &name)
}

async fn connect_with_retries(url: &str) -> sqlx::PgConnection {
    let mut last = None;
    for _ in 0..50 {
        match <sqlx::PgConnection as sqlx::Connection>::connect(url).await {
            Ok(c) => return c,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!(
        "cannot connect to the test PostgreSQL at {url}: {}",
        last.map_or_else(String::new, |e| e.to_string())
    )
}

/// `url` with its database (the last path segment) replaced by `db`,
/// keeping any query string (`?sslmode=…`).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

fn pg_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    // Newest major version last (directory names are version numbers).
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found: apt-get install postgresql, \
             or set {SERVER_URL_ENV} (looked for initdb and pg_ctl under /usr/lib/postgresql/*/bin)"
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

/// Runs a PostgreSQL program, as the `postgres` user when we are root.
fn run(root: bool, program: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {} failed ({}): {}{}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port(ip: std::net::IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("find a free port on {ip}: {e}"))
}

fn start_cluster() -> String {
    start_cluster_on(std::net::IpAddr::from([127, 0, 0, 1]), None)
}

/// Starts a throwaway cluster of its own (not the shared test server)
/// listening on `listen` and on loopback, and returns its admin URL
/// (`postgres://postgres@LISTEN:PORT/postgres`; the same port answers on
/// `127.0.0.1`). Clients from `trusted_cidr` (e.g. a private Docker
/// network's subnet) are let in without a password, like loopback ones:
/// for tests whose servers run in containers on that network. The test
/// itself should connect over loopback: some hosts NAT their own
/// connections to a bridge address. Stopped and deleted when the test
/// process exits, like the shared one.
///
/// # Panics
///
/// If the cluster cannot be started (see [`admin_url`]).
pub fn start_cluster_on(listen: std::net::IpAddr, trusted_cidr: Option<&str>) -> String {
    let bin = pg_bin_dir();
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("ai-review-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create cluster dir {}: {e}", dir.display()));
    if root {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "chown {} to the postgres user failed (PostgreSQL refuses to run as root; \
             does the postgres OS user exist?)",
            dir.display()
        );
    }
    let data = dir.join("data").to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();
    let log = dir.join("log").to_string_lossy().into_owned();
    // Stop and delete whatever gets started, even if we panic below.
    spawn_watchdog(root, &bin, &data, &dir_s);
    if let Err(e) = run(
        root,
        &bin.join("initdb"),
        &[
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
            &data,
        ],
    ) {
        panic!("{e}");
    }
    if let Some(cidr) = trusted_cidr {
        use std::io::Write;
        let hba = dir.join("data").join("pg_hba.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&hba)
            .and_then(|mut f| writeln!(f, "host all all {cidr} trust"))
            .unwrap_or_else(|e| panic!("trust {cidr} in {}: {e}", hba.display()));
    }
    // The free port may be taken again before PostgreSQL binds it: retry.
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port(listen);
        let addresses = if listen.is_loopback() {
            listen.to_string()
        } else {
            format!("127.0.0.1,{listen}")
        };
        let opts = format!(
            "-c listen_addresses={addresses} -p {port} -k {dir_s} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        );
        match run(
            root,
            &bin.join("pg_ctl"),
            &[
                "-D", &data, "-l", &log, "-w", "-t", "30", "-o", &opts, "start",
            ],
        ) {
            Ok(()) => return format!("postgres://postgres@{listen}:{port}/postgres"),
            Err(e) => {
                let server_log = std::fs::read_to_string(&log).unwrap_or_default();
                last_error = format!("{e}\nserver log:\n{server_log}");
            }
        }
    }
    panic!("could not start the test PostgreSQL: {last_error}")
}

/// Starts a detached `sh` that waits for this test process to exit, then
/// stops the cluster and removes its directory.
fn spawn_watchdog(root: bool, bin: &Path, data: &str, dir: &str) {
    let pid = std::process::id();
    let pg_ctl = bin.join("pg_ctl");
    let as_postgres = if root { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {as_postgres}'{}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pg_ctl.display()
    );
    let spawned = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        // Not fatal: the cluster then lives on until the machine stops.
        eprintln!("ai-review-pg-testing: no watchdog for the test PostgreSQL in {dir}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/admin?sslmode=disable", "t_1"),
            "postgres://u:p@h:1/t_1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t_1"),
            "postgres://u@h:1/t_1"
        );
    }
}
