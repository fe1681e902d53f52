//! The events the Lambda accepts (DESIGN §4), parsed into types before anything acts on them.

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// A Secrets Manager rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create the new version (AWSPENDING).
    CreateSecret,
    /// Set the new value in the service (nothing to do for iAdvize).
    SetSecret,
    /// Check the new value works.
    TestSecret,
    /// Make the new version AWSCURRENT.
    FinishSecret,
}

impl Step {
    /// The name Secrets Manager uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }

    fn parse(name: &str) -> Option<Step> {
        [
            Step::CreateSecret,
            Step::SetSecret,
            Step::TestSecret,
            Step::FinishSecret,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"Step", "SecretId", "ClientRequestToken", "RotationToken"?}` from Secrets Manager.
#[derive(Clone)]
pub struct StepEvent {
    /// The step.
    pub step: Step,
    /// The token secret (name or ARN).
    pub secret_id: String,
    /// The version id of the new value (not secret).
    pub token: String,
    /// Passed to `PutSecretValue`; never logged.
    pub rotation_token: Option<SecretString>,
}

impl fmt::Debug for StepEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("token", &self.token)
            .field(
                "rotation_token",
                &self.rotation_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// Everything the broker can be asked to do.
#[derive(Debug, Clone)]
pub enum Event {
    /// A rotation step from Secrets Manager.
    Step(StepEvent),
    /// The EventBridge schedule: a refresh tick over the configured secrets.
    Scheduled,
    /// An operator's refresh, optionally forced or limited to some secrets.
    Refresh {
        /// Rotate even if the token is fresh.
        force: bool,
        /// Secrets to refresh instead of the configured ones.
        secret_ids: Option<Vec<String>>,
    },
    /// Report the state of the configured secrets.
    Status,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorEvent {
    action: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    secret_ids: Option<Vec<String>>,
}

impl Event {
    /// Classifies a raw event. Error messages name keys and step names, never values
    /// that could be secret.
    pub fn parse(event: &Value) -> Result<Event> {
        let Some(object) = event.as_object() else {
            return Err(Error::InvalidEvent(format!(
                "expected a JSON object, got {}",
                json_kind(event)
            )));
        };
        if object.contains_key("Step") {
            return parse_step(object).map(Event::Step);
        }
        if object.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
            && object.get("source").and_then(Value::as_str) == Some("aws.events")
        {
            return Ok(Event::Scheduled);
        }
        if object.contains_key("action") {
            let operator: OperatorEvent = serde_json::from_value(event.clone()).map_err(|e| {
                Error::InvalidEvent(format!(
                    "an operator event is {{\"action\": \"refresh\"|\"status\", \"force\": bool, \"secret_ids\": [..]}}: {}",
                    strip_position(&e)
                ))
            })?;
            return match operator.action.as_str() {
                "refresh" => {
                    if operator
                        .secret_ids
                        .as_ref()
                        .is_some_and(|ids| ids.is_empty())
                    {
                        return Err(Error::InvalidEvent(
                            "secret_ids is empty; leave it out to refresh the configured secrets"
                                .into(),
                        ));
                    }
                    Ok(Event::Refresh {
                        force: operator.force,
                        secret_ids: operator.secret_ids,
                    })
                }
                "status" => Ok(Event::Status),
                other => Err(Error::InvalidEvent(format!(
                    "unknown action {:?}; expected \"refresh\" or \"status\"",
                    shorten(other)
                ))),
            };
        }
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        Err(Error::InvalidEvent(format!(
            "not a rotation step, a scheduled event or an operator action (top-level keys: [{}])",
            keys.iter()
                .map(|k| shorten(k))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

fn parse_step(object: &serde_json::Map<String, Value>) -> Result<StepEvent> {
    let text = |key: &str| -> Result<String> {
        match object.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(other) => Err(Error::InvalidEvent(format!(
                "rotation step: {key} must be a non-empty string, got {}",
                json_kind(other)
            ))),
            None => Err(Error::InvalidEvent(format!(
                "rotation step: {key} is missing"
            ))),
        }
    };
    let name = text("Step")?;
    let step = Step::parse(&name).ok_or_else(|| {
        Error::InvalidEvent(format!(
            "unknown rotation step {:?}; expected createSecret, setSecret, testSecret or finishSecret",
            shorten(&name)
        ))
    })?;
    let rotation_token = match object.get("RotationToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(SecretString::from(s.clone())),
        Some(other) => {
            return Err(Error::InvalidEvent(format!(
                "rotation step: RotationToken must be a string, got {}",
                json_kind(other)
            )));
        }
    };
    Ok(StepEvent {
        step,
        secret_id: text("SecretId")?,
        token: text("ClientRequestToken")?,
        rotation_token,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Caps echoed names so a hostile event cannot flood the logs.
fn shorten(text: &str) -> String {
    if text.chars().count() > 64 {
        format!("{}…", text.chars().take(64).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Serde's message without the " at line 1 column 2" suffix, and without values: serde
/// names unknown fields and types, which is what an operator needs.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    if text.starts_with("invalid type") {
        "a field has the wrong type".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rotation_steps_are_parsed() {
        let event = json!({"Step": "createSecret", "SecretId": "arn:x", "ClientRequestToken": "v1", "RotationToken": "rt-secret"});
        let Event::Step(step) = Event::parse(&event).unwrap() else {
            panic!()
        };
        assert_eq!(step.step, Step::CreateSecret);
        assert_eq!(step.secret_id, "arn:x");
        assert_eq!(step.token, "v1");
        assert!(step.rotation_token.is_some());
        assert!(!format!("{step:?}").contains("rt-secret"));
    }

    #[test]
    fn scheduled_and_operator_events_are_recognised() {
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert!(matches!(
            Event::parse(&scheduled).unwrap(),
            Event::Scheduled
        ));
        let refresh = json!({"action": "refresh", "force": true, "secret_ids": ["a"]});
        assert!(
            matches!(Event::parse(&refresh).unwrap(), Event::Refresh { force: true, secret_ids: Some(ids) } if ids == ["a"])
        );
        assert!(matches!(
            Event::parse(&json!({"action": "refresh"})).unwrap(),
            Event::Refresh {
                force: false,
                secret_ids: None
            }
        ));
        assert!(matches!(
            Event::parse(&json!({"action": "status"})).unwrap(),
            Event::Status
        ));
    }

    #[test]
    fn bad_events_are_explained_without_values() {
        let cases = [
            (json!([1, 2]), "expected a JSON object"),
            (
                json!({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": "t"}),
                "unknown rotation step \"rotateSecret\"",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s"}),
                "ClientRequestToken is missing",
            ),
            (
                json!({"Step": "createSecret", "SecretId": 5, "ClientRequestToken": "t"}),
                "SecretId must be a non-empty string",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": 1}),
                "RotationToken must be a string",
            ),
            (
                json!({"password": "hunter2", "user": "x"}),
                "top-level keys: [password, user]",
            ),
            (
                json!({"detail-type": "Scheduled Event", "source": "custom"}),
                "top-level keys: [detail-type, source]",
            ),
            (json!({"action": "explode"}), "unknown action \"explode\""),
            (json!({"action": "refresh", "force": "yes"}), "wrong type"),
            (
                json!({"action": "refresh", "secret_ids": []}),
                "secret_ids is empty",
            ),
            (
                json!({"action": "refresh", "extra": 1}),
                "unknown field `extra`",
            ),
        ];
        for (event, expected) in cases {
            let message = Event::parse(&event).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{message} should contain {expected}"
            );
            assert!(!message.contains("hunter2"));
        }
    }
}
