//! What the tick does with one token secret, decided from what it read: a pure function
//! ([`plan`]) from plain values — the secret's rotation state, its current value, the time,
//! the rules — to an [`Action`]. No I/O: the runner ([`crate::refresh`]) reads, asks the
//! planner, and performs the action.
//!
//! The order of the rules is the broker's policy:
//!
//! 1. a read, fresh token with no rotation under way needs nothing ([`Action::Fresh`]);
//! 2. anything else waits for the next tick when the invocation cannot fit a rotation any
//!    more ([`Action::Defer`]): a rotation is never started that cannot finish;
//! 3. what is not known yet is read first ([`Action::Read`]);
//! 4. a rotation stopped between finishSecret's two stage moves is finished
//!    ([`Action::CleanUp`]), a younger rotation is left to run ([`Action::InProgress`]), an
//!    older one (or one of unknown age) is resumed ([`Action::Resume`]);
//! 5. a token that is due is refreshed, with the reason ([`Action::Refresh`]).

use std::time::Duration;

use crate::token::{RecordError, TokenRecord};

/// A token secret's AWSCURRENT value, as far as the tick knows it.
#[derive(Debug, Clone)]
pub enum Current {
    /// Not read yet (a rotation is under way, so the batch skipped it, or the batch could not
    /// read it).
    NotRead,
    /// The secret has no AWSCURRENT value.
    Empty,
    /// The value is not a token record; why (never the value).
    Unparseable(RecordError),
    /// A token record.
    Record(TokenRecord),
}

impl Current {
    /// The token record, if the value is one.
    pub fn record(&self) -> Option<&TokenRecord> {
        match self {
            Current::Record(record) => Some(record),
            _ => None,
        }
    }

    /// Seconds left on the current token; 0 for a missing, unreadable, unread or expired one.
    pub fn seconds_left(&self, now: time::OffsetDateTime) -> u64 {
        self.record().map_or(0, |r| r.remaining(now).as_secs())
    }

    /// Why a value that was read is due for refresh, `None` when it is fresh (or not read:
    /// see [`Current::NotRead`]). `refresh_before_expiry` is the refresh window.
    pub fn due_reason(
        &self,
        now: time::OffsetDateTime,
        refresh_before_expiry: Duration,
        force: bool,
    ) -> Option<DueReason> {
        match self {
            Current::NotRead => None,
            _ if force => Some(DueReason::Forced),
            Current::Empty => Some(DueReason::NoCurrentValue),
            Current::Unparseable(_) => Some(DueReason::NotATokenRecord),
            Current::Record(record) if record.is_expired(now) => Some(DueReason::Expired),
            Current::Record(record) if record.remaining(now) <= refresh_before_expiry => {
                Some(DueReason::InsideRefreshWindow)
            }
            Current::Record(_) => None,
        }
    }
}

impl From<Option<Result<TokenRecord, RecordError>>> for Current {
    /// A value read from Secrets Manager: `None` when there is none.
    fn from(value: Option<Result<TokenRecord, RecordError>>) -> Self {
        match value {
            None => Current::Empty,
            Some(Err(e)) => Current::Unparseable(e),
            Some(Ok(record)) => Current::Record(record),
        }
    }
}

/// Why a token is refreshed. Logged (`reason`) as [`DueReason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueReason {
    /// The operator asked (`"force": true`): `forced`.
    Forced,
    /// The secret has no AWSCURRENT value: `no current value`.
    NoCurrentValue,
    /// AWSCURRENT is not a token record: `the current value is not a token record`.
    NotATokenRecord,
    /// The token has expired: `expired`.
    Expired,
    /// Less than `IADVIZE_REFRESH_BEFORE_EXPIRY` is left: `inside the refresh window`.
    InsideRefreshWindow,
}

impl DueReason {
    /// The words the logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::Forced => "forced",
            DueReason::NoCurrentValue => "no current value",
            DueReason::NotATokenRecord => "the current value is not a token record",
            DueReason::Expired => "expired",
            DueReason::InsideRefreshWindow => "inside the refresh window",
        }
    }
}

impl std::fmt::Display for DueReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How old a rotation's AWSPENDING version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Not asked yet (`ListSecretVersionIds`).
    NotRead,
    /// Secrets Manager does not say (counts as stuck: a rotation of unknown age is resumed).
    Unknown,
    /// This old (negative when the clocks disagree).
    Known(time::Duration),
}

/// A secret's rotation state, from its version stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation<'a> {
    /// No version carries AWSPENDING.
    Idle,
    /// This version carries AWSCURRENT and AWSPENDING: finishSecret moved AWSCURRENT and
    /// stopped before removing AWSPENDING.
    Unfinished(&'a str),
    /// This version carries AWSPENDING without AWSCURRENT: a rotation is under way.
    Pending {
        /// The AWSPENDING version.
        version: &'a str,
        /// How old it is.
        age: Age,
    },
}

/// Room left for a rotation in the invocation, measured once when the secret's turn starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// The turn has started: the secret was admitted, and reads made for it do not defer it.
    Admitted,
    /// The turn starts with this much time to spare beyond what a rotation needs.
    Spare(Duration),
    /// Less time is left than a rotation needs.
    TooLate,
}

/// What the planner is given about one secret.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// AWSCURRENT's value.
    pub current: &'a Current,
    /// The rotation state.
    pub rotation: Rotation<'a>,
    /// The time of the decision.
    pub now: time::OffsetDateTime,
    /// Room for a rotation.
    pub room: Room,
}

/// The settings the planner applies.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `IADVIZE_REFRESH_BEFORE_EXPIRY`.
    pub refresh_before_expiry: Duration,
    /// `IADVIZE_STUCK_ROTATION_AFTER`.
    pub stuck_rotation_after: Duration,
    /// Refresh even a fresh token (`"force": true`).
    pub force: bool,
}

/// What to do with one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the token has more than the refresh window left.
    Fresh,
    /// Leave it for the next tick: no room for a rotation in this invocation.
    Defer,
    /// Read what is missing (the current value, the age of the pending version), then plan
    /// again.
    Read,
    /// Remove AWSPENDING from this version (already AWSCURRENT); then refresh for this reason,
    /// if the token is due.
    CleanUp {
        /// The version carrying both labels.
        version: String,
        /// Why the token is due, if it is.
        then: Option<DueReason>,
    },
    /// Leave this rotation alone: it is younger than `IADVIZE_STUCK_ROTATION_AFTER`.
    InProgress {
        /// The AWSPENDING version.
        version: String,
    },
    /// Finish this rotation: it is stuck.
    Resume {
        /// The AWSPENDING version.
        version: String,
    },
    /// Log in and publish a new token.
    Refresh(DueReason),
}

/// Decides what the tick does with one secret (see the module documentation for the order
/// of the rules).
pub fn plan(facts: &Facts<'_>, rules: &Rules) -> Action {
    let due = facts
        .current
        .due_reason(facts.now, rules.refresh_before_expiry, rules.force);
    let read = !matches!(facts.current, Current::NotRead);
    if read && due.is_none() && facts.rotation == Rotation::Idle {
        return Action::Fresh;
    }
    if facts.room == Room::TooLate {
        return Action::Defer;
    }
    if !read
        || matches!(
            facts.rotation,
            Rotation::Pending {
                age: Age::NotRead,
                ..
            }
        )
    {
        return Action::Read;
    }
    match facts.rotation {
        Rotation::Unfinished(version) => Action::CleanUp {
            version: version.to_owned(),
            then: due,
        },
        Rotation::Pending { version, age } => {
            let version = version.to_owned();
            match age {
                Age::Known(age) if age < rules.stuck_rotation_after => {
                    Action::InProgress { version }
                }
                _ => Action::Resume { version },
            }
        }
        Rotation::Idle => due.map_or(Action::Fresh, Action::Refresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::AccessToken;
    use time::OffsetDateTime;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);
    const WINDOW: Duration = Duration::from_secs(4 * 3600);

    fn record(hours_left: i64) -> Current {
        let issued = NOW - time::Duration::hours(24 - hours_left);
        Current::Record(TokenRecord::new(AccessToken::new("t"), issued, 86400))
    }

    fn rules(force: bool) -> Rules {
        Rules {
            refresh_before_expiry: WINDOW,
            stuck_rotation_after: Duration::from_secs(900),
            force,
        }
    }

    fn decide(current: &Current, rotation: Rotation<'_>, room: Room, force: bool) -> Action {
        let facts = Facts {
            current,
            rotation,
            now: NOW,
            room,
        };
        plan(&facts, &rules(force))
    }

    const SPARE: Room = Room::Spare(Duration::from_secs(60));

    #[test]
    fn a_token_is_due_only_when_it_should_be() {
        assert_eq!(record(20).due_reason(NOW, WINDOW, false), None);
        assert_eq!(
            record(20).due_reason(NOW, WINDOW, true),
            Some(DueReason::Forced)
        );
        assert_eq!(
            record(3).due_reason(NOW, WINDOW, false),
            Some(DueReason::InsideRefreshWindow)
        );
        assert_eq!(
            record(-1).due_reason(NOW, WINDOW, false),
            Some(DueReason::Expired)
        );
        assert_eq!(
            Current::Empty.due_reason(NOW, WINDOW, false),
            Some(DueReason::NoCurrentValue)
        );
        let broken = Current::Unparseable(RecordError::Field("x"));
        assert_eq!(
            broken.due_reason(NOW, WINDOW, false),
            Some(DueReason::NotATokenRecord)
        );
        assert_eq!(Current::NotRead.due_reason(NOW, WINDOW, true), None);
        // The words the logs have always used.
        assert_eq!(DueReason::Forced.as_str(), "forced");
        assert_eq!(DueReason::NoCurrentValue.as_str(), "no current value");
        assert_eq!(
            DueReason::NotATokenRecord.as_str(),
            "the current value is not a token record"
        );
        assert_eq!(DueReason::Expired.as_str(), "expired");
        assert_eq!(
            DueReason::InsideRefreshWindow.as_str(),
            "inside the refresh window"
        );
    }

    #[test]
    fn a_fresh_token_needs_nothing_even_without_room() {
        for room in [SPARE, Room::TooLate, Room::Admitted] {
            assert_eq!(
                decide(&record(20), Rotation::Idle, room, false),
                Action::Fresh
            );
        }
    }

    #[test]
    fn a_due_token_is_refreshed_with_its_reason() {
        assert_eq!(
            decide(&record(3), Rotation::Idle, SPARE, false),
            Action::Refresh(DueReason::InsideRefreshWindow)
        );
        assert_eq!(
            decide(&record(20), Rotation::Idle, SPARE, true),
            Action::Refresh(DueReason::Forced)
        );
        assert_eq!(
            decide(&Current::Empty, Rotation::Idle, Room::Admitted, false),
            Action::Refresh(DueReason::NoCurrentValue)
        );
    }

    #[test]
    fn without_room_everything_but_a_fresh_token_is_deferred() {
        let pending = Rotation::Pending {
            version: "v2",
            age: Age::NotRead,
        };
        for (current, rotation) in [
            (record(3), Rotation::Idle),
            (Current::Empty, Rotation::Idle),
            (Current::NotRead, Rotation::Idle),
            (Current::NotRead, pending),
            (record(20), Rotation::Unfinished("v2")),
        ] {
            assert_eq!(
                decide(&current, rotation, Room::TooLate, false),
                Action::Defer,
                "{current:?} {rotation:?}"
            );
        }
    }

    #[test]
    fn what_is_not_known_is_read_first() {
        assert_eq!(
            decide(&Current::NotRead, Rotation::Idle, SPARE, false),
            Action::Read
        );
        assert_eq!(
            decide(&Current::NotRead, Rotation::Unfinished("v2"), SPARE, false),
            Action::Read
        );
        let pending = Rotation::Pending {
            version: "v2",
            age: Age::NotRead,
        };
        assert_eq!(decide(&record(20), pending, SPARE, false), Action::Read);
    }

    #[test]
    fn an_unfinished_clean_up_is_finished_then_a_due_token_refreshed() {
        assert_eq!(
            decide(
                &record(20),
                Rotation::Unfinished("v2"),
                Room::Admitted,
                false
            ),
            Action::CleanUp {
                version: "v2".into(),
                then: None
            }
        );
        assert_eq!(
            decide(
                &record(-1),
                Rotation::Unfinished("v2"),
                Room::Admitted,
                false
            ),
            Action::CleanUp {
                version: "v2".into(),
                then: Some(DueReason::Expired)
            }
        );
    }

    #[test]
    fn a_young_rotation_is_left_alone_and_an_old_or_ageless_one_resumed() {
        let pending = |age| Rotation::Pending { version: "v2", age };
        assert_eq!(
            decide(
                &record(3),
                pending(Age::Known(time::Duration::minutes(5))),
                Room::Admitted,
                false
            ),
            Action::InProgress {
                version: "v2".into()
            }
        );
        // Clocks that disagree: a version "from the future" is young.
        assert_eq!(
            decide(
                &record(3),
                pending(Age::Known(time::Duration::minutes(-1))),
                Room::Admitted,
                false
            ),
            Action::InProgress {
                version: "v2".into()
            }
        );
        for age in [Age::Known(time::Duration::minutes(15)), Age::Unknown] {
            assert_eq!(
                decide(&Current::Empty, pending(age), Room::Admitted, true),
                Action::Resume {
                    version: "v2".into()
                },
                "{age:?}"
            );
        }
    }
}
