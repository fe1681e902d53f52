//! The broker's errors, and the one rule that says which failures a retry can fix
//! ([`Retry`]). Every message tells the operator what happened and, where it helps, what to
//! do; none contains a token, a password, a username or a RotationToken.

use std::time::Duration;

use serde::Serialize;

use crate::config::ConfigError;

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
        /// The service's error code (`AccessDeniedException`, `ThrottlingException`, …),
        /// when the call got an answer that had one.
        code: Option<String>,
        /// The SDK's explanation (the code and the service's message).
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

    /// iAdvize answered a login with 429 and the broker pauses its logins: this login did
    /// not start (or stopped retrying) so that one login alone waits out the limit.
    #[error(
        "secret {}: not logging in: iAdvize rate-limits the broker's logins (HTTP 429) and the broker pauses them {}; the next tick or follow-up takes it first",
        echo(secret_id),
        until.map_or_else(|| "while one login waits out the limit".to_owned(), |at| format!("until {}", iadvize_token_consumer::token::rfc3339(at)))
    )]
    LoginThrottled {
        /// The token secret.
        secret_id: String,
        /// When the pause ends, if known (unknown while one login still retries).
        until: Option<time::OffsetDateTime>,
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

    /// A report or a credentials event named a secret the broker does not manage (not tagged
    /// `iadvize:managed=true`, not in `IADVIZE_TOKEN_SECRET_IDS`).
    #[error(
        "secret {} is not a token secret this broker manages (tag it iadvize:managed=true or list it in IADVIZE_TOKEN_SECRET_IDS); nothing was done",
        echo(secret_id)
    )]
    NotManaged {
        /// The secret as named.
        secret_id: String,
    },
    /// A refresh named a credentials secret (tagged `iadvize:credentials=true`, the
    /// `IADVIZE_CREDENTIALS_SECRET_ID`, or named by a token secret's
    /// `iadvize:credentials-secret-id` tag): refreshing it would replace the credentials with a
    /// token record. Nothing was written.
    #[error(
        "secret {} is a credentials secret ({why}), not a token secret: a refresh would overwrite the iAdvize credentials with a token; nothing was written (refresh the token secrets that use it instead)",
        echo(secret_id)
    )]
    CredentialsSecret {
        /// The secret as named.
        secret_id: String,
        /// How the broker knows it holds credentials.
        why: String,
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

/// What kind of failure an [`Error`] is: its variant without the details. Serialised (and
/// shown as the Lambda `errorType`) as the names of [`ErrorKind::as_str`], e.g.
/// `CredentialsBlocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// [`Error::Config`]: `ConfigError`.
    Config,
    /// [`Error::InvalidEvent`]: `InvalidEvent`.
    InvalidEvent,
    /// [`Error::Guard`]: `RotationGuard`.
    Guard,
    /// [`Error::SecretNotFound`]: `SecretNotFound`.
    SecretNotFound,
    /// [`Error::SecretsManager`]: `SecretsManagerError`.
    SecretsManager,
    /// [`Error::SecretsManagerNoAnswer`]: `SecretsManagerNoAnswer`.
    SecretsManagerNoAnswer,
    /// [`Error::SecretsManagerNotConfirmed`]: `SecretsManagerNotConfirmed`.
    SecretsManagerNotConfirmed,
    /// [`Error::NoCredentialsSecret`]: `NoCredentialsSecret`.
    NoCredentialsSecret,
    /// [`Error::BadCredentials`]: `BadCredentials`.
    BadCredentials,
    /// [`Error::CredentialsRefused`]: `CredentialsRefused`.
    CredentialsRefused,
    /// [`Error::CredentialsBlocked`]: `CredentialsBlocked`.
    CredentialsBlocked,
    /// [`Error::LoginSpacing`]: `LoginSpacing`.
    LoginSpacing,
    /// [`Error::LoginPaced`]: `LoginPaced`.
    LoginPaced,
    /// [`Error::LoginThrottled`]: `LoginThrottled`.
    LoginThrottled,
    /// [`Error::Iadvize`]: `IadvizeError`.
    Iadvize,
    /// [`Error::TestFailed`]: `TestSecretFailed`.
    TestFailed,
    /// [`Error::NewTokenRejected`]: `NewTokenRejected`.
    NewTokenRejected,
    /// [`Error::TickFailed`]: `RefreshFailed`.
    TickFailed,
    /// [`Error::NotManaged`]: `NotManaged`.
    NotManaged,
    /// [`Error::CredentialsSecret`]: `CredentialsSecret`.
    CredentialsSecret,
    /// A secret the tick left for the next one although its token does not last until then
    /// (no [`Error`] variant: the tick reports it in the secret's result): `Deferred`.
    Deferred,
}

impl ErrorKind {
    /// The machine-readable name (the Lambda `errorType`, the `error_kind` of a tick's result).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "ConfigError",
            ErrorKind::InvalidEvent => "InvalidEvent",
            ErrorKind::Guard => "RotationGuard",
            ErrorKind::SecretNotFound => "SecretNotFound",
            ErrorKind::SecretsManager => "SecretsManagerError",
            ErrorKind::SecretsManagerNoAnswer => "SecretsManagerNoAnswer",
            ErrorKind::SecretsManagerNotConfirmed => "SecretsManagerNotConfirmed",
            ErrorKind::NoCredentialsSecret => "NoCredentialsSecret",
            ErrorKind::BadCredentials => "BadCredentials",
            ErrorKind::CredentialsRefused => "CredentialsRefused",
            ErrorKind::CredentialsBlocked => "CredentialsBlocked",
            ErrorKind::LoginSpacing => "LoginSpacing",
            ErrorKind::LoginPaced => "LoginPaced",
            ErrorKind::LoginThrottled => "LoginThrottled",
            ErrorKind::Iadvize => "IadvizeError",
            ErrorKind::TestFailed => "TestSecretFailed",
            ErrorKind::NewTokenRejected => "NewTokenRejected",
            ErrorKind::TickFailed => "RefreshFailed",
            ErrorKind::NotManaged => "NotManaged",
            ErrorKind::CredentialsSecret => "CredentialsSecret",
            ErrorKind::Deferred => "Deferred",
        }
    }

    /// Whether iAdvize refused the credentials, now or before: no login until they change
    /// (the operator must put a corrected value).
    pub fn is_credentials_refusal(self) -> bool {
        matches!(
            self,
            ErrorKind::CredentialsRefused | ErrorKind::CredentialsBlocked
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Error {
    /// What kind of failure this is; [`ErrorKind::as_str`] is the Lambda `errorType`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Config,
            Error::InvalidEvent(_) => ErrorKind::InvalidEvent,
            Error::Guard { .. } => ErrorKind::Guard,
            Error::SecretNotFound { .. } => ErrorKind::SecretNotFound,
            Error::SecretsManager { .. } => ErrorKind::SecretsManager,
            Error::SecretsManagerNoAnswer { .. } => ErrorKind::SecretsManagerNoAnswer,
            Error::SecretsManagerNotConfirmed { .. } => ErrorKind::SecretsManagerNotConfirmed,
            Error::NoCredentialsSecret { .. } => ErrorKind::NoCredentialsSecret,
            Error::BadCredentials { .. } => ErrorKind::BadCredentials,
            Error::CredentialsRefused { .. } => ErrorKind::CredentialsRefused,
            Error::CredentialsBlocked { .. } => ErrorKind::CredentialsBlocked,
            Error::LoginSpacing { .. } => ErrorKind::LoginSpacing,
            Error::LoginPaced { .. } => ErrorKind::LoginPaced,
            Error::LoginThrottled { .. } => ErrorKind::LoginThrottled,
            Error::Iadvize { .. } => ErrorKind::Iadvize,
            Error::TestFailed { .. } => ErrorKind::TestFailed,
            Error::NewTokenRejected { .. } => ErrorKind::NewTokenRejected,
            Error::TickFailed { .. } => ErrorKind::TickFailed,
            Error::NotManaged { .. } => ErrorKind::NotManaged,
            Error::CredentialsSecret { .. } => ErrorKind::CredentialsSecret,
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.kind().as_str().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Why a request to iAdvize did not give a usable answer. Never holds a token or a body.
#[derive(Debug, thiserror::Error)]
pub enum IadvizeError {
    /// 400/401 with an OAuth error: the credentials are wrong. Not retried.
    #[error("iAdvize refused the credentials (HTTP {status}, {error})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// OAuth error code, e.g. `invalid_grant`.
        error: String,
    },
    /// Still 429 after the retries, or the next retry would pass the deadline.
    #[error(
        "iAdvize rate-limited the request (HTTP 429) {attempts} time(s); gave up {why}; logins are limited to 10/min per user and 100/min per IP"
    )]
    RateLimited {
        /// Requests sent.
        attempts: u32,
        /// Why no further retry.
        why: &'static str,
    },
    /// Server errors or transport failures persisted.
    #[error("{what} failed after {attempts} attempt(s), gave up {why}: {last}")]
    Unavailable {
        /// `login` or `token verification`.
        what: &'static str,
        /// Requests sent.
        attempts: u32,
        /// Why no further retry.
        why: &'static str,
        /// The last failure (an HTTP status or a transport error).
        last: String,
    },
    /// A status the broker does not know what to do with; not retried.
    #[error("{what}: unexpected HTTP {status}{}", error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    UnexpectedStatus {
        /// `login` or `token verification`.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// OAuth error code, if the body had one.
        error: Option<String>,
    },
    /// A 4xx of the login that is not a refusal of the credentials (no RFC 6749
    /// bad-credentials code): transient, never blocks the credentials.
    #[error("login: iAdvize (or a proxy in front of it) answered HTTP {status}{} without an OAuth bad-credentials error; not treated as refused credentials, the next tick tries again", error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NotRefused {
        /// HTTP status.
        status: u16,
        /// OAuth error code, if the body had one.
        error: Option<String>,
    },
    /// An answer larger than the most the client reads (`iadvize::MAX_ANSWER_BYTES`).
    #[error("{what}: the answer is larger than {limit} bytes; not read further")]
    TooLarge {
        /// `login` or `token verification`.
        what: &'static str,
        /// The most bytes read.
        limit: usize,
    },
    /// A 200 that cannot be used.
    #[error("iAdvize answered the login with an unusable response: {0}; nothing was stored")]
    BadResponse(String),
    /// No time was left to even try.
    #[error("{what}: no time left before the invocation deadline")]
    NoTimeLeft {
        /// `login` or `token verification`.
        what: &'static str,
    },
    /// The request could not be sent, for a reason no retry can fix (see
    /// [`Retry::of_http`]); it was not retried.
    #[error("{what}: the request could not be sent: {reason}; not retried (a retry cannot fix it)")]
    Unsendable {
        /// `login` or `token verification`.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl IadvizeError {
    /// Whether the failure came from refused credentials (and so must block further logins).
    pub fn is_refused(&self) -> bool {
        matches!(self, IadvizeError::Refused { .. })
    }

    /// Whether iAdvize's last answer was `429 Too Many Requests`.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, IadvizeError::RateLimited { .. })
    }

    /// Requests sent before the failure, when the failure came after any.
    pub fn attempts(&self) -> u32 {
        match self {
            IadvizeError::RateLimited { attempts, .. }
            | IadvizeError::Unavailable { attempts, .. } => *attempts,
            IadvizeError::Refused { .. }
            | IadvizeError::NotRefused { .. }
            | IadvizeError::UnexpectedStatus { .. }
            | IadvizeError::TooLarge { .. }
            | IadvizeError::BadResponse(_) => 1,
            IadvizeError::NoTimeLeft { .. } | IadvizeError::Unsendable { .. } => 0,
        }
    }

    /// Whether the same request may succeed later: what the retries gave up on (429, 5xx,
    /// time-outs, connection failures) and a 4xx that is not a refusal of the credentials
    /// (the next tick tries again) are transient; refused credentials, an unusable answer and
    /// a request that cannot be sent are permanent.
    pub fn retry(&self) -> Retry {
        match self {
            IadvizeError::RateLimited { .. }
            | IadvizeError::Unavailable { .. }
            | IadvizeError::NotRefused { .. }
            | IadvizeError::NoTimeLeft { .. } => Retry::Transient,
            IadvizeError::UnexpectedStatus { status, .. } => Retry::of_status(*status),
            IadvizeError::Refused { .. }
            | IadvizeError::TooLarge { .. }
            | IadvizeError::BadResponse(_)
            | IadvizeError::Unsendable { .. } => Retry::Permanent,
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
