//! The broker's state kept in a token secret's tags: their names, how their values are
//! written, and the one reader of each. Tags are the broker's only memory between
//! invocations besides the secret's versions; a bad or missing value must never block a
//! secret for good (see each reader).
//!
//! | tag | value | written by |
//! |---|---|---|
//! | `iadvize:managed` | `true`: the tick discovers the secret | the operator (IaC) |
//! | `iadvize:credentials-secret-id` | the credentials secret's name or ARN | the operator |
//! | `iadvize:last-login-attempt` | RFC 3339 start of the last login attempt | the login path |
//! | `iadvize:rejected-credentials-version` | the credentials VersionId iAdvize refused | the login path |
//! | `iadvize:last-report-verification` | `<RFC 3339> <accepted\|rejected> <sha256 hex>` | the report handling |

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::token::{parse_rfc3339, rfc3339_precise};

/// Puts a token secret under the broker's management when its value is exactly `true`
/// (discovery by `ListSecrets`).
pub const MANAGED: &str = "iadvize:managed";
/// Names the token secret's credentials secret (name or ARN); overrides
/// `IADVIZE_CREDENTIALS_SECRET_ID`.
pub const CREDENTIALS_SECRET: &str = "iadvize:credentials-secret-id";
/// When the token secret's last login attempt started (RFC 3339, UTC).
pub const LAST_LOGIN_ATTEMPT: &str = "iadvize:last-login-attempt";
/// The credentials VersionId iAdvize refused for this token secret: no login while it is
/// still the credentials' AWSCURRENT, except the probes.
pub const REJECTED_CREDENTIALS: &str = "iadvize:rejected-credentials-version";

/// The last verification of a reported token: `<RFC 3339 time> <accepted|rejected> <SHA-256
/// hex of the token>`. Later reports of the same token within `IADVIZE_REPORT_VERIFY_INTERVAL`
/// are answered from it, whichever invocation gets them.
pub const LAST_REPORT_VERIFICATION: &str = "iadvize:last-report-verification";

/// Marks a credentials secret (`true`, exactly): an event saying its AWSCURRENT moved makes
/// the broker check the token secrets that use it. Written by the operator (IaC); the default
/// credentials secret (`IADVIZE_CREDENTIALS_SECRET_ID`) counts without it.
pub const CREDENTIALS: &str = "iadvize:credentials";

/// Whether a tag set marks a credentials secret ([`CREDENTIALS`] = `true`, exactly).
pub fn is_credentials(tags: &HashMap<String, String>) -> bool {
    tags.get(CREDENTIALS).map(String::as_str) == Some("true")
}

/// What iAdvize said of a reported token, as [`LAST_REPORT_VERIFICATION`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportVerification<'a> {
    /// When `/_authenticated` was asked.
    pub at: OffsetDateTime,
    /// Whether iAdvize accepted the token.
    pub accepted: bool,
    /// The SHA-256 of the token, lower-case hex.
    pub token_sha256: &'a str,
}

impl<'a> ReportVerification<'a> {
    /// Parses the tag's value; `None` for anything else (a bad value only costs one more
    /// verification).
    pub fn parse(value: &'a str) -> Option<Self> {
        let mut parts = value.split(' ');
        let at = parse_rfc3339(parts.next()?)?;
        let accepted = match parts.next()? {
            "accepted" => true,
            "rejected" => false,
            _ => return None,
        };
        let token_sha256 = parts.next()?;
        if parts.next().is_some()
            || token_sha256.len() != 64
            || !token_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        Some(ReportVerification {
            at,
            accepted,
            token_sha256,
        })
    }

    /// The tag's value.
    pub fn value(at: OffsetDateTime, accepted: bool, token_sha256: &str) -> String {
        let outcome = if accepted { "accepted" } else { "rejected" };
        format!("{} {outcome} {token_sha256}", rfc3339_precise(at))
    }

    /// Whether this verification still answers a report of `token_sha256` at `now`: the same
    /// token, verified less than `interval` ago (a time in the future does not count).
    pub fn answers(&self, token_sha256: &str, now: OffsetDateTime, interval: Duration) -> bool {
        self.token_sha256 == token_sha256 && self.at <= now && (now - self.at) < interval
    }
}

/// Whether a tag set puts its secret under management (`iadvize:managed` = `true`, exactly).
pub fn is_managed(tags: &HashMap<String, String>) -> bool {
    tags.get(MANAGED).map(String::as_str) == Some("true")
}

/// The value written to [`LAST_LOGIN_ATTEMPT`] for a login starting at `at` (to the
/// millisecond, so two starts a moment apart stay apart).
pub fn login_attempt_value(at: OffsetDateTime) -> String {
    rfc3339_precise(at)
}

/// The broker's tags of one token secret, read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerTags<'a> {
    /// [`CREDENTIALS_SECRET`], trimmed (a secret id holds no surrounding whitespace); `None`
    /// when absent or blank.
    pub credentials_secret_id: Option<&'a str>,
    /// [`LAST_LOGIN_ATTEMPT`] as written (status shows it as it is).
    pub last_login_attempt_text: Option<&'a str>,
    /// [`LAST_LOGIN_ATTEMPT`] parsed; `None` when absent or not RFC 3339.
    pub last_login_attempt: Option<OffsetDateTime>,
    /// [`REJECTED_CREDENTIALS`].
    pub rejected_credentials_version: Option<&'a str>,
    /// [`LAST_REPORT_VERIFICATION`] parsed; `None` when absent or unreadable.
    pub last_report_verification: Option<ReportVerification<'a>>,
}

impl<'a> BrokerTags<'a> {
    /// Reads the broker's tags from a secret's tag set.
    pub fn read(tags: &'a HashMap<String, String>) -> Self {
        let text = tags.get(LAST_LOGIN_ATTEMPT).map(String::as_str);
        BrokerTags {
            credentials_secret_id: tags
                .get(CREDENTIALS_SECRET)
                .map(|id| id.trim())
                .filter(|id| !id.is_empty()),
            last_login_attempt_text: text,
            last_login_attempt: text.and_then(parse_rfc3339),
            rejected_credentials_version: tags.get(REJECTED_CREDENTIALS).map(String::as_str),
            last_report_verification: tags
                .get(LAST_REPORT_VERIFICATION)
                .and_then(|v| ReportVerification::parse(v)),
        }
    }

    /// The last login start for pacing: `None` when the tag is missing, unreadable or lies
    /// after `now`. A bad tag (or clock skew) must neither block a user's logins for good nor
    /// overflow the pacing window arithmetic.
    pub fn last_login_start(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.last_login_attempt.filter(|at| *at <= now)
    }

    /// Time since the last login attempt started (see [`BrokerTags::last_login_start`]).
    pub fn since_last_login(&self, now: OffsetDateTime) -> Option<Duration> {
        (now - self.last_login_start(now)?).try_into().ok()
    }

    /// While iAdvize's refusal of a credentials version stands: when the next probe login
    /// may start, `retry` after the last attempt (probes are login attempts too, so the
    /// last-attempt tag is the probe clock); at once when that tag is missing or unreadable.
    /// `None` when probing is off (`retry` is `None`).
    pub fn next_probe_at(&self, retry: Option<Duration>) -> Option<OffsetDateTime> {
        let retry = time::Duration::try_from(retry?).ok()?;
        let last = self
            .last_login_attempt
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // A tag near the end of time must not overflow: no probe before it, then.
        Some(last.checked_add(retry).unwrap_or(last))
    }

    /// Whether iAdvize refused `credentials_version` for this secret (the block stands).
    pub fn refused(&self, credentials_version: &str) -> bool {
        self.rejected_credentials_version == Some(credentials_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn tags(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_login_tag_in_the_future_or_unreadable_does_not_count_for_pacing() {
        let now = datetime!(2026-11-30 10:00 UTC);
        let future = tags(&[(LAST_LOGIN_ATTEMPT, "2026-11-30T11:00:00Z")]);
        assert_eq!(BrokerTags::read(&future).last_login_start(now), None);
        let bad = tags(&[(LAST_LOGIN_ATTEMPT, "yesterday")]);
        assert_eq!(BrokerTags::read(&bad).since_last_login(now), None);
        let recent = tags(&[(
            LAST_LOGIN_ATTEMPT,
            &login_attempt_value(now - time::Duration::seconds(4)),
        )]);
        assert_eq!(
            BrokerTags::read(&recent).since_last_login(now),
            Some(Duration::from_secs(4))
        );
    }

    #[test]
    fn probes_follow_the_last_attempt_and_never_overflow() {
        let hour = Some(Duration::from_secs(3600));
        let set = tags(&[(LAST_LOGIN_ATTEMPT, "2026-11-30T10:00:00Z")]);
        let read = BrokerTags::read(&set);
        assert_eq!(
            read.next_probe_at(hour),
            Some(datetime!(2026-11-30 11:00 UTC))
        );
        assert_eq!(read.next_probe_at(None), None);
        let none = tags(&[]);
        assert_eq!(
            BrokerTags::read(&none).next_probe_at(hour),
            Some(OffsetDateTime::UNIX_EPOCH + time::Duration::HOUR)
        );
        let end = tags(&[(LAST_LOGIN_ATTEMPT, "9999-12-31T23:59:59Z")]);
        assert_eq!(
            BrokerTags::read(&end).next_probe_at(hour),
            Some(datetime!(9999-12-31 23:59:59 UTC))
        );
    }

    #[test]
    fn a_report_verification_is_read_back_and_answers_only_its_token_within_the_interval() {
        let at = datetime!(2026-11-30 10:00 UTC);
        let hash = "ab".repeat(32);
        let value = ReportVerification::value(at, false, &hash);
        assert_eq!(value, format!("2026-11-30T10:00:00Z rejected {hash}"));
        let set = tags(&[(LAST_REPORT_VERIFICATION, &value)]);
        let read = BrokerTags::read(&set).last_report_verification.unwrap();
        assert!(!read.accepted);
        let minute = Duration::from_secs(60);
        assert!(read.answers(&hash, at + time::Duration::seconds(59), minute));
        assert!(!read.answers(&hash, at + time::Duration::seconds(60), minute));
        assert!(!read.answers(&"cd".repeat(32), at, minute));
        assert!(!read.answers(&hash, at - time::Duration::seconds(1), minute));
        for bad in [
            "",
            "yesterday accepted abab",
            &format!("2026-11-30T10:00:00Z maybe {hash}"),
            &format!("2026-11-30T10:00:00Z accepted {}", "AB".repeat(32)),
            &format!("2026-11-30T10:00:00Z accepted {hash} extra"),
        ] {
            assert_eq!(ReportVerification::parse(bad), None, "{bad}");
        }
        assert!(is_credentials(&tags(&[(CREDENTIALS, "true")])));
        assert!(!is_credentials(&tags(&[(CREDENTIALS, "yes")])));
    }

    #[test]
    fn a_blank_credentials_tag_is_no_tag_and_managed_means_exactly_true() {
        let set = tags(&[(CREDENTIALS_SECRET, "  "), (MANAGED, "True")]);
        assert_eq!(BrokerTags::read(&set).credentials_secret_id, None);
        assert!(!is_managed(&set));
        let set = tags(&[(CREDENTIALS_SECRET, " team/creds "), (MANAGED, "true")]);
        assert_eq!(
            BrokerTags::read(&set).credentials_secret_id,
            Some("team/creds")
        );
        assert!(is_managed(&set));
    }
}
