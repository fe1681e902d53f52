//! Secrets never leak: the captured logs (and error `Debug` output) of a full rotation and of
//! each failure contain no access token, password, username or RotationToken. And what Lambda's
//! log-level filtering keeps of the binary's output: the metrics at the levels the IaC accepts,
//! a warning that says so at the others.

use crate::support::lambda_logs::{lambda_keeps, lambda_level};
use crate::support::*;
use iadvize_token_broker::logging::{LAMBDA_LOG_LEVELS, METRICS_SAFE_LEVELS};
use serde_json::json;
use standins::Fault;

const ROTATION_TOKEN: &str = "rotation-token-8c1f0e2a-secret";

#[tokio::test]
async fn logs_of_rotations_and_failures_contain_no_secrets() {
    let world = World::new().await;
    world.put_current("placeholder").await;
    let (logs, _guard) = CapturedLogs::start();
    let broker = world.broker();
    let mut debug_output = String::new();

    // A full Secrets-Manager-driven rotation, with a RotationToken.
    let token = world.start_sm_rotation().await;
    for step in STEPS {
        let mut event = step_event(step, &world.token_id, &token);
        event["RotationToken"] = json!(ROTATION_TOKEN);
        let answer = broker.handle(&event, deadline(30)).await.unwrap();
        debug_output.push_str(&format!("{answer:?}"));
    }
    let first = world.current().await.unwrap();

    // A forced tick, and the failures.
    broker
        .handle(&json!({"action": "refresh", "force": true}), deadline(30))
        .await
        .unwrap();
    let second = world.current().await.unwrap();
    world.standin.push_verify_faults(Fault::Unauthorized, 1);
    let failures = [
        broker
            .handle(&json!({"action": "refresh", "force": true}), deadline(30))
            .await,
        {
            world.standin.push_login_faults(Fault::MalformedJson, 1);
            broker
                .handle(&json!({"action": "refresh", "force": true}), deadline(30))
                .await
        },
        {
            let mut event = step_event("createSecret", &world.token_id, "not-a-version");
            event["RotationToken"] = json!(ROTATION_TOKEN);
            broker.handle(&event, deadline(30)).await
        },
        {
            world
                .put_credentials(&world.username, "wrong-password-5e3d")
                .await;
            broker
                .handle(&json!({"action": "refresh", "force": true}), deadline(30))
                .await
        },
        broker
            .handle(
                &json!({"password": world.password, "RotationToken": ROTATION_TOKEN}),
                deadline(30),
            )
            .await,
    ];
    for failure in failures {
        let err = failure.expect_err("each of these fails");
        debug_output.push_str(&format!("{err:?} {err}"));
    }
    let status = broker
        .handle(&json!({"action": "status"}), deadline(30))
        .await
        .unwrap();
    debug_output.push_str(&status.to_string());

    let text = logs.text() + &debug_output;
    assert!(
        text.contains("new token is AWSCURRENT"),
        "the capture works"
    );
    assert!(
        text.contains("iAdvize refused the credentials"),
        "failures were logged"
    );
    let tokens = [
        first["access_token"].as_str().unwrap(),
        second["access_token"].as_str().unwrap(),
    ];
    assert_no_secrets(&text, &tokens);
    assert_no_secrets(
        &text,
        &[
            &world.password,
            &world.username,
            "wrong-password-5e3d",
            ROTATION_TOKEN,
        ],
    );
}

const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEsessiontoken0b7e";

#[tokio::test]
async fn the_binary_at_trace_level_logs_no_secret_even_from_its_dependencies() {
    // lambda_runtime logs raw events (with the RotationToken) and aws-sigv4 canonical
    // requests (with the session token) below INFO: only an allow-list may log there.
    let world = World::new().await;
    world.put_current("placeholder").await;
    let lambda = start_broker(&with_env(
        binary_env(&world),
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ],
    ))
    .await;

    let tick = scheduled_event();
    let first = lambda.invoke(&tick).await.unwrap();
    assert_eq!(first["results"][0]["outcome"], "refreshed", "{first}");
    let first = world.current().await.unwrap();
    let token = world.start_sm_rotation().await;
    for step in STEPS {
        let mut event = step_event(step, &world.token_id, &token);
        event["RotationToken"] = json!(ROTATION_TOKEN);
        lambda.invoke(&event).await.unwrap();
    }
    let second = world.current().await.unwrap();
    // A failure too: refused credentials.
    world
        .put_credentials(&world.username, "wrong-password-5e3d")
        .await;
    let refused = lambda
        .invoke(&json!({"action": "refresh", "force": true}))
        .await;
    assert!(refused.is_err());

    let logs = lambda.finish().await;
    assert!(
        logs.contains("new token is AWSCURRENT"),
        "the capture works"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "below INFO is on for our crate"
    );
    assert_no_secrets(
        &logs,
        &[
            first["access_token"].as_str().unwrap(),
            second["access_token"].as_str().unwrap(),
            &world.password,
            &world.username,
            "wrong-password-5e3d",
            ROTATION_TOKEN,
            SESSION_TOKEN,
        ],
    );
}

// Lambda's log-level filtering (tests/it/support/lambda_logs.rs) applied to the real binary's
// output, at each of Lambda's levels.

/// One tick of the binary with JSON logs at `level`: everything it wrote.
async fn tick_output(level: &str) -> String {
    let world = World::new().await;
    let lambda = start_broker(&with_env(
        binary_env(&world),
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", level),
        ],
    ))
    .await;
    let tick = scheduled_event();
    let answer = lambda.invoke(&tick).await.unwrap();
    assert_eq!(answer["results"][0]["outcome"], "refreshed", "{answer}");
    lambda.finish().await
}

/// The tick's expiry metric among the lines Lambda keeps, if it is there.
fn kept_expiry_metric(kept: &[&str]) -> Option<f64> {
    kept.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .find_map(|doc| doc["MinSecondsUntilExpiry"].as_f64())
}

fn metrics_warnings<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines
        .iter()
        .copied()
        .filter(|line| line.contains("drops this function's metrics"))
        .collect()
}

#[tokio::test]
async fn at_every_metrics_safe_level_the_ticks_expiry_metric_survives_lambdas_filter() {
    for level in METRICS_SAFE_LEVELS {
        let output = tick_output(level).await;
        let kept = lambda_keeps(&output, level);
        let expiry = kept_expiry_metric(&kept)
            .unwrap_or_else(|| panic!("at {level} Lambda drops the expiry metric:\n{output}"));
        assert!(
            expiry > 80_000.0,
            "a fresh token's expiry at {level}: {expiry}"
        );
        // Every log line keeps the level it was written at: the JSON formatter's timestamp is
        // RFC 3339.
        let mut leveled = 0;
        for line in output.lines() {
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(written) = doc["level"].as_str() {
                assert_eq!(lambda_level(line), written.to_uppercase(), "{line}");
                leveled += 1;
            }
        }
        assert!(leveled > 0, "log lines at {level}");
        assert!(
            metrics_warnings(&output.lines().collect::<Vec<_>>()).is_empty(),
            "no warning at {level}"
        );
    }
}

#[tokio::test]
async fn above_info_the_binary_says_once_that_its_metrics_are_dropped_and_lambda_keeps_that_line() {
    let above_info = LAMBDA_LOG_LEVELS
        .into_iter()
        .filter(|level| !METRICS_SAFE_LEVELS.contains(level));
    for level in above_info {
        let output = tick_output(level).await;
        let kept = lambda_keeps(&output, level);
        // The claim of the warning: Lambda's filter drops the metric lines at this level.
        assert_eq!(kept_expiry_metric(&kept), None, "at {level}");
        let all: Vec<&str> = output.lines().collect();
        let warnings = metrics_warnings(&all);
        assert_eq!(warnings.len(), 1, "one warning at {level}:\n{output}");
        assert_eq!(
            metrics_warnings(&kept),
            warnings,
            "Lambda keeps the warning at {level} (it is {})",
            lambda_level(warnings[0])
        );
        assert!(
            ["ERROR", "FATAL"].contains(&lambda_level(warnings[0])),
            "{}",
            warnings[0]
        );
        for safe in METRICS_SAFE_LEVELS {
            assert!(
                warnings[0].contains(safe),
                "it names {safe}: {}",
                warnings[0]
            );
        }
    }
}

#[test]
fn lambdas_log_filter_rule_follows_its_documentation() {
    let ts = "2024-11-02T16:51:31.587199Z";
    let line = |level: &str, timestamp: &str| {
        serde_json::json!({"level": level, "msg": "m", "timestamp": timestamp}).to_string()
    };
    // AWS's own example: a DEBUG line.
    assert_eq!(lambda_level(&line("debug", ts)), "DEBUG");
    assert_eq!(lambda_level(&line("ERROR", ts)), "ERROR");
    // A missing or invalid level, or timestamp, makes it INFO.
    assert_eq!(lambda_level(&line("loud", ts)), "INFO");
    assert_eq!(lambda_level(&line("ERROR", "yesterday")), "INFO");
    assert_eq!(lambda_level(&line("ERROR", "2024-11-02 16:51:31")), "INFO");
    assert_eq!(lambda_level(r#"{"level":"ERROR"}"#), "INFO");
    assert_eq!(
        lambda_level(r#"{"_aws":{},"MinSecondsUntilExpiry":1}"#),
        "INFO"
    );
    assert_eq!(lambda_level("plain text"), "INFO");
    let output = [line("DEBUG", ts), line("WARN", ts), "{}".to_owned()].join("\n");
    assert_eq!(lambda_keeps(&output, "TRACE").len(), 3);
    assert_eq!(lambda_keeps(&output, "INFO").len(), 2);
    assert_eq!(lambda_keeps(&output, "WARN").len(), 1);
    assert!(lambda_keeps(&output, "FATAL").is_empty());
}

#[tokio::test]
async fn values_taken_from_input_are_capped_wherever_they_are_echoed() {
    // A hostile or broken event must not become a megabyte error answer or log line.
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    let (logs, _guard) = CapturedLogs::start();
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .per_secret_metrics(true)
            .build()
            .expect("a valid test configuration"),
    );
    let huge = "a".repeat(1 << 20);
    // The longest id Secrets Manager takes: accepted, looked up (not found), and shown capped.
    let longest = "b".repeat(2048);
    let many_keys: serde_json::Map<String, serde_json::Value> = (0..100_000)
        .map(|i| (format!("key-{i:06}"), json!(1)))
        .collect();
    let events = [
        step_event("createSecret", &huge, &token),
        step_event("createSecret", &format!("arn:{huge}"), &token),
        step_event("createSecret", &world.token_id, &huge),
        step_event(&huge, &world.token_id, &token),
        json!({"action": "refresh", "secret_ids": [huge]}),
        json!({"action": "refresh", "secret_ids": huge}),
        json!({"action": "refresh", huge.clone(): true}),
        json!({"action": huge}),
        serde_json::Value::Object(many_keys),
        step_event("createSecret", &longest, &token),
        json!({"action": "refresh", "secret_ids": [longest]}),
    ];
    for event in &events {
        let error = broker
            .handle(event, deadline(30))
            .await
            .expect_err("each of these is refused")
            .to_string();
        assert!(
            error.len() <= 2048,
            "an error of {} bytes: {}…",
            error.len(),
            &error[..200]
        );
    }
    let text = logs.text();
    // The capture takes everything at TRACE, the SDK's own long lines included: what matters
    // is that no line holds more of an input value than the cap.
    let too_long = [
        "a".repeat(iadvize_token_broker::error::ECHO_MAX_BYTES + 1),
        "b".repeat(iadvize_token_broker::error::ECHO_MAX_BYTES + 1),
        "key-099999".to_owned(),
    ];
    for line in text.lines() {
        for value in &too_long {
            assert!(
                !line.contains(value.as_str()),
                "a log line of {} bytes echoes an input value whole: {}",
                line.len(),
                line.replace(value.as_str(), "<VALUE>")
            );
        }
    }
    assert!(
        text.contains("…(2048 bytes)"),
        "the capture works, and shows the longest id capped"
    );
    for line in world.metrics.lines() {
        assert!(line.len() <= 4096, "a metric line of {} bytes", line.len());
    }
    assert_eq!(world.logins(), 1, "nothing was done for any of them");
}
