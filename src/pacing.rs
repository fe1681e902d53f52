//! Login pacing for iAdvize's login limits (10 logins a minute per user, 100 a minute per IP):
//! per iAdvize user (a credentials secret), never two login starts closer than
//! `IADVIZE_MIN_LOGIN_INTERVAL`; for the whole broker (one egress IP), never more than
//! `IADVIZE_MAX_LOGINS_PER_MINUTE` starts in any rolling minute.
//!
//! Pure bookkeeping: times in, times out, no I/O and nothing of the broker; the login path
//! (`login.rs`) feeds it and sleeps until the slots it hands out.
//!
//! What it knows: the starts this process reserved, plus the `iadvize:last-login-attempt`
//! tags of the token secrets the broker read (other invocations, earlier ticks). A login takes a
//! *reservation*: the earliest start time that keeps both rules, booked at once under a lock,
//! so concurrent tasks of a tick never pick the same slot; the task then sleeps until it.
//! Reservations are booked in increasing time order, which makes the rolling-window check
//! exact: a new start at `t` is allowed when the `cap`-th most recent start is at least a
//! window before `t`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

/// The rolling window of the per-minute cap (injectable for compressed benchmarks).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Broker-wide login pacing, shared by every task of a process (and kept across the warm
/// invocations of one Lambda execution environment).
#[derive(Clone)]
pub struct Pacer {
    window: Duration,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Login starts (reserved here or read from tags), oldest first.
    starts: VecDeque<Start>,
    /// Latest known start per iAdvize user (credentials secret id).
    last_per_user: HashMap<String, OffsetDateTime>,
    /// Slots the tick booked for a token secret (ARN), in urgency order, that its login
    /// takes instead of booking again.
    booked: HashMap<String, OffsetDateTime>,
}

struct Start {
    at: OffsetDateTime,
    /// The token secret (ARN) it was for, so a tag we wrote ourselves is not counted twice.
    secret: String,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new(DEFAULT_WINDOW)
    }
}

/// The rules a reservation must keep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Spacing between two starts for one user.
    pub min_interval: Duration,
    /// Starts allowed in any rolling window.
    pub per_window: u32,
}

impl Pacer {
    /// A pacer whose per-minute cap counts over `window` (60 s in production).
    pub fn new(window: Duration) -> Self {
        Pacer {
            window,
            state: Arc::default(),
        }
    }

    /// The rolling window of the cap.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records a login start read from a token secret's `iadvize:last-login-attempt` tag.
    pub fn observe(&self, user: &str, secret: &str, at: OffsetDateTime) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let last = state.last_per_user.entry(user.to_owned()).or_insert(at);
        if *last < at {
            *last = at;
        }
        // The same start seen again (our own reservation, or the same tag read twice).
        let known = state
            .starts
            .iter()
            .any(|s| s.secret == secret && (s.at - at).abs() < time::Duration::SECOND);
        if !known {
            let index = state.starts.partition_point(|s| s.at <= at);
            state.starts.insert(
                index,
                Start {
                    at,
                    secret: secret.to_owned(),
                },
            );
        }
    }

    /// The earliest time a login for `user` could start, without booking it.
    pub fn earliest(&self, user: &str, now: OffsetDateTime, limits: Limits) -> OffsetDateTime {
        match self.state.lock() {
            Ok(mut state) => state.earliest(user, now, limits, self.window),
            Err(_) => now,
        }
    }

    /// Books a slot for `secret`'s coming login (see [`Pacer::reserve`]); its login takes it
    /// with [`Pacer::take_booking`]. The tick books in urgency order, so a less urgent secret
    /// never takes the last slot of a window before a more urgent one.
    pub fn book(
        &self,
        user: &str,
        secret: &str,
        now: OffsetDateTime,
        latest: OffsetDateTime,
        limits: Limits,
    ) -> Result<OffsetDateTime, OffsetDateTime> {
        let at = self.reserve(user, secret, now, latest, limits)?;
        if let Ok(mut state) = self.state.lock() {
            state.booked.insert(secret.to_owned(), at);
        }
        Ok(at)
    }

    /// Moves a start booked at `booked` to when the login really started, so the slots booked
    /// after it count from the real start.
    pub fn restamp(&self, secret: &str, booked: OffsetDateTime, actual: OffsetDateTime) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(start) = state
            .starts
            .iter_mut()
            .rev()
            .find(|s| s.secret == secret && s.at == booked)
        {
            start.at = actual;
        }
        for last in state.last_per_user.values_mut() {
            if *last == booked {
                *last = (*last).max(actual);
            }
        }
    }

    /// The slot booked for `secret`, if any (taken once).
    pub fn take_booking(&self, secret: &str) -> Option<OffsetDateTime> {
        self.state.lock().ok()?.booked.remove(secret)
    }

    /// Gives back a booking its secret did not use (it needed no login after all, or failed
    /// before logging in), so it does not count against the cap.
    pub fn cancel_booking(&self, secret: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(at) = state.booked.remove(secret) {
            state.starts.retain(|s| !(s.secret == secret && s.at == at));
        }
    }

    /// Books the earliest start for `user` if it is no later than `latest`; returns it (the
    /// caller sleeps until then), or the earliest start when that is too late.
    pub fn reserve(
        &self,
        user: &str,
        secret: &str,
        now: OffsetDateTime,
        latest: OffsetDateTime,
        limits: Limits,
    ) -> Result<OffsetDateTime, OffsetDateTime> {
        let Ok(mut state) = self.state.lock() else {
            return Ok(now);
        };
        let at = state.earliest(user, now, limits, self.window);
        if at > latest {
            return Err(at);
        }
        state.last_per_user.insert(user.to_owned(), at);
        state.starts.push_back(Start {
            at,
            secret: secret.to_owned(),
        });
        Ok(at)
    }
}

/// Added to the window and the spacing: a login request leaves a little after its booked
/// start (a task wakes, the attempt tag is written), and that delay must not squeeze them.
fn guard(window: Duration) -> Duration {
    (window / 100).max(Duration::from_millis(250))
}

impl State {
    fn earliest(
        &mut self,
        user: &str,
        now: OffsetDateTime,
        limits: Limits,
        window: Duration,
    ) -> OffsetDateTime {
        // Forget what no window can reach any more.
        while self
            .starts
            .front()
            .is_some_and(|s| s.at + window < now - window)
        {
            self.starts.pop_front();
        }
        let mut at = now;
        if let Some(last) = self.last_per_user.get(user)
            && !limits.min_interval.is_zero()
        {
            at = at.max(*last + limits.min_interval + guard(limits.min_interval));
        }
        // Reservations stay in time order (see the module comment).
        if let Some(latest) = self.starts.back() {
            at = at.max(latest.at);
        }
        let cap = limits.per_window.max(1) as usize;
        if self.starts.len() >= cap {
            let cap_th = &self.starts[self.starts.len() - cap];
            at = at.max(cap_th.at + window + guard(window));
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-27 06:00 UTC);

    fn limits(min_interval: u64, per_window: u32) -> Limits {
        Limits {
            min_interval: Duration::from_secs(min_interval),
            per_window,
        }
    }

    fn secs(n: i64) -> time::Duration {
        time::Duration::seconds(n)
    }

    #[test]
    fn one_user_is_spaced_by_the_interval_and_other_users_are_not() {
        let pacer = Pacer::default();
        let far = T0 + secs(3600);
        let l = limits(10, 30);
        let step = secs(10) + guard(Duration::from_secs(10));
        assert_eq!(pacer.reserve("u", "a", T0, far, l), Ok(T0));
        assert_eq!(pacer.reserve("u", "b", T0, far, l), Ok(T0 + step));
        // another user is not held behind u's spacing beyond the time order of starts
        assert_eq!(pacer.reserve("v", "c", T0, far, l), Ok(T0 + step));
        assert_eq!(pacer.reserve("u", "d", T0, far, l), Ok(T0 + step + step));
    }

    #[test]
    fn no_rolling_window_holds_more_than_the_cap() {
        let pacer = Pacer::default();
        let far = T0 + secs(3600);
        let l = limits(0, 3);
        let starts: Vec<OffsetDateTime> = (0..7)
            .map(|i| pacer.reserve(&format!("u{i}"), "s", T0, far, l).unwrap())
            .collect();
        let g = guard(DEFAULT_WINDOW);
        let second = T0 + secs(60) + g;
        assert_eq!(
            starts,
            [T0, T0, T0, second, second, second, second + secs(60) + g]
        );
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().filter(|t| **t < *s + secs(60)).count();
            assert!(in_window <= 3);
        }
    }

    #[test]
    fn a_slot_past_the_latest_start_is_not_booked() {
        let pacer = Pacer::default();
        let l = limits(10, 30);
        pacer.reserve("u", "a", T0, T0, l).unwrap();
        assert_eq!(
            pacer.reserve("u", "b", T0, T0 + secs(5), l),
            Err(T0 + secs(10) + guard(Duration::from_secs(10)))
        );
        // nothing was booked: another user still starts at once
        assert_eq!(pacer.reserve("v", "c", T0, T0, l), Ok(T0));
    }

    #[test]
    fn tags_from_earlier_ticks_count_for_the_user_and_the_cap() {
        let pacer = Pacer::default();
        let l = limits(10, 2);
        pacer.observe("u", "a", T0 - secs(4));
        pacer.observe("v", "b", T0 - secs(30));
        // the same tag seen twice counts once
        pacer.observe("v", "b", T0 - secs(30));
        assert_eq!(
            pacer.earliest("u", T0, l),
            T0 + secs(30) + guard(DEFAULT_WINDOW)
        );
        assert_eq!(pacer.earliest("w", T0, limits(10, 3)), T0);
        assert_eq!(
            pacer.earliest("u", T0, limits(10, 3)),
            T0 + secs(6) + guard(Duration::from_secs(10))
        );
    }

    #[test]
    fn a_booking_is_taken_once_and_a_cancelled_one_frees_its_slot() {
        let pacer = Pacer::default();
        let far = T0 + secs(3600);
        let l = limits(0, 1);
        assert_eq!(pacer.book("u", "a", T0, far, l), Ok(T0));
        assert_eq!(pacer.take_booking("a"), Some(T0));
        assert_eq!(pacer.take_booking("a"), None);
        let next = T0 + secs(60) + guard(DEFAULT_WINDOW);
        assert_eq!(pacer.book("v", "b", T0, far, l), Ok(next));
        pacer.cancel_booking("b");
        assert_eq!(pacer.earliest("w", T0, l), next, "a's start still counts");
    }

    #[test]
    fn a_compressed_window_scales_the_cap() {
        let pacer = Pacer::new(Duration::from_secs(6));
        let far = T0 + secs(3600);
        let l = limits(0, 1);
        pacer.reserve("u", "a", T0, far, l).unwrap();
        let guard = time::Duration::milliseconds(250);
        assert_eq!(
            pacer.reserve("v", "b", T0, far, l),
            Ok(T0 + secs(6) + guard)
        );
    }
}
