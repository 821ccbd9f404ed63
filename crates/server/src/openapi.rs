//! The OpenAPI 3.1 document of the public API (`GET /api/openapi.json`),
//! built from [`OPERATIONS`]: one entry per route and method, with what it
//! needs (public, a login, a permission), its query parameters and the Rust
//! types of its request body and of the `data` of its answer. Path
//! parameters come from the path itself. A test reads the router's source
//! and fails when a route is missing here or listed here but gone, or when
//! a handler's body types differ from the ones listed.
//!
//! Body schemas are generated from the Rust types with `schemars` (JSON
//! Schema 2020-12, the dialect of OpenAPI 3.1), so serde's renames,
//! defaults and flattening show as they are on the wire. Requests are
//! described as the server deserializes them (fields with a default are
//! optional), answers as it serializes them (every field it always writes
//! is required); a type whose two descriptions differ appears twice, its
//! request form named `…Input`. Every answer is the envelope
//! `{data, meta, error}`: the `Envelope` schema once, and per operation an
//! `allOf` of it and the type of `data`.

use crate::routes::results::{Comment, Progress};
use crate::routes::{projects::WebhookCheck, reviews::ReviewList};
use crate::webhooks::{WebhookAnswer, WebhookEventView};
use ai_review_protocol::api::{
    ApiKeyView, CreateApiKeyRequest, CreateReviewRequest, CreateUserRequest, CreatedApiKey,
    HealthView, LogLineView, MeView, QueueDash, ReviewView, TriggerManualReview, UpdateUserRequest,
    UserView,
};
use ai_review_protocol::configs::{
    AiConfigView, AiConfigWrite, PlatformConfigView, PlatformConfigWrite, PlatformTokenView,
    RuleView, RuleWrite, TemplateView, TemplateWrite,
};
use ai_review_protocol::notifications::{
    NotificationConfig, NotificationStatsView, NotificationView, PushSubscribeRequest,
    PushSubscriptionView, TestChannelRequest, TestChannelResult, VapidKeysView, VapidPublicKeyView,
};
use ai_review_protocol::projects::{
    GlobalSettings, ProjectStatsView, ProjectUpdate, ProjectView, ResolvedProjectConfig,
    SyncRequest, SyncResult,
};
use ai_review_protocol::runner::{
    HeartbeatRequest, HeartbeatResponse, LogsRequest, LogsResponse, PhaseRequest, RegisterResponse,
    ResultRequest, ResultResponse, RunnerView, TaskAssignment, TaskStatusResponse,
};
use ai_review_protocol::{ApiErrorBody, Meta};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, webhooks authenticated by signature).
    Public,
    /// Any API key or dashboard session.
    Login,
    /// A key or session whose owner holds this permission.
    Permission(&'static str),
    /// Admins only.
    Admin,
}

/// A request body, or the payload of a success answer.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// None: no request body (or headers only), or a 204 answer.
    Empty,
    /// JSON of a Rust type (an answer's `data` in the envelope).
    Typed {
        /// The type's schema: a `$ref` into `components/schemas` for a
        /// named type, inline for lists and plain values.
        schema: fn(&mut SchemaGenerator) -> Schema,
        /// The type's path (`std::any::type_name`), compared with the
        /// handler's signature by a test.
        type_name: fn() -> &'static str,
    },
    /// JSON of no fixed shape (in the envelope when answered), and what it
    /// is.
    Any(&'static str),
    /// An answer that is this JSON as it is, not in the envelope.
    Bare(&'static str),
}

/// One route and method of the API.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// `get`, `post`, `put`, `patch` or `delete`.
    pub method: &'static str,
    /// Path with `{param}` placeholders, as routed.
    pub path: &'static str,
    /// Grouping in the document.
    pub tag: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Query parameters.
    pub query: &'static [&'static str],
    /// Status of success.
    pub ok: u16,
    /// The request body.
    pub request: Body,
    /// The success answer's payload.
    pub response: Body,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        access,
        query: &[],
        ok: 200,
        request: Body::Empty,
        response: Body::Empty,
    }
}

const fn typed<T: JsonSchema>() -> Body {
    Body::Typed {
        schema: SchemaGenerator::subschema_for::<T>,
        type_name: std::any::type_name::<T>,
    }
}

impl Operation {
    /// With these query parameters.
    const fn query(mut self, query: &'static [&'static str]) -> Self {
        self.query = query;
        self
    }

    /// Succeeds with this status instead of 200.
    const fn status(mut self, ok: u16) -> Self {
        self.ok = ok;
        self
    }

    /// Takes a JSON body of type `T`.
    const fn takes<T: JsonSchema>(mut self) -> Self {
        self.request = typed::<T>();
        self
    }

    /// Takes JSON of no fixed shape.
    const fn takes_any(mut self, what: &'static str) -> Self {
        self.request = Body::Any(what);
        self
    }

    /// Answers `T` as the envelope's `data`.
    const fn answers<T: JsonSchema>(mut self) -> Self {
        self.response = typed::<T>();
        self
    }

    /// Answers JSON of no fixed shape as the envelope's `data`.
    const fn answers_any(mut self, what: &'static str) -> Self {
        self.response = Body::Any(what);
        self
    }

    /// Answers JSON outside the envelope.
    const fn answers_bare(mut self, what: &'static str) -> Self {
        self.response = Body::Bare(what);
        self
    }
}

use Access::{Admin, Login, Permission, Public};

const FILES_ANSWER: &str = "The `files` array of the executor's result document as stored (empty until the review completed): objects with `path`, `oldPath`, `status`, `additions`, `deletions`, `binary`, `reviewStatus`, `reason`, `reviewedLines`; older results may lack the review fields.";
const GITLAB_EVENT: &str = "GitLab's webhook payload as sent (merge request and note events act; others are recorded and ignored), authenticated by `X-Gitlab-Token`.";
const GITHUB_EVENT: &str = "GitHub's webhook payload as sent (pull_request and issue_comment events act; others are recorded and ignored), authenticated by `X-Hub-Signature-256` over the raw body.";

/// Every operation of the API.
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/api/health",
        "health",
        "Liveness and database check (503 when the database does not answer)",
        Public,
    )
    .answers::<HealthView>(),
    op(
        "get",
        "/api/openapi.json",
        "health",
        "This document",
        Public,
    )
    .answers_bare("This document (OpenAPI 3.1), not in the envelope."),
    op(
        "get",
        "/api/me",
        "keys",
        "The caller and its permissions",
        Login,
    )
    .answers::<MeView>(),
    op(
        "get",
        "/api/api-keys",
        "keys",
        "The caller's API keys",
        Login,
    )
    .answers::<Vec<ApiKeyView>>(),
    op(
        "post",
        "/api/api-keys",
        "keys",
        "Create an API key (shown once)",
        Login,
    )
    .takes::<CreateApiKeyRequest>()
    .answers::<CreatedApiKey>(),
    op(
        "delete",
        "/api/api-keys/{id}",
        "keys",
        "Revoke an API key",
        Login,
    )
    .answers::<ApiKeyView>(),
    op(
        "get",
        "/api/runners",
        "runners",
        "Registered runners",
        Login,
    )
    .answers::<Vec<RunnerView>>(),
    op(
        "get",
        "/api/runners/{id}",
        "runners",
        "One runner",
        Login,
    )
    .answers::<RunnerView>(),
    op(
        "post",
        "/api/runners/register",
        "runner protocol",
        "Register (or re-register) a runner; headers x-runner-id, x-runner-name, x-runner-version, x-runner-max-concurrency, x-runner-tags",
        Login,
    )
    .answers::<RegisterResponse>(),
    op(
        "post",
        "/api/runners/{id}/heartbeat",
        "runner protocol",
        "Heartbeat: renews leases, answers cancelTaskIds",
        Login,
    )
    .takes::<HeartbeatRequest>()
    .answers::<HeartbeatResponse>(),
    op(
        "get",
        "/api/runners/tasks/pending",
        "runner protocol",
        "Claim up to `limit` tasks, long-polling up to `wait` ms",
        Login,
    )
    .query(&["runnerId", "limit", "wait"])
    .answers::<Vec<TaskAssignment>>(),
    op(
        "post",
        "/api/runners/tasks/{id}/status",
        "runner protocol",
        "Report the execution phase (renews the lease)",
        Login,
    )
    .takes::<PhaseRequest>()
    .answers::<TaskStatusResponse>(),
    op(
        "post",
        "/api/runners/tasks/{id}/logs",
        "runner protocol",
        "Append log lines",
        Login,
    )
    .takes::<LogsRequest>()
    .answers::<LogsResponse>(),
    op(
        "post",
        "/api/runners/tasks/{id}/result",
        "runner protocol",
        "Submit the result (idempotent per attempt)",
        Login,
    )
    .takes::<ResultRequest>()
    .answers::<ResultResponse>(),
    op(
        "get",
        "/api/reviews",
        "reviews",
        "Reviews with stats",
        Login,
    )
    .query(&["page", "pageSize", "projectId", "status", "startDate", "endDate"])
    .answers::<ReviewList>(),
    op(
        "post",
        "/api/reviews",
        "reviews",
        "Queue a review of a revision range",
        Permission("review:create"),
    )
    .status(202)
    .takes::<CreateReviewRequest>()
    .answers::<ReviewView>(),
    op(
        "post",
        "/api/reviews/trigger-manual-review",
        "reviews",
        "Queue a review of a merge/pull request",
        Permission("review:create"),
    )
    .status(202)
    .takes::<TriggerManualReview>()
    .answers::<ReviewView>(),
    op(
        "get",
        "/api/reviews/{id}",
        "reviews",
        "One review: state, phase, attempts, history, result",
        Login,
    )
    .answers::<ReviewView>(),
    op(
        "post",
        "/api/reviews/{id}/cancel",
        "reviews",
        "Cancel (creator or admin)",
        Login,
    )
    .answers::<ReviewView>(),
    op(
        "post",
        "/api/reviews/{id}/retry",
        "reviews",
        "Queue a finished review again (creator or admin)",
        Permission("review:create"),
    )
    .status(202)
    .answers::<ReviewView>(),
    op(
        "get",
        "/api/reviews/{id}/logs",
        "reviews",
        "Task log lines",
        Login,
    )
    .query(&["after", "limit"])
    .answers::<Vec<LogLineView>>(),
    op(
        "get",
        "/api/reviews/{id}/comments",
        "reviews",
        "Findings",
        Login,
    )
    .query(&["file", "severity", "limit", "offset"])
    .answers::<Vec<Comment>>(),
    op(
        "get",
        "/api/reviews/{id}/files",
        "reviews",
        "Changed files with statistics",
        Login,
    )
    .answers_any(FILES_ANSWER),
    op(
        "get",
        "/api/reviews/{id}/files/progress",
        "reviews",
        "Per-file review status",
        Login,
    )
    .answers::<Progress>(),
    op(
        "get",
        "/api/queuedash",
        "reviews",
        "Queue monitoring view",
        Login,
    )
    .answers::<QueueDash>(),
    op(
        "get",
        "/api/users",
        "users",
        "Users",
        Admin,
    )
    .answers::<Vec<UserView>>(),
    op(
        "post",
        "/api/users",
        "users",
        "Create a user",
        Admin,
    )
    .status(201)
    .takes::<CreateUserRequest>()
    .answers::<UserView>(),
    op(
        "patch",
        "/api/users/{id}",
        "users",
        "Change a user's role, permissions, password or disabled flag",
        Admin,
    )
    .takes::<UpdateUserRequest>()
    .answers::<UserView>(),
    op(
        "get",
        "/api/ai-configs",
        "configs",
        "Model configurations (keys masked)",
        Login,
    )
    .answers::<Vec<AiConfigView>>(),
    op(
        "post",
        "/api/ai-configs",
        "configs",
        "Create a model configuration",
        Permission("config:create"),
    )
    .status(201)
    .takes::<AiConfigWrite>()
    .answers::<AiConfigView>(),
    op(
        "get",
        "/api/ai-configs/{id}",
        "configs",
        "One model configuration",
        Login,
    )
    .answers::<AiConfigView>(),
    op(
        "patch",
        "/api/ai-configs/{id}",
        "configs",
        "Change a model configuration",
        Permission("config:update"),
    )
    .takes::<AiConfigWrite>()
    .answers::<AiConfigView>(),
    op(
        "delete",
        "/api/ai-configs/{id}",
        "configs",
        "Delete a model configuration",
        Permission("config:delete"),
    )
    .status(204),
    op(
        "get",
        "/api/review-templates",
        "configs",
        "Review templates",
        Login,
    )
    .answers::<Vec<TemplateView>>(),
    op(
        "post",
        "/api/review-templates",
        "configs",
        "Create a template",
        Permission("config:create"),
    )
    .status(201)
    .takes::<TemplateWrite>()
    .answers::<TemplateView>(),
    op(
        "get",
        "/api/review-templates/{id}",
        "configs",
        "One template",
        Login,
    )
    .answers::<TemplateView>(),
    op(
        "patch",
        "/api/review-templates/{id}",
        "configs",
        "Change a template",
        Permission("config:update"),
    )
    .takes::<TemplateWrite>()
    .answers::<TemplateView>(),
    op(
        "delete",
        "/api/review-templates/{id}",
        "configs",
        "Delete a template",
        Permission("config:delete"),
    )
    .status(204),
    op(
        "get",
        "/api/review-rules",
        "configs",
        "Review rules",
        Login,
    )
    .answers::<Vec<RuleView>>(),
    op(
        "post",
        "/api/review-rules",
        "configs",
        "Create a rule",
        Permission("config:create"),
    )
    .status(201)
    .takes::<RuleWrite>()
    .answers::<RuleView>(),
    op(
        "get",
        "/api/review-rules/{id}",
        "configs",
        "One rule",
        Login,
    )
    .answers::<RuleView>(),
    op(
        "patch",
        "/api/review-rules/{id}",
        "configs",
        "Change a rule",
        Permission("config:update"),
    )
    .takes::<RuleWrite>()
    .answers::<RuleView>(),
    op(
        "delete",
        "/api/review-rules/{id}",
        "configs",
        "Delete a rule",
        Permission("config:delete"),
    )
    .status(204),
    op(
        "get",
        "/api/platform-configs",
        "platforms",
        "Forge connections (tokens masked)",
        Login,
    )
    .answers::<Vec<PlatformConfigView>>(),
    op(
        "post",
        "/api/platform-configs",
        "platforms",
        "Connect a forge",
        Permission("config:create"),
    )
    .status(201)
    .takes::<PlatformConfigWrite>()
    .answers::<PlatformConfigView>(),
    op(
        "get",
        "/api/platform-configs/enabled",
        "platforms",
        "Enabled forge connections",
        Login,
    )
    .answers::<Vec<PlatformConfigView>>(),
    op(
        "get",
        "/api/platform-configs/default",
        "platforms",
        "The default connection of a type",
        Login,
    )
    .query(&["type"])
    .answers::<PlatformConfigView>(),
    op(
        "get",
        "/api/platform-configs/type/{type}",
        "platforms",
        "Connections of a type",
        Login,
    )
    .answers::<Vec<PlatformConfigView>>(),
    op(
        "get",
        "/api/platform-configs/{id}",
        "platforms",
        "One connection",
        Login,
    )
    .answers::<PlatformConfigView>(),
    op(
        "patch",
        "/api/platform-configs/{id}",
        "platforms",
        "Change a connection",
        Permission("config:update"),
    )
    .takes::<PlatformConfigWrite>()
    .answers::<PlatformConfigView>(),
    op(
        "put",
        "/api/platform-configs/{id}",
        "platforms",
        "Change a connection",
        Permission("config:update"),
    )
    .takes::<PlatformConfigWrite>()
    .answers::<PlatformConfigView>(),
    op(
        "delete",
        "/api/platform-configs/{id}",
        "platforms",
        "Delete a connection",
        Permission("config:delete"),
    )
    .status(204),
    op(
        "get",
        "/api/platform-configs/{id}/token",
        "platforms",
        "The decrypted access token",
        Admin,
    )
    .answers::<PlatformTokenView>(),
    op(
        "get",
        "/api/projects",
        "projects",
        "Projects",
        Login,
    )
    .answers::<Vec<ProjectView>>(),
    op(
        "get",
        "/api/projects/paginated",
        "projects",
        "Projects, paginated and filtered",
        Login,
    )
    .query(&[
        "page",
        "pageSize",
        "search",
        "platformType",
        "platformConfigId",
        "enabled",
        "webhookStatus",
    ])
    .answers::<Vec<ProjectView>>(),
    op(
        "get",
        "/api/projects/stats",
        "projects",
        "Project counts",
        Login,
    )
    .answers::<ProjectStatsView>(),
    op(
        "post",
        "/api/projects/sync/platform",
        "projects",
        "Import the token's projects from a forge",
        Permission("project:create"),
    )
    .takes::<SyncRequest>()
    .answers::<SyncResult>(),
    op(
        "get",
        "/api/projects/{id}",
        "projects",
        "One project",
        Login,
    )
    .answers::<ProjectView>(),
    op(
        "patch",
        "/api/projects/{id}",
        "projects",
        "Change a project's review settings",
        Permission("project:update"),
    )
    .takes::<ProjectUpdate>()
    .answers::<ProjectView>(),
    op(
        "get",
        "/api/projects/{id}/config",
        "projects",
        "A project's effective settings",
        Login,
    )
    .answers::<ResolvedProjectConfig>(),
    op(
        "post",
        "/api/projects/{id}/webhook/check",
        "projects",
        "Check the project's webhook at the forge",
        Permission("project:update"),
    )
    .answers::<WebhookCheck>(),
    op(
        "get",
        "/api/settings/global",
        "projects",
        "Defaults projects inherit",
        Login,
    )
    .answers::<GlobalSettings>(),
    op(
        "put",
        "/api/settings/global",
        "projects",
        "Replace the defaults",
        Permission("config:update"),
    )
    .takes::<GlobalSettings>()
    .answers::<GlobalSettings>(),
    op(
        "patch",
        "/api/settings/global",
        "projects",
        "Change the defaults",
        Permission("config:update"),
    )
    .takes::<GlobalSettings>()
    .answers::<GlobalSettings>(),
    op(
        "get",
        "/api/notifications/config",
        "notifications",
        "Notification settings (secrets masked)",
        Login,
    )
    .answers::<NotificationConfig>(),
    op(
        "put",
        "/api/notifications/config",
        "notifications",
        "Replace the notification settings",
        Permission("config:update"),
    )
    .takes::<NotificationConfig>()
    .answers::<NotificationConfig>(),
    op(
        "patch",
        "/api/notifications/config",
        "notifications",
        "Change the notification settings",
        Permission("config:update"),
    )
    .takes::<NotificationConfig>()
    .answers::<NotificationConfig>(),
    op(
        "post",
        "/api/notifications/config/test-channel",
        "notifications",
        "Send a test message through one channel",
        Permission("config:update"),
    )
    .takes::<TestChannelRequest>()
    .answers::<TestChannelResult>(),
    op(
        "post",
        "/api/notifications/config/vapid",
        "notifications",
        "Generate a VAPID key pair (private key shown once)",
        Permission("config:update"),
    )
    .status(201)
    .answers::<VapidKeysView>(),
    op(
        "get",
        "/api/notifications/push/vapid-public-key",
        "notifications",
        "The VAPID public key browsers subscribe with",
        Login,
    )
    .answers::<VapidPublicKeyView>(),
    op(
        "get",
        "/api/notifications/push/subscriptions",
        "notifications",
        "The caller's browser push subscriptions (everyone's with config:update)",
        Login,
    )
    .answers::<Vec<PushSubscriptionView>>(),
    op(
        "post",
        "/api/notifications/push/subscriptions",
        "notifications",
        "Subscribe a browser (PushSubscription.toJSON())",
        Login,
    )
    .status(201)
    .takes::<PushSubscribeRequest>()
    .answers::<PushSubscriptionView>(),
    op(
        "delete",
        "/api/notifications/push/subscriptions/{id}",
        "notifications",
        "Unsubscribe a browser",
        Login,
    )
    .status(204),
    op(
        "get",
        "/api/notifications/history",
        "notifications",
        "Deliveries, newest first",
        Login,
    )
    .query(&["page", "pageSize", "channel", "status", "event", "reviewId", "startDate", "endDate"])
    .answers::<Vec<NotificationView>>(),
    op(
        "get",
        "/api/notifications/history/{id}",
        "notifications",
        "One delivery",
        Login,
    )
    .answers::<NotificationView>(),
    op(
        "get",
        "/api/notifications/stats",
        "notifications",
        "Deliveries per status and channel",
        Login,
    )
    .query(&["startDate", "endDate"])
    .answers::<NotificationStatsView>(),
    op(
        "post",
        "/api/webhook/gitlab",
        "webhooks",
        "GitLab webhook (X-Gitlab-Token)",
        Public,
    )
    .status(202)
    .takes_any(GITLAB_EVENT)
    .answers::<WebhookAnswer>(),
    op(
        "post",
        "/api/webhook/github",
        "webhooks",
        "GitHub webhook (X-Hub-Signature-256)",
        Public,
    )
    .status(202)
    .takes_any(GITHUB_EVENT)
    .answers::<WebhookAnswer>(),
    op(
        "get",
        "/api/webhook-events",
        "webhooks",
        "Webhook deliveries with their outcome",
        Login,
    )
    .query(&["platform", "outcome", "page", "pageSize"])
    .answers::<Vec<WebhookEventView>>(),
];

fn operation_id(o: &Operation) -> String {
    let mut id = o.method.to_owned();
    for part in o.path.trim_start_matches("/api/").split(['/', '-', '.']) {
        let part = part.trim_matches(['{', '}']);
        let mut c = part.chars();
        if let Some(f) = c.next() {
            id.push(f.to_ascii_uppercase());
            id.push_str(c.as_str());
        }
    }
    id
}

fn description(o: &Operation) -> String {
    match o.access {
        Public => "No credentials.".to_owned(),
        Login => "Any API key or dashboard session.".to_owned(),
        Permission(p) => format!("Needs the permission `{p}`."),
        Admin => "Admins only.".to_owned(),
    }
}

/// Where the generated schemas point their `$ref`s.
const COMPONENTS: &str = "#/components/schemas/";

/// Schema generators: requests as the server deserializes them, answers as
/// it serializes them.
struct Generators {
    requests: SchemaGenerator,
    answers: SchemaGenerator,
}

impl Generators {
    fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        });
        Self {
            requests: settings.clone().for_deserialize().into_generator(),
            answers: settings.for_serialize().into_generator(),
        }
    }
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn in_envelope(data: Value) -> Value {
    json!({"allOf": [
        {"$ref": format!("{COMPONENTS}Envelope")},
        {"type": "object", "required": ["data"], "properties": {"data": data}}
    ]})
}

fn operation(o: &Operation, g: &mut Generators) -> Value {
    let mut params: Vec<Value> = o
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(o.query.iter().map(
        |q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}),
    ));
    let ok = match o.response {
        Body::Empty => json!({"description": "Done (no body)."}),
        Body::Typed { schema, .. } => json!({
            "description": "Success.",
            "content": json_content(in_envelope(schema(&mut g.answers).to_value()))
        }),
        Body::Any(what) => json!({
            "description": "Success.",
            "content": json_content(in_envelope(json!({"description": what})))
        }),
        Body::Bare(what) => json!({
            "description": what,
            "content": json_content(json!({"type": "object"}))
        }),
    };
    let err = |what: &str| json!({"description": what, "content": json_content(json!({"$ref": format!("{COMPONENTS}ErrorEnvelope")}))});
    let mut responses = Map::new();
    responses.insert(o.ok.to_string(), ok);
    responses.insert(
        "400".into(),
        err("Malformed request: `error.detail` says what was wrong."),
    );
    if o.access != Public {
        responses.insert("401".into(), err("Missing or invalid credentials."));
        responses.insert("403".into(), err("The caller lacks the permission."));
    }
    if o.path.contains('{') {
        responses.insert("404".into(), err("Not found."));
    }
    responses.insert("429".into(), err("Rate limited (see `Retry-After`)."));
    let mut v = json!({
        "operationId": operation_id(o),
        "tags": [o.tag],
        "summary": o.summary,
        "description": description(o),
        "parameters": params,
        "responses": responses,
    });
    if o.access == Public {
        v["security"] = json!([]);
    }
    let request = match o.request {
        Body::Empty => None,
        Body::Typed { schema, .. } => Some(schema(&mut g.requests).to_value()),
        Body::Any(what) | Body::Bare(what) => Some(json!({"type": "object", "description": what})),
    };
    if let Some(schema) = request {
        v["requestBody"] = json!({"required": true, "content": json_content(schema)});
    }
    v
}

/// Rewrites every `$ref` to a renamed component.
fn rename_refs(v: &mut Value, renamed: &BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(new) = r
                    .strip_prefix(COMPONENTS)
                    .and_then(|name| renamed.get(name))
            {
                *r = format!("{COMPONENTS}{new}");
            }
            m.values_mut().for_each(|v| rename_refs(v, renamed));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

/// The components of both generators in one map. A type described alike
/// for requests and answers appears once; one described differently (or
/// referring to one that is) keeps its name for answers and gets `…Input`
/// for requests. Returns the map and the request names renamed.
fn merge(
    mut answers: Map<String, Value>,
    requests: Map<String, Value>,
) -> (Map<String, Value>, BTreeMap<String, String>) {
    let mut renamed = BTreeMap::new();
    loop {
        let mut more = false;
        for (name, schema) in &requests {
            if renamed.contains_key(name) {
                continue;
            }
            let mut schema = schema.clone();
            rename_refs(&mut schema, &renamed);
            if answers.get(name).is_some_and(|a| *a != schema) {
                let mut new = format!("{name}Input");
                let mut n = 2;
                while answers.contains_key(&new) || requests.contains_key(&new) {
                    new = format!("{name}Input{n}");
                    n += 1;
                }
                renamed.insert(name.clone(), new);
                more = true;
            }
        }
        if !more {
            break;
        }
    }
    for (name, mut schema) in requests {
        rename_refs(&mut schema, &renamed);
        let name = renamed.get(&name).cloned().unwrap_or(name);
        answers.entry(name).or_insert(schema);
    }
    (answers, renamed)
}

/// The document.
pub fn document() -> Value {
    let mut g = Generators::new();
    let mut paths = Map::new();
    for o in OPERATIONS {
        let op = operation(o, &mut g);
        let entry = paths
            .entry(o.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(o.method.to_owned(), op);
        }
    }
    let meta = g.answers.subschema_for::<Meta>().to_value();
    let error = g.answers.subschema_for::<ApiErrorBody>().to_value();
    let (mut schemas, renamed) = merge(
        g.answers.take_definitions(true),
        g.requests.take_definitions(true),
    );
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for o in item.values_mut() {
            if let Some(body) = o.get_mut("requestBody") {
                rename_refs(body, &renamed);
            }
        }
    }
    schemas.insert(
        "Envelope".into(),
        json!({
            "description": "Every success answer: `data` is the payload (typed per operation), `meta.pagination` comes with paginated lists, `error` is null.",
            "type": "object",
            "required": ["data", "error"],
            "properties": {"data": {}, "meta": meta, "error": {"type": "null"}}
        }),
    );
    schemas.insert(
        "ErrorEnvelope".into(),
        json!({
            "description": "Every error answer: `data` is null, `error` says what went wrong.",
            "type": "object",
            "required": ["data", "error"],
            "properties": {"data": {"type": "null"}, "error": error}
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ai-review",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted AI code review: reviews, runners, configuration, notifications. Every answer is the envelope {data, meta, error}.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer air_…`"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "ai_review_session", "description": "The dashboard's session; calls that change state also need `x-csrf-token`."}
            },
            "schemas": schemas
        }
    })
}

/// `GET /api/openapi.json`.
pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_review_domain::{
        Attempt, CommitSha, ConfigId, LlmProvider, Phase, ProjectId, RepoUrl, ReviewId,
        ReviewStatus, RunnerId, RunnerStatus, SecretString, TaskId, TaskOutcome, TaskState,
        Timestamp, UserId,
    };
    use ai_review_protocol::api::{AttemptView, EventView, PushView, TaskView};
    use ai_review_protocol::runner::{
        AiConfigSpec, CloneCredentials, LogLineIn, RuleSpec, TaskSpec, TemplateSpec,
    };
    use ai_review_protocol::{Envelope, Pagination};
    use std::collections::BTreeSet;

    /// `(method, path)` of every `.route(…)` under `/api` in a router's
    /// source, with the handler's path as written there.
    fn routed(src: &str) -> BTreeMap<(String, String), String> {
        let method =
            regex::Regex::new(r"\b(get|post|put|patch|delete)\(([\w:]+)\)").expect("regex");
        let mut out = BTreeMap::new();
        for chunk in src.split(".route(").skip(1) {
            let Some(start) = chunk.find('"') else {
                continue;
            };
            let rest = &chunk[start + 1..];
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            if !path.starts_with("/api") {
                continue;
            }
            let tail = rest[end..].split(".layer(").next().unwrap_or("");
            for m in method.captures_iter(tail) {
                out.insert((m[1].to_owned(), path.to_owned()), m[2].to_owned());
            }
        }
        out
    }

    fn all_routes() -> BTreeMap<(String, String), String> {
        let mut routes = routed(include_str!("app.rs"));
        routes.extend(routed(include_str!("dashboard/mod.rs")));
        routes
    }

    #[test]
    fn every_api_route_is_in_the_document_and_nothing_else() {
        let routes: BTreeSet<(String, String)> = all_routes().into_keys().collect();
        assert!(
            routes.len() > 50,
            "the scan found only {} routes",
            routes.len()
        );
        let documented: BTreeSet<(String, String)> = OPERATIONS
            .iter()
            .map(|o| (o.method.to_owned(), o.path.to_owned()))
            .collect();
        let missing: Vec<_> = routes.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document: {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&routes).collect();
        assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    }

    /// The source of a handler module, as the routers name it.
    fn source_of(module: &str) -> &'static str {
        match module {
            "routes::configs" => include_str!("routes/configs.rs"),
            "routes::health" => include_str!("routes/health.rs"),
            "routes::keys" => include_str!("routes/keys.rs"),
            "routes::notifications" => include_str!("routes/notifications.rs"),
            "routes::platforms" => include_str!("routes/platforms.rs"),
            "routes::projects" => include_str!("routes/projects.rs"),
            "routes::results" => include_str!("routes/results.rs"),
            "routes::reviews" => include_str!("routes/reviews.rs"),
            "routes::runners" => include_str!("routes/runners.rs"),
            "routes::sync" => include_str!("routes/sync.rs"),
            "routes::users" => include_str!("routes/users.rs"),
            "crate::openapi" => include_str!("openapi.rs"),
            "crate::webhooks" => include_str!("webhooks/mod.rs"),
            "queue" => include_str!("dashboard/queue.rs"),
            other => panic!("a route's handler is in {other}: add its source to `source_of`"),
        }
    }

    /// `pub async fn name(…) -> …` and the function's body.
    fn signature<'a>(src: &'a str, name: &str) -> (&'a str, &'a str) {
        let start = src
            .find(&format!("pub async fn {name}("))
            .unwrap_or_else(|| panic!("no `pub async fn {name}(`"));
        let rest = &src[start..];
        let sig = rest.find(" {\n").expect("function body");
        let end = rest.find("\n}\n").expect("end of the function");
        (&rest[..sig], &rest[sig..end])
    }

    /// The type argument of the first `open` (e.g. `ApiJson<`) in `s`.
    fn type_arg(s: &str, open: &str) -> Option<String> {
        let start = s.find(open)? + open.len();
        let mut depth = 1;
        for (i, c) in s[start..].char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(s[start..start + i].to_owned());
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A type without module paths or spaces: `Vec<RunnerView>`.
    fn bare_type(t: &str) -> String {
        let paths = regex::Regex::new(r"\b[A-Za-z_][A-Za-z0-9_]*::").expect("regex");
        paths
            .replace_all(&t.split_whitespace().collect::<String>(), "")
            .into_owned()
    }

    #[test]
    fn documented_bodies_are_the_handlers_types() {
        for ((method, path), handler) in all_routes() {
            let o = OPERATIONS
                .iter()
                .find(|o| o.method == method && o.path == path)
                .unwrap_or_else(|| panic!("{method} {path} is not documented"));
            let (module, name) = handler.rsplit_once("::").expect("handler path");
            let (sig, body) = signature(source_of(module), name);
            let (params, ret) = sig.split_once("->").unwrap_or((sig, ""));
            let at = format!("{method} {path} ({handler})");
            if !ret.contains("StatusCode") && !ret.contains("Response") {
                assert_eq!(o.ok, 200, "{at}: answers 200");
            }
            for (status, code) in [
                ("StatusCode::CREATED", 201),
                ("StatusCode::ACCEPTED", 202),
                ("StatusCode::NO_CONTENT", 204),
            ] {
                if body.contains(status) {
                    assert_eq!(o.ok, code, "{at}: answers {status}");
                }
            }
            match (
                type_arg(params, "ApiJson<").map(|t| bare_type(&t)),
                o.request,
            ) {
                // A handler merging a raw JSON object into a type is
                // documented with that type.
                (Some(t), Body::Typed { .. }) if t == "Map<String,Value>" => {}
                (Some(t), Body::Typed { type_name, .. }) => {
                    assert_eq!(bare_type(type_name()), t, "{at}: request body");
                }
                (Some(t), other) => panic!("{at}: takes {t}, documented as {other:?}"),
                (None, Body::Typed { type_name, .. }) => {
                    panic!("{at}: takes no JSON, documented as {}", type_name())
                }
                (None, _) => {}
            }
            match (
                type_arg(ret, "Envelope<").map(|t| bare_type(&t)),
                o.response,
            ) {
                (Some(t), Body::Typed { type_name, .. }) => {
                    assert_eq!(bare_type(type_name()), t, "{at}: answer");
                }
                (Some(t), Body::Any(_)) => assert_eq!(t, "Value", "{at}: typed, say so"),
                (Some(t), other) => panic!("{at}: answers {t}, documented as {other:?}"),
                (None, r) if ret.contains("Json<") => {
                    assert!(
                        matches!(r, Body::Bare(_)),
                        "{at}: answers outside the envelope"
                    )
                }
                (None, r) if bare_type(ret) == "ApiResult<StatusCode>" => {
                    assert!(
                        o.ok == 204 && matches!(r, Body::Empty),
                        "{at}: answers no body"
                    )
                }
                // A handler building its `Response` itself (health):
                // documented by hand, but documented.
                (None, r) => assert!(matches!(r, Body::Typed { .. }), "{at}: {r:?}"),
            }
        }
    }

    fn op_of(method: &str, path: &str) -> &'static Operation {
        OPERATIONS
            .iter()
            .find(|o| o.method == method && o.path == path)
            .unwrap_or_else(|| panic!("{method} {path}"))
    }

    /// The schema of an operation's success answer (the whole envelope).
    fn answer<'a>(d: &'a Value, method: &str, path: &str) -> &'a Value {
        let o = op_of(method, path);
        &d["paths"][path][method]["responses"][o.ok.to_string()]["content"]["application/json"]["schema"]
    }

    /// The schema of an answer's `data`.
    fn data<'a>(d: &'a Value, method: &str, path: &str) -> &'a Value {
        &answer(d, method, path)["allOf"][1]["properties"]["data"]
    }

    fn request<'a>(d: &'a Value, method: &str, path: &str) -> &'a Value {
        &d["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    }

    /// Follows `$ref`s.
    fn resolve<'a>(d: &'a Value, s: &'a Value) -> &'a Value {
        match s["$ref"].as_str() {
            Some(r) => resolve(
                d,
                d.pointer(r.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("{r} does not resolve")),
            ),
            None => s,
        }
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    fn has_ref(v: &Value) -> bool {
        let mut r = Vec::new();
        refs(v, &mut r);
        !r.is_empty()
    }

    #[test]
    fn every_body_is_typed_or_says_why_not() {
        let d = document();
        let mut untyped = BTreeSet::new();
        for o in OPERATIONS {
            let at = format!("{} {}", o.method, o.path);
            assert_eq!(
                o.ok == 204,
                matches!(o.response, Body::Empty),
                "{at}: 204 exactly when nothing is answered"
            );
            if matches!(o.request, Body::Any(_) | Body::Bare(_))
                || matches!(o.response, Body::Any(_) | Body::Bare(_))
            {
                untyped.insert(at.clone());
            }
            if let Body::Typed { .. } = o.request {
                let s = request(&d, o.method, o.path);
                assert!(has_ref(s), "{at}: request body {s}");
                assert_eq!(
                    d["paths"][o.path][o.method]["requestBody"]["required"], true,
                    "{at}"
                );
            } else if let Body::Empty = o.request {
                assert!(
                    d["paths"][o.path][o.method].get("requestBody").is_none(),
                    "{at}"
                );
            }
            if let Body::Typed { .. } = o.response {
                assert_eq!(
                    answer(&d, o.method, o.path)["allOf"][0]["$ref"],
                    "#/components/schemas/Envelope",
                    "{at}"
                );
                let s = data(&d, o.method, o.path);
                assert!(has_ref(s), "{at}: answer {s}");
            }
        }
        let expected: BTreeSet<String> = [
            "get /api/openapi.json",
            "get /api/reviews/{id}/files",
            "post /api/webhook/github",
            "post /api/webhook/gitlab",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(untyped, expected, "only these bodies have no Rust type");
    }

    #[test]
    fn every_ref_resolves_and_every_schema_is_used() {
        let d = document();
        let mut all = Vec::new();
        refs(&d, &mut all);
        assert!(all.len() > 100, "{} refs", all.len());
        let mut used = BTreeSet::new();
        for r in &all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} points outside components/schemas"));
            let target = d.pointer(r.trim_start_matches('#'));
            assert!(
                target.is_some_and(|t| t.is_object() || t.is_boolean()),
                "{r} does not resolve"
            );
            used.insert(name.to_owned());
        }
        let defined: BTreeSet<String> = d["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .keys()
            .cloned()
            .collect();
        assert_eq!(used, defined, "every schema is referenced");
        fn keys(v: &Value, out: &mut BTreeSet<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| {
                    out.insert(k.clone());
                    keys(v, out);
                }),
                Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
                _ => {}
            }
        }
        let mut all_keys = BTreeSet::new();
        keys(&d, &mut all_keys);
        for stray in ["$defs", "definitions", "$schema", "nullable"] {
            assert!(!all_keys.contains(stray), "{stray} left in the document");
        }
    }

    #[test]
    fn schemas_carry_the_wire_names() {
        let d = document();
        let props = |s: &Value| -> BTreeSet<String> {
            resolve(&d, s)["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .cloned()
                .collect()
        };
        let required = |s: &Value| -> BTreeSet<String> {
            resolve(&d, s)["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let set = |a: &[&str]| -> BTreeSet<String> { a.iter().map(|s| (*s).to_owned()).collect() };

        // A request: camelCase, defaults optional, unknown fields refused.
        let trigger = request(&d, "post", "/api/reviews/trigger-manual-review");
        assert_eq!(trigger["$ref"], "#/components/schemas/TriggerManualReview");
        assert_eq!(
            props(trigger),
            set(&["projectId", "mrIid", "sendToPlatform", "templateId"])
        );
        assert_eq!(required(trigger), set(&["projectId", "mrIid"]));
        let t = resolve(&d, trigger);
        assert_eq!(t["additionalProperties"], false);
        assert_eq!(t["properties"]["projectId"]["format"], "uuid");
        assert_eq!(t["properties"]["sendToPlatform"]["type"], "boolean");

        // An answer: every field it always writes is required.
        let review = data(&d, "get", "/api/reviews/{id}");
        assert_eq!(review["$ref"], "#/components/schemas/ReviewView");
        let r = resolve(&d, review);
        assert_eq!(r["properties"]["roundNumber"]["type"], "integer");
        let req = required(review);
        for f in [
            "id",
            "roundNumber",
            "headSha",
            "baseSha",
            "task",
            "projectId",
        ] {
            assert!(req.contains(f), "{f} required in {req:?}");
        }
        assert!(!req.contains("push"), "skipped when absent");
        assert_eq!(
            r["properties"]["headSha"]["pattern"],
            "^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"
        );
        assert_eq!(r["properties"]["createdAt"]["format"], "date-time");
        let task = &r["properties"]["task"];
        let states = resolve(&d, &resolve(&d, task)["properties"]["state"]).to_string();
        for s in TaskState::ALL {
            assert!(states.contains(&format!("\"{s}\"")), "{s} in {states}");
        }
        // The list wraps the same type.
        let list = data(&d, "get", "/api/reviews");
        assert_eq!(props(list), set(&["items", "stats"]));
        assert_eq!(
            resolve(&d, list)["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/ReviewView"
        );

        // Flattened fields sit beside their neighbours.
        let reg = props(data(&d, "post", "/api/runners/register"));
        for f in [
            "id",
            "name",
            "maxConcurrency",
            "leaseDurationMs",
            "maxPollWaitMs",
        ] {
            assert!(reg.contains(f), "{f} in {reg:?}");
        }
        let claim = &data(&d, "get", "/api/runners/tasks/pending")["items"];
        let claim_props = props(claim);
        for f in [
            "taskId",
            "attempt",
            "reviewId",
            "headSha",
            "aiConfig",
            "cloneCredentials",
        ] {
            assert!(claim_props.contains(f), "{f} in {claim_props:?}");
        }
        let runner_id = &resolve(&d, request(&d, "post", "/api/runners/tasks/{id}/result"))["properties"]
            ["runnerId"];
        assert_eq!(runner_id["maxLength"], 64);
        assert!(runner_id["pattern"].is_string());

        // `null` clears, absence keeps.
        let ai = resolve(&d, request(&d, "patch", "/api/ai-configs/{id}"));
        assert_eq!(
            ai["properties"]["apiKey"]["type"],
            json!(["string", "null"])
        );
        assert!(required(ai).is_empty());

        // A type read and written differently is described twice.
        let put = request(&d, "put", "/api/notifications/config");
        assert_eq!(put["$ref"], "#/components/schemas/NotificationConfigInput");
        assert!(required(put).is_empty(), "every setting has a default");
        let got = data(&d, "get", "/api/notifications/config");
        assert_eq!(got["$ref"], "#/components/schemas/NotificationConfig");
        assert!(required(got).contains("channels"));
        assert_eq!(
            request(&d, "patch", "/api/notifications/config"),
            put,
            "a patch is a partial config"
        );

        // Errors.
        let e = resolve(
            &d,
            &d["components"]["schemas"]["ErrorEnvelope"]["properties"]["error"],
        );
        assert_eq!(
            e["required"],
            json!(["title", "status"]),
            "detail is optional"
        );
        assert!(d["components"]["schemas"]["Envelope"]["properties"]["meta"]["$ref"].is_string());
    }

    /// Checks a value against a schema of this document: the keywords
    /// schemars writes (`$ref`, `allOf`, `anyOf`, `oneOf`, `type`, `enum`,
    /// `const`, `properties`, `required`, `additionalProperties`, `items`,
    /// `pattern`, `minimum`, `maximum`, `maxLength` and the `date-time` and
    /// `uuid` formats).
    fn check(d: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
        let Some(s) = s.as_object() else {
            return match s {
                Value::Bool(false) => Err(format!("{at}: not allowed")),
                _ => Ok(()),
            };
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let target = d
                .pointer(r.trim_start_matches('#'))
                .ok_or_else(|| format!("{at}: {r} does not resolve"))?;
            check(d, target, v, at)?;
        }
        for x in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            check(d, x, v, at)?;
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|x| check(d, x, v, at).is_ok())
        {
            return Err(format!("{at}: {v} matches no branch of {any:?}"));
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let n = one.iter().filter(|x| check(d, x, v, at).is_ok()).count();
            if n != 1 {
                return Err(format!("{at}: {v} matches {n} oneOf branches"));
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let fits = types.iter().any(|t| match *t {
                "null" => v.is_null(),
                "boolean" => v.is_boolean(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => false,
            });
            if !fits {
                return Err(format!("{at}: {v} is not of type {t}"));
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            return Err(format!("{at}: {v} is not {c}"));
        }
        if let Some(x) = v.as_str() {
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && !regex::Regex::new(p).expect("pattern").is_match(x)
            {
                return Err(format!("{at}: {x:?} does not match {p}"));
            }
            if s.get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| x.chars().count() as u64 > m)
            {
                return Err(format!("{at}: {x:?} is too long"));
            }
            let format_ok = match s.get("format").and_then(Value::as_str) {
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(x).is_ok(),
                Some("uuid") => TaskId::parse(x).is_ok(),
                _ => true,
            };
            if !format_ok {
                return Err(format!("{at}: {x:?} is not a {}", s["format"]));
            }
        }
        let bound = |k: &str| s.get(k).and_then(Value::as_f64);
        if let Some(x) = v.as_f64()
            && (bound("minimum").is_some_and(|m| x < m) || bound("maximum").is_some_and(|m| x > m))
        {
            return Err(format!("{at}: {x} is out of range"));
        }
        if let Some(o) = v.as_object() {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap_or_default();
                if !o.contains_key(r) {
                    return Err(format!("{at}: `{r}` is missing"));
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                let at = format!("{at}.{k}");
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(p), _) | (None, Some(p)) => check(d, p, x, &at)?,
                    (None, None) => {}
                }
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                check(d, items, x, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    fn sha(c: char) -> CommitSha {
        CommitSha::parse(&c.to_string().repeat(40)).expect("sha")
    }

    fn review_view() -> ReviewView {
        let at = Timestamp::from_millis(1_795_000_000_123);
        let runner = RunnerId::parse("runner-1").expect("runner id");
        ReviewView {
            id: ReviewId::generate(),
            status: ReviewStatus::Completed,
            repo_url: RepoUrl::parse("https://git.example.com/group/repo.git").expect("url"),
            base_sha: sha('a'),
            head_sha: sha('b'),
            branch: Some("feature".into()),
            title: None,
            created_by: UserId::generate(),
            created_at: at,
            updated_at: at,
            round_number: 2,
            project_id: Some(ProjectId::generate().to_string()),
            change_number: Some(7),
            ai_config_id: None,
            template_id: None,
            applied_rule_ids: vec![ConfigId::generate().to_string()],
            reviewed_lines: 120,
            rating: Some(4),
            push: Some(PushView {
                state: "sent".into(),
                attempts: 1,
                error: None,
            }),
            task: TaskView {
                id: TaskId::generate(),
                state: TaskState::Completed,
                phase: Some(Phase::Submitting),
                attempt: Attempt(1),
                max_attempts: 3,
                runner_id: Some(runner.clone()),
                required_tags: vec!["gpu".into()],
                lease_expires_at: None,
                expires_at: at,
                cancel_requested: false,
                failure_reason: None,
                result: Some(json!({"findings": []})),
                created_at: at,
                finished_at: Some(at),
                attempts: vec![AttemptView {
                    attempt: Attempt(1),
                    runner_id: runner,
                    claimed_at: at,
                    finished_at: Some(at),
                    outcome: Some("succeeded".into()),
                    reason: None,
                }],
                events: vec![EventView {
                    attempt: Attempt(1),
                    kind: "claimed".into(),
                    detail: String::new(),
                    at,
                }],
            },
        }
    }

    fn assignment() -> TaskAssignment {
        TaskAssignment {
            task_id: TaskId::generate(),
            attempt: Attempt(2),
            max_attempts: 3,
            lease_expires_at: Timestamp::from_millis(1_795_000_000_000),
            required_tags: Vec::new(),
            spec: TaskSpec {
                review_id: ReviewId::generate(),
                repo_url: RepoUrl::parse("git@github.com:org/repo.git").expect("url"),
                branch: None,
                base_sha: sha('c'),
                head_sha: sha('d'),
                title: Some("Fix".into()),
                file_changes: Vec::new(),
                ai_config: Some(AiConfigSpec {
                    id: "env".into(),
                    name: "env".into(),
                    provider: LlmProvider::Anthropic,
                    base_url: "https://api.anthropic.com/v1".into(),
                    model: "m".into(),
                    api_key: Some(SecretString::new("sk-1")),
                    temperature: Some(0.2),
                    max_output_tokens: 4096,
                    max_input_tokens_per_call: 24_000,
                    timeout_ms: 120_000,
                    token_budget: 200_000,
                    input_cost_per_mtok: None,
                    output_cost_per_mtok: Some(15.0),
                }),
                template: Some(TemplateSpec {
                    id: "t".into(),
                    content: "Review {{title}}".into(),
                }),
                rules: vec![RuleSpec {
                    id: "r".into(),
                    name: "rust".into(),
                    paths: vec!["**/*.rs".into()],
                    instructions: "No unwrap.".into(),
                }],
                excludes: vec!["*.lock".into()],
                since_sha: Some(sha('e')),
                clone_credentials: Some(CloneCredentials {
                    username: "x-access-token".into(),
                    password: Some(SecretString::new("ghs_1")),
                }),
                request_id: Some("req-1".into()),
            },
        }
    }

    fn to_json<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).expect("json")
    }

    #[test]
    fn real_values_match_their_schemas() {
        let d = document();
        let answers: Vec<(&str, &str, Value)> = vec![
            (
                "get",
                "/api/reviews/{id}",
                to_json(&Envelope::ok(review_view())),
            ),
            (
                "get",
                "/api/reviews",
                to_json(&Envelope::paginated(
                    ReviewList {
                        items: vec![review_view()],
                        stats: Default::default(),
                    },
                    Pagination::new(1, 20, 1),
                )),
            ),
            (
                "get",
                "/api/runners/tasks/pending",
                to_json(&Envelope::ok(vec![assignment()])),
            ),
            (
                "post",
                "/api/runners/register",
                to_json(&Envelope::ok(RegisterResponse {
                    runner: RunnerView {
                        id: RunnerId::parse("r.1").expect("id"),
                        name: "r".into(),
                        version: "0.1.0".into(),
                        max_concurrency: 5,
                        tags: Vec::new(),
                        status: RunnerStatus::Online,
                        active_jobs: 0,
                        registered_at: Timestamp::from_millis(0),
                        last_heartbeat_at: Timestamp::from_millis(0),
                    },
                    lease_duration_ms: 60_000,
                    heartbeat_timeout_ms: 60_000,
                    max_poll_wait_ms: 30_000,
                })),
            ),
            (
                "get",
                "/api/notifications/config",
                to_json(&Envelope::ok(NotificationConfig::default())),
            ),
            (
                "get",
                "/api/settings/global",
                to_json(&Envelope::ok(GlobalSettings::default())),
            ),
        ];
        for (method, path, v) in &answers {
            check(&d, answer(&d, method, path), v, "$")
                .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{v}"));
        }
        let requests: Vec<(&str, &str, Value)> = vec![
            (
                "post",
                "/api/reviews/trigger-manual-review",
                json!({"projectId": ProjectId::generate(), "mrIid": 3}),
            ),
            (
                "post",
                "/api/runners/tasks/{id}/result",
                to_json(&ResultRequest {
                    runner_id: RunnerId::parse("r").expect("id"),
                    attempt: Attempt(1),
                    outcome: TaskOutcome::Failed,
                    reason: Some("timeout".into()),
                    retryable: true,
                    output: Some(json!({"any": ["thing"]})),
                }),
            ),
            (
                "post",
                "/api/runners/tasks/{id}/logs",
                to_json(&LogsRequest {
                    runner_id: RunnerId::parse("r").expect("id"),
                    attempt: Attempt(1),
                    lines: vec![LogLineIn {
                        text: "cloning".into(),
                        stream: None,
                        at: Some(Timestamp::from_millis(5)),
                    }],
                }),
            ),
            (
                "post",
                "/api/runners/{id}/heartbeat",
                json!({"status": "busy", "activeJobs": 2}),
            ),
            (
                "patch",
                "/api/ai-configs/{id}",
                json!({"apiKey": null, "temperature": 0.5}),
            ),
            (
                "patch",
                "/api/projects/{id}",
                json!({"enabled": true, "excludes": null}),
            ),
            (
                "put",
                "/api/notifications/config",
                to_json(&NotificationConfig::default()),
            ),
            (
                "patch",
                "/api/notifications/config",
                json!({"channels": ["slack"]}),
            ),
            (
                "put",
                "/api/settings/global",
                to_json(&GlobalSettings::default()),
            ),
        ];
        for (method, path, v) in &requests {
            check(&d, request(&d, method, path), v, "$")
                .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{v}"));
        }
        let not_found = to_json(&Envelope::error("NOT_FOUND", 404, Some("gone".into())));
        check(
            &d,
            &d["paths"]["/api/reviews/{id}"]["get"]["responses"]["404"]["content"]
                ["application/json"]["schema"],
            &not_found,
            "$",
        )
        .expect("error envelope");

        // The checker is not vacuous: what the server would refuse, or
        // never write, fails.
        let review = answer(&d, "get", "/api/reviews/{id}");
        let good = to_json(&Envelope::ok(review_view()));
        for (pointer, bad) in [
            ("/data/headSha", json!("abc123")),
            ("/data/roundNumber", json!("2")),
            ("/data/task/state", json!("running")),
            ("/data/createdAt", json!("yesterday")),
            ("/data/id", json!("42")),
            ("/error", json!({"title": "X", "status": 500})),
        ] {
            let mut v = good.clone();
            *v.pointer_mut(pointer).expect(pointer) = bad;
            assert!(check(&d, review, &v, "$").is_err(), "{pointer} accepted");
        }
        let mut v = good.clone();
        v["data"]
            .as_object_mut()
            .expect("data")
            .remove("roundNumber");
        assert!(check(&d, review, &v, "$").is_err(), "roundNumber missing");
        let trigger = request(&d, "post", "/api/reviews/trigger-manual-review");
        for bad in [
            json!({"mrIid": 3}),
            json!({"projectId": ProjectId::generate(), "mrIid": 3, "bogus": 1}),
            json!({"projectId": "p", "mrIid": 3}),
        ] {
            assert!(check(&d, trigger, &bad, "$").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_document_is_well_formed_openapi() {
        let d = document();
        assert_eq!(d["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (path, item) in d["paths"].as_object().expect("paths") {
            assert!(path.starts_with('/'), "{path}");
            let declared: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            for (method, o) in item.as_object().expect("item") {
                assert!(["get", "post", "put", "patch", "delete"].contains(&method.as_str()));
                let id = o["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                let params = o["parameters"].as_array().expect("parameters");
                let in_path: BTreeSet<&str> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true);
                        p["name"].as_str().expect("name")
                    })
                    .collect();
                assert_eq!(in_path, declared, "{method} {path}");
                let responses = o["responses"].as_object().expect("responses");
                assert!(!responses.is_empty());
                for (code, r) in responses {
                    assert!(code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)));
                    assert!(r["description"].is_string());
                }
            }
        }
    }
}
