//! What the CLI's test modules share: the binary, run with a test world's environment, and
//! its output.

use std::process::Output;

use crate::support::{World, binary_env};

/// A client of the AWS SDK crate `$sdk` for moto (`MOTO_ENDPOINT`) in the support's region,
/// with dummy credentials.
macro_rules! moto_client {
    ($sdk:ident) => {
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new(crate::support::REGION))
                .credentials_provider($sdk::config::Credentials::new(
                    "testing", "testing", None, None, "moto",
                ))
                .endpoint_url(crate::support::moto_endpoint())
                .build(),
        )
    };
}

/// The `iadvize-token` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_iadvize-token");

/// The CLI with `args` and the world's environment (moto, the stand-in, the world's secrets),
/// without the operator's AWS profile.
pub fn command(world: &World, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .envs(binary_env(world))
        .env_remove("AWS_PROFILE");
    command
}

/// Runs the CLI with the world's environment plus `extra`.
pub async fn cli(world: &World, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = command(world, args);
    command.envs(extra.iter().copied());
    command.output().await.expect("the CLI runs")
}

/// The exit code (the CLI always exits, never dies of a signal).
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("the CLI exited")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
