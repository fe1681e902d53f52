//! The events the Lambda accepts (the README lists them), parsed into types before anything
//! acts on them.

use std::fmt;

use secrecy::SecretString;
use serde_json::Value;

use crate::error::{Error, Result, echo};
use crate::token::fields::shape;

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

    /// The step a name means: Secrets Manager's names, in any case (`CreateSecret` has one
    /// meaning).
    fn parse(name: &str) -> Option<Step> {
        [
            Step::CreateSecret,
            Step::SetSecret,
            Step::TestSecret,
            Step::FinishSecret,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(name))
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
    /// A rejection report sent straight to the function (an operator, the CLI).
    Report(Report),
    /// Records from the report queue: the well-formed reports, and the shapes of the bodies
    /// that are not (counted and logged, never acted on).
    Queued {
        /// The reports, in the order received.
        reports: Vec<Report>,
        /// One description per ignored body: its length and top-level keys, never a value.
        ignored: Vec<String>,
    },
    /// AWSCURRENT of a secret moved (Secrets Manager's `Secret Label Updated` event, or
    /// CloudTrail's `PutSecretValue`, `UpdateSecret`, `UpdateSecretVersionStage`); it matters
    /// when the secret holds credentials.
    CredentialsChanged {
        /// The secret: an ARN (native event) or the id the API call named.
        secret_id: String,
    },
    /// An event of an accepted source that asks for nothing (a custom staging label moved):
    /// success with no results.
    Unrelated {
        /// Why it needs nothing (for the log).
        why: &'static str,
    },
    /// A follow-up that a tick (or a follow-up) sent itself: a tick over the fleet that
    /// first waits out the pause of logins it carries.
    /// `{"action": "refresh", "follow_up": n, "paused_until": "<RFC 3339>"?}`.
    FollowUp {
        /// Its place in the chain: 1 for the tick's follow-up.
        n: u32,
        /// No login starts before this time (iAdvize answered 429).
        paused_until: Option<time::OffsetDateTime>,
    },
}

/// `{"action": "report-rejected", "secret_id", "token_sha256"}`: a consumer's call was
/// refused (401) with the token it read from `secret_id`, and a re-read returned the same
/// token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Report {
    /// The token secret, as the consumer names it (name or ARN).
    pub secret_id: String,
    /// The SHA-256 of the refused access token, 64 lower-case hex digits.
    pub token_sha256: String,
}

/// The `action` of a report.
pub const REPORT_ACTION: &str = "report-rejected";

/// The keys a report has.
const REPORT_KEYS: [&str; 3] = ["action", "secret_id", "token_sha256"];

/// The CloudTrail API calls that may move a secret's AWSCURRENT.
const CREDENTIALS_CALLS: [&str; 3] = ["PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage"];

impl Report {
    /// Parses a report (the SQS body or the direct event). The error names the field at
    /// fault and says what it holds — its JSON type and size, never its value (a confused
    /// sender might put the token itself there).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] for an unknown or missing field, a secret id that cannot be
    /// one, or a hash that is not 64 hex digits.
    pub fn parse(event: &Value) -> Result<Report> {
        const USAGE: &str = "a report is {\"action\": \"report-rejected\", \"secret_id\": \"<name or ARN>\", \"token_sha256\": \"<64 hex digits>\"}";
        let invalid = |message: String| Error::InvalidEvent(format!("{USAGE}: {message}"));
        let Some(object) = event.as_object() else {
            return Err(invalid(format!("got {}", shape(event))));
        };
        let unknown: Vec<&String> = object
            .keys()
            .filter(|k| !REPORT_KEYS.contains(&k.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(invalid(format!("unknown field(s) {}", key_list(unknown))));
        }
        match object.get("action") {
            Some(Value::String(a)) if a.trim().eq_ignore_ascii_case(REPORT_ACTION) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "action is {}, expected \"{REPORT_ACTION}\"",
                    shape(other)
                )));
            }
            None => return Err(invalid("action is missing".into())),
        }
        let secret = match object.get("secret_id") {
            Some(value) => secret_id(value).map_err(|e| invalid(format!("secret_id {e}")))?,
            None => return Err(invalid("secret_id is missing".into())),
        };
        let hash = match object.get("token_sha256") {
            Some(Value::String(h))
                if h.trim().len() == 64 && h.trim().bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                h.trim().to_ascii_lowercase()
            }
            Some(other) => {
                return Err(invalid(format!(
                    "token_sha256 is {}, expected 64 hexadecimal digits (the SHA-256 of the access token, never the token)",
                    shape(other)
                )));
            }
            None => return Err(invalid("token_sha256 is missing".into())),
        };
        Ok(Report {
            secret_id: secret,
            token_sha256: hash,
        })
    }
}

/// `{"Records": [{"eventSource": "aws:sqs", "body": "…"}, …]}` from the report queue's event
/// source mapping: every body is a report or is ignored.
fn parse_queued(records: &[Value]) -> Event {
    let mut reports = Vec::new();
    let mut ignored = Vec::new();
    for record in records {
        if record.get("eventSource").and_then(Value::as_str) != Some("aws:sqs") {
            ignored.push(format!("a record that is not from SQS: {}", shape(record)));
            continue;
        }
        let Some(body) = record.get("body").and_then(Value::as_str) else {
            ignored.push("a record without a string body".to_owned());
            continue;
        };
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        match parsed.as_ref().map(Report::parse) {
            Some(Ok(report)) => reports.push(report),
            _ => ignored.push(body_shape(body, parsed.as_ref())),
        }
    }
    Event::Queued { reports, ignored }
}

/// What an ignored body looks like: its length and, for a JSON object, its top-level keys.
fn body_shape(body: &str, parsed: Option<&Value>) -> String {
    match parsed {
        Some(Value::Object(object)) => format!(
            "a body of {} bytes, a JSON object with keys {}",
            body.len(),
            key_list(object.keys())
        ),
        Some(other) => format!("a body of {} bytes, {}", body.len(), shape(other)),
        None => format!("a body of {} bytes that is not JSON", body.len()),
    }
}

/// An EventBridge event from `aws.secretsmanager`: a native label move or a CloudTrail call.
fn parse_secrets_manager(object: &serde_json::Map<String, Value>) -> Result<Event> {
    let detail = object.get("detail").and_then(Value::as_object);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let named = |id: Option<String>, field: &str| -> Result<Event> {
        let id = id.ok_or_else(|| {
            Error::InvalidEvent(format!("Secrets Manager event: {field} is missing"))
        })?;
        let secret = secret_id(&Value::String(id))
            .map_err(|e| Error::InvalidEvent(format!("Secrets Manager event: {field} {e}")))?;
        Ok(Event::CredentialsChanged { secret_id: secret })
    };
    match object.get("detail-type").and_then(Value::as_str) {
        Some("Secret Label Updated") => {
            // Custom staging labels raise the same event; only a new AWSCURRENT matters.
            if text(detail.and_then(|d| d.get("labelUpdated"))).as_deref() != Some("AWSCURRENT") {
                return Ok(Event::Unrelated {
                    why: "a staging label other than AWSCURRENT moved",
                });
            }
            let arn = object
                .get("resources")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(Value::as_str)
                .map(str::to_owned);
            named(
                arn.or_else(|| text(detail.and_then(|d| d.get("name")))),
                "resources[0] (and detail.name)",
            )
        }
        Some("AWS API Call via CloudTrail") => {
            let call = text(detail.and_then(|d| d.get("eventName"))).unwrap_or_default();
            if !CREDENTIALS_CALLS.contains(&call.as_str()) {
                return Ok(Event::Unrelated {
                    why: "an API call that does not move AWSCURRENT",
                });
            }
            let params = detail
                .and_then(|d| d.get("requestParameters"))
                .and_then(Value::as_object);
            // A call that names its stages without AWSCURRENT leaves AWSCURRENT where it was.
            let stages: Vec<&str> = match (
                params.and_then(|p| p.get("versionStage")),
                params.and_then(|p| p.get("versionStages")),
            ) {
                (Some(Value::String(stage)), _) => vec![stage.as_str()],
                (_, Some(Value::Array(stages))) => {
                    stages.iter().filter_map(Value::as_str).collect()
                }
                _ => vec!["AWSCURRENT"],
            };
            if !stages.contains(&"AWSCURRENT") {
                return Ok(Event::Unrelated {
                    why: "an API call that does not move AWSCURRENT",
                });
            }
            named(
                text(params.and_then(|p| p.get("secretId"))),
                "detail.requestParameters.secretId",
            )
        }
        _ => Err(Error::InvalidEvent(format!(
            "a Secrets Manager event other than \"Secret Label Updated\" or \"AWS API Call via CloudTrail\" (top-level keys: {})",
            key_list(object.keys())
        ))),
    }
}

/// Longest secret id Secrets Manager accepts (`SecretId`: 1 to 2,048 characters).
pub const MAX_SECRET_ID_CHARS: usize = 2048;

/// Longest version id (`ClientRequestToken`: 32 to 64 characters in Secrets Manager's API).
pub const MAX_VERSION_ID_CHARS: usize = 64;

/// The keys an operator event may have.
const OPERATOR_KEYS: [&str; 5] = [
    "action",
    "force",
    "secret_ids",
    // A follow-up's (sent by the broker itself).
    "follow_up",
    "paused_until",
];

impl Event {
    /// Classifies a raw event. Lenient where a variation has one clear meaning (names of steps
    /// and actions in any case with surrounding whitespace, ids with surrounding whitespace,
    /// `force` as `"true"`/`"false"`, `secret_ids` as one string or a comma-separated list);
    /// everything else is refused with what was received — its JSON type and size, keys and
    /// step names capped in length ([`echo`]) — never a value that could be secret.
    pub fn parse(event: &Value) -> Result<Event> {
        let Some(object) = event.as_object() else {
            return Err(Error::InvalidEvent(format!(
                "expected a JSON object, got {}",
                shape(event)
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
        if let Some(Value::Array(records)) = object.get("Records")
            && records
                .iter()
                .any(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        {
            return Ok(parse_queued(records));
        }
        if object.get("source").and_then(Value::as_str) == Some("aws.secretsmanager") {
            return parse_secrets_manager(object);
        }
        if object
            .get("action")
            .and_then(Value::as_str)
            .is_some_and(|a| a.trim().eq_ignore_ascii_case(REPORT_ACTION))
        {
            return Report::parse(event).map(Event::Report);
        }
        if object.contains_key("action") {
            return parse_operator(object);
        }
        Err(Error::InvalidEvent(format!(
            "not a rotation step, a scheduled event or an operator action (top-level keys: {})",
            key_list(object.keys())
        )))
    }
}

/// `{"action": "refresh"|"status", "force": bool, "secret_ids": [..]}`.
fn parse_operator(object: &serde_json::Map<String, Value>) -> Result<Event> {
    const USAGE: &str = "an operator event is {\"action\": \"refresh\"|\"status\", \"force\": bool, \"secret_ids\": [..]}";
    // A follow-up's errors show the follow-up's shape, not the operator event's.
    let follow_up = object.contains_key("follow_up") || object.contains_key("paused_until");
    let usage = if follow_up { FOLLOW_UP_USAGE } else { USAGE };
    let invalid = |message: String| Error::InvalidEvent(format!("{usage}: {message}"));
    let unknown: Vec<&String> = object
        .keys()
        .filter(|k| !OPERATOR_KEYS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!("unknown field(s) {}", key_list(unknown))));
    }
    let action = match &object["action"] {
        Value::String(action) => action.trim().to_ascii_lowercase(),
        other => {
            return Err(invalid(format!(
                "action is {}, expected a string",
                shape(other)
            )));
        }
    };
    let force = match object.get("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(force)) => *force,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(invalid(format!(
                "force is {}, expected true or false",
                shape(other)
            )));
        }
    };
    let secret_ids = match object.get("secret_ids") {
        None | Some(Value::Null) => None,
        // One id, or a comma-separated list as in IADVIZE_TOKEN_SECRET_IDS (ids never hold
        // commas).
        Some(Value::String(list)) => Some(
            list.split(',')
                .map(|id| {
                    secret_id(&Value::String(id.to_owned()))
                        .map_err(|e| invalid(format!("secret_ids {e}")))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(Value::Array(ids)) => Some(
            ids.iter()
                .enumerate()
                .map(|(i, id)| secret_id(id).map_err(|e| invalid(format!("secret_ids[{i}] {e}"))))
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(other) => {
            return Err(invalid(format!(
                "secret_ids is {}, expected an array of secret names or ARNs",
                shape(other)
            )));
        }
    };
    if follow_up {
        return parse_follow_up(object, &action, force, secret_ids.is_some()).map_err(invalid);
    }
    match action.as_str() {
        "refresh" => {
            if secret_ids.as_ref().is_some_and(|ids| ids.is_empty()) {
                return Err(Error::InvalidEvent(
                    "secret_ids is empty; leave it out to refresh the configured secrets".into(),
                ));
            }
            Ok(Event::Refresh { force, secret_ids })
        }
        "status" => Ok(Event::Status),
        _ => Err(Error::InvalidEvent(format!(
            "unknown action {:?}; expected \"refresh\", \"status\" or \"report-rejected\"",
            echo(&action)
        ))),
    }
}

/// The shape of a follow-up, as its errors show it.
const FOLLOW_UP_USAGE: &str =
    "a follow-up is {\"action\": \"refresh\", \"follow_up\": n, \"paused_until\": \"<RFC 3339>\"?}";

/// `{"action": "refresh", "follow_up": n, "paused_until": "<RFC 3339>"?}`: the whole fleet,
/// never forced (a follow-up only finishes what its tick deferred).
fn parse_follow_up(
    object: &serde_json::Map<String, Value>,
    action: &str,
    force: bool,
    listed: bool,
) -> std::result::Result<Event, String> {
    if action != "refresh" || force || listed {
        return Err(
            "its action is refresh, without force or secret_ids (a follow-up finishes its tick's work over the fleet)".into(),
        );
    }
    let n = match object.get("follow_up") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("follow_up is {n}, expected a whole number of at least 1"))?,
        Some(other) => {
            return Err(format!(
                "follow_up is {}, expected a whole number of at least 1",
                shape(other)
            ));
        }
        None => return Err("paused_until without follow_up".into()),
    };
    let paused_until = match object.get("paused_until") {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) => {
            Some(crate::token::parse_rfc3339(at.trim()).ok_or_else(|| {
                format!(
                    "paused_until is {}, expected an RFC 3339 time",
                    shape(&Value::String(at.clone()))
                )
            })?)
        }
        Some(other) => {
            return Err(format!(
                "paused_until is {}, expected an RFC 3339 time",
                shape(other)
            ));
        }
    };
    Ok(Event::FollowUp { n, paused_until })
}

fn parse_step(object: &serde_json::Map<String, Value>) -> Result<StepEvent> {
    let invalid = |message: String| Error::InvalidEvent(format!("rotation step: {message}"));
    let name = match object.get("Step") {
        Some(Value::String(name)) => name.trim(),
        Some(other) => {
            return Err(invalid(format!(
                "Step is {}, expected a string",
                shape(other)
            )));
        }
        None => return Err(invalid("Step is missing".into())),
    };
    let step = Step::parse(name).ok_or_else(|| {
        Error::InvalidEvent(format!(
            "unknown rotation step {:?}; expected createSecret, setSecret, testSecret or finishSecret",
            echo(name)
        ))
    })?;
    let secret = match object.get("SecretId") {
        Some(value) => secret_id(value).map_err(|e| invalid(format!("SecretId {e}")))?,
        None => return Err(invalid("SecretId is missing".into())),
    };
    let token = match object.get("ClientRequestToken") {
        Some(Value::String(token))
            if !token.trim().is_empty()
                && token.trim().chars().count() <= MAX_VERSION_ID_CHARS
                && token.trim().bytes().all(|b| b.is_ascii_graphic()) =>
        {
            token.trim().to_owned()
        }
        Some(other) => {
            return Err(invalid(format!(
                "ClientRequestToken is {}, expected a version id (1 to {MAX_VERSION_ID_CHARS} visible ASCII characters)",
                shape(other)
            )));
        }
        None => return Err(invalid("ClientRequestToken is missing".into())),
    };
    let rotation_token = match object.get("RotationToken") {
        None | Some(Value::Null) => None,
        // Passed through unchanged; an empty one is no token.
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(SecretString::from(s.clone())),
        Some(other) => {
            return Err(invalid(format!(
                "RotationToken is {}, expected a string",
                shape(other)
            )));
        }
    };
    Ok(StepEvent {
        step,
        secret_id: secret,
        token,
        rotation_token,
    })
}

/// A secret name or ARN from an event: a string, surrounding whitespace ignored, of 1 to
/// [`MAX_SECRET_ID_CHARS`] characters that a name (`A-Z a-z 0-9 / _ + = . @ -`) or an ARN
/// (those and `:`) can hold. The error says what was received instead, after the field's name.
fn secret_id(value: &Value) -> std::result::Result<String, String> {
    let Value::String(text) = value else {
        return Err(format!(
            "is {}, expected a secret name or ARN",
            shape(value)
        ));
    };
    let id = text.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c);
    if id.is_empty() {
        Err(format!(
            "is {}, expected a secret name or ARN",
            shape(value)
        ))
    } else if id.chars().count() > MAX_SECRET_ID_CHARS {
        Err(format!(
            "is {}; Secrets Manager ids are at most {MAX_SECRET_ID_CHARS} characters",
            shape(value)
        ))
    } else if !id.chars().all(allowed) {
        Err(format!(
            "is {} with characters no secret name or ARN holds (only letters, digits and /_+=.@-:)",
            shape(value)
        ))
    } else {
        Ok(id.to_owned())
    }
}

/// Keys as an error shows them: each at most 64 characters, the whole list capped ([`echo`]).
fn key_list<'a>(keys: impl IntoIterator<Item = &'a String>) -> String {
    let mut keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
    keys.sort_unstable();
    let list = keys
        .iter()
        .map(|k| shorten(k))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[{}]", echo(&list))
}

/// Caps one echoed name so a hostile event cannot flood the logs.
fn shorten(text: &str) -> String {
    if text.chars().count() > 64 {
        format!("{}…", text.chars().take(64).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_follow_up_carries_its_number_and_the_pause() {
        let event = json!({"action": "refresh", "follow_up": 2, "paused_until": "2026-11-30T10:00:00.250Z"});
        match Event::parse(&event).unwrap() {
            Event::FollowUp { n, paused_until } => {
                assert_eq!(n, 2);
                assert_eq!(
                    paused_until,
                    Some(time::macros::datetime!(2026-11-30 10:00:00.25 UTC))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Event::parse(&json!({"action": "refresh", "follow_up": 1})).unwrap(),
            Event::FollowUp {
                n: 1,
                paused_until: None
            }
        ));
        for (bad, says) in [
            (
                json!({"action": "refresh", "follow_up": 0}),
                "follow_up is 0",
            ),
            (
                json!({"action": "refresh", "follow_up": "1"}),
                "follow_up is a string",
            ),
            (
                json!({"action": "refresh", "follow_up": 1, "paused_until": "soon"}),
                "paused_until is a string",
            ),
            (
                json!({"action": "refresh", "paused_until": "2026-11-30T10:00:00Z"}),
                "without follow_up",
            ),
            (
                json!({"action": "refresh", "follow_up": 1, "force": true}),
                "without force",
            ),
            (json!({"action": "status", "follow_up": 1}), "without force"),
            (
                json!({"action": "refresh", "follow_up": 1, "secret_ids": ["a"]}),
                "without force or secret_ids",
            ),
        ] {
            let err = Event::parse(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_follow_up_is_explained_with_the_follow_ups_shape() {
        for bad in [
            json!({"action": "refresh", "follow_up": 0}),
            json!({"action": "refresh", "follow_up": "1"}),
            json!({"action": "refresh", "follow_up": 1, "paused_until": "soon"}),
            json!({"action": "refresh", "paused_until": "2026-11-30T10:00:00Z"}),
            json!({"action": "refresh", "follow_up": 1, "force": true}),
            json!({"action": "status", "follow_up": 1}),
            json!({"action": "refresh", "follow_up": 1, "extra": 1}),
            json!({"action": 5, "follow_up": 1}),
        ] {
            let err = Event::parse(&bad).unwrap_err().to_string();
            assert!(
                err.contains(
                    "a follow-up is {\"action\": \"refresh\", \"follow_up\": n, \"paused_until\": \"<RFC 3339>\"?}: "
                ) && !err.contains("operator event"),
                "{bad}: {err}"
            );
        }
        let err = Event::parse(&json!({"action": "refresh", "extra": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("an operator event is"), "{err}");
    }

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
    fn queue_records_are_reports_or_ignored_by_shape_and_label_moves_need_awscurrent() {
        let hash = "AB".repeat(32);
        let report = json!({"action": "report-rejected", "secret_id": "s", "token_sha256": hash});
        let records = json!({"Records": [
            {"eventSource": "aws:sqs", "body": report.to_string()},
            {"eventSource": "aws:sqs", "body": json!({"action": "refresh", "force": true}).to_string()},
            {"eventSource": "aws:sqs", "body": "secret-token-value"},
        ]});
        let Event::Queued { reports, ignored } = Event::parse(&records).unwrap() else {
            panic!()
        };
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].token_sha256, "ab".repeat(32), "lower-cased");
        assert_eq!(ignored.len(), 2);
        assert!(ignored[0].contains("keys [action, force]"), "{ignored:?}");
        assert!(
            !ignored[1].contains("secret-token-value"),
            "never the value"
        );

        let label = |l: &str| json!({"source": "aws.secretsmanager", "detail-type": "Secret Label Updated", "resources": ["arn:c"], "detail": {"labelUpdated": l}});
        assert!(
            matches!(Event::parse(&label("AWSCURRENT")).unwrap(), Event::CredentialsChanged { secret_id } if secret_id == "arn:c")
        );
        assert!(matches!(
            Event::parse(&label("MINE")).unwrap(),
            Event::Unrelated { .. }
        ));
        let call = |name: &str, params: Value| json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": name, "requestParameters": params}});
        assert!(matches!(
            Event::parse(&call(
                "UpdateSecretVersionStage",
                json!({"secretId": "c", "versionStage": "AWSCURRENT"})
            ))
            .unwrap(),
            Event::CredentialsChanged { .. }
        ));
        assert!(matches!(
            Event::parse(&call(
                "UpdateSecretVersionStage",
                json!({"secretId": "c", "versionStage": "MINE"})
            ))
            .unwrap(),
            Event::Unrelated { .. }
        ));
        assert!(matches!(
            Event::parse(&call("DeleteSecret", json!({"secretId": "c"}))).unwrap(),
            Event::Unrelated { .. }
        ));
        assert!(
            Event::parse(&call("PutSecretValue", json!({})))
                .unwrap_err()
                .to_string()
                .contains("requestParameters.secretId is missing")
        );
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
                "SecretId is an integer, expected a secret name or ARN",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": 1}),
                "RotationToken is an integer, expected a string",
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
            (
                json!({"action": "refresh", "force": "yes"}),
                "force is a string of 3 characters, expected true or false",
            ),
            (
                json!({"action": "refresh", "secret_ids": []}),
                "secret_ids is empty",
            ),
            (
                json!({"action": "refresh", "extra": 1}),
                "unknown field(s) [extra]",
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
