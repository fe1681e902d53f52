//! Bounds on every call to an outside service, so that a call that never answers cannot hold
//! an invocation past its deadline, nor an operator's command forever.
//!
//! Two bounds apply to each AWS call:
//!
//! - the AWS SDK's own time-outs ([`AwsTimeouts`], set on every AWS client the broker builds
//!   with [`aws_config()`]): an attempt that gets no answer within the attempt time-out is
//!   abandoned and retried, and the operation, retries included, gives up after the operation
//!   time-out. The SDK sets none of these by default (only a 3.1 s connect time-out), so
//!   without them a call Secrets Manager accepts and never answers waits for ever;
//! - the time left before the deadline of the work in progress, minus [`ANSWER_RESERVE`],
//!   kept to send the answer. [`within_deadline`] sets that deadline for everything a future
//!   does (a Lambda invocation, a CLI command); [`bounded`] applies it, with a time-out of its
//!   own, to one call.
//!
//! iAdvize requests carry their own request time-outs and deadline-aware retries
//! (`iadvize.rs`). Any other outside call goes through [`bounded`].

use std::future::IntoFuture;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use tokio::time::Instant;

/// The longest `Retry-After` the broker believes from iAdvize, and so the longest pause of
/// its logins after a 429 (`IADVIZE_THROTTLE_PAUSE` may not ask for more); a larger value
/// counts as absent. A day: a broken header cannot stop logins for longer than a token lives
/// (24 hours).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Time kept free before a deadline to send the answer once the outside calls are over: no
/// outside call bounded by a deadline may run into it.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(500);

/// The AWS SDK's default connect time-out (aws-config's `SDK_DEFAULT_CONNECT_TIMEOUT`), kept
/// when a custom time-out configuration replaces the default one.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The AWS SDK's operation and attempt time-outs (`IADVIZE_AWS_OPERATION_TIMEOUT`,
/// `IADVIZE_AWS_ATTEMPT_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    /// One whole operation, its retries included.
    pub operation: Duration,
    /// One attempt (one HTTP request); an attempt that times out is retried while the
    /// operation time-out allows.
    pub attempt: Duration,
}

impl Default for AwsTimeouts {
    /// A Secrets Manager call normally answers in well under a second. An attempt gets 5 s
    /// (room for a cold TLS handshake), and an operation 20 s: the SDK's three attempts with
    /// their backoff, a sixth of Lambda's default 120 s function time-out.
    fn default() -> Self {
        AwsTimeouts {
            operation: Duration::from_secs(20),
            attempt: Duration::from_secs(5),
        }
    }
}

impl AwsTimeouts {
    /// The SDK's time-out configuration: these two, and the SDK's default connect time-out
    /// (never longer than an attempt).
    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_timeout(self.operation)
            .operation_attempt_timeout(self.attempt)
            .connect_timeout(CONNECT_TIMEOUT.min(self.attempt))
            .build()
    }
}

/// Loads the AWS configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`,
/// …) with `timeouts` set; every AWS client the broker and the CLI build comes from it.
pub async fn aws_config(timeouts: AwsTimeouts) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts.timeout_config())
        .load()
        .await
}

tokio::task_local! {
    /// The deadline of the work the current task does.
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the deadline of every call [`bounded`] makes inside it
/// (on this task; a spawned task starts without one). An inner call replaces it for its own
/// work.
pub async fn within_deadline<F: IntoFuture>(deadline: Instant, work: F) -> F::Output {
    // Boxed: the work (a tick, a rotation) is a deep future, and scopes nest.
    DEADLINE.scope(deadline, Box::pin(work.into_future())).await
}

/// The time left for outside calls: until the deadline set by [`within_deadline`] minus
/// [`ANSWER_RESERVE`] (zero once that has passed); `None` when no deadline is set.
pub fn time_left() -> Option<Duration> {
    let deadline = DEADLINE.try_with(|deadline| *deadline).ok()?;
    let end = deadline.checked_sub(ANSWER_RESERVE).unwrap_or(deadline);
    Some(end.saturating_duration_since(Instant::now()))
}

/// Why a [`bounded`] call has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// Its own time-out ran out after this long.
    TimedOut(Duration),
    /// It waited all the time that was left before the deadline: this long.
    Deadline(Duration),
    /// No time was left before the deadline: the call was not made.
    NoTimeLeft,
}

impl GaveUp {
    /// Whether the call was made (and so may have had an effect).
    pub fn was_sent(&self) -> bool {
        !matches!(self, GaveUp::NoTimeLeft)
    }
}

/// Runs one outside call for at most `timeout`, and never past the deadline set by
/// [`within_deadline`] minus [`ANSWER_RESERVE`]. A call that runs out of time is dropped
/// (which cancels its request); when no time is left it is not started at all.
pub async fn bounded<F: IntoFuture>(timeout: Duration, call: F) -> Result<F::Output, GaveUp> {
    let (limit, by_deadline) = match time_left() {
        Some(left) if left < timeout => (left, true),
        _ => (timeout, false),
    };
    if limit.is_zero() && by_deadline {
        return Err(GaveUp::NoTimeLeft);
    }
    tokio::time::timeout(limit, call.into_future())
        .await
        .map_err(|_| {
            if by_deadline {
                GaveUp::Deadline(limit)
            } else {
                GaveUp::TimedOut(limit)
            }
        })
}

/// A duration for messages, to the millisecond (`2s 310ms`).
pub fn for_humans(duration: Duration) -> String {
    let millis = Duration::from_millis(duration.as_millis().try_into().unwrap_or(u64::MAX));
    humantime::format_duration(millis).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_ends_at_its_own_time_out_without_a_deadline() {
        let never = std::future::pending::<()>();
        let gave_up = bounded(Duration::from_secs(3), never).await;
        assert_eq!(gave_up, Err(GaveUp::TimedOut(Duration::from_secs(3))));
        assert_eq!(time_left(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_ends_before_the_deadline_minus_the_reserve() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let started = Instant::now();
        let gave_up = within_deadline(deadline, async {
            bounded(Duration::from_secs(20), std::future::pending::<()>()).await
        })
        .await;
        let limit = Duration::from_secs(2) - ANSWER_RESERVE;
        assert_eq!(gave_up, Err(GaveUp::Deadline(limit)));
        assert_eq!(started.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn no_call_starts_once_only_the_reserve_is_left() {
        let deadline = Instant::now() + ANSWER_RESERVE;
        let started = std::sync::atomic::AtomicBool::new(false);
        let gave_up = within_deadline(deadline, async {
            bounded(Duration::from_secs(20), async {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
            })
            .await
        })
        .await;
        assert_eq!(gave_up, Err(GaveUp::NoTimeLeft));
        assert!(!gave_up.unwrap_err().was_sent());
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_is_returned() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = within_deadline(deadline, bounded(Duration::from_secs(1), async { 7 })).await;
        assert_eq!(answer, Ok(7));
    }

    #[test]
    fn the_sdk_gets_both_time_outs_and_a_connect_time_out() {
        let config = AwsTimeouts {
            operation: Duration::from_secs(2),
            attempt: Duration::from_secs(1),
        }
        .timeout_config();
        assert_eq!(config.operation_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(
            config.operation_attempt_timeout(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(config.connect_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(
            AwsTimeouts::default().timeout_config().connect_timeout(),
            Some(CONNECT_TIMEOUT)
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(for_humans(Duration::from_micros(2_310_400)), "2s 310ms");
        assert_eq!(for_humans(Duration::from_secs(20)), "20s");
    }
}
