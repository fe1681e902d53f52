//! Shared test helpers: a moto server (Secrets Manager) reached through `MOTO_ENDPOINT`,
//! the local iAdvize stand-in, and a "world" with one credentials secret and one token secret.
#![allow(dead_code)]

pub mod lambda_logs;
pub mod rig;
pub mod watcher;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::types::Tag;
use iadvize_standin::{Standin, StandinConfig};
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::{Broker, Config};
use serde_json::{Value, json};
use tokio::time::Instant;

pub use iadvize_standin::moto::REGION;

/// The moto server the Makefile (scripts/with-moto.sh) started.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: run the tests with `make test` or `scripts/with-moto.sh cargo nextest run`")
    })
}

/// An SDK client for moto, as an operator or Secrets Manager itself would use it.
pub fn sm_client() -> Client {
    iadvize_standin::moto::client(&moto_endpoint())
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A deadline `secs` from now.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// The environment for the broker binary: moto, the stand-in, dummy credentials.
pub fn binary_env(world: &World) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("IADVIZE_API_URL", world.standin.url()),
        ("IADVIZE_TOKEN_SECRET_IDS", world.token_id.clone()),
        ("IADVIZE_CREDENTIALS_SECRET_ID", world.creds_id.clone()),
        ("IADVIZE_MIN_LOGIN_INTERVAL", "0s".into()),
        ("RUST_LOG", "debug".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// One iAdvize user, its credentials secret, and an empty token secret.
pub struct World {
    pub sm: Client,
    pub standin: Standin,
    pub username: String,
    pub password: String,
    pub creds_id: String,
    pub token_id: String,
    pub metrics: Metrics,
}

impl World {
    pub async fn new() -> World {
        let username = format!("{}@example.com", unique("user"));
        let password = unique("pw");
        let standin = Standin::start(StandinConfig::default().with_user(&username, &password))
            .await
            .expect("the stand-in starts");
        let sm = sm_client();
        let creds_id = unique("creds");
        sm.create_secret()
            .name(&creds_id)
            .secret_string(json!({"username": username, "password": password}).to_string())
            .send()
            .await
            .expect("create the credentials secret");
        let token_id = unique("token");
        create_empty_secret(&sm, &token_id).await;
        World {
            sm,
            standin,
            username,
            password,
            creds_id,
            token_id,
            metrics: Metrics::memory(),
        }
    }

    /// The configuration a test broker uses; login spacing off unless a test wants it.
    pub fn config(&self) -> Config {
        Config::builder()
            .token_secret_ids(vec![self.token_id.clone()])
            .credentials_secret_id(Some(self.creds_id.clone()))
            .api_url(self.standin.url().parse().expect("stand-in URL"))
            .min_login_interval(Duration::ZERO)
            .http_timeout(Duration::from_secs(2))
            .build()
            .expect("a valid test configuration")
    }

    pub fn broker(&self) -> Broker {
        self.broker_with(self.config())
    }

    pub fn broker_with(&self, config: Config) -> Broker {
        let store = iadvize_token_broker::SecretStore::new(self.sm.clone());
        Broker::new(config, store, self.metrics.clone()).expect("broker")
    }

    pub fn broker_with_retry(
        &self,
        config: Config,
        retry: iadvize_token_broker::iadvize::RetryPolicy,
    ) -> Broker {
        let store = iadvize_token_broker::SecretStore::new(self.sm.clone());
        Broker::with_retry_policy(config, store, self.metrics.clone(), retry).expect("broker")
    }

    /// AWSCURRENT of the token secret, parsed as JSON (None when there is no value).
    pub async fn current(&self) -> Option<Value> {
        current_of(&self.sm, &self.token_id).await
    }

    /// VersionId → stages of the token secret.
    pub async fn stages(&self) -> HashMap<String, Vec<String>> {
        stages_of(&self.sm, &self.token_id).await
    }

    pub async fn tags(&self) -> HashMap<String, String> {
        tags_of(&self.sm, &self.token_id).await
    }

    /// Puts a value as the token secret's AWSCURRENT.
    pub async fn put_current(&self, value: &str) -> String {
        self.sm
            .put_secret_value()
            .secret_id(&self.token_id)
            .secret_string(value)
            .send()
            .await
            .expect("put value")
            .version_id()
            .unwrap()
            .to_owned()
    }

    /// Puts a token record with `hours_left` of life, with a token the stand-in issued.
    pub async fn put_record(&self, hours_left: i64) -> String {
        let token = self.login_directly().await;
        let now = time::OffsetDateTime::now_utc();
        let issued = now - time::Duration::hours(24 - hours_left);
        let record = iadvize_token_broker::TokenRecord::new(
            iadvize_token_broker::token::AccessToken::new(token),
            issued,
            86400,
        );
        self.put_current(&record.to_json()).await
    }

    /// A token straight from the stand-in (counts as one login there).
    pub async fn login_directly(&self) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/oauth2/token", self.standin.url()))
            .form(&[
                ("grant_type", "password"),
                ("username", &self.username),
                ("password", &self.password),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// What Secrets Manager does before invoking a rotation function: enables rotation and
    /// creates a value-less AWSPENDING version. Returns that version's id.
    pub async fn start_sm_rotation(&self) -> String {
        start_sm_rotation(&self.sm, &self.token_id).await
    }

    /// Sets the credentials secret's value (a new AWSCURRENT version).
    pub async fn put_credentials(&self, username: &str, password: &str) -> String {
        self.sm
            .put_secret_value()
            .secret_id(&self.creds_id)
            .secret_string(json!({"username": username, "password": password}).to_string())
            .send()
            .await
            .expect("put credentials")
            .version_id()
            .unwrap()
            .to_owned()
    }

    /// Runs one refresh tick of the token secret, which must succeed (fills an empty secret).
    pub async fn fill(&self) {
        let report = self
            .broker()
            .refresh(std::slice::from_ref(&self.token_id), false, deadline(30))
            .await;
        assert!(report.failure().is_none(), "{report:?}");
    }

    /// Whether the token secret carries the refused-credentials block.
    pub async fn is_blocked(&self) -> bool {
        self.tags()
            .await
            .contains_key("iadvize:rejected-credentials-version")
    }

    pub fn logins(&self) -> u32 {
        self.standin.stats().login_requests
    }

    pub fn verifications(&self) -> u32 {
        self.standin.stats().verifications
    }
}

pub async fn create_empty_secret(sm: &Client, name: &str) {
    sm.create_secret()
        .name(name)
        .send()
        .await
        .expect("create the token secret");
}

pub async fn current_of(sm: &Client, secret_id: &str) -> Option<Value> {
    let out = sm
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .ok()?;
    let text = out.secret_string()?;
    Some(serde_json::from_str(text).unwrap_or(Value::String(text.to_owned())))
}

pub async fn stages_of(sm: &Client, secret_id: &str) -> HashMap<String, Vec<String>> {
    sm.describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .expect("describe")
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
}

pub async fn tags_of(sm: &Client, secret_id: &str) -> HashMap<String, String> {
    sm.describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .expect("describe")
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap().to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

pub async fn tag(sm: &Client, secret_id: &str, key: &str, value: &str) {
    sm.tag_resource()
        .secret_id(secret_id)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .expect("tag");
}

/// What Secrets Manager does before it calls a rotation function; returns the AWSPENDING version.
pub async fn start_sm_rotation(sm: &Client, secret_id: &str) -> String {
    iadvize_standin::moto::start_rotation(sm, secret_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn step_event(step: &str, secret_id: &str, token: &str) -> Value {
    json!({"Step": step, "SecretId": secret_id, "ClientRequestToken": token})
}

pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// Sends the four step events for `token`, as Secrets Manager would, each expected to succeed.
pub async fn run_steps(broker: &Broker, secret_id: &str, token: &str) {
    for step in STEPS {
        broker
            .handle(&step_event(step, secret_id, token), deadline(30))
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
    }
}

/// Asserts the token secret's AWSCURRENT holds a record the stand-in accepts.
pub async fn assert_valid_current(world: &World) -> Value {
    let current = world.current().await.expect("AWSCURRENT has a value");
    let record = iadvize_token_broker::TokenRecord::parse(&current.to_string())
        .unwrap_or_else(|e| panic!("AWSCURRENT is not a record: {e}"));
    assert!(!record.is_expired(time::OffsetDateTime::now_utc()));
    let answer = reqwest::Client::new()
        .get(format!("{}/_authenticated", world.standin.url()))
        .bearer_auth(record.access_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the stand-in accepts the stored token"
    );
    current
}

/// Log lines written while the guard lives (current-thread runtimes only).
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures everything down to trace level, the SDK's and reqwest's logs included.
    pub fn start() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asserts none of the secrets appear in `text`.
pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !text.contains(secret),
            "a secret leaked into the logs: ...{}...",
            &secret[..secret.len().min(4)]
        );
    }
}

/// A TCP proxy in front of moto that counts the `GetSecretValue` requests passing through
/// it, whatever the client (Rust, Node, Python, the AWS CLI): a count independent of the
/// readers' own counters. Point `AWS_ENDPOINT_URL` (or the SDK's endpoint) at [`url`].
///
/// [`url`]: CountingProxy::url
pub struct CountingProxy {
    addr: std::net::SocketAddr,
    reads: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start() -> CountingProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = moto_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = reads.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let requests = async move {
                        // Every SDK names the operation in `X-Amz-Target: secretsmanager.<Op>`.
                        const NEEDLE: &[u8] = b"secretsmanager.GetSecretValue";
                        let mut buf = vec![0u8; 16 * 1024];
                        let mut tail: Vec<u8> = Vec::new();
                        loop {
                            let n = match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Search the new bytes plus the end of the previous chunk.
                            let mut window = std::mem::take(&mut tail);
                            let old = window.len();
                            window.extend_from_slice(&buf[..n]);
                            let found = window
                                .windows(NEEDLE.len())
                                .enumerate()
                                .filter(|(i, w)| *w == NEEDLE && i + NEEDLE.len() > old)
                                .count();
                            counter.fetch_add(found as u64, std::sync::atomic::Ordering::SeqCst);
                            tail = window[window.len().saturating_sub(NEEDLE.len() - 1)..].to_vec();
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let answers = async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(requests, answers);
                });
            }
        });
        CountingProxy { addr, reads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GetSecretValue` requests seen so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An SDK client that goes through the proxy.
    pub fn client(&self) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.url())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        Client::from_conf(config)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The environment of a subprocess that reads the token secret through `proxy` (the CLI, the
/// other-language readers), with the stand-in as iAdvize.
pub fn reader_env(world: &World, proxy: &CountingProxy) -> Vec<(String, String)> {
    let mut env = binary_env(world);
    for (key, value) in env.iter_mut() {
        if key == "AWS_ENDPOINT_URL" {
            *value = proxy.url();
        }
    }
    env.push(("AWS_DEFAULT_REGION".into(), REGION.into()));
    env.push(("IADVIZE_TOKEN_SECRET_ID".into(), world.token_id.clone()));
    env
}
