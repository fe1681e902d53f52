//! The token record (the public contract, from the consumer crate, re-exported so that
//! `crate::token::…` keeps working) and the credentials read from the credentials secret,
//! which only the broker knows about.

use std::fmt;

use secrecy::SecretString;

pub use iadvize_token_consumer::token::*;

/// The credentials secret's value `{"username", "password"}` and its version.
#[derive(Clone)]
pub struct Credentials {
    /// iAdvize user name (kept out of logs too).
    pub username: SecretString,
    /// iAdvize password.
    pub password: SecretString,
    /// The credentials secret's VersionId this value came from.
    pub version_id: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &"[REDACTED]")
            .field("password", &"[REDACTED]")
            .field("version_id", &self.version_id)
            .finish()
    }
}

impl Credentials {
    /// Parses the credentials JSON `{"username", "password"}` (other keys ignored). The error
    /// names the field and says what it holds (its JSON type and size), never a value.
    ///
    /// Lenient where a variation has one clear meaning: a leading byte-order mark (some editors
    /// write one, and `--secret-string file://…` keeps it) is skipped, and surrounding
    /// whitespace around the username (an iAdvize login never has any) is dropped. The password
    /// is used exactly as stored. Numbers are refused rather than turned into text (`0123`
    /// cannot be a JSON number; `1e3` and `1000` would be the same password).
    pub fn parse(value: &str, version_id: String) -> Result<Self, String> {
        let value = value.strip_prefix('\u{feff}').unwrap_or(value);
        let json: serde_json::Value = serde_json::from_str(value).map_err(|e| {
            format!(
                "the value is not JSON (line {}, column {}); expected {{\"username\": …, \"password\": …}}",
                e.line(),
                e.column()
            )
        })?;
        let serde_json::Value::Object(object) = &json else {
            return Err(format!(
                "the value is {}, expected a JSON object {{\"username\": …, \"password\": …}}",
                fields::shape(&json)
            ));
        };
        let field = |name: &str, trim: bool| -> Result<SecretString, String> {
            match object.get(name) {
                Some(serde_json::Value::String(s)) => {
                    let s = if trim { s.trim() } else { s.as_str() };
                    if s.is_empty() {
                        Err(format!(
                            "field \"{name}\" must be a non-empty string, got an empty string"
                        ))
                    } else {
                        Ok(SecretString::from(s.to_owned()))
                    }
                }
                Some(other) => Err(format!(
                    "field \"{name}\" must be a non-empty string, got {}",
                    fields::shape(other)
                )),
                None => {
                    // A key that differs only in case: say so (keys are case-sensitive).
                    match object.keys().find(|k| k.eq_ignore_ascii_case(name)) {
                        Some(near) => Err(format!(
                            "field \"{name}\" is missing (there is a \"{}\": field names are case-sensitive)",
                            crate::error::echo(near)
                        )),
                        None => Err(format!("field \"{name}\" is missing")),
                    }
                }
            }
        };
        Ok(Credentials {
            username: field("username", true)?,
            password: field("password", false)?,
            version_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_credentials_redacts_them() {
        let creds = Credentials::parse(
            r#"{"username":"user@example.com","password":"hunter2"}"#,
            "v1".into(),
        )
        .unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("user@example.com"));
    }

    #[test]
    fn credentials_errors_name_the_field() {
        let missing = Credentials::parse(r#"{"username":"u"}"#, "v".into()).unwrap_err();
        assert!(missing.contains("\"password\" is missing"), "{missing}");
        let not_json = Credentials::parse("hunter2", "v".into()).unwrap_err();
        assert!(!not_json.contains("hunter2"));
        let wrong = Credentials::parse(r#"{"username":"u","password":7}"#, "v".into()).unwrap_err();
        assert!(wrong.contains("\"password\" must be"));
    }
}
