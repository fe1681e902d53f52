//! Secrets Manager, reduced to the calls the broker makes. Every SDK call of the crate is in
//! this file (the infrastructure drift test derives the IAM policy's actions from it), and
//! every one is bounded ([`crate::bounds`]): by the SDK's operation and attempt time-outs, and
//! by the time left before the deadline of the work in progress. A call that gets no answer
//! in time fails with [`Error::SecretsManagerNoAnswer`], or, for a write that was sent,
//! [`Error::SecretsManagerNotConfirmed`].

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::bounds::{AwsTimeouts, GaveUp, for_humans};
use crate::error::{Error, Result, Retry};
use crate::tags;
use crate::token::{RecordError, TokenRecord};

/// The staging label of the value consumers read.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The staging label of a rotation's new value.
pub const AWSPENDING: &str = "AWSPENDING";

/// What `DescribeSecret` tells about a secret.
#[derive(Debug, Clone)]
pub struct SecretInfo {
    /// Full ARN.
    pub arn: String,
    /// Friendly name (the metrics dimension).
    pub name: String,
    /// Whether Secrets Manager rotation is enabled.
    pub rotation_enabled: bool,
    /// VersionId → staging labels.
    pub versions: HashMap<String, Vec<String>>,
    /// Tags: key → value (the broker's state lives here: [`crate::tags`]).
    pub tags: HashMap<String, String>,
}

impl SecretInfo {
    /// Whether `id` (a name, an ARN, or a partial ARN without Secrets Manager's
    /// six-character suffix) names this secret.
    pub fn is_named(&self, id: &str) -> bool {
        id == self.arn
            || id == self.name
            || (id.starts_with("arn:")
                && self
                    .arn
                    .strip_prefix(id)
                    .is_some_and(|rest| rest.len() == 7 && rest.starts_with('-')))
    }

    /// The version holding `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    /// The version that carries AWSPENDING but not AWSCURRENT: a rotation in progress.
    pub fn pending_rotation(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, s)| s.iter().any(|s| s == AWSPENDING) && !s.iter().any(|s| s == AWSCURRENT))
            .map(|(id, _)| id.as_str())
    }

    /// A version that carries both AWSCURRENT and AWSPENDING: a rotation whose finishSecret
    /// stopped between its two stage moves (AWSCURRENT moved, AWSPENDING not yet removed).
    pub fn unfinished_cleanup(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, s)| s.iter().any(|s| s == AWSPENDING) && s.iter().any(|s| s == AWSCURRENT))
            .map(|(id, _)| id.as_str())
    }

    /// Whether any version carries AWSPENDING (a rotation in progress, or its leftover).
    pub fn has_pending(&self) -> bool {
        self.versions
            .values()
            .any(|stages| stages.iter().any(|s| s == AWSPENDING))
    }

    /// The staging labels of a version; `None` when it is not a version of the secret.
    pub fn stages(&self, version_id: &str) -> Option<&[String]> {
        self.versions.get(version_id).map(Vec::as_slice)
    }

    /// The broker's state in the secret's tags.
    pub fn broker_tags(&self) -> tags::BrokerTags<'_> {
        tags::BrokerTags::read(&self.tags)
    }
}

/// One version's value.
#[derive(Debug, Clone)]
pub struct SecretValue {
    /// Its VersionId.
    pub version_id: String,
    /// `SecretString`, if the version has one.
    pub string: Option<SecretString>,
    /// The length in bytes of its `SecretBinary`, if it has one instead (the bytes are not
    /// kept: the broker never uses a binary value, it only says that it found one).
    pub binary: Option<usize>,
}

/// What a version holds, to tell the cases apart in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// A `SecretString` with something in it.
    Text(&'a str),
    /// A `SecretBinary` of this many bytes (stored with `--secret-binary`).
    Binary(usize),
    /// Nothing, or a blank string.
    Empty,
}

impl SecretValue {
    /// A value read from an SDK answer's `SecretString` and `SecretBinary`.
    fn from_parts(
        version_id: Option<&str>,
        string: Option<&str>,
        binary: Option<&aws_sdk_secretsmanager::primitives::Blob>,
    ) -> Self {
        SecretValue {
            version_id: version_id.unwrap_or_default().to_owned(),
            string: string.map(|s| SecretString::from(s.to_owned())),
            binary: binary.map(|b| b.as_ref().len()),
        }
    }

    /// What the version holds: text, binary data, or nothing.
    pub fn content(&self) -> Content<'_> {
        match (&self.string, self.binary) {
            (Some(text), _) if !text.expose_secret().trim().is_empty() => {
                Content::Text(text.expose_secret())
            }
            (None, Some(bytes)) => Content::Binary(bytes),
            _ => Content::Empty,
        }
    }

    /// The token record the version holds, or what it holds instead (never the value).
    pub fn record(&self) -> std::result::Result<TokenRecord, RecordError> {
        match self.content() {
            Content::Binary(bytes) => Err(RecordError::Shape(binary_instead_of_text(bytes))),
            _ => TokenRecord::parse(self.expose()),
        }
    }

    /// The string value, or "" for a binary or empty version.
    pub fn expose(&self) -> &str {
        self.string
            .as_ref()
            .map(|s| s.expose_secret())
            .unwrap_or("")
    }
}

/// Which version of a secret to read.
#[derive(Debug, Clone, Copy)]
pub enum Version<'a> {
    /// The version carrying this staging label.
    Stage(&'a str),
    /// The version with this id.
    Id(&'a str),
}

/// Result of writing a pending version.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    /// The version was created.
    Written,
    /// A version with that id already exists (another attempt wrote it).
    AlreadyExists,
}

/// Secrets Manager for the broker.
#[derive(Debug, Clone)]
pub struct SecretStore {
    client: Client,
    /// API calls made so far (the cost of a tick shows in the logs).
    calls: Arc<AtomicU64>,
    /// The operation time-out bounds every call here too, whoever built the client.
    timeouts: AwsTimeouts,
}

/// Whether a call only reads, or may change the secret (and so may have been applied when
/// its answer does not come).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Read,
    Write,
}

/// Whether the SDK gave up waiting for an answer (its operation or attempt time-outs).
fn is_no_answer<E, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout(),
        _ => false,
    }
}

/// What a binary value is, for messages: `binary data (SecretBinary, 57 bytes) instead of a
/// JSON string`.
pub fn binary_instead_of_text(bytes: usize) -> String {
    format!("binary data (SecretBinary, {bytes} bytes) instead of a JSON string")
}

fn failed<E>(
    secret_id: &str,
    operation: &'static str,
    e: SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if e.code() == Some("ResourceNotFoundException") && operation == "DescribeSecret" {
        return Error::SecretNotFound {
            secret_id: secret_id.to_owned(),
        };
    }
    // A service error's code and message say it all; the full context (with the raw
    // response) is only needed when the request never got an answer.
    let message = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    Error::SecretsManager {
        secret_id: secret_id.to_owned(),
        operation,
        code: e.code().map(str::to_owned),
        message,
        retry: Retry::of_sdk(&e),
    }
}

impl SecretStore {
    /// Wraps an SDK client (configured from the environment, so `AWS_ENDPOINT_URL` works).
    /// Every call is bounded by the default operation time-out, whatever the client's own
    /// time-outs are; see [`SecretStore::with_timeouts`].
    pub fn new(client: Client) -> Self {
        SecretStore {
            client,
            calls: Arc::default(),
            timeouts: AwsTimeouts::default(),
        }
    }

    /// Bounds every call by `timeouts.operation` (the client keeps its own SDK time-outs).
    pub fn with_timeouts(mut self, timeouts: AwsTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sends one call within its bounds: the operation time-out and the time left before the
    /// deadline ([`crate::bounds::bounded`]). `Err` when no answer came (or no time was left
    /// to send it); otherwise the SDK's result.
    async fn send<T, E, R>(
        &self,
        secret_id: &str,
        operation: &'static str,
        effect: Effect,
        call: impl IntoFuture<Output = std::result::Result<T, SdkError<E, R>>>,
    ) -> Result<std::result::Result<T, SdkError<E, R>>> {
        let started = Instant::now();
        let gave_up = match crate::bounds::bounded(self.timeouts.operation, call).await {
            Ok(Err(e)) if is_no_answer(&e) => GaveUp::TimedOut(started.elapsed()),
            Ok(answer) => {
                self.count();
                return Ok(answer);
            }
            Err(gave_up) => gave_up,
        };
        if gave_up.was_sent() {
            self.count();
        }
        let message = match gave_up {
            GaveUp::TimedOut(after) => format!(
                "Secrets Manager did not answer {operation} within {} (time-outs: IADVIZE_AWS_ATTEMPT_TIMEOUT {} per attempt, IADVIZE_AWS_OPERATION_TIMEOUT {} in all)",
                for_humans(after),
                for_humans(self.timeouts.attempt),
                for_humans(self.timeouts.operation)
            ),
            GaveUp::Deadline(after) => format!(
                "Secrets Manager did not answer {operation} within {}, all the time left before the deadline",
                for_humans(after)
            ),
            GaveUp::NoTimeLeft => format!(
                "Secrets Manager {operation} was not sent: no time left before the deadline"
            ),
        };
        tracing::error!(secret_id, operation, error = %message, "no answer from Secrets Manager");
        let secret_id = secret_id.to_owned();
        Err(if effect == Effect::Write && gave_up.was_sent() {
            Error::SecretsManagerNotConfirmed {
                secret_id,
                operation,
                message,
            }
        } else {
            Error::SecretsManagerNoAnswer {
                secret_id,
                operation,
                message,
            }
        })
    }

    /// Secrets Manager API calls made through this store so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Loads the AWS configuration from the environment and builds a store whose client has
    /// `timeouts` as its SDK time-outs.
    pub async fn from_env(timeouts: AwsTimeouts) -> Self {
        let config = crate::bounds::aws_config(timeouts).await;
        SecretStore::new(Client::new(&config)).with_timeouts(timeouts)
    }

    /// `DescribeSecret`: rotation, versions and tags.
    pub async fn describe(&self, secret_id: &str) -> Result<SecretInfo> {
        let request = self.client.describe_secret().secret_id(secret_id).send();
        let out = self
            .send(secret_id, "DescribeSecret", Effect::Read, request)
            .await?
            .map_err(|e| failed(secret_id, "DescribeSecret", e))?;
        Ok(SecretInfo {
            arn: out.arn().unwrap_or(secret_id).to_owned(),
            name: out.name().unwrap_or(secret_id).to_owned(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out.version_ids_to_stages().cloned().unwrap_or_default(),
            tags: out
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect(),
        })
    }

    /// `GetSecretValue` of one version; `None` when that version or stage has no value (or
    /// the secret does not exist: callers describe the secret first when that matters).
    pub async fn get(&self, secret_id: &str, version: Version<'_>) -> Result<Option<SecretValue>> {
        let request = self.client.get_secret_value().secret_id(secret_id);
        let request = match version {
            Version::Stage(stage) => request.version_stage(stage),
            Version::Id(id) => request.version_id(id),
        };
        let answer = self
            .send(secret_id, "GetSecretValue", Effect::Read, request.send())
            .await?;
        match answer {
            Ok(out) => Ok(Some(SecretValue::from_parts(
                out.version_id(),
                out.secret_string(),
                out.secret_binary(),
            ))),
            // The secret is missing, or that version/stage has no value.
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(failed(secret_id, "GetSecretValue", e)),
        }
    }

    /// `PutSecretValue` of a new version labelled AWSPENDING, idempotent on `version_id`.
    pub async fn put_pending(
        &self,
        secret_id: &str,
        version_id: &str,
        value: &str,
        rotation_token: Option<&SecretString>,
    ) -> Result<Put> {
        let mut request = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(version_id)
            .secret_string(value)
            .version_stages(AWSPENDING);
        if let Some(token) = rotation_token {
            request = request.rotation_token(token.expose_secret());
        }
        let answer = self
            .send(secret_id, "PutSecretValue", Effect::Write, request.send())
            .await?;
        match answer {
            Ok(_) => Ok(Put::Written),
            Err(e) if e.code() == Some("ResourceExistsException") => Ok(Put::AlreadyExists),
            Err(e) => Err(failed(secret_id, "PutSecretValue", e)),
        }
    }

    /// `PutSecretValue` of a new version labelled AWSCURRENT: one atomic publication (Secrets
    /// Manager moves AWSCURRENT off the old version and labels it AWSPREVIOUS by itself).
    pub async fn put_current(&self, secret_id: &str, version_id: &str, value: &str) -> Result<()> {
        let request = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(version_id)
            .secret_string(value)
            .version_stages(AWSCURRENT)
            .send();
        self.send(secret_id, "PutSecretValue", Effect::Write, request)
            .await?
            .map_err(|e| failed(secret_id, "PutSecretValue", e))?;
        Ok(())
    }

    /// `UpdateSecretVersionStage`: moves `stage` to `move_to` and/or removes it from `remove_from`.
    pub async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<()> {
        let request = self
            .client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(move_to.map(str::to_owned))
            .set_remove_from_version_id(remove_from.map(str::to_owned))
            .send();
        self.send(
            secret_id,
            "UpdateSecretVersionStage",
            Effect::Write,
            request,
        )
        .await?
        .map_err(|e| failed(secret_id, "UpdateSecretVersionStage", e))?;
        Ok(())
    }

    /// When a version was created (`ListSecretVersionIds`), if Secrets Manager says.
    pub async fn version_created(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<OffsetDateTime>> {
        let mut next_token = None;
        loop {
            let request = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .set_next_token(next_token)
                .send();
            let out = self
                .send(secret_id, "ListSecretVersionIds", Effect::Read, request)
                .await?
                .map_err(|e| failed(secret_id, "ListSecretVersionIds", e))?;
            if let Some(version) = out
                .versions()
                .iter()
                .find(|v| v.version_id() == Some(version_id))
            {
                return Ok(version
                    .created_date()
                    .and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok()));
            }
            match out.next_token() {
                Some(token) => next_token = Some(token.to_owned()),
                None => return Ok(None),
            }
        }
    }

    /// `TagResource` with one tag.
    pub async fn set_tag(&self, secret_id: &str, key: &str, value: &str) -> Result<()> {
        let request = self
            .client
            .tag_resource()
            .secret_id(secret_id)
            .tags(Tag::builder().key(key).value(value).build())
            .send();
        self.send(secret_id, "TagResource", Effect::Write, request)
            .await?
            .map_err(|e| failed(secret_id, "TagResource", e))?;
        Ok(())
    }

    /// `UntagResource` of one key.
    pub async fn remove_tag(&self, secret_id: &str, key: &str) -> Result<()> {
        let request = self
            .client
            .untag_resource()
            .secret_id(secret_id)
            .tag_keys(key)
            .send();
        self.send(secret_id, "UntagResource", Effect::Write, request)
            .await?
            .map_err(|e| failed(secret_id, "UntagResource", e))?;
        Ok(())
    }
}

/// Most ids `BatchGetSecretValue` takes in one call.
pub const BATCH_GET_MAX: usize = 20;

/// One secret's AWSCURRENT value as `BatchGetSecretValue` read it, or why it could not.
#[derive(Debug)]
pub enum BatchValue {
    /// The AWSCURRENT value.
    Value(SecretValue),
    /// This secret could not be read in the batch (its error code and message); the caller
    /// reads it alone.
    Error(String),
}

impl SecretStore {
    /// Every token secret tagged exactly `iadvize:managed` = `true`, with what `ListSecrets`
    /// returns about it (ARN, name, rotation, versions and stages, tags), so no
    /// `DescribeSecret` is needed. `ListSecrets`' `tag-key` and `tag-value` filters are
    /// separate prefix matches (`iadvize:managed=false` plus `team=true` passes them), so the
    /// exact pair is checked here.
    pub async fn list_managed(&self) -> Result<Vec<SecretInfo>> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let mut found = Vec::new();
        let mut next_token = None;
        loop {
            let request = self
                .client
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::TagKey)
                        .values(tags::MANAGED)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::TagValue)
                        .values("true")
                        .build(),
                )
                .max_results(100)
                .set_next_token(next_token)
                .send();
            let out = self
                .send("(discovery)", "ListSecrets", Effect::Read, request)
                .await?
                .map_err(|e| failed("(discovery)", "ListSecrets", e))?;
            for entry in out.secret_list() {
                let (Some(arn), Some(name)) = (entry.arn(), entry.name()) else {
                    continue;
                };
                let tags: HashMap<String, String> = entry
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                    .collect();
                if !tags::is_managed(&tags) {
                    continue;
                }
                found.push(SecretInfo {
                    arn: arn.to_owned(),
                    name: name.to_owned(),
                    rotation_enabled: entry.rotation_enabled().unwrap_or(false),
                    versions: entry
                        .secret_versions_to_stages()
                        .cloned()
                        .unwrap_or_default(),
                    tags,
                });
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// The AWSCURRENT values of up to [`BATCH_GET_MAX`] secrets (ARNs) in one
    /// `BatchGetSecretValue` call (more if Secrets Manager pages the answer). Keyed by ARN;
    /// a secret missing from the answer was not read. A failure of the whole call is an `Err`.
    pub async fn batch_current(&self, arns: &[String]) -> Result<HashMap<String, BatchValue>> {
        let mut values = HashMap::new();
        let mut next_token = None;
        loop {
            let request = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(arns.to_vec()))
                .set_next_token(next_token)
                .send();
            let out = self
                .send("(batch)", "BatchGetSecretValue", Effect::Read, request)
                .await?
                .map_err(|e| failed("(batch)", "BatchGetSecretValue", e))?;
            for entry in out.secret_values() {
                let Some(arn) = entry.arn() else { continue };
                values.insert(
                    arn.to_owned(),
                    BatchValue::Value(SecretValue::from_parts(
                        entry.version_id(),
                        entry.secret_string(),
                        entry.secret_binary(),
                    )),
                );
            }
            for error in out.errors() {
                let Some(id) = error.secret_id() else {
                    continue;
                };
                let message = format!(
                    "{}: {}",
                    error.error_code().unwrap_or("error"),
                    error.message().unwrap_or("")
                );
                values.insert(id.to_owned(), BatchValue::Error(message));
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(values),
            }
        }
    }
}
