//! The broker's configuration: read once from the environment at start-up and validated,
//! so a bad value fails the cold start with a message naming the variable.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use reqwest::Url;

use crate::bounds::{AwsTimeouts, MAX_RETRY_AFTER};

/// Default iAdvize API base URL.
pub const DEFAULT_API_URL: &str = "https://api.iadvize.com";

/// The broker's settings, validated: built only by [`Config::from_env`] /
/// [`Config::from_lookup`] (the `IADVIZE_*` variables) or by [`ConfigBuilder::build`], which
/// apply the same rules, so every `Config` in the process is usable. The README's
/// configuration table lists the variables, their defaults and their units.
#[derive(Debug, Clone)]
pub struct Config {
    token_secret_ids: Vec<String>,
    credentials_secret_id: Option<String>,
    api_url: Url,
    refresh_before_expiry: Duration,
    min_login_interval: Duration,
    stuck_rotation_after: Duration,
    http_timeout: Duration,
    verify_token: bool,
    max_concurrency: NonZeroUsize,
    refused_credentials_retry: Option<Duration>,
    max_logins_per_minute: NonZeroU32,
    per_secret_metrics: bool,
    aws_timeouts: AwsTimeouts,
    report_verify_interval: Duration,
    throttle_pause: Duration,
    max_follow_ups: u32,
}

impl Config {
    /// Token secrets a refresh tick manages besides the tagged ones
    /// (`IADVIZE_TOKEN_SECRET_IDS`: names or ARNs; empty when unset).
    pub fn token_secret_ids(&self) -> &[String] {
        &self.token_secret_ids
    }

    /// The default credentials secret (`IADVIZE_CREDENTIALS_SECRET_ID`); a token secret's
    /// `iadvize:credentials-secret-id` tag takes precedence.
    pub fn credentials_secret_id(&self) -> Option<&str> {
        self.credentials_secret_id.as_deref()
    }

    /// The iAdvize base URL (`IADVIZE_API_URL`): `https`, or `http` on a loopback host.
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// A token is refreshed when less than this is left before its `expires_at`
    /// (`IADVIZE_REFRESH_BEFORE_EXPIRY`, default 4 h).
    pub fn refresh_before_expiry(&self) -> Duration {
        self.refresh_before_expiry
    }

    /// Least time between the starts of two logins of one iAdvize user, and of one token
    /// secret (`IADVIZE_MIN_LOGIN_INTERVAL`, default 10 s; `0s`: no spacing).
    pub fn min_login_interval(&self) -> Duration {
        self.min_login_interval
    }

    /// An unfinished rotation older than this is resumed by the tick
    /// (`IADVIZE_STUCK_ROTATION_AFTER`, default 15 min; `0s`: at once).
    pub fn stuck_rotation_after(&self) -> Duration {
        self.stuck_rotation_after
    }

    /// Time-out of one HTTP request to iAdvize (`IADVIZE_HTTP_TIMEOUT`, default 10 s; never 0).
    pub fn http_timeout(&self) -> Duration {
        self.http_timeout
    }

    /// Whether a new token is checked with `/_authenticated` before it is published
    /// (`IADVIZE_VERIFY_TOKEN`, default on).
    pub fn verify_token(&self) -> bool {
        self.verify_token
    }

    /// How many token secrets a tick works on at the same time (`IADVIZE_MAX_CONCURRENCY`,
    /// default 4).
    pub fn max_concurrency(&self) -> NonZeroUsize {
        self.max_concurrency
    }

    /// While iAdvize's refusal of a credentials version stands, one probe login per this
    /// (`IADVIZE_REFUSED_CREDENTIALS_RETRY`, default 6 h; `None` for `off`: only a new
    /// credentials value clears the block).
    pub fn refused_credentials_retry(&self) -> Option<Duration> {
        self.refused_credentials_retry
    }

    /// Logins the whole broker may start in any rolling minute
    /// (`IADVIZE_MAX_LOGINS_PER_MINUTE`, 1 to 100, default 30; iAdvize allows 100 per IP).
    pub fn max_logins_per_minute(&self) -> NonZeroU32 {
        self.max_logins_per_minute
    }

    /// Whether metrics are also emitted per token secret (dimension `SecretName`;
    /// `IADVIZE_PER_SECRET_METRICS`, default off: every per-secret series is a billed custom
    /// metric).
    pub fn per_secret_metrics(&self) -> bool {
        self.per_secret_metrics
    }

    /// Time-outs of every AWS call: one operation with its retries
    /// (`IADVIZE_AWS_OPERATION_TIMEOUT`) and one attempt (`IADVIZE_AWS_ATTEMPT_TIMEOUT`).
    pub fn aws_timeouts(&self) -> AwsTimeouts {
        self.aws_timeouts
    }

    /// How long a verification of a reported token answers later reports of the same token
    /// without asking iAdvize again, across invocations (`IADVIZE_REPORT_VERIFY_INTERVAL`,
    /// default `1m`; `0s`: every report asks).
    pub fn report_verify_interval(&self) -> Duration {
        self.report_verify_interval
    }

    /// After a login ends in `429 Too Many Requests`, no login starts for at least this long
    /// (or iAdvize's `Retry-After`, when longer) (`IADVIZE_THROTTLE_PAUSE`, default 60 s, at
    /// most 24 h; `0s`: only a `Retry-After` pauses).
    pub fn throttle_pause(&self) -> Duration {
        self.throttle_pause
    }

    /// How many follow-up invocations a chain started by one tick may have
    /// (`IADVIZE_MAX_FOLLOW_UPS`, 0 to 15, default 10; 0: no follow-up). Lambda's recursive
    /// loop detection stops a chain at its 17th invocation, so 15 keeps a tick and its
    /// follow-ups below it.
    pub fn max_follow_ups(&self) -> u32 {
        self.max_follow_ups
    }

    /// A builder starting from the defaults (tests, benchmarks, embedding programs).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// A builder starting from this configuration, to change some settings.
    pub fn to_builder(&self) -> ConfigBuilder {
        ConfigBuilder(self.clone())
    }
}

/// Builds a [`Config`] setting by setting; [`ConfigBuilder::build`] applies the rules of
/// [`Config::from_lookup`]. Each setter takes the value in the unit of the accessor of the
/// same name.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// See [`Config::token_secret_ids`].
    pub fn token_secret_ids(mut self, ids: Vec<String>) -> Self {
        self.0.token_secret_ids = ids;
        self
    }

    /// See [`Config::credentials_secret_id`].
    pub fn credentials_secret_id(mut self, id: Option<String>) -> Self {
        self.0.credentials_secret_id = id;
        self
    }

    /// See [`Config::api_url`].
    pub fn api_url(mut self, url: Url) -> Self {
        self.0.api_url = url;
        self
    }

    /// See [`Config::refresh_before_expiry`].
    pub fn refresh_before_expiry(mut self, before: Duration) -> Self {
        self.0.refresh_before_expiry = before;
        self
    }

    /// See [`Config::min_login_interval`].
    pub fn min_login_interval(mut self, interval: Duration) -> Self {
        self.0.min_login_interval = interval;
        self
    }

    /// See [`Config::stuck_rotation_after`].
    pub fn stuck_rotation_after(mut self, after: Duration) -> Self {
        self.0.stuck_rotation_after = after;
        self
    }

    /// See [`Config::http_timeout`].
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.0.http_timeout = timeout;
        self
    }

    /// See [`Config::verify_token`].
    pub fn verify_token(mut self, on: bool) -> Self {
        self.0.verify_token = on;
        self
    }

    /// See [`Config::max_concurrency`].
    pub fn max_concurrency(mut self, n: NonZeroUsize) -> Self {
        self.0.max_concurrency = n;
        self
    }

    /// See [`Config::refused_credentials_retry`].
    pub fn refused_credentials_retry(mut self, every: Option<Duration>) -> Self {
        self.0.refused_credentials_retry = every;
        self
    }

    /// See [`Config::max_logins_per_minute`].
    pub fn max_logins_per_minute(mut self, n: NonZeroU32) -> Self {
        self.0.max_logins_per_minute = n;
        self
    }

    /// See [`Config::per_secret_metrics`].
    pub fn per_secret_metrics(mut self, on: bool) -> Self {
        self.0.per_secret_metrics = on;
        self
    }

    /// See [`Config::aws_timeouts`].
    pub fn aws_timeouts(mut self, timeouts: AwsTimeouts) -> Self {
        self.0.aws_timeouts = timeouts;
        self
    }

    /// See [`Config::report_verify_interval`].
    pub fn report_verify_interval(mut self, interval: Duration) -> Self {
        self.0.report_verify_interval = interval;
        self
    }

    /// See [`Config::throttle_pause`].
    pub fn throttle_pause(mut self, pause: Duration) -> Self {
        self.0.throttle_pause = pause;
        self
    }

    /// See [`Config::max_follow_ups`].
    pub fn max_follow_ups(mut self, n: u32) -> Self {
        self.0.max_follow_ups = n;
        self
    }

    /// The configuration, if it keeps the rules of [`Config::from_lookup`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable of the first setting that breaks a rule (a zero
    /// time-out, an attempt time-out longer than the operation time-out, a per-minute cap
    /// above 100, a probe interval of 0, an `http` URL on a host that is not loopback).
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it and what is expected.
    pub message: String,
}

const TOKEN_SECRET_IDS: &str = "IADVIZE_TOKEN_SECRET_IDS";
const CREDENTIALS_SECRET_ID: &str = "IADVIZE_CREDENTIALS_SECRET_ID";
const API_URL: &str = "IADVIZE_API_URL";
const REFRESH_BEFORE_EXPIRY: &str = "IADVIZE_REFRESH_BEFORE_EXPIRY";
const MIN_LOGIN_INTERVAL: &str = "IADVIZE_MIN_LOGIN_INTERVAL";
const STUCK_ROTATION_AFTER: &str = "IADVIZE_STUCK_ROTATION_AFTER";
const HTTP_TIMEOUT: &str = "IADVIZE_HTTP_TIMEOUT";
const VERIFY_TOKEN: &str = "IADVIZE_VERIFY_TOKEN";
const MAX_CONCURRENCY: &str = "IADVIZE_MAX_CONCURRENCY";
const REFUSED_CREDENTIALS_RETRY: &str = "IADVIZE_REFUSED_CREDENTIALS_RETRY";
const MAX_LOGINS_PER_MINUTE: &str = "IADVIZE_MAX_LOGINS_PER_MINUTE";
const PER_SECRET_METRICS: &str = "IADVIZE_PER_SECRET_METRICS";
const AWS_OPERATION_TIMEOUT: &str = "IADVIZE_AWS_OPERATION_TIMEOUT";
const AWS_ATTEMPT_TIMEOUT: &str = "IADVIZE_AWS_ATTEMPT_TIMEOUT";
const REPORT_VERIFY_INTERVAL: &str = "IADVIZE_REPORT_VERIFY_INTERVAL";
const THROTTLE_PAUSE: &str = "IADVIZE_THROTTLE_PAUSE";
const MAX_FOLLOW_UPS: &str = "IADVIZE_MAX_FOLLOW_UPS";
/// A tick and 15 follow-ups are 16 invocations of one chain; Lambda's recursive loop
/// detection stops the 17th (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html>).
const MAX_FOLLOW_UPS_LIMIT: u32 = 15;

/// The longest a time-out may be: a Lambda invocation's maximum
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>).
const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The longest pause of logins after a 429: what the broker accepts of iAdvize's
/// `Retry-After` ([`MAX_RETRY_AFTER`]).
const MAX_THROTTLE_PAUSE: Duration = MAX_RETRY_AFTER;

/// The longest any other duration setting may be. Far beyond any useful value, and far from
/// the end of the calendar the broker computes in (year 9999), so no time computed from a
/// setting can overflow.
const MAX_INTERVAL: Duration = Duration::from_secs(30 * 24 * 3600);

/// iAdvize allows 100 logins per minute per IP: the broker's cap cannot be set higher.
const MAX_LOGINS_PER_MINUTE_LIMIT: u32 = 100;

impl Default for Config {
    fn default() -> Self {
        Config {
            token_secret_ids: Vec::new(),
            credentials_secret_id: None,
            api_url: Url::parse(DEFAULT_API_URL).expect("the default URL is valid"),
            refresh_before_expiry: Duration::from_secs(4 * 3600),
            min_login_interval: Duration::from_secs(10),
            stuck_rotation_after: Duration::from_secs(15 * 60),
            http_timeout: Duration::from_secs(10),
            verify_token: true,
            max_concurrency: NonZeroUsize::new(4).expect("4 is not zero"),
            refused_credentials_retry: Some(Duration::from_secs(6 * 3600)),
            max_logins_per_minute: NonZeroU32::new(30).expect("30 is not zero"),
            per_secret_metrics: false,
            aws_timeouts: AwsTimeouts::default(),
            report_verify_interval: Duration::from_secs(60),
            throttle_pause: Duration::from_secs(60),
            max_follow_ups: 10,
        }
    }
}

impl Config {
    /// Reads and validates the process environment.
    ///
    /// # Errors
    ///
    /// As [`Config::from_lookup`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads and validates a configuration from any variable lookup (the environment, a map).
    /// Unset and empty variables take their defaults; surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that cannot be parsed or breaks a rule, and
    /// saying what is expected.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let defaults = Config::default();
        let duration = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(text) => parse_duration(&text).map_err(|message| ConfigError {
                variable: name,
                message,
            }),
        };

        let token_secret_ids = get(TOKEN_SECRET_IDS)
            .map(|ids| {
                ids.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let api_url = match get(API_URL) {
            None => defaults.api_url,
            Some(text) => parse_api_url(&text).map_err(|message| ConfigError {
                variable: API_URL,
                message,
            })?,
        };
        let boolean = |name: &'static str, default: bool| match get(name) {
            None => Ok(default),
            Some(text) => parse_bool(&text).ok_or_else(|| ConfigError {
                variable: name,
                message: format!("expected true or false, got {text:?}"),
            }),
        };
        let verify_token = boolean(VERIFY_TOKEN, true)?;
        let per_secret_metrics = boolean(PER_SECRET_METRICS, defaults.per_secret_metrics)?;
        let refused_credentials_retry = match get(REFUSED_CREDENTIALS_RETRY) {
            None => defaults.refused_credentials_retry,
            Some(text) if text.eq_ignore_ascii_case("off") => None,
            Some(text) => match parse_duration(&text) {
                Ok(retry) => Some(retry),
                Err(message) => {
                    return Err(ConfigError {
                        variable: REFUSED_CREDENTIALS_RETRY,
                        message: format!("{message}, or off"),
                    });
                }
            },
        };
        let max_logins_per_minute = match get(MAX_LOGINS_PER_MINUTE) {
            None => defaults.max_logins_per_minute,
            Some(text) => text
                .parse()
                .ok()
                .filter(|n: &NonZeroU32| n.get() <= MAX_LOGINS_PER_MINUTE_LIMIT)
                .ok_or_else(|| ConfigError {
                    variable: MAX_LOGINS_PER_MINUTE,
                    message: format!(
                        "expected a whole number from 1 to 100 (iAdvize allows 100 logins per minute per IP), got {text:?}"
                    ),
                })?,
        };
        let max_concurrency = match get(MAX_CONCURRENCY) {
            None => defaults.max_concurrency,
            Some(text) => text.parse().map_err(|_| ConfigError {
                variable: MAX_CONCURRENCY,
                message: format!("expected a whole number of at least 1, got {text:?}"),
            })?,
        };
        let http_timeout = duration(HTTP_TIMEOUT, defaults.http_timeout)?;
        let operation = duration(AWS_OPERATION_TIMEOUT, defaults.aws_timeouts.operation)?;
        // Left unset, the attempt time-out follows a shorter operation time-out rather than
        // refusing a setting the operator did not make.
        let aws_timeouts = AwsTimeouts {
            operation,
            attempt: duration(
                AWS_ATTEMPT_TIMEOUT,
                defaults.aws_timeouts.attempt.min(operation),
            )?,
        };

        let throttle_pause = duration(THROTTLE_PAUSE, defaults.throttle_pause)?;
        let max_follow_ups = match get(MAX_FOLLOW_UPS) {
            None => defaults.max_follow_ups,
            Some(text) => text
                .parse()
                .ok()
                .filter(|n: &u32| *n <= MAX_FOLLOW_UPS_LIMIT)
                .ok_or_else(|| ConfigError {
                    variable: MAX_FOLLOW_UPS,
                    message: format!(
                        "expected a whole number from 0 to {MAX_FOLLOW_UPS_LIMIT} (0: no follow-up; Lambda's recursive loop detection stops longer chains), got {text:?}"
                    ),
                })?,
        };

        ConfigBuilder(Config {
            token_secret_ids,
            credentials_secret_id: get(CREDENTIALS_SECRET_ID),
            api_url,
            refresh_before_expiry: duration(REFRESH_BEFORE_EXPIRY, defaults.refresh_before_expiry)?,
            min_login_interval: duration(MIN_LOGIN_INTERVAL, defaults.min_login_interval)?,
            stuck_rotation_after: duration(STUCK_ROTATION_AFTER, defaults.stuck_rotation_after)?,
            http_timeout,
            verify_token,
            max_concurrency,
            refused_credentials_retry,
            max_logins_per_minute,
            per_secret_metrics,
            aws_timeouts,
            report_verify_interval: duration(
                REPORT_VERIFY_INTERVAL,
                defaults.report_verify_interval,
            )?,
            throttle_pause,
            max_follow_ups,
        })
        .build()
    }

    /// The rules every configuration keeps, whoever built it; the first broken one names its
    /// variable.
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = |variable: &'static str, value: Duration| {
            if value.is_zero() {
                Err(ConfigError {
                    variable,
                    message: "must be longer than 0s".into(),
                })
            } else {
                Ok(())
            }
        };
        check_api_url(&self.api_url).map_err(|message| ConfigError {
            variable: API_URL,
            message,
        })?;
        if self.refused_credentials_retry.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError {
                variable: REFUSED_CREDENTIALS_RETRY,
                message: "must be longer than 0s, or off".into(),
            });
        }
        if self.max_logins_per_minute.get() > MAX_LOGINS_PER_MINUTE_LIMIT {
            return Err(ConfigError {
                variable: MAX_LOGINS_PER_MINUTE,
                message: format!(
                    "expected a whole number from 1 to {MAX_LOGINS_PER_MINUTE_LIMIT} (iAdvize allows 100 logins per minute per IP), got {}",
                    self.max_logins_per_minute
                ),
            });
        }
        if self.max_follow_ups > MAX_FOLLOW_UPS_LIMIT {
            return Err(ConfigError {
                variable: MAX_FOLLOW_UPS,
                message: format!(
                    "expected a whole number from 0 to {MAX_FOLLOW_UPS_LIMIT} (0: no follow-up; Lambda's recursive loop detection stops longer chains), got {}",
                    self.max_follow_ups
                ),
            });
        }
        let at_most = |variable: &'static str, value: Duration, max: Duration, why: &str| {
            if value > max {
                Err(ConfigError {
                    variable,
                    message: format!(
                        "must be at most {} ({why}), got {}",
                        humantime::format_duration(max),
                        humantime::format_duration(value)
                    ),
                })
            } else {
                Ok(())
            }
        };
        let interval = "longer values are no use";
        for (variable, value) in [
            (REFRESH_BEFORE_EXPIRY, Some(self.refresh_before_expiry)),
            (MIN_LOGIN_INTERVAL, Some(self.min_login_interval)),
            (STUCK_ROTATION_AFTER, Some(self.stuck_rotation_after)),
            (REFUSED_CREDENTIALS_RETRY, self.refused_credentials_retry),
            (REPORT_VERIFY_INTERVAL, Some(self.report_verify_interval)),
        ] {
            if let Some(value) = value {
                at_most(variable, value, MAX_INTERVAL, interval)?;
            }
        }
        at_most(
            THROTTLE_PAUSE,
            self.throttle_pause,
            MAX_THROTTLE_PAUSE,
            "the longest Retry-After the broker accepts",
        )?;
        let invocation = "the longest Lambda invocation";
        at_most(HTTP_TIMEOUT, self.http_timeout, MAX_TIMEOUT, invocation)?;
        at_most(
            AWS_OPERATION_TIMEOUT,
            self.aws_timeouts.operation,
            MAX_TIMEOUT,
            invocation,
        )?;
        at_most(
            AWS_ATTEMPT_TIMEOUT,
            self.aws_timeouts.attempt,
            MAX_TIMEOUT,
            invocation,
        )?;
        positive(HTTP_TIMEOUT, self.http_timeout)?;
        positive(AWS_OPERATION_TIMEOUT, self.aws_timeouts.operation)?;
        positive(AWS_ATTEMPT_TIMEOUT, self.aws_timeouts.attempt)?;
        if self.aws_timeouts.attempt > self.aws_timeouts.operation {
            return Err(ConfigError {
                variable: AWS_ATTEMPT_TIMEOUT,
                message: format!(
                    "one attempt ({}) cannot be longer than the whole operation ({AWS_OPERATION_TIMEOUT}: {})",
                    humantime::format_duration(self.aws_timeouts.attempt),
                    humantime::format_duration(self.aws_timeouts.operation)
                ),
            });
        }
        Ok(())
    }
}

/// Parses `90s`, `15m`, `4h`, `1h30m`, `0s`.
///
/// # Errors
///
/// A message quoting `text` and giving examples of what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("expected a duration such as 90s, 15m or 4h, got {text:?} ({e})"))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses the iAdvize base URL: it must be `https`, except on loopback hosts (tests and the
/// demo).
///
/// # Errors
///
/// What is wrong, quoting `text`: not a URL, another scheme, or `http` on a host that is not
/// loopback.
pub fn parse_api_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {text:?} ({e})"))?;
    check_scheme(&url, text)?;
    Ok(url)
}

/// [`parse_api_url`]'s rule for a URL already parsed.
fn check_api_url(url: &Url) -> Result<(), String> {
    check_scheme(url, url.as_str())
}

fn check_scheme(url: &Url, text: &str) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{text:?} must use https (plain http is only allowed for loopback hosts)"
        )),
        other => Err(format!("{text:?} has scheme {other:?}; expected https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[]).unwrap();
        assert_eq!(c.api_url.as_str(), "https://api.iadvize.com/");
        assert_eq!(c.refresh_before_expiry, Duration::from_secs(4 * 3600));
        assert_eq!(c.min_login_interval, Duration::from_secs(10));
        assert_eq!(c.stuck_rotation_after, Duration::from_secs(900));
        assert_eq!(c.http_timeout, Duration::from_secs(10));
        assert!(c.verify_token);
        assert!(c.token_secret_ids.is_empty());
        assert!(c.credentials_secret_id.is_none());
        assert_eq!(
            c.refused_credentials_retry,
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(c.max_logins_per_minute.get(), 30);
        assert!(!c.per_secret_metrics);
        assert_eq!(c.aws_timeouts.operation, Duration::from_secs(20));
        assert_eq!(c.aws_timeouts.attempt, Duration::from_secs(5));
    }

    #[test]
    fn values_are_parsed() {
        let c = config(&[
            (TOKEN_SECRET_IDS, " a, arn:aws:secretsmanager:x ,,b "),
            (CREDENTIALS_SECRET_ID, "creds"),
            (API_URL, "http://127.0.0.1:8080"),
            (REFRESH_BEFORE_EXPIRY, "90s"),
            (MIN_LOGIN_INTERVAL, "0s"),
            (STUCK_ROTATION_AFTER, "1h30m"),
            (VERIFY_TOKEN, "false"),
            (MAX_CONCURRENCY, "2"),
            (REFUSED_CREDENTIALS_RETRY, "OFF"),
            (MAX_LOGINS_PER_MINUTE, "100"),
            (PER_SECRET_METRICS, "true"),
            (AWS_OPERATION_TIMEOUT, "1s"),
            (AWS_ATTEMPT_TIMEOUT, "500ms"),
        ])
        .unwrap();
        assert_eq!(c.aws_timeouts.operation, Duration::from_secs(1));
        assert_eq!(c.aws_timeouts.attempt, Duration::from_millis(500));
        assert_eq!(c.refused_credentials_retry, None);
        assert_eq!(c.max_logins_per_minute.get(), 100);
        assert!(c.per_secret_metrics);
        assert_eq!(c.token_secret_ids, ["a", "arn:aws:secretsmanager:x", "b"]);
        assert_eq!(c.credentials_secret_id.as_deref(), Some("creds"));
        assert_eq!(c.refresh_before_expiry, Duration::from_secs(90));
        assert_eq!(c.min_login_interval, Duration::ZERO);
        assert_eq!(c.stuck_rotation_after, Duration::from_secs(5400));
        assert!(!c.verify_token);
        assert_eq!(c.max_concurrency.get(), 2);
    }

    #[test]
    fn a_short_operation_time_out_alone_shortens_the_attempt_time_out_too() {
        let c = config(&[(AWS_OPERATION_TIMEOUT, "1s")]).unwrap();
        assert_eq!(c.aws_timeouts.operation, Duration::from_secs(1));
        assert_eq!(c.aws_timeouts.attempt, Duration::from_secs(1));
        let c = config(&[(AWS_OPERATION_TIMEOUT, "1m")]).unwrap();
        assert_eq!(
            c.aws_timeouts.attempt,
            Duration::from_secs(5),
            "the default attempt"
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            (REFRESH_BEFORE_EXPIRY, "soon"),
            (HTTP_TIMEOUT, "0s"),
            (VERIFY_TOKEN, "maybe"),
            (MAX_CONCURRENCY, "0"),
            (REFUSED_CREDENTIALS_RETRY, "0s"),
            (REFUSED_CREDENTIALS_RETRY, "never"),
            (MAX_LOGINS_PER_MINUTE, "0"),
            (MAX_LOGINS_PER_MINUTE, "101"),
            (PER_SECRET_METRICS, "sometimes"),
            (AWS_OPERATION_TIMEOUT, "0s"),
            (AWS_OPERATION_TIMEOUT, "never"),
            (AWS_ATTEMPT_TIMEOUT, "0s"),
            (AWS_ATTEMPT_TIMEOUT, "30s"),
            (API_URL, "http://api.iadvize.com"),
            (API_URL, "ftp://127.0.0.1"),
            (API_URL, "not a url"),
            (THROTTLE_PAUSE, "10000y"),
            (THROTTLE_PAUSE, "25h"),
            (REPORT_VERIFY_INTERVAL, "10000y"),
            (REFUSED_CREDENTIALS_RETRY, "10000y"),
            (STUCK_ROTATION_AFTER, "10000y"),
            (REFRESH_BEFORE_EXPIRY, "10000y"),
            (MIN_LOGIN_INTERVAL, "10000y"),
            (HTTP_TIMEOUT, "10000y"),
            (HTTP_TIMEOUT, "16m"),
            (AWS_OPERATION_TIMEOUT, "10000y"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(
                err.to_string()
                    .starts_with(&format!("configuration: {var}: "))
            );
        }
    }

    #[test]
    fn the_longest_values_are_accepted_and_a_throttle_pause_of_0s_is_off() {
        let c = config(&[
            (THROTTLE_PAUSE, "24h"),
            (REPORT_VERIFY_INTERVAL, "30d"),
            (REFUSED_CREDENTIALS_RETRY, "30d"),
            (STUCK_ROTATION_AFTER, "30d"),
            (REFRESH_BEFORE_EXPIRY, "30d"),
            (MIN_LOGIN_INTERVAL, "30d"),
            (HTTP_TIMEOUT, "15m"),
            (AWS_OPERATION_TIMEOUT, "15m"),
            (AWS_ATTEMPT_TIMEOUT, "15m"),
        ])
        .unwrap();
        assert_eq!(c.throttle_pause, Duration::from_secs(24 * 3600));
        let err = config(&[(THROTTLE_PAUSE, "10000y")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration: IADVIZE_THROTTLE_PAUSE: must be at most 1day (the longest Retry-After the broker accepts), got 10000years"
        );
        assert_eq!(
            config(&[(THROTTLE_PAUSE, "0s")]).unwrap().throttle_pause,
            Duration::ZERO
        );
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert!(parse_api_url("http://localhost:1234").is_ok());
        assert!(parse_api_url("http://[::1]:1234").is_ok());
        assert!(parse_api_url("https://api.iadvize.com").is_ok());
        assert!(parse_api_url("http://10.0.0.1").is_err());
    }
}
