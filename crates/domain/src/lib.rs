//! Domain types shared by every ai-review component.
//!
//! Values arrive here as untrusted strings (HTTP headers, JSON, CLI flags,
//! database rows) and leave as types that cannot hold an invalid value:
//! a [`CommitSha`] is always 40 or 64 lowercase hex digits, a [`RunnerId`]
//! is always a safe identifier, an [`ApiKeySecret`] never prints itself.
//! Everything else in the workspace takes these types, so validation happens
//! exactly once, at the edge.

mod auth;
mod ids;
mod secret;
mod state;
mod time;
mod values;

pub use auth::{API_KEY_PREFIX, ApiKeyDigest, ApiKeySecret, Permission, Role, SessionSecret};
pub use ids::{
    ApiKeyId, ConfigId, NotificationId, ProjectId, PushSubscriptionId, ReviewId, RunnerId, TaskId,
    UserId,
};
pub use secret::SecretString;
pub use state::{
    ConfigKind, LlmProvider, NotificationChannel, NotificationEvent, NotificationStatus, Phase,
    PlatformAuthType, PlatformType, ReviewStatus, RunnerStatus, TaskOutcome, TaskState,
    WebhookStatus,
};
pub use time::Timestamp;
pub use values::{Attempt, CommitSha, Email, RepoUrl, Tag, TagSet};

/// A value failed validation. The message says what was wrong and what a
/// valid value looks like, so it can be shown to the user as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseError {
    /// The kind of value, e.g. `commit SHA`.
    pub what: &'static str,
    /// Why it was rejected and what is expected instead.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}
