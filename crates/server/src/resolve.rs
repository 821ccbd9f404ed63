//! What a new review runs with: the AI config, template and rules resolved
//! at enqueue time and frozen into the task's spec, so a review is
//! reproducible even if an admin edits the configuration while it waits.
//!
//! The AI config's key stays sealed inside the stored spec
//! ([`SEALED_KEY_FIELD`]); it is opened only when a runner claims the task
//! ([`open_spec`]), and travels to the runner's model gateway, never into
//! the review container.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::configs::{StoredAiConfig, StoredRule, StoredTemplate, body};
use crate::secrets::SecretBox;
use ai_review_domain::{ConfigId, ConfigKind};
use ai_review_protocol::runner::{AiConfigSpec, RuleSpec, TaskSpec, TemplateSpec};
use ai_review_store::StoreError;

/// Field of the stored spec holding the sealed API key.
pub const SEALED_KEY_FIELD: &str = "aiConfigSealedKey";
/// Field of the stored spec holding the sealed clone password.
pub const SEALED_CLONE_FIELD: &str = "cloneSealedPassword";

/// A review's resolved configuration.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The AI config (no key) and its sealed key.
    pub ai: Option<(AiConfigSpec, Option<String>)>,
    /// The template.
    pub template: Option<TemplateSpec>,
    /// Enabled rules.
    pub rules: Vec<RuleSpec>,
}

/// Resolves the AI config (`ai_config_id`, else the default), the template
/// (`template_id`, else the default) and the enabled rules.
pub async fn resolve(
    state: &AppState,
    ai_config_id: Option<&ConfigId>,
    template_id: Option<&ConfigId>,
) -> ApiResult<Resolved> {
    let store = &state.store;
    let ai_item = match ai_config_id {
        Some(id) => Some(
            store
                .get_config_item(ConfigKind::AiConfig, id)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "aiConfigId {id} does not exist; list them with GET /api/ai-configs"
                    ))
                })?,
        ),
        None => store.default_config_item(ConfigKind::AiConfig).await?,
    };
    let ai = match ai_item {
        None => None,
        Some(item) => {
            let b: StoredAiConfig = body(&item)?;
            if !b.enabled {
                if ai_config_id.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "AI config {:?} is disabled; enable it or pick another",
                        item.name
                    )));
                }
                tracing::warn!(config.id = %item.id, "the default AI config is disabled: reviewing with deterministic checks only");
                None
            } else {
                if let Some(sealed) = &b.api_key_sealed {
                    // Refuse now rather than hand a runner a task whose key
                    // cannot be opened.
                    state
                        .settings
                        .secrets
                        .open(sealed)
                        .map_err(|e| ApiError::conflict(e.to_string()))?;
                }
                Some((
                    AiConfigSpec {
                        id: item.id.to_string(),
                        name: item.name.clone(),
                        provider: b.provider,
                        base_url: b.base_url,
                        model: b.model,
                        api_key: None,
                        temperature: b.temperature,
                        max_output_tokens: b.max_output_tokens,
                        max_input_tokens_per_call: b.max_input_tokens_per_call,
                        timeout_ms: b.timeout_ms,
                        token_budget: b.token_budget,
                        input_cost_per_mtok: b.input_cost_per_mtok,
                        output_cost_per_mtok: b.output_cost_per_mtok,
                    },
                    b.api_key_sealed,
                ))
            }
        }
    };
    let template_item = match template_id {
        Some(id) => Some(
            store
                .get_config_item(ConfigKind::ReviewTemplate, id)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "templateId {id} does not exist; list them with GET /api/review-templates"
                    ))
                })?,
        ),
        None => {
            store
                .default_config_item(ConfigKind::ReviewTemplate)
                .await?
        }
    };
    let template = match template_item {
        Some(item) => {
            let b: StoredTemplate = body(&item)?;
            Some(TemplateSpec {
                id: item.id.to_string(),
                content: b.content,
            })
        }
        None => None,
    };
    let mut rules = Vec::new();
    for item in store.list_config_items(ConfigKind::ReviewRule).await? {
        let b: StoredRule = body(&item)?;
        if b.enabled {
            rules.push(RuleSpec {
                id: item.id.to_string(),
                name: item.name,
                paths: b.paths,
                instructions: b.instructions,
            });
        }
    }
    Ok(Resolved {
        ai,
        template,
        rules,
    })
}

/// The JSON stored as a task's spec: the spec plus the sealed model key,
/// with the clone password (if any) sealed in place of its clear value.
pub fn stored_spec(
    spec: &TaskSpec,
    sealed_key: Option<&str>,
    secrets: &SecretBox,
) -> ApiResult<serde_json::Value> {
    let mut spec = spec.clone();
    let clone_sealed = spec
        .clone_credentials
        .as_mut()
        .and_then(|c| c.password.take())
        .map(|p| secrets.seal(p.expose()));
    let mut v = serde_json::to_value(&spec).map_err(|e| ApiError::internal(&e))?;
    if let Some(obj) = v.as_object_mut() {
        if let Some(k) = sealed_key {
            obj.insert(SEALED_KEY_FIELD.into(), k.into());
        }
        if let Some(c) = clone_sealed {
            obj.insert(SEALED_CLONE_FIELD.into(), c.into());
        }
    }
    Ok(v)
}

/// The spec a runner receives: the stored one with the key opened.
pub fn open_spec(
    mut stored: serde_json::Value,
    secrets: &SecretBox,
) -> Result<TaskSpec, StoreError> {
    let sealed = stored
        .as_object_mut()
        .and_then(|o| o.remove(SEALED_KEY_FIELD));
    let sealed_clone = stored
        .as_object_mut()
        .and_then(|o| o.remove(SEALED_CLONE_FIELD));
    let mut spec: TaskSpec = serde_json::from_value(stored)
        .map_err(|e| StoreError::Corrupt(format!("task spec: {e}")))?;
    if let (Some(sealed), Some(ai)) = (
        sealed.as_ref().and_then(|s| s.as_str()),
        &mut spec.ai_config,
    ) {
        match secrets.open(sealed) {
            Ok(key) => ai.api_key = Some(key),
            // The task still runs: the gateway's calls fail with the
            // provider's 401 and the review says the AI review failed.
            Err(e) => tracing::error!(error = %e, "cannot open a task's model API key"),
        }
    }
    if let (Some(sealed), Some(c)) = (
        sealed_clone.as_ref().and_then(|s| s.as_str()),
        &mut spec.clone_credentials,
    ) {
        match secrets.open(sealed) {
            Ok(p) => c.password = Some(p),
            // The clone then fails with the forge's 401, which the task's
            // failure reason shows.
            Err(e) => tracing::error!(error = %e, "cannot open a task's clone credentials"),
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretKey;
    use ai_review_domain::{CommitSha, RepoUrl, ReviewId, SecretString};
    use ai_review_protocol::runner::CloneCredentials;

    #[test]
    fn clone_passwords_are_sealed_in_the_stored_spec_and_opened_for_the_runner() {
        let secrets = SecretBox::new(&SecretKey::generate(), &[]);
        let spec = TaskSpec {
            review_id: ReviewId::generate(),
            repo_url: RepoUrl::parse("https://gitlab.example.com/g/p.git").expect("url"),
            branch: None,
            base_sha: CommitSha::parse(&"a".repeat(40)).expect("sha"),
            head_sha: CommitSha::parse(&"b".repeat(40)).expect("sha"),
            title: None,
            file_changes: Vec::new(),
            ai_config: None,
            template: None,
            rules: Vec::new(),
            excludes: Vec::new(),
            since_sha: None,
            clone_credentials: Some(CloneCredentials {
                username: "oauth2".into(),
                password: Some(SecretString::new("glpat-secret-token")),
            }),
            request_id: None,
        };
        let stored = stored_spec(&spec, None, &secrets).expect("stored");
        assert!(!stored.to_string().contains("glpat-secret-token"));
        assert!(stored[SEALED_CLONE_FIELD].is_string());
        let opened = open_spec(stored, &secrets).expect("open");
        assert_eq!(opened, spec);
    }
}
