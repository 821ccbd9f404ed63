use crate::ParseError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered (UUIDv7) identifier.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Parses a UUID in its hyphenated form.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                uuid::Uuid::parse_str(s)
                    .map(|u| Self(u.hyphenated().to_string()))
                    .map_err(|_| ParseError::new($what, format!("{s:?} is not a UUID")))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }

        /// On the wire: a hyphenated UUID.
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "format": "uuid"})
            }
        }
    };
}

uuid_id!(
    /// Identifies a project (a GitLab project or GitHub repository known to
    /// the server).
    ProjectId, "project id"
);

uuid_id!(
    /// Identifies a configuration item (an AI config, a review template,
    /// a review rule).
    ConfigId, "config id"
);

uuid_id!(
    /// Identifies a runner task (one unit of work in the queue).
    TaskId,
    "task id"
);
uuid_id!(
    /// Identifies a review (what the user asked for; owns one task).
    ReviewId,
    "review id"
);
uuid_id!(
    /// Identifies a user account.
    UserId,
    "user id"
);
uuid_id!(
    /// Identifies an API key record (never the secret itself).
    ApiKeyId,
    "API key id"
);
uuid_id!(
    /// Identifies a notification: one event to deliver through one channel,
    /// with its delivery history.
    NotificationId,
    "notification id"
);
uuid_id!(
    /// Identifies a browser's Web Push subscription (one endpoint of the
    /// push service the browser registered with).
    PushSubscriptionId,
    "push subscription id"
);

/// A runner's identity, chosen by the runner and sent as `x-runner-id`.
///
/// 1 to 64 characters from `A-Z a-z 0-9 . _ -`, starting with a letter or
/// digit: safe in URLs, logs, container names and labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunnerId(String);

impl RunnerId {
    /// Validates a runner id.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok_len = (1..=64).contains(&s.len());
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "runner id",
                format!(
                    "{:?} must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit",
                    truncate_for_message(s)
                ),
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunnerId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<RunnerId> for String {
    fn from(id: RunnerId) -> String {
        id.0
    }
}

impl fmt::Display for RunnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// On the wire: the id as a string, with its rule as a pattern.
impl schemars::JsonSchema for RunnerId {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "RunnerId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"
        })
    }
}

/// Cuts untrusted input before echoing it in an error message.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_ids_are_validated() {
        assert!(RunnerId::parse("runner-1.eu_west").is_ok());
        for bad in ["", "-lead", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(RunnerId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn uuid_ids_normalise_and_reject_garbage() {
        let id = TaskId::generate();
        assert_eq!(TaskId::parse(&id.as_str().to_uppercase()), Ok(id));
        assert!(TaskId::parse("42").is_err());
    }
}
