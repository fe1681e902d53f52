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
//!   logs in to iAdvize.
//!
//! ```no_run
//! # async fn example() -> Result<(), iadvize_token_consumer::TokenError> {
//! let tokens = iadvize_token_consumer::TokenSource::from_env("iadvize/token").await;
//! let token = tokens.token().await?; // `Authorization: Bearer {token.expose()}`
//! # Ok(())
//! # }
//! ```

pub mod source;
pub mod token;

pub use source::{TokenError, TokenSource, TokenSourceBuilder};
pub use token::{AccessToken, RecordError, TokenRecord};
