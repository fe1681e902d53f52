//! The four Secrets Manager rotation steps (createSecret, setSecret, testSecret,
//! finishSecret, as the Secrets Manager rotation function template defines them), and the
//! resumption of a rotation that stopped, which runs them in one invocation. Every step is
//! idempotent: Secrets Manager and Lambda retry steps, and a retry must never cost a second
//! login.

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Error, Result, Retry, echo};
use crate::events::{Step, StepEvent};
use crate::login::{Login, Slot};
use crate::metrics::Metrics;
use crate::store::{AWSCURRENT, AWSPENDING, Content, Put, SecretInfo, SecretStore, Version};
use crate::token::{TokenRecord, rfc3339};

/// The rotation steps, over the clients they use.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    /// Secrets Manager.
    pub store: &'a SecretStore,
    /// The login path (createSecret logs in; testSecret verifies).
    pub login: &'a Login,
    /// Where the rotation metrics go.
    pub metrics: &'a Metrics,
}

impl Rotation<'_> {
    /// Runs one step event from Secrets Manager, after the guard of AWS's rotation template.
    ///
    /// # Errors
    ///
    /// [`Error::Guard`] for a step the rotation contract forbids acting on (rotation not
    /// enabled, a version that is not AWSPENDING); the step's own failure otherwise.
    pub async fn run_step(&self, event: &StepEvent, deadline: Instant) -> Result<()> {
        let span = tracing::info_span!("rotation_step", secret_id = %echo(&event.secret_id), step = %event.step, token = %echo(&event.token));
        let step = async {
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
        .instrument(span);
        crate::bounds::within_deadline(deadline, step).await
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
            if event.step == Step::FinishSecret {
                // A retried finishSecret whose first run stopped between its two updates.
                self.remove_pending(&secret, token).await?;
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
                    Slot::Open,
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
    ///
    /// On a secret without an AWSCURRENT version (its first rotation, before any tick filled
    /// it) the token is verified before it is written: Secrets Manager labels the first value
    /// of a secret AWSCURRENT by itself ("If this operation creates the first version for the
    /// secret, then Secrets Manager automatically attaches the staging label AWSCURRENT to
    /// it", PutSecretValue API reference), and testSecret skips a version that is already
    /// current.
    async fn create_secret(
        &self,
        secret: &SecretInfo,
        token: &str,
        rotation_token: Option<&secrecy::SecretString>,
        slot: Slot,
        deadline: Instant,
    ) -> Result<TokenRecord> {
        if let Some(record) = self.existing_record(secret, token).await? {
            tracing::info!(expires_at = %rfc3339(record.expires_at), "AWSPENDING already holds a token; not logging in again");
            return Ok(record);
        }
        // Verification comes in testSecret, a later invocation with its own deadline, unless
        // this write may become AWSCURRENT at once.
        let first_value = secret.version_with(AWSCURRENT).is_none();
        let record = self
            .login
            .login(secret, slot, deadline, first_value)
            .await?;
        if first_value
            && let Err(reason) = self
                .login
                .verify_new_token(&secret.name, &record, deadline)
                .await?
        {
            return Err(Error::NewTokenRejected {
                secret_id: secret.name.clone(),
                reason,
            });
        }
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
        if value.content() == Content::Empty {
            return Ok(None);
        }
        value.record().map(Some).map_err(|e| Error::Guard {
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
    /// (the configuration check of `RotateImmediately=false`) passes, and so does a pending
    /// version without a value on a secret that has no current value to copy (the same check
    /// on a secret no tick has filled yet): there is nothing to test, and failing would fail
    /// the rotation set-up for a secret the next tick fills anyway.
    async fn test_secret(&self, secret: &SecretInfo, token: &str, deadline: Instant) -> Result<()> {
        let failed = |message: String| Error::TestFailed {
            secret_id: secret.name.clone(),
            version_id: token.to_owned(),
            message,
        };
        let Some(pending) = self.store.get(&secret.arn, Version::Id(token)).await? else {
            if secret.version_with(AWSCURRENT).is_none() {
                tracing::info!(
                    "the secret has no value yet, so the pending version is an empty copy of it (configuration check); passing: the next tick fills the secret"
                );
                return Ok(());
            }
            return Err(failed(
                "the version has no value: createSecret has not run for it (start a rotation with RotateSecret, which runs createSecret first)"
                    .into(),
            ));
        };
        let record = match pending.record() {
            Ok(record) => record,
            Err(e) => {
                let current = self
                    .store
                    .get(&secret.arn, Version::Stage(AWSCURRENT))
                    .await?;
                // A copy of the current string value; binary values are never compared (their
                // bytes are not kept) and fail the test.
                let copy = current.is_some_and(|c| {
                    c.binary.is_none() && pending.binary.is_none() && c.expose() == pending.expose()
                });
                if copy {
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
        if let Err(reason) = self
            .login
            .verify_new_token(&secret.name, &record, deadline)
            .await?
        {
            return Err(failed(format!(
                "iAdvize /_authenticated rejected it ({reason})"
            )));
        }
        Ok(())
    }

    /// finishSecret: AWSCURRENT moves to `token` (the old current becomes AWSPREVIOUS), then
    /// AWSPENDING is removed so no rotation looks in progress. Refuses a version that does not
    /// hold a token record, so AWSCURRENT never loses a working token.
    /// `tested` is the record testSecret just checked, when the caller has it (inline).
    ///
    /// Another invocation may move the labels at the same time (a tick publishing a token, a
    /// second finishSecret): a move that fails re-reads the stages and acts on what it finds,
    /// and no label is removed from a version that no longer carries it.
    async fn finish_secret(
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
        let mut secret = std::borrow::Cow::Borrowed(secret);
        let mut previous = None;
        // Two tries: the second acts on the stages re-read after a lost race, or repeats a move
        // that failed for a transient reason. The same move after a permanent failure (access
        // denied, a KMS refusal) would fail the same way: it is not sent again.
        for attempt in 1..=2 {
            if carries(&secret, token, AWSCURRENT) {
                // The first version of a secret is made AWSCURRENT by Secrets Manager itself;
                // or another invocation finished this rotation first.
                break;
            }
            let current = secret.version_with(AWSCURRENT).filter(|v| *v != token);
            match self
                .store
                .move_stage(&secret.arn, AWSCURRENT, Some(token), current)
                .await
            {
                Ok(()) => {
                    previous = current.map(str::to_owned);
                    break;
                }
                Err(e) => {
                    let reread = self.store.describe(&secret.arn).await?;
                    let same_move = same_stages(&reread, &secret);
                    if attempt == 2
                        || reread.stages(token).is_none()
                        || (same_move && e.retry() == Retry::Permanent)
                    {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "the stages changed under this finishSecret; re-read them");
                    secret = std::borrow::Cow::Owned(reread);
                }
            }
        }
        self.remove_pending(&secret, token).await?;
        self.metrics.rotation(&secret.name, true);
        tracing::info!(previous = previous.as_deref().unwrap_or("none"), expires_at = %rfc3339(record.expires_at), "new token is AWSCURRENT");
        Ok(record)
    }

    /// Removes AWSPENDING from `token` if it still carries it. A removal that fails because
    /// another invocation removed it first is not an error.
    ///
    /// # Errors
    ///
    /// The Secrets Manager error of the move, when AWSPENDING is still there after it.
    pub async fn remove_pending(&self, secret: &SecretInfo, token: &str) -> Result<()> {
        if !carries(secret, token, AWSPENDING) {
            return Ok(());
        }
        match self
            .store
            .move_stage(&secret.arn, AWSPENDING, None, Some(token))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let reread = self.store.describe(&secret.arn).await?;
                if carries(&reread, token, AWSPENDING) {
                    Err(e)
                } else {
                    tracing::info!("AWSPENDING was already removed by another invocation");
                    Ok(())
                }
            }
        }
    }

    /// Resumes a rotation that Secrets Manager started and did not finish: the four steps
    /// with that version's id. If it fails after AWSPENDING holds a token (verification
    /// fails, finishSecret cannot run), AWSPENDING is removed from that version, whose value
    /// can never change, so the next tick refreshes inline instead. `slot`: what the login
    /// already knows about its pacing (see [`Slot`]).
    ///
    /// # Errors
    ///
    /// The failure of the first step that failed.
    pub async fn resume(
        &self,
        secret: &SecretInfo,
        token: &str,
        slot: Slot,
        deadline: Instant,
    ) -> Result<TokenRecord> {
        let span =
            tracing::info_span!("resumed_rotation", secret_id = %secret.name, token = %token);
        let rotation = async {
            let result = match self
                .create_secret(secret, token, None, slot, deadline)
                .await
            {
                Ok(record) => {
                    self.set_secret();
                    let finished = match self.test_secret(secret, token, deadline).await {
                        // Fresh stages: createSecret may have written the version.
                        Ok(()) => match self.store.describe(&secret.arn).await {
                            Ok(secret) => self.finish_secret(&secret, token, Some(record)).await,
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    };
                    if finished.is_err() {
                        self.abandon(secret, token).await;
                    }
                    finished
                }
                // A version that holds something unusable can never be finished.
                Err(e @ Error::Guard { .. }) => {
                    self.abandon(secret, token).await;
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
        .instrument(span);
        crate::bounds::within_deadline(deadline, rotation).await
    }

    /// Removes AWSPENDING from a version whose rotation failed, after re-reading the stages.
    /// Best effort: the failure that led here is the one to report.
    async fn abandon(&self, secret: &SecretInfo, token: &str) {
        let result = match self.store.describe(&secret.arn).await {
            Ok(fresh) => self.remove_pending(&fresh, token).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::warn!("removed AWSPENDING from the failed version"),
            Err(e) => {
                tracing::error!(error = %e, "could not remove AWSPENDING from the failed version")
            }
        }
    }
}

/// Whether two reads of a secret show the same versions with the same stages (in any order).
fn same_stages(a: &SecretInfo, b: &SecretInfo) -> bool {
    let sorted = |info: &SecretInfo| {
        let mut versions: Vec<(String, Vec<String>)> = info
            .versions
            .iter()
            .map(|(id, stages)| {
                let mut stages = stages.clone();
                stages.sort_unstable();
                (id.clone(), stages)
            })
            .collect();
        versions.sort_unstable();
        versions
    };
    sorted(a) == sorted(b)
}

/// Whether version `token` of the secret carries `stage`.
fn carries(secret: &SecretInfo, token: &str, stage: &str) -> bool {
    secret
        .stages(token)
        .is_some_and(|stages| stages.iter().any(|s| s == stage))
}
