//! The broker's configuration: read once from the environment at start-up and validated,
//! so a bad value fails the cold start with a message naming the variable.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use reqwest::Url;

use crate::bounds::AwsTimeouts;

/// Default iAdvize API base URL.
pub const DEFAULT_API_URL: &str = "https://api.iadvize.com";

/// The validated configuration of DESIGN §8.
#[derive(Debug, Clone)]
pub struct Config {
    /// Token secrets a refresh tick manages (`IADVIZE_TOKEN_SECRET_IDS`).
    pub token_secret_ids: Vec<String>,
    /// Default credentials secret (`IADVIZE_CREDENTIALS_SECRET_ID`); a token secret's
    /// `iadvize:credentials-secret-id` tag takes precedence.
    pub credentials_secret_id: Option<String>,
    /// iAdvize base URL, `https` unless the host is a loopback address.
    pub api_url: Url,
    /// Refresh when less than this remains before `expires_at`.
    pub refresh_before_expiry: Duration,
    /// Minimum spacing between the starts of two logins for one token secret.
    pub min_login_interval: Duration,
    /// An unfinished rotation older than this is resumed by the tick (`0s`: at once).
    pub stuck_rotation_after: Duration,
    /// Timeout of one HTTP request to iAdvize.
    pub http_timeout: Duration,
    /// Whether testSecret calls `/_authenticated`.
    pub verify_token: bool,
    /// How many token secrets a tick refreshes at the same time.
    pub max_concurrency: NonZeroUsize,
    /// While iAdvize's refusal of a credentials version stands, one probe login per this
    /// (`None`: never probe; only a new credentials value clears the block).
    pub refused_credentials_retry: Option<Duration>,
    /// Logins the whole broker may start in any rolling minute (iAdvize allows 100/min per IP).
    pub max_logins_per_minute: NonZeroU32,
    /// Whether metrics are also emitted per token secret (dimension `SecretName`). Off by
    /// default: every per-secret series is a billed custom metric.
    pub per_secret_metrics: bool,
    /// Time-outs of every AWS call: one operation with its retries
    /// (`IADVIZE_AWS_OPERATION_TIMEOUT`) and one attempt (`IADVIZE_AWS_ATTEMPT_TIMEOUT`).
    pub aws_timeouts: AwsTimeouts,
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
        }
    }
}

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads and validates a configuration from any variable lookup (the environment, a map).
    /// Unset and empty variables take their defaults.
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
                Ok(retry) if !retry.is_zero() => Some(retry),
                Ok(_) => {
                    return Err(ConfigError {
                        variable: REFUSED_CREDENTIALS_RETRY,
                        message: "must be longer than 0s, or off".into(),
                    });
                }
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
                .filter(|n: &NonZeroU32| n.get() <= 100)
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
        if http_timeout.is_zero() {
            return Err(ConfigError {
                variable: HTTP_TIMEOUT,
                message: "must be longer than 0s".into(),
            });
        }
        let positive = |name: &'static str, default: Duration| {
            let value = duration(name, default)?;
            if value.is_zero() {
                return Err(ConfigError {
                    variable: name,
                    message: "must be longer than 0s".into(),
                });
            }
            Ok(value)
        };
        let operation = positive(AWS_OPERATION_TIMEOUT, defaults.aws_timeouts.operation)?;
        // Left unset, the attempt time-out follows a shorter operation time-out rather than
        // refusing a setting the operator did not make.
        let aws_timeouts = AwsTimeouts {
            operation,
            attempt: positive(
                AWS_ATTEMPT_TIMEOUT,
                defaults.aws_timeouts.attempt.min(operation),
            )?,
        };
        if aws_timeouts.attempt > aws_timeouts.operation {
            return Err(ConfigError {
                variable: AWS_ATTEMPT_TIMEOUT,
                message: format!(
                    "one attempt ({}) cannot be longer than the whole operation ({AWS_OPERATION_TIMEOUT}: {})",
                    humantime::format_duration(aws_timeouts.attempt),
                    humantime::format_duration(aws_timeouts.operation)
                ),
            });
        }

        Ok(Config {
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
        })
    }
}

/// Parses `90s`, `15m`, `4h`, `1h30m`, `0s`.
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

/// The base URL must be `https`, except on loopback hosts (tests and the demo).
pub fn parse_api_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {text:?} ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
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
    fn plain_http_is_only_for_loopback() {
        assert!(parse_api_url("http://localhost:1234").is_ok());
        assert!(parse_api_url("http://[::1]:1234").is_ok());
        assert!(parse_api_url("https://api.iadvize.com").is_ok());
        assert!(parse_api_url("http://10.0.0.1").is_err());
    }
}
