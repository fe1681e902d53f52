//! The Secrets Manager fault proxy in front of moto's server (`MOTO_ENDPOINT`, started by
//! `scripts/with-moto.sh`), driven by the real AWS SDK.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use standins::sm_proxy::{Call, Fault, Hold, KillPoint, Outcome, SmProxy, Storm};

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT is not set: run with scripts/with-moto.sh")
}

/// A client of `endpoint` with the SDK's retries (short backoff, to keep the tests quick), or
/// none, so a test sees exactly what the proxy answered.
fn client(endpoint: &str, retries: bool) -> Client {
    let retry = if retries {
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(5))
    } else {
        RetryConfig::disabled()
    };
    standins::moto::client_with(endpoint, standins::moto::REGION, Some(retry))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn start() -> SmProxy {
    SmProxy::start(&moto()).await.expect("the proxy starts")
}

async fn value_on_moto(secret_id: &str) -> Option<String> {
    client(&moto(), false)
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .ok()
        .and_then(|out| out.secret_string().map(str::to_owned))
}

#[tokio::test]
async fn calls_pass_through_unchanged_and_are_counted_per_operation() {
    let proxy = start().await;
    let sm = client(&proxy.url(), false);
    let name = unique("plain");
    sm.create_secret()
        .name(&name)
        .secret_string("v1")
        .send()
        .await
        .expect("create through the proxy");
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("v2")
        .send()
        .await
        .expect("put through the proxy");
    let read = sm
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("read through the proxy");
    assert_eq!(read.secret_string(), Some("v2"));
    // A service error passes through as it is.
    let missing = sm
        .describe_secret()
        .secret_id(unique("missing"))
        .send()
        .await
        .expect_err("no such secret");
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));

    assert_eq!(proxy.calls("CreateSecret"), 1);
    assert_eq!(proxy.calls("PutSecretValue"), 1);
    assert_eq!(proxy.calls("GetSecretValue"), 1);
    assert_eq!(proxy.calls("DescribeSecret"), 1);
    assert_eq!(proxy.total_calls(), 4);
    assert_eq!(
        proxy.operations(),
        [
            "CreateSecret",
            "PutSecretValue",
            "GetSecretValue",
            "DescribeSecret"
        ]
    );
    let log = proxy.log();
    assert_eq!(log[0].outcome, Outcome::Forwarded { status: 200 });
    // moto answers a missing secret with 404 (AWS with 400); either way it is passed on.
    assert!(
        matches!(log[3].outcome, Outcome::Forwarded { status } if status >= 400),
        "{:?}",
        log[3]
    );
    assert_eq!(proxy.stats().forwarded, 4);
    assert_eq!(proxy.stats().failed(), 0);
}

#[tokio::test]
async fn an_injected_throttling_error_is_one_the_sdk_retries() {
    let proxy = start().await;
    let name = unique("throttled");
    client(&moto(), false)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect("create on moto");

    proxy.inject(Call::nth_of("GetSecretValue", 1), Fault::Throttling);
    let error = client(&proxy.url(), false)
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect_err("the first read is throttled");
    assert_eq!(error.code(), Some("ThrottlingException"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));

    proxy.inject(Call::nth_of("GetSecretValue", 2), Fault::Throttling);
    let read = client(&proxy.url(), true)
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("the SDK retries a throttled call");
    assert_eq!(read.secret_string(), Some("value"));
    assert_eq!(proxy.calls("GetSecretValue"), 3, "one retry");
    assert_eq!(proxy.stats().throttled, 2);
}

#[tokio::test]
async fn a_standing_error_lets_its_passes_through_then_fails_its_calls_and_counts_them() {
    let proxy = start().await;
    let name = unique("standing");
    client(&moto(), false)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect("create on moto");
    let sm = proxy.client_without_retries();
    let read = || sm.get_secret_value().secret_id(&name).send();

    proxy.fail_after("GetSecretValue", 1, Fault::error("AccessDeniedException"));
    read().await.expect("the first read passes");
    for _ in 0..2 {
        let error = read().await.expect_err("the later reads fail");
        assert_eq!(error.code(), Some("AccessDeniedException"));
        assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    }
    assert_eq!(proxy.reads(), 3);
    assert_eq!(proxy.failed("GetSecretValue"), 2);
    sm.describe_secret()
        .secret_id(&name)
        .send()
        .await
        .expect("other operations pass");
    proxy.pass("GetSecretValue");
    read().await.expect("reads pass again");

    proxy.fail_times("GetSecretValue", 1, Fault::error("InternalServiceError"));
    let error = read().await.expect_err("the next read fails");
    assert_eq!(error.code(), Some("InternalServiceError"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(500));
    read().await.expect("only once");
    assert_eq!(proxy.reads(), 6);
    assert_eq!(proxy.failed("GetSecretValue"), 3);
    assert_eq!(proxy.failed("DescribeSecret"), 0);
    assert_eq!(proxy.stats().errors, 3);
    assert_eq!(proxy.stats().failed(), 3);
}

#[tokio::test]
async fn an_injected_internal_error_is_a_500_the_sdk_retries() {
    let proxy = start().await;
    let name = unique("five-hundred");
    proxy.inject(Call::Nth(1), Fault::InternalError);
    let error = client(&proxy.url(), false)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect_err("answered 500");
    assert_eq!(error.code(), Some("InternalServiceError"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(value_on_moto(&name).await, None, "nothing was forwarded");

    proxy.inject(Call::Nth(2), Fault::InternalError);
    client(&proxy.url(), true)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect("the SDK retries a 500");
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("value"));
    assert_eq!(proxy.calls("CreateSecret"), 3);
}

#[tokio::test]
async fn a_connection_reset_after_the_call_was_applied_leaves_the_write_done() {
    let proxy = start().await;
    let name = unique("reset-after");
    proxy.fail_times("CreateSecret", 1, Fault::ResetAfterApplied);
    let error = client(&proxy.url(), false)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect_err("the connection is reset");
    assert!(error.as_service_error().is_none(), "a transport error");
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("value"));
    assert_eq!(proxy.failed("CreateSecret"), 1);
    assert_eq!(proxy.log()[0].outcome, Outcome::ResetAfterApplied);
    let stats = proxy.stats();
    assert_eq!((stats.resets, stats.forwarded), (1, 1));
}

#[tokio::test]
async fn a_reset_connection_never_reaches_secrets_manager() {
    let proxy = start().await;
    let name = unique("reset");
    proxy.inject(Call::nth_of("CreateSecret", 1), Fault::ConnectionReset);
    let error = client(&proxy.url(), false)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect_err("the connection is reset");
    assert!(error.as_service_error().is_none(), "a transport error");
    assert_eq!(value_on_moto(&name).await, None);

    proxy.inject(Call::nth_of("CreateSecret", 2), Fault::ConnectionReset);
    client(&proxy.url(), true)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect("the SDK retries after a reset");
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("value"));
    assert_eq!(proxy.stats().resets, 2);
}

#[tokio::test]
async fn latency_holds_a_call_before_it_is_forwarded() {
    let proxy = start().await;
    let delay = Duration::from_millis(300);
    proxy.inject(Call::nth_of("ListSecrets", 1), Fault::Latency(delay));
    let sm = client(&proxy.url(), false);
    let started = Instant::now();
    sm.list_secrets()
        .send()
        .await
        .expect("delayed, then answered");
    assert!(started.elapsed() >= delay);
    let log = proxy.log();
    assert_eq!(log[0].delay, delay);
    assert_eq!(log[0].outcome, Outcome::Forwarded { status: 200 });
    sm.list_secrets().send().await.expect("the next call");
    assert_eq!(proxy.log()[1].delay, Duration::ZERO, "latency once");
}

#[tokio::test]
async fn a_call_held_before_forwarding_gets_no_answer_and_is_never_applied() {
    let proxy = start().await;
    let name = unique("hold-before");
    let sm = client(&proxy.url(), false);
    sm.create_secret()
        .name(&name)
        .secret_string("old")
        .send()
        .await
        .expect("create");
    proxy.hold("PutSecretValue", Hold::BeforeForwarding);
    let wait = Duration::from_millis(300);
    for _ in 0..2 {
        let put = sm.put_secret_value().secret_id(&name).secret_string("new");
        assert!(
            tokio::time::timeout(wait, put.send()).await.is_err(),
            "no answer: the caller gives up"
        );
    }
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("old"));
    // The proxy sees the callers give up (their connections close).
    let limit = Instant::now() + Duration::from_secs(5);
    while proxy.stats().held < 2 && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = proxy.log();
    for record in &log[1..] {
        assert!(
            // The proxy's clock starts once it has read the request: a little after the caller's.
            matches!(record.outcome, Outcome::Held { point: Hold::BeforeForwarding, held } if held + Duration::from_millis(100) >= wait),
            "{record:?}"
        );
    }
    assert_eq!(proxy.stats().held, 2);
    assert_eq!(proxy.stats().forwarded, 1, "only the create");
    assert_eq!(proxy.holding(), 0);
    assert_eq!(proxy.held(), 2);

    proxy.calm();
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("new")
        .send()
        .await
        .expect("calm again");
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("new"));
}

#[tokio::test]
async fn a_call_held_after_forwarding_is_applied_and_its_answer_withheld() {
    let proxy = start().await;
    let name = unique("hold-after");
    let sm = client(&proxy.url(), false);
    sm.create_secret()
        .name(&name)
        .secret_string("old")
        .send()
        .await
        .expect("create");
    proxy.inject(
        Call::nth_of("PutSecretValue", 1),
        Fault::Hold(Hold::AfterApplied),
    );
    let put = sm.put_secret_value().secret_id(&name).secret_string("new");
    let answer = tokio::time::timeout(Duration::from_millis(500), put.send()).await;
    assert!(answer.is_err(), "no answer: the caller gives up");
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("new"));
    let limit = Instant::now() + Duration::from_secs(5);
    while proxy.stats().held < 1 && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.stats().held, 1);
    assert_eq!(proxy.stats().forwarded, 2, "the create and the held put");
    // Once only.
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("newer")
        .send()
        .await
        .expect("the next call is answered");
}

/// A process to kill; the SDK calls come from this test, on its behalf.
fn victim() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep")
}

fn killed_by_sigkill(child: &mut std::process::Child) -> bool {
    child.wait().expect("wait").signal() == Some(9)
}

#[tokio::test]
async fn a_kill_before_forwarding_leaves_the_call_unapplied() {
    let proxy = start().await;
    let name = unique("kill-before");
    let sm = client(&proxy.url(), false);
    sm.create_secret()
        .name(&name)
        .secret_string("old")
        .send()
        .await
        .expect("create");
    let mut child = victim();
    proxy.kill(
        child.id(),
        Call::nth_of("PutSecretValue", 1),
        KillPoint::BeforeForwarding,
    );
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("new")
        .send()
        .await
        .expect_err("the caller gets no answer");
    assert!(killed_by_sigkill(&mut child));
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("old"));
    let log = proxy.log();
    assert_eq!(
        log[1].outcome,
        Outcome::Killed {
            point: KillPoint::BeforeForwarding,
            pid: child.id()
        }
    );
    assert_eq!(proxy.stats().forwarded, 1, "only the create");
}

#[tokio::test]
async fn a_kill_after_forwarding_applies_the_call_and_loses_the_answer() {
    let proxy = start().await;
    let name = unique("kill-after");
    let sm = client(&proxy.url(), false);
    sm.create_secret()
        .name(&name)
        .secret_string("old")
        .send()
        .await
        .expect("create");
    let mut child = victim();
    proxy.kill(
        child.id(),
        Call::nth_of("PutSecretValue", 1),
        KillPoint::AfterApplied,
    );
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("new")
        .send()
        .await
        .expect_err("the caller gets no answer");
    assert!(killed_by_sigkill(&mut child));
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("new"));
    assert_eq!(proxy.stats().kills, 1);
    assert_eq!(proxy.stats().forwarded, 2);
}

/// What a caller without retries sees for `calls` reads through a proxy in `storm`.
async fn weather(storm: Storm, calls: usize) -> (Vec<String>, standins::sm_proxy::ProxyStats) {
    let proxy = start().await;
    let name = unique("storm");
    client(&moto(), false)
        .create_secret()
        .name(&name)
        .secret_string("value")
        .send()
        .await
        .expect("create on moto");
    proxy.storm(storm);
    let sm = client(&proxy.url(), false);
    let mut seen = Vec::new();
    for _ in 0..calls {
        let answer = sm.get_secret_value().secret_id(&name).send().await;
        seen.push(match answer {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().unwrap_or("transport").to_owned(),
        });
    }
    (seen, proxy.stats())
}

#[tokio::test]
async fn a_seeded_storm_fails_the_configured_share_of_calls_reproducibly() {
    let storm = || Storm::new(42).throttling(0.25).internal_errors(0.10);
    let (first, stats) = weather(storm(), 80).await;
    let count = |code: &str| first.iter().filter(|c| *c == code).count() as u64;
    assert_eq!(count("ThrottlingException"), stats.throttled);
    assert_eq!(count("InternalServiceError"), stats.internal_errors);
    assert_eq!(count("ok"), stats.forwarded);
    // 20 and 8 expected out of 80; the seed fixes the figures, the bounds only say "about".
    assert!((10..=30).contains(&stats.throttled), "{stats:?}");
    assert!((2..=16).contains(&stats.internal_errors), "{stats:?}");

    let (again, _) = weather(storm(), 80).await;
    assert_eq!(first, again, "the same seed gives the same storm");
}

#[tokio::test]
async fn a_storm_can_be_limited_to_some_operations_and_calmed() {
    let proxy = start().await;
    let sm = client(&proxy.url(), false);
    proxy.storm(Storm::new(1).throttling(1.0).only(&["PutSecretValue"]));
    let name = unique("only");
    sm.create_secret()
        .name(&name)
        .secret_string("v1")
        .send()
        .await
        .expect("CreateSecret is spared");
    let error = sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string("v2")
        .send()
        .await
        .expect_err("PutSecretValue is throttled");
    assert_eq!(error.code(), Some("ThrottlingException"));
    proxy.calm();
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("v2")
        .send()
        .await
        .expect("calm again");
    assert_eq!(value_on_moto(&name).await.as_deref(), Some("v2"));
}
