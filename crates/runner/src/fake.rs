//! An in-memory [`ContainerEngine`] for fast tests of the runner's logic
//! (timeouts, cancellation, OOM mapping, pool refills, leftover reaping)
//! without a Docker daemon. Each created container follows a [`Behaviour`]
//! chosen by the test; it honours the executor contract by waiting for the
//! task file in its workspace before it "runs".

use crate::engine::*;
use async_trait::async_trait;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What a fake container does once its task file exists.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Writes `stderr` lines and `stdout`, then exits with `code`.
    Exit {
        /// Exit code.
        code: i64,
        /// Standard output.
        stdout: String,
        /// Standard error.
        stderr: String,
    },
    /// Runs until killed.
    Hang,
    /// Dies as if the OOM killer fired.
    OutOfMemory,
    /// Runs a stand-in executor over the workspace directory (it may read
    /// the task file and call the model gateway), then does what it
    /// returns.
    Act(Act),
}

/// A stand-in executor: an async function of the workspace directory
/// returning what the container does next.
#[derive(Clone)]
pub struct Act(pub Arc<dyn Fn(PathBuf) -> BoxFuture<'static, Behaviour> + Send + Sync>);

impl std::fmt::Debug for Act {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Act(..)")
    }
}

/// Picks a [`Behaviour`] for each created container.
type Chooser = Arc<dyn Fn(&ContainerSpec) -> Behaviour + Send + Sync>;

#[derive(Debug)]
struct FakeContainer {
    spec: ContainerSpec,
    started: bool,
    exit: watch::Sender<Option<ExitStatus>>,
    output: Arc<Mutex<Vec<OutputChunk>>>,
    removed: bool,
}

/// The fake engine. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct FakeEngine {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    containers: HashMap<String, FakeContainer>,
    next: u64,
    behaviour: Option<Chooser>,
    missing_image: bool,
}

impl FakeEngine {
    /// An engine whose containers behave as `f` decides.
    pub fn new(f: impl Fn(&ContainerSpec) -> Behaviour + Send + Sync + 'static) -> Self {
        let e = Self::default();
        if let Ok(mut s) = e.inner.lock() {
            s.behaviour = Some(Arc::new(f));
        }
        e
    }

    /// Makes `check` report the image as missing.
    pub fn without_image(self) -> Self {
        if let Ok(mut s) = self.inner.lock() {
            s.missing_image = true;
        }
        self
    }

    /// Adds a container as if left over by an earlier runner process.
    pub fn add_leftover(&self, spec: ContainerSpec) -> String {
        let Ok(mut s) = self.inner.lock() else {
            return String::new();
        };
        s.next += 1;
        let id = format!("fake-{}", s.next);
        let (tx, _) = watch::channel(None);
        s.containers.insert(
            id.clone(),
            FakeContainer {
                spec,
                started: true,
                exit: tx,
                output: Arc::default(),
                removed: false,
            },
        );
        id
    }

    /// Specs of containers not yet removed.
    pub fn live(&self) -> Vec<ContainerSpec> {
        self.inner
            .lock()
            .map(|s| {
                s.containers
                    .values()
                    .filter(|c| !c.removed)
                    .map(|c| c.spec.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of containers ever created.
    pub fn created(&self) -> u64 {
        self.inner.lock().map(|s| s.next).unwrap_or(0)
    }

    fn behave(&self, id: &str) {
        let (spec, behaviour, exit, output) = {
            let Ok(s) = self.inner.lock() else { return };
            let Some(c) = s.containers.get(id) else {
                return;
            };
            let Some(f) = s.behaviour.clone() else { return };
            (c.spec.clone(), f(&c.spec), c.exit.clone(), c.output.clone())
        };
        tokio::spawn(async move {
            let task_file = spec.workspace.join(ai_review_executor::TASK_FILE);
            while !task_file.exists() {
                if exit.borrow().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let push = |stream, text: &str| {
                if let Ok(mut o) = output.lock() {
                    o.push(OutputChunk {
                        stream,
                        bytes: text.as_bytes().to_vec(),
                    });
                }
            };
            push(
                OutputStream::Stderr,
                &format!("{}\n", ai_review_executor::STARTED_MARKER),
            );
            let behaviour = match behaviour {
                Behaviour::Act(act) => (act.0)(spec.workspace.clone()).await,
                other => other,
            };
            match behaviour {
                Behaviour::Exit {
                    code,
                    stdout,
                    stderr,
                } => {
                    push(OutputStream::Stderr, &stderr);
                    push(OutputStream::Stdout, &stdout);
                    let _ = exit.send_if_modified(|e| {
                        e.get_or_insert(ExitStatus {
                            code,
                            oom_killed: false,
                        });
                        true
                    });
                }
                Behaviour::Hang | Behaviour::Act(_) => {}
                Behaviour::OutOfMemory => {
                    let _ = exit.send_if_modified(|e| {
                        e.get_or_insert(ExitStatus {
                            code: 137,
                            oom_killed: true,
                        });
                        true
                    });
                }
            }
        });
    }
}

#[async_trait]
impl ContainerEngine for FakeEngine {
    async fn check(&self, image: &str) -> Result<(), EngineError> {
        let missing = self.inner.lock().map(|s| s.missing_image).unwrap_or(true);
        if missing {
            Err(EngineError::ImageMissing(image.to_owned()))
        } else {
            Ok(())
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let mut s = self
            .inner
            .lock()
            .map_err(|_| EngineError::Other("poisoned".into()))?;
        if s.containers
            .values()
            .any(|c| !c.removed && c.spec.name == spec.name)
        {
            return Err(EngineError::Other(format!("name {} in use", spec.name)));
        }
        s.next += 1;
        let id = format!("fake-{}", s.next);
        let (tx, _) = watch::channel(None);
        s.containers.insert(
            id.clone(),
            FakeContainer {
                spec: spec.clone(),
                started: false,
                exit: tx,
                output: Arc::default(),
                removed: false,
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        {
            let mut s = self
                .inner
                .lock()
                .map_err(|_| EngineError::Other("poisoned".into()))?;
            let c = s
                .containers
                .get_mut(id)
                .ok_or_else(|| EngineError::Other(format!("no container {id}")))?;
            c.started = true;
        }
        self.behave(id);
        Ok(())
    }

    fn output(&self, id: &str) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
        let found = self.inner.lock().ok().and_then(|s| {
            s.containers
                .get(id)
                .map(|c| (c.output.clone(), c.exit.subscribe()))
        });
        let Some((output, exit)) = found else {
            return futures::stream::once(async {
                Err(EngineError::Other("no such container".into()))
            })
            .boxed();
        };
        futures::stream::unfold(
            (0usize, output, exit, false),
            |(pos, output, mut exit, done)| async move {
                loop {
                    let next = output.lock().ok().and_then(|o| o.get(pos).cloned());
                    if let Some(chunk) = next {
                        return Some((Ok(chunk), (pos + 1, output, exit, done)));
                    }
                    if done || exit.borrow().is_some() {
                        let more = output.lock().map(|o| o.len() > pos).unwrap_or(false);
                        if !more {
                            return None;
                        }
                        continue;
                    }
                    tokio::select! {
                        _ = exit.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    }
                }
            },
        )
        .boxed()
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus, EngineError> {
        let mut rx = self
            .inner
            .lock()
            .map_err(|_| EngineError::Other("poisoned".into()))?
            .containers
            .get(id)
            .map(|c| c.exit.subscribe())
            .ok_or_else(|| EngineError::Other(format!("no container {id}")))?;
        loop {
            if let Some(e) = *rx.borrow() {
                return Ok(e);
            }
            if rx.changed().await.is_err() {
                return Err(EngineError::Other("container vanished".into()));
            }
        }
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        if let Ok(s) = self.inner.lock()
            && let Some(c) = s.containers.get(id)
        {
            let _ = c.exit.send_if_modified(|e| {
                if e.is_none() {
                    *e = Some(ExitStatus {
                        code: 137,
                        oom_killed: false,
                    });
                    true
                } else {
                    false
                }
            });
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.kill(id).await?;
        if let Ok(mut s) = self.inner.lock()
            && let Some(c) = s.containers.get_mut(id)
        {
            c.removed = true;
        }
        Ok(())
    }

    async fn list_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| EngineError::Other("poisoned".into()))?
            .containers
            .iter()
            .filter(|(_, c)| !c.removed && c.spec.labels.get(key).is_some_and(|v| v == value))
            .map(|(id, c)| ContainerInfo {
                id: id.clone(),
                name: c.spec.name.clone(),
                labels: c.spec.labels.clone(),
            })
            .collect())
    }
}
