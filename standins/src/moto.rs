//! Talking to moto's server, the local Secrets Manager stand-in: an SDK client for it, and
//! what Secrets Manager does before it calls a rotation function.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::RotationRulesType;

/// The region every local test and demo uses.
pub const REGION: &str = "us-east-1";

/// A Secrets Manager client for `endpoint` (moto's server, or a proxy in front of it) in
/// [`REGION`], with dummy credentials and the SDK's default retries.
pub fn client(endpoint: &str) -> Client {
    client_with(endpoint, REGION, None)
}

/// A Secrets Manager client for `endpoint` (e.g. `http://127.0.0.1:5000`) in `region`, with
/// dummy credentials. `retry`: `None` keeps the SDK's default retries (3 attempts, standard
/// backoff); `Some(RetryConfig::disabled())` makes every call one request. Every test and
/// demo client is built here.
pub fn client_with(endpoint: &str, region: &str, retry: Option<RetryConfig>) -> Client {
    let mut config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"));
    if let Some(retry) = retry {
        config = config.retry_config(retry);
    }
    Client::from_conf(config.build())
}

/// Does what Secrets Manager does before it invokes a rotation function: `RotateSecret`
/// enables rotation and creates a value-less AWSPENDING version. The function ARN is one
/// moto does not know, so moto answers `ResourceNotFoundException` for it after creating the
/// version (for a secret that has no value yet, only `scripts/moto_server.py`'s moto creates
/// it, as AWS does). Returns the version id.
pub async fn start_rotation(sm: &Client, secret_id: &str) -> Result<String, String> {
    start_rotation_with(sm, secret_id, true).await
}

/// [`start_rotation`] with `RotateImmediately` set: `false` is the configuration check, whose
/// AWSPENDING version holds a copy of the current value (none when the secret has no value),
/// and which then runs only testSecret.
pub async fn start_rotation_with(
    sm: &Client,
    secret_id: &str,
    rotate_immediately: bool,
) -> Result<String, String> {
    let result = sm
        .rotate_secret()
        .secret_id(secret_id)
        .rotate_immediately(rotate_immediately)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:not-known-to-moto")
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(1)
                .build(),
        )
        .send()
        .await;
    if let Err(e) = &result {
        let text = DisplayErrorContext(e).to_string();
        if !text.contains("ResourceNotFound") {
            return Err(format!("RotateSecret failed: {text}"));
        }
    }
    let described = sm
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| format!("DescribeSecret failed: {}", DisplayErrorContext(&e)))?;
    described
        .version_ids_to_stages()
        .and_then(|versions| {
            versions
                .iter()
                .find(|(_, s)| {
                    s.iter().any(|s| s == "AWSPENDING") && !s.iter().any(|s| s == "AWSCURRENT")
                })
                .map(|(version, _)| version.clone())
        })
        .ok_or_else(|| "RotateSecret created no AWSPENDING version".to_owned())
}
