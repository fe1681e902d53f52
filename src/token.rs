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
    /// Parses the credentials JSON; the error names the missing field, never a value.
    pub fn parse(value: &str, version_id: String) -> Result<Self, String> {
        let json: serde_json::Value = serde_json::from_str(value).map_err(|_| {
            "the value is not JSON; expected {\"username\": …, \"password\": …}".to_owned()
        })?;
        let field = |name: &str| match json.get(name) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => {
                Ok(SecretString::from(s.clone()))
            }
            Some(_) => Err(format!("field \"{name}\" must be a non-empty string")),
            None => Err(format!("field \"{name}\" is missing")),
        };
        Ok(Credentials {
            username: field("username")?,
            password: field("password")?,
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
