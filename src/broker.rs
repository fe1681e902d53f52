//! The broker: the clients it needs, the one place that logs in (with the
//! rejected-credentials block and the login spacing), and the event dispatch.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::iadvize::{IadvizeClient, RetryPolicy};
use crate::metrics::Metrics;
use crate::store::{AWSCURRENT, Content, SecretInfo, SecretStore, Version};
use crate::token::{Credentials, TokenRecord, parse_rfc3339};

/// Tag on a token secret naming its credentials secret.
pub const TAG_CREDENTIALS_SECRET: &str = "iadvize:credentials-secret-id";
/// Tag on a token secret: when the last login attempt started (RFC 3339).
pub const TAG_LAST_LOGIN_ATTEMPT: &str = "iadvize:last-login-attempt";
/// Tag on a token secret: the credentials VersionId iAdvize refused.
pub const TAG_REJECTED_CREDENTIALS: &str = "iadvize:rejected-credentials-version";

/// Holds the configuration and the clients, built once per process.
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) config: Config,
    pub(crate) store: SecretStore,
    pub(crate) iadvize: IadvizeClient,
    pub(crate) metrics: Metrics,
    pub(crate) pacer: crate::pacing::Pacer,
}

impl Broker {
    /// A broker with the default retry policy.
    pub fn new(config: Config, store: SecretStore, metrics: Metrics) -> Result<Self> {
        Self::with_retry_policy(config, store, metrics, RetryPolicy::default())
    }

    /// A broker with a custom retry policy for iAdvize requests.
    pub fn with_retry_policy(
        config: Config,
        store: SecretStore,
        metrics: Metrics,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let iadvize = IadvizeClient::new(config.api_url.clone(), config.http_timeout, retry)
            .map_err(|e| {
                Error::Config(crate::config::ConfigError {
                    variable: "IADVIZE_API_URL",
                    message: format!("the HTTP client could not be built: {e}"),
                })
            })?;
        let metrics = metrics.per_secret(config.per_secret_metrics);
        Ok(Broker {
            config,
            store,
            iadvize,
            metrics,
            pacer: crate::pacing::Pacer::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Secrets Manager wrapper in use.
    pub fn store(&self) -> &SecretStore {
        &self.store
    }

    /// Handles one Lambda event and returns the response document.
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
            Event::Step(step) => {
                self.run_step(&step, deadline).await?;
                Ok(
                    json!({"step": step.step.as_str(), "secret_id": crate::error::echo(&step.secret_id), "outcome": "ok"}),
                )
            }
            Event::Scheduled => self.tick(None, false, deadline).await,
            Event::Refresh { force, secret_ids } => self.tick(secret_ids, force, deadline).await,
            Event::Status => {
                let report = self.status_fleet().await?;
                Ok(serde_json::to_value(report).unwrap_or(Value::Null))
            }
        }
    }

    async fn tick(
        &self,
        ids: Option<Vec<String>>,
        force: bool,
        deadline: Instant,
    ) -> Result<Value> {
        let report = match ids {
            Some(ids) => {
                let ids = self.managed_secret_ids(Some(ids))?;
                self.refresh(&ids, force, deadline).await
            }
            // The listed secrets plus the ones tagged iadvize:managed=true (DESIGN §11).
            None => self.refresh_fleet(force, deadline).await?,
        };
        let value = serde_json::to_value(&report).unwrap_or(Value::Null);
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

    fn managed_secret_ids(&self, ids: Option<Vec<String>>) -> Result<Vec<String>> {
        let ids = ids.unwrap_or_else(|| self.config.token_secret_ids.clone());
        if ids.is_empty() {
            return Err(Error::Config(crate::config::ConfigError {
                variable: "IADVIZE_TOKEN_SECRET_IDS",
                message: "no token secret to manage; set it to a comma-separated list of secret names or ARNs".into(),
            }));
        }
        Ok(ids)
    }

    /// The credentials secret a token secret uses: its tag (surrounding whitespace ignored: a
    /// secret id holds none), else the configured default.
    pub fn credentials_secret_id<'a>(&'a self, secret: &'a SecretInfo) -> Result<&'a str> {
        secret
            .tag(TAG_CREDENTIALS_SECRET)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .or(self.config.credentials_secret_id.as_deref())
            .ok_or_else(|| Error::NoCredentialsSecret {
                secret_id: secret.name.clone(),
            })
    }

    /// Reads and parses the AWSCURRENT credentials. Says what is wrong with a value that is
    /// not usable: none, empty, binary, not JSON, or JSON of the wrong shape.
    ///
    /// A binary value is refused even when it holds the right JSON: credentials are a
    /// `SecretString`, the one form the Secrets Manager console shows and edits as key/value
    /// pairs and that `aws secretsmanager get-secret-value --query SecretString` prints, so an
    /// operator can always see what the broker reads. The message says how to store it.
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
                crate::error::echo(credentials_secret_id)
            ))),
            Content::Empty => Err(bad("the value is empty".into())),
        }
    }

    /// Logs in for a token secret, unless its credentials were refused before or a login
    /// started less than `IADVIZE_MIN_LOGIN_INTERVAL` ago. Records the attempt, and a refusal,
    /// in the secret's tags.
    pub(crate) async fn login(
        &self,
        secret: &SecretInfo,
        deadline: Instant,
    ) -> Result<TokenRecord> {
        let credentials_id = self.credentials_secret_id(secret)?;
        let credentials = self.load_credentials(credentials_id).await?;

        let now = OffsetDateTime::now_utc();
        if secret.tag(TAG_REJECTED_CREDENTIALS) == Some(credentials.version_id.as_str()) {
            match self.next_probe_at(secret) {
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
                            |at| format!("next probe login at {}", crate::token::rfc3339(at)),
                        ),
                    });
                }
            }
        }
        // Per-user spacing and the per-minute cap (pacing.rs); may wait for a slot.
        let now = self.pace_login(secret, credentials_id, deadline).await?;

        self.store
            .set_tag(
                &secret.arn,
                TAG_LAST_LOGIN_ATTEMPT,
                &crate::token::rfc3339_precise(now),
            )
            .await?;
        tracing::info!(secret_id = %secret.name, credentials_version = %credentials.version_id, "logging in to iAdvize");
        match self.iadvize.login(&credentials, deadline).await {
            Ok(login) => {
                self.metrics.logins(&secret.name, login.attempts, false);
                tracing::info!(
                    secret_id = %secret.name,
                    attempts = login.attempts,
                    expires_at = %crate::token::rfc3339(login.record.expires_at),
                    "logged in"
                );
                if secret.tag(TAG_REJECTED_CREDENTIALS).is_some() {
                    self.store
                        .remove_tag(&secret.arn, TAG_REJECTED_CREDENTIALS)
                        .await?;
                }
                Ok(login.record)
            }
            Err(e) if e.is_refused() => {
                self.metrics.logins(&secret.name, 1, true);
                tracing::error!(secret_id = %secret.name, error = %e, "iAdvize refused the credentials");
                self.store
                    .set_tag(
                        &secret.arn,
                        TAG_REJECTED_CREDENTIALS,
                        &credentials.version_id,
                    )
                    .await?;
                Err(Error::CredentialsRefused {
                    credentials_secret_id: credentials_id.to_owned(),
                    version_id: credentials.version_id,
                })
            }
            Err(e) => Err(Error::Iadvize {
                secret_id: secret.name.clone(),
                source: e,
            }),
        }
    }
}

impl Broker {
    /// While iAdvize's refusal of a credentials version stands: when the next probe login may
    /// start (`IADVIZE_REFUSED_CREDENTIALS_RETRY` after the last attempt), `None` when probing
    /// is off. Probes are login attempts too, so the last-attempt tag is the probe clock.
    pub fn next_probe_at(&self, secret: &SecretInfo) -> Option<OffsetDateTime> {
        let retry = time::Duration::try_from(self.config.refused_credentials_retry?).ok()?;
        let last = secret
            .tag(TAG_LAST_LOGIN_ATTEMPT)
            .and_then(parse_rfc3339)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // A tag near the end of time must not overflow: no probe before it, then.
        Some(last.checked_add(retry).unwrap_or(last))
    }
}

/// A token secret's `iadvize:last-login-attempt` tag, unless it is unreadable or lies in the
/// future: a bad tag (or clock skew) must neither block a user's logins for good nor overflow
/// the pacing window arithmetic.
pub(crate) fn last_login_tag(secret: &SecretInfo, now: OffsetDateTime) -> Option<OffsetDateTime> {
    secret
        .tag(TAG_LAST_LOGIN_ATTEMPT)
        .and_then(parse_rfc3339)
        .filter(|at| *at <= now)
}

/// Time since the last login attempt started, from the tag (see [`last_login_tag`]).
pub(crate) fn since_last_login(secret: &SecretInfo, now: OffsetDateTime) -> Option<Duration> {
    (now - last_login_tag(secret, now)?).try_into().ok()
}
