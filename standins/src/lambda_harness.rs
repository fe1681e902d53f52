//! A minimal local implementation of the AWS Lambda Runtime API, to run a real Lambda binary
//! (built with `lambda_runtime` or anything else that speaks the Runtime API) without Docker.
//!
//! [`LambdaHarness::start`] serves the Runtime API on a free loopback port and spawns the binary
//! with `AWS_LAMBDA_RUNTIME_API` pointing at it; [`LambdaHarness::invoke`] queues an event and
//! waits for the function's answer. Endpoints (see
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! - `GET /2018-06-01/runtime/invocation/next`: long-polls until an event is queued, then answers
//!   it with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `…/{id}/error`;
//! - `POST /2018-06-01/runtime/init/error`.
//!
//! The child's stdout and stderr are captured ([`LambdaHarness::logs`]). When the child exits or
//! reports an initialisation error, pending and later invocations fail at once instead of
//! waiting for a deadline. [`LambdaHarness::ready`] tells how long the function took from its
//! start to its first `/invocation/next` (its initialisation, as Lambda's `Init Duration`).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Default per-invocation deadline.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `invoke` waits past the deadline before giving up.
const TIMEOUT_SLACK: Duration = Duration::from_secs(10);
/// How long to wait for the output pipes to drain once the child has exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long `shutdown` waits for the child and the server to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why an invocation did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The function posted to `/invocation/{id}/error`.
    Function {
        /// The report's `errorType`.
        error_type: String,
        /// The report's `errorMessage`.
        error_message: String,
    },
    /// The function posted to `/init/error` (e.g. a configuration error at start-up).
    InitFailed {
        /// The report's `errorType`.
        error_type: String,
        /// The report's `errorMessage`.
        error_message: String,
    },
    /// No answer before the deadline plus a grace period.
    Timeout,
    /// A problem of the harness itself, or the function process exited without answering.
    Harness(String),
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeError::Function {
                error_type,
                error_message,
            } => write!(
                f,
                "the function returned an error: {error_type}: {error_message}"
            ),
            InvokeError::InitFailed {
                error_type,
                error_message,
            } => write!(
                f,
                "the function failed to initialise: {error_type}: {error_message}"
            ),
            InvokeError::Timeout => write!(f, "the function did not answer before its deadline"),
            InvokeError::Harness(message) => write!(f, "lambda harness: {message}"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// A running Runtime API server and the function process it serves.
///
/// Dropping it kills the child and stops the server; [`LambdaHarness::shutdown`] does the same
/// and waits for both.
pub struct LambdaHarness {
    state: Arc<HarnessState>,
    addr: SocketAddr,
    timeout: Duration,
    server_task: Option<JoinHandle<()>>,
    kill: Option<oneshot::Sender<()>>,
    watcher: Option<JoinHandle<()>>,
    pid: Option<u32>,
}

impl LambdaHarness {
    /// Starts the Runtime API on `127.0.0.1:0` and spawns `binary` with the parent's
    /// environment, the usual Lambda variables (`AWS_LAMBDA_FUNCTION_NAME` — the binary's file
    /// name —, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`, `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`), then `envs` (which may
    /// override those), then `AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`.
    pub async fn start(binary: &Path, envs: &[(String, String)]) -> io::Result<LambdaHarness> {
        let lookup = |name: &str| {
            envs.iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .or_else(|| std::env::var(name).ok())
        };
        let default_name = binary
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".to_owned());
        let function_name = envs
            .iter()
            .rev()
            .find(|(key, _)| key == "AWS_LAMBDA_FUNCTION_NAME")
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| default_name.clone());
        let region = lookup("AWS_REGION")
            .or_else(|| lookup("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let function_arn = format!("arn:aws:lambda:{region}:123456789012:function:{function_name}");

        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let (first_poll_tx, _) = watch::channel(None);
        let state = Arc::new(HarnessState {
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            stopping_tx,
            stopping_rx,
            function_arn,
            spawned: OnceLock::new(),
            first_poll: first_poll_tx,
            inner: Mutex::new(HarnessInner::default()),
            logs: Mutex::new(String::new()),
        });

        let app = runtime_api(state.clone());
        let mut stopping = state.stopping_rx.clone();
        let server_task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            });
            if let Err(error) = server.await {
                eprintln!("lambda harness: runtime API server error: {error}");
            }
        });

        let mut command = Command::new(binary);
        command
            .env("AWS_LAMBDA_FUNCTION_NAME", &default_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
            )
            .envs(envs.iter().map(|(key, value)| (key, value)))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let _ = state.spawned.set(Instant::now());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let _ = state.stopping_tx.send(true);
                return Err(io::Error::new(
                    error.kind(),
                    format!("cannot start {}: {error}", binary.display()),
                ));
            }
        };

        let pid = child.id();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(capture(stdout, state.clone())));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(capture(stderr, state.clone())));
        }
        let (kill, killed) = oneshot::channel();
        let watcher = tokio::spawn(watch_child(child, readers, killed, state.clone()));

        Ok(LambdaHarness {
            state,
            addr,
            timeout: DEFAULT_TIMEOUT,
            server_task: Some(server_task),
            kill: Some(kill),
            watcher: Some(watcher),
            pid,
        })
    }

    /// Sets the per-invocation deadline (default 60 s), sent as `Lambda-Runtime-Deadline-Ms`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The address of the Runtime API (the value of `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The function process's id (for fault tests that kill it), if it started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Waits until the function asks for its first event (`GET /invocation/next`) and returns
    /// the time from spawning the process to that request: the function's initialisation, what
    /// Lambda reports as `Init Duration` for a cold start. Fails at once when the function
    /// reports an initialisation error or exits first, and with [`InvokeError::Timeout`] after
    /// the per-invocation deadline (default 60 s).
    pub async fn ready(&self) -> Result<Duration, InvokeError> {
        let mut first_poll = self.state.first_poll.subscribe();
        let wait = async {
            loop {
                if let Some(init) = *first_poll.borrow_and_update() {
                    return Ok(init);
                }
                if let Some(error) = self.state.lock().terminal_error() {
                    return Err(error);
                }
                if first_poll.changed().await.is_err() {
                    return Err(InvokeError::Harness(
                        "the runtime API has stopped".to_owned(),
                    ));
                }
            }
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .unwrap_or(Err(InvokeError::Timeout))
    }

    /// Queues `event` and waits for the function's response (up to the deadline plus 10 s).
    pub async fn invoke(&self, event: &Value) -> Result<Value, InvokeError> {
        let body = serde_json::to_vec(event).map_err(|error| {
            InvokeError::Harness(format!("cannot serialise the event: {error}"))
        })?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let (answer_tx, answer_rx) = oneshot::channel();
        {
            let mut inner = self.state.lock();
            if let Some(error) = inner.terminal_error() {
                return Err(error);
            }
            inner.waiting.insert(request_id.clone(), answer_tx);
        }

        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis())
            .unwrap_or_default();
        let queued = QueuedEvent {
            request_id: request_id.clone(),
            deadline_ms,
            body: Bytes::from(body),
        };
        if self.state.queue_tx.send(queued).is_err() {
            self.state.lock().waiting.remove(&request_id);
            return Err(InvokeError::Harness(
                "the runtime API has stopped".to_owned(),
            ));
        }

        match tokio::time::timeout(self.timeout + TIMEOUT_SLACK, answer_rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(InvokeError::Harness(
                "the invocation was dropped without an answer".to_owned(),
            )),
            Err(_) => {
                self.state.lock().waiting.remove(&request_id);
                Err(InvokeError::Timeout)
            }
        }
    }

    /// Everything the child wrote so far, stdout and stderr interleaved line by line as received.
    pub fn logs(&self) -> String {
        self.state
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Kills the child, stops the server and waits for both.
    pub async fn shutdown(self) {
        self.finish().await;
    }

    /// Like [`LambdaHarness::shutdown`], and returns the complete logs of the child (including
    /// what it wrote while being stopped).
    pub async fn finish(mut self) -> String {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(watcher) = self.watcher.take() {
            let _ = tokio::time::timeout(STOP_GRACE, watcher).await;
        }
        let _ = self.state.stopping_tx.send(true);
        if let Some(mut server) = self.server_task.take()
            && tokio::time::timeout(STOP_GRACE, &mut server).await.is_err()
        {
            server.abort();
        }
        self.logs()
    }
}

impl Drop for LambdaHarness {
    fn drop(&mut self) {
        // Dropping the kill sender makes the watcher kill the child.
        self.kill.take();
        let _ = self.state.stopping_tx.send(true);
    }
}

impl fmt::Debug for LambdaHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaHarness")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An event waiting to be fetched by `/invocation/next`.
struct QueuedEvent {
    request_id: String,
    deadline_ms: u128,
    body: Bytes,
}

type Answer = Result<Value, InvokeError>;

struct HarnessState {
    queue_tx: mpsc::UnboundedSender<QueuedEvent>,
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<QueuedEvent>>,
    stopping_tx: watch::Sender<bool>,
    stopping_rx: watch::Receiver<bool>,
    function_arn: String,
    /// When the function process was spawned.
    spawned: OnceLock<Instant>,
    /// Time from the spawn to the first `/invocation/next`; also signalled (unchanged) when the
    /// function fails its initialisation or exits, to wake [`LambdaHarness::ready`].
    first_poll: watch::Sender<Option<Duration>>,
    inner: Mutex<HarnessInner>,
    logs: Mutex<String>,
}

#[derive(Default)]
struct HarnessInner {
    /// Invocations waiting for an answer, by request id.
    waiting: HashMap<String, oneshot::Sender<Answer>>,
    /// What the function posted to `/init/error`, if anything.
    init_error: Option<(String, String)>,
    /// Set once the child process has exited.
    exited: Option<String>,
}

impl HarnessInner {
    /// The error every invocation gets once the function can no longer answer.
    fn terminal_error(&self) -> Option<InvokeError> {
        if let Some((error_type, error_message)) = &self.init_error {
            return Some(InvokeError::InitFailed {
                error_type: error_type.clone(),
                error_message: error_message.clone(),
            });
        }
        self.exited.clone().map(InvokeError::Harness)
    }

    /// Fails every waiting invocation with the terminal error.
    fn fail_waiting(&mut self) {
        if let Some(error) = self.terminal_error() {
            for (_, waiter) in self.waiting.drain() {
                let _ = waiter.send(Err(error.clone()));
            }
        }
    }
}

impl HarnessState {
    fn lock(&self) -> MutexGuard<'_, HarnessInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers an answer; false when nobody waits for that request id.
    fn answer(&self, request_id: &str, answer: Answer) -> bool {
        match self.lock().waiting.remove(request_id) {
            Some(waiter) => {
                let _ = waiter.send(answer);
                true
            }
            None => false,
        }
    }
}

/// Appends a child's output to the logs, line by line.
async fn capture(pipe: impl AsyncRead + Unpin, state: Arc<HarnessState>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => state
                .logs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&line)),
        }
    }
}

/// Waits for the child to exit (or kills it when asked or when the harness is dropped), then
/// fails every pending invocation.
async fn watch_child(
    mut child: Child,
    readers: Vec<JoinHandle<()>>,
    killed: oneshot::Receiver<()>,
    state: Arc<HarnessState>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = killed => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    for reader in readers {
        let _ = tokio::time::timeout(DRAIN_GRACE, reader).await;
    }
    let description = match status {
        Ok(status) => format!("the function process exited ({status}) without answering"),
        Err(error) => format!("lost track of the function process: {error}"),
    };
    let mut inner = state.lock();
    inner.exited = Some(description);
    inner.fail_waiting();
    drop(inner);
    state.first_poll.send_modify(|_| {});
}

fn runtime_api(state: Arc<HarnessState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(state)
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

fn unknown_request_id() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"})),
    )
        .into_response()
}

/// `GET /runtime/invocation/next`: long-polls for the next event still awaited by `invoke`.
async fn next_invocation(State(state): State<Arc<HarnessState>>) -> Response {
    state.first_poll.send_if_modified(|first| {
        if first.is_some() {
            return false;
        }
        *first = Some(
            state
                .spawned
                .get()
                .map(Instant::elapsed)
                .unwrap_or_default(),
        );
        true
    });
    let mut queue = state.queue_rx.lock().await;
    let mut stopping = state.stopping_rx.clone();
    loop {
        let event = tokio::select! {
            event = queue.recv() => event,
            _ = stopping.wait_for(|stop| *stop) => None,
        };
        let Some(event) = event else {
            return (
                StatusCode::GONE,
                Json(json!({"errorType": "Shutdown", "errorMessage": "the harness is stopping"})),
            )
                .into_response();
        };
        // Skip events whose invocation already timed out.
        let awaited = state
            .lock()
            .waiting
            .get(&event.request_id)
            .is_some_and(|waiter| !waiter.is_closed());
        if !awaited {
            continue;
        }
        let trace_id = format!(
            "Root=1-{:08x}-{};Parent={};Sampled=0",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_secs())
                .unwrap_or_default(),
            &uuid::Uuid::new_v4().simple().to_string()[..24],
            &uuid::Uuid::new_v4().simple().to_string()[..16],
        );
        let mut headers = HeaderMap::new();
        let pairs = [
            ("lambda-runtime-aws-request-id", event.request_id.clone()),
            ("lambda-runtime-deadline-ms", event.deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                state.function_arn.clone(),
            ),
            ("lambda-runtime-trace-id", trace_id),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (StatusCode::OK, headers, event.body).into_response();
    }
}

/// `POST /runtime/invocation/{id}/response`.
async fn invocation_response(
    State(state): State<Arc<HarnessState>>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if state.answer(&request_id, Ok(value)) {
        accepted()
    } else {
        unknown_request_id()
    }
}

/// The body of `/invocation/{id}/error` and `/init/error`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_type: Option<String>,
    error_message: Option<String>,
}

/// Reads an error report: the JSON body, falling back on the error-type header and raw body.
fn error_report(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let error_type = parsed
        .as_ref()
        .and_then(|error| error.error_type.clone())
        .or(header_type)
        .unwrap_or_else(|| "Unknown".to_owned());
    let error_message = parsed
        .and_then(|error| error.error_message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}

/// `POST /runtime/invocation/{id}/error`.
async fn invocation_error(
    State(state): State<Arc<HarnessState>>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = error_report(&headers, &body);
    let error = InvokeError::Function {
        error_type,
        error_message,
    };
    if state.answer(&request_id, Err(error)) {
        accepted()
    } else {
        unknown_request_id()
    }
}

/// `POST /runtime/init/error`: every pending and later invocation fails with it.
async fn init_error(
    State(state): State<Arc<HarnessState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let report = error_report(&headers, &body);
    let mut inner = state.lock();
    inner.init_error = Some(report);
    inner.fail_waiting();
    drop(inner);
    state.first_poll.send_modify(|_| {});
    accepted()
}
