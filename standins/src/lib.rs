//! Local stand-ins and test support for `iadvize-token-broker`: everything its tests, its
//! demo and its benches run against instead of AWS and iAdvize.
//!
//! - [`iadvize`]: an HTTP server that behaves like the parts of the iAdvize API the broker
//!   talks to (`/oauth2/token`, `/_authenticated`, `/graphql`), with rate limits, counters and
//!   switchable faults. Its types are re-exported at the crate root.
//! - [`lambda_harness`]: a minimal implementation of the AWS Lambda Runtime API that runs a
//!   real Lambda binary as a child process and invokes it with events.
//! - [`lambda_api`]: a stand-in for the Lambda `Invoke` API that records asynchronous
//!   invocations and hands them to a [`LambdaHarness`], so a chain of self-invocations runs
//!   the real binary.
//! - [`sqs_poller`]: plays a Lambda event source mapping for an SQS queue (moto's SQS): receive,
//!   invoke a [`LambdaHarness`] with the Lambda SQS event, delete.
//! - [`moto`]: Secrets Manager clients for moto's server (the one builder of SDK clients the
//!   tests use: endpoint, region, retries), and the start of a rotation as Secrets Manager does
//!   it.
//! - [`sm_proxy`]: a proxy in front of moto that counts Secrets Manager calls per operation
//!   and fails (any error code, at one call, the next N or every call), resets, holds or
//!   delays them — before forwarding or after Secrets Manager applied them — or kills a
//!   process at a chosen call.
//!
//! None is meant for production: they bind to loopback by default, keep everything in
//! memory and favour observability over performance.
#![warn(missing_docs)]

pub mod iadvize;
pub mod lambda_api;
pub mod lambda_harness;
pub mod moto;
pub mod sm_proxy;
pub mod sqs_poller;

pub use iadvize::{BlockScope, Fault, RetryAfter, Standin, StandinConfig, Stats, TokenChecker};
pub use lambda_api::LambdaApi;
pub use lambda_harness::{InvokeError, LambdaHarness};
pub use sm_proxy::SmProxy;
pub use sqs_poller::SqsPoller;
