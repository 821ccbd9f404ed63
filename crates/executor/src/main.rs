//! `ai-review-executor`: runs inside the review container (see the crate
//! docs for the contract).
//!
//! ```text
//! ai-review-executor run [--workspace DIR] [--wait-ms N]
//! ai-review-executor scan FILE...
//! ```
//!
//! `run` reviews the task in the workspace, asking the model gateway on
//! `<workspace>/model.sock` when the task has a model.

use ai_review_executor::client::{Gateway, SocketGateway};
use ai_review_executor::gateway::GATEWAY_SOCKET;
use ai_review_executor::{ExecutorTask, REPO_DIR, STARTED_MARKER, TASK_FILE, WORKSPACE_MOUNT};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!(
        "usage: ai-review-executor run [--workspace DIR] [--wait-ms N]\n       ai-review-executor scan FILE...   (deterministic checks on whole files, JSON lines)"
    );
    ExitCode::from(2)
}

/// `scan FILE...`: the deterministic checks over whole files, as if every
/// line were added; one JSON finding per line of output.
fn scan(files: &[String]) -> ExitCode {
    use ai_review_executor::diff::{DiffLine, FilePatch, Hunk};
    let mut patches = Vec::new();
    for f in files {
        let text = match std::fs::read(f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("ai-review-executor: cannot read {f}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let lines: Vec<DiffLine> = text
            .lines()
            .map(|l| DiffLine::Added(l.to_owned()))
            .collect();
        let n = u32::try_from(lines.len()).unwrap_or(u32::MAX);
        patches.push(FilePatch {
            old_path: None,
            new_path: Some(f.clone()),
            binary: false,
            old_mode: None,
            new_mode: None,
            hunks: vec![Hunk {
                old_start: 0,
                old_lines: 0,
                new_start: 1,
                new_lines: n,
                lines,
            }],
        });
    }
    let mut stdout = std::io::stdout().lock();
    for finding in ai_review_executor::checks::run_checks(&patches) {
        if let Ok(json) = serde_json::to_string(&finding) {
            let _ = writeln!(stdout, "{json}");
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("scan") && args.len() > 1 {
        return scan(&args[1..]);
    }
    if args.first().map(String::as_str) != Some("run") {
        return usage();
    }
    let mut workspace = PathBuf::from(WORKSPACE_MOUNT);
    let mut wait = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--workspace", Some(v)) => workspace = PathBuf::from(v),
            ("--wait-ms", Some(v)) => match v.parse::<u64>() {
                Ok(ms) => wait = Some(Duration::from_millis(ms)),
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    match run(&workspace, wait) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ai-review-executor: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for the task file: warm-pool containers start before their task
/// exists. A 5 ms poll costs nothing measurable and needs no write access.
fn wait_for_task(path: &std::path::Path, limit: Option<Duration>) -> Result<Vec<u8>, String> {
    let start = Instant::now();
    loop {
        match std::fs::read(path) {
            Ok(b) => return Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if limit.is_some_and(|l| start.elapsed() >= l) {
                    return Err(format!(
                        "no task file at {} after {limit:?}",
                        path.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

fn run(workspace: &std::path::Path, wait: Option<Duration>) -> Result<(), String> {
    let raw = wait_for_task(&workspace.join(TASK_FILE), wait)?;
    let task: ExecutorTask =
        serde_json::from_slice(&raw).map_err(|e| format!("invalid task file: {e}"))?;
    match &task.request_id {
        Some(r) => eprintln!("{STARTED_MARKER} task {} request {r}", task.task_id),
        None => eprintln!("{STARTED_MARKER} task {}", task.task_id),
    }
    eprintln!(
        "computing changes {}..{}",
        &task.base_sha[..task.base_sha.len().min(12)],
        &task.head_sha[..task.head_sha.len().min(12)]
    );
    let gateway = SocketGateway::new(workspace.join(GATEWAY_SOCKET));
    let gateway = task.model.as_ref().map(|_| &gateway as &dyn Gateway);
    let mut stderr = std::io::stderr();
    let out =
        ai_review_executor::review::review(&workspace.join(REPO_DIR), &task, gateway, &mut stderr)
            .map_err(|e| e.to_string())?;
    if let Some(ai) = &out.ai {
        eprintln!(
            "review done: {} findings, {} not reviewed, AI review {:?}{}",
            out.findings.len(),
            out.not_reviewed.len(),
            ai.status,
            ai.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    let json = serde_json::to_string(&out).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{json}").map_err(|e| format!("cannot write the result: {e}"))?;
    stdout.flush().map_err(|e| e.to_string())
}
