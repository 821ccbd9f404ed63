//! A real git server for tests: bare repositories served by `git daemon`
//! over `git://127.0.0.1:PORT/NAME.git` (or another address of this host),
//! with helpers to make commits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `git daemon` over a temporary directory of bare repositories.
pub struct GitServer {
    root: tempfile::TempDir,
    ip: std::net::IpAddr,
    port: u16,
    daemon: Child,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl GitServer {
    /// Starts `git daemon` on a free loopback port.
    pub fn start() -> Self {
        Self::start_on(std::net::IpAddr::from([127, 0, 0, 1]))
    }

    /// Starts `git daemon` on a free port of `ip`: a Docker network's
    /// gateway address, for runners in containers on that network.
    pub fn start_on(ip: std::net::IpAddr) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let daemon = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all"])
            .arg(format!("--listen={ip}"))
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.path().display()))
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        for _ in 0..100 {
            if std::net::TcpStream::connect((ip, port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            root,
            ip,
            port,
            daemon,
        }
    }

    /// Creates a repository `name` with a work tree to commit from.
    pub fn repo(&self, name: &str) -> TestRepo {
        let bare = self.root.path().join(format!("{name}.git"));
        let work = self.root.path().join(format!("{name}-work"));
        std::fs::create_dir_all(&work).expect("mkdir");
        git(
            self.root.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().unwrap_or_default(),
            ],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().unwrap_or_default()],
        );
        TestRepo {
            work,
            url: format!("git://{}:{}/{name}.git", self.ip, self.port),
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A repository served by a [`GitServer`].
pub struct TestRepo {
    work: PathBuf,
    /// Clone URL.
    pub url: String,
}

impl TestRepo {
    /// Writes `files` (path, content), commits everything and pushes `main`;
    /// returns the commit SHA.
    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            let p = self.work.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&p, content).expect("write");
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Removes a file (committed by the next [`TestRepo::commit`]).
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.work.join(path)).expect("remove");
    }
}
