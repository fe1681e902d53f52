//! The refresh tick (DESIGN §6, §11): for each managed token secret, leave a fresh token
//! alone, rotate a token that is due, and resume a rotation that got stuck.
//!
//! The fleet tick costs few Secrets Manager calls: `ListSecrets` finds the tagged secrets with
//! their tags and version stages, `BatchGetSecretValue` reads 20 AWSCURRENT values a call;
//! only due, stuck or unreadable secrets take the per-secret path, most urgent first.

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

use std::collections::HashMap;

use crate::broker::Broker;
use crate::error::{Error, Result, echo};
use crate::metrics::FleetMetrics;
use crate::store::{AWSCURRENT, BATCH_GET_MAX, BatchValue, SecretInfo, Version};
use crate::token::{TokenRecord, parse_rfc3339, rfc3339};

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
    /// Not started: it could not finish before the invocation's deadline (or no login slot
    /// comes early enough). The next tick takes it first.
    Deferred,
    /// Something failed; see `error`.
    Failed,
}

/// One secret's line in the tick's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SecretResult {
    /// The secret as configured (capped in the answer: see [`echo`]).
    #[serde(serialize_with = "crate::error::serialize_echo")]
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
    /// One entry per secret, in the order given (listed secrets first, then discovered ones).
    pub results: Vec<SecretResult>,
    /// Why discovery (`ListSecrets`) failed, if it did: the tagged secrets were not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_error: Option<String>,
}

impl RefreshReport {
    /// The error to return when any secret failed (so Lambda's error metric fires).
    pub fn failure(&self) -> Option<Error> {
        // A deferred secret carries an error only when its token is expired or expires before
        // the next tick.
        let mut failed: Vec<String> = self
            .results
            .iter()
            .filter(|r| {
                r.outcome == Outcome::Failed
                    || (r.outcome == Outcome::Deferred && r.error.is_some())
            })
            .map(|r| {
                format!(
                    "{}: {}",
                    echo(&r.secret_id),
                    r.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        if let Some(error) = &self.discovery_error {
            failed.push(format!("discovery: {error}"));
        }
        (!failed.is_empty()).then(|| Error::TickFailed {
            failed: failed.len(),
            total: self.results.len(),
            summary: failed.join("; "),
        })
    }
}

/// The schedule the IaC sets up: a deferred token must last until the next tick.
pub const NEXT_TICK: std::time::Duration = std::time::Duration::from_secs(3600);

/// AWSCURRENT as read: `None` when there is no value, `Some(Err)` when it is not a record.
pub(crate) type Stored = Option<Result<TokenRecord, crate::token::RecordError>>;

/// What the tick already knows about a secret, so the per-secret path does not read it again.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    /// From `ListSecrets` (discovered) or `DescribeSecret` (listed).
    pub info: SecretInfo,
    /// AWSCURRENT, when the tick read it (`None`: not read).
    pub current: Option<Stored>,
}

/// One secret the tick manages.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// As listed, or the name of a discovered secret.
    pub secret_id: String,
    pub known: Option<Known>,
    /// Secrets Manager did not answer the tick's `DescribeSecret` of this secret in time:
    /// asking again would only wait again, so the per-secret path reports this.
    pub unanswered: Option<String>,
}

impl Target {
    fn listed(id: &str) -> Self {
        Target {
            secret_id: id.to_owned(),
            known: None,
            unanswered: None,
        }
    }

    /// The current record when the secret needs nothing this tick: read, fresh, and no
    /// rotation in progress.
    fn fresh_record(
        &self,
        now: OffsetDateTime,
        refresh_before_expiry: std::time::Duration,
        force: bool,
    ) -> Option<TokenRecord> {
        let known = self.known.as_ref()?;
        if known.info.has_pending() {
            return None;
        }
        let stored = known.current.as_ref()?;
        if due_reason(stored.as_ref(), now, refresh_before_expiry, force).is_some() {
            return None;
        }
        stored.as_ref()?.as_ref().ok().cloned()
    }

    /// Sort key, most urgent first: seconds left on the current token; 0 for a missing,
    /// unreadable or expired one, a rotation in progress, or a value the tick could not read.
    fn urgency(&self, now: OffsetDateTime) -> u64 {
        self.known
            .as_ref()
            .and_then(|k| k.current.as_ref())
            .and_then(|c| c.as_ref())
            .and_then(|r| r.as_ref().ok())
            .map_or(0, |r| r.remaining(now).as_secs())
    }
}

pub(crate) fn no_secret_to_manage() -> Error {
    Error::Config(crate::config::ConfigError {
        variable: "IADVIZE_TOKEN_SECRET_IDS",
        message: "no token secret to manage; set it to a comma-separated list of secret names or ARNs, or tag token secrets iadvize:managed=true".into(),
    })
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
    /// Refreshes exactly the given token secrets (an operator's list). Never fails as a
    /// whole: each secret's failure is in its result (see [`RefreshReport::failure`]).
    pub async fn refresh(
        &self,
        secret_ids: &[String],
        force: bool,
        deadline: Instant,
    ) -> RefreshReport {
        let mut seen = std::collections::HashSet::new();
        let targets = secret_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| Target::listed(id))
            .collect();
        crate::bounds::within_deadline(deadline, self.run_tick(targets, force, deadline)).await
    }

    /// The scheduled tick: every secret of `IADVIZE_TOKEN_SECRET_IDS` plus every secret tagged
    /// `iadvize:managed` = `true`, each once. Fails only when there is nothing to manage.
    pub async fn refresh_fleet(&self, force: bool, deadline: Instant) -> Result<RefreshReport> {
        crate::bounds::within_deadline(deadline, async {
            let (targets, discovery_error) = self.fleet_targets().await;
            if targets.is_empty() {
                return Err(match discovery_error {
                    Some(e) => e,
                    None => no_secret_to_manage(),
                });
            }
            let mut report = self.run_tick(targets, force, deadline).await;
            report.discovery_error = discovery_error.map(|e| e.to_string());
            Ok(report)
        })
        .await
    }

    /// The managed secrets: the listed ones (to describe) and the discovered ones (known from
    /// `ListSecrets`), each once, matched by ARN and name.
    pub(crate) async fn fleet_targets(&self) -> (Vec<Target>, Option<Error>) {
        let (discovered, error) = match self.store.list_managed().await {
            Ok(found) => (found, None),
            Err(e) => {
                tracing::error!(error = %e, "discovery of tagged token secrets failed");
                (Vec::new(), Some(e))
            }
        };
        let mut targets: Vec<Target> = Vec::new();
        for id in &self.config.token_secret_ids {
            let duplicate = discovered.iter().any(|d| d.arn == *id || d.name == *id)
                || targets.iter().any(|t| t.secret_id == *id);
            if !duplicate {
                targets.push(Target::listed(id));
            }
        }
        let listed = targets.len();
        targets.extend(discovered.into_iter().map(|info| Target {
            secret_id: info.name.clone(),
            known: Some(Known {
                info,
                current: None,
            }),
            unanswered: None,
        }));
        tracing::info!(
            listed,
            discovered = targets.len() - listed,
            "managed token secrets"
        );
        (targets, error)
    }

    async fn run_tick(
        &self,
        mut targets: Vec<Target>,
        force: bool,
        deadline: Instant,
    ) -> RefreshReport {
        let logins_before = self.metrics.login_attempts();
        self.describe_listed(&mut targets).await;
        self.read_batched(&mut targets).await;
        for target in &targets {
            if let Some(known) = &target.known {
                self.observe_login_tag(&known.info);
            }
        }

        // Fresh secrets are done; the rest go through the per-secret path, most urgent first.
        let now = OffsetDateTime::now_utc();
        let mut results: Vec<Option<SecretResult>> = vec![None; targets.len()];
        let mut queue = Vec::new();
        for (index, target) in targets.into_iter().enumerate() {
            match target.fresh_record(now, self.config.refresh_before_expiry, force) {
                Some(record) => {
                    self.metrics
                        .seconds_until_expiry(&target.secret_id, record.remaining(now).as_secs());
                    results[index] = Some(SecretResult {
                        secret_id: target.secret_id,
                        outcome: Outcome::Fresh,
                        expires_at: Some(rfc3339(record.expires_at)),
                        error: None,
                    });
                }
                None => queue.push((target.urgency(now), index, target)),
            }
        }
        queue.sort_by_key(|(urgency, index, _)| (*urgency, *index));

        let done: Vec<(usize, SecretResult)> = futures::stream::iter(queue)
            .map(|(_, index, target)| {
                let span = tracing::info_span!("refresh", secret_id = %echo(&target.secret_id));
                async move { (index, self.refresh_one(target, force, deadline).await) }
                    .instrument(span)
            })
            .buffered(self.config.max_concurrency.get())
            .collect()
            .await;
        for (index, result) in done {
            results[index] = Some(result);
        }
        let results: Vec<SecretResult> = results.into_iter().flatten().collect();
        self.emit_fleet_metrics(&results, logins_before);
        RefreshReport {
            results,
            discovery_error: None,
        }
    }

    /// DescribeSecret for the targets not known from discovery (a failure is left for the
    /// per-secret path, which describes again or, when Secrets Manager did not answer,
    /// reports it).
    async fn describe_listed(&self, targets: &mut [Target]) {
        let described: Vec<Option<Result<SecretInfo>>> = futures::stream::iter(targets.iter())
            .map(|t| async move {
                match &t.known {
                    Some(_) => None,
                    None => Some(self.store.describe(&t.secret_id).await),
                }
            })
            .buffered(self.config.max_concurrency.get().max(8))
            .collect()
            .await;
        for (target, described) in targets.iter_mut().zip(described) {
            match described {
                Some(Ok(info)) => {
                    target.known = Some(Known {
                        info,
                        current: None,
                    });
                }
                Some(Err(e @ Error::SecretsManagerNoAnswer { .. })) => {
                    target.unanswered = Some(e.to_string());
                }
                _ => {}
            }
        }
    }

    /// Reads AWSCURRENT of every known secret without a rotation in progress,
    /// [`BATCH_GET_MAX`] per `BatchGetSecretValue` call. A secret without an AWSCURRENT
    /// version has no value to read. What the batch could not read, the per-secret path reads.
    async fn read_batched(&self, targets: &mut [Target]) {
        let mut to_read = Vec::new();
        for target in targets.iter_mut() {
            let Some(known) = &mut target.known else {
                continue;
            };
            if known.info.has_pending() {
                continue;
            }
            if known.info.version_with(AWSCURRENT).is_none() {
                known.current = Some(None);
            } else {
                to_read.push(known.info.arn.clone());
            }
        }
        let chunks: Vec<Vec<String>> = to_read
            .chunks(BATCH_GET_MAX)
            .map(<[String]>::to_vec)
            .collect();
        let answers: Vec<HashMap<String, BatchValue>> = futures::stream::iter(chunks)
            .map(|chunk| async move {
                match self.store.batch_current(&chunk).await {
                    Ok(values) => values,
                    Err(e) => {
                        tracing::warn!(error = %e, secrets = chunk.len(), "a batch read failed; reading those secrets one by one");
                        HashMap::new()
                    }
                }
            })
            .buffer_unordered(self.config.max_concurrency.get())
            .collect()
            .await;
        let mut values: HashMap<String, BatchValue> = answers.into_iter().flatten().collect();
        for target in targets.iter_mut() {
            let Some(known) = &mut target.known else {
                continue;
            };
            match values.remove(&known.info.arn) {
                // The value must be the version the listing called AWSCURRENT: a rotation may
                // have moved the label in between (and moto 5.2's batch can return a stale
                // version after UpdateSecretVersionStage); otherwise it is read alone.
                Some(BatchValue::Value(value))
                    if known.info.version_with(AWSCURRENT) == Some(value.version_id.as_str()) =>
                {
                    known.current = Some(Some(value.record()));
                }
                Some(BatchValue::Value(_)) => {
                    tracing::info!(secret_id = %known.info.name, "the batch returned another version than AWSCURRENT; reading it alone");
                }
                Some(BatchValue::Error(message)) => {
                    tracing::warn!(secret_id = %known.info.name, error = %echo(&message), "the batch could not read this secret; reading it alone");
                }
                None => {}
            }
        }
    }

    /// Feeds a secret's `iadvize:last-login-attempt` tag to the login pacing (its user's
    /// spacing and the broker's per-minute cap count logins of earlier ticks too).
    fn observe_login_tag(&self, info: &SecretInfo) {
        let Some(at) = crate::broker::last_login_tag(info, OffsetDateTime::now_utc()) else {
            return;
        };
        if let Ok(user) = self.credentials_secret_id(info) {
            self.pacer.observe(user, &info.arn, at);
        }
    }

    fn emit_fleet_metrics(&self, results: &[SecretResult], logins_before: u64) {
        let now = OffsetDateTime::now_utc();
        let count =
            |f: &dyn Fn(&SecretResult) -> bool| results.iter().filter(|r| f(r)).count() as u64;
        let min_seconds_until_expiry = results
            .iter()
            .map(|r| {
                r.expires_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map_or(0, |at| {
                        u64::try_from((at - now).whole_seconds()).unwrap_or(0)
                    })
            })
            .min()
            .unwrap_or(0);
        self.metrics.fleet(&FleetMetrics {
            min_seconds_until_expiry,
            managed: results.len() as u64,
            refreshed: count(&|r| matches!(r.outcome, Outcome::Refreshed | Outcome::Resumed)),
            failed: count(&|r| r.outcome == Outcome::Failed),
            deferred: count(&|r| r.outcome == Outcome::Deferred),
            login_attempts: self.metrics.login_attempts() - logins_before,
        });
    }

    /// Books the login slot of a secret that is due (so slots go in urgency order), or says
    /// it must wait for the next tick: its rotation could not finish before `deadline`, or its
    /// user's next slot comes too late. `Ok` when it may go on (booked, or no login known to
    /// be needed yet).
    fn book_or_defer(
        &self,
        target: &Target,
        force: bool,
        deadline: Instant,
    ) -> std::result::Result<(), std::time::Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(slack) = left.checked_sub(self.rotation_budget()) else {
            return Err(std::time::Duration::ZERO);
        };
        let Some(known) = &target.known else {
            return Ok(());
        };
        let Some(stored) = &known.current else {
            return Ok(());
        };
        let now = OffsetDateTime::now_utc();
        if known.info.has_pending()
            || due_reason(
                stored.as_ref(),
                now,
                self.config.refresh_before_expiry,
                force,
            )
            .is_none()
        {
            return Ok(());
        }
        let Ok(user) = self.credentials_secret_id(&known.info) else {
            return Ok(());
        };
        // This very secret's login started moments ago (another invocation): the login path
        // reports that (in progress while the token is valid), not the pacing.
        if crate::broker::since_last_login(&known.info, now)
            .is_some_and(|since| since < self.config.min_login_interval)
        {
            return Ok(());
        }
        self.pacer
            .book(user, &known.info.arn, now, now + slack, self.login_limits())
            .map(drop)
            .map_err(|at| (at - now).try_into().unwrap_or_default())
    }

    async fn refresh_one(&self, target: Target, force: bool, deadline: Instant) -> SecretResult {
        let secret_id = target.secret_id.clone();
        if let Some(error) = target.unanswered {
            tracing::error!(error = %error, "refresh failed");
            return SecretResult {
                secret_id,
                outcome: Outcome::Failed,
                expires_at: None,
                error: Some(error),
            };
        }
        // A due token needs a login: never start one that cannot finish.
        if let Err(wait) = self.book_or_defer(&target, force, deadline) {
            return self.deferred(&target, wait);
        }
        let arn = target.known.as_ref().map(|k| k.info.arn.clone());
        let known = target.known.clone();
        // What AWSCURRENT holds after the tick, for the result and the expiry metric.
        let mut current: Option<TokenRecord> = None;
        let mut name = None;
        let outcome = self
            .check(&secret_id, known, force, deadline, &mut current, &mut name)
            .await;
        if let Some(arn) = &arn {
            self.pacer.cancel_booking(arn);
        }
        // No login slot came early enough once the login was ready (a booking made without
        // the tick's knowledge): the next tick takes it first.
        if let Err(Error::LoginPaced { wait, .. }) = &outcome {
            return self.deferred(&target, *wait);
        }
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
                    secret_id,
                    outcome,
                    expires_at,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "refresh failed");
                SecretResult {
                    secret_id,
                    outcome: Outcome::Failed,
                    expires_at,
                    error: Some(e.to_string()),
                }
            }
        }
    }

    /// The result of a secret left for the next tick: a failure only when its token is
    /// expired (or missing) or expires before the next tick.
    fn deferred(&self, target: &Target, wait: std::time::Duration) -> SecretResult {
        let now = OffsetDateTime::now_utc();
        let record = target
            .known
            .as_ref()
            .and_then(|k| k.current.as_ref())
            .and_then(|c| c.as_ref())
            .and_then(|r| r.as_ref().ok());
        let expires_at = record.map(|r| rfc3339(r.expires_at));
        let lasts = record.is_some_and(|r| r.remaining(now) > NEXT_TICK);
        let error = (!lasts).then(|| {
            "deferred: no time left in this invocation for its rotation, and its token is missing, expired or expires before the next tick".to_owned()
        });
        if lasts {
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "deferred to the next tick: not enough time left for a rotation"
            );
        } else {
            tracing::error!(
                wait_ms = wait.as_millis() as u64,
                "deferred to the next tick, but the token will not last until then"
            );
        }
        if let Some(record) = record {
            self.metrics
                .seconds_until_expiry(&target.secret_id, record.remaining(now).as_secs());
        }
        SecretResult {
            secret_id: target.secret_id.clone(),
            outcome: Outcome::Deferred,
            expires_at,
            error,
        }
    }

    async fn check(
        &self,
        secret_id: &str,
        known: Option<Known>,
        force: bool,
        deadline: Instant,
        current: &mut Option<TokenRecord>,
        name: &mut Option<String>,
    ) -> Result<Outcome> {
        // What the tick already read (discovery, the batch) is not read again.
        let (secret, stored) = match known {
            Some(Known {
                info,
                current: Some(stored),
            }) => (info, stored),
            Some(Known {
                info,
                current: None,
            }) => {
                let stored = self.read_current(&info).await?;
                (info, stored)
            }
            None => {
                let info = self.store.describe(secret_id).await?;
                let stored = self.read_current(&info).await?;
                (info, stored)
            }
        };
        *name = Some(secret.name.clone());
        *current = stored.as_ref().and_then(|r| r.as_ref().ok()).cloned();

        if let Some(version) = secret.unfinished_cleanup() {
            // The token is already AWSCURRENT: only finishSecret's last move is missing.
            tracing::warn!(
                version,
                "a rotation stopped before removing AWSPENDING from the new current version; removing it"
            );
            self.remove_pending(&secret, version).await?;
            if secret.pending_rotation().is_none()
                && due_reason(
                    stored.as_ref(),
                    OffsetDateTime::now_utc(),
                    self.config.refresh_before_expiry,
                    force,
                )
                .is_none()
            {
                return Ok(Outcome::Resumed);
            }
        }

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
        Ok(value.map(|v| v.record()))
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
