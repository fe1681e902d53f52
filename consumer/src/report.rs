//! Rejection reports: how a consumer tells the broker that iAdvize refused the token the
//! secret still holds, so that the broker checks it and replaces it within the minute instead
//! of at its next refresh.
//!
//! A report is one SQS message on the broker's report queue (a FIFO queue with content-based
//! deduplication; its URL is `IADVIZE_REPORT_QUEUE_URL`):
//!
//! ```json
//! {"action": "report-rejected", "secret_id": "<the token secret's full ARN>",
//!  "token_sha256": "<SHA-256 of the access token, 64 lower-case hex digits>"}
//! ```
//!
//! with the message group id set to that ARN. The ARN is the one `GetSecretValue` answers,
//! whatever name the consumer reads the secret by, so every report of one secret lands in
//! one message group: the queue's event source mapping hands them to the broker one batch at
//! a time (never two invocations at once, so one login for any number of reports), and SQS
//! drops repeats of the same report within five minutes.
//! The token itself never leaves the process: only its hash, which the broker compares with
//! the hash of the token it published. Sending needs `sqs:SendMessage` on that queue, and
//! nothing else: a consumer cannot ask the broker for anything but a check of its token.

use sha2::{Digest, Sha256};

use crate::token::AccessToken;

/// The environment variable that holds the report queue's URL.
pub const REPORT_QUEUE_URL_ENV: &str = "IADVIZE_REPORT_QUEUE_URL";

/// The value of `action` in a report.
pub const REPORT_ACTION: &str = "report-rejected";

/// SQS's longest message group id, in characters.
const MAX_GROUP_ID: usize = 128;

/// The SHA-256 of the token, as 64 lower-case hex digits: what a report carries instead of
/// the token.
pub fn token_sha256(token: &AccessToken) -> String {
    hex::encode(Sha256::digest(token.expose().as_bytes()))
}

/// The SQS message body of a report of `token`, read from `secret_id` (the secret's full
/// ARN, as `GetSecretValue` answered it, so that every consumer's report of one token has
/// the same body).
pub fn report_body(secret_id: &str, token: &AccessToken) -> String {
    serde_json::json!({
        "action": REPORT_ACTION,
        "secret_id": secret_id,
        "token_sha256": token_sha256(token),
    })
    .to_string()
}

/// The message group id of the reports of `secret_id` (the secret's full ARN): the id
/// itself, or, for an id longer than SQS allows (128 characters), the SHA-256 hex of it,
/// still one group per secret.
pub fn message_group_id(secret_id: &str) -> String {
    if secret_id.len() <= MAX_GROUP_ID {
        secret_id.to_owned()
    } else {
        hex::encode(Sha256::digest(secret_id.as_bytes()))
    }
}

/// What to do to get reports, said once by a consumer that has none (`secret_id`: the secret
/// whose token iAdvize refused). A build without the `report` feature ignores
/// `IADVIZE_REPORT_QUEUE_URL`, so its hint names the feature first.
pub fn enable_hint(secret_id: &str) -> String {
    if cfg!(not(feature = "report")) {
        return format!(
            "iAdvize refused the token of {secret_id} and the secret still holds it: the broker replaces it at its next refresh. \
             This build of iadvize-token-consumer has no `report` feature, so it cannot report it{}: \
             to have it replaced within the minute, build with the `report` feature (a default feature), set {REPORT_QUEUE_URL_ENV} to the broker's report queue URL \
             (an output of the broker's stack) and grant this consumer's role sqs:SendMessage on that queue",
            if std::env::var_os(REPORT_QUEUE_URL_ENV).is_some() {
                format!(" ({REPORT_QUEUE_URL_ENV} is set but ignored)")
            } else {
                String::new()
            }
        );
    }
    format!(
        "iAdvize refused the token of {secret_id} and the secret still holds it: the broker replaces it at its next refresh. \
         To have it replaced within the minute, let this consumer report it: set {REPORT_QUEUE_URL_ENV} to the broker's report queue URL \
         (an output of the broker's stack) and grant this consumer's role sqs:SendMessage on that queue"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_carries_the_hash_of_the_token_never_the_token() {
        let token = AccessToken::new("s3cr3t-token");
        let body = report_body("team/a", &token);
        assert!(!body.contains("s3cr3t-token"));
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let keys: Vec<&String> = parsed.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["action", "secret_id", "token_sha256"]);
        assert_eq!(parsed["action"], "report-rejected");
        assert_eq!(parsed["secret_id"], "team/a");
        let hash = parsed["token_sha256"].as_str().unwrap();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(hash, token_sha256(&token));
        assert_eq!(
            token_sha256(&AccessToken::new("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "FIPS 180-2's test vector for \"abc\""
        );
    }

    #[test]
    fn the_group_is_the_secret_id_or_its_hash_when_too_long() {
        assert_eq!(message_group_id("team/a"), "team/a");
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:iadvize/token-AbCdEf";
        assert_eq!(message_group_id(arn), arn);
        let long = "x".repeat(200);
        let group = message_group_id(&long);
        assert_eq!(group.len(), 64);
        assert_ne!(group, message_group_id(&"x".repeat(201)));
    }

    #[test]
    fn the_hint_names_the_setting_and_the_permission() {
        let hint = enable_hint("team/a");
        assert!(hint.contains("IADVIZE_REPORT_QUEUE_URL"));
        assert!(hint.contains("sqs:SendMessage"));
        assert!(hint.contains("team/a"));
    }

    #[test]
    fn without_the_report_feature_the_hint_names_the_feature() {
        let hint = enable_hint("team/a");
        let names_it = hint.contains("no `report` feature");
        assert_eq!(names_it, cfg!(not(feature = "report")), "{hint}");
    }
}
