//! Shared test helpers: a moto server (Secrets Manager) reached through `MOTO_ENDPOINT`,
//! the local iAdvize stand-in, a "world" (iAdvize users, their credentials secrets and a token
//! secret, in one region), the fault proxy in front of moto, and the fixture events.
#![allow(dead_code)]

pub mod lambda_logs;
pub mod rig;
pub mod watcher;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::tags::{
    CREDENTIALS_SECRET, LAST_LOGIN_ATTEMPT, MANAGED, REJECTED_CREDENTIALS,
};
use iadvize_token_broker::{Broker, Config};
use serde_json::{Value, json};
use standins::sqs_poller::{self, Received, SqsClient};
use standins::{LambdaHarness, Standin, StandinConfig};
use tokio::time::Instant;

pub use standins::moto::REGION;
/// The Secrets Manager proxy and its faults (`SmFault`: the crate root's `Fault` is iAdvize's).
#[allow(unused_imports)]
pub use standins::sm_proxy::{Fault as SmFault, SmProxy};

/// The moto server the Makefile (scripts/with-moto.sh) started.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: run the tests with `make test` or `scripts/with-moto.sh cargo nextest run`")
    })
}

/// An SDK client for moto, as an operator or Secrets Manager itself would use it.
pub fn sm_client() -> Client {
    standins::moto::client(&moto_endpoint())
}

/// The fault proxy in front of moto: counts every Secrets Manager call per operation, and
/// fails, holds or resets the calls a test asks for.
pub async fn sm_proxy() -> SmProxy {
    SmProxy::start(&moto_endpoint())
        .await
        .expect("the Secrets Manager proxy starts")
}

/// Logs `username` in at the iAdvize stand-in at `url` (RFC 6749 password grant) and returns
/// the access token. Counts as one login there.
pub async fn login(url: &str, username: &str, password: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("the stand-in answers")
        .json()
        .await
        .expect("a JSON answer");
    answer["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// The EventBridge schedule's event (tests/fixtures/scheduled-event.json).
pub fn scheduled_event() -> Value {
    fixture("scheduled-event.json")
}

/// A JSON event of tests/fixtures/.
pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
        ("AWS_REGION", world.region.clone()),
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

/// [`binary_env`] for a broker of the world's whole region: discovery by tag, no listed token
/// secret and no default credentials secret.
pub fn fleet_binary_env(world: &World) -> Vec<(String, String)> {
    binary_env(world)
        .into_iter()
        .filter(|(key, _)| {
            key != "IADVIZE_TOKEN_SECRET_IDS" && key != "IADVIZE_CREDENTIALS_SECRET_ID"
        })
        .collect()
}

/// `env` with each of `extra` set, replacing an earlier value of the same name.
pub fn with_env(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), (*value).to_owned()));
    }
    env
}

/// The broker binary behind the Lambda Runtime API harness, with `env`.
pub async fn start_broker(env: &[(String, String)]) -> LambdaHarness {
    LambdaHarness::start(rig::broker_binary(), env)
        .await
        .expect("the harness starts the broker")
}

/// An iAdvize user of the stand-in and its credentials secret.
#[derive(Debug, Clone)]
pub struct User {
    /// The iAdvize username (an e-mail address no other test uses).
    pub username: String,
    /// Its password.
    pub password: String,
    /// The credentials secret holding both, `{"username": …, "password": …}`.
    pub creds_id: String,
}

/// A test world in one region of moto: iAdvize users on a stand-in, each with a credentials
/// secret, and an empty token secret for the first user. The first user's fields are repeated
/// at the top level for the many tests that need one.
pub struct World {
    /// The AWS region of every secret of this world.
    pub region: String,
    /// A client of moto in that region.
    pub sm: Client,
    pub standin: Standin,
    pub users: Vec<User>,
    /// The first user's username, password and credentials secret.
    pub username: String,
    pub password: String,
    pub creds_id: String,
    /// An empty token secret (no tags), for the first user.
    pub token_id: String,
    pub metrics: Metrics,
}

impl World {
    /// One user in [`REGION`].
    pub async fn new() -> World {
        World::in_region(REGION, 1).await
    }

    /// `users` users (at least one) in `region`. Tests that list secrets (discovery by tag)
    /// each take a region of their own, so that tests running at the same time do not see
    /// each other's secrets.
    pub async fn in_region(region: &str, users: usize) -> World {
        assert!(users > 0, "a world has at least one user");
        let users: Vec<User> = (0..users)
            .map(|_| User {
                username: format!("{}@example.com", unique("user")),
                password: unique("pw"),
                creds_id: unique("creds"),
            })
            .collect();
        let config = users.iter().fold(StandinConfig::default(), |config, user| {
            config.with_user(&user.username, &user.password)
        });
        let standin = Standin::start(config).await.expect("the stand-in starts");
        let sm = standins::moto::client_with(&moto_endpoint(), region, None);
        for user in &users {
            sm.create_secret()
                .name(&user.creds_id)
                .secret_string(
                    json!({"username": user.username, "password": user.password}).to_string(),
                )
                .send()
                .await
                .expect("create the credentials secret");
        }
        let token_id = unique("token");
        create_empty_secret(&sm, &token_id).await;
        let first = users[0].clone();
        World {
            region: region.to_owned(),
            sm,
            standin,
            users,
            username: first.username,
            password: first.password,
            creds_id: first.creds_id,
            token_id,
            metrics: Metrics::memory(),
        }
    }

    /// The credentials secret of user `user` (0-based).
    pub fn creds(&self, user: usize) -> &str {
        &self.users[user].creds_id
    }

    /// A token secret for `user` tagged with its credentials secret
    /// (`iadvize:credentials-secret-id`) and `tags`, with `value` as its AWSCURRENT, if any.
    /// Returns its name.
    pub async fn token_secret(
        &self,
        user: usize,
        tags: &[(&str, &str)],
        value: Option<&str>,
    ) -> String {
        let name = unique("token");
        let mut request = self.sm.create_secret().name(&name).tags(
            Tag::builder()
                .key(CREDENTIALS_SECRET)
                .value(self.creds(user))
                .build(),
        );
        for (key, tag_value) in tags {
            request = request.tags(Tag::builder().key(*key).value(*tag_value).build());
        }
        if let Some(value) = value {
            request = request.secret_string(value);
        }
        request.send().await.expect("create a token secret");
        name
    }

    /// A managed (`iadvize:managed=true`) token secret of `user` whose token has `hours_left`
    /// of its 24 hours (`None`: no value yet). The token is not one the stand-in issued.
    pub async fn integration(&self, user: usize, hours_left: Option<i64>) -> String {
        let value = hours_left.map(unverified_record);
        self.token_secret(user, &[(MANAGED, "true")], value.as_deref())
            .await
    }

    /// `n` managed token secrets of `user`, as [`World::integration`] makes them.
    pub async fn integrations(
        &self,
        user: usize,
        n: usize,
        hours_left: Option<i64>,
    ) -> Vec<String> {
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(self.integration(user, hours_left).await);
        }
        names
    }

    /// A managed token secret of `user` whose token, one the stand-in issued (a login there),
    /// has `hours_left` of its 24 hours: a value a consumer can use.
    pub async fn issued_integration(&self, user: usize, hours_left: i64) -> String {
        let user_ = &self.users[user];
        let token = login(&self.standin.url(), &user_.username, &user_.password).await;
        let value = record(token, hours_left);
        self.token_secret(user, &[(MANAGED, "true")], Some(&value))
            .await
    }

    /// Seconds left on each token secret's AWSCURRENT token (0: no value, or no expiry).
    pub async fn seconds_left(&self, names: &[String]) -> Vec<i64> {
        let now = time::OffsetDateTime::now_utc();
        let mut left = Vec::with_capacity(names.len());
        for name in names {
            let expires = current_of(&self.sm, name).await.and_then(|v| {
                v["expires_at"]
                    .as_str()
                    .and_then(iadvize_token_broker::token::parse_rfc3339)
            });
            left.push(expires.map_or(0, |at| (at - now).whole_seconds()));
        }
        left
    }

    /// The configuration a broker of the whole region uses (discovery by tag, no listed
    /// secret, no default credentials secret); login spacing off.
    pub fn fleet_config(&self) -> Config {
        Config::builder()
            .api_url(self.standin.url().parse().expect("stand-in URL"))
            .min_login_interval(Duration::ZERO)
            .http_timeout(Duration::from_secs(2))
            .build()
            .expect("a valid test configuration")
    }

    /// The time in a token secret's `iadvize:last-login-attempt` tag.
    pub async fn login_tag(&self, secret_id: &str) -> time::OffsetDateTime {
        let tags = tags_of(&self.sm, secret_id).await;
        iadvize_token_broker::token::parse_rfc3339(&tags[LAST_LOGIN_ATTEMPT])
            .expect("an RFC 3339 login tag")
    }

    /// The metric lines written so far, parsed (CloudWatch embedded metric format).
    pub fn metric_lines(&self) -> Vec<Value> {
        self.metrics
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
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

    /// The access token AWSCURRENT holds now.
    pub async fn current_token(&self) -> String {
        self.current().await.expect("AWSCURRENT has a value")["access_token"]
            .as_str()
            .expect("a token record")
            .to_owned()
    }

    /// The full ARN of `secret_id`, as Secrets Manager answers it.
    pub async fn arn_of(&self, secret_id: &str) -> String {
        self.sm
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .expect("the secret exists")
            .arn()
            .expect("DescribeSecret answers the ARN")
            .to_owned()
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
        self.put_current(&record(token, hours_left)).await
    }

    /// Puts a record whose token (a real one from the stand-in: one login there) expires in
    /// `secs` seconds; returns it.
    pub async fn put_record_expiring_in(&self, secs: i64) -> iadvize_token_broker::TokenRecord {
        let token = self.login_directly().await;
        let issued = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs - 86400);
        let record = iadvize_token_broker::TokenRecord::new(
            iadvize_token_broker::token::AccessToken::new(token),
            issued,
            86400,
        );
        self.put_current(&record.to_json()).await;
        record
    }

    /// A token straight from the stand-in (counts as one login there).
    pub async fn login_directly(&self) -> String {
        login(&self.standin.url(), &self.username, &self.password).await
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
        self.tags().await.contains_key(REJECTED_CREDENTIALS)
    }

    pub fn logins(&self) -> u32 {
        self.standin.stats().login_requests
    }

    pub fn verifications(&self) -> u32 {
        self.standin.stats().verifications
    }
}

/// A token record with `hours_left` of its 24 hours, for a made-up token (fresh tokens are
/// never verified, so the stand-in need not know it).
pub fn unverified_record(hours_left: i64) -> String {
    record(unique("tok"), hours_left)
}

/// A token record (JSON) for `token`, valid for 20 more hours.
pub fn record_json(token: &str) -> String {
    record(token.to_owned(), 20)
}

/// A token record (JSON) for `token`, a 24-hour token with `hours_left` (negative: expired
/// that long ago).
pub fn record(token: String, hours_left: i64) -> String {
    let issued = time::OffsetDateTime::now_utc() - time::Duration::hours(24 - hours_left);
    iadvize_token_broker::TokenRecord::new(
        iadvize_token_broker::token::AccessToken::new(token),
        issued,
        86400,
    )
    .to_json()
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
    standins::moto::start_rotation(sm, secret_id)
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

/// The environment of a subprocess that reads the token secret through `proxy` (the CLI, the
/// other-language readers), with the stand-in as iAdvize.
pub fn reader_env(world: &World, proxy: &SmProxy) -> Vec<(String, String)> {
    let mut env = binary_env(world);
    for (key, value) in env.iter_mut() {
        if key == "AWS_ENDPOINT_URL" {
            *value = proxy.url();
        }
    }
    env.push(("AWS_DEFAULT_REGION".into(), world.region.clone()));
    env.push(("IADVIZE_TOKEN_SECRET_ID".into(), world.token_id.clone()));
    env
}

/// [`reader_env`] without the reader's SDK retries (`AWS_MAX_ATTEMPTS=1`), so that every read
/// it makes is one request at the proxy.
pub fn reader_env_without_retries(world: &World, proxy: &SmProxy) -> Vec<(String, String)> {
    let mut env = reader_env(world, proxy);
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    env
}

/// Stands between the reader and the stand-in's GraphQL: on the first 401 it plays the broker
/// rotating the secret (AWSCURRENT becomes `next`), then passes the 401 on.
#[derive(Clone)]
pub struct RotateOn401 {
    /// The stand-in's base URL.
    pub standin: String,
    /// Secrets Manager, to publish `next`.
    pub sm: aws_sdk_secretsmanager::Client,
    /// The token secret.
    pub secret_id: String,
    /// The value published on the first 401.
    pub next: String,
    /// Whether it rotated already.
    pub rotated: Arc<std::sync::atomic::AtomicBool>,
}

async fn graphql_shim(
    axum::extract::State(shim): axum::extract::State<RotateOn401>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (
    axum::http::StatusCode,
    [(axum::http::header::HeaderName, String); 1],
    axum::body::Bytes,
) {
    use axum::http::{StatusCode, header};
    use std::sync::atomic::Ordering;
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", shim.standin))
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.to_str().unwrap());
        }
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    if status == StatusCode::UNAUTHORIZED && !shim.rotated.swap(true, Ordering::SeqCst) {
        shim.sm
            .put_secret_value()
            .secret_id(&shim.secret_id)
            .secret_string(&shim.next)
            .send()
            .await
            .unwrap();
    }
    let body = answer.bytes().await.unwrap();
    (
        status,
        [(header::CONTENT_TYPE, "application/json".to_owned())],
        body,
    )
}

/// Serves `shim` on loopback; returns its base URL.
pub async fn start_shim(shim: RotateOn401) -> String {
    let app = axum::Router::new()
        .route("/graphql", axum::routing::post(graphql_shim))
        .with_state(shim);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A subprocess's exit code, stdout and stderr, for assertion messages.
pub fn describe(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A report queue on moto's SQS, as the broker's stack creates it (FIFO, content-based
/// deduplication).
pub async fn report_queue() -> (SqsClient, String) {
    let sqs = sqs_poller::client(&moto_endpoint());
    let url = sqs_poller::create_fifo_queue(
        &sqs,
        &format!("{}.fifo", unique("reports")),
        Duration::from_secs(30),
    )
    .await
    .expect("create the report queue");
    (sqs, url)
}

/// Plays the broker receiving reports: waits (up to 30 s) for the first message on the queue,
/// then publishes `next` as the token secret's AWSCURRENT. Returns the messages taken.
pub fn broker_replaces_on_report(
    world: &World,
    sqs: &SqsClient,
    url: &str,
    next: String,
) -> tokio::task::JoinHandle<Vec<Received>> {
    let (sm, secret_id, sqs, url) = (
        world.sm.clone(),
        world.token_id.clone(),
        sqs.clone(),
        url.to_owned(),
    );
    tokio::spawn(async move {
        let taken = sqs_poller::take_first(&sqs, &url, Duration::from_secs(30))
            .await
            .expect("receive");
        sm.put_secret_value()
            .secret_id(&secret_id)
            .secret_string(next)
            .send()
            .await
            .expect("publish the new token");
        taken
    })
}

/// What a consumer does with the token: one GraphQL request to the iAdvize stand-in at
/// `api`; its HTTP status.
pub async fn graphql_status_at(api: &str, token: &iadvize_token_consumer::AccessToken) -> u16 {
    reqwest::Client::new()
        .post(format!("{api}/graphql"))
        .bearer_auth(token.expose())
        .json(&json!({"query": "{ me { username } }"}))
        .send()
        .await
        .expect("the stand-in answers")
        .status()
        .as_u16()
}

/// One of many callers refused at once: reads the token from `source`, calls GraphQL with it
/// (iAdvize must refuse it: 401), waits until every caller sharing `refused` was refused,
/// tells `source` the token was rejected, and calls again with the token it reads then.
/// Returns that second call's status.
pub async fn refused_then_retried(
    source: &iadvize_token_consumer::TokenSource,
    api: &str,
    refused: &tokio::sync::Barrier,
) -> u16 {
    let token = source.token().await.expect("a token to call with");
    assert_eq!(graphql_status_at(api, &token).await, 401);
    refused.wait().await;
    source.invalidate_token(&token);
    let next = source.token().await.expect("a token after the refusal");
    graphql_status_at(api, &next).await
}

/// One report of `token` was taken, naming the token secret by its full ARN, in the message
/// group of that ARN (whatever name the reader was given), with the token's hash only.
pub async fn assert_one_report(taken: &[Received], world: &World, token: &str) {
    let arn = world.arn_of(&world.token_id).await;
    assert_eq!(taken.len(), 1, "{taken:?}");
    let expected = iadvize_token_consumer::report::report_body(
        &arn,
        &iadvize_token_consumer::AccessToken::new(token),
    );
    let body: Value = serde_json::from_str(&taken[0].body).expect("a JSON body");
    assert_eq!(
        body,
        json!({
            "action": "report-rejected",
            "secret_id": arn,
            "token_sha256": iadvize_token_consumer::report::token_sha256(
                &iadvize_token_consumer::AccessToken::new(token)
            ),
        })
    );
    // Byte for byte what every sender writes: SQS's content-based deduplication drops a copy
    // of a report only when the bodies are identical.
    assert_eq!(taken[0].body, expected, "the body's bytes");
    assert!(!taken[0].body.contains(token), "never the token");
    assert_eq!(taken[0].group_id.as_deref(), Some(arn.as_str()));
}
