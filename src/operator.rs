//! What the operator CLI (`iadvize-token`) needs from the broker beyond the Lambda's events:
//! checking the current token against iAdvize and finishing a stuck rotation on demand.

use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::iadvize::Verification;
use crate::login::{Login, Slot};
use crate::plan::Current;
use crate::refresh::read_current;
use crate::rotation::Rotation;
use crate::store::SecretStore;
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

/// The operator's commands on one token secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator<'a> {
    pub store: &'a SecretStore,
    pub login: &'a Login,
    pub steps: Rotation<'a>,
}

impl Operator<'_> {
    /// See [`crate::Broker::verify_current`].
    pub(crate) async fn verify_current(
        &self,
        secret_id: &str,
        deadline: Instant,
    ) -> Result<Verified> {
        let secret = self.store.describe(secret_id).await?;
        let record = match read_current(self.store, &secret).await? {
            Current::NotRead | Current::Empty => return Ok(Verified::Missing),
            Current::Unparseable(e) => {
                return Ok(Verified::Invalid {
                    reason: e.to_string(),
                });
            }
            Current::Record(record) => record,
        };
        let now = OffsetDateTime::now_utc();
        if record.is_expired(now) {
            return Ok(Verified::Expired {
                expires_at: rfc3339(record.expires_at),
            });
        }
        match self.login.ask(&record.access_token, deadline).await {
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

    /// See [`crate::Broker::resume`].
    pub(crate) async fn resume(&self, secret_id: &str, deadline: Instant) -> Result<Resumed> {
        let secret =
            crate::bounds::within_deadline(deadline, self.store.describe(secret_id)).await?;
        let Some(version_id) = secret.pending_rotation().map(str::to_owned) else {
            return Ok(Resumed::NothingToResume);
        };
        tracing::warn!(secret_id = %secret.name, version = %version_id, "resuming an unfinished rotation on request");
        let record = self
            .steps
            .resume(&secret, &version_id, Slot::Open, deadline)
            .await?;
        Ok(Resumed::Finished { version_id, record })
    }
}
