//! iadvize-token-broker keeps one valid iAdvize API access token in AWS Secrets Manager.
//!
//! The Lambda binary logs in to iAdvize once per token lifetime, verifies the token and
//! stores it, with its expiry, as the token secret's AWSCURRENT value. Consumers read the
//! secret instead of logging in. See the README for the secret schema and the events, and
//! `docs/ARCHITECTURE.md` for how the modules fit together.
//!
//! Modules: [`broker`] (construction and dispatch: event → handler), [`events`] (what
//! arrives), [`refresh`] (the tick's runner) and [`plan`] (its pure decisions), [`rotation`]
//! (the four Secrets Manager steps), [`login`] (the one login path: credentials, their block,
//! pacing, login, verification) and [`pacing`] (its bookkeeping), [`tags`] (the state kept in
//! tags), [`status`] and [`operator`] (what the CLI asks), [`iadvize`] (login and
//! verification requests), [`store`] (every Secrets Manager call), [`token`] (the stored
//! record), [`config`] (environment), [`bounds`] (time-outs and deadlines of every outside
//! call), [`metrics`] (CloudWatch EMF), [`heal`] (rejection reports and credentials events),
//! [`follow_up`] (a tick's asynchronous follow-ups), [`throttle`] (the pause of every login
//! after iAdvize's 429), [`logging`], [`error`].
//!
//! The token record schema and [`TokenSource`] live in the small `iadvize-token-consumer`
//! crate (`consumer/`), which Rust consumers depend on instead of this one; they are
//! re-exported here ([`consumer`], [`token`]).

#![warn(missing_docs)]

pub mod bounds;
pub mod broker;
pub mod config;
/// Reading the token, for Rust consumers: the consumer crate's [`TokenSource`], re-exported.
pub use iadvize_token_consumer::source as consumer;
pub mod error;
pub mod events;
pub mod follow_up;
pub mod heal;
pub mod iadvize;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod operator;
pub mod pacing;
pub mod plan;
pub mod refresh;
pub mod rotation;
pub mod status;
pub mod store;
pub mod tags;
pub mod throttle;
pub mod token;

pub use broker::Broker;
pub use config::{Config, ConfigBuilder};
pub use consumer::TokenSource;
pub use error::{Error, ErrorKind, Result};
pub use store::SecretStore;
pub use token::TokenRecord;

/// Converts a Lambda deadline (wall clock) into a monotonic instant: the same time left,
/// measured on tokio's clock (zero when the deadline has passed).
pub fn deadline_from(wall: std::time::SystemTime) -> tokio::time::Instant {
    let left = wall
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::Instant::now() + left
}
