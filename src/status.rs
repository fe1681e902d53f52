//! What an operator wants to know about each token secret, without changing anything.

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::broker::{Broker, TAG_LAST_LOGIN_ATTEMPT, TAG_REJECTED_CREDENTIALS};
use crate::error::Result;
use crate::store::AWSCURRENT;
use crate::token::rfc3339;

/// The state of one token secret.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecretStatus {
    /// The secret as asked.
    pub secret_id: String,
    /// `valid`, `expired`, `missing` (no value yet), `invalid` (not a token record) or `error`.
    pub token: &'static str,
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
    /// One entry per secret.
    pub secrets: Vec<SecretStatus>,
}

impl Broker {
    /// Reads the state of each secret.
    pub async fn status(&self, secret_ids: &[String]) -> StatusReport {
        let secrets = futures::stream::iter(secret_ids)
            .map(|id| async move {
                let mut status = SecretStatus {
                    secret_id: id.clone(),
                    token: "error",
                    ..SecretStatus::default()
                };
                if let Err(e) = self.fill_status(id, &mut status).await {
                    status.error = Some(e.to_string());
                }
                status
            })
            .buffered(self.config.max_concurrency.get())
            .collect()
            .await;
        StatusReport { secrets }
    }

    async fn fill_status(&self, secret_id: &str, status: &mut SecretStatus) -> Result<()> {
        let secret = self.store.describe(secret_id).await?;
        let now = OffsetDateTime::now_utc();
        status.last_login_attempt = secret.tag(TAG_LAST_LOGIN_ATTEMPT).map(str::to_owned);
        if let Some(version) = secret.pending_rotation() {
            let started = self.store.version_created(&secret.arn, version).await?;
            // The same rule as the tick's (refresh.rs): no known age counts as stuck.
            let age = started.map(|s| OffsetDateTime::now_utc() - s);
            status.rotation = Some(RotationStatus {
                version_id: version.to_owned(),
                started_at: started.map(rfc3339),
                stuck: age.is_none_or(|age| age >= self.config.stuck_rotation_after),
            });
        }
        status.token = match self.read_current(&secret).await? {
            None => "missing",
            Some(Err(_)) => "invalid",
            Some(Ok(record)) => {
                status.issued_at = Some(rfc3339(record.issued_at));
                status.expires_at = Some(rfc3339(record.expires_at));
                status.remaining_seconds = Some(record.remaining(now).as_secs());
                if record.is_expired(now) {
                    "expired"
                } else {
                    "valid"
                }
            }
        };
        // Without a credentials secret (none configured, no tag) the token is still reported:
        // a consumer may only know the token secret.
        let Ok(credentials_id) = self.credentials_secret_id(&secret).map(str::to_owned) else {
            return Ok(());
        };
        if let Some(rejected) = secret.tag(TAG_REJECTED_CREDENTIALS) {
            // The version id comes from DescribeSecret: status never reads the password.
            let credentials = self.store.describe(&credentials_id).await?;
            status.credentials_blocked = credentials.version_with(AWSCURRENT) == Some(rejected);
            if status.credentials_blocked {
                status.next_probe_at = self.next_probe_at(&secret).map(rfc3339);
            }
        }
        status.credentials_secret_id = Some(credentials_id);
        Ok(())
    }
}
