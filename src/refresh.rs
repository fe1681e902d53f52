//! The refresh tick (DESIGN §6): for each managed token secret, leave a fresh token alone,
//! rotate a token that is due, and resume a rotation that got stuck.

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::store::{AWSCURRENT, SecretInfo, Version};
use crate::token::{TokenRecord, rfc3339};

/// What a tick did with one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The token has more than the refresh window left.
    Fresh,
    /// A new token is AWSCURRENT.
    Refreshed,
    /// A rotation younger than the stuck threshold is running; left alone.
    InProgress,
    /// A stuck rotation was finished.
    Resumed,
    /// Something failed; see `error`.
    Failed,
}

/// One secret's line in the tick's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SecretResult {
    /// The secret as configured.
    pub secret_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// When AWSCURRENT's token expires, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The tick's answer: `{"results": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// One entry per secret, in the order given.
    pub results: Vec<SecretResult>,
}

impl RefreshReport {
    /// The error to return when any secret failed (so Lambda's error metric fires).
    pub fn failure(&self) -> Option<Error> {
        let failed: Vec<String> = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .map(|r| {
                format!(
                    "{}: {}",
                    r.secret_id,
                    r.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        (!failed.is_empty()).then(|| Error::TickFailed {
            failed: failed.len(),
            total: self.results.len(),
            summary: failed.join("; "),
        })
    }
}

/// Why a token is due for refresh, or `None` when it is fresh.
pub fn due_reason(
    current: Option<&Result<TokenRecord, crate::token::RecordError>>,
    now: OffsetDateTime,
    refresh_before_expiry: std::time::Duration,
    force: bool,
) -> Option<&'static str> {
    match current {
        _ if force => Some("forced"),
        None => Some("no current value"),
        Some(Err(_)) => Some("the current value is not a token record"),
        Some(Ok(record)) if record.is_expired(now) => Some("expired"),
        Some(Ok(record)) if record.remaining(now) <= refresh_before_expiry => {
            Some("inside the refresh window")
        }
        Some(Ok(_)) => None,
    }
}

impl Broker {
    /// Refreshes the given token secrets, a few at a time. Never fails as a whole: each
    /// secret's failure is in its result (see [`RefreshReport::failure`]).
    pub async fn refresh(
        &self,
        secret_ids: &[String],
        force: bool,
        deadline: Instant,
    ) -> RefreshReport {
        let results = futures::stream::iter(secret_ids)
            .map(|id| {
                let span = tracing::info_span!("refresh", secret_id = %id);
                self.refresh_one(id, force, deadline).instrument(span)
            })
            .buffered(self.config.max_concurrency.get())
            .collect()
            .await;
        RefreshReport { results }
    }

    async fn refresh_one(&self, secret_id: &str, force: bool, deadline: Instant) -> SecretResult {
        // What AWSCURRENT holds after the tick, for the result and the expiry metric.
        let mut current: Option<TokenRecord> = None;
        let mut name = None;
        let outcome = self
            .check(secret_id, force, deadline, &mut current, &mut name)
            .await;
        let now = OffsetDateTime::now_utc();
        if let Some(name) = &name {
            let seconds = current.as_ref().map_or(0, |r| r.remaining(now).as_secs());
            self.metrics.seconds_until_expiry(name, seconds);
        }
        let expires_at = current.as_ref().map(|r| rfc3339(r.expires_at));
        match outcome {
            Ok(outcome) => {
                tracing::info!(outcome = ?outcome, expires_at = expires_at.as_deref().unwrap_or("unknown"), "secret checked");
                SecretResult {
                    secret_id: secret_id.to_owned(),
                    outcome,
                    expires_at,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "refresh failed");
                SecretResult {
                    secret_id: secret_id.to_owned(),
                    outcome: Outcome::Failed,
                    expires_at,
                    error: Some(e.to_string()),
                }
            }
        }
    }

    async fn check(
        &self,
        secret_id: &str,
        force: bool,
        deadline: Instant,
        current: &mut Option<TokenRecord>,
        name: &mut Option<String>,
    ) -> Result<Outcome> {
        let secret = self.store.describe(secret_id).await?;
        *name = Some(secret.name.clone());
        let stored = self.read_current(&secret).await?;
        *current = stored.as_ref().and_then(|r| r.as_ref().ok()).cloned();

        if let Some(pending) = secret.pending_rotation() {
            let age = self
                .store
                .version_created(&secret.arn, pending)
                .await?
                .map(|created| OffsetDateTime::now_utc() - created);
            let stuck = self.config.stuck_rotation_after;
            if age.is_some_and(|age| age < stuck) {
                tracing::info!(
                    version = pending,
                    "a rotation is in progress; leaving it alone"
                );
                return Ok(Outcome::InProgress);
            }
            tracing::warn!(
                version = pending,
                "resuming a rotation that has not finished"
            );
            *current = Some(self.resume_rotation(&secret, pending, deadline).await?);
            return Ok(Outcome::Resumed);
        }

        let now = OffsetDateTime::now_utc();
        let Some(reason) = due_reason(
            stored.as_ref(),
            now,
            self.config.refresh_before_expiry,
            force,
        ) else {
            return Ok(Outcome::Fresh);
        };
        tracing::info!(reason, "token is due; refreshing");
        match self.refresh_inline(&secret, deadline).await {
            Ok(record) => {
                *current = Some(record);
                Ok(Outcome::Refreshed)
            }
            // Another invocation started a login for this user moments ago: while the current
            // token still works, that is not a failure (DESIGN §6.6).
            Err(e) if e.is_held_back() && current.as_ref().is_some_and(|r| !r.is_expired(now)) => {
                tracing::info!(error = %e, "login held back; the current token is still valid");
                Ok(Outcome::InProgress)
            }
            Err(e) => Err(e),
        }
    }

    /// The tick's refresh: log in, verify the new token in memory, then publish it with one
    /// `PutSecretValue(VersionStages=["AWSCURRENT"])`. A token iAdvize rejects is never
    /// written, and there is no AWSPENDING window for a crash to leave behind.
    pub(crate) async fn refresh_inline(
        &self,
        secret: &SecretInfo,
        deadline: Instant,
    ) -> Result<TokenRecord> {
        let record = self
            .login(secret, self.login_deadline(deadline, true))
            .await?;
        if let Err(reason) = self
            .verify_new_token(&secret.name, &record, deadline)
            .await?
        {
            self.metrics.rotation(&secret.name, false);
            return Err(Error::NewTokenRejected {
                secret_id: secret.name.clone(),
                reason,
            });
        }
        let version = uuid::Uuid::new_v4().to_string();
        match self
            .store
            .put_current(&secret.arn, &version, &record.to_json())
            .await
        {
            Ok(()) => {
                self.metrics.rotation(&secret.name, true);
                tracing::info!(version = %version, expires_at = %rfc3339(record.expires_at), "new token published as AWSCURRENT");
                Ok(record)
            }
            Err(e) => {
                self.metrics.rotation(&secret.name, false);
                Err(e)
            }
        }
    }

    /// AWSCURRENT parsed: `None` when there is no value, `Some(Err)` when it is not a record.
    pub(crate) async fn read_current(
        &self,
        secret: &SecretInfo,
    ) -> Result<Option<Result<TokenRecord, crate::token::RecordError>>> {
        let value = self
            .store
            .get(&secret.arn, Version::Stage(AWSCURRENT))
            .await?;
        Ok(value.map(|v| TokenRecord::parse(v.expose())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{AccessToken, RecordError};
    use std::time::Duration;
    use time::macros::datetime;

    #[test]
    fn a_token_is_due_only_when_it_should_be() {
        let now = datetime!(2026-11-26 12:00 UTC);
        let window = Duration::from_secs(4 * 3600);
        let record = |hours_left: i64| {
            let issued = now - time::Duration::hours(24 - hours_left);
            Ok(TokenRecord::new(AccessToken::new("t"), issued, 86400))
        };
        assert_eq!(due_reason(Some(&record(20)), now, window, false), None);
        assert_eq!(
            due_reason(Some(&record(20)), now, window, true),
            Some("forced")
        );
        assert_eq!(
            due_reason(Some(&record(3)), now, window, false),
            Some("inside the refresh window")
        );
        assert_eq!(
            due_reason(Some(&record(-1)), now, window, false),
            Some("expired")
        );
        assert_eq!(
            due_reason(None, now, window, false),
            Some("no current value")
        );
        let broken: Result<TokenRecord, RecordError> = Err(RecordError::Field("x"));
        assert!(due_reason(Some(&broken), now, window, false).is_some());
    }
}
