//! Why a forge call failed, and whether trying again can help.

use std::time::Duration;

/// A forge call failed. Every variant's message says what happened and,
/// where the user can act, what to do; none ever contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// 401: the forge does not accept the token.
    #[error(
        "the token was refused; check the platform config's access token (forge said: {message})"
    )]
    Unauthorized {
        /// The forge's own message.
        message: String,
    },
    /// 403: the token is valid but may not do this (missing scope or role,
    /// protected resource).
    #[error(
        "the token may not do this; give it the missing scope or project role (forge said: {message})"
    )]
    Forbidden {
        /// The forge's own message.
        message: String,
    },
    /// 404: the project, change, comment or commit does not exist, or the
    /// token cannot see it (both forges answer 404 for private resources).
    #[error("not found, or not visible to the token (forge said: {message})")]
    NotFound {
        /// The forge's own message.
        message: String,
    },
    /// 400, 409 or 422: the forge refused the request itself, e.g. an
    /// inline comment on a line that is not part of the diff.
    #[error("the forge refused the request ({status}): {message}")]
    Unprocessable {
        /// HTTP status.
        status: u16,
        /// The forge's own message, with its field errors.
        message: String,
    },
    /// 429, a GitHub primary rate limit (`x-ratelimit-remaining: 0`) or a
    /// GitHub secondary rate limit (a 403 that says so).
    #[error("rate limited by the forge{}: {message}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long the forge asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// The forge's own message.
        message: String,
    },
    /// 5xx: the forge failed.
    #[error("the forge failed ({status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The forge's own message, if any.
        message: String,
    },
    /// The forge could not be reached, or the connection broke or timed out.
    #[error("cannot reach the forge: {0}")]
    Transport(String),
    /// The forge answered 2xx with something that is not what its API
    /// documents (missing field, wrong type, a pagination link to another
    /// host).
    #[error("unexpected answer from the forge: {0}")]
    Malformed(String),
    /// The forge has not finished preparing the resource (a GitLab merge
    /// request whose diff is still being computed); try again shortly.
    #[error("the forge is still preparing this: {0}")]
    NotReady(String),
    /// The caller passed something this forge cannot use (a GitHub project
    /// that is not `owner/repo`, a GitLab user id that is not a number, a
    /// base URL that is not http(s)).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ForgeError {
    /// True when the same call may succeed later without any change by the
    /// user: rate limits, forge failures, transport errors, resources still
    /// being prepared. Auth, permission, not-found and refused requests are
    /// final.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ForgeError::RateLimited { .. }
                | ForgeError::Server { .. }
                | ForgeError::Transport(_)
                | ForgeError::NotReady(_)
        )
    }

    /// The HTTP status behind the error, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Unauthorized { .. } => Some(401),
            ForgeError::Forbidden { .. } => Some(403),
            ForgeError::NotFound { .. } => Some(404),
            ForgeError::Unprocessable { status, .. } | ForgeError::Server { status, .. } => {
                Some(*status)
            }
            ForgeError::RateLimited { .. } => Some(429),
            ForgeError::Transport(_)
            | ForgeError::Malformed(_)
            | ForgeError::NotReady(_)
            | ForgeError::InvalidArgument(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let m = || "m".to_owned();
        assert!(!ForgeError::Unauthorized { message: m() }.is_retryable());
        assert!(!ForgeError::Forbidden { message: m() }.is_retryable());
        assert!(!ForgeError::NotFound { message: m() }.is_retryable());
        assert!(
            !ForgeError::Unprocessable {
                status: 422,
                message: m()
            }
            .is_retryable()
        );
        assert!(!ForgeError::Malformed(m()).is_retryable());
        assert!(!ForgeError::InvalidArgument(m()).is_retryable());
        assert!(
            ForgeError::RateLimited {
                retry_after: None,
                message: m()
            }
            .is_retryable()
        );
        assert!(
            ForgeError::Server {
                status: 502,
                message: m()
            }
            .is_retryable()
        );
        assert!(ForgeError::Transport(m()).is_retryable());
        assert!(ForgeError::NotReady(m()).is_retryable());
    }

    #[test]
    fn messages_tell_the_user_what_to_do() {
        let e = ForgeError::Unauthorized {
            message: "401 Unauthorized".into(),
        };
        assert!(
            e.to_string()
                .starts_with("the token was refused; check the platform config's access token")
        );
        let e = ForgeError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            message: "slow down".into(),
        };
        assert_eq!(
            e.to_string(),
            "rate limited by the forge (retry after 7 s): slow down"
        );
        assert_eq!(e.status(), Some(429));
        assert_eq!(ForgeError::Transport("x".into()).status(), None);
    }
}
