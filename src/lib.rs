//! iadvize-token-broker keeps one valid iAdvize API access token in AWS Secrets Manager.
//!
//! The Lambda binary logs in to iAdvize once per token lifetime, verifies the token and
//! stores it, with its expiry, as the token secret's AWSCURRENT value. Consumers read the
//! secret instead of logging in. See the README for the secret schema and the events.
//!
//! Modules, one per concern: [`config`] (environment), [`events`] (what arrives),
//! [`rotation`] (the four Secrets Manager steps), [`refresh`] (the scheduled tick),
//! [`iadvize`] (login and verification), [`token`] (the stored record), [`store`]
//! (Secrets Manager), [`metrics`] (CloudWatch EMF), [`bounds`] (time-outs and deadlines of
//! every outside call), [`error`].
//!
//! The token record schema and [`TokenSource`] live in the small `iadvize-token-consumer`
//! crate (`consumer/`), which Rust consumers depend on instead of this one; they are
//! re-exported here ([`consumer`], [`token`]).

pub mod bounds;
pub mod broker;
pub mod config;
/// Reading the token, for Rust consumers: the consumer crate's [`TokenSource`], re-exported.
pub use iadvize_token_consumer::source as consumer;
pub mod error;
pub mod events;
pub mod iadvize;
pub mod logging;
pub mod metrics;
pub mod operator;
pub mod pacing;
pub mod refresh;
pub mod rotation;
pub mod status;
pub mod store;
pub mod token;

pub use broker::Broker;
pub use config::Config;
pub use consumer::TokenSource;
pub use error::{Error, Result};
pub use store::SecretStore;
pub use token::TokenRecord;

/// Converts a Lambda deadline (wall clock) into a monotonic instant.
pub fn deadline_from(wall: std::time::SystemTime) -> tokio::time::Instant {
    let left = wall
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::Instant::now() + left
}
