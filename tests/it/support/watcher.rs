//! A consumer that watches: while a fault test runs, a task reads the token
//! secret's AWSCURRENT straight from moto (not through the fault proxy) every
//! [`POLL_INTERVAL`], as a consumer would. Once the secret was first filled, every value it
//! reads must be a token record that is not expired and that the iAdvize stand-in accepts.
//! The invariant is checked on every read, not assumed from the end state.
//!
//! Acceptance is asked in process ([`standins::TokenChecker`]), so the watcher's reads
//! never count as logins or verifications. Reports never contain a token.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use iadvize_token_broker::token::TokenRecord;
use standins::TokenChecker;
use tokio::task::JoinHandle;

/// How often the watcher reads AWSCURRENT.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// `finish` waits for at least this many reads in all, so every report has substance.
pub const MIN_READS: u64 = 8;
/// How long `start` and `finish` wait for reads before giving up (a stuck moto).
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// One read that broke the invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which read (1-based).
    pub read: u64,
    /// The version read, when there was one.
    pub version_id: String,
    /// What was wrong (never the token).
    pub reason: String,
}

/// What the watcher saw.
#[derive(Debug, Clone, Default)]
pub struct WatchReport {
    /// Reads of AWSCURRENT.
    pub reads: u64,
    /// Reads before the secret was first filled (no value yet: allowed).
    pub unfilled_reads: u64,
    /// Reads that moto failed (not the broker's doing; reported, not counted as violations).
    pub errors: u64,
    /// Distinct AWSCURRENT versions seen.
    pub versions_seen: usize,
    /// Reads that broke the invariant.
    pub violations: Vec<Violation>,
}

impl WatchReport {
    /// Zero violations over a non-trivial number of reads.
    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "a consumer read a bad token: {self}"
        );
        assert!(
            self.reads >= MIN_READS,
            "too few reads to mean anything: {self}"
        );
    }

    /// Whether it saw no violation.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for WatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} reads ({} before the first fill, {} moto errors), {} versions, {} violations",
            self.reads,
            self.unfilled_reads,
            self.errors,
            self.versions_seen,
            self.violations.len()
        )?;
        for v in self.violations.iter().take(5) {
            write!(f, "; read {} of {}: {}", v.read, v.version_id, v.reason)?;
        }
        Ok(())
    }
}

/// A running watcher; [`Watcher::finish`] stops it and returns its report.
pub struct Watcher {
    reads: Arc<AtomicU64>,
    stop_at: Arc<AtomicU64>,
    task: JoinHandle<WatchReport>,
}

impl Watcher {
    /// Starts watching `secret_id` with `sm` (a client of moto itself) and returns once the
    /// first read is done, so the watch covers everything the test does next.
    pub async fn start(sm: Client, secret_id: &str, checker: TokenChecker) -> Watcher {
        let reads = Arc::new(AtomicU64::new(0));
        let stop_at = Arc::new(AtomicU64::new(u64::MAX));
        let task = tokio::spawn(watch(
            sm,
            secret_id.to_owned(),
            checker,
            reads.clone(),
            stop_at.clone(),
        ));
        let watcher = Watcher {
            reads,
            stop_at,
            task,
        };
        watcher.wait_for_reads(1).await;
        watcher
    }

    /// Reads so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Waits until `n` more reads are done (so they saw what the test just did).
    pub async fn wait_for_more_reads(&self, n: u64) {
        self.wait_for_reads(self.reads() + n).await;
    }

    async fn wait_for_reads(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        while self.reads() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops after one more read (which sees the final state) and at least [`MIN_READS`]
    /// reads in all; returns the report.
    pub async fn finish(self) -> WatchReport {
        let target = (self.reads() + 1).max(MIN_READS);
        self.stop_at.store(target, Ordering::SeqCst);
        match tokio::time::timeout(WAIT_LIMIT, self.task).await {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => panic!("the watcher task failed: {e}"),
            Err(_) => panic!("the watcher did not finish within {WAIT_LIMIT:?}"),
        }
    }
}

async fn watch(
    sm: Client,
    secret_id: String,
    checker: TokenChecker,
    reads: Arc<AtomicU64>,
    stop_at: Arc<AtomicU64>,
) -> WatchReport {
    let mut report = WatchReport::default();
    let mut filled = false;
    let mut versions = HashSet::new();
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let read = report.reads + 1;
        let answer = sm
            .get_secret_value()
            .secret_id(&secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await;
        let mut violation = |version_id: &str, reason: String| {
            report.violations.push(Violation {
                read,
                version_id: version_id.to_owned(),
                reason,
            })
        };
        match answer {
            Ok(out) => {
                let version = out.version_id().unwrap_or("?").to_owned();
                match out.secret_string() {
                    Some(value) => {
                        filled = true;
                        if let Some(reason) = judge(value, &checker) {
                            violation(&version, reason);
                        }
                    }
                    None => violation(&version, "AWSCURRENT has no string value".into()),
                }
                versions.insert(version);
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                if filled {
                    violation("-", "AWSCURRENT has no value any more".into());
                } else {
                    report.unfilled_reads += 1;
                }
            }
            Err(_) => report.errors += 1,
        }
        report.reads = read;
        reads.store(read, Ordering::SeqCst);
        if read >= stop_at.load(Ordering::SeqCst) {
            break;
        }
    }
    report.versions_seen = versions.len();
    report
}

/// What is wrong with a value a consumer read, if anything.
fn judge(value: &str, checker: &TokenChecker) -> Option<String> {
    let record = match TokenRecord::parse(value) {
        Ok(record) => record,
        Err(e) => return Some(e.to_string()),
    };
    let now = time::OffsetDateTime::now_utc();
    if record.is_expired(now) {
        return Some(format!(
            "the token expired at {}",
            iadvize_token_broker::token::rfc3339(record.expires_at)
        ));
    }
    if !checker.accepts(record.access_token.expose()) {
        return Some("the iAdvize stand-in does not accept the token".into());
    }
    None
}
