//! The model gateway over a real Unix socket against the fake model server,
//! for both providers: the key, translation, retries honouring
//! `Retry-After`, timeouts, malformed answers, the token budget, usage,
//! the response cache, and what the runner's metrics count of it all.

use ai_review_domain::{LlmProvider, SecretString};
use ai_review_executor::gateway::{ChatResponse, GatewayError, ModelUsage};
use ai_review_fake_llm::{FakeLlm, Reply};
use ai_review_protocol::runner::AiConfigSpec;
use ai_review_runner::gateway::{Gateway, GatewayConfig, RetryPolicy, http_client};
use ai_review_runner::metrics::{Gauges, Metrics};
use ai_review_testkit::prom;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-gateway-key-0123456789";

fn ai(llm: &FakeLlm, provider: LlmProvider) -> AiConfigSpec {
    AiConfigSpec {
        id: "cfg".into(),
        name: "test".into(),
        provider,
        base_url: llm.base_url(),
        model: match provider {
            LlmProvider::OpenAi => "gpt-4o-mini".into(),
            LlmProvider::Anthropic => "claude-sonnet-4-0".into(),
        },
        api_key: Some(SecretString::new(KEY)),
        temperature: Some(0.2),
        max_output_tokens: 200,
        max_input_tokens_per_call: 10_000,
        timeout_ms: 5_000,
        token_budget: 100_000,
        input_cost_per_mtok: None,
        output_cost_per_mtok: None,
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    cache: PathBuf,
    gateway: Gateway,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
    }
}

async fn start_in(dir: &Path, task: &str, ai: AiConfigSpec) -> Gateway {
    start_counted(dir, task, ai, Arc::default()).await
}

async fn start_counted(dir: &Path, task: &str, ai: AiConfigSpec, metrics: Arc<Metrics>) -> Gateway {
    Gateway::start(
        &dir.join("model.sock"),
        GatewayConfig {
            task_id: task.into(),
            ai,
            cache_dir: Some(dir.join("model-cache")),
            deadline: Instant::now() + Duration::from_secs(60),
            retry: quick_retries(),
            http: http_client().expect("http client"),
            metrics,
        },
    )
    .await
    .expect("gateway starts")
}

async fn rig(ai: AiConfigSpec) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(Metrics::default());
    let gateway = start_counted(dir.path(), "task-1", ai, metrics.clone()).await;
    let socket = dir.path().join("model.sock");
    Rig {
        metrics,
        cache: dir.path().join("model-cache"),
        http: unix_client(&socket),
        socket,
        gateway,
        _dir: dir,
    }
}

fn unix_client(socket: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .unix_socket(socket)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn post(http: &reqwest::Client, body: &Value) -> (u16, Value) {
    let r = http
        .post("http://gateway/v1/chat")
        .json(body)
        .send()
        .await
        .expect("gateway answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

impl Rig {
    /// Gateway answers by status, tokens by kind, cache hits, as scraped.
    fn counted(&self) -> (Vec<(String, f64)>, (f64, f64), f64) {
        let text = self.metrics.render(Gauges::default());
        let m = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let statuses = m
            .samples
            .iter()
            .filter(|s| s.name == "ai_review_runner_gateway_requests_total")
            .map(|s| (s.labels["status"].clone(), s.value))
            .collect();
        let tokens = |kind| {
            m.value("ai_review_runner_gateway_tokens_total", &[("kind", kind)])
                .expect("tokens")
        };
        let hits = m
            .value("ai_review_runner_gateway_cache_hits_total", &[])
            .expect("cache hits");
        (statuses, (tokens("prompt"), tokens("completion")), hits)
    }

    async fn chat(&self, body: &Value) -> (u16, Value) {
        post(&self.http, body).await
    }

    async fn ok(&self, body: &Value) -> ChatResponse {
        let (status, v) = self.chat(body).await;
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v).expect("chat response")
    }

    async fn err(&self, body: &Value, status: u16, code: &str) -> GatewayError {
        let (got, v) = self.chat(body).await;
        assert_eq!(got, status, "{v}");
        let e: GatewayError = serde_json::from_value(v).expect("gateway error");
        assert_eq!(e.code, code, "{e:?}");
        e
    }

    async fn usage(&self) -> ModelUsage {
        self.http
            .get("http://gateway/v1/usage")
            .send()
            .await
            .expect("usage")
            .json()
            .await
            .expect("usage json")
    }
}

fn review_call() -> Value {
    json!({
        "messages": [
            {"role": "system", "content": "You are a code reviewer. Answer with one JSON object."},
            {"role": "user", "content": "Review this diff:\n+fn a() {}\n"},
        ],
        "maxTokens": 150,
        "json": true,
        "label": "review 1/1",
    })
}

#[tokio::test]
async fn openai_calls_carry_the_key_and_the_translated_request() {
    let llm = FakeLlm::start(KEY).await;
    let r = rig(ai(&llm, LlmProvider::OpenAi)).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&r.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666, "the container's user can connect");
    let answer = r.ok(&review_call()).await;
    assert_eq!(answer.content, ai_review_fake_llm::VALID_REVIEW);
    assert!(!answer.cached);
    assert_eq!(answer.model, "gpt-4o-mini");
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    let seen = llm.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = seen[0].json.clone().expect("json");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["max_tokens"], 150);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][1]["content"],
        "Review this diff:\n+fn a() {}\n"
    );
    let u = r.usage().await;
    assert_eq!((u.calls, u.cached_calls, u.retries), (1, 0, 0));
    assert_eq!(u.input_tokens, answer.usage.input_tokens);
    assert!(u.input_tokens > 0 && u.output_tokens > 0);
    assert_eq!(u.billed_output_tokens, u.output_tokens);
    assert_eq!(u.provider, "openai");
    assert_eq!(u.token_budget, Some(100_000));
    assert!(
        u.estimated_cost_usd.is_some_and(|c| c > 0.0),
        "gpt-4o-mini has a list price"
    );
    let stopped = r.gateway.stop().await;
    assert_eq!(stopped.calls, 1);
    assert!(!r.socket.exists(), "the socket is removed on stop");
}

#[tokio::test]
async fn anthropic_calls_lift_the_system_prompt_and_send_the_version() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::Content {
        text: "{\"summary\":\"s\"}".into(),
        usage: Some((40, 8)),
    });
    let r = rig(ai(&llm, LlmProvider::Anthropic)).await;
    let answer = r.ok(&review_call()).await;
    assert_eq!(answer.content, "{\"summary\":\"s\"}");
    assert_eq!(answer.finish_reason.as_deref(), Some("end_turn"));
    let seen = llm.requests();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].header("x-api-key"), Some(KEY));
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen[0].header("authorization"), None);
    let body = seen[0].json.clone().expect("json");
    assert_eq!(
        body["system"],
        "You are a code reviewer. Answer with one JSON object."
    );
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["max_tokens"], 150);
    let u = r.usage().await;
    assert_eq!((u.input_tokens, u.output_tokens), (40, 8));
    assert_eq!(u.provider, "anthropic");
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_it_names() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::rate_limited(Some("1")));
    let r = rig(ai(&llm, LlmProvider::OpenAi)).await;
    r.ok(&review_call()).await;
    let seen = llm.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].received - seen[0].received;
    assert!(gap >= Duration::from_secs(1), "waited only {gap:?}");
    assert!(gap < Duration::from_secs(3), "waited {gap:?}");
    assert_eq!(r.usage().await.retries, 1);
}

#[tokio::test]
async fn rate_limits_that_persist_or_ask_too_long_a_wait_end_in_429() {
    let llm = FakeLlm::start(KEY).await;
    llm.set_default(|_| Reply::rate_limited(None));
    let r = rig(ai(&llm, LlmProvider::Anthropic)).await;
    let e = r.err(&review_call(), 429, "rate_limited").await;
    assert!(e.message.contains("after 3 retries"), "{e:?}");
    assert_eq!(llm.requests().len(), 4);
    llm.set_default(|_| Reply::rate_limited(Some("3600")));
    let t0 = Instant::now();
    let e = r.err(&review_call(), 429, "rate_limited").await;
    assert!(e.message.contains("3600 s"), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "gave up at once");
    assert_eq!(r.usage().await.calls, 0);
}

#[tokio::test]
async fn server_errors_and_cut_connections_are_retried_then_succeed() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::ServerError(500))
        .push(Reply::ServerError(503))
        .push(Reply::Truncated);
    let r = rig(ai(&llm, LlmProvider::OpenAi)).await;
    r.ok(&review_call()).await;
    assert_eq!(llm.requests().len(), 4);
    assert_eq!(r.usage().await.retries, 3);
    llm.set_default(|_| Reply::ServerError(529));
    let mut other = review_call();
    other["maxTokens"] = json!(151);
    let e = r.err(&other, 502, "upstream_error").await;
    assert!(e.message.contains("529"), "{e:?}");
}

#[tokio::test]
async fn a_slow_provider_is_a_504_without_retries() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::delay(Duration::from_secs(5), Reply::review()));
    let mut cfg = ai(&llm, LlmProvider::OpenAi);
    cfg.timeout_ms = 300;
    let r = rig(cfg).await;
    let t0 = Instant::now();
    let e = r.err(&review_call(), 504, "upstream_timeout").await;
    assert!(e.message.contains("300 ms"), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(llm.requests().len(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn the_task_deadline_bounds_every_call() {
    let llm = FakeLlm::start(KEY).await;
    llm.set_default(|_| Reply::ServerError(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let g = Gateway::start(
        &dir.path().join("model.sock"),
        GatewayConfig {
            task_id: "t".into(),
            ai: ai(&llm, LlmProvider::OpenAi),
            cache_dir: None,
            deadline: Instant::now() + Duration::from_millis(300),
            retry: RetryPolicy {
                max_retries: 100,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
            },
            http: http_client().expect("http"),
            metrics: Arc::default(),
        },
    )
    .await
    .expect("start");
    let http = unix_client(&dir.path().join("model.sock"));
    let t0 = Instant::now();
    let (status, v) = post(&http, &review_call()).await;
    assert_eq!(status, 502, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("deadline"),
        "{v}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, v) = post(&http, &review_call()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (504, Some("upstream_timeout"))
    );
    g.stop().await;
}

#[tokio::test]
async fn malformed_or_refused_answers_are_502_with_the_reason() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::MalformedJson).push(Reply::Raw {
        status: 200,
        body: "{\"choices\": []}".into(),
    });
    let r = rig(ai(&llm, LlmProvider::OpenAi)).await;
    let e = r.err(&review_call(), 502, "upstream_error").await;
    assert!(e.message.contains("not valid JSON"), "{e:?}");
    let e = r.err(&review_call(), 502, "upstream_error").await;
    assert!(e.message.contains("malformed: no choices"), "{e:?}");
    assert_eq!(llm.requests().len(), 2, "malformed answers are not retried");

    let mut wrong_key = ai(&llm, LlmProvider::Anthropic);
    wrong_key.api_key = Some(SecretString::new("sk-wrong"));
    let r = rig(wrong_key).await;
    let e = r.err(&review_call(), 502, "upstream_error").await;
    assert!(e.message.contains("401: invalid x-api-key"), "{e:?}");
    assert!(!e.message.contains("sk-wrong"));
}

#[tokio::test]
async fn bad_requests_are_400() {
    let llm = FakeLlm::start(KEY).await;
    let r = rig(ai(&llm, LlmProvider::Anthropic)).await;
    r.err(&json!({"messages": []}), 400, "bad_request").await;
    r.err(&json!({"prompt": "x"}), 400, "bad_request").await;
    r.err(
        &json!({"messages": [{"role": "system", "content": "only rules"}]}),
        400,
        "bad_request",
    )
    .await;
    let (status, v) = {
        let resp = r
            .http
            .get("http://gateway/v2/other")
            .send()
            .await
            .expect("send");
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.expect("json"),
        )
    };
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn the_budget_refuses_before_calling_and_counts_actual_usage() {
    let llm = FakeLlm::start(KEY).await;
    let mut cfg = ai(&llm, LlmProvider::OpenAi);
    cfg.token_budget = 300;
    let r = rig(cfg).await;
    let big = json!({
        "messages": [{"role": "user", "content": "x".repeat(600)}],
        "maxTokens": 150,
    });
    let e = r.err(&big, 402, "budget_exhausted").await;
    assert!(e.message.contains("350 tokens"), "{e:?}");
    assert!(llm.requests().is_empty(), "refused before calling");
    llm.push(Reply::Content {
        text: "ok".into(),
        usage: Some((120, 60)),
    });
    let small = json!({"messages": [{"role": "user", "content": "hello"}], "maxTokens": 50});
    r.ok(&small).await;
    // 180 used + 2 (estimate) + 150 > 300.
    let e = r
        .err(
            &json!({"messages": [{"role": "user", "content": "again"}]}),
            402,
            "budget_exhausted",
        )
        .await;
    assert!(e.message.contains("only 120"), "{e:?}");
    let u = r.usage().await;
    assert_eq!((u.calls, u.input_tokens, u.output_tokens), (1, 120, 60));
    assert_eq!(llm.requests().len(), 1);
    assert_eq!(
        r.counted(),
        (
            vec![("200".to_owned(), 1.0), ("402".to_owned(), 2.0)],
            (120.0, 60.0),
            0.0
        ),
        "refusals are counted by status, tokens as the provider billed them"
    );
}

#[tokio::test]
async fn identical_calls_are_answered_from_the_cache_across_gateways() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::Content {
        text: "first".into(),
        usage: Some((30, 10)),
    });
    let r = rig(ai(&llm, LlmProvider::OpenAi)).await;
    let first = r.ok(&review_call()).await;
    let mut relabelled = review_call();
    relabelled["label"] = json!("review 1/1 (again)");
    let second = r.ok(&relabelled).await;
    assert_eq!(llm.requests().len(), 1, "the provider saw one call");
    assert!(!first.cached && second.cached);
    assert_eq!(second.content, "first");
    assert_eq!(second.usage, first.usage);
    let u = r.usage().await;
    assert_eq!((u.calls, u.cached_calls), (2, 1));
    assert_eq!((u.input_tokens, u.billed_input_tokens), (60, 30));
    let files: Vec<_> = std::fs::read_dir(&r.cache)
        .expect("cache dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".json") && files[0].len() == 64 + 5);
    assert_eq!(
        r.counted(),
        (vec![("200".to_owned(), 2.0)], (30.0, 10.0), 1.0),
        "the cached answer is a cache hit and bills no tokens"
    );

    // A new gateway (a retried attempt, a restarted runner) over the same
    // cache directory does not pay again; another task does.
    let dir = r._dir.path().to_owned();
    r.gateway.stop().await;
    let again = start_in(&dir, "task-1", ai(&llm, LlmProvider::OpenAi)).await;
    let http = unix_client(&dir.join("model.sock"));
    let (status, v) = post(&http, &review_call()).await;
    assert_eq!((status, v["cached"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(llm.requests().len(), 1);
    let u = again.stop().await;
    assert_eq!((u.calls, u.cached_calls, u.billed_input_tokens), (1, 1, 0));
    let other = start_in(&dir, "task-2", ai(&llm, LlmProvider::OpenAi)).await;
    let http = unix_client(&dir.join("model.sock"));
    let (status, v) = post(&http, &review_call()).await;
    assert_eq!((status, v["cached"].as_bool()), (200, Some(false)));
    assert_eq!(llm.requests().len(), 2);
    other.stop().await;
}

#[tokio::test]
async fn an_answer_paid_for_after_the_caller_left_is_still_cached() {
    let llm = FakeLlm::start(KEY).await;
    llm.push(Reply::delay(Duration::from_millis(600), Reply::review()));
    let r = rig(ai(&llm, LlmProvider::OpenAi)).await;
    let impatient = reqwest::Client::builder()
        .unix_socket(r.socket.as_path())
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let gone = impatient
        .post("http://gateway/v1/chat")
        .json(&review_call())
        .send()
        .await;
    assert!(gone.is_err(), "the caller gave up");
    llm.wait_until(Duration::from_secs(5), |s| s.iter().any(|r| r.succeeded()))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = r.ok(&review_call()).await;
    assert!(answer.cached);
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn a_socket_path_longer_than_sun_path_still_works() {
    let llm = FakeLlm::start(KEY).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
    std::fs::create_dir_all(&deep).expect("mkdir");
    assert!(deep.join("model.sock").as_os_str().len() > 108);
    let g = start_in(&deep, "t", ai(&llm, LlmProvider::OpenAi)).await;
    assert!(deep.join("model.sock").exists());
    // Clients reach it by a short path, as the container does (/workspace).
    let link = dir.path().join("ws");
    std::os::unix::fs::symlink(&deep, &link).expect("symlink");
    let (status, _) = post(&unix_client(&link.join("model.sock")), &review_call()).await;
    assert_eq!(status, 200);
    g.stop().await;
    assert!(!deep.join("model.sock").exists());
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_a_bad_base_url_refused() {
    let llm = FakeLlm::start(KEY).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.sock"), "stale").expect("write");
    let g = start_in(dir.path(), "t", ai(&llm, LlmProvider::OpenAi)).await;
    let (status, _) = post(&unix_client(&dir.path().join("model.sock")), &review_call()).await;
    assert_eq!(status, 200);
    g.stop().await;
    let mut bad = ai(&llm, LlmProvider::OpenAi);
    bad.base_url = "file:///etc".into();
    let e = Gateway::start(
        &dir.path().join("model.sock"),
        GatewayConfig {
            task_id: "t".into(),
            ai: bad,
            cache_dir: None,
            deadline: Instant::now() + Duration::from_secs(5),
            retry: RetryPolicy::default(),
            http: http_client().expect("http"),
            metrics: Arc::default(),
        },
    )
    .await
    .err()
    .expect("refused");
    assert!(e.to_string().contains("baseUrl"), "{e}");
}
