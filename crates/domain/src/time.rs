use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point in time with millisecond precision, stored as milliseconds since
/// the Unix epoch (the same integer in SQLite and PostgreSQL) and written as
/// RFC 3339 in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub const fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// Parses RFC 3339 (`2026-11-24T07:00:00Z`) or a plain date
    /// (`2026-11-24`, meaning midnight UTC).
    pub fn parse(s: &str) -> Result<Self, crate::ParseError> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(Self(t.timestamp_millis()));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let t = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            return Ok(Self(t.timestamp_millis()));
        }
        Err(crate::ParseError::new(
            "timestamp",
            format!("{s:?} is neither RFC 3339 (2026-11-24T07:00:00Z) nor a date (2026-11-24)"),
        ))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            self.to_chrono()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// On the wire: an RFC 3339 date-time (requests may also send a plain
/// `YYYY-MM-DD` date, meaning midnight UTC).
impl schemars::JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        let s = t.to_string();
        assert_eq!(Timestamp::parse(&s), Ok(t));
        assert!(s.ends_with('Z'), "{s}");
    }

    #[test]
    fn parses_plain_dates_as_utc_midnight() {
        let t = Timestamp::parse("1970-01-02").expect("date");
        assert_eq!(t.as_millis(), 86_400_000);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
