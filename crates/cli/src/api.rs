//! A small typed client for the server's user API (the envelope, the
//! bearer key), used by `ai-review review` against its embedded server and
//! against a running one. Errors keep the server's status and detail so
//! the user reads what the server said and what to do about it.

use ai_review_protocol::Envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum ApiError {
    /// No answer (connection refused, DNS, timeout).
    Unreachable {
        /// The server's base URL.
        server: String,
        /// The transport error.
        error: String,
    },
    /// An error answer.
    Status {
        /// HTTP status.
        status: u16,
        /// The envelope's `detail` (else its title, else the status text).
        detail: String,
    },
    /// A success answer that is not the expected body.
    Invalid(String),
}

impl ApiError {
    /// Whether the request was refused because of what the user gave
    /// (token, permissions, request), not because something is down.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Status { status, .. } if matches!(status, 400 | 401 | 403 | 404 | 409 | 422))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { server, error } => write!(
                f,
                "the server at {server} does not answer ({error}); check the URL (--server / AI_REVIEW_SERVER) and that it is running (`curl {server}/api/health`)"
            ),
            Self::Status {
                status: 401,
                detail,
            } => write!(
                f,
                "the server refused the token (401: {detail}); check --token / AI_REVIEW_TOKEN, or create a key with `ai-review admin create-api-key`"
            ),
            Self::Status {
                status: 403,
                detail,
            } => write!(
                f,
                "the server refused: not allowed (403: {detail}); ask an admin to grant the key's user the permission named there"
            ),
            Self::Status {
                status: 400,
                detail,
            } => {
                write!(f, "the server refused the request (400: {detail})")
            }
            Self::Status {
                status: 404,
                detail,
            } => {
                write!(f, "not found on the server (404: {detail})")
            }
            Self::Status { status, detail } => write!(f, "the server answered {status}: {detail}"),
            Self::Invalid(e) => write!(f, "unexpected answer from the server: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A client bound to one server and one API key.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish()
    }
}

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:3000`) with key `token`.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        ai_review_protocol::client::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp =
            req.bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| ApiError::Unreachable {
                    server: self.base.clone(),
                    error: without_url(&e),
                })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ApiError::Unreachable {
            server: self.base.clone(),
            error: without_url(&e),
        })?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes)
                .ok()
                .and_then(|e| e.error)
                .map(|e| e.detail.unwrap_or(e.title))
                .unwrap_or_else(|| {
                    status
                        .canonical_reason()
                        .unwrap_or("no detail given")
                        .to_owned()
                });
            return Err(ApiError::Status {
                status: status.as_u16(),
                detail,
            });
        }
        let env: Envelope<T> = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Invalid(format!("{e} (is this an ai-review server?)")))?;
        env.data
            .ok_or_else(|| ApiError::Invalid("the answer has no data".into()))
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body))
            .await
    }
}

/// The transport error without the request URL reqwest appends (the base
/// URL is reported separately).
fn without_url(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        if e.is_timeout() {
            "timed out".to_owned()
        } else {
            "connection failed".to_owned()
        }
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_detail_and_what_to_do() {
        let e = ApiError::Status {
            status: 401,
            detail: "invalid or expired API key".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("invalid or expired API key") && s.contains("--token"),
            "{s}"
        );
        assert!(e.is_refusal());
        let e = ApiError::Status {
            status: 403,
            detail: "missing permission review:create".into(),
        };
        assert!(e.to_string().contains("review:create"));
        let e = ApiError::Status {
            status: 503,
            detail: "down".into(),
        };
        assert!(!e.is_refusal());
        let e = ApiError::Unreachable {
            server: "http://127.0.0.1:1".into(),
            error: "connection refused".into(),
        };
        assert!(e.to_string().contains("AI_REVIEW_SERVER"));
        assert!(!e.is_refusal());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let api = Api::new("http://127.0.0.1:1/", "air_secret_token").expect("client");
        assert_eq!(api.base(), "http://127.0.0.1:1");
        assert!(!format!("{api:?}").contains("air_secret_token"));
    }
}
