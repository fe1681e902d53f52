//! A counting, fault-injecting proxy in front of a Secrets Manager endpoint (moto's server):
//! the one every test uses to count Secrets Manager calls or make them fail, whatever the
//! client (the broker, the consumer crate, the readers in other languages, the AWS CLI).
//!
//! The AWS SDKs talk to Secrets Manager in JSON 1.1 over HTTP: every request is a `POST /`
//! naming its operation in `X-Amz-Target: secretsmanager.<Operation>`. The proxy reads each
//! request whole, counts it (overall and per operation), then either forwards it unchanged or
//! injects a fault:
//!
//! - [`Fault::Throttling`]: `400 {"__type":"ThrottlingException",…}`, which the SDK classifies
//!   as a throttling error and retries with backoff;
//! - [`Fault::InternalError`]: `500 {"__type":"InternalServiceError",…}`, a transient error
//!   (the SDK retries 500, 502, 503 and 504);
//! - [`Fault::Error`]: any other error answer, e.g. `400 AccessDeniedException`
//!   ([`Fault::error`] picks the status Secrets Manager gives the code);
//! - [`Fault::ConnectionReset`]: the connection is reset (RST) before anything is forwarded;
//!   [`Fault::ResetAfterApplied`]: Secrets Manager applied the call, then the connection is
//!   reset without its answer;
//! - [`Fault::Latency`]: the request is held that long, then forwarded;
//! - [`Fault::Hold`]: the call never gets an answer; the connection stays open until the
//!   caller closes it. [`Hold::BeforeForwarding`]: Secrets Manager never sees the call;
//!   [`Hold::AfterApplied`]: Secrets Manager applied it, its answer is withheld. A caller
//!   without a time-out waits for ever.
//!
//! Faults come at a chosen call ([`SmProxy::inject`], once), on the calls of an operation
//! (every one: [`SmProxy::fail`], [`SmProxy::hold`]; the next N: [`SmProxy::fail_times`];
//! all after N that pass: [`SmProxy::fail_after`]), or at seeded rates ([`SmProxy::storm`],
//! reproducible for one order of calls). Calls are counted when they arrive, per operation
//! ([`SmProxy::calls`]), and so are the injected failures ([`SmProxy::failed`]).
//! [`SmProxy::kill`] SIGKILLs a
//! process at a chosen call, either before forwarding it (calls 1..N-1 happened, call N did
//! not) or after Secrets Manager applied it but before its answer is passed on (the write
//! happened, the caller never learns). The proxy waits until the process is dead before it
//! closes the caller's connection, so the process cannot act on a reply.
//!
//! The proxy answers one request per connection and says `Connection: close`, as moto does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (Secrets Manager values are at most 64 KiB).
const MAX_BODY: usize = 1024 * 1024;
/// How long to wait for a killed process to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The longest a held call is held, so that a test process never keeps a task for ever.
const HOLD_LIMIT: Duration = Duration::from_secs(600);

/// Which call a one-shot fault or kill applies to (1-based, counted from the proxy's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// The N-th request, whatever its operation.
    Nth(u64),
    /// The N-th request of one operation, e.g. `("PutSecretValue", 1)`.
    NthOf(String, u64),
}

impl Call {
    /// The N-th call of `operation`.
    pub fn nth_of(operation: &str, n: u64) -> Call {
        Call::NthOf(operation.to_owned(), n)
    }

    fn matches(&self, seq: u64, operation: &str, op_seq: u64) -> bool {
        match self {
            Call::Nth(n) => *n == seq,
            Call::NthOf(op, n) => op == operation && *n == op_seq,
        }
    }
}

/// A misbehaviour of Secrets Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `400` with `ThrottlingException`.
    Throttling,
    /// `500` with `InternalServiceError`.
    InternalError,
    /// An error answer with this HTTP status and error code (`__type` in the body and the
    /// `x-amzn-ErrorType` header), e.g. `400 AccessDeniedException`. See [`Fault::error`].
    Error {
        /// HTTP status, e.g. 400.
        status: u16,
        /// Secrets Manager's error code, e.g. `AccessDeniedException`.
        code: &'static str,
    },
    /// A TCP reset instead of an answer; the request is not forwarded.
    ConnectionReset,
    /// Secrets Manager applied the call, then the connection is reset: the caller gets no
    /// answer, the write happened.
    ResetAfterApplied,
    /// Hold the request this long, then forward it.
    Latency(Duration),
    /// Never answer: keep the connection open until the caller closes it (at most 10 min).
    Hold(Hold),
}

impl Fault {
    /// The error answer Secrets Manager gives with `code`: `500` for `InternalServiceError`
    /// and `ServiceUnavailable`, `400` for every other code (`ThrottlingException`,
    /// `AccessDeniedException`, `ResourceNotFoundException`, …).
    pub fn error(code: &'static str) -> Fault {
        let status = match code {
            "InternalServiceError" | "InternalFailure" => 500,
            "ServiceUnavailable" => 503,
            _ => 400,
        };
        Fault::Error { status, code }
    }
}

/// Where [`Fault::Hold`] holds a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hold {
    /// The call is not forwarded: Secrets Manager never sees it.
    BeforeForwarding,
    /// Secrets Manager applied the call; its answer never reaches the caller.
    AfterApplied,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hold::BeforeForwarding => "before forwarding",
            Hold::AfterApplied => "after Secrets Manager applied it",
        })
    }
}

/// When [`SmProxy::kill`] kills the process, relative to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KillPoint {
    /// The call is not forwarded: Secrets Manager never sees it.
    BeforeForwarding,
    /// Secrets Manager applied the call; its answer never reaches the process.
    AfterApplied,
}

impl fmt::Display for KillPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KillPoint::BeforeForwarding => "before",
            KillPoint::AfterApplied => "after",
        })
    }
}

/// Faults at seeded rates, applied to every call (or to some operations) until
/// [`SmProxy::calm`]. Each call draws the same amount of randomness whatever happens to it,
/// so one seed and one order of calls always give the same faults.
#[derive(Debug, Clone)]
pub struct Storm {
    seed: u64,
    throttling: f64,
    internal_error: f64,
    connection_reset: f64,
    latency_rate: f64,
    latency: Duration,
    operations: Option<Vec<String>>,
}

impl Storm {
    /// No fault yet; add some with the builder methods.
    pub fn new(seed: u64) -> Storm {
        Storm {
            seed,
            throttling: 0.0,
            internal_error: 0.0,
            connection_reset: 0.0,
            latency_rate: 0.0,
            latency: Duration::ZERO,
            operations: None,
        }
    }

    /// This share of calls (0..=1) is throttled.
    pub fn throttling(mut self, rate: f64) -> Storm {
        self.throttling = rate;
        self
    }

    /// This share of calls answers `500 InternalServiceError`.
    pub fn internal_errors(mut self, rate: f64) -> Storm {
        self.internal_error = rate;
        self
    }

    /// This share of calls has its connection reset.
    pub fn connection_resets(mut self, rate: f64) -> Storm {
        self.connection_reset = rate;
        self
    }

    /// This share of calls is held `delay` before it is forwarded (or answered).
    pub fn latency(mut self, rate: f64, delay: Duration) -> Storm {
        self.latency_rate = rate;
        self.latency = delay;
        self
    }

    /// Only these operations are affected.
    pub fn only(mut self, operations: &[&str]) -> Storm {
        self.operations = Some(operations.iter().map(|op| (*op).to_owned()).collect());
        self
    }
}

/// What happened to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded; Secrets Manager answered this status, passed on.
    Forwarded {
        /// HTTP status of Secrets Manager's answer.
        status: u16,
    },
    /// Answered `400 ThrottlingException` instead.
    Throttled,
    /// Answered `500 InternalServiceError` instead.
    InternalError,
    /// Answered this other error instead ([`Fault::Error`]).
    Failed {
        /// HTTP status of the injected answer.
        status: u16,
        /// Its error code.
        code: String,
    },
    /// The connection was reset; nothing was forwarded.
    Reset,
    /// Secrets Manager applied the call, then the connection was reset without its answer.
    ResetAfterApplied,
    /// The process was killed at this call.
    Killed {
        /// Before or after Secrets Manager applied the call.
        point: KillPoint,
        /// The process.
        pid: u32,
    },
    /// The call got no answer ([`Fault::Hold`]) until the caller closed the connection.
    Held {
        /// Before forwarding, or after Secrets Manager applied it.
        point: Hold,
        /// How long the caller waited before it closed the connection.
        held: Duration,
    },
    /// Secrets Manager could not be reached; the caller's connection was closed.
    UpstreamFailed(String),
    /// Not a request the proxy understands (answered 400).
    Malformed(String),
}

/// One call seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// 1-based position among all calls.
    pub seq: u64,
    /// The operation, e.g. `PutSecretValue` (`?` when the request named none).
    pub operation: String,
    /// 1-based position among the calls of this operation.
    pub op_seq: u64,
    /// The request's `SecretId` (operations on one secret), as the caller named it.
    pub secret_id: Option<String>,
    /// Latency added before the call was handled.
    pub delay: Duration,
    /// What happened to it.
    pub outcome: Outcome,
}

/// Counters over every call so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Calls received.
    pub total: u64,
    /// Calls per operation.
    pub per_operation: BTreeMap<String, u64>,
    /// Calls forwarded to Secrets Manager (those a kill interrupted after applying included).
    pub forwarded: u64,
    /// Throttling errors injected.
    pub throttled: u64,
    /// 500 errors injected.
    pub internal_errors: u64,
    /// Other error answers injected ([`Fault::Error`]).
    pub errors: u64,
    /// Connections reset (before forwarding or after Secrets Manager applied the call).
    pub resets: u64,
    /// Calls delayed.
    pub delayed: u64,
    /// Processes killed.
    pub kills: u64,
    /// Calls held without an answer (and given up by their caller).
    pub held: u64,
}

impl ProxyStats {
    /// Calls answered with an injected fault (throttling, 500, other errors, reset; not
    /// latency, holds or kills).
    pub fn failed(&self) -> u64 {
        self.throttled + self.internal_errors + self.errors + self.resets
    }
}

/// A running proxy. Dropping it stops accepting connections.
pub struct SmProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl SmProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`
    /// (e.g. `http://127.0.0.1:5000`, moto's server).
    pub async fn start(upstream: &str) -> io::Result<SmProxy> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        if upstream.contains('/') || upstream.starts_with("https:") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the upstream must be http://host:port, got {upstream}"),
            ));
        }
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::new(upstream)));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, shared.clone()));
            }
        });
        Ok(SmProxy { addr, state, task })
    }

    /// The endpoint to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A Secrets Manager client that goes through the proxy (the SDK's default retries).
    pub fn client(&self) -> aws_sdk_secretsmanager::Client {
        crate::moto::client(&self.url())
    }

    /// A Secrets Manager client that goes through the proxy without the SDK's retries, so
    /// that every call the caller makes is one request here.
    pub fn client_without_retries(&self) -> aws_sdk_secretsmanager::Client {
        crate::moto::client_with(
            &self.url(),
            crate::moto::REGION,
            Some(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()),
        )
    }

    /// Answers the call `at` with `fault`, once.
    pub fn inject(&self, at: Call, fault: Fault) {
        self.lock().once.push((at, fault));
    }

    /// Applies `storm` to every later call until [`SmProxy::calm`].
    pub fn storm(&self, storm: Storm) {
        let rng = SplitMix64(storm.seed);
        self.lock().storm = Some((storm, rng));
    }

    /// Answers every later call of `operation` with `fault` until [`SmProxy::pass`] or
    /// [`SmProxy::calm`]. A one-shot fault ([`SmProxy::inject`]) at one of these calls waits
    /// for a call this rule lets through.
    pub fn fail(&self, operation: &str, fault: Fault) {
        self.add_rule(operation, fault, 0, None);
    }

    /// Answers the next `times` calls of `operation` with `fault`.
    pub fn fail_times(&self, operation: &str, times: u64, fault: Fault) {
        if times > 0 {
            self.add_rule(operation, fault, 0, Some(times));
        }
    }

    /// Lets the next `passes` calls of `operation` through, then answers every later one
    /// with `fault` until [`SmProxy::pass`] or [`SmProxy::calm`].
    pub fn fail_after(&self, operation: &str, passes: u64, fault: Fault) {
        self.add_rule(operation, fault, passes, None);
    }

    /// Holds every later call of `operation` ([`Fault::Hold`]) until [`SmProxy::calm`].
    pub fn hold(&self, operation: &str, point: Hold) {
        self.fail(operation, Fault::Hold(point));
    }

    /// Drops the rules of [`SmProxy::fail`], [`SmProxy::fail_times`], [`SmProxy::fail_after`]
    /// and [`SmProxy::hold`] for `operation`: its later calls pass (one-shot faults and kills
    /// stay).
    pub fn pass(&self, operation: &str) {
        self.lock().rules.retain(|rule| rule.operation != operation);
    }

    fn add_rule(&self, operation: &str, fault: Fault, passes: u64, times: Option<u64>) {
        self.lock().rules.push(Rule {
            operation: operation.to_owned(),
            fault,
            passes,
            times,
        });
    }

    /// Calls being held right now (the caller has not given up yet).
    pub fn holding(&self) -> u64 {
        self.lock().holding
    }

    /// Calls held so far: those being held and those whose caller gave up.
    pub fn held(&self) -> u64 {
        self.lock().held
    }

    /// Drops the storm, the holds, and every fault and kill not yet applied (calls already
    /// held stay held until their caller gives up).
    pub fn calm(&self) {
        let mut state = self.lock();
        state.storm = None;
        state.once.clear();
        state.kills.clear();
        state.rules.clear();
    }

    /// SIGKILLs process `pid` at the call `at`, before forwarding it or once Secrets Manager
    /// applied it, and waits until the process is gone before closing its connection.
    pub fn kill(&self, pid: u32, at: Call, point: KillPoint) {
        self.lock().kills.push(KillRule { pid, at, point });
    }

    /// Calls of `operation` seen so far (counted when the request arrived, before any answer).
    pub fn calls(&self, operation: &str) -> u64 {
        self.lock().per_op.get(operation).copied().unwrap_or(0)
    }

    /// `GetSecretValue` calls seen so far: the reads of a secret's value, whoever the client.
    pub fn reads(&self) -> u64 {
        self.calls("GetSecretValue")
    }

    /// Calls of `operation` answered with an injected failure so far (error answers and
    /// resets; counted when the call arrived, so before its caller sees the failure).
    pub fn failed(&self, operation: &str) -> u64 {
        self.lock().failed.get(operation).copied().unwrap_or(0)
    }

    /// Calls of `operation` whose handling is over (answered, failed or killed): unlike
    /// [`SmProxy::calls`], a forwarded call counted here has been applied.
    pub fn completed(&self, operation: &str) -> u64 {
        self.lock()
            .log
            .iter()
            .filter(|r| r.operation == operation)
            .count() as u64
    }

    /// The `SecretId` of every completed call of `operation` (`None` for a call naming no
    /// single secret), in the order they arrived: which secrets a command read, e.g.
    pub fn secret_ids_of(&self, operation: &str) -> Vec<Option<String>> {
        self.log()
            .into_iter()
            .filter(|record| record.operation == operation)
            .map(|record| record.secret_id)
            .collect()
    }

    /// Calls seen so far.
    pub fn total_calls(&self) -> u64 {
        self.lock().seq
    }

    /// Every completed call, in the order they arrived.
    pub fn log(&self) -> Vec<CallRecord> {
        let mut log = self.lock().log.clone();
        log.sort_by_key(|record| record.seq);
        log
    }

    /// The operations of the completed calls, in order.
    pub fn operations(&self) -> Vec<String> {
        self.log().into_iter().map(|r| r.operation).collect()
    }

    /// Counters over every completed call.
    pub fn stats(&self) -> ProxyStats {
        let state = self.lock();
        let mut stats = ProxyStats {
            total: state.seq,
            per_operation: state.per_op.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ..ProxyStats::default()
        };
        for record in &state.log {
            if !record.delay.is_zero() {
                stats.delayed += 1;
            }
            match record.outcome {
                Outcome::Forwarded { .. } => stats.forwarded += 1,
                Outcome::Throttled => stats.throttled += 1,
                Outcome::InternalError => stats.internal_errors += 1,
                Outcome::Failed { .. } => stats.errors += 1,
                Outcome::Reset => stats.resets += 1,
                Outcome::ResetAfterApplied => {
                    stats.resets += 1;
                    stats.forwarded += 1;
                }
                Outcome::Killed { point, .. } => {
                    stats.kills += 1;
                    if point == KillPoint::AfterApplied {
                        stats.forwarded += 1;
                    }
                }
                Outcome::Held { point, .. } => {
                    stats.held += 1;
                    if point == Hold::AfterApplied {
                        stats.forwarded += 1;
                    }
                }
                Outcome::UpstreamFailed(_) | Outcome::Malformed(_) => {}
            }
        }
        stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SmProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for SmProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmProxy").field("addr", &self.addr).finish()
    }
}

/// A standing fault on the calls of one operation.
struct Rule {
    operation: String,
    fault: Fault,
    /// Calls still let through before the fault applies.
    passes: u64,
    /// Calls the fault still applies to (`None`: every one).
    times: Option<u64>,
}

struct KillRule {
    pid: u32,
    at: Call,
    point: KillPoint,
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Forward,
    Throttle,
    InternalError,
    Error(u16, &'static str),
    Reset,
    ResetAfterApplied,
    Kill(u32, KillPoint),
    Hold(Hold),
}

struct State {
    upstream: String,
    seq: u64,
    per_op: HashMap<String, u64>,
    once: Vec<(Call, Fault)>,
    kills: Vec<KillRule>,
    /// Standing faults per operation, first match first.
    rules: Vec<Rule>,
    /// Injected failures per operation.
    failed: HashMap<String, u64>,
    /// Calls held right now.
    holding: u64,
    /// Calls held so far.
    held: u64,
    storm: Option<(Storm, SplitMix64)>,
    log: Vec<CallRecord>,
}

impl State {
    fn new(upstream: String) -> State {
        State {
            upstream,
            seq: 0,
            per_op: HashMap::new(),
            once: Vec::new(),
            kills: Vec::new(),
            rules: Vec::new(),
            failed: HashMap::new(),
            holding: 0,
            held: 0,
            storm: None,
            log: Vec::new(),
        }
    }

    /// Counts a call and decides its fate: a kill first, then the standing rules, then
    /// one-shot faults, then the storm.
    fn decide(&mut self, operation: &str) -> (u64, u64, Plan, Duration) {
        let (seq, op_seq, plan, delay) = self.plan(operation);
        if matches!(
            plan,
            Plan::Throttle
                | Plan::InternalError
                | Plan::Error(..)
                | Plan::Reset
                | Plan::ResetAfterApplied
        ) {
            *self.failed.entry(operation.to_owned()).or_default() += 1;
        }
        (seq, op_seq, plan, delay)
    }

    fn plan(&mut self, operation: &str) -> (u64, u64, Plan, Duration) {
        self.seq += 1;
        let seq = self.seq;
        let op_seq = {
            let count = self.per_op.entry(operation.to_owned()).or_default();
            *count += 1;
            *count
        };
        if let Some(i) = self
            .kills
            .iter()
            .position(|k| k.at.matches(seq, operation, op_seq))
        {
            let rule = self.kills.remove(i);
            return (
                seq,
                op_seq,
                Plan::Kill(rule.pid, rule.point),
                Duration::ZERO,
            );
        }
        let mut plan = Plan::Forward;
        let mut delay = Duration::ZERO;
        if let Some(i) = self.rules.iter().position(|r| r.operation == operation) {
            let rule = &mut self.rules[i];
            if rule.passes > 0 {
                rule.passes -= 1;
            } else {
                match rule.fault {
                    Fault::Latency(d) => delay += d,
                    fault => plan = plan_of(fault),
                }
                if let Some(times) = &mut rule.times {
                    *times -= 1;
                    if *times == 0 {
                        self.rules.remove(i);
                    }
                }
            }
        }
        self.once.retain(|(at, fault)| {
            if !at.matches(seq, operation, op_seq) {
                return true;
            }
            match (fault, plan) {
                (Fault::Latency(d), _) => delay += *d,
                (fault, Plan::Forward) => plan = plan_of(*fault),
                _ => return true, // one answer per call; a second fault waits for its turn
            }
            false
        });
        if let Some((storm, rng)) = &mut self.storm {
            let applies = storm
                .operations
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|op| op == operation));
            if applies {
                let (draw, late) = (rng.next_f64(), rng.next_f64());
                if plan == Plan::Forward {
                    let mut edge = storm.throttling;
                    if draw < edge {
                        plan = Plan::Throttle;
                    } else {
                        edge += storm.internal_error;
                        if draw < edge {
                            plan = Plan::InternalError;
                        } else if draw < edge + storm.connection_reset {
                            plan = Plan::Reset;
                        }
                    }
                }
                if late < storm.latency_rate {
                    delay += storm.latency;
                }
            }
        }
        (seq, op_seq, plan, delay)
    }
}

fn plan_of(fault: Fault) -> Plan {
    match fault {
        Fault::Throttling => Plan::Throttle,
        Fault::InternalError => Plan::InternalError,
        Fault::Error { status, code } => Plan::Error(status, code),
        Fault::ConnectionReset => Plan::Reset,
        Fault::ResetAfterApplied => Plan::ResetAfterApplied,
        Fault::Latency(_) => Plan::Forward,
        Fault::Hold(point) => Plan::Hold(point),
    }
}

/// A small seeded generator (SplitMix64): reproducible storms without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A request read whole.
struct Request {
    operation: String,
    /// The JSON body's `SecretId`, if any.
    secret_id: Option<String>,
    /// The head rebuilt with `Connection: close`, then the body.
    upstream_bytes: Vec<u8>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handles one connection: one request, one answer (or a fault).
async fn serve(mut client: TcpStream, state: Arc<Mutex<State>>) {
    let _ = client.set_nodelay(true);
    let request = match read_request(&mut client).await {
        Ok(Some(request)) => request,
        Ok(None) => return,
        Err(error) => {
            let message = error.to_string();
            let _ = client
                .write_all(&canned(400, "Bad Request", "BadRequest", &message))
                .await;
            let mut state = lock(&state);
            state.seq += 1;
            let seq = state.seq;
            state.log.push(CallRecord {
                seq,
                operation: "?".to_owned(),
                op_seq: 0,
                secret_id: None,
                delay: Duration::ZERO,
                outcome: Outcome::Malformed(message),
            });
            return;
        }
    };
    let (seq, op_seq, plan, delay, upstream) = {
        let mut state = lock(&state);
        let (seq, op_seq, plan, delay) = state.decide(&request.operation);
        (seq, op_seq, plan, delay, state.upstream.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let outcome = match plan {
        Plan::Forward => match forward(&upstream, &request.upstream_bytes).await {
            Ok((status, answer)) => {
                let _ = client.write_all(&answer).await;
                Outcome::Forwarded { status }
            }
            Err(error) => Outcome::UpstreamFailed(error.to_string()),
        },
        Plan::Throttle => {
            let answer = canned(400, "Bad Request", "ThrottlingException", "Rate exceeded");
            let _ = client.write_all(&answer).await;
            Outcome::Throttled
        }
        Plan::InternalError => {
            let answer = canned(
                500,
                "Internal Server Error",
                "InternalServiceError",
                "An error occurred on the server side.",
            );
            let _ = client.write_all(&answer).await;
            Outcome::InternalError
        }
        Plan::Error(status, code) => {
            let reason = if status >= 500 {
                "Internal Server Error"
            } else {
                "Bad Request"
            };
            let message = format!("{code} (injected by the test)");
            let answer = canned(status, reason, code, &message);
            let _ = client.write_all(&answer).await;
            Outcome::Failed {
                status,
                code: code.to_owned(),
            }
        }
        Plan::Reset => {
            reset(&client);
            Outcome::Reset
        }
        Plan::ResetAfterApplied => {
            // Applied, then the connection is torn down: the caller never learns.
            if let Err(error) = forward(&upstream, &request.upstream_bytes).await {
                eprintln!("sm proxy: call {seq} could not be applied before the reset: {error}");
            }
            reset(&client);
            Outcome::ResetAfterApplied
        }
        Plan::Hold(point) => {
            if point == Hold::AfterApplied {
                // Applied, and the answer dropped: the caller never learns.
                if let Err(error) = forward(&upstream, &request.upstream_bytes).await {
                    eprintln!("sm proxy: held call {seq} could not be applied: {error}");
                }
            }
            {
                let mut state = lock(&state);
                state.holding += 1;
                state.held += 1;
            }
            let held = wait_for_close(&mut client).await;
            let mut state = lock(&state);
            state.holding -= 1;
            state.log.push(CallRecord {
                seq,
                operation: request.operation,
                op_seq,
                secret_id: request.secret_id,
                delay,
                outcome: Outcome::Held { point, held },
            });
            return;
        }
        Plan::Kill(pid, point) => {
            if point == KillPoint::AfterApplied {
                // The answer is dropped: the write happened, the caller never learns.
                if let Err(error) = forward(&upstream, &request.upstream_bytes).await {
                    eprintln!("sm proxy: call {seq} could not be applied before the kill: {error}");
                }
            }
            // Logged before the kill, so whoever sees the process die also finds the record.
            lock(&state).log.push(CallRecord {
                seq,
                operation: request.operation,
                op_seq,
                secret_id: request.secret_id,
                delay,
                outcome: Outcome::Killed { point, pid },
            });
            if let Err(error) = kill_and_wait(pid).await {
                eprintln!("sm proxy: {error}");
            }
            reset(&client);
            return;
        }
    };
    let _ = client.shutdown().await;
    lock(&state).log.push(CallRecord {
        seq,
        operation: request.operation,
        op_seq,
        secret_id: request.secret_id,
        delay,
        outcome,
    });
}

/// Waits until the caller closes the connection (or [`HOLD_LIMIT`] passes), answering nothing;
/// returns how long that took.
async fn wait_for_close(client: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(HOLD_LIMIT, async {
        // Whatever else the caller sends is ignored; end of stream or an error is the close.
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    started.elapsed()
}

/// Makes the connection close with a TCP reset rather than an orderly shutdown.
fn reset(client: &TcpStream) {
    let _ = client.set_zero_linger();
}

/// Reads one HTTP/1.1 request; `None` when the client closed without sending one.
async fn read_request(stream: &mut TcpStream) -> io::Result<Option<Request>> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let (head_len, method, path, version, headers) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut slots);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let headers: Vec<(String, Vec<u8>)> = parsed
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect();
                break (
                    len,
                    parsed.method.unwrap_or("GET").to_owned(),
                    parsed.path.unwrap_or("/").to_owned(),
                    parsed.version.unwrap_or(1),
                    headers,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(invalid("request head too large".into())),
            Err(error) => return Err(invalid(format!("not an HTTP request: {error}"))),
        }
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| String::from_utf8_lossy(value).trim().to_owned())
    };
    if header("transfer-encoding").is_some() {
        return Err(invalid("chunked requests are not supported".into()));
    }
    let length: usize = match header("content-length") {
        Some(text) => text
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {text:?}")))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(invalid(format!("body of {length} bytes is too large")));
    }
    while buf.len() < head_len + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let operation = header("x-amz-target")
        .map(|target| {
            target
                .rsplit_once('.')
                .map_or(target.as_str(), |(_, op)| op)
                .to_owned()
        })
        .unwrap_or_else(|| "?".to_owned());

    let mut upstream = format!("{method} {path} HTTP/1.{version}\r\n").into_bytes();
    for (name, value) in &headers {
        if !name.eq_ignore_ascii_case("connection") {
            upstream.extend_from_slice(name.as_bytes());
            upstream.extend_from_slice(b": ");
            upstream.extend_from_slice(value);
            upstream.extend_from_slice(b"\r\n");
        }
    }
    upstream.extend_from_slice(b"Connection: close\r\n\r\n");
    let body = &buf[head_len..head_len + length];
    let secret_id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json.get("SecretId")?.as_str().map(str::to_owned));
    upstream.extend_from_slice(body);
    Ok(Some(Request {
        operation,
        secret_id,
        upstream_bytes: upstream,
    }))
}

/// Sends a request to Secrets Manager and reads the whole answer (the request asked the
/// server to close the connection after it). Returns the status and the answer rebuilt with
/// `Connection: close`.
async fn forward(upstream: &str, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    server.write_all(request).await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Read up to the end of the body (Content-Length), or to the close when there is none:
    // waiting for the server's close would add its lingering to every call.
    let head_len = loop {
        let n = server.read(&mut chunk).await?;
        answer.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut slots);
        match parsed.parse(&answer) {
            Ok(httparse::Status::Complete(len)) => {
                let length = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    });
                match length {
                    Some(length) => {
                        while answer.len() < len + length {
                            let n = server.read(&mut chunk).await?;
                            if n == 0 {
                                return Err(io::ErrorKind::UnexpectedEof.into());
                            }
                            answer.extend_from_slice(&chunk[..n]);
                        }
                        answer.truncate(len + length);
                    }
                    None => {
                        server.read_to_end(&mut answer).await?;
                    }
                }
                break len;
            }
            Ok(httparse::Status::Partial) if n > 0 => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "Secrets Manager's answer is not HTTP",
                ));
            }
        }
    };
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut slots);
    if !matches!(parsed.parse(&answer), Ok(httparse::Status::Complete(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "Secrets Manager's answer is not HTTP",
        ));
    }
    let status = parsed.code.unwrap_or(0);
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n",
        parsed.reason.unwrap_or("Unknown")
    )
    .into_bytes();
    for header in parsed.headers.iter() {
        if !header.name.eq_ignore_ascii_case("connection") {
            out.extend_from_slice(header.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&answer[head_len..]);
    Ok((status, out))
}

/// An error answer in Secrets Manager's JSON 1.1 shape.
fn canned(status: u16, reason: &str, error_type: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"__type": error_type, "message": message}).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: {}\r\nx-amzn-ErrorType: {error_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        uuid::Uuid::new_v4(),
        body.len()
    )
    .into_bytes()
}

/// SIGKILLs `pid` and waits until it is gone (exited, or a zombie waiting for its parent).
async fn kill_and_wait(pid: u32) -> Result<(), String> {
    let status = tokio::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .await
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !status.success() {
        return Err(format!("kill -KILL {pid} failed ({status})"));
    }
    let deadline = Instant::now() + KILL_WAIT;
    while is_running(pid) {
        if Instant::now() > deadline {
            return Err(format!("process {pid} still runs after SIGKILL"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Whether `pid` still runs (Linux `/proc`; elsewhere it is assumed gone once killed).
fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state …`: comm may contain spaces and parentheses, so split at the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_storm() {
        let storm = Storm::new(7).throttling(0.25).internal_errors(0.10);
        let plans = |storm: &Storm| {
            let mut state = State::new("127.0.0.1:1".into());
            state.storm = Some((storm.clone(), SplitMix64(storm.seed)));
            (0..400)
                .map(|i| state.decide(if i % 2 == 0 { "A" } else { "B" }).2)
                .collect::<Vec<_>>()
        };
        let first = plans(&storm);
        assert_eq!(first, plans(&storm));
        assert_ne!(
            first,
            plans(&Storm::new(8).throttling(0.25).internal_errors(0.10))
        );
        let throttled = first.iter().filter(|p| **p == Plan::Throttle).count();
        let errors = first.iter().filter(|p| **p == Plan::InternalError).count();
        // 100 and 40 expected; the bounds are wide, the seed makes it exact anyway.
        assert!((70..=130).contains(&throttled), "{throttled}");
        assert!((20..=60).contains(&errors), "{errors}");
    }

    #[test]
    fn a_one_shot_fault_hits_only_its_call() {
        let mut state = State::new("127.0.0.1:1".into());
        state
            .once
            .push((Call::nth_of("PutSecretValue", 2), Fault::Throttling));
        state.once.push((Call::Nth(1), Fault::InternalError));
        let plans: Vec<Plan> = [
            "GetSecretValue",
            "PutSecretValue",
            "PutSecretValue",
            "PutSecretValue",
        ]
        .iter()
        .map(|op| state.decide(op).2)
        .collect();
        assert_eq!(
            plans,
            [
                Plan::InternalError,
                Plan::Forward,
                Plan::Throttle,
                Plan::Forward
            ]
        );
        assert!(state.once.is_empty());
    }

    #[test]
    fn a_hold_applies_to_every_call_of_its_operation_until_calm() {
        let mut state = State::new("127.0.0.1:1".into());
        state.rules.push(Rule {
            operation: "DescribeSecret".into(),
            fault: Fault::Hold(Hold::BeforeForwarding),
            passes: 0,
            times: None,
        });
        state.once.push((
            Call::nth_of("PutSecretValue", 1),
            Fault::Hold(Hold::AfterApplied),
        ));
        let plans: Vec<Plan> = [
            "DescribeSecret",
            "PutSecretValue",
            "DescribeSecret",
            "PutSecretValue",
        ]
        .iter()
        .map(|op| state.decide(op).2)
        .collect();
        assert_eq!(
            plans,
            [
                Plan::Hold(Hold::BeforeForwarding),
                Plan::Hold(Hold::AfterApplied),
                Plan::Hold(Hold::BeforeForwarding),
                Plan::Forward
            ]
        );
    }

    #[test]
    fn a_standing_rule_lets_its_passes_through_then_fails_its_calls_and_counts_them() {
        let mut state = State::new("127.0.0.1:1".into());
        state.rules.push(Rule {
            operation: "GetSecretValue".into(),
            fault: Fault::error("AccessDeniedException"),
            passes: 1,
            times: Some(2),
        });
        let plans: Vec<Plan> = [
            "GetSecretValue",
            "PutSecretValue",
            "GetSecretValue",
            "GetSecretValue",
            "GetSecretValue",
        ]
        .iter()
        .map(|op| state.decide(op).2)
        .collect();
        let denied = Plan::Error(400, "AccessDeniedException");
        assert_eq!(
            plans,
            [Plan::Forward, Plan::Forward, denied, denied, Plan::Forward]
        );
        assert!(state.rules.is_empty(), "used up");
        assert_eq!(state.failed.get("GetSecretValue"), Some(&2));
        assert_eq!(state.failed.get("PutSecretValue"), None);
        assert_eq!(state.per_op.get("GetSecretValue"), Some(&4));
    }

    #[test]
    fn an_error_code_gets_the_status_secrets_manager_gives_it() {
        let status = |code| match Fault::error(code) {
            Fault::Error { status, .. } => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status("ThrottlingException"), 400);
        assert_eq!(status("AccessDeniedException"), 400);
        assert_eq!(status("InternalServiceError"), 500);
    }

    #[test]
    fn the_state_of_a_process_is_read_from_proc() {
        assert!(is_running(std::process::id()));
        assert!(!is_running(u32::MAX));
    }
}
