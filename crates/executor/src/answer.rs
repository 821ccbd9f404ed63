//! The model's answer: its JSON schema (sent in the prompt), its Rust
//! types, and strict validation.

use crate::Assessment;
use crate::checks::Severity;
use serde::{Deserialize, Serialize};

/// What the model must return for one chunk of the diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelAnswer {
    /// What the reviewed part of the change does and its main risk.
    pub summary: String,
    /// Verdict on this part.
    pub assessment: Assessment,
    /// 1 (serious problems) to 5 (clean).
    pub rating: u8,
    /// Problems found.
    pub findings: Vec<ModelFinding>,
}

/// One problem reported by the model, before anchoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelFinding {
    /// Path as given in the diff.
    pub file: String,
    /// First new-side line.
    pub start_line: u32,
    /// Last new-side line.
    pub end_line: u32,
    /// Severity.
    pub severity: Severity,
    /// Short category (`bug`, `security`, ...).
    pub category: String,
    /// 0 to 1.
    pub confidence: f32,
    /// What is wrong and what to do.
    pub message: String,
    /// Replacement code for `start_line..=end_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The JSON Schema of [`ModelAnswer`], as shown to the model. A test
/// checks it against the Rust types.
pub const ANSWER_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["summary", "assessment", "rating", "findings"],
  "properties": {
    "summary": {"type": "string"},
    "assessment": {"enum": ["approve", "comment", "request_changes"]},
    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
    "findings": {
      "type": "array",
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["file", "startLine", "endLine", "severity", "category", "confidence", "message"],
        "properties": {
          "file": {"type": "string"},
          "startLine": {"type": "integer", "minimum": 1},
          "endLine": {"type": "integer", "minimum": 1},
          "severity": {"enum": ["info", "warning", "error"]},
          "category": {"type": "string"},
          "confidence": {"type": "number", "minimum": 0, "maximum": 1},
          "message": {"type": "string"},
          "suggestion": {"type": "string"}
        }
      }
    }
  }
}"#;

/// A valid answer, shown to the model as an example.
pub const ANSWER_EXAMPLE: &str = r#"{"summary": "Adds retry logic to the HTTP client; the retry loop never stops on a permanent error.", "assessment": "request_changes", "rating": 2, "findings": [{"file": "src/client.rs", "startLine": 42, "endLine": 44, "severity": "error", "category": "bug", "confidence": 0.8, "message": "The loop retries 4xx answers forever: stop on client errors and cap the attempts.", "suggestion": "if status.is_client_error() || attempt >= MAX_ATTEMPTS {\n    return Err(err);\n}"}]}"#;

/// The JSON object inside `text`: the whole text, or the content of a
/// fenced code block (```json ... ```) around it.
fn json_part(text: &str) -> &str {
    let t = text.trim();
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let body = after.split_once('\n').map_or("", |(_, b)| b);
        if let Some(end) = body.find("```") {
            return body[..end].trim();
        }
    }
    t
}

/// Parses and validates an answer; the error is what the repair prompt
/// quotes back to the model.
pub fn parse_answer(text: &str) -> Result<ModelAnswer, String> {
    let a: ModelAnswer = serde_json::from_str(json_part(text)).map_err(|e| e.to_string())?;
    if !(1..=5).contains(&a.rating) {
        return Err(format!(
            "rating must be an integer from 1 to 5 (got {})",
            a.rating
        ));
    }
    for (i, f) in a.findings.iter().enumerate() {
        let at = format!("findings[{i}]");
        if f.file.trim().is_empty() {
            return Err(format!("{at}.file must not be empty"));
        }
        if f.start_line == 0 {
            return Err(format!("{at}.startLine must be at least 1"));
        }
        if f.end_line < f.start_line {
            return Err(format!(
                "{at}.endLine ({}) must not be less than startLine ({})",
                f.end_line, f.start_line
            ));
        }
        if !(0.0..=1.0).contains(&f.confidence) {
            return Err(format!(
                "{at}.confidence must be between 0 and 1 (got {})",
                f.confidence
            ));
        }
        if f.category.trim().is_empty() {
            return Err(format!("{at}.category must not be empty"));
        }
        if f.message.trim().is_empty() {
            return Err(format!("{at}.message must not be empty"));
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    }

    fn strings(v: &Value) -> Vec<String> {
        let mut s: Vec<String> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_str().expect("string").to_owned())
            .collect();
        s.sort();
        s
    }

    #[test]
    fn the_schema_in_the_prompt_matches_the_types() {
        let schema: Value = serde_json::from_str(ANSWER_SCHEMA).expect("schema is JSON");
        let example = parse_answer(ANSWER_EXAMPLE).expect("the example is valid");
        let full: Value = serde_json::to_value(&example).expect("to json");
        assert_eq!(keys(&schema["properties"]), keys(&full));
        assert_eq!(strings(&schema["required"]), keys(&full));
        let item = &schema["properties"]["findings"]["items"];
        let finding = &full["findings"][0];
        assert_eq!(keys(&item["properties"]), keys(finding));
        let mut required = keys(finding);
        required.retain(|k| k != "suggestion");
        assert_eq!(strings(&item["required"]), required);
        for (schema_enum, values) in [
            (
                &schema["properties"]["assessment"]["enum"],
                vec![
                    Assessment::Approve,
                    Assessment::Comment,
                    Assessment::RequestChanges,
                ]
                .into_iter()
                .map(|a| serde_json::to_value(a).expect("json"))
                .collect::<Vec<_>>(),
            ),
            (
                &item["properties"]["severity"]["enum"],
                vec![Severity::Info, Severity::Warning, Severity::Error]
                    .into_iter()
                    .map(|s| serde_json::to_value(s).expect("json"))
                    .collect(),
            ),
        ] {
            let mut got: Vec<String> = values
                .iter()
                .map(|v| v.as_str().expect("str").to_owned())
                .collect();
            got.sort();
            assert_eq!(strings(schema_enum), got);
        }
    }

    #[test]
    fn accepts_fenced_json_and_rejects_everything_else_with_a_precise_error() {
        let fenced = format!("Here you go:\n```json\n{ANSWER_EXAMPLE}\n```\n");
        assert_eq!(parse_answer(&fenced).expect("fenced").rating, 2);
        let base: Value = serde_json::from_str(ANSWER_EXAMPLE).expect("json");
        let bad = |edit: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            edit(&mut v);
            parse_answer(&v.to_string()).expect_err("invalid")
        };
        assert!(bad(&|v| v["extra"] = 1.into()).contains("unknown field `extra`"));
        assert!(bad(&|v| v["assessment"] = "lgtm".into()).contains("unknown variant `lgtm`"));
        assert!(bad(&|v| v["rating"] = 9.into()).contains("rating must be an integer from 1 to 5"));
        assert!(
            bad(&|v| v["findings"][0]["confidence"] = 1.5.into())
                .contains("findings[0].confidence")
        );
        assert!(bad(&|v| v["findings"][0]["endLine"] = 1.into()).contains("findings[0].endLine"));
        assert!(
            bad(&|v| v["findings"][0]["startLine"] = 0.into())
                .contains("startLine must be at least 1")
        );
        assert!(
            bad(&|v| v["findings"][0]["message"] = " ".into())
                .contains("message must not be empty")
        );
        assert!(
            bad(&|v| v["findings"][0]["category"] = "".into())
                .contains("category must not be empty")
        );
        assert!(
            bad(&|v| v["findings"][0]["severity"] = "fatal".into())
                .contains("unknown variant `fatal`")
        );
        assert!(
            bad(&|v| {
                v.as_object_mut().expect("obj").remove("summary");
            })
            .contains("missing field `summary`")
        );
        assert!(parse_answer("I think it looks fine.").is_err());
    }
}
