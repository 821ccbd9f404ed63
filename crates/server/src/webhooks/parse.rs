//! Webhook payloads → what they ask for, with the documented event rules:
//!
//! * GitLab `Merge Request Hook`: `open`, `reopen` → review (and
//!   auto-assignment); `update` → review unless only assignees/reviewers
//!   changed; anything else is ignored with its reason.
//! * GitLab `Note Hook` on a merge request starting with `/ai-review` (or
//!   `/review`) → a manual review, even with auto-review off.
//! * GitHub `pull_request`: `opened`, `reopened` (with auto-assignment),
//!   `synchronize`, `ready_for_review` → review.
//! * GitHub `issue_comment` `created` on a pull request with the command →
//!   a manual review. `ping` → acknowledged.
//!
//! Pure functions: no I/O, so every rule is unit-tested here.

use ai_review_domain::PlatformType;
use serde_json::Value;

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A review may be due.
    Trigger(Trigger),
    /// Nothing to do, and why (answered 200).
    Ignored {
        /// The event name for the record.
        event: String,
        /// Why.
        reason: String,
    },
}

/// A review request from a forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Platform.
    pub platform: PlatformType,
    /// The event for the record, e.g. `merge_request/open`.
    pub event: String,
    /// The forge's project or repository id.
    pub project_external_id: String,
    /// `group/name` or `owner/name`.
    pub project_path: String,
    /// Merge request iid or pull request number.
    pub number: u64,
    /// A comment command (manual: ignores auto-review and draft rules).
    pub manual: bool,
    /// Opened or reopened: auto-assignment applies.
    pub opened: bool,
    /// The change is a draft, as the payload says.
    pub draft: bool,
}

/// Why a payload could not be understood (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognised {platform} payload: {reason}")]
pub struct PayloadError {
    /// Platform.
    pub platform: PlatformType,
    /// What was missing or malformed.
    pub reason: String,
}

/// Whether a comment asks for a review: `/ai-review` or `/review` as its
/// first word.
pub fn is_command(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    matches!(first, "/ai-review" | "/review")
}

fn bad(platform: PlatformType, reason: impl Into<String>) -> PayloadError {
    PayloadError {
        platform,
        reason: reason.into(),
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn field<'a>(
    platform: PlatformType,
    v: &'a Value,
    path: &[&str],
) -> Result<&'a Value, PayloadError> {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .ok_or_else(|| bad(platform, format!("missing {}", path.join("."))))?;
    }
    Ok(cur)
}

fn number(platform: PlatformType, v: &Value, path: &[&str]) -> Result<u64, PayloadError> {
    field(platform, v, path)?
        .as_u64()
        .ok_or_else(|| bad(platform, format!("{} is not a number", path.join("."))))
}

/// Assignee/reviewer fields GitLab lists in `changes`.
const ASSIGNMENT_KEYS: &[&str] = &[
    "assignees",
    "assignee_id",
    "assignee_ids",
    "reviewers",
    "reviewer_ids",
];

/// An update touching only these (assignment plus bookkeeping) and no new
/// commits is not a reason to review.
const ASSIGNMENT_ONLY: &[&str] = &[
    "assignees",
    "assignee_id",
    "assignee_ids",
    "reviewers",
    "reviewer_ids",
    "updated_at",
    "updated_by_id",
    "last_edited_at",
    "last_edited_by_id",
];

/// Parses a GitLab delivery (`X-Gitlab-Event` and the JSON body).
pub fn gitlab(event_header: &str, body: &Value) -> Result<Parsed, PayloadError> {
    let p = PlatformType::Gitlab;
    let kind = body
        .get("object_kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let project_id =
        || id_text(field(p, body, &["project", "id"])?).ok_or_else(|| bad(p, "project.id"));
    let project_path = || {
        field(p, body, &["project", "path_with_namespace"])?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(p, "project.path_with_namespace"))
    };
    match (event_header, kind) {
        ("Merge Request Hook", "merge_request") => {
            let attrs = field(p, body, &["object_attributes"])?;
            let action = attrs.get("action").and_then(Value::as_str).unwrap_or("");
            let event = format!("merge_request/{action}");
            let draft = attrs
                .get("draft")
                .or_else(|| attrs.get("work_in_progress"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let review = match action {
                "open" | "reopen" => true,
                "update" => {
                    let changed: Vec<&str> = body
                        .get("changes")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let new_commits = attrs.get("oldrev").is_some_and(|v| !v.is_null());
                    let assignment_only = !new_commits
                        && changed.iter().any(|k| ASSIGNMENT_KEYS.contains(k))
                        && changed.iter().all(|k| ASSIGNMENT_ONLY.contains(k));
                    if assignment_only {
                        return Ok(Parsed::Ignored {
                            event,
                            reason: "the update only changed assignees or reviewers".into(),
                        });
                    }
                    true
                }
                "" => return Err(bad(p, "missing object_attributes.action")),
                other => {
                    return Ok(Parsed::Ignored {
                        event,
                        reason: format!("merge request action {other:?} does not trigger a review"),
                    });
                }
            };
            debug_assert!(review);
            Ok(Parsed::Trigger(Trigger {
                platform: p,
                event,
                project_external_id: project_id()?,
                project_path: project_path()?,
                number: number(p, attrs, &["iid"])?,
                manual: false,
                opened: matches!(action, "open" | "reopen"),
                draft,
            }))
        }
        ("Note Hook", "note") => {
            let attrs = field(p, body, &["object_attributes"])?;
            let noteable = attrs
                .get("noteable_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            let text = attrs.get("note").and_then(Value::as_str).unwrap_or("");
            if noteable != "MergeRequest" {
                return Ok(Parsed::Ignored {
                    event: "note".into(),
                    reason: format!("a comment on a {noteable}, not a merge request"),
                });
            }
            if !is_command(text) {
                return Ok(Parsed::Ignored {
                    event: "note".into(),
                    reason: "the comment is not a review command (/ai-review or /review)".into(),
                });
            }
            let mr = field(p, body, &["merge_request"])?;
            Ok(Parsed::Trigger(Trigger {
                platform: p,
                event: "note/command".into(),
                project_external_id: project_id()?,
                project_path: project_path()?,
                number: number(p, mr, &["iid"])?,
                manual: true,
                opened: false,
                draft: mr
                    .get("draft")
                    .or_else(|| mr.get("work_in_progress"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }))
        }
        (h, k) if h.is_empty() && k.is_empty() => {
            Err(bad(p, "no X-Gitlab-Event header and no object_kind"))
        }
        (h, k) => Ok(Parsed::Ignored {
            event: if k.is_empty() {
                h.to_owned()
            } else {
                k.to_owned()
            },
            reason: format!("{h:?} events do not trigger reviews"),
        }),
    }
}

/// Parses a GitHub delivery (`X-GitHub-Event` and the JSON body).
pub fn github(event_header: &str, body: &Value) -> Result<Parsed, PayloadError> {
    let p = PlatformType::Github;
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    let repo_id =
        || id_text(field(p, body, &["repository", "id"])?).ok_or_else(|| bad(p, "repository.id"));
    let repo_path = || {
        field(p, body, &["repository", "full_name"])?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(p, "repository.full_name"))
    };
    match event_header {
        "ping" => Ok(Parsed::Ignored {
            event: "ping".into(),
            reason: "pong".into(),
        }),
        "pull_request" => {
            let event = format!("pull_request/{action}");
            let pr = field(p, body, &["pull_request"])?;
            if !matches!(
                action,
                "opened" | "reopened" | "synchronize" | "ready_for_review"
            ) {
                if action.is_empty() {
                    return Err(bad(p, "missing action"));
                }
                return Ok(Parsed::Ignored {
                    event,
                    reason: format!("pull request action {action:?} does not trigger a review"),
                });
            }
            Ok(Parsed::Trigger(Trigger {
                platform: p,
                event,
                project_external_id: repo_id()?,
                project_path: repo_path()?,
                number: number(p, pr, &["number"])?,
                manual: false,
                opened: matches!(action, "opened" | "reopened"),
                draft: pr.get("draft").and_then(Value::as_bool).unwrap_or(false),
            }))
        }
        "issue_comment" => {
            let event = format!("issue_comment/{action}");
            if action != "created" {
                return Ok(Parsed::Ignored {
                    event,
                    reason: "only new comments can be commands".into(),
                });
            }
            let issue = field(p, body, &["issue"])?;
            if issue.get("pull_request").is_none() {
                return Ok(Parsed::Ignored {
                    event,
                    reason: "a comment on an issue, not a pull request".into(),
                });
            }
            let text = field(p, body, &["comment", "body"])?.as_str().unwrap_or("");
            if !is_command(text) {
                return Ok(Parsed::Ignored {
                    event,
                    reason: "the comment is not a review command (/ai-review or /review)".into(),
                });
            }
            Ok(Parsed::Trigger(Trigger {
                platform: p,
                event: "issue_comment/command".into(),
                project_external_id: repo_id()?,
                project_path: repo_path()?,
                number: number(p, issue, &["number"])?,
                manual: true,
                opened: false,
                draft: issue.get("draft").and_then(Value::as_bool).unwrap_or(false),
            }))
        }
        "" => Err(bad(p, "no X-GitHub-Event header")),
        other => Ok(Parsed::Ignored {
            event: other.to_owned(),
            reason: format!("{other:?} events do not trigger reviews"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mr(action: &str, changes: Value) -> Value {
        json!({
            "object_kind": "merge_request",
            "project": {"id": 42, "path_with_namespace": "g/p"},
            "object_attributes": {"iid": 7, "action": action, "draft": false},
            "changes": changes,
        })
    }

    #[test]
    fn gitlab_merge_request_rules() {
        for (action, opened) in [("open", true), ("reopen", true), ("update", false)] {
            let Ok(Parsed::Trigger(t)) = gitlab(
                "Merge Request Hook",
                &mr(action, json!({"title": {"previous": "a", "current": "b"}})),
            ) else {
                panic!("{action} should trigger");
            };
            assert_eq!(
                (
                    t.project_external_id.as_str(),
                    t.project_path.as_str(),
                    t.number,
                    t.manual,
                    t.opened
                ),
                ("42", "g/p", 7, false, opened)
            );
        }
        let only_assignees = gitlab(
            "Merge Request Hook",
            &mr(
                "update",
                json!({"assignees": {}, "reviewers": {}, "updated_at": {}}),
            ),
        )
        .expect("parse");
        assert!(
            matches!(&only_assignees, Parsed::Ignored { reason, .. } if reason.contains("assignees")),
            "{only_assignees:?}"
        );
        let bookkeeping_only = gitlab(
            "Merge Request Hook",
            &mr("update", json!({"updated_at": {}})),
        );
        assert!(matches!(bookkeeping_only, Ok(Parsed::Trigger(_))));
        let mut pushed = mr("update", json!({"assignees": {}}));
        pushed["object_attributes"]["oldrev"] = json!("a".repeat(40));
        assert!(matches!(
            gitlab("Merge Request Hook", &pushed),
            Ok(Parsed::Trigger(_))
        ));
        for action in ["close", "merge", "approved"] {
            assert!(matches!(
                gitlab("Merge Request Hook", &mr(action, json!({}))),
                Ok(Parsed::Ignored { .. })
            ));
        }
        let mut draft = mr("open", json!({}));
        draft["object_attributes"]["draft"] = json!(true);
        assert!(matches!(
            gitlab("Merge Request Hook", &draft),
            Ok(Parsed::Trigger(Trigger { draft: true, .. }))
        ));
        assert!(
            gitlab(
                "Merge Request Hook",
                &json!({"object_kind": "merge_request"})
            )
            .is_err()
        );
        assert!(gitlab("", &json!({})).is_err());
        assert!(matches!(
            gitlab("Push Hook", &json!({"object_kind": "push"})),
            Ok(Parsed::Ignored { .. })
        ));
    }

    #[test]
    fn gitlab_note_commands() {
        let note = |text: &str, noteable: &str| {
            json!({
                "object_kind": "note",
                "project": {"id": 42, "path_with_namespace": "g/p"},
                "object_attributes": {"note": text, "noteable_type": noteable},
                "merge_request": {"iid": 3, "draft": true},
            })
        };
        let Ok(Parsed::Trigger(t)) =
            gitlab("Note Hook", &note("/ai-review please", "MergeRequest"))
        else {
            panic!("command");
        };
        assert!(t.manual && t.draft && t.number == 3);
        assert!(matches!(
            gitlab("Note Hook", &note("  /review", "MergeRequest")),
            Ok(Parsed::Trigger(_))
        ));
        for (text, noteable) in [
            ("looks good /ai-review", "MergeRequest"),
            ("/ai-reviewer", "MergeRequest"),
            ("/ai-review", "Issue"),
        ] {
            assert!(
                matches!(
                    gitlab("Note Hook", &note(text, noteable)),
                    Ok(Parsed::Ignored { .. })
                ),
                "{text} on {noteable}"
            );
        }
    }

    #[test]
    fn github_rules() {
        let pr = |action: &str| {
            json!({
                "action": action,
                "pull_request": {"number": 9, "draft": false},
                "repository": {"id": 1234, "full_name": "o/r"},
            })
        };
        for action in ["opened", "reopened", "synchronize", "ready_for_review"] {
            let Ok(Parsed::Trigger(t)) = github("pull_request", &pr(action)) else {
                panic!("{action}");
            };
            assert_eq!((t.project_external_id.as_str(), t.number), ("1234", 9));
            assert_eq!(t.opened, matches!(action, "opened" | "reopened"));
        }
        for action in ["closed", "edited", "labeled"] {
            assert!(matches!(
                github("pull_request", &pr(action)),
                Ok(Parsed::Ignored { .. })
            ));
        }
        assert!(matches!(
            github("ping", &json!({})),
            Ok(Parsed::Ignored { .. })
        ));
        let comment = |body: &str, on_pr: bool| {
            let mut issue = json!({"number": 5});
            if on_pr {
                issue["pull_request"] = json!({"url": "x"});
            }
            json!({"action": "created", "issue": issue, "comment": {"body": body},
                   "repository": {"id": 1, "full_name": "o/r"}})
        };
        assert!(matches!(
            github("issue_comment", &comment("/ai-review", true)),
            Ok(Parsed::Trigger(Trigger {
                manual: true,
                number: 5,
                ..
            }))
        ));
        assert!(matches!(
            github("issue_comment", &comment("/ai-review", false)),
            Ok(Parsed::Ignored { .. })
        ));
        assert!(matches!(
            github("issue_comment", &comment("nice", true)),
            Ok(Parsed::Ignored { .. })
        ));
        assert!(github("pull_request", &json!({"action": "opened"})).is_err());
        assert!(github("", &json!({})).is_err());
    }
}
