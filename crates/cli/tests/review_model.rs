//! `ai-review review` with a model from `AI_REVIEW_LLM_*`: the real binary,
//! its embedded server and runner, the executor in its container, and a
//! fake OpenAI-compatible model on loopback. The key reaches the model and
//! is never printed; the report shows the model's finding, the AI status
//! and the usage. A local user left by an earlier version without the
//! config permissions does not get in the way.

use ai_review_fake_llm::{FakeLlm, Reply};
use std::path::Path;
use std::process::Output;

const KEY: &str = "sk-fake-e2e-0123456789";

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("calc.py"), "def add(a, b):\n    return a + b\n").expect("write");
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "base"]);
    std::fs::write(
        p.join("calc.py"),
        "def add(a, b):\n    return a + b\n\ndef div(a, b):\n    return a / b\n",
    )
    .expect("write");
    git(p, &["commit", "-qam", "add div"]);
    d
}

async fn review(repo: &Path, data: &Path, llm: &FakeLlm, format: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ai-review"))
        .arg("review")
        .arg(repo)
        .args(["--format", format])
        .env("AI_REVIEW_DATA_DIR", data)
        .env(
            "DOCKER_EXECUTOR_IMAGE",
            ai_review_testkit::docker::executor_image(),
        )
        .env("AI_REVIEW_LLM_PROVIDER", "openai")
        .env("AI_REVIEW_LLM_BASE_URL", llm.base_url())
        .env("AI_REVIEW_LLM_MODEL", "fake-model")
        .env("AI_REVIEW_LLM_API_KEY", KEY)
        .env_remove("AI_REVIEW_LLM_TOKEN_BUDGET")
        .env_remove("AI_REVIEW_LLM_MAX_OUTPUT_TOKENS")
        .env_remove("AI_REVIEW_LLM_TIMEOUT_MS")
        .env_remove("AI_REVIEW_LLM_TEMPERATURE")
        .env_remove("AI_REVIEW_SERVER")
        .env_remove("AI_REVIEW_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run ai-review review")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_review_with_a_model_from_the_environment() {
    let llm = FakeLlm::start(KEY).await;
    llm.set_default(|_| {
        Reply::content(
            r#"{"summary":"Adds div.","assessment":"request_changes","rating":2,"findings":[{"file":"calc.py","startLine":5,"endLine":5,"severity":"warning","category":"bug","confidence":0.9,"message":"Division by zero is not handled.","suggestion":"    return a / b if b else None"}]}"#,
        )
    });
    let r = repo();
    let data = tempfile::tempdir().expect("tempdir");
    // The local user as an earlier ai-review made it: review:create only.
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_ai-review"))
        .args([
            "admin",
            "create-user",
            "--email",
            "local-review@ai-review.invalid",
            "--password",
            "unused-password",
            "--permission",
            "review:create",
        ])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", data.path().join("local-review.db").display()),
        )
        .output()
        .expect("admin create-user");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let out = review(r.path(), data.path(), &llm, "json").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key is never printed"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json result");
    assert_eq!(v["ai"]["status"], "completed", "{v:#}\n{stderr}");
    assert!(
        v["usage"]["calls"].as_u64().is_some_and(|c| c >= 1),
        "{v:#}"
    );
    let seen = llm.succeeded();
    assert!(!seen.is_empty(), "the fake model was called");
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {KEY}"))),
        "the key from AI_REVIEW_LLM_API_KEY reached the model"
    );
    let finding = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["source"] == "model")
        .unwrap_or_else(|| panic!("the model's finding is reported: {v:#}"));
    assert_eq!(finding["file"], "calc.py");
    assert_eq!(finding["line"], 5);

    // A second run updates the same AI config and prints the text report.
    let out = review(r.path(), data.path(), &llm, "text").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("AI review: completed with openai fake-model"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Division by zero is not handled. (AI)")
            && stdout.contains("|     return a / b if b else None"),
        "{stdout}"
    );
    assert!(stdout.contains("Usage: "), "{stdout}");
    assert!(!stdout.contains("Usage: no model calls"), "{stdout}");
    assert!(
        stderr.contains("model: openai fake-model at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
}
