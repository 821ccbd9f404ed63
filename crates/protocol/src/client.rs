//! A typed client for the runner protocol (used by the runner, the tests
//! and the benchmarks).

use crate::envelope::{ApiErrorBody, Envelope};
use crate::runner::*;
use ai_review_domain::{Attempt, Phase, RunnerId, RunnerStatus, TaskId, TaskOutcome};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why a protocol call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error envelope.
    #[error("server answered {status} {title}: {}", detail.as_deref().unwrap_or(""))]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        title: String,
        /// Explanation.
        detail: Option<String>,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The answer was not the expected JSON.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Installs the workspace's one TLS crypto provider (ring) as the process
/// default, once. reqwest and sqlx are built against it; installing it
/// explicitly avoids rustls' runtime panic when no provider, or two, are
/// available. Safe to call many times.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runner protocol client bound to one server, key and runner id.
#[derive(Clone)]
pub struct RunnerClient {
    http: reqwest::Client,
    base: String,
    key: String,
    runner_id: RunnerId,
}

impl std::fmt::Debug for RunnerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerClient")
            .field("base", &self.base)
            .field("runner_id", &self.runner_id)
            .finish_non_exhaustive()
    }
}

/// Registration metadata.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Display name.
    pub name: String,
    /// Software version.
    pub version: String,
    /// Most tasks at once.
    pub max_concurrency: u32,
    /// Tags as a comma list.
    pub tags: String,
}

impl RunnerClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:3000`) with
    /// `request_timeout` per call (long-polls add their hold on top).
    pub fn new(
        base_url: &str,
        key: &str,
        runner_id: RunnerId,
        request_timeout: Duration,
    ) -> Result<Self, ClientError> {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            runner_id,
        })
    }

    /// The runner id this client acts for.
    pub fn runner_id(&self) -> &RunnerId {
        &self.runner_id
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(ClientError::Transport)?;
        let env: Envelope<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Decode(format!(
                "HTTP {status}: {e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        if let Some(ApiErrorBody {
            title,
            status,
            detail,
        }) = env.error
        {
            return Err(ClientError::Api {
                status,
                title,
                detail,
            });
        }
        let data = env.data.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /api/runners/register`.
    pub async fn register(&self, reg: &Registration) -> Result<RegisterResponse, ClientError> {
        let req = self
            .http
            .post(self.url("/api/runners/register"))
            .header(HEADER_RUNNER_ID, self.runner_id.as_str())
            .header(HEADER_RUNNER_NAME, &reg.name)
            .header(HEADER_RUNNER_VERSION, &reg.version)
            .header(
                HEADER_RUNNER_MAX_CONCURRENCY,
                reg.max_concurrency.to_string(),
            )
            .header(HEADER_RUNNER_TAGS, &reg.tags);
        self.send(req).await
    }

    /// `POST /api/runners/:id/heartbeat`.
    pub async fn heartbeat(
        &self,
        status: RunnerStatus,
        active_jobs: u32,
    ) -> Result<HeartbeatResponse, ClientError> {
        let req = self
            .http
            .post(self.url(&format!("/api/runners/{}/heartbeat", self.runner_id)))
            .json(&HeartbeatRequest {
                status,
                active_jobs,
            });
        self.send(req).await
    }

    /// `GET /api/runners/tasks/pending`: claims up to `limit` tasks, holding
    /// the request up to `wait` if none is pending.
    pub async fn poll(
        &self,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<TaskAssignment>, ClientError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let req = self
            .http
            .get(self.url("/api/runners/tasks/pending"))
            .query(&PendingQuery {
                runner_id: self.runner_id.to_string(),
                limit: Some(limit),
                wait: Some(wait_ms),
            });
        self.send(req).await
    }

    /// `POST /api/runners/tasks/:id/status`.
    pub async fn report_phase(
        &self,
        task: &TaskId,
        attempt: Attempt,
        phase: Phase,
    ) -> Result<TaskStatusResponse, ClientError> {
        let req = self
            .http
            .post(self.url(&format!("/api/runners/tasks/{task}/status")))
            .json(&PhaseRequest {
                runner_id: self.runner_id.clone(),
                attempt,
                phase,
            });
        self.send(req).await
    }

    /// `POST /api/runners/tasks/:id/logs`.
    pub async fn append_logs(
        &self,
        task: &TaskId,
        attempt: Attempt,
        lines: Vec<LogLineIn>,
    ) -> Result<LogsResponse, ClientError> {
        let req = self
            .http
            .post(self.url(&format!("/api/runners/tasks/{task}/logs")))
            .json(&LogsRequest {
                runner_id: self.runner_id.clone(),
                attempt,
                lines,
            });
        self.send(req).await
    }

    /// `POST /api/runners/tasks/:id/result`.
    pub async fn submit_result(
        &self,
        task: &TaskId,
        attempt: Attempt,
        outcome: TaskOutcome,
        reason: Option<String>,
        retryable: bool,
        output: Option<serde_json::Value>,
    ) -> Result<ResultResponse, ClientError> {
        let req = self
            .http
            .post(self.url(&format!("/api/runners/tasks/{task}/result")))
            .json(&ResultRequest {
                runner_id: self.runner_id.clone(),
                attempt,
                outcome,
                reason,
                retryable,
                output,
            });
        self.send(req).await
    }
}
