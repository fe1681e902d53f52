//! What the operator CLI (`iadvize-token`) needs from the broker beyond the Lambda's events:
//! checking the current token against iAdvize and finishing a stuck rotation on demand.

use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::iadvize::Verification;
use crate::token::{TokenRecord, rfc3339};

/// What `/_authenticated` says about a token secret's AWSCURRENT token.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verified {
    /// iAdvize accepts the token.
    Authenticated {
        /// When it expires.
        expires_at: String,
        /// Seconds left.
        remaining_seconds: u64,
    },
    /// iAdvize refuses it (revoked, or not one of its tokens).
    Rejected {
        /// iAdvize's error code, e.g. `invalid_token`.
        reason: String,
    },
    /// The stored token has expired; iAdvize was not asked.
    Expired {
        /// When it expired.
        expires_at: String,
    },
    /// The secret has no AWSCURRENT value yet.
    Missing,
    /// The AWSCURRENT value is not a token record.
    Invalid {
        /// Why (never the value).
        reason: String,
    },
}

impl Verified {
    /// Whether the token works.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verified::Authenticated { .. })
    }
}

/// What `resume` did.
#[derive(Debug, Clone)]
pub enum Resumed {
    /// No rotation was unfinished.
    NothingToResume,
    /// The pending version was finished and is AWSCURRENT.
    Finished {
        /// The version that was finished.
        version_id: String,
        /// Its token record.
        record: TokenRecord,
    },
}

impl Broker {
    /// Asks iAdvize's `/_authenticated` about the token secret's AWSCURRENT token (one
    /// request; no login, nothing written).
    pub async fn verify_current(&self, secret_id: &str, deadline: Instant) -> Result<Verified> {
        crate::bounds::within_deadline(deadline, self.verify_current_within(secret_id, deadline))
            .await
    }

    async fn verify_current_within(&self, secret_id: &str, deadline: Instant) -> Result<Verified> {
        let secret = self.store.describe(secret_id).await?;
        let record = match self.read_current(&secret).await? {
            None => return Ok(Verified::Missing),
            Some(Err(e)) => {
                return Ok(Verified::Invalid {
                    reason: e.to_string(),
                });
            }
            Some(Ok(record)) => record,
        };
        let now = OffsetDateTime::now_utc();
        if record.is_expired(now) {
            return Ok(Verified::Expired {
                expires_at: rfc3339(record.expires_at),
            });
        }
        match self.iadvize.verify(&record.access_token, deadline).await {
            Ok(Verification::Authenticated) => Ok(Verified::Authenticated {
                expires_at: rfc3339(record.expires_at),
                remaining_seconds: record.remaining(now).as_secs(),
            }),
            Ok(Verification::Rejected(reason)) => Ok(Verified::Rejected { reason }),
            Err(source) => Err(Error::Iadvize {
                secret_id: secret.name,
                source,
            }),
        }
    }

    /// Finishes an unfinished rotation of `secret_id` now, whatever its age: the inline
    /// rotation with the pending version's id (its steps are idempotent, so a token already
    /// stored there is used without logging in again).
    pub async fn resume(&self, secret_id: &str, deadline: Instant) -> Result<Resumed> {
        let secret =
            crate::bounds::within_deadline(deadline, self.store.describe(secret_id)).await?;
        let Some(version_id) = secret.pending_rotation().map(str::to_owned) else {
            return Ok(Resumed::NothingToResume);
        };
        tracing::warn!(secret_id = %secret.name, version = %version_id, "resuming an unfinished rotation on request");
        let record = self.resume_rotation(&secret, &version_id, deadline).await?;
        Ok(Resumed::Finished { version_id, record })
    }
}
