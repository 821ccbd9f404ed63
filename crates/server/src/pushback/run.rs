//! The push-back worker: posts finished forge reviews to their merge/pull
//! requests. Durable and never in a review's way: each finished review with
//! `sendToPlatform` is a leased job in the store ([`Store::claim_pushbacks`]),
//! so a server restart or a second replica neither loses nor doubles it.
//!
//! One job: read the change again (a head that moved on means the review
//! was superseded: skipped), post the inline comments whose fingerprints
//! the change has not seen yet, create or update the one summary comment,
//! and set the commit status. Forge failures that may pass (429, 5xx,
//! transport, a diff not computed yet) are retried with backoff up to
//! [`MAX_ATTEMPTS`]; others end the job `failed` with the forge's reason,
//! visible on the review. The review itself is never touched.
//!
//! [`Store::claim_pushbacks`]: ai_review_store::Store::claim_pushbacks

use crate::app::AppState;
use crate::pushback::render::{SummaryContext, commit_state, inline_comments, summary_markdown};
use crate::routes::configs::body;
use crate::routes::platforms::{StoredPlatform, find};
use crate::webhooks::orchestrate::{forge_of, project_ref};
use ai_review_domain::{ReviewStatus, Timestamp};
use ai_review_executor::ExecutorOutput;
use ai_review_executor::checks::Severity;
use ai_review_forge::{CommitState, ForgeError};
use ai_review_store::{ChangeThread, PushJob, Review};
use std::collections::HashSet;
use std::time::Duration;

/// Tries per review before the push-back is `failed`.
pub const MAX_ATTEMPTS: u32 = 5;
/// Lease of one push-back attempt.
const LEASE: Duration = Duration::from_secs(120);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushPass {
    /// Reviews posted.
    pub sent: u32,
    /// Reviews skipped (superseded, project gone).
    pub skipped: u32,
    /// Reviews to retry later.
    pub retried: u32,
    /// Reviews failed for good.
    pub failed: u32,
}

enum JobEnd {
    Sent,
    Skipped(String),
    Retry(String),
    Failed(String),
}

/// Claims and runs the due push-back jobs once.
pub async fn push_once(state: &AppState) -> PushPass {
    let now = state.clock.now();
    let lease = now.plus_millis(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX));
    let jobs = match state.store.claim_pushbacks(now, lease, 10).await {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "cannot claim push-back jobs");
            return PushPass::default();
        }
    };
    let mut pass = PushPass::default();
    for job in jobs {
        let id = job.review.id.clone();
        let attempt = job.attempt;
        let end = run_job(state, job).await;
        let now = state.clock.now();
        let (label, error, retry_at) = match &end {
            JobEnd::Sent => {
                pass.sent += 1;
                ("sent", None, None)
            }
            JobEnd::Skipped(r) => {
                pass.skipped += 1;
                ("skipped", Some(r.clone()), None)
            }
            JobEnd::Retry(r) if attempt < MAX_ATTEMPTS => {
                pass.retried += 1;
                // 2 s, 8 s, 32 s, 128 s.
                let wait = 2_000_i64 * 4_i64.pow(attempt.saturating_sub(1).min(6));
                ("pending", Some(r.clone()), Some(now.plus_millis(wait)))
            }
            JobEnd::Retry(r) | JobEnd::Failed(r) => {
                pass.failed += 1;
                ("failed", Some(r.clone()), None)
            }
        };
        tracing::info!(review.id = %id, push.state = label, push.attempt = attempt, reason = error.as_deref().unwrap_or(""), "push-back");
        if let Err(e) = state
            .store
            .finish_pushback(&id, label, error.as_deref(), retry_at, now)
            .await
        {
            tracing::error!(review.id = %id, error = %e, "cannot record a push-back outcome");
        }
    }
    pass
}

/// Runs [`push_once`] every `every` until `stop` turns true.
pub async fn run_pusher(
    state: AppState,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        push_once(&state).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

fn retry_or_fail(what: &str, e: &ForgeError) -> JobEnd {
    let msg = format!("{what}: {e}");
    if e.is_retryable() {
        JobEnd::Retry(msg)
    } else {
        JobEnd::Failed(msg)
    }
}

async fn run_job(state: &AppState, job: PushJob) -> JobEnd {
    match run_job_inner(state, &job.review).await {
        Ok(end) => end,
        Err(e) => JobEnd::Retry(format!("internal error: {e}")),
    }
}

async fn run_job_inner(
    state: &AppState,
    review: &Review,
) -> Result<JobEnd, Box<dyn std::error::Error + Send + Sync>> {
    let Some(change) = &review.change else {
        return Ok(JobEnd::Skipped("not a forge review".into()));
    };
    let Some(project) = state.store.get_project(&change.project_id).await? else {
        return Ok(JobEnd::Skipped("the project no longer exists".into()));
    };
    let Some(config) = find(state, &project.platform_config_id)
        .await
        .map_err(|e| format!("{e:?}"))?
    else {
        return Ok(JobEnd::Skipped(
            "the platform config no longer exists".into(),
        ));
    };
    let stored: StoredPlatform = body(&config).map_err(|e| format!("{e:?}"))?;
    let forge = match forge_of(state, project.platform_type, &stored) {
        Ok(f) => f,
        Err(e) => return Ok(JobEnd::Failed(e)),
    };
    let pref = project_ref(project.platform_type, &project.external_id, &project.path);
    let current = match forge.get_change(&pref, change.number).await {
        Ok(c) => c,
        Err(e) => return Ok(retry_or_fail("reading the change", &e)),
    };
    if current.head_sha != review.head_sha {
        return Ok(JobEnd::Skipped(format!(
            "superseded: the change moved on to {} since this review",
            current.head_sha
        )));
    }
    let task = state
        .store
        .get_task(&review.task_id)
        .await?
        .ok_or("the review's task is missing")?;
    let mut thread = state
        .store
        .change_thread(&change.project_id, change.number)
        .await?;
    let review_url_owned = state
        .settings
        .public_url
        .as_ref()
        .map(|u| format!("{u}/reviews/{}", review.id));
    let review_url = review_url_owned.as_deref();
    if review.status == ReviewStatus::Failed {
        let reason = task
            .failure_reason
            .clone()
            .unwrap_or_else(|| "no reason given".into());
        let body = format!(
            "{}\n### ai-review · round {} · the review failed\n\n{}\n\nComment `/ai-review` to try again.\n",
            crate::pushback::render::SUMMARY_MARKER,
            review.round_number,
            reason.replace('\n', " ")
        );
        let id = match forge
            .upsert_summary(
                &pref,
                change.number,
                thread.summary_comment_id.as_deref(),
                &body,
            )
            .await
        {
            Ok(id) => id,
            Err(e) => return Ok(retry_or_fail("posting the summary", &e)),
        };
        thread.summary_comment_id = Some(id);
        save_thread(state, review, &thread).await?;
        if let Err(e) = forge
            .set_status(
                &pref,
                &review.head_sha,
                CommitState::Error,
                "ai-review could not complete the review",
                review_url,
            )
            .await
        {
            return Ok(retry_or_fail("setting the commit status", &e));
        }
        return Ok(JobEnd::Sent);
    }
    let out: ExecutorOutput = serde_json::from_value(task.result.clone().unwrap_or_default())
        .map_err(|e| format!("the review's result does not parse: {e}"))?;
    let posted: HashSet<String> = thread.posted_fingerprints.iter().cloned().collect();
    let (comments, skipped) = inline_comments(&out, &posted, Severity::Info);
    let already = skipped
        .iter()
        .filter(|s| posted.contains(&s.fingerprint))
        .count();
    let mut new_findings = 0;
    if !comments.is_empty() {
        let results = match forge.post_inline_comments(&pref, &current, &comments).await {
            Ok(r) => r,
            Err(e) => return Ok(retry_or_fail("posting inline comments", &e)),
        };
        let mut refused = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    new_findings += 1;
                    thread.posted_fingerprints.push(p.fingerprint);
                }
                Err(c) => refused.push(format!("{}: {}", c.fingerprint, c.error)),
            }
        }
        // Record what landed before anything else can fail, so a retry
        // never posts those comments twice.
        save_thread(state, review, &thread).await?;
        if !refused.is_empty() {
            tracing::warn!(review.id = %review.id, refused = refused.len(), first = %refused[0], "the forge refused some inline comments");
        }
    }
    let summary = summary_markdown(
        &out,
        &SummaryContext {
            round: review.round_number,
            review_url: review_url_owned.clone(),
            head_sha: review.head_sha.to_string(),
            new_findings,
            already_posted: already,
        },
    );
    let id = match forge
        .upsert_summary(
            &pref,
            change.number,
            thread.summary_comment_id.as_deref(),
            &summary,
        )
        .await
    {
        Ok(id) => id,
        Err(e) => return Ok(retry_or_fail("posting the summary", &e)),
    };
    thread.summary_comment_id = Some(id);
    save_thread(state, review, &thread).await?;
    let (st, description) = commit_state(&out);
    if let Err(e) = forge
        .set_status(&pref, &review.head_sha, st, &description, review_url)
        .await
    {
        // Comments and summary are posted; a status the forge keeps
        // refusing (e.g. a token without the status scope) is reported but
        // does not fail the push-back.
        if e.is_retryable() {
            return Ok(retry_or_fail("setting the commit status", &e));
        }
        tracing::warn!(review.id = %review.id, error = %e, "commit status not set");
    }
    Ok(JobEnd::Sent)
}

async fn save_thread(
    state: &AppState,
    review: &Review,
    thread: &ChangeThread,
) -> Result<(), ai_review_store::StoreError> {
    let Some(change) = &review.change else {
        return Ok(());
    };
    let now: Timestamp = state.clock.now();
    state
        .store
        .save_change_thread(&change.project_id, change.number, thread, now)
        .await
}
