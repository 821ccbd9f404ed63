//! The executor image for `ai-review review`: present, or built on the
//! first run from a checkout of ai-review with `scripts/build-images.sh`
//! (its output streamed as progress), or a clear message saying how.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The build script of the ai-review checkout at `root`, if `root` is one.
fn script_in(root: &Path) -> Option<PathBuf> {
    let script = root.join("scripts").join("build-images.sh");
    // The script alone is not proof: another project may have one too.
    let is_checkout = root.join("Dockerfile.executor").is_file()
        && root
            .join("crates")
            .join("executor")
            .join("Cargo.toml")
            .is_file();
    (is_checkout && script.is_file()).then_some(script)
}

/// Where to find `scripts/build-images.sh`: the checkout this binary was
/// built from (when it still exists), else the repository under review
/// when that is a checkout of ai-review.
pub fn find_build_script(reviewed_repo: &Path) -> Option<PathBuf> {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    script_in(&own).or_else(|| script_in(reviewed_repo))
}

/// What to tell a user whose executor image is missing and not built here.
pub fn how_to_build(image: &str, no_build: bool) -> String {
    let why = if no_build {
        "--no-build was given"
    } else {
        "this ai-review was not run from a checkout of ai-review"
    };
    format!(
        "the executor image {image} is not present, and it was not built because {why}.\n\
         Build it from a checkout of ai-review (no registry is used):\n  \
         scripts/build-images.sh {image}\n\
         or name an image you have with --image / DOCKER_EXECUTOR_IMAGE"
    )
}

async fn stream(out: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("  │ {line}");
    }
}

/// Runs `script IMAGE` with its output shown on stderr, line by line.
pub async fn build(script: &Path, image: &str, docker_host: &str) -> anyhow::Result<()> {
    eprintln!(
        "building the executor image {image} (first run only, a few minutes) with {}...",
        script.display()
    );
    let mut child = tokio::process::Command::new("bash")
        .arg(script)
        .arg(image)
        .env("DOCKER_HOST", docker_host)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let out = child.stdout.take().context("build output")?;
    let err = child.stderr.take().context("build output")?;
    let (_, _, status) = tokio::join!(stream(out), stream(err), child.wait());
    let status = status.context("waiting for the image build")?;
    if !status.success() {
        bail!(
            "building the executor image failed ({status}); the output is above. Fix it and run {} {image}, or name an existing image with --image",
            script.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_script_only_in_a_checkout_of_ai_review() {
        let own = find_build_script(Path::new("/nonexistent"));
        assert!(
            own.as_ref()
                .is_some_and(|p| p.ends_with("scripts/build-images.sh")),
            "the tests run from a checkout: {own:?}"
        );
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(other.path().join("scripts")).expect("mkdir");
        std::fs::write(other.path().join("scripts/build-images.sh"), "exit 1\n").expect("write");
        assert_eq!(
            script_in(other.path()),
            None,
            "a lookalike script is not ours"
        );
    }

    #[test]
    fn the_fix_names_the_image_and_the_script() {
        let s = how_to_build("my-exec:1", true);
        assert!(
            s.contains("my-exec:1 is not present")
                && s.contains("--no-build")
                && s.contains("scripts/build-images.sh my-exec:1"),
            "{s}"
        );
        assert!(how_to_build("x", false).contains("not run from a checkout"));
    }

    #[tokio::test]
    async fn a_failing_build_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("build.sh");
        std::fs::write(&script, "echo step one\nexit 3\n").expect("write");
        let e = build(&script, "img:1", "unix:///nonexistent")
            .await
            .expect_err("fails");
        assert!(
            e.to_string().contains("building the executor image failed"),
            "{e}"
        );
        let ok = dir.path().join("ok.sh");
        std::fs::write(
            &ok,
            "test \"$1\" = img:1 && test \"$DOCKER_HOST\" = unix:///x\n",
        )
        .expect("write");
        build(&ok, "img:1", "unix:///x")
            .await
            .expect("passes the image and host");
    }
}
