//! Reading the token, for Rust consumers: [`TokenSource`] reads the token secret's AWSCURRENT
//! value once per token lifetime and hands out the cached token until it nears its expiry.
//!
//! The rules every consumer follows, whatever its language (see the README):
//!
//! - read the token secret, never log in to iAdvize yourself;
//! - cache the token until `expires_at` minus a margin, not per request;
//! - when a read fails (throttling, network, no answer), keep using the cached token while it
//!   has not expired, and read again after a backoff, not on every call;
//! - bound every read: a Secrets Manager call that never answers must not hold the caller;
//! - after a `401` from iAdvize, read the secret again once (the broker may have rotated the
//!   token); if the new token is refused too, fail: do not loop;
//! - if that read returns the very token iAdvize refused, report it to the broker's report
//!   queue (`IADVIZE_REPORT_QUEUE_URL`, see [`crate::report`]) and wait, with a backoff and a
//!   bound, for the broker to publish a new one. Without a report queue, say once how to set
//!   one up.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::report;
use crate::token::{AccessToken, RecordError, TokenRecord, rfc3339};

/// The stage consumers read: the token the broker published last.
pub const AWSCURRENT: &str = "AWSCURRENT";

/// Default time before `expires_at` at which a cached token is read again.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Default time a token that is already inside the margin is kept before reading again
/// (the broker is late; reading on every call would not make it earlier).
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Default wait after a failed read before the next one; it doubles with each failure in a
/// row, up to [`DEFAULT_MAX_RETRY_BACKOFF`].
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Default longest wait between two reads while reads keep failing.
pub const DEFAULT_MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// Default longest wait for one Secrets Manager or SQS call (a read normally answers in well
/// under a second; this leaves room for the SDK's own retries).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// After a report, default wait before reading the secret again; it doubles with each read
/// that still finds the refused token, up to [`MAX_REPORT_POLL`].
pub const DEFAULT_REPORT_POLL: Duration = Duration::from_secs(1);

/// After a report, the longest wait between two reads of the secret.
pub const MAX_REPORT_POLL: Duration = Duration::from_secs(5);

/// After a report, default longest time to wait for the broker's new token (the broker
/// normally publishes one within seconds of the report).
pub const DEFAULT_REPORT_WAIT: Duration = Duration::from_secs(30);

/// Why no usable token could be read. Messages name the secret, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The secret does not exist (or the caller may not see it).
    NotFound {
        /// The secret asked for.
        secret_id: String,
    },

    /// The secret exists but the broker has not stored a token in it yet.
    NotFilled {
        /// The secret asked for.
        secret_id: String,
    },

    /// The AWSCURRENT value is not a token record.
    Malformed {
        /// The secret asked for.
        secret_id: String,
        /// What is wrong with the value (never the value).
        reason: RecordError,
    },

    /// The stored token has already expired: the broker has not refreshed it in time.
    Expired {
        /// The secret asked for.
        secret_id: String,
        /// When it expired (RFC 3339).
        expires_at: String,
    },

    /// Secrets Manager could not be asked (network, permissions, throttling, …).
    SecretsManager {
        /// The secret asked for.
        secret_id: String,
        /// The SDK's explanation.
        message: String,
    },

    /// Secrets Manager did not answer within the call time-out (or the SDK's own time-outs),
    /// and no cached token that has not expired was left to serve.
    NoAnswer {
        /// The secret asked for.
        secret_id: String,
        /// The API operation, e.g. `GetSecretValue`.
        operation: &'static str,
        /// How long the call waited.
        waited: Duration,
    },

    /// iAdvize refused the token the secret holds, the source reported it to the broker's
    /// report queue, and the secret held no other token when the report wait ran out: the
    /// broker found the token valid (the `401` came from elsewhere: a permission, a wrong
    /// platform) or could not replace it.
    Rejected {
        /// The secret asked for.
        secret_id: String,
        /// How long the source waited for a new token after the report.
        waited: Duration,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::NotFound { secret_id } => write!(
                f,
                "token secret {secret_id} was not found; check the name/ARN, the region and that this role may call secretsmanager:GetSecretValue on it"
            ),
            TokenError::NotFilled { secret_id } => write!(
                f,
                "token secret {secret_id} holds no token yet: the broker has not filled it; check the broker's logs or run `iadvize-token refresh {secret_id}`"
            ),
            TokenError::Malformed { secret_id, reason } => write!(
                f,
                "token secret {secret_id}: the AWSCURRENT value is {reason}; only the broker should write this secret (run `iadvize-token refresh --force {secret_id}` to replace it)"
            ),
            TokenError::Expired {
                secret_id,
                expires_at,
            } => write!(
                f,
                "token secret {secret_id}: the stored token expired at {expires_at}; the broker is not refreshing it (run `iadvize-token status {secret_id}`)"
            ),
            TokenError::SecretsManager { secret_id, message } => write!(
                f,
                "token secret {secret_id}: Secrets Manager GetSecretValue failed: {message}"
            ),
            TokenError::NoAnswer {
                secret_id,
                operation,
                waited,
            } => write!(
                f,
                "token secret {secret_id}: Secrets Manager did not answer {operation} within {:?}, and no unexpired token is cached; check the network path to Secrets Manager (VPC endpoint, NAT, proxy)",
                Duration::from_millis(waited.as_millis().try_into().unwrap_or(u64::MAX))
            ),
            TokenError::Rejected { secret_id, waited } => write!(
                f,
                "token secret {secret_id}: iAdvize refused its token; it was reported to the broker, but the secret held no new token after {:?}: either iAdvize accepts the token (the 401 came from elsewhere: permissions, platform) or the broker could not replace it (run `iadvize-token status {secret_id}`)",
                Duration::from_millis(waited.as_millis().try_into().unwrap_or(u64::MAX))
            ),
        }
    }
}

impl std::error::Error for TokenError {}

/// What the cache holds: the record, the secret it was read from, and when to read the secret
/// again.
#[derive(Clone)]
struct Cached {
    /// The secret id the record was read for, exactly as asked: an entry is only ever served
    /// for that id.
    secret_id: String,
    /// The secret's full ARN, as `GetSecretValue` answered it: what a report names, so that
    /// consumers naming one secret differently (name, partial or full ARN) report it in one
    /// message group.
    arn: Option<String>,
    record: TokenRecord,
    read_again_at: OffsetDateTime,
}

/// The last read failed: its error, how many reads in a row failed, and when to try again.
struct Failure {
    error: TokenError,
    in_a_row: u32,
    retry_at: Instant,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    failure: Option<Failure>,
    /// Completed reads (successful or not), to tell waiters that a read happened meanwhile.
    reads_done: u64,
    /// A token a caller said iAdvize refused, until the read that deals with it.
    rejected: Option<AccessToken>,
}

impl State {
    /// Whether the record just read holds the token a caller said iAdvize refused; forgets
    /// that token either way (the read deals with it).
    fn take_rejected(&mut self, read: &TokenRecord) -> bool {
        self.rejected
            .take()
            .is_some_and(|rejected| rejected.expose() == read.access_token.expose())
    }

    /// Drops a cached entry that was not read for `secret_id`, so that no token is ever
    /// served for a secret it does not belong to.
    fn keep_only(&mut self, secret_id: &str) {
        if self
            .cached
            .as_ref()
            .is_some_and(|c| c.secret_id != secret_id)
        {
            self.cached = None;
        }
    }

    /// The answer when no read is due: the cached token while it is fresh, or, while a failed
    /// read's backoff runs, the cached token if it has not expired, else that read's error.
    fn without_reading(
        &self,
        now: OffsetDateTime,
        clock: Instant,
    ) -> Option<Result<TokenRecord, TokenError>> {
        if let Some(cached) = &self.cached
            && now < cached.read_again_at
        {
            return Some(Ok(cached.record.clone()));
        }
        let failure = self.failure.as_ref().filter(|f| clock < f.retry_at)?;
        Some(match self.usable(now) {
            Some(record) => Ok(record),
            None => Err(failure.error.clone()),
        })
    }

    /// The cached token if it has not expired yet, even when it is due for a new read.
    fn usable(&self, now: OffsetDateTime) -> Option<TokenRecord> {
        self.cached
            .as_ref()
            .filter(|c| !c.record.is_expired(now))
            .map(|c| c.record.clone())
    }
}

/// A cached, single-flight reader of one token secret.
///
/// One Secrets Manager read per token lifetime: the record is kept until `expires_at` minus
/// the margin (default 5 minutes). Concurrent callers on a cold or stale cache share one
/// read. Every Secrets Manager call is bounded by the call time-out (10 s by default), whatever
/// client it was given. When a read fails (throttling, network, permissions, no answer in
/// time), the cached token keeps being served until it actually expires, and the secret is
/// read again after a backoff (1 s, doubling, at most 30 s by default), never once per caller.
/// It never logs in to iAdvize.
/// Share one `TokenSource` per process (it is `Send + Sync`; wrap it in an `Arc` or a
/// `static`).
///
/// ```no_run
/// use iadvize_token_consumer::TokenSource;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenSource::from_env("iadvize/token").await;
///
/// let http = reqwest::Client::new();
/// let query = serde_json::json!({"query": "{ me { username } }"});
/// let mut token = tokens.token().await?;
/// let mut answer = http
///     .post("https://api.iadvize.com/graphql")
///     .bearer_auth(token.expose())
///     .json(&query)
///     .send()
///     .await?;
/// if answer.status() == reqwest::StatusCode::UNAUTHORIZED {
///     // The broker may have rotated the token: read the secret again, once.
///     tokens.invalidate_token(&token);
///     token = tokens.token().await?;
///     answer = http
///         .post("https://api.iadvize.com/graphql")
///         .bearer_auth(token.expose())
///         .json(&query)
///         .send()
///         .await?;
/// }
/// println!("{}", answer.error_for_status()?.text().await?);
/// # Ok(())
/// # }
/// ```
///
/// The token's `Debug` output never shows it:
///
/// ```
/// use iadvize_token_consumer::AccessToken;
/// let token = AccessToken::new("s3cr3t");
/// assert_eq!(format!("{token:?}"), "AccessToken([REDACTED])");
/// ```
pub struct TokenSource {
    client: Client,
    secret_id: String,
    margin: Duration,
    recheck_interval: Duration,
    retry_backoff: Duration,
    max_retry_backoff: Duration,
    call_timeout: Duration,
    report_queue: Option<ReportQueue>,
    report_poll: Duration,
    report_wait: Duration,
    state: Mutex<State>,
    /// Held by the one caller that reads the secret; the others wait on it (or, while a
    /// token that has not expired is cached, take that instead of waiting).
    read_gate: tokio::sync::Mutex<()>,
    reads: AtomicU64,
    reports: AtomicU64,
    /// Set once the source said how to enable reports (or why its report failed).
    said_hint: AtomicBool,
}

/// Where reports go: the SQS client and the queue's URL.
#[derive(Clone)]
#[cfg_attr(not(feature = "report"), allow(dead_code))]
struct ReportQueue {
    #[cfg(feature = "report")]
    client: aws_sdk_sqs::Client,
    url: String,
}

impl fmt::Debug for ReportQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportQueue")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("secret_id", &self.secret_id)
            .field("margin", &self.margin)
            .field("reads", &self.reads())
            .field("report_queue", &self.report_queue)
            .field("reports", &self.reports())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenSource`] with non-default settings.
#[derive(Debug)]
pub struct TokenSourceBuilder {
    client: Client,
    secret_id: String,
    margin: Duration,
    recheck_interval: Duration,
    retry_backoff: Duration,
    max_retry_backoff: Duration,
    call_timeout: Duration,
    report_queue: Option<ReportQueue>,
    report_poll: Duration,
    report_wait: Duration,
}

impl TokenSourceBuilder {
    /// How long before `expires_at` the secret is read again (default 5 minutes).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// When the secret holds a token that is already inside the margin (the broker is late),
    /// how long to use it before reading again (default 30 s; never past its expiry).
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck_interval = interval;
        self
    }

    /// After a failed read, how long to wait before the next one (`first`, default 1 s),
    /// doubling with each failure in a row up to `max` (default 30 s), plus up to 25 % so
    /// that many processes do not retry in step. Meanwhile callers get the cached token while
    /// it has not expired, else the failed read's error.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.max_retry_backoff = max.max(first);
        self
    }

    /// The longest wait for one Secrets Manager call (default 10 s), whatever time-outs the
    /// client has. A call without an answer by then counts as a failed read: callers get the
    /// cached token while it has not expired, else [`TokenError::NoAnswer`].
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Reports tokens that iAdvize refuses to the broker's report queue at `queue_url` (an
    /// SQS FIFO queue; the value of `IADVIZE_REPORT_QUEUE_URL`), sent with `client`. The
    /// consumer's role needs `sqs:SendMessage` on it. [`TokenSource::from_env`] sets this from
    /// `IADVIZE_REPORT_QUEUE_URL`. Needs the `report` feature (on by default).
    #[cfg(feature = "report")]
    pub fn report_queue(
        mut self,
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
    ) -> Self {
        self.report_queue = Some(ReportQueue {
            client,
            url: queue_url.into(),
        });
        self
    }

    /// After a report, how long to wait before reading the secret again (`first`, default
    /// 1 s, doubling up to 5 s) and how long to wait for a new token in all (`bound`, default
    /// 30 s) before failing with [`TokenError::Rejected`].
    pub fn report_wait(mut self, first: Duration, bound: Duration) -> Self {
        self.report_poll = first;
        self.report_wait = bound;
        self
    }

    /// The source.
    pub fn build(self) -> TokenSource {
        TokenSource {
            client: self.client,
            secret_id: self.secret_id,
            margin: self.margin,
            recheck_interval: self.recheck_interval,
            retry_backoff: self.retry_backoff,
            max_retry_backoff: self.max_retry_backoff,
            call_timeout: self.call_timeout,
            report_queue: self.report_queue,
            report_poll: self.report_poll,
            report_wait: self.report_wait,
            state: Mutex::new(State::default()),
            read_gate: tokio::sync::Mutex::new(()),
            reads: AtomicU64::new(0),
            reports: AtomicU64::new(0),
            said_hint: AtomicBool::new(false),
        }
    }
}

impl TokenSource {
    /// A source for the token secret `secret_id` (name or ARN), with the default margin.
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self::builder(client, secret_id).build()
    }

    /// A builder, to change the margin or the backoff.
    pub fn builder(client: Client, secret_id: impl Into<String>) -> TokenSourceBuilder {
        TokenSourceBuilder {
            client,
            secret_id: secret_id.into(),
            margin: DEFAULT_MARGIN,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            max_retry_backoff: DEFAULT_MAX_RETRY_BACKOFF,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            report_queue: None,
            report_poll: DEFAULT_REPORT_POLL,
            report_wait: DEFAULT_REPORT_WAIT,
        }
    }

    /// A source using the normal AWS configuration chain (region, credentials, SSO and
    /// profiles, `AWS_ENDPOINT_URL`, …), reporting refused tokens to the queue in
    /// `IADVIZE_REPORT_QUEUE_URL` when it is set (and the `report` feature is on). Needs the
    /// `from-env` feature (on by default).
    #[cfg(feature = "from-env")]
    pub async fn from_env(secret_id: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        #[allow(unused_mut)]
        let mut builder = Self::builder(Client::new(&config), secret_id);
        #[cfg(feature = "report")]
        if let Some(url) = std::env::var(report::REPORT_QUEUE_URL_ENV)
            .ok()
            .filter(|url| !url.trim().is_empty())
        {
            builder = builder.report_queue(aws_sdk_sqs::Client::new(&config), url.trim());
        }
        builder.build()
    }

    /// The secret this source reads.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The margin before expiry at which the secret is read again.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// How many `GetSecretValue` requests this source has sent.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// How many reports of a refused token this source has sent (accepted by SQS).
    pub fn reports(&self) -> u64 {
        self.reports.load(Ordering::Relaxed)
    }

    /// The report queue's URL, if the source reports refused tokens.
    pub fn report_queue_url(&self) -> Option<&str> {
        self.report_queue.as_ref().map(|queue| queue.url.as_str())
    }

    /// The current access token, from the cache or, when it is cold or near expiry, from
    /// one read of the secret shared by all concurrent callers.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        self.record().await.map(|record| record.access_token)
    }

    /// The current token record (token, `issued_at`, `expires_at`), as [`TokenSource::token`].
    pub async fn record(&self) -> Result<TokenRecord, TokenError> {
        let seen = {
            let mut state = self.lock_state();
            state.keep_only(&self.secret_id);
            if let Some(answer) = state.without_reading(OffsetDateTime::now_utc(), Instant::now()) {
                return answer;
            }
            state.reads_done
        };
        let _gate = match self.read_gate.try_lock() {
            Ok(gate) => gate,
            Err(_) => {
                // Another caller is reading: a token that has not expired is good enough
                // meanwhile (Secrets Manager may be slow or retrying).
                if let Some(record) = self.lock_state().usable(OffsetDateTime::now_utc()) {
                    return Ok(record);
                }
                self.read_gate.lock().await
            }
        };
        {
            // Whoever held the gate before us may have just read the secret.
            let state = self.lock_state();
            if let Some(answer) = state.without_reading(OffsetDateTime::now_utc(), Instant::now()) {
                return answer;
            }
            if state.reads_done != seen
                && let Some(failure) = &state.failure
            {
                return Err(failure.error.clone());
            }
        }
        let result = match self.read().await {
            Ok(cached) if self.lock_state().take_rejected(&cached.record) => {
                self.after_rejection(cached).await
            }
            other => other,
        };
        let mut state = self.lock_state();
        state.reads_done += 1;
        match result {
            Ok(cached) => {
                state.cached = Some(cached.clone());
                state.failure = None;
                Ok(cached.record)
            }
            Err(error) => {
                let now = OffsetDateTime::now_utc();
                let in_a_row = state.failure.as_ref().map_or(1, |f| f.in_a_row + 1);
                let mut wait = self.backoff(in_a_row);
                if let Some(record) = state.usable(now) {
                    // Try once more right at expiry rather than fail for a whole backoff.
                    wait = wait.min(record.remaining(now));
                }
                state.failure = Some(Failure {
                    error: error.clone(),
                    in_a_row,
                    retry_at: Instant::now() + wait,
                });
                match state.usable(now) {
                    Some(record) => Ok(record),
                    None => {
                        state.cached = None;
                        Err(error)
                    }
                }
            }
        }
    }

    /// Forgets the cached token and any failed read: the next call reads the secret again.
    /// Call it after iAdvize answered `401` to the token; it never logs in. Prefer
    /// [`TokenSource::invalidate_token`] when many requests may fail at once.
    pub fn invalidate(&self) {
        let mut state = self.lock_state();
        if let Some(cached) = state.cached.take() {
            state.rejected = Some(cached.record.access_token);
        }
        state.failure = None;
    }

    /// Forgets the cached token only if it is `rejected`, so that many requests refused with
    /// the same old token cause one read, not one each. The next call reads the secret at
    /// once, even during a failed read's backoff. If that read finds `rejected` again (the
    /// broker has not replaced it), the source reports it to the report queue, if it has one,
    /// and waits for a new token (see [`TokenSourceBuilder::report_wait`]); without a report
    /// queue it says once how to set one up and hands out the same token.
    pub fn invalidate_token(&self, rejected: &AccessToken) {
        let mut state = self.lock_state();
        match &state.cached {
            Some(c) if c.record.access_token.expose() == rejected.expose() => {
                state.cached = None;
                state.failure = None;
                state.rejected = Some(rejected.clone());
            }
            // Another caller refused with the same token got here first (or nothing is cached):
            // the read to come deals with it.
            None => state.rejected = Some(rejected.clone()),
            // Already replaced by a newer token.
            Some(_) => {}
        }
    }

    /// The read found the token a caller said iAdvize refused: report it and wait for a new
    /// one, or, without a working report queue, say once how to get one and keep it.
    async fn after_rejection(&self, cached: Cached) -> Result<Cached, TokenError> {
        let Some(queue) = &self.report_queue else {
            self.say_once(&report::enable_hint(&self.secret_id));
            return Ok(cached);
        };
        let reported_id = cached.arn.as_deref().unwrap_or(&self.secret_id);
        if let Err(problem) = self
            .send_report(queue, reported_id, &cached.record.access_token)
            .await
        {
            self.say_once(&format!(
                "iAdvize refused the token of {} and the secret still holds it, but the report to {} failed: {problem}",
                self.secret_id, queue.url
            ));
            return Ok(cached);
        }
        let started = Instant::now();
        let mut poll = self.report_poll;
        loop {
            let left = self.report_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(TokenError::Rejected {
                    secret_id: self.secret_id.clone(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(poll.min(left)).await;
            // A failed read or the same token: keep waiting until the bound.
            if let Ok(read) = self.read().await
                && read.record.access_token.expose() != cached.record.access_token.expose()
            {
                return Ok(read);
            }
            poll = poll
                .saturating_mul(2)
                .min(MAX_REPORT_POLL.max(self.report_poll));
        }
    }

    /// Sends one report of `token` to the report queue, bounded by the call time-out.
    #[cfg(feature = "report")]
    async fn send_report(
        &self,
        queue: &ReportQueue,
        secret_id: &str,
        token: &AccessToken,
    ) -> Result<(), String> {
        let request = queue
            .client
            .send_message()
            .queue_url(&queue.url)
            .message_group_id(report::message_group_id(secret_id))
            .message_body(report::report_body(secret_id, token))
            .send();
        match tokio::time::timeout(self.call_timeout, request).await {
            Err(_) => Err(format!(
                "SQS did not answer SendMessage within {:?}",
                self.call_timeout
            )),
            Ok(Err(e)) if e.code().is_some_and(|code| code.contains("AccessDenied")) => {
                Err(format!(
                    "this consumer may not send to it ({}): grant its role sqs:SendMessage on that queue",
                    e.code().unwrap_or_default()
                ))
            }
            Ok(Err(e)) => Err(format!("SendMessage failed: {}", DisplayErrorContext(&e))),
            Ok(Ok(_)) => {
                self.reports.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Without the `report` feature there is no SQS client to send with.
    #[cfg(not(feature = "report"))]
    async fn send_report(
        &self,
        _queue: &ReportQueue,
        _secret_id: &str,
        _token: &AccessToken,
    ) -> Result<(), String> {
        Err("this build of iadvize-token-consumer has no `report` feature".to_owned())
    }

    /// Logs `message` as a warning the first time only, so a consumer that keeps getting
    /// `401`s does not flood its logs.
    fn say_once(&self, message: &str) {
        if !self.said_hint.swap(true, Ordering::Relaxed) {
            tracing::warn!(secret_id = %self.secret_id, "{message}");
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere cannot leave it
        // half-updated: a poisoned lock is safe to use.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The wait after the `in_a_row`-th failed read in a row.
    fn backoff(&self, in_a_row: u32) -> Duration {
        lengthen(backoff(
            self.retry_backoff,
            self.max_retry_backoff,
            in_a_row,
        ))
    }

    /// Runs one Secrets Manager call for at most the call time-out. A call that runs out of
    /// time is dropped (which cancels its request); so is one the SDK's own time-outs ended.
    async fn bounded<T, E, R>(
        &self,
        operation: &'static str,
        call: impl std::future::IntoFuture<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<Result<T, SdkError<E, R>>, TokenError> {
        let started = Instant::now();
        let no_answer = || TokenError::NoAnswer {
            secret_id: self.secret_id.clone(),
            operation,
            waited: started.elapsed(),
        };
        match tokio::time::timeout(self.call_timeout, call.into_future()).await {
            Err(_) => Err(no_answer()),
            Ok(Err(SdkError::TimeoutError(_))) => Err(no_answer()),
            Ok(Err(SdkError::DispatchFailure(f))) if f.is_timeout() => Err(no_answer()),
            Ok(answer) => Ok(answer),
        }
    }

    /// One `GetSecretValue` of AWSCURRENT, parsed and checked.
    async fn read(&self) -> Result<Cached, TokenError> {
        let secret_id = self.secret_id.clone();
        self.reads.fetch_add(1, Ordering::Relaxed);
        let request = self
            .client
            .get_secret_value()
            .secret_id(&secret_id)
            .version_stage(AWSCURRENT)
            .send();
        let answer = self.bounded("GetSecretValue", request).await?;
        let out = match answer {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                return Err(self.not_found(e.message().unwrap_or_default()).await?);
            }
            Err(e) => {
                return Err(TokenError::SecretsManager {
                    secret_id,
                    message: DisplayErrorContext(&e).to_string(),
                });
            }
        };
        let value = match (out.secret_string(), out.secret_binary()) {
            (Some(value), _) => value,
            // Stored with `--secret-binary`: say what is there rather than "not filled".
            (None, Some(binary)) => {
                return Err(TokenError::Malformed {
                    secret_id,
                    reason: RecordError::Shape(format!(
                        "binary data (SecretBinary, {} bytes) instead of a JSON string",
                        binary.as_ref().len()
                    )),
                });
            }
            (None, None) => "",
        };
        if is_placeholder(value) {
            return Err(TokenError::NotFilled { secret_id });
        }
        let record = TokenRecord::parse(value).map_err(|reason| TokenError::Malformed {
            secret_id: secret_id.clone(),
            reason,
        })?;
        let now = OffsetDateTime::now_utc();
        if record.is_expired(now) {
            return Err(TokenError::Expired {
                secret_id,
                expires_at: rfc3339(record.expires_at),
            });
        }
        let read_again_at = read_again_at(&record, now, self.margin, self.recheck_interval);
        Ok(Cached {
            secret_id,
            arn: out.arn().map(str::to_owned),
            record,
            read_again_at,
        })
    }

    /// Tells a missing secret from one without a value. Secrets Manager says "can't find the
    /// specified secret value" for the latter; when the message does not tell, a
    /// `DescribeSecret` does (if the caller may call it).
    async fn not_found(&self, message: &str) -> Result<TokenError, TokenError> {
        let secret_id = self.secret_id.clone();
        if message.contains("secret value") {
            return Ok(TokenError::NotFilled { secret_id });
        }
        let request = self.client.describe_secret().secret_id(&secret_id).send();
        Ok(match self.bounded("DescribeSecret", request).await? {
            Ok(_) => TokenError::NotFilled { secret_id },
            Err(_) => TokenError::NotFound { secret_id },
        })
    }
}

/// `first` doubled for each failed read in a row after the first, at most `max`.
fn backoff(first: Duration, max: Duration, in_a_row: u32) -> Duration {
    first
        .saturating_mul(1 << in_a_row.saturating_sub(1).min(16))
        .min(max)
}

/// `wait` plus up to 25 %, from the clock's nanoseconds: enough to keep processes that failed
/// together from retrying in step, without a random number crate.
fn lengthen(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    wait + wait.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// When to read the secret again: `expires_at - margin`; for a token already inside the
/// margin, after `recheck` (but never past its expiry).
fn read_again_at(
    record: &TokenRecord,
    now: OffsetDateTime,
    margin: Duration,
    recheck: Duration,
) -> OffsetDateTime {
    let normal = record.expires_at - margin;
    if normal > now {
        normal
    } else {
        (now + recheck).min(record.expires_at)
    }
}

/// A value that stands for "no token yet": empty, or an empty JSON object.
fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || serde_json::from_str::<serde_json::Value>(value)
            .is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(expires_in: u64, issued: OffsetDateTime) -> TokenRecord {
        TokenRecord::new(AccessToken::new("t"), issued, expires_in)
    }

    #[test]
    fn a_token_is_cached_until_the_margin_before_expiry() {
        let now = datetime!(2026-11-26 12:00 UTC);
        let r = record(86400, now);
        let at = read_again_at(&r, now, DEFAULT_MARGIN, DEFAULT_RECHECK_INTERVAL);
        assert_eq!(at, datetime!(2026-11-27 11:55 UTC));
    }

    #[test]
    fn a_token_inside_the_margin_is_rechecked_soon_but_not_after_it_expires() {
        let now = datetime!(2026-11-26 12:00 UTC);
        let r = record(120, now);
        let at = read_again_at(&r, now, DEFAULT_MARGIN, DEFAULT_RECHECK_INTERVAL);
        assert_eq!(at, now + Duration::from_secs(30));
        let r = record(10, now);
        let at = read_again_at(&r, now, DEFAULT_MARGIN, DEFAULT_RECHECK_INTERVAL);
        assert_eq!(at, r.expires_at);
    }

    fn state(record: TokenRecord, read_again_at: OffsetDateTime) -> State {
        State {
            cached: Some(Cached {
                secret_id: "team/a".into(),
                arn: None,
                record,
                read_again_at,
            }),
            ..State::default()
        }
    }

    fn throttled(retry_at: Instant) -> Failure {
        Failure {
            error: TokenError::SecretsManager {
                secret_id: "s".into(),
                message: "ThrottlingException".into(),
            },
            in_a_row: 1,
            retry_at,
        }
    }

    #[test]
    fn a_fresh_token_is_served_without_reading() {
        let now = OffsetDateTime::now_utc();
        let s = state(record(86400, now), now + Duration::from_secs(60));
        assert!(matches!(
            s.without_reading(now, Instant::now()),
            Some(Ok(_))
        ));
    }

    #[test]
    fn a_due_token_is_read_again_when_no_read_failed() {
        let now = OffsetDateTime::now_utc();
        let s = state(record(86400, now), now);
        assert!(s.without_reading(now, Instant::now()).is_none());
    }

    #[test]
    fn during_a_failed_reads_backoff_a_due_token_that_has_not_expired_is_served() {
        let now = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let mut s = state(record(86400, now), now);
        s.failure = Some(throttled(clock + Duration::from_secs(1)));
        assert!(matches!(s.without_reading(now, clock), Some(Ok(_))));
        // Once the backoff has run out, read again.
        assert!(
            s.without_reading(now, clock + Duration::from_secs(2))
                .is_none()
        );
    }

    #[test]
    fn during_a_failed_reads_backoff_an_expired_token_gives_that_reads_error() {
        let issued = OffsetDateTime::now_utc() - Duration::from_secs(100);
        let r = record(10, issued);
        let clock = Instant::now();
        let mut s = state(r.clone(), r.expires_at);
        s.failure = Some(throttled(clock + Duration::from_secs(1)));
        let answer = s.without_reading(OffsetDateTime::now_utc(), clock);
        assert!(
            matches!(&answer, Some(Err(TokenError::SecretsManager { message, .. })) if message == "ThrottlingException"),
            "{answer:?}"
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let first = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=7).map(|n| backoff(first, max, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(first, max, u32::MAX), max);
        let jittered = lengthen(Duration::from_secs(4));
        assert!(jittered >= Duration::from_secs(4) && jittered <= Duration::from_secs(5));
    }

    #[test]
    fn an_entry_read_for_another_secret_id_is_never_served() {
        let now = OffsetDateTime::now_utc();
        let mut s = state(record(86400, now), now + Duration::from_secs(60));
        s.keep_only("team/a");
        assert!(s.without_reading(now, Instant::now()).is_some());
        s.keep_only("team_a");
        assert!(s.cached.is_none());
        assert!(s.without_reading(now, Instant::now()).is_none());
    }

    #[test]
    fn empty_values_are_placeholders() {
        assert!(is_placeholder(""));
        assert!(is_placeholder(" {} "));
        assert!(!is_placeholder("{\"a\":1}"));
        assert!(!is_placeholder("not json"));
    }
}
