//! The Lambda Invoke API stand-in, driven by the real `aws-sdk-lambda` client, and the chain
//! of asynchronous self-invocations it hands to the Runtime API harness.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType as SdkInvocationType;
use serde_json::{Value, json};
use standins::lambda_api::{InvocationType, InvokeFault};
use standins::{LambdaApi, LambdaHarness};

/// A Lambda client for the stand-in, as a function builds one; short retry back-offs.
fn client(api: &LambdaApi, retries: bool, timeout: Option<Duration>) -> Client {
    let retry = if retries {
        RetryConfig::standard().with_initial_backoff(Duration::from_millis(10))
    } else {
        RetryConfig::disabled()
    };
    let mut timeouts = TimeoutConfig::builder();
    if let Some(timeout) = timeout {
        timeouts = timeouts.operation_timeout(timeout);
    }
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(api.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(retry)
        .timeout_config(timeouts.build())
        .build();
    Client::from_conf(config)
}

async fn invoke_event(
    client: &Client,
    function_name: &str,
    payload: &Value,
) -> Result<i32, SdkError<aws_sdk_lambda::operation::invoke::InvokeError>> {
    client
        .invoke()
        .function_name(function_name)
        .invocation_type(SdkInvocationType::Event)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map(|out| out.status_code())
}

fn echo_function() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_echo-function"))
}

async fn echo_harness(api: &LambdaApi) -> LambdaHarness {
    let env = [
        ("AWS_LAMBDA_FUNCTION_NAME", "broker".to_owned()),
        ("AWS_ENDPOINT_URL_LAMBDA", api.url()),
    ]
    .map(|(key, value)| (key.to_owned(), value));
    LambdaHarness::start(echo_function(), &env)
        .await
        .expect("start the harness")
        .with_timeout(Duration::from_secs(20))
}

#[tokio::test]
async fn asynchronous_invocations_are_accepted_recorded_and_queued() {
    let api = LambdaApi::start().await.expect("start the stand-in");
    api.add_function("broker");
    let lambda = client(&api, false, None);
    let first = json!({"action": "refresh", "follow_up": 1});
    let second =
        json!({"action": "refresh", "follow_up": 2, "paused_until": "2026-11-30T10:00:00Z"});

    assert_eq!(
        invoke_event(&lambda, "broker", &first)
            .await
            .expect("invoke"),
        202
    );
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:broker:live";
    assert_eq!(
        invoke_event(&lambda, arn, &second).await.expect("invoke"),
        202
    );
    let dry_run = lambda
        .invoke()
        .function_name("broker")
        .invocation_type(SdkInvocationType::DryRun)
        .send()
        .await
        .expect("dry run");
    assert_eq!(dry_run.status_code(), 204);

    assert_eq!(api.events_of("broker"), vec![first.clone(), second.clone()]);
    assert!(api.events_of("other").is_empty());
    let recorded = api.invocations();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[1].function_name, "broker");
    assert_eq!(recorded[1].requested_name, arn);
    assert_eq!(recorded[1].qualifier.as_deref(), Some("live"));
    assert_eq!(recorded[2].invocation_type, InvocationType::DryRun);
    assert_eq!(recorded[2].payload, json!({}));

    // The queue holds the two events, in order; the dry run is not queued.
    assert_eq!(api.pending_events(), 2);
    let taken = api
        .next_event(Duration::from_secs(1))
        .await
        .expect("an event");
    assert_eq!(
        (taken.invocation_type, taken.payload),
        (InvocationType::Event, first)
    );
    let taken = api
        .next_event(Duration::from_secs(1))
        .await
        .expect("an event");
    assert_eq!(taken.payload, second);
    assert!(api.next_event(Duration::from_millis(100)).await.is_none());
    assert_eq!(api.requests(), 3);
}

#[tokio::test]
async fn a_waiting_taker_gets_an_event_invoked_meanwhile() {
    let api = Arc::new(LambdaApi::start().await.expect("start the stand-in"));
    api.add_function("broker");
    let taker = {
        let api = api.clone();
        tokio::spawn(async move { api.next_event(Duration::from_secs(10)).await })
    };
    tokio::task::yield_now().await;
    let lambda = client(&api, false, None);
    invoke_event(&lambda, "broker", &json!({"n": 1}))
        .await
        .expect("invoke");
    let taken = taker.await.expect("the taker").expect("an event");
    assert_eq!(taken.payload, json!({"n": 1}));
}

#[tokio::test]
async fn errors_come_back_as_lambda_sends_them() {
    let api = LambdaApi::start().await.expect("start the stand-in");
    api.add_function("broker");
    let lambda = client(&api, false, None);

    let missing = invoke_event(&lambda, "no-such-function", &json!({}))
        .await
        .expect_err("an unknown function");
    let missing = missing.into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");

    let not_json = lambda
        .invoke()
        .function_name("broker")
        .invocation_type(SdkInvocationType::Event)
        .payload(Blob::new("{not json"))
        .send()
        .await
        .expect_err("a payload that is not JSON")
        .into_service_error();
    assert!(
        not_json.is_invalid_request_content_exception(),
        "{not_json:?}"
    );

    api.push_faults(InvokeFault::TooManyRequests, 1);
    api.push_faults(InvokeFault::ServiceError, 1);
    let throttled = invoke_event(&lambda, "broker", &json!({}))
        .await
        .expect_err("throttled")
        .into_service_error();
    assert!(throttled.is_too_many_requests_exception(), "{throttled:?}");
    let failed = invoke_event(&lambda, "broker", &json!({}))
        .await
        .expect_err("a service error")
        .into_service_error();
    assert!(failed.is_service_exception(), "{failed:?}");
    assert!(api.invocations().is_empty(), "no failed call is recorded");
    assert_eq!(api.requests(), 4);

    // The SDK's standard retries get through a throttled call (it is a throttling error).
    api.push_faults(InvokeFault::TooManyRequests, 1);
    let retrying = client(&api, true, None);
    assert_eq!(
        invoke_event(&retrying, "broker", &json!({"n": 1}))
            .await
            .expect("retried"),
        202
    );
    assert_eq!(api.requests(), 6);
    assert_eq!(api.events_of("broker"), vec![json!({"n": 1})]);
}

#[tokio::test]
async fn a_held_invoke_is_ended_by_the_callers_time_out() {
    let api = LambdaApi::start().await.expect("start the stand-in");
    api.add_function("broker");
    api.push_faults(InvokeFault::Hold, 1);
    let lambda = client(&api, false, Some(Duration::from_millis(300)));

    let held = invoke_event(&lambda, "broker", &json!({}))
        .await
        .expect_err("no answer");
    assert!(matches!(held, SdkError::TimeoutError(_)), "{held:?}");
    assert!(api.invocations().is_empty());
    // The next call is answered normally.
    assert_eq!(
        invoke_event(&lambda, "broker", &json!({}))
            .await
            .expect("invoke"),
        202
    );
    api.shutdown().await;
}

#[tokio::test]
async fn a_chain_of_self_invocations_runs_the_real_binary_one_at_a_time() {
    let api = LambdaApi::start().await.expect("start the stand-in");
    api.add_function("broker");
    let harness = echo_harness(&api).await;

    // The first link: what a tick asking for a follow-up sends.
    let lambda = client(&api, false, None);
    invoke_event(&lambda, "broker", &json!({"chain": 3}))
        .await
        .expect("invoke");

    let chain = api.run_chain(&harness, Duration::from_secs(2), 10).await;
    let links: Vec<Value> = chain.iter().map(|d| d.invocation.payload.clone()).collect();
    assert_eq!(
        links,
        vec![
            json!({"chain": 3}),
            json!({"chain": 2}),
            json!({"chain": 1}),
            json!({"chain": 0})
        ]
    );
    for (delivery, invoked) in chain
        .iter()
        .zip([json!(202), json!(202), json!(202), Value::Null])
    {
        let answer = delivery.result.as_ref().expect("the function answered");
        assert_eq!(answer["echo"], delivery.invocation.payload);
        assert_eq!(answer["invoked"], invoked, "{answer}");
    }
    assert_eq!(api.events_of("broker").len(), 4);
    assert_eq!(api.pending_events(), 0);

    // A bound on the chain leaves the rest queued.
    invoke_event(&lambda, "broker", &json!({"chain": 5}))
        .await
        .expect("invoke");
    let bounded = api.run_chain(&harness, Duration::from_secs(2), 2).await;
    assert_eq!(bounded.len(), 2);
    assert_eq!(api.pending_events(), 1);
    harness.shutdown().await;
}

#[tokio::test]
async fn synchronous_invocations_run_on_an_attached_harness() {
    let api = LambdaApi::start().await.expect("start the stand-in");
    let harness = Arc::new(echo_harness(&api).await);
    api.attach("broker", harness.clone());
    api.add_function("detached");
    let lambda = client(&api, false, None);

    let answered = lambda
        .invoke()
        .function_name("broker")
        .payload(Blob::new(json!({"n": 7}).to_string()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(answered.status_code(), 200);
    assert_eq!(answered.function_error(), None);
    assert_eq!(answered.executed_version(), Some("$LATEST"));
    let payload: Value =
        serde_json::from_slice(answered.payload().expect("a payload").as_ref()).expect("JSON");
    assert_eq!(payload["echo"], json!({"n": 7}));

    let failed = lambda
        .invoke()
        .function_name("broker")
        .payload(Blob::new(
            json!({"fail": true, "message": "nope"}).to_string(),
        ))
        .send()
        .await
        .expect("a function error is an answer");
    assert_eq!(failed.function_error(), Some("Unhandled"));
    let payload: Value =
        serde_json::from_slice(failed.payload().expect("a payload").as_ref()).expect("JSON");
    assert_eq!(
        payload,
        json!({"errorType": "EchoError", "errorMessage": "nope"})
    );

    let detached = lambda
        .invoke()
        .function_name("detached")
        .send()
        .await
        .expect_err("nothing runs it")
        .into_service_error();
    assert!(detached.is_service_exception(), "{detached:?}");
    assert_eq!(
        api.pending_events(),
        0,
        "synchronous invocations are not queued"
    );
}
