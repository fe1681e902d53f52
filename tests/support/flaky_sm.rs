#![allow(dead_code)]
//! A Secrets Manager endpoint in front of moto that fails `GetSecretValue` on demand (as a
//! throttled or forbidden Secrets Manager would), to test what readers do when a read
//! fails. Everything else passes through. Every SDK names the operation in the
//! `X-Amz-Target: secretsmanager.<Op>` header.
//!
//! Included by tests/consumer.rs and tests/readers.rs (`#[path]`), beside `support`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Default)]
struct Shared {
    /// The operation that fails (`GetSecretValue` unless [`FlakySm::fail_operation`] says).
    operation: Mutex<Option<&'static str>>,
    /// Requests seen per operation.
    requests: Mutex<std::collections::HashMap<String, u64>>,
    /// The error code `GetSecretValue` answers with, when failing.
    failing: Mutex<Option<&'static str>>,
    /// Reads that pass before `failing` applies.
    pass_first: AtomicU64,
    reads: AtomicU64,
    failed_reads: AtomicU64,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    shared: Arc<Shared>,
}

pub struct FlakySm {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    *proxy
        .shared
        .requests
        .lock()
        .unwrap()
        .entry(target.clone())
        .or_default() += 1;
    let failing_operation = proxy
        .shared
        .operation
        .lock()
        .unwrap()
        .unwrap_or("GetSecretValue");
    let is_read = target == failing_operation;
    if is_read {
        let seen = proxy.shared.reads.fetch_add(1, Ordering::SeqCst);
        let failing = *proxy.shared.failing.lock().unwrap();
        let passing = seen < proxy.shared.pass_first.load(Ordering::SeqCst);
        if let (Some(code), false) = (failing, passing) {
            proxy.shared.failed_reads.fetch_add(1, Ordering::SeqCst);
            let status = if code == "InternalServiceError" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            let body = serde_json::json!({"__type": code, "message": format!("{code} (injected by the test)")});
            return (
                status,
                [
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amzn-errortype", code),
                ],
                body.to_string(),
            )
                .into_response();
        }
    }
    let mut request = proxy
        .http
        .request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
            format!("{}{}", proxy.upstream, uri),
        )
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out.insert(
                axum::http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                axum::http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    (status, out, body).into_response()
}

impl FlakySm {
    /// Starts the endpoint in front of the moto server of `support::moto_endpoint()`.
    pub async fn start() -> FlakySm {
        let shared = Arc::new(Shared::default());
        let proxy = Proxy {
            upstream: super::support::moto_endpoint()
                .trim_end_matches('/')
                .to_owned(),
            http: reqwest::Client::new(),
            shared: shared.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FlakySm { url, shared, task }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// From now on `GetSecretValue` answers this error code (`ThrottlingException`,
    /// `AccessDeniedException`, `InternalServiceError`), or passes again with `None`.
    pub fn fail_reads(&self, code: Option<&'static str>) {
        *self.shared.failing.lock().unwrap() = code;
    }

    /// Lets the first `n` reads (counted from the start) pass, then fails the others.
    pub fn fail_reads_after(&self, n: u64, code: &'static str) {
        self.shared.pass_first.store(n, Ordering::SeqCst);
        self.fail_reads(Some(code));
    }

    /// From now on `operation` (e.g. `UpdateSecretVersionStage`) answers this error code
    /// instead of `GetSecretValue`.
    pub fn fail_operation(&self, operation: &'static str, code: &'static str) {
        *self.shared.operation.lock().unwrap() = Some(operation);
        self.fail_reads(Some(code));
    }

    /// Requests of `operation` seen, answered or failed.
    pub fn requests(&self, operation: &str) -> u64 {
        self.shared
            .requests
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests of the failing operation (`GetSecretValue` unless
    /// [`FlakySm::fail_operation`] changed it) seen, answered or failed.
    pub fn reads(&self) -> u64 {
        self.shared.reads.load(Ordering::SeqCst)
    }

    /// Requests of the failing operation that got the injected error.
    pub fn failed_reads(&self) -> u64 {
        self.shared.failed_reads.load(Ordering::SeqCst)
    }

    /// An SDK client through this endpoint, without the SDK's own retries, so that every
    /// read the caller makes is one request here.
    pub fn client(&self) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.url())
            .region(Region::new(super::support::REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .retry_config(RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    /// The environment of a subprocess reader going through this endpoint, without its SDK's
    /// own retries (`AWS_MAX_ATTEMPTS=1`).
    pub fn reader_env(&self, world: &super::support::World) -> Vec<(String, String)> {
        let mut env = super::support::binary_env(world);
        for (key, value) in env.iter_mut() {
            if key == "AWS_ENDPOINT_URL" {
                *value = self.url();
            }
        }
        env.push(("AWS_DEFAULT_REGION".into(), super::support::REGION.into()));
        env.push(("IADVIZE_TOKEN_SECRET_ID".into(), world.token_id.clone()));
        env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
        env
    }
}

impl Drop for FlakySm {
    fn drop(&mut self) {
        self.task.abort();
    }
}
