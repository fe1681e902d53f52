//! A local stand-in for the AWS Lambda `Invoke` API, so that a function that invokes itself
//! (or another function) asynchronously can be tested with the real SDK: point the SDK at
//! [`LambdaApi::url`] (`AWS_ENDPOINT_URL_LAMBDA`, or `endpoint_url` on the client).
//!
//! It answers `POST /2015-03-31/functions/{FunctionName}/invocations` as Lambda does (see
//! <https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html>):
//!
//! - `X-Amz-Invocation-Type: Event` (asynchronous): `202` with an empty body; the invocation is
//!   recorded and queued. Tests take it with [`LambdaApi::next_event`] or hand it to a
//!   [`LambdaHarness`] running the real binary with [`LambdaApi::deliver_next`] and
//!   [`LambdaApi::run_chain`], so a chain of self-invocations really runs, one at a time.
//! - `X-Amz-Invocation-Type: DryRun`: `204`, recorded, not queued.
//! - `RequestResponse` (the default): the function attached with [`LambdaApi::attach`] runs the
//!   payload and its answer comes back (`200`; a function error adds `X-Amz-Function-Error:
//!   Unhandled` and the error as the body); without an attached function, `500
//!   ServiceException`.
//! - A function name that was not added with [`LambdaApi::add_function`]: `404
//!   ResourceNotFoundException`. A payload that is not JSON: `400
//!   InvalidRequestContentException`. `FunctionName` may be a name, `name:qualifier`, a partial
//!   ARN (`123456789012:function:name`) or an ARN; `?Qualifier=` is recorded too.
//!
//! Any other operation (`GetFunctionConfiguration`, `ListEventSourceMappings`, …) is answered
//! `404 UnknownOperationException`, or forwarded as it came to another endpoint (moto) set with
//! [`LambdaApi::forward_other_operations_to`] (its answer's status, headers and body come
//! back), so one client sees functions moto created and
//! invocations this stand-in runs.
//!
//! Faults ([`InvokeFault`]) make the next requests fail as Lambda can (throttling, a service
//! error) or never answer, to test that callers bound the call. Request signatures are not
//! checked. Nothing is logged: payloads may hold anything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::lambda_harness::{InvokeError, LambdaHarness};

/// The account id in the ARNs the stand-in reports.
pub const ACCOUNT_ID: &str = "123456789012";

/// The region in the ARNs the stand-in reports.
pub const REGION: &str = "us-east-1";

/// How long [`LambdaApi::shutdown`] waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How an invocation was asked for (`X-Amz-Invocation-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Asynchronous: Lambda queues the event and answers `202` at once.
    Event,
    /// Synchronous: the caller waits for the function's answer.
    RequestResponse,
    /// Validation only: `204`, the function does not run.
    DryRun,
}

/// One accepted `Invoke` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The function's name, resolved from the name, partial ARN or ARN given.
    pub function_name: String,
    /// The `FunctionName` exactly as the caller gave it.
    pub requested_name: String,
    /// The version or alias, from `name:qualifier`, the ARN or `?Qualifier=`.
    pub qualifier: Option<String>,
    /// How it was asked for.
    pub invocation_type: InvocationType,
    /// The payload (`{}` when the request had no body).
    pub payload: Value,
}

/// A misbehaviour of the Invoke API for the next requests ([`LambdaApi::push_faults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeFault {
    /// `429 TooManyRequestsException` (`Reason: ReservedFunctionConcurrentInvocationLimitExceeded`).
    TooManyRequests,
    /// `500 ServiceException`.
    ServiceError,
    /// No answer at all until the stand-in stops: the caller's own time-out must end the call.
    Hold,
}

/// What [`LambdaApi::deliver_next`] did with one asynchronous invocation.
#[derive(Debug)]
pub struct Delivery {
    /// The invocation handed to the function.
    pub invocation: Invocation,
    /// The function's answer (Lambda itself drops it for asynchronous invocations).
    pub result: Result<Value, InvokeError>,
}

/// A running Invoke API stand-in. Dropping it stops the server.
pub struct LambdaApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LambdaApi {
    /// Starts the stand-in on `127.0.0.1` and a free port, knowing no function yet.
    pub async fn start() -> io::Result<LambdaApi> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route(
                "/2015-03-31/functions/{function_name}/invocations",
                post(invoke),
            )
            .fallback(other_operation)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let released = shared.clone();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
                // Held requests end with the server.
                released.release.notify_waiters();
            });
            if let Err(error) = server.await {
                eprintln!("lambda API stand-in: server error: {error}");
            }
        });
        Ok(LambdaApi {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`: the value for `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The ARN the stand-in gives the function `name`.
    pub fn function_arn(name: &str) -> String {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
    }

    /// Makes `name` a function that exists: invocations of others answer `404`.
    pub fn add_function(&self, name: &str) {
        self.shared.lock().functions.insert(name.to_owned());
    }

    /// Runs `RequestResponse` invocations of `name` on `harness` (which also adds the
    /// function). Asynchronous invocations are still only queued: deliver them explicitly.
    pub fn attach(&self, name: &str, harness: Arc<LambdaHarness>) {
        let mut inner = self.shared.lock();
        inner.functions.insert(name.to_owned());
        inner.attached.insert(name.to_owned(), harness);
    }

    /// Forwards every request other than `Invoke` to `url` (e.g. moto's endpoint) and answers
    /// with its answer: status, headers, body. Signatures are not re-computed (moto
    /// does not check them).
    pub fn forward_other_operations_to(&self, url: &str) {
        self.shared.lock().upstream = Some(url.trim_end_matches('/').to_owned());
    }

    /// The next `times` `Invoke` requests are answered with `fault` (FIFO across pushes);
    /// they are counted in [`LambdaApi::requests`] but not recorded as invocations.
    pub fn push_faults(&self, fault: InvokeFault, times: u32) {
        self.shared
            .lock()
            .faults
            .extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Every `Invoke` request received, answered or not.
    pub fn requests(&self) -> u32 {
        self.shared.lock().requests
    }

    /// Every accepted invocation so far, in order (delivered or not).
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.lock().recorded.clone()
    }

    /// The payloads of the accepted asynchronous invocations of `function_name`, in order.
    pub fn events_of(&self, function_name: &str) -> Vec<Value> {
        self.shared
            .lock()
            .recorded
            .iter()
            .filter(|i| {
                i.invocation_type == InvocationType::Event && i.function_name == function_name
            })
            .map(|i| i.payload.clone())
            .collect()
    }

    /// Asynchronous invocations queued and not taken yet.
    pub fn pending_events(&self) -> usize {
        self.shared.lock().queued.len()
    }

    /// Takes the oldest queued asynchronous invocation, waiting up to `wait` for one.
    pub async fn next_event(&self, wait: Duration) -> Option<Invocation> {
        let take = async {
            loop {
                let queued = self.shared.queued.notified();
                tokio::pin!(queued);
                // Register before looking, so an invocation queued in between is not missed.
                queued.as_mut().enable();
                if let Some(invocation) = self.shared.lock().queued.pop_front() {
                    return invocation;
                }
                queued.await;
            }
        };
        tokio::time::timeout(wait, take).await.ok()
    }

    /// Takes the next asynchronous invocation (waiting up to `wait`) and runs it on `harness`,
    /// as Lambda would run a queued event on the function: the real binary gets the payload.
    /// `None` when no invocation came within `wait`.
    pub async fn deliver_next(&self, harness: &LambdaHarness, wait: Duration) -> Option<Delivery> {
        let invocation = self.next_event(wait).await?;
        let result = harness.invoke(&invocation.payload).await;
        Some(Delivery { invocation, result })
    }

    /// Delivers asynchronous invocations to `harness` one after the other (each one may queue
    /// the next, as a chain of follow-ups does) until none comes within `wait` or `max` were
    /// delivered. Returns what was delivered, in order.
    pub async fn run_chain(
        &self,
        harness: &LambdaHarness,
        wait: Duration,
        max: usize,
    ) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        while deliveries.len() < max {
            match self.deliver_next(harness, wait).await {
                Some(delivery) => deliveries.push(delivery),
                None => break,
            }
        }
        deliveries
    }

    /// Stops the server (held requests end without an answer) and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for LambdaApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.shared.release.notify_waiters();
    }
}

impl fmt::Debug for LambdaApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaApi")
            .field("addr", &self.addr)
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    functions: HashSet<String>,
    attached: HashMap<String, Arc<LambdaHarness>>,
    faults: VecDeque<InvokeFault>,
    requests: u32,
    recorded: Vec<Invocation>,
    queued: VecDeque<Invocation>,
    /// Where operations other than `Invoke` go, if anywhere.
    upstream: Option<String>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    /// Signalled whenever an asynchronous invocation is queued.
    queued: Notify,
    /// Signalled when the server stops, to end held requests.
    release: Notify,
}

impl Shared {
    /// A panic while locked cannot leave the state inconsistent in a way that matters to a
    /// test server, so a poisoned lock is reused.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Splits a `FunctionName` into the function's name and a qualifier: `name`,
/// `name:qualifier`, `account:function:name[:qualifier]` or
/// `arn:aws:lambda:region:account:function:name[:qualifier]`.
fn resolve(function_name: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = function_name.split(':').collect();
    let rest = match parts.iter().position(|part| *part == "function") {
        Some(at) => &parts[at + 1..],
        None => &parts[..],
    };
    let name = rest.first().copied().unwrap_or_default().to_owned();
    let qualifier = rest.get(1).map(|q| (*q).to_owned());
    (name, qualifier)
}

/// An error answer as Lambda's REST-JSON protocol sends it: the type in `X-Amzn-ErrorType`
/// and in the body.
fn lambda_error(status: StatusCode, error_type: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({"Type": "User", "message": message});
    if status.is_server_error() {
        body["Type"] = json!("Service");
    }
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

/// `POST /2015-03-31/functions/{FunctionName}/invocations`.
async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(requested_name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut inner = shared.lock();
        inner.requests += 1;
        inner.faults.pop_front()
    };
    match fault {
        None => {}
        Some(InvokeFault::TooManyRequests) => {
            return lambda_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate Exceeded.",
                json!({"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}),
            );
        }
        Some(InvokeFault::ServiceError) => {
            return lambda_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "stand-in fault: internal error",
                Value::Null,
            );
        }
        Some(InvokeFault::Hold) => {
            shared.release.notified().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }

    let (function_name, name_qualifier) = resolve(&requested_name);
    if !shared.lock().functions.contains(&function_name) {
        let arn = LambdaApi::function_arn(&function_name);
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {arn}"),
            Value::Null,
        );
    }
    let invocation_type = match headers
        .get("x-amz-invocation-type")
        .map(|value| value.to_str().unwrap_or_default())
    {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return lambda_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("Unsupported invocation type {other:?}"),
                Value::Null,
            );
        }
    };
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(payload) => payload,
            Err(_) => {
                return lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    "Could not parse request body into json",
                    Value::Null,
                );
            }
        }
    };
    let invocation = Invocation {
        function_name: function_name.clone(),
        requested_name,
        qualifier: query.get("Qualifier").cloned().or(name_qualifier),
        invocation_type,
        payload,
    };

    match invocation_type {
        InvocationType::Event => {
            {
                let mut inner = shared.lock();
                inner.recorded.push(invocation.clone());
                inner.queued.push_back(invocation);
            }
            shared.queued.notify_waiters();
            StatusCode::ACCEPTED.into_response()
        }
        InvocationType::DryRun => {
            shared.lock().recorded.push(invocation);
            StatusCode::NO_CONTENT.into_response()
        }
        InvocationType::RequestResponse => {
            let harness = {
                let mut inner = shared.lock();
                inner.recorded.push(invocation.clone());
                inner.attached.get(&function_name).cloned()
            };
            let Some(harness) = harness else {
                return lambda_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    "the stand-in has no function attached to run synchronous invocations",
                    Value::Null,
                );
            };
            let mut response = match harness.invoke(&invocation.payload).await {
                Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
                Err(error) => {
                    let (error_type, message) = match error {
                        InvokeError::Function {
                            error_type,
                            error_message,
                        }
                        | InvokeError::InitFailed {
                            error_type,
                            error_message,
                        } => (error_type, error_message),
                        InvokeError::Timeout => {
                            ("Sandbox.Timedout".to_owned(), "Task timed out".to_owned())
                        }
                        InvokeError::Harness(message) => ("Runtime.ExitError".to_owned(), message),
                    };
                    let mut response = (
                        StatusCode::OK,
                        Json(json!({"errorType": error_type, "errorMessage": message})),
                    )
                        .into_response();
                    response.headers_mut().insert(
                        "x-amz-function-error",
                        HeaderValue::from_static("Unhandled"),
                    );
                    response
                }
            };
            response.headers_mut().insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            response
        }
    }
}

/// Any other Lambda operation: not implemented by the stand-in.
/// An operation other than `Invoke`: forwarded when an upstream is set, unknown otherwise.
async fn other_operation(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(upstream) = shared.lock().upstream.clone() else {
        return unknown_operation().await;
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = reqwest::Client::new().request(method, format!("{upstream}{path}"));
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    match request.body(body).send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut forwarded = HeaderMap::new();
            for (name, value) in answer.headers() {
                let hop_by_hop = [
                    axum::http::header::CONTENT_LENGTH,
                    axum::http::header::TRANSFER_ENCODING,
                    axum::http::header::CONNECTION,
                ];
                if !hop_by_hop.contains(name) {
                    forwarded.append(name, value.clone());
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            (status, forwarded, body).into_response()
        }
        Err(error) => lambda_error(
            StatusCode::BAD_GATEWAY,
            "ServiceException",
            &format!("the stand-in could not forward to {upstream}: {error}"),
            Value::Null,
        ),
    }
}

async fn unknown_operation() -> Response {
    lambda_error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "the stand-in implements Invoke only",
        Value::Null,
    )
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn function_names_partial_arns_and_arns_resolve_to_the_name() {
        let name = |n: &str| resolve(n);
        assert_eq!(name("broker"), ("broker".into(), None));
        assert_eq!(name("broker:live"), ("broker".into(), Some("live".into())));
        assert_eq!(
            name("123456789012:function:broker"),
            ("broker".into(), None)
        );
        assert_eq!(
            name("arn:aws:lambda:eu-west-1:123456789012:function:broker:7"),
            ("broker".into(), Some("7".into()))
        );
    }
}
