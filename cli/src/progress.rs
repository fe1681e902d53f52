//! Progress on stderr while a command waits: the broker logs each wait it makes (a login slot
//! of the login pacing, a retry's backoff) as an event with a `wait_ms` field; this layer turns
//! those events into one line each, whatever the log level (`-v`, `RUST_LOG`), so that an
//! operator whose `refresh` sits for a minute sees why. The events carry secret names and
//! durations only, never a secret value.

use std::fmt::{self, Write as _};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::Context;

/// The layer: the broker's events that announce a wait, one line each on stderr.
pub fn layer<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>() -> impl Layer<S>
{
    Progress.with_filter(filter_fn(|metadata| {
        metadata.is_event() && metadata.target().starts_with("iadvize_token_broker")
    }))
}

struct Progress;

impl<S: Subscriber> Layer<S> for Progress {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(line) = fields.line() {
            eprintln!("{line}");
        }
    }
}

/// The fields of one event that a progress line uses.
#[derive(Default)]
struct Fields {
    message: String,
    secret_id: Option<String>,
    what: Option<String>,
    attempt: Option<u64>,
    wait_ms: Option<u64>,
}

impl Fields {
    /// `iadvize/token: waiting for a login slot (login pacing), 9s…`; `None` for an event
    /// that announces no wait.
    fn line(&self) -> Option<String> {
        let wait = Duration::from_millis(self.wait_ms?);
        let mut line = String::new();
        if let Some(secret_id) = &self.secret_id {
            let _ = write!(line, "{secret_id}: ");
        }
        let _ = write!(line, "{}, {}…", self.message, for_humans(wait));
        match (&self.what, self.attempt) {
            (Some(what), Some(attempt)) => {
                let _ = write!(line, " ({what}, attempt {attempt})");
            }
            (Some(what), None) => {
                let _ = write!(line, " ({what})");
            }
            _ => {}
        }
        Some(line)
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "wait_ms" => self.wait_ms = Some(value),
            "attempt" => self.attempt = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.record_u64(field, value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_text(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record_text(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "secret_id" => self.secret_id = Some(value),
            "what" => self.what = Some(value),
            _ => {}
        }
    }
}

/// Whole seconds from one second up (`9s`, `1m 5s`), milliseconds below.
fn for_humans(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{}ms", wait.as_millis())
    } else {
        let seconds = wait.as_secs() + u64::from(wait.subsec_millis() >= 500);
        humantime::format_duration(Duration::from_secs(seconds)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_reads_in_whole_seconds_from_one_second_up() {
        assert_eq!(for_humans(Duration::from_millis(250)), "250ms");
        assert_eq!(for_humans(Duration::from_millis(9_600)), "10s");
        assert_eq!(for_humans(Duration::from_millis(65_200)), "1m 5s");
    }

    #[test]
    fn only_an_event_with_a_wait_makes_a_line() {
        let mut fields = Fields {
            message: "waiting for a login slot (login pacing)".into(),
            secret_id: Some("iadvize/token".into()),
            ..Fields::default()
        };
        assert_eq!(fields.line(), None);
        fields.wait_ms = Some(9_000);
        assert_eq!(
            fields.line().as_deref(),
            Some("iadvize/token: waiting for a login slot (login pacing), 9s…")
        );
    }
}
