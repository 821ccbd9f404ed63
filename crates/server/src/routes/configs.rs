//! AI configs, review templates and review rules: the configuration API
//! (`/api/ai-configs`, `/api/review-templates`, `/api/review-rules`) and the
//! typed bodies stored for them as configuration items.
//!
//! An AI config's API key is sealed with the server key before it is
//! stored ([`crate::secrets`]) and never answered: responses show `***`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use ai_review_domain::{ConfigId, ConfigKind, LlmProvider, Permission, Timestamp};
use ai_review_protocol::Envelope;
use ai_review_protocol::configs::{
    AiConfigView, AiConfigWrite, MASK, RuleView, RuleWrite, TEMPLATE_VARIABLES, TemplateView,
    TemplateWrite, ai_defaults,
};
use ai_review_store::{ConfigItem, ConfigItemWrite, StoreError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The stored body of an AI config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredAiConfig {
    /// Wire protocol.
    pub provider: LlmProvider,
    /// Base URL.
    pub base_url: String,
    /// Model.
    pub model: String,
    /// The key, sealed with the server key.
    pub api_key_sealed: Option<String>,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Answer cap.
    pub max_output_tokens: u32,
    /// Prompt cap per call.
    pub max_input_tokens_per_call: u32,
    /// Per-call timeout.
    pub timeout_ms: u64,
    /// Per-review budget.
    pub token_budget: u64,
    /// Prompt price.
    pub input_cost_per_mtok: Option<f64>,
    /// Answer price.
    pub output_cost_per_mtok: Option<f64>,
    /// Usable for new reviews.
    pub enabled: bool,
}

/// The stored body of a review template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredTemplate {
    /// Prompt text.
    pub content: String,
}

/// The stored body of a review rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredRule {
    /// Path globs.
    pub paths: Vec<String>,
    /// Instructions.
    pub instructions: String,
    /// Sent with new reviews.
    pub enabled: bool,
}

/// Decodes a stored body; a body that no longer parses is corrupt data.
pub fn body<T: for<'de> Deserialize<'de>>(item: &ConfigItem) -> ApiResult<T> {
    serde_json::from_value(item.body.clone()).map_err(|e| {
        ApiError::from(StoreError::Corrupt(format!(
            "{} {} body: {e}",
            item.kind, item.id
        )))
    })
}

pub(crate) fn encode<T: Serialize>(v: &T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(&e))
}

pub(crate) fn what(kind: ConfigKind) -> &'static str {
    match kind {
        ConfigKind::AiConfig => "AI config",
        ConfigKind::ReviewTemplate => "review template",
        ConfigKind::ReviewRule => "review rule",
        ConfigKind::GitlabPlatform | ConfigKind::GithubPlatform => "platform config",
        ConfigKind::GlobalSettings => "global settings",
        ConfigKind::NotificationConfig => "notification settings",
    }
}

pub(crate) fn check_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must be 1-100 characters without control characters",
        ));
    }
    Ok(n.to_owned())
}

pub(crate) fn parse_id(id: &str) -> ApiResult<ConfigId> {
    Ok(ConfigId::parse(id)?)
}

async fn load(state: &AppState, kind: ConfigKind, id: &str) -> ApiResult<ConfigItem> {
    let id = parse_id(id)?;
    state
        .store
        .get_config_item(kind, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} {id} not found", what(kind))))
}

pub(crate) async fn save(
    state: &AppState,
    write: ConfigItemWrite,
    create: bool,
) -> ApiResult<ConfigItem> {
    let (kind, name) = (write.kind, write.name.clone());
    let out = if create {
        state.store.create_config_item(write).await
    } else {
        state.store.update_config_item(write).await
    };
    out.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::conflict(format!(
            "a {} named {name:?} already exists; pick another name",
            what(kind)
        )),
        e => e.into(),
    })
}

// ----- AI configs -----------------------------------------------------------

fn check_base_url(s: &str) -> ApiResult<String> {
    let u = url::Url::parse(s.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "baseUrl {s:?} is not a URL ({e}); e.g. https://api.openai.com/v1 or http://localhost:11434/v1"
        ))
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(ApiError::bad_request(
            "baseUrl must be an http:// or https:// URL with a host",
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ApiError::bad_request(
            "baseUrl must not contain credentials; put the key in apiKey",
        ));
    }
    if u.fragment().is_some() {
        return Err(ApiError::bad_request("baseUrl must not have a #fragment"));
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(name: &str, v: T, lo: T, hi: T) -> ApiResult<T> {
    if v < lo || v > hi {
        return Err(ApiError::bad_request(format!(
            "{name} must be between {lo} and {hi} (got {v})"
        )));
    }
    Ok(v)
}

fn price(name: &str, v: Option<f64>) -> ApiResult<Option<f64>> {
    match v {
        Some(p) if !p.is_finite() || !(0.0..=10_000.0).contains(&p) => Err(ApiError::bad_request(
            format!("{name} must be a price in US dollars per million tokens, 0 to 10000"),
        )),
        v => Ok(v),
    }
}

/// Applies a write on top of the stored values (or the defaults), checking
/// every field. Returns the new body, name and default flag.
fn merge_ai(
    state: &AppState,
    current: Option<(&str, bool, &StoredAiConfig)>,
    w: AiConfigWrite,
) -> ApiResult<(String, bool, StoredAiConfig)> {
    let name = match (w.name, current) {
        (Some(n), _) => check_name(&n)?,
        (None, Some((n, _, _))) => n.to_owned(),
        (None, None) => return Err(ApiError::bad_request("name is required")),
    };
    let required = |field: &str| ApiError::bad_request(format!("{field} is required"));
    let provider = w
        .provider
        .or(current.map(|c| c.2.provider))
        .ok_or_else(|| required("provider (openai or anthropic)"))?;
    let base_url = match (w.base_url, current) {
        (Some(u), _) => check_base_url(&u)?,
        (None, Some(c)) => c.2.base_url.clone(),
        (None, None) => return Err(required("baseUrl")),
    };
    let model = match (w.model, current) {
        (Some(m), _) => {
            let m = m.trim().to_owned();
            if m.is_empty() || m.len() > 200 || m.chars().any(char::is_control) {
                return Err(ApiError::bad_request("model must be 1-200 characters"));
            }
            m
        }
        (None, Some(c)) => c.2.model.clone(),
        (None, None) => return Err(required("model")),
    };
    let api_key_sealed = match w.api_key {
        None => current.and_then(|c| c.2.api_key_sealed.clone()),
        Some(Some(k)) if k == MASK => current.and_then(|c| c.2.api_key_sealed.clone()),
        Some(None) => None,
        Some(Some(k)) if k.is_empty() => None,
        Some(Some(k)) => {
            if k.len() > 4096 || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ApiError::bad_request(
                    "apiKey must be at most 4096 characters without spaces or control characters",
                ));
            }
            Some(state.settings.secrets.seal(&k))
        }
    };
    let temperature = match w.temperature {
        Some(t) => t,
        None => current.and_then(|c| c.2.temperature),
    };
    if let Some(t) = temperature
        && (!t.is_finite() || !(0.0..=2.0).contains(&t))
    {
        return Err(ApiError::bad_request("temperature must be between 0 and 2"));
    }
    let pick_u32 = |v: Option<u32>, cur: Option<u32>, def| v.or(cur).unwrap_or(def);
    let pick_u64 = |v: Option<u64>, cur: Option<u64>, def| v.or(cur).unwrap_or(def);
    let max_output_tokens = range(
        "maxOutputTokens",
        pick_u32(
            w.max_output_tokens,
            current.map(|c| c.2.max_output_tokens),
            ai_defaults::MAX_OUTPUT_TOKENS,
        ),
        1,
        200_000,
    )?;
    let max_input_tokens_per_call = range(
        "maxInputTokensPerCall",
        pick_u32(
            w.max_input_tokens_per_call,
            current.map(|c| c.2.max_input_tokens_per_call),
            ai_defaults::MAX_INPUT_TOKENS_PER_CALL,
        ),
        256,
        2_000_000,
    )?;
    let timeout_ms = range(
        "timeoutMs",
        pick_u64(
            w.timeout_ms,
            current.map(|c| c.2.timeout_ms),
            ai_defaults::TIMEOUT_MS,
        ),
        1_000,
        900_000,
    )?;
    let token_budget = range(
        "tokenBudget",
        pick_u64(
            w.token_budget,
            current.map(|c| c.2.token_budget),
            ai_defaults::TOKEN_BUDGET,
        ),
        1_000,
        100_000_000,
    )?;
    if token_budget < u64::from(max_output_tokens) {
        return Err(ApiError::bad_request(format!(
            "tokenBudget ({token_budget}) must be at least maxOutputTokens ({max_output_tokens}): one answer must fit the budget"
        )));
    }
    let input_cost_per_mtok = price(
        "inputCostPerMtok",
        match w.input_cost_per_mtok {
            Some(v) => v,
            None => current.and_then(|c| c.2.input_cost_per_mtok),
        },
    )?;
    let output_cost_per_mtok = price(
        "outputCostPerMtok",
        match w.output_cost_per_mtok {
            Some(v) => v,
            None => current.and_then(|c| c.2.output_cost_per_mtok),
        },
    )?;
    let enabled = w.enabled.or(current.map(|c| c.2.enabled)).unwrap_or(true);
    let is_default = w.is_default.or(current.map(|c| c.1)).unwrap_or(false);
    Ok((
        name,
        is_default,
        StoredAiConfig {
            provider,
            base_url,
            model,
            api_key_sealed,
            temperature,
            max_output_tokens,
            max_input_tokens_per_call,
            timeout_ms,
            token_budget,
            input_cost_per_mtok,
            output_cost_per_mtok,
            enabled,
        },
    ))
}

/// An AI config as answered.
pub fn ai_view(item: &ConfigItem) -> ApiResult<AiConfigView> {
    let b: StoredAiConfig = body(item)?;
    Ok(AiConfigView {
        id: item.id.clone(),
        name: item.name.clone(),
        provider: b.provider,
        base_url: b.base_url,
        model: b.model,
        api_key: b.api_key_sealed.map(|_| MASK.to_owned()),
        temperature: b.temperature,
        max_output_tokens: b.max_output_tokens,
        max_input_tokens_per_call: b.max_input_tokens_per_call,
        timeout_ms: b.timeout_ms,
        token_budget: b.token_budget,
        input_cost_per_mtok: b.input_cost_per_mtok,
        output_cost_per_mtok: b.output_cost_per_mtok,
        is_default: item.is_default,
        enabled: b.enabled,
        created_at: item.created_at,
        updated_at: item.updated_at,
    })
}

/// Saves the one document of a singleton kind (global settings,
/// notification settings) under its fixed `id`: created the first time,
/// updated after; when two first saves race, the loser updates.
pub(crate) async fn save_singleton(
    state: &AppState,
    kind: ConfigKind,
    id: ConfigId,
    name: &str,
    body: serde_json::Value,
) -> ApiResult<ConfigItem> {
    let now = state.clock.now();
    let exists = state.store.get_config_item(kind, &id).await?.is_some();
    let item = write_item(kind, id, name.to_owned(), false, body, now);
    match save(state, item.clone(), !exists).await {
        Err(e) if !exists && e.status == axum::http::StatusCode::CONFLICT => {
            save(state, item, false).await
        }
        other => other,
    }
}

pub(crate) fn write_item(
    kind: ConfigKind,
    id: ConfigId,
    name: String,
    is_default: bool,
    body: serde_json::Value,
    now: Timestamp,
) -> ConfigItemWrite {
    ConfigItemWrite {
        kind,
        id,
        name,
        is_default,
        body,
        now,
    }
}

/// `GET /api/ai-configs`.
pub async fn list_ai(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<AiConfigView>>>> {
    let items = state.store.list_config_items(ConfigKind::AiConfig).await?;
    let views = items.iter().map(ai_view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Envelope::ok(views)))
}

/// `GET /api/ai-configs/:id`.
pub async fn get_ai(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<AiConfigView>>> {
    let item = load(&state, ConfigKind::AiConfig, &id).await?;
    Ok(Json(Envelope::ok(ai_view(&item)?)))
}

/// `POST /api/ai-configs` (`config:create`).
pub async fn create_ai(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(w): ApiJson<AiConfigWrite>,
) -> ApiResult<(StatusCode, Json<Envelope<AiConfigView>>)> {
    caller.require(Permission::ConfigCreate)?;
    let (name, is_default, b) = merge_ai(&state, None, w)?;
    let item = save(
        &state,
        write_item(
            ConfigKind::AiConfig,
            ConfigId::generate(),
            name,
            is_default,
            encode(&b)?,
            state.clock.now(),
        ),
        true,
    )
    .await?;
    tracing::info!(config.id = %item.id, user.id = %caller.user.id, "AI config created");
    Ok((StatusCode::CREATED, Json(Envelope::ok(ai_view(&item)?))))
}

/// `PATCH /api/ai-configs/:id` (`config:update`).
pub async fn update_ai(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(w): ApiJson<AiConfigWrite>,
) -> ApiResult<Json<Envelope<AiConfigView>>> {
    caller.require(Permission::ConfigUpdate)?;
    let item = load(&state, ConfigKind::AiConfig, &id).await?;
    let current: StoredAiConfig = body(&item)?;
    let (name, is_default, b) = merge_ai(&state, Some((&item.name, item.is_default, &current)), w)?;
    let item = save(
        &state,
        write_item(
            ConfigKind::AiConfig,
            item.id,
            name,
            is_default,
            encode(&b)?,
            state.clock.now(),
        ),
        false,
    )
    .await?;
    Ok(Json(Envelope::ok(ai_view(&item)?)))
}

/// `DELETE /api/<kind>/:id` (`config:delete`) for every kind.
async fn delete_kind(
    state: &AppState,
    caller: &Caller,
    kind: ConfigKind,
    id: &str,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ConfigDelete)?;
    let id = parse_id(id)?;
    state.store.delete_config_item(kind, &id).await?;
    tracing::info!(config.id = %id, config.kind = %kind, user.id = %caller.user.id, "config deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/ai-configs/:id`.
pub async fn delete_ai(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_kind(&state, &caller, ConfigKind::AiConfig, &id).await
}

// ----- templates --------------------------------------------------------------

/// Checks a template's text: length, and only known `{{variables}}`.
pub fn check_template(content: &str) -> ApiResult<String> {
    if content.trim().is_empty() || content.chars().count() > 20_000 {
        return Err(ApiError::bad_request("content must be 1-20000 characters"));
    }
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(ApiError::bad_request(
                "content has a `{{` without a closing `}}`",
            ));
        };
        let var = after[..end].trim();
        if !TEMPLATE_VARIABLES.contains(&var) {
            return Err(ApiError::bad_request(format!(
                "unknown template variable {{{{{var}}}}}; available: {}",
                TEMPLATE_VARIABLES
                    .iter()
                    .map(|v| format!("{{{{{v}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        rest = &after[end + 2..];
    }
    Ok(content.to_owned())
}

fn template_view(item: &ConfigItem) -> ApiResult<TemplateView> {
    let b: StoredTemplate = body(item)?;
    Ok(TemplateView {
        id: item.id.clone(),
        name: item.name.clone(),
        content: b.content,
        is_default: item.is_default,
        created_at: item.created_at,
        updated_at: item.updated_at,
    })
}

/// `GET /api/review-templates`.
pub async fn list_templates(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<TemplateView>>>> {
    let items = state
        .store
        .list_config_items(ConfigKind::ReviewTemplate)
        .await?;
    let views = items
        .iter()
        .map(template_view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Envelope::ok(views)))
}

/// `GET /api/review-templates/:id`.
pub async fn get_template(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<TemplateView>>> {
    let item = load(&state, ConfigKind::ReviewTemplate, &id).await?;
    Ok(Json(Envelope::ok(template_view(&item)?)))
}

/// `POST /api/review-templates` (`config:create`).
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(w): ApiJson<TemplateWrite>,
) -> ApiResult<(StatusCode, Json<Envelope<TemplateView>>)> {
    caller.require(Permission::ConfigCreate)?;
    let name = check_name(
        w.name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("name is required"))?,
    )?;
    let content = check_template(
        w.content
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("content is required"))?,
    )?;
    let item = save(
        &state,
        write_item(
            ConfigKind::ReviewTemplate,
            ConfigId::generate(),
            name,
            w.is_default.unwrap_or(false),
            encode(&StoredTemplate { content })?,
            state.clock.now(),
        ),
        true,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Envelope::ok(template_view(&item)?)),
    ))
}

/// `PATCH /api/review-templates/:id` (`config:update`).
pub async fn update_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(w): ApiJson<TemplateWrite>,
) -> ApiResult<Json<Envelope<TemplateView>>> {
    caller.require(Permission::ConfigUpdate)?;
    let item = load(&state, ConfigKind::ReviewTemplate, &id).await?;
    let current: StoredTemplate = body(&item)?;
    let name = match &w.name {
        Some(n) => check_name(n)?,
        None => item.name.clone(),
    };
    let content = match &w.content {
        Some(c) => check_template(c)?,
        None => current.content,
    };
    let item = save(
        &state,
        write_item(
            ConfigKind::ReviewTemplate,
            item.id,
            name,
            w.is_default.unwrap_or(item.is_default),
            encode(&StoredTemplate { content })?,
            state.clock.now(),
        ),
        false,
    )
    .await?;
    Ok(Json(Envelope::ok(template_view(&item)?)))
}

/// `DELETE /api/review-templates/:id`.
pub async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_kind(&state, &caller, ConfigKind::ReviewTemplate, &id).await
}

// ----- rules --------------------------------------------------------------------

fn check_paths(paths: Vec<String>) -> ApiResult<Vec<String>> {
    if paths.len() > 50 {
        return Err(ApiError::bad_request("a rule takes at most 50 path globs"));
    }
    paths
        .into_iter()
        .map(|p| {
            let p = p.trim().to_owned();
            if p.is_empty() || p.len() > 500 {
                return Err(ApiError::bad_request(
                    "each path glob must be 1-500 characters",
                ));
            }
            globset::Glob::new(&p).map_err(|e| {
                ApiError::bad_request(format!("path glob {p:?} is invalid: {e}; e.g. src/**/*.rs"))
            })?;
            Ok(p)
        })
        .collect()
}

fn check_instructions(s: &str) -> ApiResult<String> {
    if s.trim().is_empty() || s.chars().count() > 5_000 {
        return Err(ApiError::bad_request(
            "instructions must be 1-5000 characters",
        ));
    }
    Ok(s.to_owned())
}

fn rule_view(item: &ConfigItem) -> ApiResult<RuleView> {
    let b: StoredRule = body(item)?;
    Ok(RuleView {
        id: item.id.clone(),
        name: item.name.clone(),
        paths: b.paths,
        instructions: b.instructions,
        enabled: b.enabled,
        created_at: item.created_at,
        updated_at: item.updated_at,
    })
}

/// `GET /api/review-rules`.
pub async fn list_rules(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Envelope<Vec<RuleView>>>> {
    let items = state
        .store
        .list_config_items(ConfigKind::ReviewRule)
        .await?;
    let views = items.iter().map(rule_view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Envelope::ok(views)))
}

/// `GET /api/review-rules/:id`.
pub async fn get_rule(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Envelope<RuleView>>> {
    let item = load(&state, ConfigKind::ReviewRule, &id).await?;
    Ok(Json(Envelope::ok(rule_view(&item)?)))
}

/// `POST /api/review-rules` (`config:create`).
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(w): ApiJson<RuleWrite>,
) -> ApiResult<(StatusCode, Json<Envelope<RuleView>>)> {
    caller.require(Permission::ConfigCreate)?;
    let name = check_name(
        w.name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("name is required"))?,
    )?;
    let instructions = check_instructions(
        w.instructions
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("instructions is required"))?,
    )?;
    let b = StoredRule {
        paths: check_paths(w.paths.unwrap_or_default())?,
        instructions,
        enabled: w.enabled.unwrap_or(true),
    };
    let item = save(
        &state,
        write_item(
            ConfigKind::ReviewRule,
            ConfigId::generate(),
            name,
            false,
            encode(&b)?,
            state.clock.now(),
        ),
        true,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(Envelope::ok(rule_view(&item)?))))
}

/// `PATCH /api/review-rules/:id` (`config:update`).
pub async fn update_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(w): ApiJson<RuleWrite>,
) -> ApiResult<Json<Envelope<RuleView>>> {
    caller.require(Permission::ConfigUpdate)?;
    let item = load(&state, ConfigKind::ReviewRule, &id).await?;
    let current: StoredRule = body(&item)?;
    let name = match &w.name {
        Some(n) => check_name(n)?,
        None => item.name.clone(),
    };
    let b = StoredRule {
        paths: match w.paths {
            Some(p) => check_paths(p)?,
            None => current.paths,
        },
        instructions: match &w.instructions {
            Some(i) => check_instructions(i)?,
            None => current.instructions,
        },
        enabled: w.enabled.unwrap_or(current.enabled),
    };
    let item = save(
        &state,
        write_item(
            ConfigKind::ReviewRule,
            item.id,
            name,
            false,
            encode(&b)?,
            state.clock.now(),
        ),
        false,
    )
    .await?;
    Ok(Json(Envelope::ok(rule_view(&item)?)))
}

/// `DELETE /api/review-rules/:id`.
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_kind(&state, &caller, ConfigKind::ReviewRule, &id).await
}
