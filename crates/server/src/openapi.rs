//! The OpenAPI 3.1 document of the public API (`GET /api/openapi.json`),
//! built from [`OPERATIONS`]: one entry per route and method, with what it
//! needs (public, a login, a permission) and its query parameters. Path
//! parameters come from the path itself. A test reads the router's source
//! and fails when a route is missing here or listed here but gone.
//!
//! Every answer is the envelope `{data, meta, error}`; bodies are
//! described as JSON objects (the README's API tables give their fields).

use serde_json::{Map, Value, json};

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
    }
}

const fn with(mut o: Operation, query: &'static [&'static str], ok: u16) -> Operation {
    o.query = query;
    o.ok = ok;
    o
}

use Access::{Admin, Login, Permission, Public};

/// Every operation of the API.
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/api/health",
        "health",
        "Liveness and database check (503 when the database does not answer)",
        Public,
    ),
    op(
        "get",
        "/api/openapi.json",
        "health",
        "This document",
        Public,
    ),
    op(
        "get",
        "/api/me",
        "keys",
        "The caller and its permissions",
        Login,
    ),
    op(
        "get",
        "/api/api-keys",
        "keys",
        "The caller's API keys",
        Login,
    ),
    with(
        op(
            "post",
            "/api/api-keys",
            "keys",
            "Create an API key (shown once)",
            Login,
        ),
        &[],
        201,
    ),
    op(
        "delete",
        "/api/api-keys/{id}",
        "keys",
        "Revoke an API key",
        Login,
    ),
    op(
        "get",
        "/api/runners",
        "runners",
        "Registered runners",
        Login,
    ),
    op("get", "/api/runners/{id}", "runners", "One runner", Login),
    op(
        "post",
        "/api/runners/register",
        "runner protocol",
        "Register (or re-register) a runner; headers x-runner-id, x-runner-name, x-runner-version, x-runner-max-concurrency, x-runner-tags",
        Login,
    ),
    op(
        "post",
        "/api/runners/{id}/heartbeat",
        "runner protocol",
        "Heartbeat: renews leases, answers cancelTaskIds",
        Login,
    ),
    with(
        op(
            "get",
            "/api/runners/tasks/pending",
            "runner protocol",
            "Claim up to `limit` tasks, long-polling up to `wait` ms",
            Login,
        ),
        &["runnerId", "limit", "wait"],
        200,
    ),
    op(
        "post",
        "/api/runners/tasks/{id}/status",
        "runner protocol",
        "Report the execution phase (renews the lease)",
        Login,
    ),
    op(
        "post",
        "/api/runners/tasks/{id}/logs",
        "runner protocol",
        "Append log lines",
        Login,
    ),
    op(
        "post",
        "/api/runners/tasks/{id}/result",
        "runner protocol",
        "Submit the result (idempotent per attempt)",
        Login,
    ),
    with(
        op(
            "get",
            "/api/reviews",
            "reviews",
            "Reviews with stats",
            Login,
        ),
        &[
            "page",
            "pageSize",
            "projectId",
            "status",
            "startDate",
            "endDate",
        ],
        200,
    ),
    with(
        op(
            "post",
            "/api/reviews",
            "reviews",
            "Queue a review of a revision range",
            Permission("review:create"),
        ),
        &[],
        202,
    ),
    with(
        op(
            "post",
            "/api/reviews/trigger-manual-review",
            "reviews",
            "Queue a review of a merge/pull request",
            Permission("review:create"),
        ),
        &[],
        202,
    ),
    op(
        "get",
        "/api/reviews/{id}",
        "reviews",
        "One review: state, phase, attempts, history, result",
        Login,
    ),
    op(
        "post",
        "/api/reviews/{id}/cancel",
        "reviews",
        "Cancel (creator or admin)",
        Login,
    ),
    with(
        op(
            "post",
            "/api/reviews/{id}/retry",
            "reviews",
            "Queue a finished review again (creator or admin)",
            Permission("review:create"),
        ),
        &[],
        202,
    ),
    with(
        op(
            "get",
            "/api/reviews/{id}/logs",
            "reviews",
            "Task log lines",
            Login,
        ),
        &["after", "limit"],
        200,
    ),
    with(
        op(
            "get",
            "/api/reviews/{id}/comments",
            "reviews",
            "Findings",
            Login,
        ),
        &["file", "severity", "limit", "offset"],
        200,
    ),
    op(
        "get",
        "/api/reviews/{id}/files",
        "reviews",
        "Changed files with statistics",
        Login,
    ),
    op(
        "get",
        "/api/reviews/{id}/files/progress",
        "reviews",
        "Per-file review status",
        Login,
    ),
    op(
        "get",
        "/api/queuedash",
        "reviews",
        "Queue monitoring view",
        Login,
    ),
    op("get", "/api/users", "users", "Users", Admin),
    with(
        op("post", "/api/users", "users", "Create a user", Admin),
        &[],
        201,
    ),
    op(
        "patch",
        "/api/users/{id}",
        "users",
        "Change a user's role, permissions, password or disabled flag",
        Admin,
    ),
    op(
        "get",
        "/api/ai-configs",
        "configs",
        "Model configurations (keys masked)",
        Login,
    ),
    with(
        op(
            "post",
            "/api/ai-configs",
            "configs",
            "Create a model configuration",
            Permission("config:create"),
        ),
        &[],
        201,
    ),
    op(
        "get",
        "/api/ai-configs/{id}",
        "configs",
        "One model configuration",
        Login,
    ),
    op(
        "patch",
        "/api/ai-configs/{id}",
        "configs",
        "Change a model configuration",
        Permission("config:update"),
    ),
    op(
        "delete",
        "/api/ai-configs/{id}",
        "configs",
        "Delete a model configuration",
        Permission("config:delete"),
    ),
    op(
        "get",
        "/api/review-templates",
        "configs",
        "Review templates",
        Login,
    ),
    with(
        op(
            "post",
            "/api/review-templates",
            "configs",
            "Create a template",
            Permission("config:create"),
        ),
        &[],
        201,
    ),
    op(
        "get",
        "/api/review-templates/{id}",
        "configs",
        "One template",
        Login,
    ),
    op(
        "patch",
        "/api/review-templates/{id}",
        "configs",
        "Change a template",
        Permission("config:update"),
    ),
    op(
        "delete",
        "/api/review-templates/{id}",
        "configs",
        "Delete a template",
        Permission("config:delete"),
    ),
    op("get", "/api/review-rules", "configs", "Review rules", Login),
    with(
        op(
            "post",
            "/api/review-rules",
            "configs",
            "Create a rule",
            Permission("config:create"),
        ),
        &[],
        201,
    ),
    op(
        "get",
        "/api/review-rules/{id}",
        "configs",
        "One rule",
        Login,
    ),
    op(
        "patch",
        "/api/review-rules/{id}",
        "configs",
        "Change a rule",
        Permission("config:update"),
    ),
    op(
        "delete",
        "/api/review-rules/{id}",
        "configs",
        "Delete a rule",
        Permission("config:delete"),
    ),
    op(
        "get",
        "/api/platform-configs",
        "platforms",
        "Forge connections (tokens masked)",
        Login,
    ),
    with(
        op(
            "post",
            "/api/platform-configs",
            "platforms",
            "Connect a forge",
            Permission("config:create"),
        ),
        &[],
        201,
    ),
    op(
        "get",
        "/api/platform-configs/enabled",
        "platforms",
        "Enabled forge connections",
        Login,
    ),
    with(
        op(
            "get",
            "/api/platform-configs/default",
            "platforms",
            "The default connection of a type",
            Login,
        ),
        &["type"],
        200,
    ),
    op(
        "get",
        "/api/platform-configs/type/{type}",
        "platforms",
        "Connections of a type",
        Login,
    ),
    op(
        "get",
        "/api/platform-configs/{id}",
        "platforms",
        "One connection",
        Login,
    ),
    op(
        "patch",
        "/api/platform-configs/{id}",
        "platforms",
        "Change a connection",
        Permission("config:update"),
    ),
    op(
        "put",
        "/api/platform-configs/{id}",
        "platforms",
        "Change a connection",
        Permission("config:update"),
    ),
    op(
        "delete",
        "/api/platform-configs/{id}",
        "platforms",
        "Delete a connection",
        Permission("config:delete"),
    ),
    op(
        "get",
        "/api/platform-configs/{id}/token",
        "platforms",
        "The decrypted access token",
        Admin,
    ),
    op("get", "/api/projects", "projects", "Projects", Login),
    with(
        op(
            "get",
            "/api/projects/paginated",
            "projects",
            "Projects, paginated and filtered",
            Login,
        ),
        &[
            "page",
            "pageSize",
            "search",
            "platformType",
            "platformConfigId",
            "enabled",
            "webhookStatus",
        ],
        200,
    ),
    op(
        "get",
        "/api/projects/stats",
        "projects",
        "Project counts",
        Login,
    ),
    op(
        "post",
        "/api/projects/sync/platform",
        "projects",
        "Import the token's projects from a forge",
        Permission("project:create"),
    ),
    op(
        "get",
        "/api/projects/{id}",
        "projects",
        "One project",
        Login,
    ),
    op(
        "patch",
        "/api/projects/{id}",
        "projects",
        "Change a project's review settings",
        Permission("project:update"),
    ),
    op(
        "get",
        "/api/projects/{id}/config",
        "projects",
        "A project's effective settings",
        Login,
    ),
    op(
        "post",
        "/api/projects/{id}/webhook/check",
        "projects",
        "Check the project's webhook at the forge",
        Permission("project:update"),
    ),
    op(
        "get",
        "/api/settings/global",
        "projects",
        "Defaults projects inherit",
        Login,
    ),
    op(
        "put",
        "/api/settings/global",
        "projects",
        "Replace the defaults",
        Permission("config:update"),
    ),
    op(
        "patch",
        "/api/settings/global",
        "projects",
        "Change the defaults",
        Permission("config:update"),
    ),
    op(
        "get",
        "/api/notifications/config",
        "notifications",
        "Notification settings (secrets masked)",
        Login,
    ),
    op(
        "put",
        "/api/notifications/config",
        "notifications",
        "Replace the notification settings",
        Permission("config:update"),
    ),
    op(
        "patch",
        "/api/notifications/config",
        "notifications",
        "Change the notification settings",
        Permission("config:update"),
    ),
    op(
        "post",
        "/api/notifications/config/test-channel",
        "notifications",
        "Send a test message through one channel",
        Permission("config:update"),
    ),
    with(
        op(
            "post",
            "/api/notifications/config/vapid",
            "notifications",
            "Generate a VAPID key pair (private key shown once)",
            Permission("config:update"),
        ),
        &[],
        201,
    ),
    op(
        "get",
        "/api/notifications/push/vapid-public-key",
        "notifications",
        "The VAPID public key browsers subscribe with",
        Login,
    ),
    op(
        "get",
        "/api/notifications/push/subscriptions",
        "notifications",
        "The caller's browser push subscriptions (everyone's with config:update)",
        Login,
    ),
    with(
        op(
            "post",
            "/api/notifications/push/subscriptions",
            "notifications",
            "Subscribe a browser (PushSubscription.toJSON())",
            Login,
        ),
        &[],
        201,
    ),
    with(
        op(
            "delete",
            "/api/notifications/push/subscriptions/{id}",
            "notifications",
            "Unsubscribe a browser",
            Login,
        ),
        &[],
        204,
    ),
    with(
        op(
            "get",
            "/api/notifications/history",
            "notifications",
            "Deliveries, newest first",
            Login,
        ),
        &[
            "page",
            "pageSize",
            "channel",
            "status",
            "event",
            "reviewId",
            "startDate",
            "endDate",
        ],
        200,
    ),
    op(
        "get",
        "/api/notifications/history/{id}",
        "notifications",
        "One delivery",
        Login,
    ),
    with(
        op(
            "get",
            "/api/notifications/stats",
            "notifications",
            "Deliveries per status and channel",
            Login,
        ),
        &["startDate", "endDate"],
        200,
    ),
    with(
        op(
            "post",
            "/api/webhook/gitlab",
            "webhooks",
            "GitLab webhook (X-Gitlab-Token)",
            Public,
        ),
        &[],
        202,
    ),
    with(
        op(
            "post",
            "/api/webhook/github",
            "webhooks",
            "GitHub webhook (X-Hub-Signature-256)",
            Public,
        ),
        &[],
        202,
    ),
    with(
        op(
            "get",
            "/api/webhook-events",
            "webhooks",
            "Webhook deliveries with their outcome",
            Login,
        ),
        &["platform", "outcome", "page", "pageSize"],
        200,
    ),
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

fn operation(o: &Operation) -> Value {
    let mut params: Vec<Value> = o
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(o.query.iter().map(
        |q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}),
    ));
    let ok = if o.ok == 204 {
        json!({"description": "Done (no body)."})
    } else {
        json!({"description": "Success.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}})
    };
    let err = |what: &str| json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}});
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
    if matches!(o.method, "post" | "put" | "patch") {
        v["requestBody"] = json!({
            "required": false,
            "content": {"application/json": {"schema": {"type": "object"}}}
        });
    }
    v
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths
            .entry(o.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(o.method.to_owned(), operation(o));
        }
    }
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
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "required": ["data", "error"],
                    "properties": {
                        "data": {},
                        "meta": {"type": ["object", "null"], "properties": {"pagination": {"type": "object", "properties": {
                            "page": {"type": "integer"}, "pageSize": {"type": "integer"}, "total": {"type": "integer"}, "totalPages": {"type": "integer"}
                        }}}},
                        "error": {"type": "null"}
                    }
                },
                "ErrorEnvelope": {
                    "type": "object",
                    "required": ["data", "error"],
                    "properties": {
                        "data": {"type": "null"},
                        "error": {"$ref": "#/components/schemas/Error"}
                    }
                },
                "Error": {
                    "type": "object",
                    "required": ["title", "status"],
                    "properties": {
                        "title": {"type": "string", "description": "BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, PAYLOAD_TOO_LARGE, TOO_MANY_REQUESTS, …"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string", "description": "What was wrong and what to do."}
                    }
                }
            }
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
    use std::collections::BTreeSet;

    /// `(method, path)` of every `.route(…)` under `/api` in a router's
    /// source.
    fn routed(src: &str) -> BTreeSet<(String, String)> {
        let method = regex::Regex::new(r"\b(get|post|put|patch|delete)\(").expect("regex");
        let mut out = BTreeSet::new();
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
                out.insert((m[1].to_owned(), path.to_owned()));
            }
        }
        out
    }

    #[test]
    fn every_api_route_is_in_the_document_and_nothing_else() {
        let mut routes = routed(include_str!("app.rs"));
        routes.extend(routed(include_str!("dashboard/mod.rs")));
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
                    if let Some(s) = r["content"]["application/json"]["schema"]["$ref"].as_str() {
                        let name = s.trim_start_matches("#/components/schemas/");
                        assert!(d["components"]["schemas"][name].is_object(), "{s}");
                    }
                }
            }
        }
    }
}
