//! The `iadvize-token` CLI, run as a subprocess against moto and the iAdvize stand-in:
//! its commands, its output and its exit codes.

use std::process::Output;

use crate::common::*;
use crate::support::*;
use serde_json::Value;

/// Asserts that neither output stream shows the token.
fn assert_token_not_printed(output: &Output, token: &str) {
    assert_no_secrets(&stdout(output), &[token]);
    assert_no_secrets(&stderr(output), &[token]);
}

#[tokio::test]
async fn get_prints_the_current_token_alone() {
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.current_token().await;
    let logins = world.logins();

    let output = cli(&world, &["get", &world.token_id], &[]).await;

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{token}\n"));
    assert_no_secrets(&stderr(&output), &[&token]);
    assert_eq!(world.logins(), logins, "get never logs in");
}

#[tokio::test]
async fn get_exits_3_when_the_secret_holds_no_token_yet() {
    let world = World::new().await;
    let output = cli(&world, &["get", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3);
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("holds no token yet"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("iadvize-token refresh"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn get_exits_3_when_the_token_has_expired_or_the_secret_is_missing() {
    let world = World::new().await;
    world.put_record(-2).await;
    let output = cli(&world, &["get", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3);
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("expired at"),
        "{}",
        stderr(&output)
    );

    let output = cli(&world, &["get", "no-such-secret-anywhere"], &[]).await;
    assert_eq!(code(&output), 3);
    assert!(
        stderr(&output).contains("was not found"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn status_reports_expiry_issue_time_and_last_login_of_the_configured_secrets_as_json() {
    let world = World::new().await;
    world.fill().await;
    let token = world.current_token().await;

    // No SECRET_ID: the ones in IADVIZE_TOKEN_SECRET_IDS.
    let output = cli(&world, &["status", "--json"], &[]).await;

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_token_not_printed(&output, &token);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let secret = &json["secrets"][0];
    assert_eq!(secret["secret_id"], world.token_id.as_str());
    assert_eq!(secret["token"], "valid");
    assert!(
        secret["expires_at"].is_string() && secret["issued_at"].is_string(),
        "{secret}"
    );
    assert!(secret["remaining_seconds"].as_u64().unwrap() > 23 * 3600);
    assert!(secret["last_login_attempt"].is_string(), "{secret}");
    assert_eq!(secret["credentials_blocked"], false);
    assert_eq!(secret["credentials_secret_id"], world.creds_id.as_str());
    assert!(secret.get("rotation").is_none(), "{secret}");
}

#[tokio::test]
async fn status_names_a_stuck_rotation_and_resume_finishes_it() {
    let world = World::new().await;
    world.put_record(20).await;
    let old = world.current_token().await;
    let version = world.start_sm_rotation().await;
    let stuck = [("IADVIZE_STUCK_ROTATION_AFTER", "0s")];

    let output = cli(&world, &["status", &world.token_id], &stuck).await;
    let text = stdout(&output);
    assert_eq!(
        code(&output),
        0,
        "the token is still valid: {text}{}",
        stderr(&output)
    );
    assert!(text.contains("STUCK") && text.contains(&version), "{text}");
    assert!(
        text.contains(&format!("iadvize-token resume {}", world.token_id)),
        "{text}"
    );
    assert!(text.contains("valid, expires at"), "{text}");

    let logins = world.logins();
    let output = cli(&world, &["resume", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("finished the rotation of version {version}")),
        "{}",
        stdout(&output)
    );
    assert_eq!(world.logins(), logins + 1);
    assert_eq!(world.stages().await[&version], ["AWSCURRENT"]);
    let new = world.current_token().await;
    assert_ne!(new, old);
    assert_token_not_printed(&output, &new);

    let output = cli(&world, &["resume", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0);
    assert!(
        stdout(&output).contains("nothing to resume"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn resume_finishes_a_young_rotation_too() {
    let world = World::new().await;
    world.put_record(20).await;
    let version = world.start_sm_rotation().await;
    // The tick would leave it alone for 15 minutes; the operator need not wait.
    let output = cli(
        &world,
        &["resume", &world.token_id],
        &[("IADVIZE_STUCK_ROTATION_AFTER", "1h")],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(world.stages().await[&version], ["AWSCURRENT"]);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn refresh_fills_an_empty_secret_leaves_a_fresh_token_alone_and_forces_on_request() {
    let world = World::new().await;

    let output = cli(&world, &["refresh", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("refreshed, expires at"),
        "{}",
        stdout(&output)
    );
    assert_eq!(world.logins(), 1);
    let first = world.current_token().await;
    assert_token_not_printed(&output, &first);
    assert_valid_current(&world).await;

    let output = cli(&world, &["refresh"], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("fresh, nothing to do"),
        "{}",
        stdout(&output)
    );
    assert_eq!(world.logins(), 1);

    let output = cli(
        &world,
        &["refresh", "--force", "--json", &world.token_id],
        &[],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["results"][0]["outcome"], "refreshed");
    assert_eq!(world.logins(), 2);
    let second = world.current_token().await;
    assert_ne!(first, second);
    assert_token_not_printed(&output, &second);
}

#[tokio::test]
async fn refused_credentials_exit_4_and_say_what_to_do_until_a_corrected_value_is_put() {
    let world = World::new().await;
    world
        .put_credentials(&world.username, "a-wrong-password")
        .await;

    let output = cli(&world, &["refresh", &world.token_id], &[]).await;
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refused the credentials"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.logins(), 1);
    assert_no_secrets(&stderr(&output), &["a-wrong-password", &world.username]);

    let output = cli(&world, &["status", &world.token_id], &[]).await;
    assert_eq!(code(&output), 4);
    let text = stdout(&output);
    assert!(text.contains("BLOCKED"), "{text}");
    assert!(
        text.contains("put-secret-value") && text.contains(&world.creds_id),
        "{text}"
    );

    let output = cli(&world, &["refresh", &world.token_id], &[]).await;
    assert_eq!(code(&output), 4);
    assert!(
        stderr(&output).contains("already refused"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        world.logins(),
        1,
        "blocked: no second login with the same credentials"
    );

    world
        .put_credentials(&world.username, &world.password)
        .await;
    let output = cli(&world, &["refresh", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_valid_current(&world).await;
    let output = cli(&world, &["status", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stdout(&output));
}

#[tokio::test]
async fn verify_says_whether_iadvize_accepts_the_current_token() {
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.current_token().await;

    let output = cli(&world, &["verify", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("iAdvize accepts the current token"),
        "{}",
        stdout(&output)
    );
    assert_token_not_printed(&output, &token);
    assert_eq!(world.verifications(), 1);

    world.standin.revoke_all_tokens();
    let output = cli(&world, &["verify", "--json", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["outcome"], "rejected");
    assert_token_not_printed(&output, &token);

    let output = cli(&world, &["verify", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3);
    assert!(
        stderr(&output).contains("refresh --force"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn verify_exits_3_when_iadvize_answers_200_invalid_token() {
    let world = World::new().await;
    world.put_record(20).await;
    world
        .standin
        .push_verify_faults(standins::Fault::InvalidTokenOk, 1);
    let output = cli(&world, &["verify", "--json", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["outcome"], "rejected");
}

#[tokio::test]
async fn status_needs_no_credentials_to_report_a_valid_token() {
    // A consumer who only knows the token secret: no IADVIZE_CREDENTIALS_SECRET_ID, no tag.
    let world = World::new().await;
    world.put_record(20).await;
    let output = cli(
        &world,
        &["status", &world.token_id],
        &[("IADVIZE_CREDENTIALS_SECRET_ID", "")],
    )
    .await;
    assert_eq!(code(&output), 0, "{}{}", stdout(&output), stderr(&output));
    assert!(
        stdout(&output).contains("credentials:         unknown"),
        "{}",
        stdout(&output)
    );

    let output = cli(
        &world,
        &["status", "--json", &world.token_id],
        &[("IADVIZE_CREDENTIALS_SECRET_ID", "")],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["secrets"][0]["token"], "valid", "{json}");
}

#[tokio::test]
async fn verify_exits_3_when_there_is_no_token_to_verify() {
    let world = World::new().await;
    let output = cli(&world, &["verify", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3);
    assert!(
        stderr(&output).contains("holds no token yet"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.verifications(), 0);
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_2_with_a_message() {
    let world = World::new().await;

    let output = cli(&world, &[], &[]).await;
    assert_eq!(code(&output), 2);
    let output = cli(&world, &["get"], &[]).await;
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("SECRET_ID"), "{}", stderr(&output));

    let output = cli(&world, &["status"], &[("IADVIZE_TOKEN_SECRET_IDS", "")]).await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("IADVIZE_TOKEN_SECRET_IDS"),
        "{}",
        stderr(&output)
    );

    let output = cli(
        &world,
        &["refresh"],
        &[("IADVIZE_API_URL", "http://api.example.com")],
    )
    .await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("IADVIZE_API_URL"),
        "{}",
        stderr(&output)
    );
    assert_eq!(world.logins(), 0);
}

#[tokio::test]
async fn help_documents_the_commands_and_exit_codes() {
    let world = World::new().await;
    let output = cli(&world, &["--help"], &[]).await;
    assert_eq!(code(&output), 0);
    let text = stdout(&output);
    for expected in [
        "get",
        "status",
        "refresh",
        "verify",
        "resume",
        "Exit codes",
        "4  iAdvize refused",
    ] {
        assert!(
            text.contains(expected),
            "--help lacks {expected:?}:\n{text}"
        );
    }
}

/// Runs the CLI with Secrets Manager behind `proxy`; returns its output and how long it took.
/// A CLI that is still running after 30 s is killed (and the test fails).
async fn cli_through(
    world: &World,
    proxy: &SmProxy,
    args: &[&str],
) -> (Output, std::time::Duration) {
    let mut command = command(world, args);
    command
        .env("AWS_ENDPOINT_URL", proxy.url())
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("`iadvize-token {}` still runs after 30 s", args.join(" ")))
        .expect("the CLI runs");
    (output, started.elapsed())
}

#[tokio::test]
async fn get_gives_up_within_its_timeout_when_secrets_manager_never_answers() {
    use standins::sm_proxy::Hold;
    let world = World::new().await;
    world.put_record(20).await;
    let proxy = sm_proxy().await;
    proxy.hold("GetSecretValue", Hold::BeforeForwarding);

    let (output, elapsed) =
        cli_through(&world, &proxy, &["--timeout", "1s", "get", &world.token_id]).await;

    println!("get, GetSecretValue held, --timeout 1s: exited after {elapsed:?}");
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("Secrets Manager did not answer GetSecretValue within"),
        "{}",
        stderr(&output)
    );
    assert!(proxy.held() >= 1);
}

#[tokio::test]
async fn every_broker_command_gives_up_on_secrets_manager_within_its_timeout() {
    use standins::sm_proxy::Hold;
    let world = World::new().await;
    world.put_record(20).await;
    let proxy = sm_proxy().await;
    // Every command starts by describing the token secret.
    proxy.hold("DescribeSecret", Hold::BeforeForwarding);

    for command in ["refresh", "status", "verify", "resume"] {
        let (output, elapsed) = cli_through(
            &world,
            &proxy,
            &["--timeout", "2s", command, &world.token_id],
        )
        .await;
        println!("{command}, DescribeSecret held, --timeout 2s: exited after {elapsed:?}");
        assert_eq!(code(&output), 1, "{command}: {}", stderr(&output));
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            text.contains("Secrets Manager did not answer DescribeSecret within"),
            "{command}: {text}"
        );
    }
    assert_eq!(world.logins(), 1, "only the setup's login");
}

/// Puts `bytes` as the token secret's AWSCURRENT value with `--secret-binary`.
async fn put_binary(world: &World, bytes: Vec<u8>) {
    world
        .sm
        .put_secret_value()
        .secret_id(&world.token_id)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(bytes))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn get_verify_and_status_say_what_they_found_in_a_binary_token_value() {
    // A valid record, but stored with `--secret-binary`: not "not filled yet".
    let world = World::new().await;
    world.put_record(20).await;
    let record = world.current().await.unwrap().to_string();
    let token = world.current_token().await;
    put_binary(&world, record.clone().into_bytes()).await;
    let bytes = record.len();

    let output = cli(&world, &["get", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains(&format!("binary data (SecretBinary, {bytes} bytes)")),
        "{}",
        stderr(&output)
    );
    assert_token_not_printed(&output, &token);

    let output = cli(&world, &["verify", &world.token_id], &[]).await;
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("binary data (SecretBinary, {bytes} bytes)")),
        "{}",
        stderr(&output)
    );
    assert_token_not_printed(&output, &token);
    assert_eq!(world.verifications(), 0);

    let output = cli(&world, &["status", &world.token_id], &[]).await;
    assert!(
        stdout(&output).contains(&format!(
            "INVALID: the value is not a token record: binary data (SecretBinary, {bytes} bytes)"
        )),
        "{}",
        stdout(&output)
    );
    assert_token_not_printed(&output, &token);
}

#[tokio::test]
async fn verify_refuses_a_stored_token_that_cannot_be_put_in_a_header_without_retrying() {
    // Retrying could never send it: it used to take four retries with backoff (15 s or more)
    // to say so.
    let world = World::new().await;
    let issued = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let record = iadvize_token_broker::TokenRecord::new(
        iadvize_token_broker::token::AccessToken::new("tok\u{7}en-0f3c"),
        issued,
        86400,
    );
    world.put_current(&record.to_json()).await;

    let output = cli(&world, &["verify", &world.token_id], &[]).await;

    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("characters an Authorization header cannot carry"),
        "{}",
        stderr(&output)
    );
    assert_token_not_printed(&output, "en-0f3c");
    assert_eq!(world.verifications(), 0);
}

#[tokio::test]
async fn report_rejected_checks_the_current_token_and_refreshes_it_when_iadvize_refuses_it() {
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.current_token().await;

    // iAdvize accepts it: nothing changes, one verification.
    let output = cli(&world, &["report-rejected", &world.token_id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("iAdvize accepts this token"),
        "{}",
        stdout(&output)
    );
    assert_eq!((world.verifications(), world.logins()), (1, 1));

    // Revoked: the report refreshes it (the remembered acceptance is bypassed by a 0s interval).
    world.standin.revoke_all_tokens();
    let output = cli(
        &world,
        &["report-rejected", "--json", &world.token_id],
        &[("IADVIZE_REPORT_VERIFY_INTERVAL", "0s")],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["results"][0]["outcome"], "refreshed", "{json}");
    assert_eq!(world.logins(), 2);
    assert_token_not_printed(&output, &token);

    // The old token's hash now: superseded, no iAdvize call.
    let hash = iadvize_token_consumer::report::token_sha256(
        &iadvize_token_broker::token::AccessToken::new(token.clone()),
    );
    let output = cli(
        &world,
        &["report-rejected", &world.token_id, "--token-sha256", &hash],
        &[],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("superseded"),
        "{}",
        stdout(&output)
    );
    assert_eq!((world.verifications(), world.logins()), (3, 2));

    // A bad hash: usage error naming the field, no iAdvize call.
    let output = cli(
        &world,
        &["report-rejected", &world.token_id, "--token-sha256", "abc"],
        &[],
    )
    .await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("token_sha256"),
        "{}",
        stderr(&output)
    );
    assert_eq!((world.verifications(), world.logins()), (3, 2));
}

#[tokio::test]
async fn status_and_report_rejected_of_a_secret_that_does_not_exist_exit_3_and_say_so() {
    let world = World::new().await;
    world.put_record(20).await;
    let missing = unique("no-such-secret");

    let output = cli(&world, &["status", &missing], &[]).await;
    assert_eq!(code(&output), 3, "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("not found"), "{}", stdout(&output));

    // Beside a valid one: still 3, and the JSON names the kind.
    let output = cli(
        &world,
        &["status", "--json", &world.token_id, &missing],
        &[],
    )
    .await;
    assert_eq!(code(&output), 3, "{}", stdout(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["secrets"][1]["error_kind"], "SecretNotFound", "{json}");

    let output = cli(&world, &["--json", "report-rejected", &missing], &[]).await;
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.contains("not found"), "{json}");
    assert!(!error.contains("holds no token yet"), "{json}");
}

#[tokio::test]
async fn a_forced_refresh_held_back_by_the_login_spacing_says_when_and_exits_1() {
    let world = World::new().await;
    let spacing = [("IADVIZE_MIN_LOGIN_INTERVAL", "5m")];
    let output = cli(&world, &["refresh", "--force", &world.token_id], &spacing).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let token = world.current_token().await;
    let logins = world.logins();

    // Right after that login.
    let output = cli(&world, &["refresh", "--force", &world.token_id], &spacing).await;

    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(code(&output), 1, "{text}");
    assert!(text.contains("the login spacing holds it back"), "{text}");
    assert!(text.contains("the next login may start at 20"), "{text}");
    assert!(!text.contains("resume"), "no rotation to resume: {text}");
    assert_eq!(world.logins(), logins, "no login");
    assert_eq!(world.current_token().await, token, "the token stays");

    let output = cli(
        &world,
        &["refresh", "--force", "--json", &world.token_id],
        &spacing,
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let result = &json["results"][0];
    assert_eq!(result["outcome"], "in_progress", "{json}");
    assert_eq!(result["held_back"]["kind"], "LoginSpacing", "{json}");
    assert!(result["held_back"]["next_login_at"].is_string(), "{json}");
}
