//! The built Lambda binary behind a local Lambda Runtime API, answering the fixture events
//! of `tests/fixtures/` (the same files `cargo lambda invoke --data-file` takes).

use crate::support::*;
use serde_json::{Value, json};
use standins::{InvokeError, LambdaHarness};

/// A rotation-step fixture aimed at this world's secret and version.
fn step_fixture(step: &str, world: &World, token: &str) -> Value {
    let mut event = fixture(&format!("rotation-{step}.json"));
    event["SecretId"] = Value::String(world.token_id.clone());
    event["ClientRequestToken"] = Value::String(token.to_owned());
    event
}

async fn start(world: &World, extra: &[(&str, &str)]) -> LambdaHarness {
    start_broker(&with_env(binary_env(world), extra)).await
}

#[tokio::test]
async fn the_binary_answers_fixture_events_behind_the_runtime_api() {
    let world = World::new().await;
    world.put_current("placeholder").await;
    let lambda = start(&world, &[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).await;

    let first = lambda
        .invoke(&fixture("scheduled-event.json"))
        .await
        .unwrap();
    assert_eq!(first["results"][0]["outcome"], "refreshed", "{first}");
    let second = lambda
        .invoke(&fixture("scheduled-event.json"))
        .await
        .unwrap();
    assert_eq!(second["results"][0]["outcome"], "fresh", "{second}");
    assert_eq!(world.logins(), 1, "the second tick did not log in");

    let refresh = lambda
        .invoke(&fixture("operator-refresh.json"))
        .await
        .unwrap();
    assert_eq!(refresh["results"][0]["outcome"], "fresh");

    let status = lambda
        .invoke(&fixture("operator-status.json"))
        .await
        .unwrap();
    assert_eq!(status["secrets"][0]["token"], "valid", "{status}");

    // A Secrets-Manager-driven rotation through the four step fixtures.
    let token = world.start_sm_rotation().await;
    for step in STEPS {
        let answer = lambda.invoke(&step_fixture(step, &world, &token)).await;
        assert!(answer.is_ok(), "{step}: {answer:?}");
    }
    assert_eq!(world.stages().await[&token], ["AWSCURRENT"]);
    assert_eq!(world.logins(), 2);

    let forced = lambda
        .invoke(&fixture("operator-refresh-force.json"))
        .await
        .unwrap();
    assert_eq!(forced["results"][0]["outcome"], "refreshed");
    let current = assert_valid_current(&world).await;

    // A queue message that is not a rejection report changes nothing and the invocation
    // succeeds (SQS must not retry it): the binary counts it as ignored.
    let ignored = lambda
        .invoke(&fixture("invalid-sqs-event.json"))
        .await
        .expect("an SQS invocation always succeeds");
    assert_eq!(ignored["ignored"], 1, "{ignored}");
    assert_eq!(ignored["results"], json!([]), "{ignored}");
    assert_eq!(
        assert_valid_current(&world).await["access_token"],
        current["access_token"],
        "nothing changed"
    );

    let logs = lambda.finish().await;
    // With AWS_LAMBDA_LOG_FORMAT=JSON every line is a JSON object: log records and EMF metrics.
    let mut metric_lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if doc.get("_aws").is_some() {
            metric_lines += 1;
        }
    }
    assert!(metric_lines >= 4, "EMF metrics on stdout: {metric_lines}");
    assert_no_secrets(
        &logs,
        &[
            current["access_token"].as_str().unwrap(),
            &world.password,
            &world.username,
            "c2VjcmV0LXJvdGF0aW9uLXRva2Vu",
        ],
    );
}

#[tokio::test]
async fn a_bad_configuration_fails_the_cold_start_naming_the_variable() {
    let world = World::new().await;
    let lambda = start(&world, &[("IADVIZE_REFRESH_BEFORE_EXPIRY", "soon")]).await;
    // The process exits before serving: Lambda reports Runtime.ExitError with the log line.
    match lambda.invoke(&fixture("scheduled-event.json")).await {
        Err(InvokeError::Harness(message)) => assert!(message.contains("exited"), "{message}"),
        other => panic!("expected the process to exit, got {other:?}"),
    }
    let logs = lambda.finish().await;
    assert!(
        logs.contains("configuration: IADVIZE_REFRESH_BEFORE_EXPIRY: expected a duration"),
        "{logs}"
    );
    assert!(world.current().await.is_none(), "nothing was written");
    assert_eq!(world.logins(), 0);
}

#[tokio::test]
async fn a_tick_with_no_configured_secret_fails_clearly() {
    let world = World::new().await;
    let lambda = start(&world, &[("IADVIZE_TOKEN_SECRET_IDS", "")]).await;
    match lambda.invoke(&fixture("scheduled-event.json")).await {
        Err(InvokeError::Function {
            error_type,
            error_message,
        }) => {
            assert_eq!(error_type, "ConfigError");
            assert!(
                error_message.contains("IADVIZE_TOKEN_SECRET_IDS"),
                "{error_message}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn native_rotation_turned_on_before_the_first_tick_works_through_the_binary() {
    // The first deploy with native rotation on: the token secret has no value yet. The
    // templates' RotateImmediately=false configuration check (testSecret alone, on an empty
    // AWSPENDING version) passes; Secrets Manager then removes AWSPENDING; the first scheduled
    // rotation fills the secret.
    let world = World::new().await;
    let lambda = start(&world, &[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).await;
    let check = standins::moto::start_rotation_with(&world.sm, &world.token_id, false)
        .await
        .unwrap();
    let answer = lambda
        .invoke(&step_fixture("testSecret", &world, &check))
        .await;
    assert!(answer.is_ok(), "the configuration check: {answer:?}");
    world
        .sm
        .update_secret_version_stage()
        .secret_id(&world.token_id)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&check)
        .send()
        .await
        .unwrap();
    assert!(world.current().await.is_none());
    assert_eq!(world.logins(), 0);

    let token = world.start_sm_rotation().await;
    for step in STEPS {
        let answer = lambda.invoke(&step_fixture(step, &world, &token)).await;
        assert!(answer.is_ok(), "{step}: {answer:?}");
    }
    assert_valid_current(&world).await;
    assert_eq!(world.stages().await[&token], ["AWSCURRENT"]);
    assert_eq!(world.logins(), 1);
    lambda.shutdown().await;
}
