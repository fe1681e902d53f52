//! Secrets never leak: the captured logs (and error `Debug` output) of a full rotation and of
//! each failure contain no access token, password, username or RotationToken.

mod support;

use iadvize_standin::Fault;
use serde_json::json;
use support::*;

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
    let mut env = binary_env(&world);
    env.extend(
        [
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let lambda = iadvize_standin::LambdaHarness::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_iadvize-token-broker")),
        &env,
    )
    .await
    .expect("the harness starts the binary");

    let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
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
