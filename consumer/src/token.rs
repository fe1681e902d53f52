//! The token record stored as the token secret's value: the public contract, schema version 1
//! (`{"access_token", "token_type", "issued_at", "expires_at", "expires_in"}`).

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
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

    /// Parses a secret value. Lenient where a variation has one clear meaning (see
    /// [`fields`]): `token_type` absent, `null` or blank means Bearer, and any case or
    /// surrounding whitespace is accepted; times may carry surrounding whitespace; `expires_in`
    /// may be a number or a numeric string, and is derived from the times when absent.
    /// Anything else is refused with what was received (its JSON type and size), never a
    /// value.
    pub fn parse(value: &str) -> Result<Self, RecordError> {
        let shape = |field: &str, what: String| RecordError::Shape(format!("{field} {what}"));
        if value.trim().is_empty() {
            return Err(RecordError::Shape("the value is empty".to_owned()));
        }
        let json: Value = serde_json::from_str(value)
            .map_err(|e| RecordError::Shape(describe_serde_error(&e)))?;
        let Value::Object(object) = &json else {
            return Err(RecordError::Shape(format!(
                "{}, expected a JSON object",
                fields::shape(&json)
            )));
        };
        let access_token =
            fields::bearer_token(object.get("access_token")).map_err(|e| match e {
                fields::Refused::Blank => RecordError::Field("access_token is empty"),
                other => shape("access_token", other.to_string()),
            })?;
        fields::token_type(object.get("token_type"))
            .map_err(|e| shape("token_type", e.to_string()))?;
        let time = |field: &'static str| match object.get(field) {
            Some(Value::String(text)) => parse_rfc3339(text.trim()).ok_or_else(|| {
                shape(
                    field,
                    format!(
                        "is {} that is not an RFC 3339 time",
                        fields::shape(&Value::String(text.clone()))
                    ),
                )
            }),
            None => Err(shape(field, "is missing".to_owned())),
            Some(other) => Err(shape(
                field,
                format!(
                    "is {}, expected an RFC 3339 time string",
                    fields::shape(other)
                ),
            )),
        };
        let issued_at = time("issued_at")?;
        let expires_at = time("expires_at")?;
        if expires_at <= issued_at {
            return Err(RecordError::Field("expires_at is not after issued_at"));
        }
        let expires_in = match object.get("expires_in") {
            None | Some(Value::Null) => {
                u64::try_from((expires_at - issued_at).whole_seconds()).unwrap_or(u64::MAX)
            }
            Some(value) => {
                fields::seconds(value).map_err(|e| shape("expires_in", e.to_string()))?
            }
        };
        Ok(TokenRecord {
            access_token,
            token_type: "Bearer".to_owned(),
            issued_at,
            expires_at,
            expires_in,
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

/// Serde's error for a value that is not JSON: only its category and position, never an
/// excerpt of the input.
fn describe_serde_error(e: &serde_json::Error) -> String {
    format!("not valid JSON (line {}, column {})", e.line(), e.column())
}

/// Readers of the fields of outside answers: the token record here, iAdvize's login answer in
/// the broker. Each accepts the variations a real server or tool could send that have one clear
/// meaning, and otherwise says what it received: its JSON type and size, never its value
/// (a field may hold a token, by mistake or by design).
pub mod fields {
    use std::fmt;

    use serde_json::Value;

    use super::AccessToken;

    /// Why a field was refused: what was received, in words (never the value). Shown after the
    /// field's name, e.g. "expires_in is a boolean, expected a number of seconds".
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Refused {
        /// The field is absent or `null`.
        Missing,
        /// An empty or blank string.
        Blank,
        /// Anything else: the sentence after "is".
        Other(String),
    }

    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Refused::Missing => f.write_str("is missing"),
                Refused::Blank => f.write_str("is empty"),
                Refused::Other(what) => write!(f, "is {what}"),
            }
        }
    }

    /// A JSON value's type and size, e.g. `a string of 7 characters`, `an array of 2 items`,
    /// `a number`: what an error message may say about a value it must not show.
    pub fn shape(value: &Value) -> String {
        match value {
            Value::Null => "null".to_owned(),
            Value::Bool(_) => "a boolean".to_owned(),
            Value::Number(n) if n.is_f64() => "a number with a fraction or an exponent".to_owned(),
            Value::Number(_) => "an integer".to_owned(),
            Value::String(s) => match s.chars().count() {
                0 => "an empty string".to_owned(),
                1 => "a string of 1 character".to_owned(),
                n => format!("a string of {n} characters"),
            },
            Value::Array(a) => match a.len() {
                0 => "an empty array".to_owned(),
                1 => "an array of 1 item".to_owned(),
                n => format!("an array of {n} items"),
            },
            Value::Object(o) => match o.len() {
                0 => "an empty object".to_owned(),
                1 => "an object with 1 key".to_owned(),
                n => format!("an object with {n} keys"),
            },
        }
    }

    /// An access token: a string, surrounding whitespace ignored (a token never holds any),
    /// made only of the visible ASCII characters an `Authorization: Bearer` header can carry
    /// (RFC 6750 §2.1's `b64token` is a subset). A token with a control character, an inner
    /// space or a non-ASCII character could never be sent, so it is refused here rather than
    /// failing every request later.
    pub fn bearer_token(value: Option<&Value>) -> Result<AccessToken, Refused> {
        match value {
            None | Some(Value::Null) => Err(Refused::Missing),
            Some(Value::String(text)) => {
                let token = text.trim_matches(|c: char| c.is_ascii_whitespace());
                if token.is_empty() {
                    Err(Refused::Blank)
                } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    Err(Refused::Other(format!(
                        "{} with characters an Authorization header cannot carry (control, space or non-ASCII characters)",
                        shape(&Value::String(text.clone()))
                    )))
                } else {
                    Ok(AccessToken::new(token))
                }
            }
            Some(other) => Err(Refused::Other(format!(
                "{}, expected a string",
                shape(other)
            ))),
        }
    }

    /// `token_type`: Bearer, in any case, with surrounding whitespace; absent, `null` or blank
    /// also mean Bearer (RFC 6749 requires the field, but the broker only ever asks for bearer
    /// tokens, and older iAdvize answers leave it out). Any other type is refused.
    pub fn token_type(value: Option<&Value>) -> Result<(), Refused> {
        match value {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(text))
                if text.trim().is_empty() || text.trim().eq_ignore_ascii_case("bearer") =>
            {
                Ok(())
            }
            Some(Value::String(text)) => Err(Refused::Other(format!(
                "{} other than Bearer",
                shape(&Value::String(text.clone()))
            ))),
            Some(other) => Err(Refused::Other(format!(
                "{}, expected the string \"Bearer\"",
                shape(other)
            ))),
        }
    }

    /// A number of seconds (`expires_in`): a JSON number or a string holding one (surrounding
    /// whitespace ignored), in JSON's number syntax. An integral value in any notation
    /// (`86400`, `86400.0`, `"8.64e4"`) is that many seconds; a fraction is rounded down, so a
    /// lifetime is never overstated. Negative, too large, `null`, booleans, arrays, objects and
    /// other strings are refused.
    pub fn seconds(value: &Value) -> Result<u64, Refused> {
        let number = match value {
            Value::Null => return Err(Refused::Missing),
            Value::Number(n) => n.clone(),
            Value::String(text) if text.trim().is_empty() => return Err(Refused::Blank),
            Value::String(text) => text.trim().parse::<serde_json::Number>().map_err(|_| {
                Refused::Other(format!(
                    "{} that is not a number, expected a number of seconds",
                    shape(value)
                ))
            })?,
            other => {
                return Err(Refused::Other(format!(
                    "{}, expected a number of seconds",
                    shape(other)
                )));
            }
        };
        if let Some(whole) = number.as_u64() {
            return Ok(whole);
        }
        let float = number.as_f64().unwrap_or(f64::NAN);
        if float.is_nan() || float < 0.0 {
            Err(Refused::Other("a negative number of seconds".to_owned()))
        } else if float >= u64::MAX as f64 {
            Err(Refused::Other(format!(
                "a number of seconds larger than {}",
                u64::MAX
            )))
        } else {
            // In range and not negative: the cast rounds down, which is what is wanted.
            Ok(float.floor() as u64)
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

/// Parses an RFC 3339 time (surrounding whitespace ignored).
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
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
