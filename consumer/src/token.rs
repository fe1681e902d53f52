//! The token record stored as the token secret's value: the public contract, schema version 1
//! (`{"access_token", "token_type", "issued_at", "expires_at", "expires_in"}`).

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A secret string whose `Debug` never shows the value. Used for access tokens.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        AccessToken(SecretString::from(value.into()))
    }

    /// The token itself, for the `Authorization` header and for storing it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// The JSON value of a token secret, version 1 of the schema:
/// `{"access_token", "token_type", "issued_at", "expires_at", "expires_in"}`.
#[derive(Clone)]
pub struct TokenRecord {
    /// The bearer token.
    pub access_token: AccessToken,
    /// Always `Bearer` in records the broker writes.
    pub token_type: String,
    /// When the login request was sent (just before).
    pub issued_at: OffsetDateTime,
    /// `issued_at + expires_in`.
    pub expires_at: OffsetDateTime,
    /// The lifetime iAdvize announced, in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("issued_at", &rfc3339(self.issued_at))
            .field("expires_at", &rfc3339(self.expires_at))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Why a secret value is not a token record. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Not JSON, or not an object of the expected shape.
    Shape(String),
    /// The JSON is well-formed but a field is unusable.
    Field(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Shape(what) => write!(f, "not a token record: {what}"),
            RecordError::Field(what) => write!(f, "invalid token record: {what}"),
        }
    }
}

impl std::error::Error for RecordError {}

#[derive(Deserialize)]
struct RecordWire {
    access_token: String,
    token_type: String,
    #[serde(with = "time::serde::rfc3339")]
    issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    expires_in: u64,
}

impl TokenRecord {
    /// Builds the record of a login that was sent at `issued_at`.
    pub fn new(access_token: AccessToken, issued_at: OffsetDateTime, expires_in: u64) -> Self {
        let issued_at = truncate_to_seconds(issued_at);
        TokenRecord {
            access_token,
            token_type: "Bearer".to_owned(),
            issued_at,
            expires_at: issued_at + Duration::from_secs(expires_in),
            expires_in,
        }
    }

    /// Parses a secret value. Serde's messages for this wire type name fields and types,
    /// never the string values, so they are safe to report.
    pub fn parse(value: &str) -> Result<Self, RecordError> {
        let wire: RecordWire = serde_json::from_str(value)
            .map_err(|e| RecordError::Shape(describe_serde_error(&e)))?;
        if wire.access_token.trim().is_empty() {
            return Err(RecordError::Field("access_token is empty"));
        }
        if !wire.token_type.eq_ignore_ascii_case("bearer") {
            return Err(RecordError::Field("token_type is not Bearer"));
        }
        if wire.expires_at <= wire.issued_at {
            return Err(RecordError::Field("expires_at is not after issued_at"));
        }
        Ok(TokenRecord {
            access_token: AccessToken::new(wire.access_token),
            token_type: wire.token_type,
            issued_at: wire.issued_at,
            expires_at: wire.expires_at,
            expires_in: wire.expires_in,
        })
    }

    /// The JSON stored in Secrets Manager, fields in the documented order.
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            access_token: &'a str,
            token_type: &'a str,
            issued_at: String,
            expires_at: String,
            expires_in: u64,
        }
        let out = Out {
            access_token: self.access_token.expose(),
            token_type: &self.token_type,
            issued_at: rfc3339(self.issued_at),
            expires_at: rfc3339(self.expires_at),
            expires_in: self.expires_in,
        };
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(&out).unwrap_or_default()
    }

    /// Time left before expiry at `now` (zero once expired).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        (self.expires_at - now).try_into().unwrap_or(Duration::ZERO)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

/// Serde's error for a value that failed to parse, without any excerpt of the input
/// (serde_json never quotes string values in its messages, but keep only the category
/// and position to be certain).
fn describe_serde_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("not valid JSON (line {}, column {})", e.line(), e.column())
        }
        Category::Data => {
            let text = e.to_string();
            // "missing field `x` at line 1 column 2" / "invalid type: ..., expected ..."
            let kind = if text.starts_with("missing field") || text.starts_with("unknown field") {
                text.split(" at line")
                    .next()
                    .unwrap_or("unexpected shape")
                    .to_owned()
            } else {
                "a field has the wrong type or format".to_owned()
            };
            format!("{kind} (JSON of the wrong shape)")
        }
    }
}

/// RFC 3339 UTC with second precision, e.g. `2026-11-26T11:00:00Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    truncate_to_seconds(at.to_offset(time::UtcOffset::UTC))
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// RFC 3339 UTC with millisecond precision, for the login-attempt tag.
pub fn rfc3339_precise(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_millisecond(at.millisecond()).unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn truncate_to_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SAMPLE: &str = r#"{"access_token":"tok-123","token_type":"Bearer","issued_at":"2026-11-26T11:00:00Z","expires_at":"2026-11-27T11:00:00Z","expires_in":86400}"#;

    #[test]
    fn a_record_round_trips_through_json() {
        let record = TokenRecord::new(
            AccessToken::new("tok-123"),
            datetime!(2026-11-26 11:00:00.750 UTC),
            86400,
        );
        assert_eq!(record.to_json(), SAMPLE);
        let parsed = TokenRecord::parse(SAMPLE).unwrap();
        assert_eq!(parsed.access_token.expose(), "tok-123");
        assert_eq!(parsed.expires_at, datetime!(2026-11-27 11:00:00 UTC));
        assert_eq!(parsed.expires_in, 86400);
    }

    #[test]
    fn remaining_time_is_never_negative() {
        let record = TokenRecord::parse(SAMPLE).unwrap();
        assert_eq!(
            record.remaining(datetime!(2026-11-27 10:00:00 UTC)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            record.remaining(datetime!(2026-11-28 0:00 UTC)),
            Duration::ZERO
        );
        assert!(record.is_expired(datetime!(2026-11-27 11:00:00 UTC)));
    }

    #[test]
    fn bad_values_are_rejected_without_echoing_them() {
        for value in [
            "",
            "not json at all secret-xyz",
            r#"{"access_token":"secret-xyz"}"#,
            r#"{"access_token":"secret-xyz","token_type":"Bearer","issued_at":"yesterday","expires_at":"2026-11-27T11:00:00Z","expires_in":1}"#,
            r#"{"access_token":"  ","token_type":"Bearer","issued_at":"2026-11-26T11:00:00Z","expires_at":"2026-11-27T11:00:00Z","expires_in":1}"#,
            r#"{"access_token":"secret-xyz","token_type":"mac","issued_at":"2026-11-26T11:00:00Z","expires_at":"2026-11-27T11:00:00Z","expires_in":1}"#,
            r#"["secret-xyz"]"#,
        ] {
            let err = TokenRecord::parse(value).unwrap_err().to_string();
            assert!(!err.contains("secret-xyz"), "{err}");
        }
    }

    #[test]
    fn token_type_is_case_insensitive() {
        let lower = SAMPLE.replace("Bearer", "bearer");
        assert!(TokenRecord::parse(&lower).is_ok());
    }

    #[test]
    fn debug_output_redacts_the_token() {
        let record = TokenRecord::parse(SAMPLE).unwrap();
        assert!(!format!("{record:?}").contains("tok-123"));
        assert_eq!(
            format!("{:?}", AccessToken::new("tok-123")),
            "AccessToken([REDACTED])"
        );
    }
}
