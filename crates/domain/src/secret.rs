//! Secrets in clear while they travel (model API keys, forge tokens).

use serde::{Deserialize, Serialize};

/// A secret in clear (a model API key, a forge token) on its way between
/// the store's encryption and the one place that uses it. Serialises as the
/// plain string, because the runner protocol must carry it; its `Debug` and
/// `Display` never reveal it, so it cannot leak into logs by formatting.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret in clear: call only where it is used (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// No secret at all (an empty string).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(***)")
    }
}

impl std::fmt::Display for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// On the wire: the secret as a plain string.
impl schemars::JsonSchema for SecretString {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretString".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_secret() {
        let s = SecretString::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "*** SecretString(***)");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"sk-live-123\"");
    }
}
