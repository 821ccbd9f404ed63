//! Bodies of the projects API (`/api/projects…`) and the global settings
//! (`/api/settings/global`).
//!
//! A project's settings override the global ones field by field; `null`
//! means "inherit the global value".

use crate::configs::double_option;
use ai_review_domain::{ConfigId, PlatformType, ProjectId, Timestamp, WebhookStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Per-project overrides; `None` inherits the global value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSettings {
    /// Review every webhook event (manual `/ai-review` commands always work).
    #[serde(default)]
    pub auto_review: Option<bool>,
    /// Exclude globs.
    #[serde(default)]
    pub excludes: Option<Vec<String>>,
    /// AI config to review with.
    #[serde(default)]
    pub ai_config_id: Option<ConfigId>,
    /// Reviewers added to new merge/pull requests (GitLab user ids, GitHub
    /// logins).
    #[serde(default)]
    pub default_reviewer_ids: Option<Vec<String>>,
    /// Assign new merge/pull requests to their author.
    #[serde(default)]
    pub auto_assign_author: Option<bool>,
}

/// The global defaults every project inherits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalSettings {
    /// Review every webhook event (default `true`).
    #[serde(default = "yes")]
    pub auto_review: bool,
    /// Exclude globs (default none).
    #[serde(default)]
    pub excludes: Vec<String>,
    /// AI config; `null` uses the default AI config.
    #[serde(default)]
    pub ai_config_id: Option<ConfigId>,
    /// Reviewers added to new merge/pull requests.
    #[serde(default)]
    pub default_reviewer_ids: Vec<String>,
    /// Assign new merge/pull requests to their author (default `false`).
    #[serde(default)]
    pub auto_assign_author: bool,
    /// Review draft merge/pull requests on webhook events (default `false`;
    /// a `/ai-review` command reviews drafts anyway).
    #[serde(default)]
    pub review_drafts: bool,
}

fn yes() -> bool {
    true
}

impl Default for GlobalSettings {
    fn default() -> Self {
        Self {
            auto_review: true,
            excludes: Vec::new(),
            ai_config_id: None,
            default_reviewer_ids: Vec::new(),
            auto_assign_author: false,
            review_drafts: false,
        }
    }
}

/// A project as answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    /// Id.
    pub id: ProjectId,
    /// Platform config it was synced through.
    pub platform_config_id: ConfigId,
    /// `gitlab` or `github`.
    pub platform_type: PlatformType,
    /// The forge's id.
    pub external_id: String,
    /// `group/name` or `owner/name`.
    pub path: String,
    /// Name.
    pub name: String,
    /// Web page.
    pub web_url: String,
    /// Clone URL.
    pub clone_url: String,
    /// Default branch.
    pub default_branch: Option<String>,
    /// Reviews run only for enabled projects.
    pub enabled: bool,
    /// Overrides (`null` fields inherit).
    pub settings: ProjectSettings,
    /// Last known webhook state.
    pub webhook_status: WebhookStatus,
    /// First sync.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Last sync that saw it.
    pub synced_at: Timestamp,
}

/// `PATCH /api/projects/:id`: absent fields keep their value, `null`
/// inherits the global one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectUpdate {
    /// Enable or disable reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Auto-review override.
    #[schemars(with = "Option<bool>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub auto_review: Option<Option<bool>>,
    /// Exclude globs override.
    #[schemars(with = "Option<Vec<String>>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub excludes: Option<Option<Vec<String>>>,
    /// AI config override.
    #[schemars(with = "Option<ConfigId>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub ai_config_id: Option<Option<ConfigId>>,
    /// Default reviewers override.
    #[schemars(with = "Option<Vec<String>>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub default_reviewer_ids: Option<Option<Vec<String>>>,
    /// Author auto-assignment override.
    #[schemars(with = "Option<bool>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub auto_assign_author: Option<Option<bool>>,
}

/// Where a resolved value came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The project's override.
    Project,
    /// The global settings.
    Global,
}

/// `GET /api/projects/:id/config`: the settings in effect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedProjectConfig {
    /// The project.
    pub project_id: ProjectId,
    /// Reviews run at all.
    pub enabled: bool,
    /// Auto-review in effect.
    pub auto_review: bool,
    /// Excludes in effect.
    pub excludes: Vec<String>,
    /// AI config in effect (`null`: the default AI config).
    pub ai_config_id: Option<ConfigId>,
    /// Reviewers in effect.
    pub default_reviewer_ids: Vec<String>,
    /// Author auto-assignment in effect.
    pub auto_assign_author: bool,
    /// Drafts reviewed on webhook events (global only).
    pub review_drafts: bool,
    /// Where each overridable value came from, by field name.
    pub sources: std::collections::BTreeMap<String, Source>,
}

/// `GET /api/projects/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatsView {
    /// All projects.
    pub total: u64,
    /// Enabled.
    pub enabled: u64,
    /// Disabled.
    pub disabled: u64,
    /// Per platform type.
    pub by_platform: std::collections::BTreeMap<String, u64>,
    /// Per webhook status.
    pub by_webhook_status: std::collections::BTreeMap<String, u64>,
}

/// `POST /api/projects/sync/platform`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// The platform config whose projects to pull.
    pub platform_config_id: ConfigId,
}

/// Answer of a sync.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// Projects inserted or refreshed.
    pub synced: u64,
    /// Projects the forge listed.
    pub total: u64,
    /// Problems, one line each (nothing is silently skipped).
    pub errors: Vec<String>,
}
