//! What an operator wants to know about each token secret, without changing anything
//! (`{"action": "status"}`, `iadvize-token status`).

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Config;
use crate::error::{ErrorKind, Result};
use crate::login::Login;
use crate::plan::Current;
use crate::refresh::{discover, no_secret_to_manage, read_current};
use crate::store::{AWSCURRENT, SecretStore};
use crate::token::rfc3339;

/// What a token secret's AWSCURRENT holds. Serialised in lower case (`valid`, `expired`,
/// `missing`, `invalid`, `error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// A token record that has not expired.
    Valid,
    /// A token record that has expired.
    Expired,
    /// No value yet.
    Missing,
    /// A value that is not a token record (see `invalid_reason`).
    Invalid,
    /// The secret could not be read (see `error`).
    #[default]
    Error,
}

/// The state of one token secret.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecretStatus {
    /// The secret as asked (capped in the answer: see [`crate::error::echo`]).
    #[serde(serialize_with = "crate::error::serialize_echo")]
    pub secret_id: String,
    /// What AWSCURRENT holds.
    pub token: TokenState,
    /// Why the value is not a token record, when `token` is `invalid`: what it holds (binary
    /// data, not JSON, a field of the wrong type, …), never the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    /// When the current token was obtained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    /// When it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Seconds left (0 once expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<u64>,
    /// An unfinished rotation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
    /// The `iadvize:last-login-attempt` tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login_attempt: Option<String>,
    /// The credentials secret in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_secret_id: Option<String>,
    /// Whether iAdvize refused the credentials' current version (no login until it changes,
    /// except one probe per `IADVIZE_REFUSED_CREDENTIALS_RETRY`).
    pub credentials_blocked: bool,
    /// While blocked: when the next probe login is due (absent when probing is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_probe_at: Option<String>,
    /// What could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure `error` is ([`ErrorKind::as_str`], e.g. `SecretNotFound`), so a
    /// caller can act on it without parsing the words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
}

/// An AWSPENDING version that is not AWSCURRENT.
#[derive(Debug, Clone, Serialize)]
pub struct RotationStatus {
    /// Its VersionId.
    pub version_id: String,
    /// When it was created, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Older than `IADVIZE_STUCK_ROTATION_AFTER`: the next tick resumes it.
    pub stuck: bool,
}

/// The answer of `{"action": "status"}`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The counts over the whole list, first.
    pub summary: StatusSummary,
    /// One entry per secret.
    pub secrets: Vec<SecretStatus>,
    /// Why the secrets tagged `iadvize:managed` = `true` could not be found (`ListSecrets`
    /// failed); the listed secrets are reported all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_error: Option<String>,
}

/// Counts over a status report: `fresh`, `due` and `failed` split the managed secrets;
/// `blocked` counts those whose credentials iAdvize refused (they are also in one of the
/// others).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusSummary {
    /// Token secrets in the report.
    pub managed: usize,
    /// A valid token with more than `IADVIZE_REFRESH_BEFORE_EXPIRY` left.
    pub fresh: usize,
    /// The next tick refreshes it: no token yet, not a token record, or inside the refresh
    /// window.
    pub due: usize,
    /// The token has expired, or the secret could not be read.
    pub failed: usize,
    /// No login until the credentials secret gets a new value (except the probes).
    pub blocked: usize,
}

impl StatusSummary {
    /// Counts `secrets`; `refresh_before_expiry` separates fresh from due.
    pub fn of(secrets: &[SecretStatus], refresh_before_expiry: std::time::Duration) -> Self {
        let mut summary = StatusSummary {
            managed: secrets.len(),
            ..StatusSummary::default()
        };
        for s in secrets {
            match s.token {
                TokenState::Valid
                    if s.error.is_none()
                        && s.remaining_seconds
                            .is_some_and(|left| left > refresh_before_expiry.as_secs()) =>
                {
                    summary.fresh += 1
                }
                TokenState::Valid | TokenState::Missing | TokenState::Invalid
                    if s.error.is_none() =>
                {
                    summary.due += 1
                }
                _ => summary.failed += 1,
            }
            if s.credentials_blocked {
                summary.blocked += 1;
            }
        }
        summary
    }
}

impl std::fmt::Display for StatusSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} managed: {} fresh, {} due, {} failed, {} blocked",
            self.managed, self.fresh, self.due, self.failed, self.blocked
        )
    }
}

/// Reads the state of token secrets, changing nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Status<'a> {
    pub config: &'a Config,
    pub store: &'a SecretStore,
    pub login: &'a Login,
}

impl Status<'_> {
    /// The whole fleet's state: the secrets of `IADVIZE_TOKEN_SECRET_IDS` plus the ones tagged
    /// `iadvize:managed` = `true` (by name), each once. Fails only when there is nothing to
    /// report on.
    pub(crate) async fn fleet(&self) -> Result<StatusReport> {
        let (targets, error) = discover(self.config, self.store).await;
        if targets.is_empty() {
            return Err(error.unwrap_or_else(no_secret_to_manage));
        }
        let ids: Vec<String> = targets.into_iter().map(|t| t.secret_id).collect();
        let mut report = self.of(&ids).await;
        // The listed secrets are reported; the tagged ones could not be found.
        report.discovery_error = error.map(|e| e.to_string());
        Ok(report)
    }

    /// Reads the state of each secret.
    pub(crate) async fn of(&self, secret_ids: &[String]) -> StatusReport {
        let secrets = futures::stream::iter(secret_ids)
            .map(|id| async move {
                let mut status = SecretStatus {
                    secret_id: id.clone(),
                    token: TokenState::Error,
                    ..SecretStatus::default()
                };
                if let Err(e) = self.fill(id, &mut status).await {
                    status.error = Some(e.to_string());
                    status.error_kind = Some(e.kind());
                }
                status
            })
            .buffered(self.config.max_concurrency().get())
            .collect::<Vec<_>>()
            .await;
        StatusReport {
            summary: StatusSummary::of(&secrets, self.config.refresh_before_expiry()),
            secrets,
            discovery_error: None,
        }
    }

    async fn fill(&self, secret_id: &str, status: &mut SecretStatus) -> Result<()> {
        let secret = self.store.describe(secret_id).await?;
        let now = OffsetDateTime::now_utc();
        let tags = secret.broker_tags();
        status.last_login_attempt = tags.last_login_attempt_text.map(str::to_owned);
        if let Some(version) = secret.pending_rotation() {
            let started = self.store.version_created(&secret.arn, version).await?;
            // The same rule as the tick's planner: no known age counts as stuck.
            let age = started.map(|s| OffsetDateTime::now_utc() - s);
            status.rotation = Some(RotationStatus {
                version_id: version.to_owned(),
                started_at: started.map(rfc3339),
                stuck: age.is_none_or(|age| age >= self.config.stuck_rotation_after()),
            });
        }
        status.token = match read_current(self.store, &secret).await? {
            Current::NotRead | Current::Empty => TokenState::Missing,
            Current::Unparseable(e) => {
                status.invalid_reason = Some(e.to_string());
                TokenState::Invalid
            }
            Current::Record(record) => {
                status.issued_at = Some(rfc3339(record.issued_at));
                status.expires_at = Some(rfc3339(record.expires_at));
                status.remaining_seconds = Some(record.remaining(now).as_secs());
                if record.is_expired(now) {
                    TokenState::Expired
                } else {
                    TokenState::Valid
                }
            }
        };
        // Without a credentials secret (none configured, no tag) the token is still reported:
        // a consumer may only know the token secret.
        let Ok(credentials_id) = self.login.credentials_secret_id(&secret).map(str::to_owned)
        else {
            return Ok(());
        };
        if let Some(rejected) = tags.rejected_credentials_version {
            // The version id comes from DescribeSecret: status never reads the password.
            let credentials = self.store.describe(&credentials_id).await?;
            status.credentials_blocked = credentials.version_with(AWSCURRENT) == Some(rejected);
            if status.credentials_blocked {
                status.next_probe_at = self.login.next_probe_at(&tags).map(rfc3339);
            }
        }
        status.credentials_secret_id = Some(credentials_id);
        Ok(())
    }
}
