//! The CLI's logs: whatever verbosity an operator asks for, no secret reaches them.

use crate::common::command;
use crate::support::*;

const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEsessiontoken0b7e";

/// Runs the `iadvize-token` CLI with the world's environment plus `extra`; stdout, stderr.
async fn cli_at_most_verbose(
    world: &World,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (String, String) {
    let mut command = command(world, args);
    command.env("AWS_SESSION_TOKEN", SESSION_TOKEN);
    for (key, value) in extra {
        command.env(key, value);
    }
    let output = command.output().await.expect("the CLI runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_cli_command_at_the_most_verbose_setting_logs_no_secret() {
    // The CLI logs through the same allow-list as the Lambda: `RUST_LOG=trace` or `-vvv` turn
    // on our own traces, never aws-sigv4's canonical requests (the session token) or the SDK's
    // whole responses (secret values).
    let world = World::new().await;
    world.put_record(20).await;
    let id = world.token_id.clone();
    let mut tokens = vec![world.current_token().await];
    let mut outputs = Vec::new();
    let settings: [(&[&str], &str); 3] = [
        (&["-vvv"], ""),
        (&[], "trace"),
        (
            &["-vvv"],
            "trace,aws_sigv4=trace,aws_smithy_runtime=trace,hyper=trace,h2=trace,reqwest=trace",
        ),
    ];
    for (flags, rust_log) in settings {
        let commands: [&[&str]; 8] = [
            &["get", &id],
            &["status", &id],
            &["status", "--json"],
            &["verify", &id],
            &["verify", "--json", &id],
            &["refresh", "--force", &id],
            &["refresh", "--json", &id],
            &["resume", &id],
        ];
        for command in commands {
            if command[0] == "resume" {
                world.start_sm_rotation().await;
            }
            let args = [flags, command].concat();
            let env = [
                ("RUST_LOG", rust_log),
                ("IADVIZE_STUCK_ROTATION_AFTER", "0s"),
            ];
            let (stdout, stderr) = cli_at_most_verbose(&world, &args, &env).await;
            outputs.push((args.join(" "), stdout, stderr));
            // Every token a command stored on the way (refresh, resume).
            let token = world.current_token().await;
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
    }
    assert_eq!(tokens.len(), 7, "each refresh --force and resume logged in");

    for (command, stdout, stderr) in &outputs {
        let mut secrets: Vec<&str> = vec![SESSION_TOKEN, &world.password, &world.username];
        secrets.extend(tokens.iter().map(String::as_str));
        assert_no_secrets(stderr, &secrets);
        if command.contains("get ") {
            // `get` prints the token alone on stdout, by design.
            secrets.truncate(3);
        }
        assert_no_secrets(stdout, &secrets);
    }
    for (command, _, stderr) in &outputs {
        assert!(
            stderr.contains("TRACE"),
            "`{command}` logged at TRACE:\n{stderr}"
        );
    }
}
