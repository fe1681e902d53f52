//! A local stand-in for the iAdvize login API.
//!
//! It answers the endpoints the broker and its consumers use, the way iAdvize does:
//!
//! - `POST /oauth2/token` (form-encoded `grant_type=password&username=…&password=…`):
//!   `200 {"access_token","expires_in","token_type":"Bearer","refresh_token":"none"}` for a
//!   configured user, `400 {"error":"invalid_grant",…}` for a wrong password or unknown user,
//!   `400 {"error":"unsupported_grant_type"}` / `400 {"error":"invalid_request"}` for malformed
//!   requests, `429 {"error":"too_many_requests"}` over the rate limits (per username and per
//!   client IP, over a sliding window of [`DEFAULT_RATE_WINDOW`]).
//! - `GET /_authenticated` with `Authorization: Bearer <token>`: `200 {"authenticated":true}` for
//!   a token this server issued that is neither expired nor revoked, else
//!   `401 {"error":"invalid_token",…}`.
//! - `POST /graphql` (JSON `{"query":…}`): requires a valid bearer token and answers
//!   `{"data":{"me":{"username":…}}}` whatever the query.
//! - `GET /_standin/stats`: the counters as JSON (the [`Stats`] fields plus `logins_per_user`).
//! - `POST /_standin/revoke` (JSON `{"token": …}`, `{"username": …}` or `{"all": true}`):
//!   revokes one token, every token of a user, or every token, as iAdvize does after a
//!   password change or an administrator's revocation; answers `{"revoked": <count>}`.
//! - `POST /_standin/block` (JSON `{"ip": "<address>"?, "seconds": <n>}`): blocks logins from
//!   that client IP (every client without `ip`) for `n` seconds: each login answers `429` with a
//!   `Retry-After` of the seconds left; `DELETE /_standin/block` lifts every block.
//!
//! Tests drive it through [`Standin`]: counters, password changes, token revocation, login
//! blocks and faults injected into the next login or verification requests.
//!
//! The server never logs anything, so passwords and tokens cannot leak through it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The sliding window over which the login rate limits are counted.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// How long [`Standin::shutdown`] waits for in-flight requests before aborting the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configuration of a [`Standin`].
#[derive(Clone)]
pub struct StandinConfig {
    /// `(username, password)` pairs that may log in.
    pub users: Vec<(String, String)>,
    /// Lifetime of the tokens issued (and the `expires_in` advertised). Default: 24 h.
    pub token_lifetime: Duration,
    /// Login requests allowed per username per window. Default: 10.
    pub per_user_limit: u32,
    /// Login requests allowed per client IP per window. Default: 100.
    pub per_ip_limit: u32,
}

impl Default for StandinConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            token_lifetime: Duration::from_secs(86_400),
            per_user_limit: 10,
            per_ip_limit: 100,
        }
    }
}

impl StandinConfig {
    /// Adds a user (or replaces the password of an existing one).
    pub fn with_user(mut self, username: &str, password: &str) -> Self {
        self.users.retain(|(name, _)| name != username);
        self.users.push((username.to_owned(), password.to_owned()));
        self
    }
}

impl fmt::Debug for StandinConfig {
    /// Lists the usernames only: passwords never appear in `Debug` output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("StandinConfig")
            .field("users", &users)
            .field("token_lifetime", &self.token_lifetime)
            .field("per_user_limit", &self.per_user_limit)
            .field("per_ip_limit", &self.per_ip_limit)
            .finish()
    }
}

/// A snapshot of the stand-in's counters.
///
/// Every request is counted, including those answered by a fault:
/// - `login_requests`: every `POST /oauth2/token`;
/// - `successful_logins`: tokens issued by the normal handling (not by a fault);
/// - `rejected_logins`: logins refused by the normal handling with a 400 (bad credentials or a
///   malformed request);
/// - `rate_limited`: 429 answers, from the rate limits or from a [`Fault::TooManyRequests`];
/// - `verifications`: every `GET /_authenticated`;
/// - `graphql_requests`: every `POST /graphql`;
/// - `faults_served`: requests that consumed a fault (including [`Fault::Slow`]);
/// - `blocked_logins`: logins answered `429` because of a block ([`Standin::block_logins`]);
///   they count in `rate_limited` too.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Every `POST /oauth2/token`.
    pub login_requests: u32,
    /// Tokens issued by the normal handling.
    pub successful_logins: u32,
    /// Logins refused with a 400 by the normal handling.
    pub rejected_logins: u32,
    /// 429 answers.
    pub rate_limited: u32,
    /// Every `GET /_authenticated`.
    pub verifications: u32,
    /// Every `POST /graphql`.
    pub graphql_requests: u32,
    /// Requests that consumed a fault.
    pub faults_served: u32,
    /// Logins answered `429` because of a block (also counted in `rate_limited`).
    pub blocked_logins: u32,
}

impl Stats {
    /// Counts a fault served instead of the normal answer (a fault 429 is also a 429).
    fn count_fault(&mut self, fault: &Fault) {
        self.faults_served += 1;
        if matches!(fault, Fault::TooManyRequests(_)) {
            self.rate_limited += 1;
        }
    }
}

/// A misbehaviour to answer a request with, instead of the normal handling.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this (5xx) status with a small JSON error body.
    ServerError(u16),
    /// Sleep this long, then handle the request normally.
    Slow(Duration),
    /// Login: `200` with a truncated JSON body. Verification: the same kind of truncated body.
    MalformedJson,
    /// Login: `200 {"expires_in":86400,"token_type":"Bearer"}`.
    /// Verification: `200 {}` (no `authenticated` field).
    MissingAccessToken,
    /// Login: `200` with a real token (valid for the configured lifetime, whatever the number
    /// says) but this `expires_in`. Verification: handled normally.
    ExpiresIn(i64),
    /// `429 {"error":"too_many_requests"}`, with an optional `Retry-After` header.
    TooManyRequests(RetryAfter),
    /// Login: `401 {"error":"invalid_client"}`. Verification: `401 {"error":"invalid_token"}`.
    Unauthorized,
    /// This status with an HTML body and no OAuth error, as a proxy or WAF answers.
    Html(u16),
    /// `200` with a chunked body of this many bytes (no `Content-Length`).
    HugeBody(usize),
    /// `200 {"error":"invalid_token", …}`: the body iAdvize's `/_authenticated` gives a refused
    /// token, with a success status.
    InvalidTokenOk,
    /// Login: `200` with a real token (valid for the configured lifetime) in an answer whose
    /// fields are the documented ones overwritten by this object's (e.g. `{"expires_in":
    /// "86400.0", "token_type": null}`); in its string values `{token}` stands for the token.
    /// Verification: `200` with this object as it is.
    Answer(Value),
}

/// The `Retry-After` header of a [`Fault::TooManyRequests`].
#[derive(Debug, Clone)]
pub enum RetryAfter {
    /// No header.
    None,
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP date>`.
    HttpDate(SystemTime),
    /// `Retry-After` with this text as-is (for values that are not sane).
    Raw(&'static str),
}

/// Whom a login block ([`Standin::block_logins`]) applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockScope {
    /// Every client: iAdvize refuses every login, whatever the address (or the broker's
    /// addresses are all blocked).
    Everyone,
    /// Logins from this client IP only.
    Ip(IpAddr),
}

/// A running stand-in server. Dropping it stops the server (see also [`Standin::shutdown`]).
pub struct Standin {
    shared: Shared,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Standin {
    /// Starts a stand-in on `127.0.0.1` and a free port.
    pub async fn start(config: StandinConfig) -> io::Result<Standin> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a stand-in on `addr` (port 0 picks a free port).
    pub async fn start_on(config: StandinConfig, addr: SocketAddr) -> io::Result<Standin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(config);
        let app = router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Either an explicit stop or the `Standin` being dropped.
                let _ = stopped.await;
            });
            if let Err(error) = server.await {
                eprintln!("iadvize stand-in: server error: {error}");
            }
        });
        Ok(Standin {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Login requests received for `username`, whatever their outcome.
    pub fn logins_for(&self, username: &str) -> u32 {
        self.shared
            .lock()
            .logins_per_user
            .get(username)
            .copied()
            .unwrap_or(0)
    }

    /// Adds a user or changes its password. Tokens already issued stay valid.
    pub fn set_password(&self, username: &str, password: &str) {
        self.shared
            .lock()
            .users
            .insert(username.to_owned(), password.to_owned());
    }

    /// A handle that tells, in process and without counting as a request, whether
    /// `/_authenticated` would accept a token (for tests that watch what consumers read).
    pub fn token_checker(&self) -> TokenChecker {
        TokenChecker(self.shared.clone())
    }

    /// Revokes every token issued so far; later logins issue valid tokens again.
    pub fn revoke_all_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Revokes one token: `/_authenticated` and `/graphql` answer `401` for it from now on,
    /// as iAdvize does for a token an administrator revoked. Returns whether the token was
    /// one this stand-in issued and still valid.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.shared.lock().tokens.remove(token).is_some()
    }

    /// Revokes every token issued to `username` so far (iAdvize does so when the user's
    /// password changes); the user's later logins issue valid tokens. Returns how many tokens
    /// were revoked.
    pub fn revoke_tokens_of(&self, username: &str) -> usize {
        self.shared.lock().revoke_tokens_of(username)
    }

    /// Blocks logins from `scope` for `duration`: every login request meanwhile, whatever its
    /// credentials, answers `429 {"error":"too_many_requests"}` with `Retry-After` set to the
    /// whole seconds left (at least 1), without consuming queued faults or counting against
    /// the rate limits. Replaces an earlier block of the same scope; `/_authenticated` and
    /// `/graphql` are not blocked.
    pub fn block_logins(&self, scope: BlockScope, duration: Duration) {
        let until = Instant::now() + duration;
        self.shared.lock().blocks.insert(scope, until);
    }

    /// Each login attempted during a block lengthens that block by `step` (default zero), as a
    /// limiter that counts the attempts it refuses does: retrying inside a block prolongs it.
    pub fn lengthen_blocks_per_attempt(&self, step: Duration) {
        self.shared.lock().block_step = step;
    }

    /// Lifts every login block.
    pub fn unblock_logins(&self) {
        self.shared.lock().blocks.clear();
    }

    /// How long the block that applies to a login from `ip` still runs, if one does.
    pub fn block_left(&self, ip: IpAddr) -> Option<Duration> {
        self.shared.lock().block_left(ip, Instant::now())
    }

    /// The next `times` login requests are answered with `fault` (FIFO across pushes, before
    /// any persistent fault set with [`Standin::set_login_fault`]).
    pub fn push_login_faults(&self, fault: Fault, times: u32) {
        let mut inner = self.shared.lock();
        inner
            .login_faults
            .extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Answers every login request with `fault` (once the queued faults are used) until cleared
    /// with `None`.
    pub fn set_login_fault(&self, fault: Option<Fault>) {
        self.shared.lock().login_fault = fault;
    }

    /// The next `times` `/_authenticated` requests are answered with `fault` (FIFO).
    pub fn push_verify_faults(&self, fault: Fault, times: u32) {
        let mut inner = self.shared.lock();
        inner
            .verify_faults
            .extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Sets the lifetime of the tokens issued from now on (and the `expires_in` advertised).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().token_lifetime = lifetime;
    }

    /// Changes the rate limits (login requests per username and per client IP per window).
    pub fn set_rate_limits(&self, per_user_limit: u32, per_ip_limit: u32) {
        let mut inner = self.shared.lock();
        inner.per_user_limit = per_user_limit;
        inner.per_ip_limit = per_ip_limit;
    }

    /// Changes the sliding window of the rate limits (default [`DEFAULT_RATE_WINDOW`]).
    pub fn set_rate_window(&self, window: Duration) {
        self.shared.lock().rate_window = window;
    }

    /// Forgets the rate-limit history, so that logins are admitted again at once.
    pub fn reset_rate_limits(&self) {
        let mut inner = self.shared.lock();
        inner.user_windows.clear();
        inner.ip_windows.clear();
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a few seconds) and
    /// returns once the server has stopped.
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

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl fmt::Debug for Standin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Standin").field("addr", &self.addr).finish()
    }
}

/// See [`Standin::token_checker`]; cheap to clone and usable after the [`Standin`] moved.
#[derive(Clone)]
pub struct TokenChecker(Shared);

impl TokenChecker {
    /// Whether the token was issued by this stand-in and is neither expired nor revoked.
    pub fn accepts(&self, token: &str) -> bool {
        self.0
            .lock()
            .tokens
            .get(token)
            .is_some_and(|issued| issued.expires_at > Instant::now())
    }
}

impl fmt::Debug for TokenChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenChecker")
    }
}

/// A token issued by the stand-in.
struct IssuedToken {
    username: String,
    expires_at: Instant,
}

/// The mutable state of the server. Never locked across an `.await`.
struct Inner {
    users: HashMap<String, String>,
    token_lifetime: Duration,
    per_user_limit: u32,
    per_ip_limit: u32,
    rate_window: Duration,
    tokens: HashMap<String, IssuedToken>,
    user_windows: HashMap<String, VecDeque<Instant>>,
    ip_windows: HashMap<IpAddr, VecDeque<Instant>>,
    logins_per_user: HashMap<String, u32>,
    stats: Stats,
    login_faults: VecDeque<Fault>,
    login_fault: Option<Fault>,
    verify_faults: VecDeque<Fault>,
    /// Login blocks and when each ends.
    blocks: HashMap<BlockScope, Instant>,
    /// How much a login attempted during a block lengthens it.
    block_step: Duration,
}

impl Inner {
    /// Removes every token issued to `username`; returns how many there were.
    fn revoke_tokens_of(&mut self, username: &str) -> usize {
        let before = self.tokens.len();
        self.tokens.retain(|_, issued| issued.username != username);
        before - self.tokens.len()
    }

    /// The time left of the longest block that applies to a login from `ip` (expired blocks
    /// are forgotten).
    fn block_left(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        self.blocks.retain(|_, until| *until > now);
        [BlockScope::Everyone, BlockScope::Ip(ip)]
            .iter()
            .filter_map(|scope| self.blocks.get(scope))
            .max()
            .map(|until| until.saturating_duration_since(now))
    }

    /// If a block applies to a login from `ip`: counts the refusal, lengthens the blocks that
    /// apply by the configured step, and returns the `Retry-After` seconds (at least 1).
    fn blocked(&mut self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        self.block_left(ip, now)?;
        let step = self.block_step;
        for scope in [BlockScope::Everyone, BlockScope::Ip(ip)] {
            if let Some(until) = self.blocks.get_mut(&scope) {
                *until += step;
            }
        }
        let left = self.block_left(ip, now)?;
        self.stats.blocked_logins += 1;
        self.stats.rate_limited += 1;
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(seconds.max(1))
    }

    /// Issues a token for `username` valid for the configured lifetime.
    fn issue_token(&mut self, username: &str) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let expires_at = Instant::now()
            .checked_add(self.token_lifetime)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                username: username.to_owned(),
                expires_at,
            },
        );
        token
    }

    /// Checks the rate limits for a login request and records it when admitted.
    fn admit_login(&mut self, ip: IpAddr, username: Option<&str>) -> bool {
        let now = Instant::now();
        let window = self.rate_window;
        let ip_window = self.ip_windows.entry(ip).or_default();
        prune(ip_window, now, window);
        if ip_window.len() >= self.per_ip_limit as usize {
            return false;
        }
        if let Some(username) = username {
            let user_window = self.user_windows.entry(username.to_owned()).or_default();
            prune(user_window, now, window);
            if user_window.len() >= self.per_user_limit as usize {
                return false;
            }
            user_window.push_back(now);
        }
        self.ip_windows.entry(ip).or_default().push_back(now);
        true
    }

    /// The username a bearer token belongs to, or why it is refused.
    fn check_bearer(&mut self, headers: &HeaderMap) -> Result<String, &'static str> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("missing bearer token")?
            .to_str()
            .map_err(|_| "malformed Authorization header")?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or("malformed Authorization header")?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err("the Authorization header is not a bearer token");
        }
        let token = token.trim();
        let issued = self.tokens.get(token).ok_or("unknown or revoked token")?;
        if issued.expires_at <= Instant::now() {
            self.tokens.remove(token);
            return Err("the access token has expired");
        }
        Ok(issued.username.clone())
    }
}

/// Drops the entries of a rate-limit window older than `window`.
fn prune(entries: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while entries
        .front()
        .is_some_and(|&at| now.saturating_duration_since(at) >= window)
    {
        entries.pop_front();
    }
}

/// Shared handle on the server state.
#[derive(Clone)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn new(config: StandinConfig) -> Self {
        Shared(Arc::new(Mutex::new(Inner {
            users: config.users.into_iter().collect(),
            token_lifetime: config.token_lifetime,
            per_user_limit: config.per_user_limit,
            per_ip_limit: config.per_ip_limit,
            rate_window: DEFAULT_RATE_WINDOW,
            tokens: HashMap::new(),
            user_windows: HashMap::new(),
            ip_windows: HashMap::new(),
            logins_per_user: HashMap::new(),
            stats: Stats::default(),
            login_faults: VecDeque::new(),
            login_fault: None,
            verify_faults: VecDeque::new(),
            blocks: HashMap::new(),
            block_step: Duration::ZERO,
        })))
    }

    /// Locks the state. A panic while locked cannot leave it inconsistent in a way that
    /// matters to a test server, so a poisoned lock is simply reused.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/oauth2/token", post(login))
        .route("/_authenticated", get(authenticated))
        .route("/graphql", post(graphql))
        .route("/_standin/stats", get(stats))
        .route("/_standin/revoke", post(revoke))
        .route("/_standin/block", post(block).delete(unblock))
        .fallback(not_found)
        .with_state(shared)
}

/// A JSON response with the given status.
fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A response whose body is sent as-is with a JSON content type (for malformed bodies).
fn raw_json_response(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response()
}

fn token_response(token: String, expires_in: i64) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "refresh_token": "none",
        }),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: Option<&str>) -> Response {
    let body = match description {
        Some(description) => json!({"error": error, "error_description": description}),
        None => json!({"error": error}),
    };
    json_response(status, body)
}

fn too_many_requests(retry_after: &RetryAfter) -> Response {
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": "too_many_requests"}),
    );
    let value = match retry_after {
        RetryAfter::None => None,
        RetryAfter::Seconds(seconds) => Some(seconds.to_string()),
        RetryAfter::HttpDate(at) => Some(httpdate::fmt_http_date(*at)),
        RetryAfter::Raw(text) => Some((*text).to_owned()),
    };
    if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The faults that answer the same way on the login and the verification endpoint.
fn same_on_both_endpoints(fault: Fault) -> Response {
    match fault {
        Fault::Html(code) => html_response(code),
        Fault::HugeBody(bytes) => huge_response(bytes),
        _ => json_response(
            StatusCode::OK,
            json!({"error": "invalid_token", "error_description": "stand-in fault: token refused"}),
        ),
    }
}

fn html_response(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN);
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body><h1>Request blocked</h1></body></html>",
    )
        .into_response()
}

/// A streamed body of `bytes` bytes (JSON whitespace), chunked, so a client that trusts
/// `Content-Length` cannot see it coming.
fn huge_response(bytes: usize) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b' '; CHUNK]);
    let stream = futures_util::stream::iter((0..bytes.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(bytes - i * CHUNK);
        Ok::<_, std::convert::Infallible>(chunk.slice(..len))
    }));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

fn invalid_token(description: &str) -> Response {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", Some(description));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

fn server_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        json!({
            "error": "server_error",
            "error_description": format!("stand-in fault: HTTP {}", status.as_u16()),
        }),
    )
}

/// `POST /oauth2/token`.
async fn login(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(fields)| fields);
    let username = form.as_ref().and_then(|fields| fields.get("username"));

    let fault = {
        let mut inner = shared.lock();
        inner.stats.login_requests += 1;
        if let Some(username) = username {
            *inner.logins_per_user.entry(username.clone()).or_default() += 1;
        }
        // A block sits in front of everything else, as a limiter at iAdvize's edge would.
        if let Some(seconds) = inner.blocked(peer.ip()) {
            return too_many_requests(&RetryAfter::Seconds(seconds));
        }
        let fault = inner
            .login_faults
            .pop_front()
            .or_else(|| inner.login_fault.clone());
        if let Some(fault) = &fault {
            inner.stats.count_fault(fault);
        }
        fault
    };

    match fault {
        None => {}
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::ServerError(code)) => return server_error(code),
        Some(Fault::MalformedJson) => {
            return raw_json_response(StatusCode::OK, r#"{"access_token": "abc""#);
        }
        Some(Fault::MissingAccessToken) => {
            return json_response(
                StatusCode::OK,
                json!({"expires_in": 86_400, "token_type": "Bearer"}),
            );
        }
        Some(Fault::ExpiresIn(expires_in)) => {
            let token = shared
                .lock()
                .issue_token(username.map_or("", String::as_str));
            return token_response(token, expires_in);
        }
        Some(Fault::TooManyRequests(retry_after)) => return too_many_requests(&retry_after),
        Some(Fault::Unauthorized) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                Some("Client authentication failed"),
            );
        }
        Some(fault @ (Fault::Html(_) | Fault::HugeBody(_) | Fault::InvalidTokenOk)) => {
            return same_on_both_endpoints(fault);
        }
        Some(Fault::Answer(fields)) => {
            let mut inner = shared.lock();
            let token = inner.issue_token(username.map_or("", String::as_str));
            let lifetime = inner.token_lifetime.as_secs();
            let mut answer = json!({
                "access_token": token,
                "expires_in": lifetime,
                "token_type": "Bearer",
                "refresh_token": "none",
            });
            for (key, value) in fields.as_object().into_iter().flatten() {
                answer[key] = match value {
                    Value::String(text) => Value::String(text.replace("{token}", &token)),
                    other => other.clone(),
                };
            }
            return json_response(StatusCode::OK, answer);
        }
    }

    handle_login(&shared, peer.ip(), form.as_ref())
}

/// The normal handling of a login request: rate limits, validation, credentials.
fn handle_login(shared: &Shared, ip: IpAddr, form: Option<&HashMap<String, String>>) -> Response {
    let mut inner = shared.lock();
    let field = |name: &str| form.and_then(|fields| fields.get(name)).map(String::as_str);

    if !inner.admit_login(ip, field("username")) {
        inner.stats.rate_limited += 1;
        return too_many_requests(&RetryAfter::None);
    }

    let rejected = match (field("grant_type"), field("username"), field("password")) {
        (None, _, _) => Some(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("Missing grant_type parameter"),
        )),
        (Some(grant_type), _, _) if grant_type != "password" => Some(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            None,
        )),
        (Some(_), None, _) | (Some(_), _, None) => Some(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("Missing username or password parameter"),
        )),
        (Some(_), Some(username), Some(password)) => {
            if inner.users.get(username).map(String::as_str) == Some(password) {
                None
            } else {
                Some(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    Some("Invalid username and password combination"),
                ))
            }
        }
    };
    if let Some(response) = rejected {
        inner.stats.rejected_logins += 1;
        return response;
    }

    inner.stats.successful_logins += 1;
    let username = field("username").unwrap_or_default();
    let token = inner.issue_token(username);
    let expires_in = i64::try_from(inner.token_lifetime.as_secs()).unwrap_or(i64::MAX);
    token_response(token, expires_in)
}

/// `GET /_authenticated`.
async fn authenticated(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let fault = {
        let mut inner = shared.lock();
        inner.stats.verifications += 1;
        let fault = inner.verify_faults.pop_front();
        if let Some(fault) = &fault {
            inner.stats.count_fault(fault);
        }
        fault
    };

    match fault {
        None | Some(Fault::ExpiresIn(_)) => {}
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::ServerError(code)) => return server_error(code),
        Some(Fault::MalformedJson) => {
            return raw_json_response(StatusCode::OK, r#"{"authenticated": tr"#);
        }
        Some(Fault::MissingAccessToken) => return json_response(StatusCode::OK, json!({})),
        Some(Fault::TooManyRequests(retry_after)) => return too_many_requests(&retry_after),
        Some(Fault::Unauthorized) => return invalid_token("stand-in fault: token refused"),
        Some(fault @ (Fault::Html(_) | Fault::HugeBody(_) | Fault::InvalidTokenOk)) => {
            return same_on_both_endpoints(fault);
        }
        Some(Fault::Answer(body)) => return json_response(StatusCode::OK, body),
    }

    let checked = shared.lock().check_bearer(&headers);
    match checked {
        Ok(_) => json_response(StatusCode::OK, json!({"authenticated": true})),
        Err(reason) => invalid_token(reason),
    }
}

/// `POST /graphql`: any query answers who the token belongs to.
async fn graphql(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let checked = {
        let mut inner = shared.lock();
        inner.stats.graphql_requests += 1;
        inner.check_bearer(&headers)
    };
    let username = match checked {
        Ok(username) => username,
        Err(reason) => return invalid_token(reason),
    };
    let has_query = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|request| request.get("query").is_some_and(Value::is_string));
    if !has_query {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": "expected a JSON body with a \"query\" string"}]}),
        );
    }
    json_response(
        StatusCode::OK,
        json!({"data": {"me": {"username": username}}}),
    )
}

/// `GET /_standin/stats`.
async fn stats(State(shared): State<Shared>) -> Response {
    #[derive(Serialize)]
    struct StatsView {
        #[serde(flatten)]
        stats: Stats,
        logins_per_user: HashMap<String, u32>,
    }
    let inner = shared.lock();
    let view = StatsView {
        stats: inner.stats.clone(),
        logins_per_user: inner.logins_per_user.clone(),
    };
    (StatusCode::OK, Json(view)).into_response()
}

/// The body of `POST /_standin/revoke`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    token: Option<String>,
    username: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `POST /_standin/revoke`: one token, every token of a user, or every token.
async fn revoke(State(shared): State<Shared>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<RevokeRequest>(&body) {
        Ok(request) => request,
        Err(error) => {
            return control_error(&format!(
                "expected {{\"token\"}}, {{\"username\"}} or {{\"all\": true}}: {error}"
            ));
        }
    };
    let mut inner = shared.lock();
    let revoked = match request {
        RevokeRequest {
            token: Some(token),
            username: None,
            all: false,
        } => usize::from(inner.tokens.remove(&token).is_some()),
        RevokeRequest {
            token: None,
            username: Some(username),
            all: false,
        } => inner.revoke_tokens_of(&username),
        RevokeRequest {
            token: None,
            username: None,
            all: true,
        } => {
            let count = inner.tokens.len();
            inner.tokens.clear();
            count
        }
        _ => return control_error("give exactly one of \"token\", \"username\" or \"all\": true"),
    };
    json_response(StatusCode::OK, json!({"revoked": revoked}))
}

/// The body of `POST /_standin/block`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockRequest {
    ip: Option<IpAddr>,
    seconds: f64,
}

/// `POST /_standin/block`: blocks logins from one IP, or from everyone, for a while.
async fn block(State(shared): State<Shared>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<BlockRequest>(&body) {
        Ok(request) => request,
        Err(error) => return control_error(&format!("expected {{\"ip\"?, \"seconds\"}}: {error}")),
    };
    let Ok(duration) = Duration::try_from_secs_f64(request.seconds) else {
        return control_error("\"seconds\" must be a number of seconds, zero or more");
    };
    let scope = request.ip.map_or(BlockScope::Everyone, BlockScope::Ip);
    shared
        .lock()
        .blocks
        .insert(scope, Instant::now() + duration);
    json_response(StatusCode::OK, json!({"blocked": true}))
}

/// `DELETE /_standin/block`: lifts every block.
async fn unblock(State(shared): State<Shared>) -> Response {
    shared.lock().blocks.clear();
    json_response(StatusCode::OK, json!({"blocked": false}))
}

fn control_error(message: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({"error": message}))
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, json!({"error": "not_found"}))
}
