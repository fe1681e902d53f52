//! The refresh tick: for each managed token secret, leave a fresh token alone, refresh a
//! token that is due, and finish a rotation that got stuck. This module is the runner: it
//! reads, asks the planner ([`crate::plan`]) what each secret needs, and performs that —
//! the I/O, the concurrency and the login slots.
//!
//! The fleet tick costs few Secrets Manager calls: `ListSecrets` finds the tagged secrets with
//! their tags and version stages, `BatchGetSecretValue` reads 20 AWSCURRENT values a call;
//! only due, stuck or unreadable secrets take the per-secret path, most urgent first.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{Config, ConfigError};
use crate::error::{Error, ErrorKind, Result, echo};
use crate::login::{Login, Slot};
use crate::metrics::{FleetMetrics, Metrics};
use crate::plan::{Action, Age, Current, DueReason, Facts, Room, Rotation, Rules, plan};
use crate::rotation::Rotation as Steps;
use crate::store::{AWSCURRENT, BATCH_GET_MAX, BatchValue, SecretInfo, SecretStore, Version};
use crate::token::{TokenRecord, rfc3339};

/// What a tick did with one secret. Serialised in snake case (`fresh`, `in_progress`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The token has more than the refresh window left.
    Fresh,
    /// A new token is AWSCURRENT.
    Refreshed,
    /// A rotation younger than the stuck threshold is running (or another invocation is
    /// logging in for this secret while its token still works); left alone.
    InProgress,
    /// A stuck rotation was finished.
    Resumed,
    /// Not started: it could not finish before the invocation's deadline (or no login slot
    /// comes early enough). The next tick takes it first.
    Deferred,
    /// Something failed; see `error`.
    Failed,
    /// A report named a token that is no longer AWSCURRENT: the reporter re-reads.
    Superseded,
    /// A report named AWSCURRENT's token and iAdvize accepts it (the 401 came from
    /// elsewhere: a permission, another platform); nothing changed.
    Accepted,
}

impl Outcome {
    /// The name in the answer (`in_progress`, …), also the `Outcome` dimension of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fresh => "fresh",
            Outcome::Refreshed => "refreshed",
            Outcome::InProgress => "in_progress",
            Outcome::Resumed => "resumed",
            Outcome::Deferred => "deferred",
            Outcome::Failed => "failed",
            Outcome::Superseded => "superseded",
            Outcome::Accepted => "accepted",
        }
    }
}

/// One secret's line in the tick's answer, e.g. `{"secret_id": "team/a", "outcome":
/// "refreshed", "expires_at": "2026-11-27T10:00:00Z"}`.
#[derive(Debug, Clone, Serialize)]
pub struct SecretResult {
    /// The secret as configured (capped in the answer: see [`echo`]).
    #[serde(serialize_with = "crate::error::serialize_echo")]
    pub secret_id: String,
    /// What happened.
    pub outcome: Outcome,
    /// When AWSCURRENT's token expires, if known (RFC 3339, to the second, in the answer).
    #[serde(
        serialize_with = "serialize_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Why it failed (or why a deferral is a failure), in words for the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure `error` is ([`ErrorKind::as_str`], e.g. `CredentialsBlocked`),
    /// so a caller can act on it without parsing the words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// Why an `in_progress` result changed nothing although no rotation is under way: its
    /// login was held back on purpose (this secret's previous login attempt started less than
    /// `IADVIZE_MIN_LOGIN_INTERVAL` ago), and when the next may start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<HeldBack>,
}

/// A login held back on purpose; the current token still works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldBack {
    /// What held it back ([`ErrorKind::as_str`]): `LoginSpacing`.
    pub kind: ErrorKind,
    /// Why, in words for the operator.
    pub reason: String,
    /// When the next login for this secret may start (RFC 3339).
    pub next_login_at: String,
}

fn serialize_time<S: serde::Serializer>(
    at: &Option<OffsetDateTime>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&rfc3339(*at)),
        None => serializer.serialize_none(),
    }
}

impl SecretResult {
    /// A result that needed no action: `outcome` with AWSCURRENT's expiry.
    pub(crate) fn with(
        secret_id: String,
        outcome: Outcome,
        expires_at: Option<OffsetDateTime>,
    ) -> Self {
        SecretResult {
            secret_id,
            outcome,
            expires_at,
            error: None,
            error_kind: None,
            held_back: None,
        }
    }

    pub(crate) fn failed(
        secret_id: String,
        expires_at: Option<OffsetDateTime>,
        error: &Error,
    ) -> Self {
        SecretResult {
            secret_id,
            outcome: Outcome::Failed,
            expires_at,
            error: Some(error.to_string()),
            error_kind: Some(error.kind()),
            held_back: None,
        }
    }
}

/// The tick's answer: `{"results": [...]}`, plus `discovery_error` when `ListSecrets` failed.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// One entry per secret, in the order given (listed secrets first, then discovered ones).
    pub results: Vec<SecretResult>,
    /// Why discovery (`ListSecrets`) failed, if it did: the tagged secrets were not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_error: Option<String>,
    /// The number of the follow-up this invocation sent (1 for a tick's), if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<u32>,
}

/// What held a secret back when the tick deferred it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deferral {
    /// The invocation's deadline leaves no room for a rotation.
    NoTime,
    /// No login slot early enough (the per-user spacing or the per-minute cap).
    Paced,
    /// The broker pauses its logins after iAdvize's 429, until then if known.
    Throttled(Option<OffsetDateTime>),
}

impl Deferral {
    /// The words of the result's `error` and of the log line.
    fn reason(self) -> String {
        match self {
            Deferral::NoTime => "no time left in this invocation for its rotation".to_owned(),
            Deferral::Paced => "no login slot early enough in this invocation (login pacing: IADVIZE_MIN_LOGIN_INTERVAL, IADVIZE_MAX_LOGINS_PER_MINUTE)".to_owned(),
            Deferral::Throttled(until) => format!(
                "iAdvize rate-limits the broker's logins (HTTP 429) and the broker pauses them {}",
                until.map_or_else(
                    || "while one login waits out the limit".to_owned(),
                    |at| format!("until {}", rfc3339(at))
                )
            ),
        }
    }

    /// The result's `error_kind`.
    fn kind(self) -> ErrorKind {
        match self {
            Deferral::NoTime | Deferral::Paced => ErrorKind::Deferred,
            Deferral::Throttled(_) => ErrorKind::LoginThrottled,
        }
    }
}

impl RefreshReport {
    /// Secrets deferred although their token is missing, expired or expires before the next
    /// tick: the work a follow-up is for.
    pub fn urgent_deferred(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Deferred && r.error.is_some())
            .count()
    }

    /// Secrets that got a new token (refreshed or resumed): whether the invocation made
    /// progress.
    pub fn renewed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Refreshed | Outcome::Resumed))
            .count()
    }

    /// The error to return when any secret failed (so Lambda's error metric fires): an
    /// [`Error::TickFailed`] listing each failure.
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
pub const NEXT_TICK: Duration = Duration::from_secs(3600);

/// One secret the tick manages, with what the tick has read of it so far.
#[derive(Debug)]
pub(crate) struct Target {
    /// As listed, or the name of a discovered secret.
    pub secret_id: String,
    /// From `ListSecrets` (discovered) or `DescribeSecret` (listed); `None`: not read yet.
    info: Option<SecretInfo>,
    /// AWSCURRENT.
    current: Current,
    /// Secrets Manager did not answer the tick's `DescribeSecret` of this secret in time:
    /// asking again would only wait again, so its turn reports this.
    unanswered: Option<Error>,
}

impl Target {
    fn listed(id: &str) -> Self {
        Target {
            secret_id: id.to_owned(),
            info: None,
            current: Current::NotRead,
            unanswered: None,
        }
    }

    /// A secret already described (and maybe read) by the caller: the tick reads only what
    /// is missing.
    pub(crate) fn read(secret_id: String, info: SecretInfo, current: Current) -> Self {
        Target {
            secret_id,
            info: Some(info),
            current,
            unanswered: None,
        }
    }

    fn discovered(info: SecretInfo) -> Self {
        Target {
            secret_id: info.name.clone(),
            info: Some(info),
            current: Current::NotRead,
            unanswered: None,
        }
    }
}

/// The operator's list: each secret once, in the order given.
pub(crate) fn listed(secret_ids: &[String]) -> Vec<Target> {
    let mut seen = HashSet::new();
    secret_ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .map(|id| Target::listed(id))
        .collect()
}

/// The error when a tick or a status has no secret to look at.
pub(crate) fn no_secret_to_manage() -> Error {
    Error::Config(ConfigError {
        variable: "IADVIZE_TOKEN_SECRET_IDS",
        message: "no token secret to manage; set it to a comma-separated list of secret names or ARNs, or tag token secrets iadvize:managed=true".into(),
    })
}

/// The managed secrets: the listed ones (to describe) and the discovered ones (known from
/// `ListSecrets`), each once, matched by ARN and name. The error is discovery's, if it
/// failed (the listed secrets are still returned).
pub(crate) async fn discover(config: &Config, store: &SecretStore) -> (Vec<Target>, Option<Error>) {
    let (discovered, error) = match store.list_managed().await {
        Ok(found) => (found, None),
        Err(e) => {
            tracing::error!(error = %e, "discovery of tagged token secrets failed");
            (Vec::new(), Some(e))
        }
    };
    let mut targets: Vec<Target> = Vec::new();
    for id in config.token_secret_ids() {
        let duplicate =
            discovered.iter().any(|d| d.is_named(id)) || targets.iter().any(|t| t.secret_id == *id);
        if !duplicate {
            targets.push(Target::listed(id));
        }
    }
    let listed = targets.len();
    targets.extend(discovered.into_iter().map(Target::discovered));
    tracing::info!(
        listed,
        discovered = targets.len() - listed,
        "managed token secrets"
    );
    (targets, error)
}

/// AWSCURRENT of a secret, read alone.
pub(crate) async fn read_current(store: &SecretStore, secret: &SecretInfo) -> Result<Current> {
    let value = store.get(&secret.arn, Version::Stage(AWSCURRENT)).await?;
    Ok(Current::from(value.map(|v| v.record())))
}

/// A secret's rotation state from its stages, with the pending version's age as known.
fn rotation_of(secret: &SecretInfo, age: Age) -> Rotation<'_> {
    if let Some(version) = secret.unfinished_cleanup() {
        Rotation::Unfinished(version)
    } else if let Some(version) = secret.pending_rotation() {
        Rotation::Pending { version, age }
    } else {
        Rotation::Idle
    }
}

/// What a secret's turn learnt and did, for its result.
struct Checked {
    /// The secret's name, once it was read (the metric dimension).
    name: Option<String>,
    /// What AWSCURRENT holds after the turn.
    record: Option<TokenRecord>,
    outcome: Result<Outcome>,
    /// Why an `in_progress` outcome logged nothing in.
    held_back: Option<HeldBack>,
}

/// One tick over a list of secrets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tick<'a> {
    pub config: &'a Config,
    pub store: &'a SecretStore,
    pub login: &'a Login,
    pub metrics: &'a Metrics,
    /// Refresh even fresh tokens.
    pub force: bool,
    /// The invocation's deadline.
    pub deadline: Instant,
    /// A tick over the fleet (scheduled, a follow-up, an operator's fleet refresh): it emits
    /// the fleet-wide series the alarms read; a refresh of listed secrets does not.
    pub fleet: bool,
}

impl Tick<'_> {
    fn rules(&self) -> Rules {
        Rules {
            refresh_before_expiry: self.config.refresh_before_expiry(),
            stuck_rotation_after: self.config.stuck_rotation_after(),
            force: self.force,
        }
    }

    fn steps(&self) -> Steps<'_> {
        Steps {
            store: self.store,
            login: self.login,
            metrics: self.metrics,
        }
    }

    /// Reads what can be read in bulk, then gives every secret its turn, most urgent first,
    /// `IADVIZE_MAX_CONCURRENCY` at a time. Never fails as a whole: each secret's failure is
    /// in its result.
    pub(crate) async fn run(&self, mut targets: Vec<Target>) -> RefreshReport {
        let logins_before = self.metrics.login_attempts();
        self.describe_listed(&mut targets).await;
        self.read_batched(&mut targets).await;
        for info in targets.iter().filter_map(|t| t.info.as_ref()) {
            self.login.observe(info);
        }
        // The credentials secrets the targets name in their tags (known without another
        // call): none of them may be refreshed as a token secret.
        let users: HashSet<String> = targets
            .iter()
            .filter_map(|t| t.info.as_ref())
            .filter_map(|info| info.broker_tags().credentials_secret_id.map(str::to_owned))
            .collect();

        // Most urgent first: the least time left on the current token; 0 for a missing,
        // unreadable or expired one, a rotation in progress, or a value not read yet.
        let now = OffsetDateTime::now_utc();
        let mut queue: Vec<(u64, usize, Target)> = targets
            .into_iter()
            .enumerate()
            .map(|(index, target)| (target.current.seconds_left(now), index, target))
            .collect();
        queue.sort_by_key(|(urgency, index, _)| (*urgency, *index));
        let total = queue.len();

        let done: Vec<(usize, SecretResult)> = futures::stream::iter(queue)
            .map(|(_, index, target)| {
                let span = tracing::info_span!("refresh", secret_id = %echo(&target.secret_id));
                let users = &users;
                async move { (index, self.turn(target, users).await) }.instrument(span)
            })
            .buffered(self.config.max_concurrency().get())
            .collect()
            .await;
        let mut results: Vec<Option<SecretResult>> = vec![None; total];
        for (index, result) in done {
            results[index] = Some(result);
        }
        let results: Vec<SecretResult> = results.into_iter().flatten().collect();
        if self.fleet {
            self.emit_fleet_metrics(&results, logins_before);
        }
        RefreshReport {
            results,
            discovery_error: None,
            follow_up: None,
        }
    }

    /// One secret's turn, alone: no bulk reads and no fleet-wide metrics (a report or a
    /// credentials event touches the secrets it names; only ticks emit the fleet's gauges).
    pub(crate) async fn one(&self, target: Target) -> SecretResult {
        if let Some(info) = &target.info {
            self.login.observe(info);
        }
        let span = tracing::info_span!("refresh", secret_id = %echo(&target.secret_id));
        self.turn(target, &HashSet::new()).instrument(span).await
    }

    /// Why `info` holds credentials rather than a token, if it does: tagged
    /// `iadvize:credentials=true`, the `IADVIZE_CREDENTIALS_SECRET_ID`, or one of `users` (the
    /// credentials secrets the token secrets of this tick name). A refresh would write a
    /// token record over the credentials.
    fn credentials_secret(
        &self,
        secret_id: &str,
        info: &SecretInfo,
        users: &HashSet<String>,
    ) -> Option<Error> {
        let why = if crate::tags::is_credentials(&info.tags) {
            format!("tagged {}=true", crate::tags::CREDENTIALS)
        } else if self
            .config
            .credentials_secret_id()
            .is_some_and(|id| info.is_named(id))
        {
            "it is IADVIZE_CREDENTIALS_SECRET_ID".to_owned()
        } else if users.iter().any(|id| info.is_named(id)) {
            format!(
                "a token secret names it in its {} tag",
                crate::tags::CREDENTIALS_SECRET
            )
        } else {
            return None;
        };
        Some(Error::CredentialsSecret {
            secret_id: secret_id.to_owned(),
            why,
        })
    }

    /// DescribeSecret for the targets not known from discovery (a failure is left for the
    /// secret's turn, which describes again or, when Secrets Manager did not answer, reports
    /// it).
    async fn describe_listed(&self, targets: &mut [Target]) {
        let described: Vec<Option<Result<SecretInfo>>> = futures::stream::iter(targets.iter())
            .map(|t| async move {
                match &t.info {
                    Some(_) => None,
                    None => Some(self.store.describe(&t.secret_id).await),
                }
            })
            .buffered(self.config.max_concurrency().get().max(8))
            .collect()
            .await;
        for (target, described) in targets.iter_mut().zip(described) {
            match described {
                Some(Ok(info)) => target.info = Some(info),
                Some(Err(e @ Error::SecretsManagerNoAnswer { .. })) => target.unanswered = Some(e),
                _ => {}
            }
        }
    }

    /// Reads AWSCURRENT of every known secret without a rotation in progress,
    /// [`BATCH_GET_MAX`] per `BatchGetSecretValue` call. A secret without an AWSCURRENT
    /// version has no value to read. What the batch could not read, the secret's turn reads.
    async fn read_batched(&self, targets: &mut [Target]) {
        let mut to_read = Vec::new();
        for target in targets.iter_mut() {
            let Some(info) = &target.info else {
                continue;
            };
            if info.has_pending() {
                continue;
            }
            if info.version_with(AWSCURRENT).is_none() {
                target.current = Current::Empty;
            } else {
                to_read.push(info.arn.clone());
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
            .buffer_unordered(self.config.max_concurrency().get())
            .collect()
            .await;
        let mut values: HashMap<String, BatchValue> = answers.into_iter().flatten().collect();
        for target in targets.iter_mut() {
            let Some(info) = &target.info else {
                continue;
            };
            match values.remove(&info.arn) {
                // The value must be the version the listing called AWSCURRENT: a rotation may
                // have moved the label in between (and moto 5.2's batch can return a stale
                // version after UpdateSecretVersionStage); otherwise it is read alone.
                Some(BatchValue::Value(value))
                    if info.version_with(AWSCURRENT) == Some(value.version_id.as_str()) =>
                {
                    target.current = Current::from(Some(value.record()));
                }
                Some(BatchValue::Value(_)) => {
                    tracing::info!(secret_id = %info.name, "the batch returned another version than AWSCURRENT; reading it alone");
                }
                Some(BatchValue::Error(message)) => {
                    tracing::warn!(secret_id = %info.name, error = %echo(&message), "the batch could not read this secret; reading it alone");
                }
                None => {}
            }
        }
    }

    /// One secret's turn: plan with what the tick read (and the room left, measured now),
    /// book the login slot of a due secret in urgency order, read what is missing and plan
    /// again, then act.
    async fn turn(&self, target: Target, users: &HashSet<String>) -> SecretResult {
        let Target {
            secret_id,
            info,
            current,
            unanswered,
        } = target;
        if let Some(error) = unanswered.or_else(|| {
            info.as_ref()
                .and_then(|info| self.credentials_secret(&secret_id, info, users))
        }) {
            tracing::error!(error = %error, "refresh failed");
            return SecretResult::failed(secret_id, None, &error);
        }
        let now = OffsetDateTime::now_utc();
        let spare = self.login.budget().spare(self.deadline);
        let facts = Facts {
            current: &current,
            rotation: info
                .as_ref()
                .map_or(Rotation::Idle, |info| rotation_of(info, Age::NotRead)),
            now,
            room: spare.map_or(Room::TooLate, Room::Spare),
        };
        let action = plan(&facts, &self.rules());
        let slot = match (&action, &info, spare) {
            (Action::Fresh, ..) => return self.fresh(secret_id, current.record(), now),
            (Action::Defer, ..) => {
                return self.deferred(
                    secret_id,
                    current.record(),
                    Duration::ZERO,
                    Deferral::NoTime,
                );
            }
            // The broker's logins are paused (iAdvize answered 429) past the time this one
            // could still start: no slot is booked for it.
            (Action::Refresh(_), Some(_), Some(spare))
                if self.login.paused_until().is_some_and(|until| {
                    until - now > time::Duration::try_from(spare).unwrap_or(time::Duration::MAX)
                }) =>
            {
                let until = self.login.paused_until();
                let wait = until.map_or(Duration::ZERO, |until| {
                    (until - now).try_into().unwrap_or_default()
                });
                return self.deferred(
                    secret_id,
                    current.record(),
                    wait,
                    Deferral::Throttled(until),
                );
            }
            // A due token needs a login: its slot is booked now, in urgency order.
            (Action::Refresh(_), Some(info), Some(spare)) => match self.login.book(info, spare) {
                Ok(slot) => slot,
                Err(wait) => {
                    return self.deferred(secret_id, current.record(), wait, Deferral::Paced);
                }
            },
            _ => Slot::Unbooked,
        };

        let arn = info.as_ref().map(|info| info.arn.clone());
        let known_record = current.record().cloned();
        let checked = self
            .check(&secret_id, info, current, action, slot, users)
            .await;
        if let Some(arn) = &arn {
            self.login.cancel_booking(arn);
        }
        // No login slot came early enough once the login was ready (a booking made without
        // the tick's knowledge): the next tick takes it first.
        if let Err(Error::LoginPaced { wait, .. }) = &checked.outcome {
            return self.deferred(secret_id, known_record.as_ref(), *wait, Deferral::Paced);
        }
        // The broker pauses its logins after iAdvize's 429: this login did not start (or
        // stopped retrying); the next tick or follow-up takes it.
        if let Err(Error::LoginThrottled { until, .. }) = &checked.outcome {
            let wait = until.map_or(Duration::ZERO, |until| {
                (until - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or_default()
            });
            return self.deferred(
                secret_id,
                known_record.as_ref(),
                wait,
                Deferral::Throttled(*until),
            );
        }
        let now = OffsetDateTime::now_utc();
        if let Some(name) = &checked.name {
            let seconds = checked
                .record
                .as_ref()
                .map_or(0, |r| r.remaining(now).as_secs());
            self.metrics.seconds_until_expiry(name, seconds);
        }
        let expires_at = checked.record.as_ref().map(|r| r.expires_at);
        match checked.outcome {
            Ok(outcome) => {
                tracing::info!(outcome = ?outcome, expires_at = expires_at.map_or_else(|| "unknown".to_owned(), rfc3339), "secret checked");
                SecretResult {
                    secret_id,
                    outcome,
                    expires_at,
                    error: None,
                    error_kind: None,
                    held_back: checked.held_back,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "refresh failed");
                SecretResult::failed(secret_id, expires_at, &e)
            }
        }
    }

    /// Reads what the plan is missing (then plans again), and performs the action.
    async fn check(
        &self,
        secret_id: &str,
        info: Option<SecretInfo>,
        current: Current,
        action: Action,
        slot: Slot,
        users: &HashSet<String>,
    ) -> Checked {
        let replan = info.is_none() || action == Action::Read;
        // A secret the tick did not read yet: its own login feeds its login tag to the pacer.
        let slot = if info.is_none() { Slot::Open } else { slot };
        let (info, current) = match self.read_value(secret_id, info, current).await {
            Ok(read) => read,
            Err(e) => {
                return Checked {
                    name: None,
                    record: None,
                    outcome: Err(e),
                    held_back: None,
                };
            }
        };
        // Read only now (the tick could not describe it before): the same refusal.
        if let Some(error) = self.credentials_secret(secret_id, &info, users) {
            return Checked {
                name: None,
                record: None,
                outcome: Err(error),
                held_back: None,
            };
        }
        let mut checked = Checked {
            name: Some(info.name.clone()),
            record: current.record().cloned(),
            outcome: Ok(Outcome::Fresh),
            held_back: None,
        };
        let action = if replan {
            let age = match self.pending_age(&info).await {
                Ok(age) => age,
                Err(e) => {
                    checked.outcome = Err(e);
                    return checked;
                }
            };
            let facts = Facts {
                current: &current,
                rotation: rotation_of(&info, age),
                now: OffsetDateTime::now_utc(),
                room: Room::Admitted,
            };
            plan(&facts, &self.rules())
        } else {
            action
        };
        let refreshing = matches!(
            action,
            Action::Refresh(_) | Action::CleanUp { then: Some(_), .. }
        );
        checked.outcome = match self.act(&info, action, slot).await {
            Ok((outcome, record)) => {
                if record.is_some() {
                    checked.record = record;
                }
                Ok(outcome)
            }
            // A login held back because this secret's previous login attempt started moments
            // ago is no failure while the current token still works: the invocation that
            // started it is refreshing it. The result says so, and when the next may start.
            Err(
                e @ Error::LoginSpacing {
                    since, interval, ..
                },
            ) if refreshing
                && current
                    .record()
                    .is_some_and(|r| !r.is_expired(OffsetDateTime::now_utc())) =>
            {
                tracing::info!(error = %e, "login held back; the current token is still valid");
                let next = OffsetDateTime::now_utc() + interval.saturating_sub(since);
                checked.held_back = Some(HeldBack {
                    kind: e.kind(),
                    reason: e.to_string(),
                    next_login_at: rfc3339(next),
                });
                Ok(Outcome::InProgress)
            }
            Err(e) => Err(e),
        };
        checked
    }

    /// The secret's stages and AWSCURRENT, read alone when the tick has not read them.
    async fn read_value(
        &self,
        secret_id: &str,
        info: Option<SecretInfo>,
        current: Current,
    ) -> Result<(SecretInfo, Current)> {
        let info = match info {
            Some(info) => info,
            None => self.store.describe(secret_id).await?,
        };
        let current = match current {
            Current::NotRead => read_current(self.store, &info).await?,
            read => read,
        };
        Ok((info, current))
    }

    /// How old the pending version of a rotation under way is (`ListSecretVersionIds`);
    /// [`Age::NotRead`] when there is none.
    async fn pending_age(&self, info: &SecretInfo) -> Result<Age> {
        let Some(version) = info.pending_rotation() else {
            return Ok(Age::NotRead);
        };
        let created = self.store.version_created(&info.arn, version).await?;
        Ok(created.map_or(Age::Unknown, |created| {
            Age::Known(OffsetDateTime::now_utc() - created)
        }))
    }

    /// Performs a planned action on a secret that was read. Returns the outcome and the new
    /// AWSCURRENT record, when the action made one.
    async fn act(
        &self,
        info: &SecretInfo,
        action: Action,
        slot: Slot,
    ) -> Result<(Outcome, Option<TokenRecord>)> {
        match action {
            Action::Fresh => Ok((Outcome::Fresh, None)),
            Action::CleanUp { version, then } => {
                // The token is already AWSCURRENT: only finishSecret's last move is missing.
                tracing::warn!(
                    version,
                    "a rotation stopped before removing AWSPENDING from the new current version; removing it"
                );
                self.steps().remove_pending(info, &version).await?;
                match then {
                    None => Ok((Outcome::Resumed, None)),
                    Some(reason) => self.refresh(info, reason, slot).await,
                }
            }
            Action::InProgress { version } => {
                tracing::info!(version, "a rotation is in progress; leaving it alone");
                Ok((Outcome::InProgress, None))
            }
            Action::Resume { version } => {
                tracing::warn!(version, "resuming a rotation that has not finished");
                let record = self
                    .steps()
                    .resume(info, &version, slot, self.deadline)
                    .await?;
                Ok((Outcome::Resumed, Some(record)))
            }
            Action::Refresh(reason) => self.refresh(info, reason, slot).await,
            // After a read with the room admitted the planner neither reads nor defers; were
            // it to, changing nothing is the safe answer.
            Action::Read | Action::Defer => Ok((Outcome::Deferred, None)),
        }
    }

    /// Refreshes a due token (see [`Tick::publish`]). A login held back by the login spacing
    /// is an error here; [`Tick::check`] makes it an `in_progress` result while the current
    /// token still works.
    async fn refresh(
        &self,
        info: &SecretInfo,
        reason: DueReason,
        slot: Slot,
    ) -> Result<(Outcome, Option<TokenRecord>)> {
        tracing::info!(reason = %reason, "token is due; refreshing");
        // A login held back by the login spacing comes back as an error: `check` words it.
        let record = self.publish(info, slot).await?;
        Ok((Outcome::Refreshed, Some(record)))
    }

    /// The tick's refresh: log in, verify the new token in memory, then publish it with one
    /// `PutSecretValue(VersionStages=["AWSCURRENT"])`. A token iAdvize rejects is never
    /// written, and there is no AWSPENDING window for a crash to leave behind.
    async fn publish(&self, secret: &SecretInfo, slot: Slot) -> Result<TokenRecord> {
        let record = self.login.login(secret, slot, self.deadline, true).await?;
        if let Err(reason) = self
            .login
            .verify_new_token(&secret.name, &record, self.deadline)
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

    /// The result of a fresh secret.
    fn fresh(
        &self,
        secret_id: String,
        record: Option<&TokenRecord>,
        now: OffsetDateTime,
    ) -> SecretResult {
        let seconds = record.map_or(0, |r| r.remaining(now).as_secs());
        self.metrics.seconds_until_expiry(&secret_id, seconds);
        SecretResult {
            secret_id,
            outcome: Outcome::Fresh,
            expires_at: record.map(|r| r.expires_at),
            error: None,
            error_kind: None,
            held_back: None,
        }
    }

    /// The result of a secret left for the next tick (`why`: what held it back): a failure
    /// only when its token is expired (or missing) or expires before the next tick.
    fn deferred(
        &self,
        secret_id: String,
        record: Option<&TokenRecord>,
        wait: Duration,
        why: Deferral,
    ) -> SecretResult {
        let now = OffsetDateTime::now_utc();
        let lasts = record.is_some_and(|r| r.remaining(now) > NEXT_TICK);
        let error = (!lasts).then(|| {
            format!(
                "deferred: {}, and its token is missing, expired or expires before the next tick",
                why.reason()
            )
        });
        if lasts {
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                reason = why.reason(),
                "deferred to the next tick"
            );
        } else {
            tracing::error!(
                wait_ms = wait.as_millis() as u64,
                reason = why.reason(),
                "deferred to the next tick, but the token will not last until then"
            );
        }
        if let Some(record) = record {
            self.metrics
                .seconds_until_expiry(&secret_id, record.remaining(now).as_secs());
        }
        SecretResult {
            secret_id,
            outcome: Outcome::Deferred,
            expires_at: record.map(|r| r.expires_at),
            error_kind: error.as_ref().map(|_| why.kind()),
            error,
            held_back: None,
        }
    }

    fn emit_fleet_metrics(&self, results: &[SecretResult], logins_before: u64) {
        let now = OffsetDateTime::now_utc();
        let count =
            |f: &dyn Fn(&SecretResult) -> bool| results.iter().filter(|r| f(r)).count() as u64;
        let min_seconds_until_expiry = results
            .iter()
            .map(|r| {
                // To the second, as the answer shows it.
                r.expires_at
                    .map(|at| at.replace_nanosecond(0).unwrap_or(at))
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
}
