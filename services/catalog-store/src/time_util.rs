//! Timestamps: microseconds since the Unix epoch in the database, RFC 3339 at the edges.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// RFC 3339 for microseconds since the epoch.
pub fn to_rfc3339(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Microseconds since the epoch for an RFC 3339 timestamp.
pub fn from_rfc3339(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let micros = 1_764_000_000_123_456;
        assert_eq!(from_rfc3339(&to_rfc3339(micros)), Some(micros));
        assert_eq!(from_rfc3339("not a time"), None);
    }
}
