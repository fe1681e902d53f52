//! Reacting between ticks: rejection reports (a consumer's call was refused with the token
//! the secret still holds) and credentials changes (AWSCURRENT of a credentials secret
//! moved). Both touch only the token secrets they name, log in at most once per secret,
//! never work through the fleet at the per-minute cap and never emit the fleet-wide gauges:
//! the tick and its follow-ups do that.
//!
//! A report of the token AWSCURRENT holds costs at most one `/_authenticated` call per
//! `IADVIZE_REPORT_VERIFY_INTERVAL` (its outcome is kept in the token secret's
//! `iadvize:last-report-verification` tag, so every invocation sees it), and a login only when
//! iAdvize rejects the token. Reports of one secret inside one process wait for each other,
//! so the second finds the new token (`superseded`) or the verification it needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{Error, Result, echo};
use crate::events::Report;
use crate::iadvize::Verification;
use crate::login::Login;
use crate::metrics::Metrics;
use crate::plan::Current;
use crate::refresh::{Outcome, RefreshReport, SecretResult, Target, Tick, read_current};
use crate::store::{AWSCURRENT, SecretInfo, SecretStore};
use crate::tags::{self, ReportVerification};
use crate::token::TokenRecord;

/// One lock per token secret (by ARN), shared by the reports and credentials events of one
/// process: two checks of one secret never run at once, so one rejection costs one login.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl SecretLocks {
    fn of(&self, arn: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.0.lock() {
            Ok(mut locks) => locks.entry(arn.to_owned()).or_default().clone(),
            // A poisoned map only loses the sharing: a fresh lock still serialises nothing
            // wrongly, and the login spacing still holds a second login back.
            Err(_) => Arc::default(),
        }
    }
}

/// The SHA-256 of a record's access token, lower-case hex (what reports carry).
fn sha256_of(record: &TokenRecord) -> String {
    iadvize_token_consumer::report::token_sha256(&record.access_token)
}

/// Reports and credentials events for one invocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Healer<'a> {
    pub config: &'a Config,
    pub store: &'a SecretStore,
    pub login: &'a Login,
    pub metrics: &'a Metrics,
    pub locks: &'a SecretLocks,
    /// The invocation's deadline.
    pub deadline: Instant,
}

impl Healer<'_> {
    fn tick(&self, force: bool) -> Tick<'_> {
        Tick {
            config: self.config,
            store: self.store,
            login: self.login,
            metrics: self.metrics,
            force,
            // A report or a credentials event touches the secrets it names: no fleet-wide series.
            fleet: false,
            deadline: self.deadline,
        }
    }

    /// The tick's turn for one secret (forced: refresh even a token that is not due). Boxed:
    /// a turn's future is deep, and it runs inside a report's or an event's.
    async fn refresh_now(&self, force: bool, target: Target) -> SecretResult {
        Box::pin(self.tick(force).one(target)).await
    }

    /// Whether the broker manages `secret`: tagged `iadvize:managed=true`, or listed in
    /// `IADVIZE_TOKEN_SECRET_IDS` by name, ARN or partial ARN.
    fn manages(&self, secret: &SecretInfo) -> bool {
        tags::is_managed(&secret.tags)
            || self
                .config
                .token_secret_ids()
                .iter()
                .any(|id| secret.is_named(id))
    }

    /// Handles one report. A report the broker cannot act on (the secret is missing or not
    /// managed) is an error, and nothing else happens; everything after that is in the
    /// result, as a tick reports a secret.
    ///
    /// # Errors
    ///
    /// [`Error::SecretNotFound`], [`Error::NotManaged`], or the Secrets Manager error of the
    /// first `DescribeSecret`.
    pub(crate) async fn report(&self, report: &Report) -> Result<SecretResult> {
        let secret = match self.store.describe(&report.secret_id).await {
            Ok(secret) => secret,
            Err(e) => {
                self.metrics.rejection_report("error");
                return Err(e);
            }
        };
        if !self.manages(&secret) {
            self.metrics.rejection_report("error");
            return Err(Error::NotManaged {
                secret_id: report.secret_id.clone(),
            });
        }
        let lock = self.locks.of(&secret.arn);
        let (_guard, secret) = match lock.clone().try_lock_owned() {
            Ok(guard) => (guard, secret),
            Err(_) => {
                // Another report of this secret ran meanwhile: what it did (a new token, a
                // verification in the tag) is read again.
                let guard = lock.lock_owned().await;
                match self.store.describe(&secret.arn).await {
                    Ok(secret) => (guard, secret),
                    Err(e) => {
                        let result = SecretResult::failed(report.secret_id.clone(), None, &e);
                        self.metrics.rejection_report(result.outcome.as_str());
                        return Ok(result);
                    }
                }
            }
        };
        let result = Box::pin(self.check(
            report.secret_id.clone(),
            secret,
            Some(&report.token_sha256),
            true,
        ))
        .await;
        tracing::info!(
            secret_id = %echo(&report.secret_id),
            outcome = result.outcome.as_str(),
            "rejection report handled"
        );
        self.metrics.rejection_report(result.outcome.as_str());
        Ok(result)
    }

    /// Checks a token secret's AWSCURRENT against `reported` (the hash of a token a consumer
    /// saw refused; `None`: the current token, whatever it is). `remembered`: a recent
    /// verification of the same token in the tag answers instead of iAdvize.
    async fn check(
        &self,
        secret_id: String,
        secret: SecretInfo,
        reported: Option<&str>,
        remembered: bool,
    ) -> SecretResult {
        // A rotation under way, or a value that is not a usable token: the tick's rules
        // decide (leave a young rotation alone, refresh a missing or expired token).
        if secret.has_pending() {
            return self
                .refresh_now(false, Target::read(secret_id, secret, Current::NotRead))
                .await;
        }
        let current = match read_current(self.store, &secret).await {
            Ok(current) => current,
            Err(e) => return SecretResult::failed(secret_id, None, &e),
        };
        let Some(record) = current.record().cloned() else {
            return self
                .refresh_now(false, Target::read(secret_id, secret, current))
                .await;
        };
        let hash = sha256_of(&record);
        if reported.is_some_and(|reported| reported != hash) {
            return SecretResult::with(secret_id, Outcome::Superseded, Some(record.expires_at));
        }
        let now = OffsetDateTime::now_utc();
        if current
            .due_reason(now, self.config.refresh_before_expiry(), false)
            .is_some()
        {
            // The tick would refresh it now: no need to ask iAdvize first.
            return self
                .refresh_now(false, Target::read(secret_id, secret, current))
                .await;
        }
        let memo = secret
            .broker_tags()
            .last_report_verification
            .filter(|v| remembered && v.answers(&hash, now, self.config.report_verify_interval()))
            .map(|v| v.accepted);
        let accepted = match memo {
            Some(accepted) => {
                tracing::info!(
                    accepted,
                    "this token was verified moments ago; answering from that verification"
                );
                accepted
            }
            None => match self.login.ask(&record.access_token, self.deadline).await {
                Ok(verification) => {
                    let accepted = matches!(verification, Verification::Authenticated);
                    if let Verification::Rejected(reason) = &verification {
                        tracing::warn!(reason = %reason, "iAdvize rejects the current token");
                    }
                    let value = ReportVerification::value(now, accepted, &hash);
                    if let Err(e) = self
                        .store
                        .set_tag(&secret.arn, tags::LAST_REPORT_VERIFICATION, &value)
                        .await
                    {
                        // Only the memory of the verification is lost: the next report asks
                        // iAdvize again.
                        tracing::warn!(error = %e, "the verification could not be recorded");
                    }
                    accepted
                }
                Err(source) => {
                    let error = Error::Iadvize {
                        secret_id: secret.name.clone(),
                        source,
                    };
                    tracing::error!(error = %error, "iAdvize could not be asked about the token");
                    return SecretResult::failed(secret_id, Some(record.expires_at), &error);
                }
            },
        };
        if accepted {
            return SecretResult::with(secret_id, Outcome::Accepted, Some(record.expires_at));
        }
        tracing::warn!("iAdvize rejects the token AWSCURRENT holds; refreshing it now");
        // The lock above is per process: another invocation may have acted on this secret
        // while iAdvize was asked. Reading the secret again right before the login leaves two
        // processes logging in twice only when both read it before either wrote its
        // `iadvize:last-login-attempt` tag (Secrets Manager has no conditional write to close
        // that window).
        let again = match self.store.describe(&secret.arn).await {
            Ok(again) => again,
            Err(e) => return SecretResult::failed(secret_id, Some(record.expires_at), &e),
        };
        if again.has_pending() {
            // A rotation started meanwhile: the tick's rules decide (a young one is left alone).
            return self
                .refresh_now(false, Target::read(secret_id, again, Current::NotRead))
                .await;
        }
        let current = if again.version_with(AWSCURRENT) == secret.version_with(AWSCURRENT) {
            current
        } else {
            match read_current(self.store, &again).await {
                Ok(moved) => match moved.record() {
                    // Another invocation published a new token: the reporter re-reads.
                    Some(new) if sha256_of(new) != hash => {
                        return SecretResult::with(
                            secret_id,
                            Outcome::Superseded,
                            Some(new.expires_at),
                        );
                    }
                    _ => moved,
                },
                Err(e) => return SecretResult::failed(secret_id, Some(record.expires_at), &e),
            }
        };
        // A login another invocation started moments ago holds this one back (in progress
        // while the token is valid): the spacing reads the tags just read.
        self.refresh_now(true, Target::read(secret_id, again, current))
            .await
    }

    /// AWSCURRENT of `secret_id` moved. When it is a credentials secret (tagged
    /// `iadvize:credentials=true`, or `IADVIZE_CREDENTIALS_SECRET_ID`), every managed token
    /// secret that uses it is checked: blocked, missing, expired or due → refreshed now; any
    /// other is verified once and refreshed only if iAdvize rejects its token. Any other
    /// secret costs this one `DescribeSecret` and answers no results.
    pub(crate) async fn credentials_changed(&self, secret_id: &str) -> RefreshReport {
        let empty = RefreshReport {
            results: Vec::new(),
            discovery_error: None,
            follow_up: None,
        };
        let changed = match self.store.describe(secret_id).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(secret_id = %echo(secret_id), error = %e, "the secret of a credentials event could not be described; nothing to do");
                return empty;
            }
        };
        let default = self.config.credentials_secret_id();
        let is_default = default.is_some_and(|d| names(d, &changed));
        if !tags::is_credentials(&changed.tags) && !is_default {
            tracing::info!(secret_id = %changed.name, "AWSCURRENT moved on a secret that is not a credentials secret; nothing to do");
            return empty;
        }
        tracing::info!(secret_id = %changed.name, "the credentials changed; checking the token secrets that use them");
        let (mut secrets, discovery_error) = match self.store.list_managed().await {
            Ok(found) => (found, None),
            Err(e) => {
                tracing::error!(error = %e, "discovery of tagged token secrets failed");
                (Vec::new(), Some(e.to_string()))
            }
        };
        for id in self.config.token_secret_ids() {
            if secrets.iter().any(|s| s.is_named(id)) {
                continue;
            }
            match self.store.describe(id).await {
                Ok(info) => secrets.push(info),
                Err(e) => {
                    tracing::warn!(secret_id = %echo(id), error = %e, "a listed token secret could not be described")
                }
            }
        }
        let users: Vec<SecretInfo> = secrets
            .into_iter()
            .filter(|s| {
                self.login
                    .credentials_secret_id(s)
                    .is_ok_and(|id| names(id, &changed))
            })
            .collect();
        let results = futures::stream::iter(users)
            .map(|secret| self.uses_changed(secret))
            .buffered(self.config.max_concurrency().get())
            .collect()
            .await;
        RefreshReport {
            results,
            discovery_error,
            follow_up: None,
        }
    }
}

impl Healer<'_> {
    /// A token secret whose credentials changed: blocked → refreshed now (the new version
    /// lifts the block); otherwise checked as a report of its current token would be, but
    /// asking iAdvize rather than the tag (a new password may have revoked the token).
    async fn uses_changed(self, secret: SecretInfo) -> SecretResult {
        let lock = self.locks.of(&secret.arn);
        let _guard = lock.lock().await;
        let name = secret.name.clone();
        if secret.broker_tags().rejected_credentials_version.is_some() {
            return self
                .refresh_now(true, Target::read(name, secret, Current::NotRead))
                .await;
        }
        Box::pin(self.check(name, secret, None, false)).await
    }
}

/// Whether `id` names `secret` (see [`SecretInfo::is_named`]).
fn names(id: &str, secret: &SecretInfo) -> bool {
    secret.is_named(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_named_by_its_name_its_arn_or_its_partial_arn() {
        let secret = SecretInfo {
            arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/creds-AbCdEf".into(),
            name: "team/creds".into(),
            rotation_enabled: false,
            versions: HashMap::new(),
            tags: HashMap::new(),
        };
        assert!(names("team/creds", &secret));
        assert!(names(&secret.arn.clone(), &secret));
        assert!(names(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/creds",
            &secret
        ));
        assert!(!names("team/cred", &secret));
        assert!(!names(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/cr",
            &secret
        ));
    }
}
