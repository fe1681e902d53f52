//! The broker's errors. Every message tells the operator what happened and, where it
//! helps, what to do; none contains a token, a password, a username or a RotationToken.

use std::time::Duration;

use crate::config::ConfigError;
use crate::iadvize::IadvizeError;

/// Everything that can make an invocation fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The event is not one the broker accepts.
    #[error("invalid event: {}", echo(.0))]
    InvalidEvent(String),

    /// A rotation step event that the Secrets Manager contract forbids acting on.
    #[error("secret {}: {}", echo(secret_id), echo(message))]
    Guard {
        /// The token secret.
        secret_id: String,
        /// What is wrong.
        message: String,
    },

    /// The secret does not exist.
    #[error(
        "secret {} was not found; check the name/ARN and the broker's IAM permissions",
        echo(secret_id)
    )]
    SecretNotFound {
        /// The secret.
        secret_id: String,
    },

    /// A Secrets Manager call failed.
    #[error(
        "secret {}: Secrets Manager {operation} failed: {}",
        echo(secret_id),
        echo(message)
    )]
    SecretsManager {
        /// The secret.
        secret_id: String,
        /// The API operation.
        operation: &'static str,
        /// The SDK's explanation.
        message: String,
        /// Whether the same call may succeed later ([`Retry::of_sdk`]).
        retry: Retry,
    },

    /// Secrets Manager did not answer a call within its bound (or no time was left to make
    /// it). The call changed nothing: it was a read, or a write that was never sent.
    #[error("secret {secret_id}: {message}")]
    SecretsManagerNoAnswer {
        /// The secret.
        secret_id: String,
        /// The API operation.
        operation: &'static str,
        /// Which bound ran out, and after how long.
        message: String,
    },

    /// A write was sent but Secrets Manager's answer never came within its bound: it may have
    /// been applied or not.
    #[error(
        "secret {secret_id}: {message}: the write is not confirmed (Secrets Manager may have applied it); the next tick reads the secret and acts on what it finds"
    )]
    SecretsManagerNotConfirmed {
        /// The secret.
        secret_id: String,
        /// The API operation.
        operation: &'static str,
        /// Which bound ran out, and after how long.
        message: String,
    },

    /// No credentials secret is configured for a token secret.
    #[error(
        "secret {}: no credentials secret: tag it with iadvize:credentials-secret-id or set IADVIZE_CREDENTIALS_SECRET_ID",
        echo(secret_id)
    )]
    NoCredentialsSecret {
        /// The token secret.
        secret_id: String,
    },

    /// The credentials secret's value is missing or malformed.
    #[error(
        "credentials secret {}: {message}; put a value like {{\"username\": \"…\", \"password\": \"…\"}}",
        echo(credentials_secret_id)
    )]
    BadCredentials {
        /// The credentials secret.
        credentials_secret_id: String,
        /// What is wrong (never the value).
        message: String,
    },

    /// iAdvize refused the credentials just now.
    #[error(
        "iAdvize refused the credentials in secret {credentials_secret_id} (version {version_id}); put a corrected value to retry"
    )]
    CredentialsRefused {
        /// The credentials secret.
        credentials_secret_id: String,
        /// Its AWSCURRENT VersionId.
        version_id: String,
    },

    /// iAdvize refused this credentials version earlier: no login until the value changes,
    /// except one probe per `IADVIZE_REFUSED_CREDENTIALS_RETRY`.
    #[error(
        "not logging in: iAdvize already refused the credentials in secret {credentials_secret_id} (version {version_id}); put a corrected value to retry ({next_probe})"
    )]
    CredentialsBlocked {
        /// The credentials secret.
        credentials_secret_id: String,
        /// The refused VersionId, still AWSCURRENT.
        version_id: String,
        /// When the next probe login is due, in words.
        next_probe: String,
    },

    /// A login for this token secret started too recently.
    #[error(
        "secret {secret_id}: not logging in: the previous login attempt started {since:?} ago, less than IADVIZE_MIN_LOGIN_INTERVAL ({interval:?}); retry later"
    )]
    LoginSpacing {
        /// The token secret.
        secret_id: String,
        /// Time since the previous attempt started.
        since: Duration,
        /// The configured spacing.
        interval: Duration,
    },

    /// Login pacing (per-user spacing, per-minute cap) has no free slot early enough for this
    /// invocation to finish the rotation.
    #[error(
        "secret {secret_id}: not logging in: the next free login slot (IADVIZE_MIN_LOGIN_INTERVAL per iAdvize user, IADVIZE_MAX_LOGINS_PER_MINUTE for the broker) is {wait:?} away, too late for this invocation; the next tick takes it first"
    )]
    LoginPaced {
        /// The token secret.
        secret_id: String,
        /// How long until the slot.
        wait: Duration,
    },

    /// Talking to iAdvize failed.
    #[error("secret {}: {source}", echo(secret_id))]
    Iadvize {
        /// The token secret.
        secret_id: String,
        /// What went wrong.
        #[source]
        source: IadvizeError,
    },

    /// The pending token failed testSecret.
    #[error(
        "secret {}: the new token (version {}) failed its test: {message}",
        echo(secret_id),
        echo(version_id)
    )]
    TestFailed {
        /// The token secret.
        secret_id: String,
        /// The pending version.
        version_id: String,
        /// Why.
        message: String,
    },

    /// iAdvize rejected the token it had just issued; it was not stored.
    #[error(
        "secret {secret_id}: iAdvize /_authenticated rejected the token it just issued ({reason}); nothing was stored and AWSCURRENT is unchanged"
    )]
    NewTokenRejected {
        /// The token secret.
        secret_id: String,
        /// iAdvize's error code.
        reason: String,
    },

    /// One or more secrets failed during a refresh tick.
    #[error("refresh failed for {failed} of {total} secret(s): {summary}")]
    TickFailed {
        /// Number of failed secrets.
        failed: usize,
        /// Number of secrets in the tick.
        total: usize,
        /// `secret: error` lines.
        summary: String,
    },
}

impl Error {
    /// A short machine-readable name, used as the Lambda `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "ConfigError",
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::Guard { .. } => "RotationGuard",
            Error::SecretNotFound { .. } => "SecretNotFound",
            Error::SecretsManager { .. } => "SecretsManagerError",
            Error::SecretsManagerNoAnswer { .. } => "SecretsManagerNoAnswer",
            Error::SecretsManagerNotConfirmed { .. } => "SecretsManagerNotConfirmed",
            Error::NoCredentialsSecret { .. } => "NoCredentialsSecret",
            Error::BadCredentials { .. } => "BadCredentials",
            Error::CredentialsRefused { .. } => "CredentialsRefused",
            Error::CredentialsBlocked { .. } => "CredentialsBlocked",
            Error::LoginSpacing { .. } => "LoginSpacing",
            Error::LoginPaced { .. } => "LoginPaced",
            Error::Iadvize { .. } => "IadvizeError",
            Error::TestFailed { .. } => "TestSecretFailed",
            Error::NewTokenRejected { .. } => "NewTokenRejected",
            Error::TickFailed { .. } => "RefreshFailed",
        }
    }
}

impl Error {
    /// Whether a login was held back on purpose (spacing, pacing): another login for the same
    /// user started moments ago, so this is no failure while the current token still works.
    pub fn is_held_back(&self) -> bool {
        matches!(self, Error::LoginSpacing { .. })
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.kind().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Shorthand for results of the broker.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Most bytes of a value taken from input (an event, a tag, an answer of Secrets Manager or
/// iAdvize) that an error, a log line or a metric dimension shows. Every valid Secrets Manager
/// name (512 characters at most) and ARN fits whole; with the marker, a capped value still fits
/// a CloudWatch dimension value (1,024 characters).
pub const ECHO_MAX_BYTES: usize = 640;

/// A value taken from input, as errors, logs and metrics show it: whole up to
/// [`ECHO_MAX_BYTES`], else its beginning and a marker with its length, e.g.
/// `arn:aws:……(1048576 bytes)`, so a hostile or broken input cannot flood an answer, a log
/// line or a metric. Cut on a character boundary.
pub fn echo(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= ECHO_MAX_BYTES {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut end = ECHO_MAX_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…({} bytes)", &value[..end], value.len()))
}

/// Serializes a value taken from input as [`echo`] shows it (for answers and logged reports
/// that name an operator's secret ids).
pub(crate) fn serialize_echo<S: serde::Serializer>(
    value: &str,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&echo(value))
}

/// Whether an outside call that failed may succeed if it is sent again unchanged: the one
/// classification behind every retry decision of the broker (iAdvize's requests, Secrets
/// Manager's errors). The rules follow the Secrets Manager agent's `is_transient_error`
/// (aws-secretsmanager-agent, `aws_secretsmanager_caching/src/error.rs`): timeouts,
/// unreadable answers, connection failures, server errors and throttling are transient;
/// everything else — a request refused for what it says, missing permissions, a request that
/// could not even be built — is permanent: no retry can fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// May succeed later: retry (with backoff) while time is left.
    Transient,
    /// Will fail the same way: report it at once.
    Permanent,
}

impl Retry {
    /// An HTTP status that is not a success: 408 Request Timeout, 429 Too Many Requests
    /// (RFC 9110 §15.5.9, RFC 6585 §4) and the 5xx server errors are transient, except 501 Not
    /// Implemented and 505 HTTP Version Not Supported, which say the request itself cannot be
    /// served. Every other status answers the request as sent.
    pub fn of_status(status: u16) -> Retry {
        match status {
            408 | 429 => Retry::Transient,
            501 | 505 => Retry::Permanent,
            500..=599 => Retry::Transient,
            _ => Retry::Permanent,
        }
    }

    /// A failure of the HTTP client before any status: a request that could not be built (a
    /// header value with a control character, …) or that asked for a redirect the client does
    /// not follow is permanent; a timeout, a connection failure or a body that could not be
    /// read is transient.
    pub fn of_http(e: &reqwest::Error) -> Retry {
        if e.is_builder() || e.is_redirect() {
            Retry::Permanent
        } else {
            Retry::Transient
        }
    }

    /// An AWS SDK failure. Transient: time-outs, answers that could not be read, dispatch
    /// failures from I/O or a time-out, a 5xx answer, and the throttling codes of the AWS
    /// SDKs' standard retry mode. Permanent: a request that could not be constructed, any
    /// other dispatch failure (a bad endpoint or configuration) and every other service error
    /// (access denied, not found, invalid request, KMS refusals, …).
    pub fn of_sdk<E>(e: &aws_sdk_secretsmanager::error::SdkError<E, HttpResponse>) -> Retry
    where
        E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
    {
        use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
        /// Throttling error codes the AWS SDKs' standard retry mode retries.
        const THROTTLING: [&str; 8] = [
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "TransactionInProgressException",
            "RequestLimitExceeded",
        ];
        match e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Retry::Transient,
            SdkError::DispatchFailure(failure) if failure.is_timeout() || failure.is_io() => {
                Retry::Transient
            }
            SdkError::ServiceError(service)
                if service.raw().status().is_server_error()
                    || e.code().is_some_and(|code| THROTTLING.contains(&code)) =>
            {
                Retry::Transient
            }
            _ => Retry::Permanent,
        }
    }
}

/// The HTTP response type of the AWS SDK's errors.
type HttpResponse = aws_sdk_secretsmanager::config::http::HttpResponse;

impl Error {
    /// Whether sending the failed call again, unchanged, may succeed (see [`Retry`]). Only a
    /// Secrets Manager failure or an iAdvize failure that persisted through its retries can be
    /// transient; everything else the broker reports is about the event, the configuration or
    /// the secrets' values, which a retry does not change.
    pub fn retry(&self) -> Retry {
        match self {
            Error::SecretsManager { retry, .. } => *retry,
            // A time-out, like the SDK's own (`Retry::of_sdk`): a later call may be answered.
            Error::SecretsManagerNoAnswer { .. } | Error::SecretsManagerNotConfirmed { .. } => {
                Retry::Transient
            }
            Error::Iadvize { source, .. } => source.retry(),
            _ => Retry::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_transient_only_when_a_retry_can_help() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(Retry::of_status(status), Retry::Transient, "{status}");
        }
        for status in [200, 301, 400, 401, 403, 404, 413, 501, 505] {
            assert_eq!(Retry::of_status(status), Retry::Permanent, "{status}");
        }
    }

    #[test]
    fn a_call_without_an_answer_is_transient() {
        for error in [
            Error::SecretsManagerNoAnswer {
                secret_id: "s".into(),
                operation: "DescribeSecret",
                message: "m".into(),
            },
            Error::SecretsManagerNotConfirmed {
                secret_id: "s".into(),
                operation: "PutSecretValue",
                message: "m".into(),
            },
        ] {
            assert_eq!(error.retry(), Retry::Transient, "{error}");
        }
    }

    #[test]
    fn a_request_that_cannot_be_built_is_permanent() {
        let error = reqwest::Client::new()
            .get("http://127.0.0.1:9/")
            .bearer_auth("tok\u{7}en")
            .build()
            .unwrap_err();
        assert_eq!(Retry::of_http(&error), Retry::Permanent);
    }

    #[test]
    fn echo_keeps_short_values_and_caps_long_ones_with_their_length() {
        assert_eq!(echo("team/a"), "team/a");
        let long = "é".repeat(1000);
        let shown = echo(&long);
        assert!(shown.ends_with("…(2000 bytes)"), "{shown}");
        assert!(shown.len() <= ECHO_MAX_BYTES + "…(2000 bytes)".len());
    }
}
