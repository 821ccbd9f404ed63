use crate::ParseError;
use std::fmt;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The documented wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the documented wire name.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError::new(
                        $what,
                        format!(
                            "{:?} is not one of: {}",
                            crate::ids::truncate_for_message(s),
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Where a task is in its lifecycle:
    /// `pending → picked_up → executing → completed | failed`, plus
    /// `cancelled` (by a user) and `expired` (nobody claimed it in time).
    TaskState, "task state" {
        /// Waiting in the queue for a runner.
        Pending => "pending",
        /// Claimed by a runner under a lease; no phase reported yet.
        PickedUp => "picked_up",
        /// The runner reported a phase; work is under way.
        Executing => "executing",
        /// The runner reported a successful result.
        Completed => "completed",
        /// Terminal failure (runner-reported, or out of attempts).
        Failed => "failed",
        /// Cancelled by a user before it finished.
        Cancelled => "cancelled",
        /// Nobody claimed it before its expiry.
        Expired => "expired",
    }
);

impl TaskState {
    /// A runner holds the task under a lease.
    pub const fn is_active(self) -> bool {
        matches!(self, TaskState::PickedUp | TaskState::Executing)
    }

    /// The task will not change any more.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled | TaskState::Expired
        )
    }
}

string_enum!(
    /// Execution phase reported by the runner while it holds a task.
    Phase, "phase" {
        /// Setting up the workspace and container.
        Preparing => "preparing",
        /// Cloning the repository at the target revision.
        Cloning => "cloning",
        /// The executor is reviewing the change.
        Reviewing => "reviewing",
        /// Sending the result back.
        Submitting => "submitting",
    }
);

string_enum!(
    /// A runner's availability as reported in its heartbeat, or `offline`
    /// once the server has not heard from it for the heartbeat timeout.
    RunnerStatus, "runner status" {
        /// Healthy with free capacity.
        Online => "online",
        /// Healthy, every slot in use.
        Busy => "busy",
        /// Stopped, or silent for longer than the heartbeat timeout.
        Offline => "offline",
    }
);

string_enum!(
    /// A review's status as shown by the reviews API.
    ReviewStatus, "review status" {
        /// Queued or running.
        Pending => "pending",
        /// Finished with a result.
        Completed => "completed",
        /// Finished without a result (failure or expiry).
        Failed => "failed",
        /// Cancelled by a user.
        Cancelled => "cancelled",
    }
);

impl ReviewStatus {
    /// The review status that mirrors a task state.
    pub const fn from_task_state(s: TaskState) -> Self {
        match s {
            TaskState::Pending | TaskState::PickedUp | TaskState::Executing => {
                ReviewStatus::Pending
            }
            TaskState::Completed => ReviewStatus::Completed,
            TaskState::Failed | TaskState::Expired => ReviewStatus::Failed,
            TaskState::Cancelled => ReviewStatus::Cancelled,
        }
    }
}

string_enum!(
    /// What a runner reports at the end of one attempt.
    TaskOutcome, "task outcome" {
        /// The executor produced a result.
        Succeeded => "succeeded",
        /// The attempt failed; see the reason and whether it is retryable.
        Failed => "failed",
        /// The runner stopped the task because it was asked to cancel.
        Cancelled => "cancelled",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Ok(*s));
            let json = serde_json::to_string(s).expect("json");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Ok(*p));
        }
        for c in NotificationChannel::ALL {
            assert_eq!(NotificationChannel::parse(c.as_str()), Ok(*c));
        }
        for e in NotificationEvent::ALL {
            assert_eq!(NotificationEvent::parse(e.as_str()), Ok(*e));
        }
        for s in NotificationStatus::ALL {
            assert_eq!(NotificationStatus::parse(s.as_str()), Ok(*s));
        }
        assert_eq!(
            serde_json::to_string(&NotificationEvent::DailySummary).expect("json"),
            "\"daily_summary\""
        );
        let err = Phase::parse("compiling").expect_err("unknown phase");
        assert!(
            err.to_string()
                .contains("preparing, cloning, reviewing, submitting")
        );
    }

    #[test]
    fn active_and_terminal_are_disjoint() {
        for s in TaskState::ALL {
            assert!(!(s.is_active() && s.is_terminal()), "{s}");
        }
    }
}

string_enum!(
    /// The wire protocol of a model provider.
    LlmProvider, "LLM provider" {
        /// Any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure-style
        /// base URLs, Ollama, vLLM, llama.cpp server, LM Studio, OpenRouter,
        /// DeepSeek).
        OpenAi => "openai",
        /// Anthropic Messages.
        Anthropic => "anthropic",
    }
);

string_enum!(
    /// The kind of a configuration item.
    ConfigKind, "config kind" {
        /// A model provider configuration.
        AiConfig => "ai_config",
        /// A review template (prompt text with variables).
        ReviewTemplate => "review_template",
        /// A review rule (path globs + instructions).
        ReviewRule => "review_rule",
        /// A GitLab connection (platform config of type `gitlab`).
        GitlabPlatform => "platform_gitlab",
        /// A GitHub connection (platform config of type `github`).
        GithubPlatform => "platform_github",
        /// The global settings (one item).
        GlobalSettings => "global_settings",
        /// The notification settings (one item).
        NotificationConfig => "notification_config",
    }
);

string_enum!(
    /// A code forge.
    PlatformType, "platform type" {
        /// GitLab (gitlab.com or self-managed).
        Gitlab => "gitlab",
        /// GitHub (github.com or Enterprise Server).
        Github => "github",
    }
);

string_enum!(
    /// How the server authenticates to a forge.
    PlatformAuthType, "auth type" {
        /// A personal, project or group access token.
        Token => "token",
        /// An OAuth application (fields stored for later use).
        Oauth => "oauth",
    }
);

string_enum!(
    /// Whether a project's webhook reaches the server, as last checked.
    WebhookStatus, "webhook status" {
        /// A hook pointing at this server exists and is enabled.
        Active => "active",
        /// A hook exists but is disabled.
        Inactive => "inactive",
        /// The forge reported the hook failing, or the check failed.
        Error => "error",
        /// Not checked yet.
        Unknown => "unknown",
        /// No hook points at this server.
        NotConfigured => "not_configured",
    }
);

string_enum!(
    /// Where a notification is sent.
    NotificationChannel, "notification channel" {
        /// Email over SMTP.
        Email => "email",
        /// A Slack incoming webhook.
        Slack => "slack",
        /// A generic HTTP webhook.
        Webhook => "webhook",
        /// A DingTalk robot.
        Dingtalk => "dingtalk",
        /// A Feishu (Lark) bot.
        Feishu => "feishu",
        /// A WeChat Work (WeCom) robot.
        Wechat => "wechat",
        /// Browser Web Push (VAPID) to the stored subscriptions.
        Push => "push",
    }
);

string_enum!(
    /// What a notification is about.
    NotificationEvent, "notification event" {
        /// A review finished with a result.
        ReviewCompleted => "review_completed",
        /// A review finished without a result.
        ReviewFailed => "review_failed",
        /// A review's rating fell below the configured threshold.
        RatingLow => "rating_low",
        /// The summary of one day's reviews.
        DailySummary => "daily_summary",
        /// The summary of one week's reviews.
        WeeklySummary => "weekly_summary",
    }
);

string_enum!(
    /// Where a notification's delivery stands:
    /// `pending → sent | failed`, `pending` again after a retryable error.
    NotificationStatus, "notification status" {
        /// Queued, or waiting for its next try after a retryable error.
        Pending => "pending",
        /// Delivered (final).
        Sent => "sent",
        /// Given up on (final); the last error says why.
        Failed => "failed",
    }
);

impl NotificationStatus {
    /// The delivery will not be tried again.
    pub const fn is_final(self) -> bool {
        matches!(self, NotificationStatus::Sent | NotificationStatus::Failed)
    }
}
