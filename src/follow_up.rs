//! Follow-ups: a tick (or a follow-up) that ends with urgent work deferred — a secret with no
//! valid token, or one that would expire before the next tick — invokes its own function
//! asynchronously, so a refill of many expired integrations runs at the per-minute cap
//! instead of one batch per hourly tick.
//!
//! The event is `{"action": "refresh", "follow_up": n, "paused_until": "<RFC 3339>"?}`
//! (`paused_until`: the pause of logins after iAdvize's 429, carried on). The chain is
//! bounded by `IADVIZE_MAX_FOLLOW_UPS` and stops as soon as a follow-up logs in for no
//! secret; see docs/healing.md for how it stays clear of Lambda's recursive loop detection.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::bounds::{AwsTimeouts, bounded, for_humans};
use crate::error::echo;
use crate::token::rfc3339_precise;

/// The time a tick that may send a follow-up keeps free before its deadline for the
/// `Invoke` call (an asynchronous invocation answers at once).
pub const FOLLOW_UP_RESERVE: Duration = Duration::from_secs(2);

/// The environment variable Lambda sets to the function's name.
pub const FUNCTION_NAME_VARIABLE: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// The event of follow-up `n` (1 for the tick's follow-up), carrying the pause of logins.
pub fn event(n: u32, paused_until: Option<OffsetDateTime>) -> Value {
    let mut event = json!({"action": "refresh", "follow_up": n});
    if let Some(until) = paused_until {
        event["paused_until"] = json!(rfc3339_precise(until));
    }
    event
}

/// Sends follow-ups: `Invoke` of the function itself with `InvocationType=Event`, each call
/// bounded (its own time-out and the invocation's deadline).
#[derive(Debug, Clone)]
pub struct FollowUps {
    client: aws_sdk_lambda::Client,
    function_name: String,
    timeout: Duration,
}

impl FollowUps {
    /// Follow-ups of `function_name` through `client`, each `Invoke` bounded by `timeout`.
    pub fn new(client: aws_sdk_lambda::Client, function_name: String, timeout: Duration) -> Self {
        FollowUps {
            client,
            function_name,
            timeout,
        }
    }

    /// Follow-ups of the running function (`AWS_LAMBDA_FUNCTION_NAME`), with the Lambda
    /// endpoint, region and credentials from the SDK's settings (`AWS_ENDPOINT_URL_LAMBDA`
    /// reaches a stand-in); `None` outside Lambda (the CLI), where there is no function to
    /// invoke.
    pub async fn from_env(timeouts: AwsTimeouts) -> Option<Self> {
        let name = std::env::var(FUNCTION_NAME_VARIABLE)
            .ok()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())?;
        let config = crate::bounds::aws_config(timeouts).await;
        Some(FollowUps::new(
            aws_sdk_lambda::Client::new(&config),
            name,
            timeouts.operation,
        ))
    }

    /// The function the follow-ups invoke.
    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// Invokes the function asynchronously with follow-up `n`'s event.
    ///
    /// # Errors
    ///
    /// Why Lambda did not accept the invocation (its error, no answer in time, or a status
    /// other than 202), in words for the log; nothing is retried: the next tick resumes.
    pub async fn send(&self, n: u32, paused_until: Option<OffsetDateTime>) -> Result<(), String> {
        let payload = event(n, paused_until).to_string();
        let call = self
            .client
            .invoke()
            .function_name(&self.function_name)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload.into_bytes()))
            .send();
        match bounded(self.timeout, call).await {
            Ok(Ok(out)) if out.status_code() == 202 => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "Lambda answered Invoke with status {} instead of 202",
                out.status_code()
            )),
            Ok(Err(e)) => Err(format!(
                "Invoke of {} failed: {}",
                echo(&self.function_name),
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )),
            Err(gave_up) => Err(format!(
                "Invoke of {} had no answer in time ({gave_up:?}, time-out {})",
                echo(&self.function_name),
                for_humans(self.timeout)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_carries_its_number_and_the_pause() {
        assert_eq!(event(1, None), json!({"action": "refresh", "follow_up": 1}));
        let until = time::macros::datetime!(2026-11-30 10:00:00 UTC);
        assert_eq!(
            event(3, Some(until)),
            json!({"action": "refresh", "follow_up": 3, "paused_until": "2026-11-30T10:00:00Z"})
        );
    }
}
