//! The broker: built once per process from the configuration and the clients, it turns each
//! event into the component that handles it — the tick ([`crate::refresh`]), a rotation
//! step ([`crate::rotation`]), the status ([`crate::status`]) — and answers.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{Config, ConfigError};
use crate::error::{Error, Result, echo};
use crate::events::{Event, Report, StepEvent};
use crate::follow_up::{FOLLOW_UP_RESERVE, FollowUps};
use crate::heal::{Healer, SecretLocks};
use crate::iadvize::RetryPolicy;
use crate::login::Login;
use crate::metrics::Metrics;
use crate::operator::{Operator, Resumed, Verified};
use crate::refresh::{RefreshReport, Tick, discover, listed, no_secret_to_manage};
use crate::rotation::Rotation;
use crate::status::{Status, StatusReport};
use crate::store::SecretStore;

/// The configuration and the clients, built once per process (and kept across the warm
/// invocations of one Lambda execution environment).
#[derive(Debug, Clone)]
pub struct Broker {
    config: Config,
    store: SecretStore,
    login: Login,
    metrics: Metrics,
    locks: SecretLocks,
    /// Where follow-ups go (the function itself); `None`: no follow-up (the CLI).
    follow_ups: Option<FollowUps>,
}

impl Broker {
    /// A broker with the default retry policy for iAdvize requests.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the HTTP client cannot be built.
    pub fn new(config: Config, store: SecretStore, metrics: Metrics) -> Result<Self> {
        Self::with_retry_policy(config, store, metrics, RetryPolicy::default())
    }

    /// A broker with a custom retry policy for iAdvize requests.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the HTTP client cannot be built.
    pub fn with_retry_policy(
        config: Config,
        store: SecretStore,
        metrics: Metrics,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let metrics = metrics.per_secret(config.per_secret_metrics());
        let login = Login::new(&config, store.clone(), metrics.clone(), retry)?;
        Ok(Broker {
            config,
            store,
            login,
            metrics,
            locks: SecretLocks::default(),
            follow_ups: None,
        })
    }

    /// The same broker sending follow-ups through `follow_ups` when a tick or a follow-up
    /// ends with urgent work deferred (up to `IADVIZE_MAX_FOLLOW_UPS` in a chain).
    pub fn with_follow_ups(mut self, follow_ups: Option<FollowUps>) -> Self {
        self.follow_ups = follow_ups;
        self
    }

    /// The same broker with a login pacer whose per-minute cap counts over `window` (a
    /// compressed benchmark scales the stand-in's rate window and this one together).
    pub fn with_login_window(mut self, window: Duration) -> Self {
        self.login = self.login.with_window(window);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Secrets Manager wrapper in use.
    pub fn store(&self) -> &SecretStore {
        &self.store
    }

    /// What a rotation needs once its login may start: one login request, the verification
    /// (when on) and the Secrets Manager writes. Starting later than this before the deadline
    /// cannot finish.
    pub fn rotation_budget(&self) -> Duration {
        self.login.budget().rotation()
    }

    /// Handles one Lambda event and returns the answer document (see the README's events).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] for an event the broker does not accept; the handler's error
    /// otherwise ([`Error::TickFailed`] when any secret of a tick failed).
    pub async fn handle(&self, event: &Value, deadline: Instant) -> Result<Value> {
        let started = Instant::now();
        let calls_before = self.store.calls();
        // Boxed: the step and tick futures are deep, and the runtime's future stays small.
        // Every outside call inside ends before the deadline (bounds.rs).
        let result =
            crate::bounds::within_deadline(deadline, Box::pin(self.dispatch(event, deadline)))
                .await;
        tracing::info!(
            ok = result.is_ok(),
            secrets_manager_calls = self.store.calls() - calls_before,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "invocation done"
        );
        result
    }

    async fn dispatch(&self, event: &Value, deadline: Instant) -> Result<Value> {
        match Event::parse(event)? {
            // Every arm is boxed: each handler's future is deep (a tick can resume a rotation),
            // and the dispatch's own future would otherwise hold the largest of them on the
            // stack of the thread that polls it.
            Event::Step(step) => {
                Box::pin(self.run_step(&step, deadline)).await?;
                Ok(
                    json!({"step": step.step.as_str(), "secret_id": echo(&step.secret_id), "outcome": "ok"}),
                )
            }
            Event::Scheduled => Box::pin(self.chain(0, None, deadline)).await,
            Event::FollowUp { n, paused_until } => {
                Box::pin(self.chain(n, paused_until, deadline)).await
            }
            Event::Refresh { force, secret_ids } => {
                Box::pin(self.tick(secret_ids, force, deadline)).await
            }
            Event::Status => {
                let report = Box::pin(self.status_fleet()).await?;
                Ok(serde_json::to_value(report).unwrap_or(Value::Null))
            }
            Event::Report(report) => {
                // Boxed: each arm's future stays out of the dispatch's (a tick's is deep already).
                let report = Box::pin(self.report_rejected(&report, deadline)).await?;
                let value = serde_json::to_value(&report).unwrap_or(Value::Null);
                match report.failure() {
                    None => Ok(value),
                    Some(error) => {
                        tracing::error!(report = %value, "rejection report failed");
                        Err(error)
                    }
                }
            }
            Event::Queued { reports, ignored } => {
                Ok(Box::pin(self.queued_reports(reports, &ignored, deadline)).await)
            }
            Event::CredentialsChanged { secret_id } => {
                let report = Box::pin(self.credentials_changed(&secret_id, deadline)).await;
                let value = serde_json::to_value(&report).unwrap_or(Value::Null);
                match report.failure() {
                    None => tracing::info!(report = %value, "credentials change handled"),
                    // The failures are the tick's to retry; a retried event would only ask
                    // iAdvize again.
                    Some(error) => {
                        tracing::error!(report = %value, error = %error, "credentials change handled with failures")
                    }
                }
                Ok(value)
            }
            Event::Unrelated { why } => {
                tracing::info!(why, "nothing to do");
                Ok(json!({"results": []}))
            }
        }
    }

    fn healer(&self, deadline: Instant) -> Healer<'_> {
        Healer {
            config: &self.config,
            store: &self.store,
            login: &self.login,
            metrics: &self.metrics,
            locks: &self.locks,
            deadline,
        }
    }

    /// Handles a rejection report: `superseded` when AWSCURRENT holds another token,
    /// `accepted` when iAdvize accepts it (asked at most once per
    /// `IADVIZE_REPORT_VERIFY_INTERVAL`), otherwise a refresh now, reported as a tick reports
    /// it. The answer has the tick's shape, with the one secret.
    ///
    /// # Errors
    ///
    /// [`Error::SecretNotFound`] or [`Error::NotManaged`] (nothing else happens), or the
    /// Secrets Manager error of the first `DescribeSecret`.
    pub async fn report_rejected(
        &self,
        report: &Report,
        deadline: Instant,
    ) -> Result<RefreshReport> {
        crate::bounds::within_deadline(deadline, async {
            let result = self.healer(deadline).report(report).await?;
            Ok(RefreshReport {
                results: vec![result],
                discovery_error: None,
                follow_up: None,
            })
        })
        .await
    }

    /// Records from the report queue: each distinct report once, at most
    /// `IADVIZE_MAX_CONCURRENCY` at a time (reports of one secret wait for each other); a
    /// body that is not a report is counted and logged by its shape. Always succeeds: a
    /// record is never retried (the consumer reports again if its next call fails too).
    async fn queued_reports(
        &self,
        reports: Vec<Report>,
        ignored: &[String],
        deadline: Instant,
    ) -> Value {
        for shape in ignored {
            tracing::warn!(body = %shape, "a queue message that is not a rejection report was ignored");
        }
        if !ignored.is_empty() {
            self.metrics.report_bodies_ignored(ignored.len() as u64);
        }
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<Report> = reports
            .into_iter()
            .filter(|r| seen.insert(r.clone()))
            .collect();
        let healer = self.healer(deadline);
        let results: Vec<_> = crate::bounds::within_deadline(
            deadline,
            futures::stream::iter(distinct)
                .map(move |report| queued_report(healer, report))
                .buffer_unordered(self.config.max_concurrency().get())
                .collect(),
        )
        .await;
        json!({"results": results, "ignored": ignored.len()})
    }

    /// AWSCURRENT of `secret_id` moved: when it holds credentials, the token secrets that
    /// use it are checked (see the README's "Healing"). Never fails as a whole.
    pub async fn credentials_changed(&self, secret_id: &str, deadline: Instant) -> RefreshReport {
        crate::bounds::within_deadline(
            deadline,
            self.healer(deadline).credentials_changed(secret_id),
        )
        .await
    }

    /// A tick over the given secrets, or (`None`) over the listed and the tagged ones.
    async fn tick(
        &self,
        ids: Option<Vec<String>>,
        force: bool,
        deadline: Instant,
    ) -> Result<Value> {
        let report = match ids {
            Some(ids) if ids.is_empty() => return Err(no_listed_secret()),
            Some(ids) => self.refresh(&ids, force, deadline).await,
            None => self.refresh_fleet(force, deadline).await?,
        };
        answer(&report)
    }

    /// The scheduled tick (`n` = 0) or follow-up `n`: a tick over the fleet that, when it
    /// ends with urgent work deferred, sends follow-up `n + 1` — up to
    /// `IADVIZE_MAX_FOLLOW_UPS`, and only while each follow-up renews a token (one that
    /// renews none stops the chain: its wait did not fit, and the next tick resumes). A
    /// follow-up first takes the pause of logins it carries.
    async fn chain(
        &self,
        n: u32,
        paused_until: Option<time::OffsetDateTime>,
        deadline: Instant,
    ) -> Result<Value> {
        if let Some(until) = paused_until {
            // The broker never pauses longer than this after a 429: a later end is not one
            // of its follow-ups, and would pause every later invocation of this environment.
            let longest = crate::iadvize::MAX_RETRY_AFTER.max(self.config.throttle_pause());
            let now = time::OffsetDateTime::now_utc();
            if until - now > time::Duration::try_from(longest).unwrap_or(time::Duration::MAX) {
                return Err(Error::InvalidEvent(format!(
                    "a follow-up's paused_until is at most {} from now (the longest pause of logins the broker sets after a 429: max(Retry-After up to {}, IADVIZE_THROTTLE_PAUSE)), got {}; nothing was done",
                    humantime::format_duration(longest),
                    humantime::format_duration(crate::iadvize::MAX_RETRY_AFTER),
                    crate::token::rfc3339(until)
                )));
            }
            self.login.pause_until(until);
        }
        let sender = self
            .follow_ups
            .as_ref()
            .filter(|_| n < self.config.max_follow_ups());
        // The Invoke of the next follow-up keeps its time before the deadline.
        let work_deadline = match sender {
            Some(_) => deadline.checked_sub(FOLLOW_UP_RESERVE).unwrap_or(deadline),
            None => deadline,
        };
        let mut report = self.refresh_fleet(false, work_deadline).await?;
        let urgent = report.urgent_deferred();
        if urgent > 0 {
            match sender {
                Some(_) if n > 0 && report.renewed() == 0 => {
                    tracing::warn!(
                        follow_up = n,
                        urgent,
                        "no token renewed in this follow-up: the chain stops; the next tick resumes"
                    );
                }
                Some(sender) => {
                    let paused_until = self.login.paused_until();
                    match sender.send(n + 1, paused_until).await {
                        Ok(()) => {
                            self.metrics.follow_up_sent();
                            report.follow_up = Some(n + 1);
                            tracing::info!(
                                follow_up = n + 1,
                                urgent,
                                paused_until =
                                    paused_until.map_or_else(String::new, crate::token::rfc3339),
                                "urgent work deferred: follow-up sent"
                            );
                        }
                        Err(e) => {
                            tracing::error!(follow_up = n + 1, error = %e, "the follow-up could not be sent; the next tick resumes");
                        }
                    }
                }
                None if self.follow_ups.is_some() => {
                    tracing::warn!(
                        follow_up = n,
                        max = self.config.max_follow_ups(),
                        urgent,
                        "urgent work deferred, but the chain has reached IADVIZE_MAX_FOLLOW_UPS; the next tick resumes"
                    );
                }
                None => {}
            }
        }
        answer(&report)
    }
}

/// A tick's answer: the report, or the error when any secret failed.
fn answer(report: &RefreshReport) -> Result<Value> {
    let value = serde_json::to_value(report).unwrap_or(Value::Null);
    match report.failure() {
        None => {
            tracing::info!(report = %value, "refresh tick done");
            Ok(value)
        }
        Some(error) => {
            tracing::error!(report = %value, "refresh tick failed");
            Err(error)
        }
    }
}

impl Broker {
    fn ticker(&self, force: bool, deadline: Instant, fleet: bool) -> Tick<'_> {
        Tick {
            config: &self.config,
            store: &self.store,
            login: &self.login,
            metrics: &self.metrics,
            force,
            deadline,
            fleet,
        }
    }

    fn steps(&self) -> Rotation<'_> {
        Rotation {
            store: &self.store,
            login: &self.login,
            metrics: &self.metrics,
        }
    }

    fn status_reader(&self) -> Status<'_> {
        Status {
            config: &self.config,
            store: &self.store,
            login: &self.login,
        }
    }

    fn operator(&self) -> Operator<'_> {
        Operator {
            store: &self.store,
            login: &self.login,
            steps: self.steps(),
        }
    }

    /// Refreshes exactly the given token secrets (an operator's list), each once. Never fails
    /// as a whole: each secret's failure is in its result (see [`RefreshReport::failure`]).
    pub async fn refresh(
        &self,
        secret_ids: &[String],
        force: bool,
        deadline: Instant,
    ) -> RefreshReport {
        let tick = self.ticker(force, deadline, false);
        crate::bounds::within_deadline(deadline, tick.run(listed(secret_ids))).await
    }

    /// The scheduled tick: every secret of `IADVIZE_TOKEN_SECRET_IDS` plus every secret tagged
    /// `iadvize:managed` = `true`, each once.
    ///
    /// # Errors
    ///
    /// Only when there is nothing to manage: discovery's error, or a configuration error
    /// when no secret is listed or tagged.
    pub async fn refresh_fleet(&self, force: bool, deadline: Instant) -> Result<RefreshReport> {
        let tick = self.ticker(force, deadline, true);
        crate::bounds::within_deadline(deadline, async {
            let (targets, discovery_error) = discover(&self.config, &self.store).await;
            if targets.is_empty() {
                return Err(discovery_error.unwrap_or_else(no_secret_to_manage));
            }
            let mut report = tick.run(targets).await;
            report.discovery_error = discovery_error.map(|e| e.to_string());
            Ok(report)
        })
        .await
    }

    /// Runs one rotation step event from Secrets Manager.
    ///
    /// # Errors
    ///
    /// See [`Rotation::run_step`].
    pub async fn run_step(&self, event: &StepEvent, deadline: Instant) -> Result<()> {
        self.steps().run_step(event, deadline).await
    }

    /// The whole fleet's state: the listed secrets plus the tagged ones, each once.
    ///
    /// # Errors
    ///
    /// Only when there is nothing to report on (as [`Broker::refresh_fleet`]).
    pub async fn status_fleet(&self) -> Result<StatusReport> {
        self.status_reader().fleet().await
    }

    /// The state of each given secret.
    pub async fn status(&self, secret_ids: &[String]) -> StatusReport {
        self.status_reader().of(secret_ids).await
    }

    /// Asks iAdvize's `/_authenticated` about the token secret's AWSCURRENT token (one
    /// request; no login, nothing written).
    ///
    /// # Errors
    ///
    /// Secrets Manager errors reading the secret; [`Error::Iadvize`] when iAdvize could not
    /// be asked.
    pub async fn verify_current(&self, secret_id: &str, deadline: Instant) -> Result<Verified> {
        crate::bounds::within_deadline(
            deadline,
            self.operator().verify_current(secret_id, deadline),
        )
        .await
    }

    /// Finishes an unfinished rotation of `secret_id` now, whatever its age: the rotation
    /// steps with the pending version's id (they are idempotent, so a token already stored
    /// there is used without logging in again).
    ///
    /// # Errors
    ///
    /// The failure of the step that failed (the pending version is then abandoned).
    pub async fn resume(&self, secret_id: &str, deadline: Instant) -> Result<Resumed> {
        self.operator().resume(secret_id, deadline).await
    }
}

/// One report from the queue: its result, or its error as a failed result (a queue record is
/// never retried).
async fn queued_report(healer: Healer<'_>, report: Report) -> crate::refresh::SecretResult {
    match healer.report(&report).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(secret_id = %echo(&report.secret_id), error = %e, "rejection report refused");
            crate::refresh::SecretResult::failed(report.secret_id, None, &e)
        }
    }
}

fn no_listed_secret() -> Error {
    Error::Config(ConfigError {
        variable: "IADVIZE_TOKEN_SECRET_IDS",
        message:
            "no token secret to manage; set it to a comma-separated list of secret names or ARNs"
                .into(),
    })
}
