//! The broker's integration tests, in one binary: the modules share the support code (a test
//! world on moto and the iAdvize stand-in, the Secrets Manager proxy, the fault rig) and link
//! the crate once instead of once per file, which keeps a clean test build smaller and
//! faster. Run against moto: `scripts/with-moto.sh cargo nextest run --test it`; one module:
//! `scripts/with-moto.sh cargo nextest run --test it readers::`.

mod support;

mod consumer;
mod crash;
mod faults;
mod fixtures;
mod fleet;
mod follow_ups;
mod go_reader;
mod holds;
mod iadvize_faults;
mod lambda_binary;
mod logs;
mod module_graph;
mod properties;
mod readers;
mod refresh;
mod release;
mod reports;
mod rotation;
