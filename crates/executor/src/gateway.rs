//! The model gateway protocol: how the executor asks the runner for model
//! completions.
//!
//! The review container has no network and never holds a model API key.
//! For each task the runner listens on a Unix socket, [`GATEWAY_SOCKET`]
//! inside the workspace (so `/workspace/model.sock` in the container), and
//! speaks HTTP/1.1 with JSON bodies on it:
//!
//! | Call | Body | Answer |
//! | --- | --- | --- |
//! | `POST /v1/chat` | [`ChatRequest`] | 200 [`ChatResponse`], or an error status with [`GatewayError`] |
//! | `GET /v1/usage` | — | 200 [`ModelUsage`] so far for this task |
//!
//! The request is provider-neutral: the runner translates it to OpenAI
//! Chat Completions or Anthropic Messages, adds the key, applies the task's
//! timeout, retries 429/5xx with backoff honouring `Retry-After`, enforces
//! the task's token budget, records usage and caches the answer by request
//! digest, so a retried task does not pay again for calls already made.
//!
//! Error statuses and [`GatewayError::code`]:
//!
//! | Status | `code` | Meaning |
//! | --- | --- | --- |
//! | 400 | `bad_request` | the request body is not a valid [`ChatRequest`] |
//! | 402 | `budget_exhausted` | the call would exceed the task's token budget |
//! | 429 | `rate_limited` | the provider kept answering 429 after every retry |
//! | 502 | `upstream_error` | the provider failed (5xx after retries, 4xx, malformed answer) |
//! | 503 | `not_configured` | the task has no model configured |
//! | 504 | `upstream_timeout` | the provider did not answer within the timeout |

use serde::{Deserialize, Serialize};

/// File name of the gateway socket inside the task workspace.
pub const GATEWAY_SOCKET: &str = "model.sock";

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The request.
    User,
    /// An earlier answer (used for the repair retry).
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatMessage {
    /// Author.
    pub role: ChatRole,
    /// Text.
    pub content: String,
}

/// Body of `POST /v1/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatRequest {
    /// The conversation; system messages first.
    pub messages: Vec<ChatMessage>,
    /// Most tokens to generate (default: the task's `maxOutputTokens`;
    /// capped by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Ask the provider for a JSON object (OpenAI `response_format`;
    /// Anthropic gets the instruction in the prompt only).
    #[serde(default)]
    pub json: bool,
    /// A label for logs and usage, e.g. `review 2/5` or `repair 2/5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// Answer of `POST /v1/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatResponse {
    /// The generated text.
    pub content: String,
    /// Tokens as reported by the provider.
    pub usage: TokenUsage,
    /// Served from the response cache (no provider call was made).
    pub cached: bool,
    /// The model that answered.
    pub model: String,
    /// Why generation stopped (`stop`, `length`, ...), as the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// Error body of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayError {
    /// Machine-readable code (see the module docs).
    pub code: String,
    /// What went wrong, for the task log and the review's failure reason.
    pub message: String,
}

/// Model usage of one task, as recorded by the gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    /// Provider (`openai` or `anthropic`).
    #[serde(default)]
    pub provider: String,
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// Calls answered (cached ones included).
    pub calls: u64,
    /// Calls answered from the cache.
    pub cached_calls: u64,
    /// HTTP retries made against the provider.
    pub retries: u64,
    /// Prompt tokens of all answered calls.
    pub input_tokens: u64,
    /// Generated tokens of all answered calls.
    pub output_tokens: u64,
    /// Prompt tokens actually paid for (cache misses only).
    pub billed_input_tokens: u64,
    /// Generated tokens actually paid for (cache misses only).
    pub billed_output_tokens: u64,
    /// Time spent waiting for the provider.
    pub latency_ms: u64,
    /// The task's token budget (input + output), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// Estimated cost in US dollars of the billed tokens, when prices are
    /// known for the model or configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_cost_usd: Option<f64>,
}
