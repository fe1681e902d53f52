//! The login path: the one place the broker logs in to iAdvize. In order: the credentials
//! secret (a tag or the default), its value, the block on credentials iAdvize refused (with
//! its probes), the per-secret spacing, the per-user spacing and the broker-wide per-minute
//! cap (through [`Pacer`]), the login, and the verification of a new token. Its state in the
//! token secret's tags is written here ([`crate::tags`]).
//!
//! Every token a rotation step or a tick publishes was obtained here, so a limit on the
//! broker's logins (such as a pause after iAdvize's 429s) belongs to [`Login`].

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::{Config, ConfigError};
use crate::error::{Error, IadvizeError, Result, echo};
use crate::iadvize::{IadvizeClient, RetryPolicy, Verification};
use crate::metrics::{LoginOutcome, Metrics};
use crate::pacing::{Limits, Pacer};
use crate::store::{AWSCURRENT, Content, SecretInfo, SecretStore, Version};
use crate::tags::{self, BrokerTags};
use crate::throttle::{Gate, Throttle};
use crate::token::{AccessToken, Credentials, TokenRecord, rfc3339};

/// The time a rotation needs once its login may start, derived once from the configuration:
/// one login request, the verification of the new token (when `IADVIZE_VERIFY_TOKEN` is on)
/// and the Secrets Manager writes after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// One request to iAdvize (`IADVIZE_HTTP_TIMEOUT`).
    pub request: Duration,
    /// The verification: one request, or zero when verification is off.
    pub verification: Duration,
    /// Kept for the Secrets Manager writes after iAdvize's calls (the retry policy's
    /// safety margin).
    pub writes: Duration,
}

impl Budget {
    /// The budget of a configuration whose iAdvize calls keep `writes` free before the
    /// deadline.
    pub fn new(config: &Config, writes: Duration) -> Self {
        Budget {
            request: config.http_timeout(),
            verification: if config.verify_token() {
                config.http_timeout()
            } else {
                Duration::ZERO
            },
            writes,
        }
    }

    /// A whole rotation: login, verification, writes. Starting one with less time left
    /// before the deadline cannot finish.
    pub fn rotation(&self) -> Duration {
        self.request + self.verification + self.writes
    }

    /// Time to spare before `deadline` beyond a whole rotation; `None` when a rotation no
    /// longer fits.
    pub fn spare(&self, deadline: Instant) -> Option<Duration> {
        deadline
            .saturating_duration_since(Instant::now())
            .checked_sub(self.rotation())
    }

    /// The deadline a login must keep so that the verification that follows it in the same
    /// invocation (when `then_verify`) still has a whole request time-out.
    pub fn login_deadline(&self, deadline: Instant, then_verify: bool) -> Instant {
        let verification = if then_verify {
            self.verification
        } else {
            Duration::ZERO
        };
        deadline.checked_sub(verification).unwrap_or(deadline)
    }

    /// How long a login may still wait for its slot before `login_deadline` (see
    /// [`Budget::login_deadline`]): the login request and the writes must fit after it.
    pub fn login_start_within(&self, login_deadline: Instant) -> Duration {
        login_deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.request + self.writes)
    }
}

/// What a login already knows about its place in the pacing when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Nothing: the login feeds the secret's login tag to the pacer, checks the spacing and
    /// reserves a slot (rotation steps, operator commands).
    Open,
    /// The tick fed the secret's login tag to the pacer; the login checks the spacing and
    /// reserves a slot.
    Unbooked,
    /// The tick booked a slot for the secret, in urgency order; the login takes it.
    Booked,
    /// The secret's last login started this long ago, less than `IADVIZE_MIN_LOGIN_INTERVAL`:
    /// another invocation is refreshing it, and this login is held back.
    HeldBack {
        /// Time since that login started.
        since: Duration,
    },
}

/// The login component: credentials, their block, the pacing, the login and the
/// verification. Cheap to clone; one per process (its pacer is shared by every task and
/// kept across the warm invocations of one Lambda execution environment).
#[derive(Debug, Clone)]
pub struct Login {
    store: SecretStore,
    iadvize: IadvizeClient,
    pacer: Pacer,
    metrics: Metrics,
    default_credentials: Option<String>,
    limits: Limits,
    min_login_interval: Duration,
    probe_every: Option<Duration>,
    verify: bool,
    budget: Budget,
    throttle: Throttle,
    throttle_pause: Duration,
}

impl Login {
    /// The login path of a configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `IADVIZE_API_URL` when the HTTP client cannot be built.
    pub fn new(
        config: &Config,
        store: SecretStore,
        metrics: Metrics,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let writes = retry.safety_margin;
        let iadvize = IadvizeClient::new(config.api_url().clone(), config.http_timeout(), retry)
            .map_err(|e| {
                Error::Config(ConfigError {
                    variable: "IADVIZE_API_URL",
                    message: format!("the HTTP client could not be built: {e}"),
                })
            })?;
        Ok(Login {
            store,
            iadvize,
            pacer: Pacer::default(),
            metrics,
            default_credentials: config.credentials_secret_id().map(str::to_owned),
            limits: Limits {
                min_interval: config.min_login_interval(),
                per_window: config.max_logins_per_minute().get(),
            },
            min_login_interval: config.min_login_interval(),
            probe_every: config.refused_credentials_retry(),
            verify: config.verify_token(),
            budget: Budget::new(config, writes),
            throttle: Throttle::default(),
            throttle_pause: config.throttle_pause(),
        })
    }

    /// When the pause of the broker's logins after a 429 ends, if one runs now.
    pub fn paused_until(&self) -> Option<OffsetDateTime> {
        self.throttle.paused_until(OffsetDateTime::now_utc())
    }

    /// Pauses every login until `until` (a follow-up carries on its predecessor's pause);
    /// a longer pause already running stays.
    pub fn pause_until(&self, until: OffsetDateTime) {
        self.throttle.pause_until(until);
    }

    /// Waits while the broker's logins are paused after a 429 (one login waiting out the
    /// limit, or the pause after it), when that ends early enough for a login to start before
    /// `login_deadline`.
    ///
    /// # Errors
    ///
    /// [`Error::LoginThrottled`] when the pause lasts past the time a login may still start.
    async fn wait_for_pause(&self, secret: &SecretInfo, login_deadline: Instant) -> Result<()> {
        let latest = Instant::now() + self.budget.login_start_within(login_deadline);
        loop {
            let now = OffsetDateTime::now_utc();
            let throttled = |until| Error::LoginThrottled {
                secret_id: secret.name.clone(),
                until,
            };
            match self.throttle.gate(now) {
                Gate::Open => return Ok(()),
                Gate::PausedUntil(until) => {
                    let wait: Duration = (until - now).try_into().unwrap_or_default();
                    if Instant::now() + wait > latest {
                        return Err(throttled(Some(until)));
                    }
                    tracing::info!(
                        secret_id = %secret.name,
                        wait_ms = wait.as_millis() as u64,
                        "waiting for the pause of logins after iAdvize's 429 to end"
                    );
                    tokio::time::sleep(wait).await;
                }
                Gate::Leading => {
                    let left = latest.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(left, self.throttle.released())
                        .await
                        .is_err()
                    {
                        return Err(throttled(self.throttle.paused_until(now)));
                    }
                }
            }
        }
    }

    /// The same login path with a pacer whose per-minute cap counts over `window` (a
    /// compressed benchmark scales the stand-in's rate window and this one together).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.pacer = Pacer::new(window);
        self
    }

    /// The time a rotation needs.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The credentials secret a token secret uses: its `iadvize:credentials-secret-id` tag,
    /// else `IADVIZE_CREDENTIALS_SECRET_ID`.
    ///
    /// # Errors
    ///
    /// [`Error::NoCredentialsSecret`] when there is neither.
    pub fn credentials_secret_id<'a>(&'a self, secret: &'a SecretInfo) -> Result<&'a str> {
        secret
            .broker_tags()
            .credentials_secret_id
            .or(self.default_credentials.as_deref())
            .ok_or_else(|| Error::NoCredentialsSecret {
                secret_id: secret.name.clone(),
            })
    }

    /// While iAdvize's refusal of a credentials version stands: when the next probe login
    /// may start; `None` when probing is off (`IADVIZE_REFUSED_CREDENTIALS_RETRY=off`).
    pub fn next_probe_at(&self, tags: &BrokerTags<'_>) -> Option<OffsetDateTime> {
        tags.next_probe_at(self.probe_every)
    }

    /// Reads and parses the AWSCURRENT credentials. Says what is wrong with a value that is
    /// not usable: none, empty, binary, not JSON, or JSON of the wrong shape.
    ///
    /// A binary value is refused even when it holds the right JSON: credentials are a
    /// `SecretString`, the one form the Secrets Manager console shows and edits as key/value
    /// pairs and that `aws secretsmanager get-secret-value --query SecretString` prints, so an
    /// operator can always see what the broker reads. The message says how to store it.
    ///
    /// # Errors
    ///
    /// [`Error::BadCredentials`] for an unusable value; a Secrets Manager error when it
    /// cannot be read.
    pub async fn load_credentials(&self, credentials_secret_id: &str) -> Result<Credentials> {
        let bad = |message: String| Error::BadCredentials {
            credentials_secret_id: credentials_secret_id.to_owned(),
            message,
        };
        let value = self
            .store
            .get(credentials_secret_id, Version::Stage(AWSCURRENT))
            .await?
            .ok_or_else(|| bad("the secret was not found or has no AWSCURRENT value".into()))?;
        match value.content() {
            Content::Text(text) => Credentials::parse(text, value.version_id.clone()).map_err(bad),
            Content::Binary(bytes) => Err(bad(format!(
                "the value is binary data (SecretBinary, {bytes} bytes), not a string; store the JSON as a string (aws secretsmanager put-secret-value --secret-id {} --secret-string file://credentials.json)",
                echo(credentials_secret_id)
            ))),
            Content::Empty => Err(bad("the value is empty".into())),
        }
    }

    /// Feeds a token secret's `iadvize:last-login-attempt` tag to the pacing: its user's
    /// spacing and the broker's per-minute cap count the logins of other invocations and
    /// earlier ticks too. The tick feeds every secret it reads once; a login with
    /// [`Slot::Open`] feeds its own.
    pub fn observe(&self, secret: &SecretInfo) {
        let Some(at) = secret
            .broker_tags()
            .last_login_start(OffsetDateTime::now_utc())
        else {
            return;
        };
        if let Ok(user) = self.credentials_secret_id(secret) {
            self.pacer.observe(user, &secret.arn, at);
        }
    }

    /// The tick's booking of a login slot for a secret that is due, in urgency order (so a
    /// less urgent secret never takes the last slot of a window before a more urgent one).
    /// `spare` is the time the invocation has beyond the rotation (see [`Budget::spare`]).
    ///
    /// # Errors
    ///
    /// How long until the user's next free slot, when it comes later than `spare` allows:
    /// the secret must wait for the next tick.
    pub fn book(
        &self,
        secret: &SecretInfo,
        spare: Duration,
    ) -> std::result::Result<Slot, Duration> {
        let Ok(user) = self.credentials_secret_id(secret) else {
            // The login reports the missing credentials secret.
            return Ok(Slot::Unbooked);
        };
        let now = OffsetDateTime::now_utc();
        // This very secret's login started moments ago (another invocation): the login path
        // reports that (in progress while the token is valid), not the pacing.
        if let Some(since) = self.held_back(&secret.broker_tags(), now) {
            return Ok(Slot::HeldBack { since });
        }
        self.pacer
            .book(user, &secret.arn, now, now + spare, self.limits)
            .map(|_| Slot::Booked)
            .map_err(|at| (at - now).try_into().unwrap_or_default())
    }

    /// Gives back a slot the tick booked for `secret` and its login did not take (it needed
    /// no login after all, or failed before logging in), so it does not count against the
    /// cap.
    pub fn cancel_booking(&self, secret_arn: &str) {
        self.pacer.cancel_booking(secret_arn);
    }

    /// Time since this secret's last login started, when that is less than
    /// `IADVIZE_MIN_LOGIN_INTERVAL`.
    fn held_back(&self, tags: &BrokerTags<'_>, now: OffsetDateTime) -> Option<Duration> {
        tags.since_last_login(now)
            .filter(|since| *since < self.min_login_interval)
    }

    /// Logs in for a token secret, unless its credentials were refused before (except a
    /// probe per `IADVIZE_REFUSED_CREDENTIALS_RETRY`) or its pacing holds it back. Records
    /// the attempt, and a refusal, in the secret's tags. `then_verify`: the caller verifies
    /// the token before `deadline`, so the login leaves time for it.
    ///
    /// # Errors
    ///
    /// [`Error::NoCredentialsSecret`], [`Error::BadCredentials`],
    /// [`Error::CredentialsBlocked`] (refused before, no probe due),
    /// [`Error::LoginSpacing`] (this secret's login started moments ago),
    /// [`Error::LoginPaced`] (no slot early enough), [`Error::CredentialsRefused`],
    /// [`Error::Iadvize`], and Secrets Manager errors of the tag writes.
    pub async fn login(
        &self,
        secret: &SecretInfo,
        slot: Slot,
        deadline: Instant,
        then_verify: bool,
    ) -> Result<TokenRecord> {
        let deadline = self.budget.login_deadline(deadline, then_verify);
        let credentials_id = self.credentials_secret_id(secret)?;
        self.wait_for_pause(secret, deadline).await?;
        let credentials = self.load_credentials(credentials_id).await?;
        let tags = secret.broker_tags();

        let now = OffsetDateTime::now_utc();
        if tags.refused(&credentials.version_id) {
            match self.next_probe_at(&tags) {
                Some(at) if at <= now => {
                    tracing::warn!(secret_id = %secret.name, credentials_version = %credentials.version_id, "iAdvize refused these credentials before; one probe login to see whether they work again");
                }
                next => {
                    return Err(Error::CredentialsBlocked {
                        credentials_secret_id: credentials_id.to_owned(),
                        version_id: credentials.version_id,
                        next_probe: next.map_or_else(
                            || {
                                "IADVIZE_REFUSED_CREDENTIALS_RETRY is off: no probe login"
                                    .to_owned()
                            },
                            |at| format!("next probe login at {}", rfc3339(at)),
                        ),
                    });
                }
            }
        }
        let started = self
            .wait_for_slot(secret, &tags, credentials_id, slot, deadline)
            .await?;
        // A 429 met by another login while this one waited for its slot pauses it too.
        self.wait_for_pause(secret, deadline).await?;

        self.claim(secret, started).await?;
        tracing::info!(secret_id = %secret.name, credentials_version = %credentials.version_id, "logging in to iAdvize");
        let mut attempt = self.throttle.attempt();
        let result = self
            .iadvize
            .login_within(&credentials, deadline, &mut attempt)
            .await;
        let stopped = attempt.stopped();
        let (outcome, attempts) = match &result {
            Ok(login) => (LoginOutcome::Ok, login.attempts),
            Err(e) if e.is_refused() => (LoginOutcome::Refused, 1),
            Err(e) if e.is_rate_limited() || stopped => (LoginOutcome::Throttled, e.attempts()),
            Err(e) => (LoginOutcome::Transient, e.attempts()),
        };
        self.metrics.login_ended(&secret.name, outcome, attempts);
        let rate_limited = matches!(&result, Err(e) if e.is_rate_limited());
        if let Some(until) = attempt.finish(rate_limited, self.throttle_pause) {
            tracing::warn!(
                secret_id = %secret.name,
                paused_until = %rfc3339(until),
                "iAdvize still answers 429: no login starts until the pause ends"
            );
        }
        match result {
            Ok(login) => {
                tracing::info!(
                    secret_id = %secret.name,
                    attempts = login.attempts,
                    expires_at = %rfc3339(login.record.expires_at),
                    "logged in"
                );
                if tags.rejected_credentials_version.is_some() {
                    self.store
                        .remove_tag(&secret.arn, tags::REJECTED_CREDENTIALS)
                        .await?;
                }
                Ok(login.record)
            }
            Err(e) if e.is_refused() => {
                tracing::error!(secret_id = %secret.name, error = %e, "iAdvize refused the credentials");
                self.store
                    .set_tag(
                        &secret.arn,
                        tags::REJECTED_CREDENTIALS,
                        &credentials.version_id,
                    )
                    .await?;
                Err(Error::CredentialsRefused {
                    credentials_secret_id: credentials_id.to_owned(),
                    version_id: credentials.version_id,
                })
            }
            // Another login waits out the 429: this one stopped retrying and is held back.
            Err(e) if stopped => {
                tracing::warn!(secret_id = %secret.name, error = %e, "login stopped: the broker pauses its logins after iAdvize's 429");
                Err(Error::LoginThrottled {
                    secret_id: secret.name.clone(),
                    until: self.paused_until(),
                })
            }
            Err(e) => Err(Error::Iadvize {
                secret_id: secret.name.clone(),
                source: e,
            }),
        }
    }

    /// Writes the `iadvize:last-login-attempt` tag (`started`) that holds other logins of
    /// this secret back. With the login spacing on, the tag is read just before the write and
    /// read back just after it: Secrets Manager has no conditional write, and the per-process
    /// locks of two Lambda execution environments cannot see each other, so two processes
    /// may both pass the spacing check; then the last writer logs in and every earlier one
    /// finds another login's stamp and is held back. Two logins remain possible only when one
    /// process reads the tag before the other's write and writes after the other's read-back
    /// (a window of about one Secrets Manager round trip).
    ///
    /// # Errors
    ///
    /// [`Error::LoginSpacing`] when another login of this secret started moments ago or
    /// replaced this one's stamp; Secrets Manager errors of the write. A failed read is no
    /// error: the login goes on, held back by what the caller read before.
    async fn claim(&self, secret: &SecretInfo, started: OffsetDateTime) -> Result<()> {
        let stamp = tags::login_attempt_value(started);
        let spacing = |since| Error::LoginSpacing {
            secret_id: secret.name.clone(),
            since,
            interval: self.min_login_interval,
        };
        let read = || async {
            match self.store.describe(&secret.arn).await {
                Ok(again) => Some(again),
                Err(e) => {
                    tracing::warn!(secret_id = %secret.name, error = %e, "the login-attempt tag could not be read again");
                    None
                }
            }
        };
        let spaced = !self.min_login_interval.is_zero();
        if spaced && let Some(before) = read().await {
            let now = OffsetDateTime::now_utc();
            if let Some(since) = self.held_back(&before.broker_tags(), now) {
                tracing::info!(secret_id = %secret.name, "another invocation started a login for this secret moments ago; leaving it to that one");
                return Err(spacing(since));
            }
        }
        self.store
            .set_tag(&secret.arn, tags::LAST_LOGIN_ATTEMPT, &stamp)
            .await?;
        if spaced
            && let Some(after) = read().await
            && after
                .tags
                .get(tags::LAST_LOGIN_ATTEMPT)
                .is_some_and(|latest| *latest != stamp)
        {
            tracing::info!(secret_id = %secret.name, "another invocation started a login for this secret at the same moment; leaving it to that one");
            let since = after
                .broker_tags()
                .since_last_login(OffsetDateTime::now_utc())
                .unwrap_or_default();
            return Err(spacing(since));
        }
        Ok(())
    }

    /// Waits for a login slot for `secret`'s iAdvize user (`user`: its credentials secret
    /// id) and returns the start time to record. Fails at once when this very secret's login
    /// started less than `IADVIZE_MIN_LOGIN_INTERVAL` ago (another invocation is refreshing
    /// it: waiting would only log in twice), or when the slot comes too late for `deadline`.
    async fn wait_for_slot(
        &self,
        secret: &SecretInfo,
        tags: &BrokerTags<'_>,
        user: &str,
        slot: Slot,
        deadline: Instant,
    ) -> Result<OffsetDateTime> {
        let now = OffsetDateTime::now_utc();
        let spacing = |since| Error::LoginSpacing {
            secret_id: secret.name.clone(),
            since,
            interval: self.min_login_interval,
        };
        let booked = match slot {
            Slot::HeldBack { since } => return Err(spacing(since)),
            Slot::Booked => self.pacer.take_booking(&secret.arn),
            Slot::Open | Slot::Unbooked => {
                if let Some(since) = self.held_back(tags, now) {
                    return Err(spacing(since));
                }
                if slot == Slot::Open
                    && let Some(at) = tags.last_login_start(now)
                {
                    self.pacer.observe(user, &secret.arn, at);
                }
                None
            }
        };
        let latest = now + self.budget.login_start_within(deadline);
        let slot = match booked {
            Some(at) => Ok(at),
            None => self
                .pacer
                .reserve(user, &secret.arn, now, latest, self.limits),
        };
        match slot {
            Ok(at) => {
                let wait: Duration = (at - now).try_into().unwrap_or_default();
                if !wait.is_zero() {
                    tracing::info!(
                        secret_id = %secret.name,
                        wait_ms = wait.as_millis() as u64,
                        "waiting for a login slot (login pacing)"
                    );
                    tokio::time::sleep(wait).await;
                }
                let started = at.max(OffsetDateTime::now_utc());
                self.pacer.restamp(&secret.arn, at, started);
                Ok(started)
            }
            Err(at) => Err(Error::LoginPaced {
                secret_id: secret.name.clone(),
                wait: (at - now).try_into().unwrap_or_default(),
            }),
        }
    }

    /// Asks iAdvize whether it accepts a token it just issued, when `IADVIZE_VERIFY_TOKEN`
    /// is on (otherwise accepts it unasked).
    ///
    /// # Errors
    ///
    /// `Ok(Err(reason))`: iAdvize rejects the token, with its error code; `Err`
    /// ([`Error::Iadvize`]): iAdvize could not be asked.
    pub async fn verify_new_token(
        &self,
        secret_name: &str,
        record: &TokenRecord,
        deadline: Instant,
    ) -> Result<std::result::Result<(), String>> {
        if !self.verify {
            return Ok(Ok(()));
        }
        match self.iadvize.verify(&record.access_token, deadline).await {
            Ok(Verification::Authenticated) => {
                tracing::info!("iAdvize accepts the new token");
                Ok(Ok(()))
            }
            Ok(Verification::Rejected(reason)) => {
                tracing::error!(reason = %reason, "iAdvize rejects the new token");
                Ok(Err(reason))
            }
            Err(source) => Err(Error::Iadvize {
                secret_id: secret_name.to_owned(),
                source,
            }),
        }
    }

    /// Asks iAdvize's `/_authenticated` about a token, whatever `IADVIZE_VERIFY_TOKEN` says
    /// (the operator's `verify`).
    ///
    /// # Errors
    ///
    /// An [`IadvizeError`] when iAdvize could not be asked.
    pub async fn ask(
        &self,
        token: &AccessToken,
        deadline: Instant,
    ) -> std::result::Result<Verification, IadvizeError> {
        self.iadvize.verify(token, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_covers_a_login_a_verification_and_the_writes() {
        let config = Config::builder()
            .http_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let budget = Budget::new(&config, Duration::from_secs(3));
        assert_eq!(budget.rotation(), Duration::from_secs(7));
        let unverified = Budget::new(
            &config.to_builder().verify_token(false).build().unwrap(),
            Duration::from_secs(3),
        );
        assert_eq!(unverified.rotation(), Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            budget.login_deadline(deadline, true),
            deadline - Duration::from_secs(2)
        );
        assert_eq!(budget.login_deadline(deadline, false), deadline);
        assert_eq!(
            unverified.login_deadline(deadline, true),
            deadline,
            "no verification to leave time for"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_spare_time_is_what_is_left_beyond_a_rotation() {
        let config = Config::builder()
            .http_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let budget = Budget::new(&config, Duration::from_secs(3));
        let now = Instant::now();
        assert_eq!(
            budget.spare(now + Duration::from_secs(10)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(budget.spare(now + Duration::from_secs(6)), None);
        // A login waits for its slot no later than its request and the writes allow.
        assert_eq!(
            budget.login_start_within(now + Duration::from_secs(10)),
            Duration::from_secs(5)
        );
    }
}
