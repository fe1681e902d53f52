//! The four Secrets Manager rotation steps (DESIGN §5), and the inline rotation the refresh
//! tick runs with them. Every step is idempotent: Secrets Manager and Lambda retry steps,
//! and a retry must never cost a second login.

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::events::{Step, StepEvent};
use crate::iadvize::Verification;
use crate::store::{AWSCURRENT, AWSPENDING, Put, SecretInfo, Version};
use crate::token::{TokenRecord, rfc3339};

impl Broker {
    /// Runs one step event from Secrets Manager, after the guard of AWS's rotation template.
    pub async fn run_step(&self, event: &StepEvent, deadline: Instant) -> Result<()> {
        let span = tracing::info_span!("rotation_step", secret_id = %event.secret_id, step = %event.step, token = %event.token);
        async {
            let mut secret_name = None;
            let result = self.guarded_step(event, &mut secret_name, deadline).await;
            match &result {
                Ok(()) => tracing::info!(outcome = "ok", "step done"),
                Err(e) => {
                    tracing::error!(outcome = "failed", error = %e, "step failed");
                    if let Some(name) = secret_name {
                        self.metrics.rotation(&name, false);
                    }
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// The guard, then the step. `secret_name` learns the secret's name for the metrics.
    async fn guarded_step(
        &self,
        event: &StepEvent,
        secret_name: &mut Option<String>,
        deadline: Instant,
    ) -> Result<()> {
        let secret = self.store.describe(&event.secret_id).await?;
        *secret_name = Some(secret.name.clone());
        let guard = |message: String| Error::Guard {
            secret_id: secret.name.clone(),
            message,
        };
        if !secret.rotation_enabled {
            return Err(guard(
                "rotation is not enabled on this secret; a step event can only come from Secrets Manager rotation (use {\"action\": \"refresh\"} instead)".into(),
            ));
        }
        let token = event.token.as_str();
        let Some(stages) = secret.stages(token) else {
            return Err(guard(format!("{token} is not a version of this secret")));
        };
        if stages.iter().any(|s| s == AWSCURRENT) {
            tracing::info!("version is already AWSCURRENT; nothing to do");
            if event.step == Step::FinishSecret && stages.iter().any(|s| s == AWSPENDING) {
                // A retried finishSecret whose first run stopped between its two updates.
                self.store
                    .move_stage(&secret.arn, AWSPENDING, None, Some(token))
                    .await?;
            }
            return Ok(());
        }
        if !stages.iter().any(|s| s == AWSPENDING) {
            return Err(guard(format!(
                "version {token} is not AWSPENDING (stages: [{}]); refusing to rotate it",
                stages.join(", ")
            )));
        }
        match event.step {
            Step::CreateSecret => self
                .create_secret(
                    &secret,
                    token,
                    event.rotation_token.as_ref(),
                    false,
                    deadline,
                )
                .await
                .map(drop),
            Step::SetSecret => {
                self.set_secret();
                Ok(())
            }
            Step::TestSecret => self.test_secret(&secret, token, deadline).await,
            Step::FinishSecret => self.finish_secret(&secret, token, None).await.map(drop),
        }
    }

    /// createSecret: writes a freshly logged-in token as version `token` with AWSPENDING,
    /// unless that version already holds a token record.
    /// `new_version`: the caller just made `token` up, so there is nothing to look for.
    pub(crate) async fn create_secret(
        &self,
        secret: &SecretInfo,
        token: &str,
        rotation_token: Option<&secrecy::SecretString>,
        new_version: bool,
        deadline: Instant,
    ) -> Result<TokenRecord> {
        if !new_version {
            if let Some(record) = self.existing_record(secret, token).await? {
                tracing::info!(expires_at = %rfc3339(record.expires_at), "AWSPENDING already holds a token; not logging in again");
                return Ok(record);
            }
        }
        let record = self.login(secret, deadline).await?;
        match self
            .store
            .put_pending(&secret.arn, token, &record.to_json(), rotation_token)
            .await?
        {
            Put::Written => {
                tracing::info!(expires_at = %rfc3339(record.expires_at), "new token stored as AWSPENDING");
                Ok(record)
            }
            Put::AlreadyExists => match self.existing_record(secret, token).await? {
                Some(theirs) => {
                    tracing::info!("another attempt stored this version first; keeping its token");
                    Ok(theirs)
                }
                None => Err(Error::Guard {
                    secret_id: secret.name.clone(),
                    message: format!("version {token} exists without a token record"),
                }),
            },
        }
    }

    /// The token record already stored in version `token`, if any. A version that holds a
    /// value which is not a record can never be changed, so that is an error.
    async fn existing_record(
        &self,
        secret: &SecretInfo,
        token: &str,
    ) -> Result<Option<TokenRecord>> {
        let Some(value) = self.store.get(&secret.arn, Version::Id(token)).await? else {
            return Ok(None);
        };
        if value.string.is_none() || value.expose().is_empty() {
            return Ok(None);
        }
        TokenRecord::parse(value.expose()).map(Some).map_err(|e| Error::Guard {
            secret_id: secret.name.clone(),
            message: format!(
                "version {token} already holds a value that is {e}; a version's value cannot change, so this rotation cannot complete"
            ),
        })
    }

    /// setSecret: iAdvize has nothing to set; the token already exists there.
    fn set_secret(&self) {
        tracing::info!("setSecret: nothing to do at iAdvize");
    }

    /// testSecret: the pending token must be unexpired and, when verification is on,
    /// accepted by `/_authenticated`. A pending value that is a copy of the current one
    /// (the configuration check of `RotateImmediately=false`) passes.
    pub(crate) async fn test_secret(
        &self,
        secret: &SecretInfo,
        token: &str,
        deadline: Instant,
    ) -> Result<()> {
        let failed = |message: String| Error::TestFailed {
            secret_id: secret.name.clone(),
            version_id: token.to_owned(),
            message,
        };
        let pending = self
            .store
            .get(&secret.arn, Version::Id(token))
            .await?
            .ok_or_else(|| failed("the version has no value (createSecret has not run)".into()))?;
        let record = match TokenRecord::parse(pending.expose()) {
            Ok(record) => record,
            Err(e) => {
                let current = self
                    .store
                    .get(&secret.arn, Version::Stage(AWSCURRENT))
                    .await?;
                if current.is_some_and(|c| c.expose() == pending.expose()) {
                    tracing::info!(
                        "the pending value is a copy of the current one (configuration check); passing"
                    );
                    return Ok(());
                }
                return Err(failed(e.to_string()));
            }
        };
        if record.is_expired(OffsetDateTime::now_utc()) {
            return Err(failed(format!(
                "it expired at {}",
                rfc3339(record.expires_at)
            )));
        }
        if self.config.verify_token {
            match self.iadvize.verify(&record.access_token, deadline).await {
                Ok(Verification::Authenticated) => tracing::info!("iAdvize accepts the new token"),
                Ok(Verification::Rejected(reason)) => {
                    return Err(failed(format!(
                        "iAdvize /_authenticated rejected it ({reason})"
                    )));
                }
                Err(source) => {
                    return Err(Error::Iadvize {
                        secret_id: secret.name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// finishSecret: AWSCURRENT moves to `token` (the old current becomes AWSPREVIOUS), then
    /// AWSPENDING is removed so no rotation looks in progress. Refuses a version that does not
    /// hold a token record, so AWSCURRENT never loses a working token.
    /// `tested` is the record testSecret just checked, when the caller has it (inline).
    pub(crate) async fn finish_secret(
        &self,
        secret: &SecretInfo,
        token: &str,
        tested: Option<TokenRecord>,
    ) -> Result<TokenRecord> {
        let record = match tested {
            Some(record) => record,
            None => self
                .existing_record(secret, token)
                .await?
                .ok_or_else(|| Error::Guard {
                    secret_id: secret.name.clone(),
                    message: format!(
                        "version {token} holds no token; refusing to make it AWSCURRENT"
                    ),
                })?,
        };
        // The first version of a secret is made AWSCURRENT by Secrets Manager itself.
        let already_current = secret
            .stages(token)
            .is_some_and(|stages| stages.iter().any(|s| s == AWSCURRENT));
        let current = secret.version_with(AWSCURRENT).filter(|v| *v != token);
        if !already_current {
            self.store
                .move_stage(&secret.arn, AWSCURRENT, Some(token), current)
                .await?;
        }
        self.store
            .move_stage(&secret.arn, AWSPENDING, None, Some(token))
            .await?;
        self.metrics.rotation(&secret.name, true);
        tracing::info!(previous = current.unwrap_or("none"), expires_at = %rfc3339(record.expires_at), "new token is AWSCURRENT");
        Ok(record)
    }

    /// Runs the four steps in order without Secrets Manager: with a new version id, or with
    /// `resume` (the id of an unfinished rotation's version). If it fails after AWSPENDING was
    /// written, AWSPENDING is removed again so the next tick starts afresh.
    pub async fn rotate_inline(
        &self,
        secret: &SecretInfo,
        resume: Option<&str>,
        deadline: Instant,
    ) -> Result<TokenRecord> {
        let token = resume.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let span = tracing::info_span!("inline_rotation", secret_id = %secret.name, token = %token, resumed = resume.is_some());
        async {
            let created = self
                .create_secret(secret, &token, None, resume.is_none(), deadline)
                .await;
            let result = match created {
                Ok(record) => {
                    self.set_secret();
                    let finished = match self.test_secret(secret, &token, deadline).await {
                        // Fresh stages: createSecret added a version (perhaps the first).
                        Ok(()) => match self.store.describe(&secret.arn).await {
                            Ok(secret) => self.finish_secret(&secret, &token, Some(record)).await,
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    };
                    if finished.is_err() {
                        self.abandon(secret, &token).await;
                    }
                    finished
                }
                // A resumed version that holds something unusable can never be finished.
                Err(e @ Error::Guard { .. }) if resume.is_some() => {
                    self.abandon(secret, &token).await;
                    Err(e)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                self.metrics.rotation(&secret.name, false);
                tracing::error!(error = %e, "rotation failed");
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Removes AWSPENDING from a version whose rotation failed. Best effort: the failure
    /// that led here is the one to report.
    async fn abandon(&self, secret: &SecretInfo, token: &str) {
        match self
            .store
            .move_stage(&secret.arn, AWSPENDING, None, Some(token))
            .await
        {
            Ok(()) => tracing::warn!("removed AWSPENDING from the failed version"),
            Err(e) => {
                tracing::error!(error = %e, "could not remove AWSPENDING from the failed version")
            }
        }
    }
}
