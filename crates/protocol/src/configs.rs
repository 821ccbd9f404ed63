//! Bodies of the configuration API: AI configs (`/api/ai-configs`), review
//! templates (`/api/review-templates`) and review rules
//! (`/api/review-rules`).
//!
//! Reading needs any signed-in caller; creating needs `config:create`,
//! changing `config:update`, deleting `config:delete`. An AI config's API
//! key is write-only: every answer shows `***` when one is set (`null`
//! otherwise), and sending `***` back in a `PATCH` keeps the stored key.

use ai_review_domain::{ConfigId, LlmProvider, PlatformAuthType, PlatformType, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What every answer shows in place of a stored secret.
pub const MASK: &str = "***";

/// Defaults of an AI config's optional fields.
pub mod ai_defaults {
    /// `maxOutputTokens`.
    pub const MAX_OUTPUT_TOKENS: u32 = 4_096;
    /// `maxInputTokensPerCall`.
    pub const MAX_INPUT_TOKENS_PER_CALL: u32 = 24_000;
    /// `timeoutMs`.
    pub const TIMEOUT_MS: u64 = 120_000;
    /// `tokenBudget`.
    pub const TOKEN_BUDGET: u64 = 200_000;
}

/// An AI config as answered (the key masked).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiConfigView {
    /// Id.
    pub id: ConfigId,
    /// Unique name.
    pub name: String,
    /// `openai` (any OpenAI-compatible Chat Completions endpoint) or
    /// `anthropic`.
    pub provider: LlmProvider,
    /// Base URL; the runner appends `/chat/completions` or `/messages`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// `***` when a key is stored, else `null`.
    pub api_key: Option<String>,
    /// Sampling temperature (provider default when `null`).
    pub temperature: Option<f32>,
    /// Most tokens one answer may have.
    pub max_output_tokens: u32,
    /// Most prompt tokens one call may carry.
    pub max_input_tokens_per_call: u32,
    /// Timeout of one model call.
    pub timeout_ms: u64,
    /// Tokens (input + output, all calls) one review may use.
    pub token_budget: u64,
    /// US dollars per million prompt tokens, for cost estimates.
    pub input_cost_per_mtok: Option<f64>,
    /// US dollars per million generated tokens.
    pub output_cost_per_mtok: Option<f64>,
    /// Used when a review names no AI config.
    pub is_default: bool,
    /// Disabled configs cannot be used for new reviews.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// `POST /api/ai-configs`, and `PATCH /api/ai-configs/:id` (every field
/// optional there; absent fields keep their value, `null` clears optional
/// ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiConfigWrite {
    /// Unique name (1-100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `openai` or `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<LlmProvider>,
    /// `http(s)://` base URL without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The key (write-only). `***` keeps the stored one, `null` or `""`
    /// removes it (local servers such as Ollama need none).
    #[schemars(with = "Option<String>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub api_key: Option<Option<String>>,
    /// 0 to 2; `null` for the provider's default.
    #[schemars(with = "Option<f32>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub temperature: Option<Option<f32>>,
    /// 1 to 200,000 (default 4,096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// 256 to 2,000,000 (default 24,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens_per_call: Option<u32>,
    /// 1,000 to 900,000 ms (default 120,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// 1,000 to 100,000,000 tokens (default 200,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// US dollars per million prompt tokens.
    #[schemars(with = "Option<f64>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub input_cost_per_mtok: Option<Option<f64>>,
    /// US dollars per million generated tokens.
    #[schemars(with = "Option<f64>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub output_cost_per_mtok: Option<Option<f64>>,
    /// Make it the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    /// Enabled (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A review template as answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    /// Id.
    pub id: ConfigId,
    /// Unique name.
    pub name: String,
    /// Prompt text with `{{variables}}` (see [`TEMPLATE_VARIABLES`]).
    pub content: String,
    /// Used when a review names no template.
    pub is_default: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Variables a template may use.
pub const TEMPLATE_VARIABLES: &[&str] = &[
    "title",
    "branch",
    "repository",
    "language",
    "rules",
    "instructions",
];

/// `POST /api/review-templates`, `PATCH /api/review-templates/:id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateWrite {
    /// Unique name (1-100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Prompt text (1-20,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Make it the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
}

/// A review rule as answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    /// Id; reviews list the rules they applied in `appliedRuleIds`.
    pub id: ConfigId,
    /// Unique name.
    pub name: String,
    /// Path globs it applies to (empty: every path).
    pub paths: Vec<String>,
    /// What the reviewer must check.
    pub instructions: String,
    /// Disabled rules are not sent with new reviews.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// `POST /api/review-rules`, `PATCH /api/review-rules/:id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleWrite {
    /// Unique name (1-100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path globs, e.g. `src/**/*.rs` (at most 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Instructions (1-5,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Enabled (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A platform config (a GitLab or GitHub connection) as answered: every
/// secret masked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformConfigView {
    /// Id.
    pub id: ConfigId,
    /// Unique name.
    pub name: String,
    /// `gitlab` or `github`.
    pub platform_type: PlatformType,
    /// Base URL of the forge (self-hosted instances), e.g.
    /// `https://gitlab.example.com` or `https://github.example.com/api/v3`.
    pub base_url: String,
    /// `token` or `oauth`.
    pub auth_type: PlatformAuthType,
    /// `***` when set, else `null`.
    pub access_token: Option<String>,
    /// OAuth application id (not secret).
    pub app_id: Option<String>,
    /// `***` when set, else `null`.
    pub app_secret: Option<String>,
    /// `***` when set, else `null`.
    pub webhook_secret: Option<String>,
    /// Disabled configs accept no webhooks and sync nothing.
    pub enabled: bool,
    /// The default config of its platform type.
    pub is_default: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// `POST /api/platform-configs` and `PATCH`/`PUT /api/platform-configs/:id`
/// (absent fields keep their value; for secrets `***` keeps and `null` or
/// `""` removes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformConfigWrite {
    /// Unique name (1-100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `gitlab` or `github` (fixed after creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_type: Option<PlatformType>,
    /// `http(s)://` base URL without credentials; default `https://gitlab.com`
    /// or `https://api.github.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `token` (default) or `oauth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<PlatformAuthType>,
    /// Access token (write-only).
    #[schemars(with = "Option<String>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub access_token: Option<Option<String>>,
    /// OAuth application id.
    #[schemars(with = "Option<String>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub app_id: Option<Option<String>>,
    /// OAuth application secret (write-only).
    #[schemars(with = "Option<String>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub app_secret: Option<Option<String>>,
    /// Webhook secret (write-only): GitLab's `X-Gitlab-Token`, GitHub's
    /// HMAC key for `X-Hub-Signature-256`.
    #[schemars(with = "Option<String>")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub webhook_secret: Option<Option<String>>,
    /// Enabled (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Make it the default of its platform type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
}

/// `GET /api/platform-configs/:id/token` (admins only): the decrypted
/// access token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformTokenView {
    /// The config.
    pub id: ConfigId,
    /// The token in clear, or `null` when none is stored.
    pub access_token: Option<String>,
}

/// `Option<Option<T>>` where an absent field is `None` and `null` is
/// `Some(None)`.
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_value_are_distinguished() {
        let w: AiConfigWrite = serde_json::from_str(r#"{"temperature":null}"#).expect("json");
        assert_eq!(w.temperature, Some(None));
        assert_eq!(w.api_key, None);
        let w: AiConfigWrite = serde_json::from_str(r#"{"apiKey":"k"}"#).expect("json");
        assert_eq!(w.api_key, Some(Some("k".into())));
        assert!(serde_json::from_str::<AiConfigWrite>(r#"{"apikey":"k"}"#).is_err());
    }
}
