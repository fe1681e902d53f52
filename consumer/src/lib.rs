//! Reads the iAdvize API access token that
//! iadvize-token-broker keeps in AWS Secrets Manager.
//!
//! Two things, and only their dependencies (the Secrets Manager client, serde, time, tokio's
//! sync primitives), so that a service reading the token does not compile the broker:
//!
//! - [`token`]: the token record schema, version 1 (`{"access_token", "token_type",
//!   "issued_at", "expires_at", "expires_in"}`), the public contract between the broker and
//!   every consumer;
//! - [`source`]: [`TokenSource`], a cached, single-flight reader of a token secret that reads
//!   it once per token lifetime, keeps a working token through failed re-reads, and never
//!   logs in to iAdvize;
//! - [`report`]: the rejection report a consumer sends to the broker's report queue when
//!   iAdvize refuses the token the secret still holds (`IADVIZE_REPORT_QUEUE_URL`; the SQS
//!   client comes with the `report` feature, on by default).
//!
//! ```no_run
//! # async fn example() -> Result<(), iadvize_token_consumer::TokenError> {
//! let tokens = iadvize_token_consumer::TokenSource::from_env("iadvize/token").await;
//! let token = tokens.token().await?; // `Authorization: Bearer {token.expose()}`
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod report;
pub mod source;
pub mod token;

pub use source::{TokenError, TokenSource, TokenSourceBuilder};
pub use token::{AccessToken, RecordError, TokenRecord};
