//! Model settings of `ai-review review` from `AI_REVIEW_LLM_*` environment
//! variables, checked before anything starts so that a typo is reported
//! with the variable's name instead of as a failed review later.

use ai_review_domain::LlmProvider;
use ai_review_protocol::configs::AiConfigWrite;

/// `openai` or `anthropic`; setting it turns the AI review on.
pub const PROVIDER: &str = "AI_REVIEW_LLM_PROVIDER";
/// Base URL (default per provider).
pub const BASE_URL: &str = "AI_REVIEW_LLM_BASE_URL";
/// Model name.
pub const MODEL: &str = "AI_REVIEW_LLM_MODEL";
/// API key (optional for local servers).
pub const API_KEY: &str = "AI_REVIEW_LLM_API_KEY";
/// Tokens one review may use.
pub const TOKEN_BUDGET: &str = "AI_REVIEW_LLM_TOKEN_BUDGET";
/// Most tokens one answer may have.
pub const MAX_OUTPUT_TOKENS: &str = "AI_REVIEW_LLM_MAX_OUTPUT_TOKENS";
/// Timeout of one model call.
pub const TIMEOUT_MS: &str = "AI_REVIEW_LLM_TIMEOUT_MS";
/// Sampling temperature.
pub const TEMPERATURE: &str = "AI_REVIEW_LLM_TEMPERATURE";

/// Every variable, in the order `--help` lists them.
pub const ALL: [&str; 8] = [
    PROVIDER,
    BASE_URL,
    MODEL,
    API_KEY,
    TOKEN_BUDGET,
    MAX_OUTPUT_TOKENS,
    TIMEOUT_MS,
    TEMPERATURE,
];

/// Every variable with its default (empty: none) and meaning, for the
/// configuration reference.
pub const DOCS: [(&str, &str, &str); 8] = [
    (
        PROVIDER,
        "",
        "`openai` (or any compatible API) or `anthropic`; unset: deterministic checks only",
    ),
    (
        BASE_URL,
        "",
        "API base URL (default: the provider's public API), e.g. http://localhost:11434/v1 for Ollama",
    ),
    (MODEL, "", "model name (required with a provider)"),
    (
        API_KEY,
        "",
        "the provider's API key; never printed or stored in clear",
    ),
    (TOKEN_BUDGET, "200000", "tokens one review may use"),
    (MAX_OUTPUT_TOKENS, "4096", "tokens per model answer"),
    (TIMEOUT_MS, "120000", "timeout of one model call"),
    (
        TEMPERATURE,
        "",
        "sampling temperature, 0 to 2 (default: the provider's)",
    ),
];

/// Name of the AI config `ai-review review` keeps in its embedded server.
pub const CONFIG_NAME: &str = "ai-review review (env)";

/// How to turn the AI review on, for the report when it was skipped.
pub const ENABLE_HINT: &str = "To enable it, set AI_REVIEW_LLM_PROVIDER (openai or anthropic), \
AI_REVIEW_LLM_MODEL and AI_REVIEW_LLM_API_KEY (AI_REVIEW_LLM_BASE_URL for a local or \
compatible server such as Ollama); see `ai-review review --help`.";

const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";

/// Validated model settings. The key is kept private and never printed
/// (`Debug` masks it).
#[derive(Clone, PartialEq)]
pub struct ModelEnv {
    /// Wire protocol.
    pub provider: LlmProvider,
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// Model name.
    pub model: String,
    api_key: Option<String>,
    /// Token budget of a review, if set.
    pub token_budget: Option<u64>,
    /// Most output tokens per call, if set.
    pub max_output_tokens: Option<u32>,
    /// Per-call timeout, if set.
    pub timeout_ms: Option<u64>,
    /// Temperature, if set.
    pub temperature: Option<f32>,
}

impl std::fmt::Debug for ModelEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelEnv")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("token_budget", &self.token_budget)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("timeout_ms", &self.timeout_ms)
            .field("temperature", &self.temperature)
            .finish()
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    var: &str,
    raw: Option<String>,
    lo: T,
    hi: T,
    errors: &mut Vec<String>,
) -> Option<T> {
    let raw = raw?;
    match raw.parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Some(v),
        _ => {
            errors.push(format!(
                "{var} must be a number from {lo} to {hi} (got {raw:?})"
            ));
            None
        }
    }
}

fn check_base_url(raw: &str) -> Result<String, String> {
    // Never echo the value: a mistyped URL may carry a key.
    let u = reqwest::Url::parse(raw.trim()).map_err(|e| {
        format!("{BASE_URL} is not a URL ({e}); e.g. https://api.openai.com/v1 or http://localhost:11434/v1")
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!(
            "{BASE_URL} must be an http:// or https:// URL with a host"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{BASE_URL} must not contain credentials; put the key in {API_KEY}"
        ));
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

impl ModelEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (empty values count as unset).
    /// `Ok(None)`: no model configured. Every problem is reported at once,
    /// one line each, naming its variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(provider_raw) = get(PROVIDER) else {
            let stray: Vec<&str> = ALL.iter().copied().filter(|k| get(k).is_some()).collect();
            if stray.is_empty() {
                return Ok(None);
            }
            return Err(format!(
                "{} {} set but {PROVIDER} is not: set it to openai or anthropic to enable the AI review, or unset {}",
                stray.join(", "),
                if stray.len() == 1 { "is" } else { "are" },
                if stray.len() == 1 { "it" } else { "them" },
            ));
        };
        let mut errors = Vec::new();
        let provider = match LlmProvider::parse(&provider_raw.to_ascii_lowercase()) {
            Ok(p) => Some(p),
            Err(_) => {
                errors.push(format!(
                    "{PROVIDER} must be openai (any OpenAI-compatible server) or anthropic (got {provider_raw:?})"
                ));
                None
            }
        };
        let model = get(MODEL);
        if model.is_none() {
            errors.push(format!(
                "{MODEL} is not set: name the model to review with (e.g. the model id your provider lists)"
            ));
        }
        if let Some(m) = &model
            && (m.len() > 200 || m.chars().any(char::is_control))
        {
            errors.push(format!("{MODEL} must be 1-200 characters"));
        }
        let explicit_url = get(BASE_URL);
        let base_url = match (&explicit_url, provider) {
            (Some(u), _) => match check_base_url(u) {
                Ok(u) => Some(u),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            (None, Some(LlmProvider::OpenAi)) => Some(OPENAI_BASE_URL.to_owned()),
            (None, Some(LlmProvider::Anthropic)) => Some(ANTHROPIC_BASE_URL.to_owned()),
            (None, None) => None,
        };
        let api_key = get(API_KEY);
        if let Some(k) = &api_key
            && (k.len() > 4096 || k.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            errors.push(format!(
                "{API_KEY} must be at most 4096 characters without spaces (value not shown)"
            ));
        }
        if api_key.is_none()
            && let Some(u) = &base_url
            && (u == OPENAI_BASE_URL || u == ANTHROPIC_BASE_URL)
        {
            errors.push(format!(
                "{API_KEY} is not set: {u} needs a key (only local servers such as Ollama work without one)"
            ));
        }
        let token_budget = number(
            TOKEN_BUDGET,
            get(TOKEN_BUDGET),
            1_000u64,
            100_000_000,
            &mut errors,
        );
        let max_output_tokens = number(
            MAX_OUTPUT_TOKENS,
            get(MAX_OUTPUT_TOKENS),
            1u32,
            200_000,
            &mut errors,
        );
        let timeout_ms = number(TIMEOUT_MS, get(TIMEOUT_MS), 1_000u64, 900_000, &mut errors);
        let temperature = number(TEMPERATURE, get(TEMPERATURE), 0.0f32, 2.0, &mut errors);
        match (provider, base_url, model) {
            (Some(provider), Some(base_url), Some(model)) if errors.is_empty() => Ok(Some(Self {
                provider,
                base_url,
                model,
                api_key,
                token_budget,
                max_output_tokens,
                timeout_ms,
                temperature,
            })),
            _ => Err(errors.join("\n")),
        }
    }

    /// Whether a key is set.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// The body creating or updating the AI config named [`CONFIG_NAME`]:
    /// every field set, so an update leaves nothing from an earlier run
    /// (no key: the stored one is removed).
    pub fn config_write(&self) -> AiConfigWrite {
        use ai_review_protocol::configs::ai_defaults;
        AiConfigWrite {
            name: Some(CONFIG_NAME.to_owned()),
            provider: Some(self.provider),
            base_url: Some(self.base_url.clone()),
            model: Some(self.model.clone()),
            api_key: Some(self.api_key.clone()),
            temperature: Some(self.temperature),
            max_output_tokens: Some(
                self.max_output_tokens
                    .unwrap_or(ai_defaults::MAX_OUTPUT_TOKENS),
            ),
            max_input_tokens_per_call: None,
            timeout_ms: Some(self.timeout_ms.unwrap_or(ai_defaults::TIMEOUT_MS)),
            token_budget: Some(self.token_budget.unwrap_or(ai_defaults::TOKEN_BUDGET)),
            input_cost_per_mtok: None,
            output_cost_per_mtok: None,
            is_default: None,
            enabled: Some(true),
        }
    }

    /// `provider model at base URL`, for progress lines (never the key).
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {}{}",
            self.provider,
            self.model,
            self.base_url,
            if self.has_api_key() {
                " (with a key)"
            } else {
                " (no key)"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<ModelEnv>, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ModelEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_no_model() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[(PROVIDER, " "), (MODEL, "")]), Ok(None));
    }

    #[test]
    fn defaults_the_base_url_per_provider() {
        let m = read(&[(PROVIDER, "openai"), (MODEL, "gpt-x"), (API_KEY, "sk-1")])
            .expect("valid")
            .expect("model");
        assert_eq!(m.provider, LlmProvider::OpenAi);
        assert_eq!(m.base_url, "https://api.openai.com/v1");
        assert!(m.has_api_key());
        let m = read(&[(PROVIDER, "Anthropic"), (MODEL, "claude-x"), (API_KEY, "k")])
            .expect("valid")
            .expect("model");
        assert_eq!(m.base_url, "https://api.anthropic.com/v1");
    }

    #[test]
    fn a_local_server_needs_no_key_and_optional_numbers_are_read() {
        let m = read(&[
            (PROVIDER, "openai"),
            (MODEL, "llama3"),
            (BASE_URL, "http://127.0.0.1:11434/v1/"),
            (TOKEN_BUDGET, "5000"),
            (MAX_OUTPUT_TOKENS, "512"),
            (TIMEOUT_MS, "30000"),
            (TEMPERATURE, "0.2"),
        ])
        .expect("valid")
        .expect("model");
        assert_eq!(m.base_url, "http://127.0.0.1:11434/v1");
        assert!(!m.has_api_key());
        let w = m.config_write();
        assert_eq!(w.name.as_deref(), Some(CONFIG_NAME));
        assert_eq!(w.api_key, Some(None), "no key: any stored key is removed");
        assert_eq!(w.token_budget, Some(5000));
        assert_eq!(w.max_output_tokens, Some(512));
        assert_eq!(w.timeout_ms, Some(30_000));
        assert_eq!(w.temperature, Some(Some(0.2)));
        assert_eq!(w.enabled, Some(true));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = read(&[(PROVIDER, "openai"), (API_KEY, "k")]).expect_err("no model");
        assert!(e.contains(MODEL), "{e}");
        let e = read(&[(PROVIDER, "gemini"), (MODEL, "m")]).expect_err("bad provider");
        assert!(e.contains(PROVIDER) && e.contains("\"gemini\""), "{e}");
        let e = read(&[(MODEL, "m"), (API_KEY, "k")]).expect_err("no provider");
        assert!(
            e.contains(PROVIDER) && e.contains(MODEL) && e.contains(API_KEY),
            "{e}"
        );
        let e = read(&[(PROVIDER, "openai"), (MODEL, "m")]).expect_err("no key");
        assert!(e.contains(API_KEY) && e.contains("api.openai.com"), "{e}");
        let e = read(&[(PROVIDER, "openai"), (MODEL, "m"), (BASE_URL, "ftp://x")])
            .expect_err("bad url");
        assert!(e.contains(BASE_URL), "{e}");
        let e = read(&[
            (PROVIDER, "openai"),
            (MODEL, "m"),
            (BASE_URL, "http://user:hunter2@host/v1"),
        ])
        .expect_err("credentials");
        assert!(e.contains(API_KEY) && !e.contains("hunter2"), "{e}");
        let e = read(&[
            (PROVIDER, "openai"),
            (MODEL, "m"),
            (API_KEY, "k"),
            (TOKEN_BUDGET, "lots"),
            (MAX_OUTPUT_TOKENS, "0"),
            (TIMEOUT_MS, "10"),
            (TEMPERATURE, "3"),
        ])
        .expect_err("bad numbers");
        for var in [TOKEN_BUDGET, MAX_OUTPUT_TOKENS, TIMEOUT_MS, TEMPERATURE] {
            assert!(e.contains(var), "{var} in {e}");
        }
        assert_eq!(e.lines().count(), 4, "all reported at once: {e}");
    }

    #[test]
    fn the_key_is_never_shown() {
        let secret = "sk-very-secret-value";
        let m = read(&[(PROVIDER, "openai"), (MODEL, "m"), (API_KEY, secret)])
            .expect("valid")
            .expect("model");
        assert!(!format!("{m:?}").contains(secret));
        assert!(!m.describe().contains(secret));
        let e = read(&[(PROVIDER, "openai"), (MODEL, "m"), (API_KEY, "a b")]).expect_err("spaces");
        assert!(e.contains(API_KEY) && !e.contains("a b"), "{e}");
    }
}
