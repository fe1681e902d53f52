//! The broker-wide pause after iAdvize answers a login with `429 Too Many Requests`.
//!
//! iAdvize does not say whether a 429 limits the user or the whole IP, and a limiter that
//! counts refused attempts lengthens its block with every retry. So once any login gets a
//! 429, that one login keeps its backoff and every other login of the process stops
//! retrying, and none starts (for any user), until that login ends: when it succeeds the
//! logins go on; when it ends in 429, no login starts until
//! `max(Retry-After, IADVIZE_THROTTLE_PAUSE)` has passed.
//!
//! Pure bookkeeping shared by the concurrent tasks of an invocation (and kept across the warm
//! invocations of one execution environment); [`crate::login::Login`] waits on it and
//! [`crate::iadvize::IadvizeClient`] asks it before each retry.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

/// What a login that wants to start finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No 429 stands: the login may start.
    Open,
    /// Another login is retrying after a 429: wait until it ends ([`Throttle::released`]).
    Leading,
    /// A login ended in 429: no login starts before this time.
    PausedUntil(OffsetDateTime),
}

/// The shared pause. Cheap to clone; all clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    state: Arc<Mutex<State>>,
    released: Arc<Notify>,
}

#[derive(Debug, Default)]
struct State {
    /// The login that keeps its backoff after a 429, if one does.
    leader: Option<u64>,
    /// Ids handed out to logins.
    next_id: u64,
    /// No login starts before this time.
    paused_until: Option<OffsetDateTime>,
}

impl Throttle {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under a panic (plain assignments): keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a login may start at `now`.
    pub fn gate(&self, now: OffsetDateTime) -> Gate {
        let state = self.lock();
        if state.leader.is_some() {
            return Gate::Leading;
        }
        match state.paused_until {
            Some(until) if until > now => Gate::PausedUntil(until),
            _ => Gate::Open,
        }
    }

    /// The end of the pause, when one runs at `now` (a follow-up carries it on).
    pub fn paused_until(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lock().paused_until.filter(|until| *until > now)
    }

    /// Pauses every login until `until` (or keeps a longer pause): a follow-up takes the
    /// pause its predecessor met.
    pub fn pause_until(&self, until: OffsetDateTime) {
        let mut state = self.lock();
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    /// Resolves when the login that leads after a 429 ends (at once if none leads now; a
    /// caller re-checks [`Throttle::gate`] after it).
    pub async fn released(&self) {
        let notified = self.released.notified();
        if self.lock().leader.is_none() {
            return;
        }
        notified.await;
    }

    /// A login about to send its first request.
    pub fn attempt(&self) -> Attempt {
        let mut state = self.lock();
        state.next_id += 1;
        Attempt {
            throttle: self.clone(),
            id: state.next_id,
            leading: false,
            stopped: false,
            retry_after: None,
            rate_limited: false,
        }
    }
}

/// One login's standing in the pause: whether it leads after a 429, the last `Retry-After`
/// it got. Dropping a leading attempt (the login ended, or its future was dropped) releases
/// the others; [`Attempt::finish`] also sets the pause.
#[derive(Debug)]
pub struct Attempt {
    throttle: Throttle,
    id: u64,
    leading: bool,
    stopped: bool,
    retry_after: Option<Duration>,
    rate_limited: bool,
}

impl Attempt {
    /// A login used alone (outside any broker: the iAdvize client's own `login`).
    pub fn alone() -> Attempt {
        Throttle::default().attempt()
    }

    /// The login got a 429 (with `retry_after`, if sane). Returns whether it may retry: the
    /// first login of the process to get one leads and keeps its backoff; any other stops.
    pub fn rate_limited(&mut self, retry_after: Option<Duration>) -> bool {
        self.rate_limited = true;
        if retry_after.is_some() {
            self.retry_after = retry_after;
        }
        let mut state = self.throttle.lock();
        // A 429 that arrives while a pause already runs (the leader gave up moments ago)
        // does not start a second round of retries.
        let paused = state
            .paused_until
            .is_some_and(|until| until > OffsetDateTime::now_utc());
        match state.leader {
            None if paused => {
                self.stopped = true;
                false
            }
            None => {
                state.leader = Some(self.id);
                self.leading = true;
                true
            }
            Some(leader) if leader == self.id => true,
            Some(_) => {
                self.stopped = true;
                false
            }
        }
    }

    /// Before a retry after any transient failure: `false` when another login leads after a
    /// 429 (this one stops retrying) or a pause runs.
    pub fn may_retry(&mut self) -> bool {
        if self.leading {
            return true;
        }
        let open = self.throttle.gate(OffsetDateTime::now_utc()) == Gate::Open;
        if !open {
            self.stopped = true;
        }
        open
    }

    /// Whether this login stopped retrying because another one leads after a 429 (or a pause
    /// began): it was held back, not failed by iAdvize.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether this login led after a 429.
    pub fn leading(&self) -> bool {
        self.leading
    }

    /// The login ended. `rate_limited`: its last answer was a 429; then no login starts for
    /// `max(Retry-After, pause)`. Returns the end of the pause it set, if any.
    pub fn finish(mut self, rate_limited: bool, pause: Duration) -> Option<OffsetDateTime> {
        if !self.leading {
            return None;
        }
        let until = rate_limited.then(|| {
            let wait = self.retry_after.map_or(pause, |asked| asked.max(pause));
            OffsetDateTime::now_utc() + wait
        });
        if let Some(until) = until {
            self.throttle.pause_until(until);
        }
        self.release();
        until
    }

    /// Whether the login got any 429.
    pub fn was_rate_limited(&self) -> bool {
        self.rate_limited
    }

    fn release(&mut self) {
        if !self.leading {
            return;
        }
        self.leading = false;
        let mut state = self.throttle.lock();
        if state.leader == Some(self.id) {
            state.leader = None;
        }
        drop(state);
        self.throttle.released.notify_waiters();
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_429_leads_and_the_others_stop() {
        let throttle = Throttle::default();
        let mut first = throttle.attempt();
        let mut second = throttle.attempt();
        assert_eq!(throttle.gate(OffsetDateTime::now_utc()), Gate::Open);
        assert!(first.rate_limited(Some(Duration::from_secs(5))));
        assert_eq!(throttle.gate(OffsetDateTime::now_utc()), Gate::Leading);
        assert!(!second.may_retry(), "a 5xx retry stops while another leads");
        assert!(!second.rate_limited(None));
        assert!(second.stopped());
        assert!(first.rate_limited(None), "the leader keeps its backoff");
        // The stopped login ends without setting a pause.
        assert_eq!(second.finish(true, Duration::from_secs(60)), None);
        assert_eq!(throttle.gate(OffsetDateTime::now_utc()), Gate::Leading);
        let until = first
            .finish(true, Duration::from_secs(60))
            .expect("the leader sets the pause");
        let left = until - OffsetDateTime::now_utc();
        assert!(left > time::Duration::seconds(58), "{left}");
        assert_eq!(
            throttle.gate(OffsetDateTime::now_utc()),
            Gate::PausedUntil(until)
        );
    }

    #[test]
    fn retry_after_lengthens_the_pause_and_success_sets_none() {
        let throttle = Throttle::default();
        let mut a = throttle.attempt();
        assert!(a.rate_limited(Some(Duration::from_secs(120))));
        let until = a.finish(true, Duration::from_secs(60)).unwrap();
        assert!(until - OffsetDateTime::now_utc() > time::Duration::seconds(118));

        let throttle = Throttle::default();
        let mut b = throttle.attempt();
        assert!(b.rate_limited(None));
        assert_eq!(b.finish(false, Duration::from_secs(60)), None);
        assert_eq!(throttle.gate(OffsetDateTime::now_utc()), Gate::Open);
    }

    #[test]
    fn a_dropped_leader_releases_the_others() {
        let throttle = Throttle::default();
        let mut a = throttle.attempt();
        assert!(a.rate_limited(None));
        drop(a);
        assert_eq!(throttle.gate(OffsetDateTime::now_utc()), Gate::Open);
    }

    #[test]
    fn a_carried_pause_only_lengthens() {
        let throttle = Throttle::default();
        let now = OffsetDateTime::now_utc();
        throttle.pause_until(now + time::Duration::seconds(30));
        throttle.pause_until(now + time::Duration::seconds(10));
        assert_eq!(
            throttle.paused_until(now),
            Some(now + time::Duration::seconds(30))
        );
        assert_eq!(
            throttle.paused_until(now + time::Duration::seconds(31)),
            None
        );
    }
}
