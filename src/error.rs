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
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// A rotation step event that the Secrets Manager contract forbids acting on.
    #[error("secret {secret_id}: {message}")]
    Guard {
        /// The token secret.
        secret_id: String,
        /// What is wrong.
        message: String,
    },

    /// The secret does not exist.
    #[error(
        "secret {secret_id} was not found; check the name/ARN and the broker's IAM permissions"
    )]
    SecretNotFound {
        /// The secret.
        secret_id: String,
    },

    /// A Secrets Manager call failed.
    #[error("secret {secret_id}: Secrets Manager {operation} failed: {message}")]
    SecretsManager {
        /// The secret.
        secret_id: String,
        /// The API operation.
        operation: &'static str,
        /// The SDK's explanation.
        message: String,
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
        "secret {secret_id}: no credentials secret: tag it with iadvize:credentials-secret-id or set IADVIZE_CREDENTIALS_SECRET_ID"
    )]
    NoCredentialsSecret {
        /// The token secret.
        secret_id: String,
    },

    /// The credentials secret's value is missing or malformed.
    #[error(
        "credentials secret {credentials_secret_id}: {message}; put a value like {{\"username\": \"…\", \"password\": \"…\"}}"
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
    #[error("secret {secret_id}: {source}")]
    Iadvize {
        /// The token secret.
        secret_id: String,
        /// What went wrong.
        #[source]
        source: IadvizeError,
    },

    /// The pending token failed testSecret.
    #[error("secret {secret_id}: the new token (version {version_id}) failed its test: {message}")]
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
