//! Docker helpers for tests: the executor image under test, derived images
//! that misbehave on purpose, and counting what a runner left behind.

use std::process::{Command, Stdio};

/// The executor image the tests use (`AI_REVIEW_TEST_EXECUTOR_IMAGE`,
/// default `ai-review-executor:latest`, built by `scripts/build-images.sh`).
pub fn executor_image() -> String {
    let image = std::env::var("AI_REVIEW_TEST_EXECUTOR_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ai-review-executor:latest".into());
    let ok = Command::new("docker")
        .args(["image", "inspect", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "executor image {image} not found: run scripts/build-images.sh {image} first"
    );
    image
}

/// An image derived from the executor image whose entrypoint runs the shell
/// script `script` instead (memory hogs, sleepers, fork bombs). Built from
/// the local image, no registry; cached by tag.
pub fn misbehaving_image(name: &str, script: &str) -> String {
    let base = executor_image();
    let tag = format!("ai-review-test-{name}:latest");
    let dockerfile = format!("FROM {base}\nENTRYPOINT [\"/bin/sh\", \"-c\", {script:?}]\nCMD []\n");
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(dockerfile.as_bytes())
            .expect("write Dockerfile");
    }
    let out = child.wait_with_output().expect("docker build");
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

/// Containers (running or not) labelled with runner id `runner`.
pub fn containers_of(runner: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=ai-review.runner={runner}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `docker inspect -f FORMAT NAME`.
pub fn inspect(name: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, name])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
