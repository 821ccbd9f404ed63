//! The orchestrator: decides whether a review request from a forge is
//! queued, with the documented checks in order, each refusal with a reason
//! the event list shows:
//!
//! 1. the platform config is complete (an access token is stored);
//! 2. the project is synced and enabled;
//! 3. auto-review is on (webhook events only; `/ai-review` commands skip
//!    this and the draft rule);
//! 4. an AI config resolves (the project's, the global one, or the
//!    default);
//! 5. the change can be read from the forge (SHAs, draft state);
//! 6. drafts are reviewed only when asked (`reviewDrafts` or a command).
//!
//! Then it queues the review with the project's clone URL and clone
//! credentials (sealed in the task; the runner uses them for the clone
//! only), and on open/reopen assigns the author and default reviewers.

use crate::app::AppState;
use crate::routes::platforms::StoredPlatform;
use crate::routes::projects::{global_settings, resolve as resolve_project, view};
use crate::routes::reviews::{Enqueue, enqueue};
use crate::webhooks::parse::Trigger;
use ai_review_domain::{
    Email, Permission, PlatformType, RepoUrl, ReviewId, Role, TagSet, TaskId, UserId,
};
use ai_review_forge::{Forge, UserRef, forge_for};
use ai_review_protocol::runner::CloneCredentials;
use ai_review_store::{NewUser, ReviewChange, StoreError};

/// What became of a review request.
#[derive(Debug)]
pub enum Outcome {
    /// Queued.
    Queued {
        /// The review.
        review: ReviewId,
        /// Its task.
        task: TaskId,
    },
    /// Nothing to do (a rule says so).
    Ignored(String),
    /// A check refused it.
    Refused(String),
    /// The forge or the store failed.
    Failed(String),
}

/// The user webhook-triggered reviews are created by.
const WEBHOOK_USER: &str = "webhooks@ai-review.invalid";

async fn webhook_user(state: &AppState) -> Result<UserId, StoreError> {
    let email = Email::parse(WEBHOOK_USER).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(u) = state.store.user_by_email(&email).await? {
        return Ok(u.id);
    }
    let created = state
        .store
        .create_user(NewUser {
            id: UserId::generate(),
            email: email.clone(),
            // No password can match: the account only owns reviews.
            password_hash: "!webhooks".into(),
            role: Role::User,
            permissions: vec![Permission::ReviewCreate],
            now: state.clock.now(),
        })
        .await;
    match created {
        Ok(u) => Ok(u.id),
        // Another replica created it first.
        Err(StoreError::Conflict(_)) => state
            .store
            .user_by_email(&email)
            .await?
            .map(|u| u.id)
            .ok_or_else(|| StoreError::Corrupt("webhook user vanished".into())),
        Err(e) => Err(e),
    }
}

/// The forge's name for a project in API paths: GitLab's numeric id,
/// GitHub's `owner/name`.
pub fn project_ref(platform: PlatformType, external_id: &str, path: &str) -> String {
    match platform {
        PlatformType::Gitlab => external_id.to_owned(),
        PlatformType::Github => path.to_owned(),
    }
}

/// Builds the forge client of a platform config.
pub fn forge_of(
    state: &AppState,
    platform: PlatformType,
    stored: &StoredPlatform,
) -> Result<Box<dyn Forge>, String> {
    let sealed = stored
        .access_token_sealed
        .as_ref()
        .ok_or_else(|| "the platform config has no access token; set accessToken".to_owned())?;
    let token = state
        .settings
        .secrets
        .open(sealed)
        .map_err(|e| e.to_string())?;
    forge_for(platform, &stored.base_url, token, state.forge_http.clone())
        .map_err(|e| e.to_string())
}

/// Options of a review request beyond the trigger.
#[derive(Debug, Clone)]
pub struct Options {
    /// Post the results to the forge (`false`: dashboard only).
    pub send_to_platform: bool,
    /// Template (else the default).
    pub template_id: Option<ai_review_domain::ConfigId>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            send_to_platform: true,
            template_id: None,
        }
    }
}

/// Runs the checks and queues the review.
pub async fn run(
    state: &AppState,
    config: &ai_review_store::ConfigItem,
    stored: &StoredPlatform,
    t: &Trigger,
    opts: &Options,
) -> Outcome {
    match run_inner(state, config, stored, t, opts).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "webhook orchestration failed");
            Outcome::Failed(format!("internal error: {e}"))
        }
    }
}

async fn run_inner(
    state: &AppState,
    config: &ai_review_store::ConfigItem,
    stored: &StoredPlatform,
    t: &Trigger,
    opts: &Options,
) -> Result<Outcome, StoreError> {
    if stored.access_token_sealed.is_none() {
        return Ok(Outcome::Refused(format!(
            "platform config {:?} has no access token; set accessToken so reviews can read the change and post results",
            config.name
        )));
    }
    let Some(project) = state
        .store
        .project_by_external_id(&config.id, &t.project_external_id)
        .await?
    else {
        return Ok(Outcome::Refused(format!(
            "project {} (id {}) is not known; sync it with POST /api/projects/sync/platform {{\"platformConfigId\": \"{}\"}}",
            t.project_path, t.project_external_id, config.id
        )));
    };
    if !project.enabled {
        return Ok(Outcome::Refused(format!(
            "project {} is disabled; enable it with PATCH /api/projects/{}",
            project.path, project.id
        )));
    }
    let project = match view(project) {
        Ok(p) => p,
        Err(e) => return Err(StoreError::Corrupt(format!("{e:?}"))),
    };
    let global = match global_settings(state).await {
        Ok(g) => g,
        Err(e) => return Err(StoreError::Corrupt(format!("{e:?}"))),
    };
    let settings = resolve_project(&project, &global);
    if !t.manual && !settings.auto_review {
        return Ok(Outcome::Refused(format!(
            "auto-review is off for {}; comment /ai-review on the {} to request a review",
            project.path,
            change_word(t.platform)
        )));
    }
    match crate::resolve::resolve(state, settings.ai_config_id.as_ref(), None).await {
        Ok(r) if r.ai.is_some() => {}
        Ok(_) => {
            return Ok(Outcome::Refused(
                "no AI config resolves: create one with POST /api/ai-configs and make it the default, or set the project's aiConfigId".into(),
            ));
        }
        Err(e) => {
            return Ok(Outcome::Refused(format!(
                "the AI config does not resolve: {}",
                e.detail.unwrap_or_else(|| "internal error".into())
            )));
        }
    }
    let forge = match forge_of(state, t.platform, stored) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Refused(e)),
    };
    let pref = project_ref(t.platform, &project.external_id, &project.path);
    let change = match forge.get_change(&pref, t.number).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "could not read {} {} of {}: {e}",
                change_word(t.platform),
                t.number,
                project.path
            )));
        }
    };
    if !t.manual && change.draft && !settings.review_drafts {
        return Ok(Outcome::Ignored(format!(
            "the {} is a draft; comment /ai-review to review it now, or set reviewDrafts in the global settings",
            change_word(t.platform)
        )));
    }
    // Incremental rounds: what the change's last completed review saw.
    let (last_reviews, _) = state
        .store
        .list_reviews(&ai_review_store::ReviewFilter {
            project_id: Some(project.id.clone()),
            change_number: Some(t.number),
            status: Some(ai_review_domain::ReviewStatus::Completed),
            limit: 1,
            ..ai_review_store::ReviewFilter::default()
        })
        .await?;
    let last = last_reviews.into_iter().next();
    if let Some(last) = &last
        && last.head_sha == change.head_sha
        && !t.manual
    {
        return Ok(Outcome::Ignored(format!(
            "head {} was already reviewed in round {}; comment /ai-review to review it again",
            change.head_sha, last.round_number
        )));
    }
    // A command asks for a fresh look at the whole change.
    let since_sha = if t.manual {
        None
    } else {
        last.map(|l| l.head_sha)
    };
    let repo_url = match RepoUrl::parse(&project.clone_url) {
        Ok(u) => u,
        Err(e) => {
            return Ok(Outcome::Refused(format!(
                "the project's clone URL cannot be used: {e}"
            )));
        }
    };
    let creds = forge.clone_credentials();
    let created_by = webhook_user(state).await?;
    let queued = enqueue(
        state,
        Enqueue {
            repo_url,
            base_sha: change.base_sha.clone(),
            head_sha: change.head_sha.clone(),
            branch: Some(change.source_branch.clone()),
            title: Some(change.title.chars().take(500).collect()),
            tags: TagSet::default(),
            ai_config_id: settings.ai_config_id.clone(),
            template_id: opts.template_id.clone(),
            excludes: settings.excludes.clone(),
            clone_credentials: Some(CloneCredentials {
                username: creds.username,
                password: Some(creds.password),
            }),
            created_by,
            since_sha,
            change: Some(ReviewChange {
                project_id: project.id.clone(),
                number: t.number,
                send_to_platform: opts.send_to_platform,
            }),
        },
    )
    .await;
    let (review, task) = match queued {
        Ok(rt) => rt,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "could not queue the review: {}",
                e.detail.unwrap_or_else(|| "internal error".into())
            )));
        }
    };
    if t.opened {
        let assignees: Vec<UserRef> = if settings.auto_assign_author {
            vec![forge.user_ref(&change.author)]
        } else {
            Vec::new()
        };
        let reviewers: Vec<UserRef> = settings
            .default_reviewer_ids
            .iter()
            .map(|r| UserRef::new(r.clone()))
            .collect();
        if (!assignees.is_empty() || !reviewers.is_empty())
            && let Err(e) = forge.assign(&pref, t.number, &assignees, &reviewers).await
        {
            // The review is queued either way; the assignment failure is
            // logged with the forge's reason.
            tracing::warn!(project.id = %project.id, error = %e, "auto-assignment failed");
        }
    }
    Ok(Outcome::Queued {
        review: review.id,
        task: task.id,
    })
}

fn change_word(p: PlatformType) -> &'static str {
    match p {
        PlatformType::Gitlab => "merge request",
        PlatformType::Github => "pull request",
    }
}
