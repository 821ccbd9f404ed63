//! Test support: throwaway git repositories and a scripted model gateway
//! serving HTTP on a Unix socket, as the runner does.

#![allow(dead_code)]

use ai_review_executor::gateway::{
    ChatRequest, ChatResponse, GatewayError, ModelUsage, TokenUsage,
};
use ai_review_executor::{ExecutorTask, ModelSettings, ReviewSettings};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A git repository in a temporary directory.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        let r = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.git(&["init", "-q", "-b", "main", "."]);
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("rm");
    }

    /// Commits everything and returns the SHA.
    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A", "."]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

pub fn model(max_input: u32, max_output: u32, budget: u64) -> ModelSettings {
    ModelSettings {
        provider: "openai".into(),
        model: "mock-1".into(),
        token_budget: budget,
        max_output_tokens: max_output,
        max_input_tokens_per_call: max_input,
    }
}

pub fn task(
    base: &str,
    head: &str,
    model: Option<ModelSettings>,
    review: ReviewSettings,
) -> ExecutorTask {
    ExecutorTask {
        version: 1,
        task_id: "t-1".into(),
        base_sha: base.into(),
        head_sha: head.into(),
        model,
        review,
        request_id: Some("req-test-1".into()),
    }
}

/// What the mock gateway answers to one chat call.
pub enum Reply {
    /// 200 with this content.
    Answer(String),
    /// An error status with a gateway error body.
    Error(u16, &'static str, String),
}

type Handler = dyn Fn(usize, &ChatRequest) -> Reply + Send + Sync;

/// A scripted gateway on a Unix socket; records every chat request.
pub struct MockGateway {
    _dir: Option<tempfile::TempDir>,
    pub socket: PathBuf,
    pub requests: Arc<Mutex<Vec<ChatRequest>>>,
}

impl MockGateway {
    /// Serves on a socket in a new temporary directory.
    pub fn start(handler: impl Fn(usize, &ChatRequest) -> Reply + Send + Sync + 'static) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("model.sock");
        let mut g = Self::start_at(&socket, handler);
        g._dir = Some(dir);
        g
    }

    /// Serves on `socket`.
    pub fn start_at(
        socket: &Path,
        handler: impl Fn(usize, &ChatRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = UnixListener::bind(socket).expect("bind");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { return };
                let (head, body) = read_request(&mut c);
                let (status, answer) = if head.starts_with("GET /v1/usage ") {
                    let reqs = recorded.lock().expect("lock");
                    let usage = ModelUsage {
                        provider: "openai".into(),
                        model: "mock-1".into(),
                        calls: reqs.len() as u64,
                        input_tokens: 100 * reqs.len() as u64,
                        output_tokens: 10 * reqs.len() as u64,
                        ..ModelUsage::default()
                    };
                    (200, serde_json::to_string(&usage).expect("json"))
                } else if head.starts_with("POST /v1/chat ") {
                    let req: ChatRequest =
                        serde_json::from_slice(&body).expect("a valid ChatRequest");
                    let n = {
                        let mut reqs = recorded.lock().expect("lock");
                        reqs.push(req.clone());
                        reqs.len() - 1
                    };
                    match handler(n, &req) {
                        Reply::Answer(content) => (
                            200,
                            serde_json::to_string(&ChatResponse {
                                content,
                                usage: TokenUsage {
                                    input_tokens: 100,
                                    output_tokens: 10,
                                },
                                cached: n % 2 == 1,
                                model: "mock-1".into(),
                                finish_reason: Some("stop".into()),
                            })
                            .expect("json"),
                        ),
                        Reply::Error(status, code, message) => (
                            status,
                            serde_json::to_string(&GatewayError {
                                code: code.into(),
                                message,
                            })
                            .expect("json"),
                        ),
                    }
                } else {
                    (404, String::new())
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Self {
            _dir: None,
            socket: socket.to_owned(),
            requests,
        }
    }

    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

fn read_request(c: &mut impl Read) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().expect("length"))
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return (head, got[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = c.read(&mut buf).expect("read");
        if n == 0 {
            return (String::from_utf8_lossy(&got).into_owned(), Vec::new());
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Where `needle` appears on a numbered line of a user message:
/// `(file, new-side line)`.
pub fn find_line(user: &str, needle: &str) -> Option<(String, u32)> {
    let mut file = String::new();
    for l in user.lines() {
        if let Some(rest) = l.strip_prefix("### File: ") {
            file = rest.rsplit_once(" (").map_or(rest, |(p, _)| p).to_owned();
            continue;
        }
        if l.len() > 8
            && l.contains(needle)
            && let Ok(n) = l[..6].trim().parse::<u32>()
        {
            return Some((file.clone(), n));
        }
    }
    None
}

/// A valid answer with `findings` (JSON values).
pub fn answer(
    summary: &str,
    assessment: &str,
    rating: u8,
    findings: Vec<serde_json::Value>,
) -> String {
    serde_json::json!({
        "summary": summary,
        "assessment": assessment,
        "rating": rating,
        "findings": findings,
    })
    .to_string()
}

pub fn finding(
    file: &str,
    start: u32,
    end: u32,
    severity: &str,
    category: &str,
    message: &str,
) -> serde_json::Value {
    serde_json::json!({
        "file": file, "startLine": start, "endLine": end, "severity": severity,
        "category": category, "confidence": 0.8, "message": message,
    })
}

/// The user message of a request.
pub fn user(req: &ChatRequest) -> &str {
    &req.messages[1].content
}
