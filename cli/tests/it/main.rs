//! The `iadvize-token` CLI's tests, in one binary, run as subprocesses against moto, the
//! iAdvize stand-in and the Lambda stand-in. The support code is the broker's
//! (`tests/it/support`). Run: `scripts/with-moto.sh cargo nextest run -p iadvize-token-cli`.

#[path = "../../../tests/it/support/mod.rs"]
mod support;

#[macro_use]
mod common;

mod check;
mod cli;
mod logs;
mod operate;
