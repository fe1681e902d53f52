//! `TokenSource`, the Rust consumer's reader: one Secrets Manager read per token lifetime,
//! shared by concurrent callers, re-read on request after a 401, clear errors, no logins.
//!
//! Reads are counted twice: by the source's own counter and by a proxy in front of moto.
//! Failed reads come from an endpoint that makes `GetSecretValue` fail on demand.
//!
//! The source is used as a Rust service would, from the small consumer crate.
//!
//! Rejection reports go to a FIFO queue on moto's SQS; the broker's side is played by the
//! test (it takes the report off the queue and publishes a new token).

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use iadvize_token_consumer::{AccessToken, TokenError, TokenRecord, TokenSource};
use standins::sqs_poller;

/// What a consumer does with the token: one GraphQL request to the world's stand-in.
async fn graphql_status(world: &World, token: &AccessToken) -> u16 {
    graphql_status_at(&world.standin.url(), token).await
}

#[tokio::test]
async fn a_thousand_calls_within_one_token_lifetime_read_the_secret_once() {
    let world = World::new().await;
    world.put_record(20).await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let source = TokenSource::new(proxy.client(), &world.token_id);

    let first = source.token().await.unwrap();
    for _ in 0..999 {
        let token = source.token().await.unwrap();
        assert_eq!(token.expose(), first.expose());
    }

    println!(
        "1,000 sequential token() calls: {} read(s) counted by the source, {} seen by the proxy",
        source.reads(),
        proxy.reads()
    );
    assert_eq!(source.reads(), 1);
    assert_eq!(proxy.reads(), 1);
    assert_eq!(graphql_status(&world, &first).await, 200);
    assert_eq!(world.logins(), logins, "the consumer never logs in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_on_a_cold_cache_read_the_secret_once() {
    let world = World::new().await;
    world.put_record(20).await;
    let proxy = sm_proxy().await;
    let source = Arc::new(TokenSource::new(proxy.client(), &world.token_id));

    let calls: Vec<_> = (0..100)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    let tokens: Vec<AccessToken> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();

    println!(
        "100 concurrent token() calls on a cold cache: {} read(s) counted by the source, {} seen by the proxy",
        source.reads(),
        proxy.reads()
    );
    assert!(tokens.iter().all(|t| t.expose() == tokens[0].expose()));
    assert_eq!(source.reads(), 1);
    assert_eq!(proxy.reads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_failed_read() {
    let world = World::new().await;
    let proxy = sm_proxy().await;
    let source = Arc::new(TokenSource::new(proxy.client(), &world.token_id));

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    for joined in futures::future::join_all(calls).await {
        assert!(matches!(joined.unwrap(), Err(TokenError::NotFilled { .. })));
    }
    assert_eq!(source.reads(), 1);
    assert_eq!(proxy.reads(), 1);
}

#[tokio::test]
async fn the_secret_is_read_again_once_the_token_is_within_the_margin_of_its_expiry() {
    let world = World::new().await;
    world.put_record(20).await;
    let proxy = sm_proxy().await;
    // 20 h left: a margin of 20 h minus 2 s makes the cached token due in about 2 s.
    let margin = Duration::from_secs(20 * 3600 - 2);
    let source = TokenSource::builder(proxy.client(), &world.token_id)
        .margin(margin)
        .build();

    source.token().await.unwrap();
    source.token().await.unwrap();
    assert_eq!(source.reads(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    source.token().await.unwrap();
    assert_eq!(
        source.reads(),
        2,
        "due for a new read after expires_at - margin"
    );
    assert_eq!(proxy.reads(), 2);
}

#[tokio::test]
async fn a_token_already_inside_the_margin_is_used_and_read_again_only_after_the_recheck_interval()
{
    let world = World::new().await;
    world.put_record(20).await;
    let source = TokenSource::builder(sm_client(), &world.token_id)
        .margin(Duration::from_secs(21 * 3600))
        .recheck_interval(Duration::from_secs(2))
        .build();
    for _ in 0..10 {
        source.token().await.unwrap();
    }
    assert_eq!(
        source.reads(),
        1,
        "the broker is late, but reading on every call would not help"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    source.token().await.unwrap();
    assert_eq!(source.reads(), 2);
}

#[tokio::test]
async fn invalidate_makes_the_next_call_read_the_secret_again_without_logging_in() {
    let world = World::new().await;
    world.put_record(20).await;
    let source = TokenSource::new(sm_client(), &world.token_id);
    let old = source.token().await.unwrap();

    // The broker rotates; iAdvize revokes the old token; the consumer gets a 401.
    world.standin.revoke_all_tokens();
    world.put_record(24).await;
    let logins = world.logins();
    assert_eq!(graphql_status(&world, &old).await, 401);
    source.invalidate();
    let new = source.token().await.unwrap();

    assert_ne!(new.expose(), old.expose());
    assert_eq!(graphql_status(&world, &new).await, 200);
    assert_eq!(source.reads(), 2);
    assert_eq!(world.logins(), logins, "re-reading never logs in");
}

#[tokio::test]
async fn invalidating_an_old_token_keeps_the_newer_cached_one() {
    let world = World::new().await;
    world.put_record(20).await;
    let source = TokenSource::new(sm_client(), &world.token_id);
    let old = source.token().await.unwrap();
    world.put_record(24).await;
    source.invalidate_token(&old);
    let new = source.token().await.unwrap();
    assert_ne!(new.expose(), old.expose());

    // Many requests that used the old token fail late: they must not cause more reads.
    for _ in 0..10 {
        source.invalidate_token(&old);
        assert_eq!(source.token().await.unwrap().expose(), new.expose());
    }
    assert_eq!(source.reads(), 2);
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_error() {
    let name = unique("no-such-token");
    let source = TokenSource::new(sm_client(), &name);
    let error = source.token().await.unwrap_err();
    assert_eq!(
        error,
        TokenError::NotFound {
            secret_id: name.clone()
        }
    );
    let message = error.to_string();
    assert!(
        message.contains(&name) && message.contains("not found"),
        "{message}"
    );
}

#[tokio::test]
async fn a_secret_the_broker_has_not_filled_yet_is_a_clear_error() {
    let world = World::new().await;
    let source = TokenSource::new(sm_client(), &world.token_id);
    let error = source.token().await.unwrap_err();
    assert!(matches!(error, TokenError::NotFilled { .. }), "{error:?}");
    assert!(
        error.to_string().contains("iadvize-token refresh"),
        "{error}"
    );

    world.put_current("{}").await;
    // A new source: the first one answers from its failed read until its backoff ends.
    let source = TokenSource::new(sm_client(), &world.token_id);
    let error = source.token().await.unwrap_err();
    assert!(
        matches!(error, TokenError::NotFilled { .. }),
        "an empty placeholder: {error:?}"
    );
}

#[tokio::test]
async fn a_malformed_secret_is_a_clear_error_that_does_not_echo_the_value() {
    let world = World::new().await;
    world
        .put_current(r#"{"access_token":"leaky-secret-value","token_type":"Bearer"}"#)
        .await;
    let source = TokenSource::new(sm_client(), &world.token_id);
    let error = source.token().await.unwrap_err();
    assert!(matches!(error, TokenError::Malformed { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("issued_at is missing"), "{message}");
    assert_no_secrets(&message, &["leaky-secret-value"]);
    assert_no_secrets(&format!("{error:?}"), &["leaky-secret-value"]);
}

#[tokio::test]
async fn an_expired_token_is_an_error_and_is_not_cached() {
    let world = World::new().await;
    world.put_record(-1).await;
    let source = TokenSource::builder(sm_client(), &world.token_id)
        .retry_backoff(Duration::from_millis(300), Duration::from_millis(300))
        .build();
    let error = source.token().await.unwrap_err();
    assert!(matches!(error, TokenError::Expired { .. }), "{error:?}");
    assert!(
        error.to_string().contains("iadvize-token status"),
        "{error}"
    );

    world.put_record(20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let token = source.token().await.unwrap();
    assert_eq!(graphql_status(&world, &token).await, 200);
    assert_eq!(source.reads(), 2);
}

#[tokio::test]
async fn a_consumer_keeps_working_across_a_secrets_manager_rotation() {
    let world = World::new().await;
    world.put_record(20).await;
    let broker = world.broker();
    let source = TokenSource::new(sm_client(), &world.token_id);
    let before = source.token().await.unwrap();
    assert_eq!(graphql_status(&world, &before).await, 200);

    let version = world.start_sm_rotation().await;
    for step in STEPS {
        broker
            .handle(&step_event(step, &world.token_id, &version), deadline(30))
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
        // During the rotation (AWSPENDING written and tested, not yet current) and after it,
        // a fresh reader gets a working token, and the cached one keeps working.
        let fresh_reader = TokenSource::new(sm_client(), &world.token_id);
        let read_now = fresh_reader.token().await.unwrap();
        assert_eq!(graphql_status(&world, &read_now).await, 200, "after {step}");
        let cached = source.token().await.unwrap();
        assert_eq!(
            cached.expose(),
            before.expose(),
            "the cache holds until expiry"
        );
        assert_eq!(graphql_status(&world, &cached).await, 200, "after {step}");
        if step != "finishSecret" {
            assert_eq!(
                read_now.expose(),
                before.expose(),
                "AWSCURRENT is unchanged until finishSecret"
            );
        } else {
            assert_ne!(
                read_now.expose(),
                before.expose(),
                "finishSecret made the new token current"
            );
        }
    }

    // iAdvize revokes the old token later: the consumer's 401 leads to the new one.
    world.standin.revoke_all_tokens();
    let logins = world.logins();
    assert_eq!(graphql_status(&world, &before).await, 401);
    source.invalidate_token(&before);
    let after = source.token().await.unwrap();
    assert_ne!(after.expose(), before.expose());
    assert_eq!(source.reads(), 2);
    assert_eq!(world.logins(), logins);
    // The stand-in revoked every token, the new one included; the broker's next refresh
    // would replace it. Here it is enough that the consumer picked up the rotated value.
    let current = world.current().await.unwrap();
    assert_eq!(current["access_token"].as_str(), Some(after.expose()));
}

#[tokio::test]
async fn debug_output_of_the_source_and_its_tokens_does_not_show_the_token() {
    let world = World::new().await;
    world.put_record(20).await;
    let source = TokenSource::new(sm_client(), &world.token_id);
    let record = source.record().await.unwrap();
    let token = record.access_token.expose().to_owned();
    let debug = format!("{source:?} {record:?} {:?}", source.token().await.unwrap());
    assert_no_secrets(&debug, &[&token]);
    assert!(debug.contains(&world.token_id), "{debug}");
}

#[tokio::test]
async fn a_failed_re_read_keeps_serving_the_cached_token_until_it_actually_expires() {
    let world = World::new().await;
    let expires_at = world.put_record_expiring_in(4).await.expires_at;
    let sm = sm_proxy().await;
    // The token is inside the 5-minute margin: due for a new read every 200 ms.
    let source = TokenSource::builder(sm.client_without_retries(), &world.token_id)
        .recheck_interval(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(200), Duration::from_millis(800))
        .build();
    let cached = source.token().await.unwrap();

    sm.fail("GetSecretValue", SmFault::error("ThrottlingException"));
    let mut served = 0;
    let error = loop {
        match source.token().await {
            Ok(token) => {
                assert_eq!(token.expose(), cached.expose());
                served += 1;
            }
            Err(error) => break error,
        }
        assert!(served < 1000, "never failed, even after expiry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failed_at = time::OffsetDateTime::now_utc();

    println!(
        "{served} calls served the cached token while {} re-reads failed; then: {error}",
        sm.failed("GetSecretValue")
    );
    assert!(
        failed_at >= expires_at,
        "failed at {failed_at}, before the token expired at {expires_at}"
    );
    assert!(
        matches!(&error, TokenError::SecretsManager { message, .. } if message.contains("ThrottlingException")),
        "{error:?}"
    );
    assert!(served > 50, "{served}");
    assert!(sm.failed("GetSecretValue") >= 2, "the read was retried");
    assert!(
        sm.failed("GetSecretValue") * 5 < served,
        "backoff, not a read per call: {} reads for {served} calls",
        sm.failed("GetSecretValue")
    );
    assert_eq!(graphql_status(&world, &cached).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_keep_the_cached_token_while_one_re_read_fails() {
    let world = World::new().await;
    world.put_record_expiring_in(120).await;
    let sm = sm_proxy().await;
    let source = Arc::new(
        TokenSource::builder(sm.client_without_retries(), &world.token_id)
            .recheck_interval(Duration::ZERO)
            .build(),
    );
    let cached = source.token().await.unwrap();
    sm.fail("GetSecretValue", SmFault::error("ThrottlingException"));

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    for joined in futures::future::join_all(calls).await {
        assert_eq!(joined.unwrap().unwrap().expose(), cached.expose());
    }
    assert_eq!(
        sm.failed("GetSecretValue"),
        1,
        "one read for 50 callers, then a backoff"
    );
    assert_eq!(source.reads(), 2);
}

#[tokio::test]
async fn a_failing_read_without_a_cached_token_is_retried_after_a_backoff_not_on_every_call() {
    let world = World::new().await;
    world.put_record(20).await;
    let sm = sm_proxy().await;
    let source = TokenSource::builder(sm.client_without_retries(), &world.token_id)
        .retry_backoff(Duration::from_millis(500), Duration::from_secs(2))
        .build();
    sm.fail("GetSecretValue", SmFault::error("AccessDeniedException"));

    for _ in 0..20 {
        let error = source.token().await.unwrap_err();
        assert!(
            error.to_string().contains("AccessDeniedException"),
            "the caller sees why: {error}"
        );
    }
    assert_eq!(
        sm.failed("GetSecretValue"),
        1,
        "20 calls within the backoff, one read"
    );

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(source.token().await.is_err());
    assert_eq!(
        sm.failed("GetSecretValue"),
        2,
        "read again once the backoff ran out"
    );

    // Secrets Manager answers again: the next read after the (now doubled) backoff works.
    sm.pass("GetSecretValue");
    assert!(source.token().await.is_err(), "still inside the backoff");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let token = source.token().await.unwrap();
    assert_eq!(graphql_status(&world, &token).await, 200);
    assert_eq!(sm.reads(), 3);
}

#[tokio::test]
async fn after_a_401_the_token_is_read_again_at_once_even_during_a_backoff() {
    let world = World::new().await;
    world.put_record_expiring_in(120).await;
    let sm = sm_proxy().await;
    let source = TokenSource::builder(sm.client_without_retries(), &world.token_id)
        .recheck_interval(Duration::ZERO)
        .retry_backoff(Duration::from_secs(60), Duration::from_secs(60))
        .build();
    let old = source.token().await.unwrap();
    sm.fail("GetSecretValue", SmFault::error("ThrottlingException"));
    assert_eq!(source.token().await.unwrap().expose(), old.expose());
    assert_eq!(sm.failed("GetSecretValue"), 1);

    // The broker rotated; iAdvize refuses the old token.
    sm.pass("GetSecretValue");
    world.put_record(20).await;
    source.invalidate_token(&old);
    let new = source.token().await.unwrap();
    assert_ne!(new.expose(), old.expose());
    assert_eq!(graphql_status(&world, &new).await, 200);
}

/// A source reading through a proxy that holds every `GetSecretValue` once asked to; each
/// call bounded by `bound`.
async fn held_source(world: &World, bound: Duration) -> (TokenSource, SmProxy) {
    let proxy = sm_proxy().await;
    // The client a user built: the SDK's defaults, no time-out of its own.
    let source = TokenSource::builder(proxy.client(), &world.token_id)
        .recheck_interval(Duration::ZERO)
        .call_timeout(bound)
        .build();
    (source, proxy)
}

#[tokio::test]
async fn a_read_that_never_gets_an_answer_serves_the_cached_token_within_the_call_time_out() {
    let world = World::new().await;
    world.put_record_expiring_in(120).await; // inside the margin: every call reads again
    let bound = Duration::from_millis(300);
    let (source, proxy) = held_source(&world, bound).await;
    let cached = source.token().await.unwrap();

    proxy.hold("GetSecretValue", standins::sm_proxy::Hold::BeforeForwarding);
    let started = tokio::time::Instant::now();
    let token = tokio::time::timeout(Duration::from_secs(10), source.token())
        .await
        .expect("the read is bounded")
        .expect("the cached token is served");
    let elapsed = started.elapsed();
    println!("GetSecretValue held, call time-out {bound:?}: the cached token after {elapsed:?}");
    assert_eq!(token.expose(), cached.expose());
    // During the failed read's backoff the cached token is served without waiting again.
    let again = tokio::time::timeout(Duration::from_millis(100), source.token())
        .await
        .expect("no second wait")
        .unwrap();
    assert_eq!(again.expose(), cached.expose());
    assert_eq!(source.reads(), 2);
    assert_eq!(graphql_status(&world, &token).await, 200);
}

#[tokio::test]
async fn a_read_that_never_gets_an_answer_without_a_cached_token_fails_saying_so() {
    let world = World::new().await;
    world.put_record(20).await;
    let bound = Duration::from_millis(300);
    let (source, proxy) = held_source(&world, bound).await;
    proxy.hold("GetSecretValue", standins::sm_proxy::Hold::BeforeForwarding);

    let started = tokio::time::Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(10), source.token())
        .await
        .expect("the read is bounded")
        .unwrap_err();
    let elapsed = started.elapsed();
    println!("GetSecretValue held, call time-out {bound:?}, no cache: failed after {elapsed:?}");
    assert!(
        matches!(&error, TokenError::NoAnswer { operation: "GetSecretValue", waited, .. } if *waited >= bound),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("Secrets Manager did not answer GetSecretValue within"),
        "{error}"
    );
    assert_no_secrets(&error.to_string(), &[&world.password]);
}

#[tokio::test]
async fn a_binary_value_is_reported_as_such_not_as_a_secret_not_filled_yet() {
    let world = World::new().await;
    world.put_record(20).await;
    let record = world.current().await.unwrap().to_string();
    let token = world.current().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .sm
        .put_secret_value()
        .secret_id(&world.token_id)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
            record.clone(),
        ))
        .send()
        .await
        .unwrap();
    let source = TokenSource::new(sm_client(), &world.token_id);

    let err = source.token().await.unwrap_err();

    assert!(matches!(err, TokenError::Malformed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "binary data (SecretBinary, {} bytes) instead of a JSON string",
            record.len()
        )),
        "{text}"
    );
    assert_no_secrets(&format!("{text} {err:?}"), &[&token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_for_look_alike_secret_ids_serve_each_its_own_token() {
    // `team/a` and `team_a` are two secrets (two iAdvize users): a source and its single-flight
    // read belong to one id, and each cache entry records the id it was read for.
    let world = World::new().await;
    let prefix = unique("consumer");
    let mut sources = Vec::new();
    for suffix in ["team/a", "team_a", "team+a", "team=a", "team@a"] {
        let id = format!("{prefix}-{suffix}");
        let token = unique("token");
        let issued = time::OffsetDateTime::now_utc();
        world
            .sm
            .create_secret()
            .name(&id)
            .secret_string(TokenRecord::new(AccessToken::new(&token), issued, 86400).to_json())
            .send()
            .await
            .unwrap();
        sources.push((Arc::new(TokenSource::new(sm_client(), &id)), token));
    }
    let calls: Vec<_> = sources
        .iter()
        .cycle()
        .take(50)
        .map(|(source, token)| {
            let (source, token) = (source.clone(), token.clone());
            tokio::spawn(async move { (source.token().await.unwrap().expose().to_owned(), token) })
        })
        .collect();
    for joined in futures::future::join_all(calls).await {
        let (got, expected) = joined.unwrap();
        assert_eq!(got, expected);
    }
    for (source, _) in &sources {
        assert_eq!(source.reads(), 1, "{}", source.secret_id());
    }
}

// Rejection reports: after a 401, a re-read that finds the very token iAdvize refused is
// reported to the broker's report queue (moto's SQS here), and the source waits for the new
// token. The broker's handling of the report is played by the test: it waits for the report
// on the queue, then publishes a new token.

#[tokio::test]
async fn after_a_401_an_unchanged_token_is_reported_once_and_the_new_one_is_used() {
    let world = World::new().await;
    world.put_record(20).await;
    let (sqs, url) = report_queue().await;
    let source = TokenSource::builder(sm_client(), &world.token_id)
        .report_queue(sqs.clone(), &url)
        .report_wait(Duration::from_millis(100), Duration::from_secs(20))
        .build();
    assert_eq!(source.report_queue_url(), Some(url.as_str()));
    let old = source.token().await.unwrap();

    // iAdvize revokes the published token; the broker does not know yet.
    assert!(world.standin.revoke_token(old.expose()));
    assert_eq!(graphql_status(&world, &old).await, 401);
    let next = world.login_directly().await;
    let logins = world.logins();
    let broker = broker_replaces_on_report(&world, &sqs, &url, record_json(&next));

    source.invalidate_token(&old);
    let new = source.token().await.unwrap();

    assert_eq!(new.expose(), next);
    assert_eq!(graphql_status(&world, &new).await, 200);
    assert_one_report(&broker.await.unwrap(), &world, old.expose()).await;
    assert_eq!(source.reports(), 1);
    assert!(
        source.reads() >= 3,
        "a read, a re-read, then reads until the new token"
    );
    assert_eq!(world.logins(), logins, "the consumer never logs in");
    assert!(
        sqs_poller::take_all(&sqs, &url, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "nothing more was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_callers_refused_at_once_send_one_report_and_all_get_the_new_token() {
    let world = World::new().await;
    world.put_record(20).await;
    let (sqs, url) = report_queue().await;
    let source = Arc::new(
        TokenSource::builder(sm_client(), &world.token_id)
            .report_queue(sqs.clone(), &url)
            .report_wait(Duration::from_millis(100), Duration::from_secs(20))
            .build(),
    );
    let old = source.token().await.unwrap();
    world.standin.revoke_token(old.expose());
    let next = world.login_directly().await;
    let broker = broker_replaces_on_report(&world, &sqs, &url, record_json(&next));
    let api = world.standin.url();
    // Every caller is refused before any reports: "at once", however late a task starts.
    let refused = Arc::new(tokio::sync::Barrier::new(20));

    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (source, api, refused) = (source.clone(), api.clone(), refused.clone());
            tokio::spawn(async move { refused_then_retried(&source, &api, &refused).await })
        })
        .collect();
    for caller in futures::future::join_all(callers).await {
        assert_eq!(caller.unwrap(), 200, "every caller's next call succeeds");
    }
    assert_one_report(&broker.await.unwrap(), &world, old.expose()).await;
    assert_eq!(source.reports(), 1, "one report for twenty refusals");
    assert!(
        sqs_poller::take_all(&sqs, &url, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "nothing more was sent"
    );
}

#[tokio::test]
async fn without_a_report_queue_the_same_token_comes_back_and_the_hint_is_said_once() {
    let world = World::new().await;
    world.put_record(20).await;
    let (logs, _guard) = CapturedLogs::start();
    let source = TokenSource::new(sm_client(), &world.token_id);
    assert_eq!(source.report_queue_url(), None);
    let old = source.token().await.unwrap();
    world.standin.revoke_all_tokens();

    for round in 1..=2 {
        assert_eq!(graphql_status(&world, &old).await, 401);
        source.invalidate_token(&old);
        let again = source.token().await.unwrap();
        assert_eq!(
            again.expose(),
            old.expose(),
            "round {round}: as before, no wait"
        );
    }
    assert_eq!(source.reads(), 3);
    assert_eq!(source.reports(), 0);
    let text = logs.text();
    assert_eq!(
        text.matches("IADVIZE_REPORT_QUEUE_URL").count(),
        1,
        "said once: {text}"
    );
    assert!(text.contains("sqs:SendMessage"), "{text}");
    assert!(text.contains(&world.token_id), "{text}");
    assert_no_secrets(&text, &[old.expose()]);
}

#[tokio::test]
async fn a_report_that_cannot_be_sent_is_said_once_and_the_same_token_comes_back() {
    let world = World::new().await;
    world.put_record(20).await;
    let (logs, _guard) = CapturedLogs::start();
    let sqs = sqs_poller::client(&moto_endpoint());
    let missing = format!(
        "{}/123456789012/{}.fifo",
        moto_endpoint(),
        unique("missing")
    );
    let source = TokenSource::builder(sm_client(), &world.token_id)
        .report_queue(sqs, &missing)
        .build();
    let old = source.token().await.unwrap();
    world.standin.revoke_all_tokens();

    for _ in 0..2 {
        source.invalidate_token(&old);
        assert_eq!(source.token().await.unwrap().expose(), old.expose());
    }
    assert_eq!(source.reports(), 0);
    let text = logs.text();
    let said: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("the report to") && line.contains("failed"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {text}");
    assert_no_secrets(&text, &[old.expose()]);
}

#[tokio::test]
async fn a_report_queue_that_never_answers_costs_one_call_time_out() {
    let world = World::new().await;
    world.put_record(20).await;
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let source = TokenSource::builder(sm_client(), &world.token_id)
        .report_queue(
            sqs_poller::client(&silent_url),
            format!("{silent_url}/123456789012/q.fifo"),
        )
        .call_timeout(Duration::from_millis(500))
        .build();
    let old = source.token().await.unwrap();

    source.invalidate_token(&old);
    let answer = tokio::time::timeout(Duration::from_secs(10), source.token()).await;
    let again = answer.expect("bounded by the call time-out").unwrap();
    assert_eq!(again.expose(), old.expose());
    assert_eq!(source.reports(), 0);
    held.abort();
}

#[tokio::test]
async fn a_reported_token_that_the_broker_does_not_replace_fails_after_the_wait() {
    let world = World::new().await;
    world.put_record(20).await;
    let (sqs, url) = report_queue().await;
    let source = TokenSource::builder(sm_client(), &world.token_id)
        .report_queue(sqs.clone(), &url)
        .report_wait(Duration::from_millis(50), Duration::from_millis(400))
        .build();
    let old = source.token().await.unwrap();

    source.invalidate_token(&old);
    let error = source.token().await.unwrap_err();
    assert!(
        matches!(&error, TokenError::Rejected { secret_id, .. } if *secret_id == world.token_id),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("reported") && text.contains("iadvize-token status"),
        "{text}"
    );
    assert_no_secrets(&text, &[old.expose()]);
    assert_eq!(source.reports(), 1);
    let reads = source.reads();
    assert!(reads >= 3, "kept reading while it waited: {reads}");

    // No loop: during the backoff callers get the error without reading, and the report
    // queue holds the one report.
    assert!(matches!(
        source.token().await,
        Err(TokenError::Rejected { .. })
    ));
    assert_eq!(source.reads(), reads);
    let taken = sqs_poller::take_all(&sqs, &url, Duration::ZERO)
        .await
        .unwrap();
    assert_one_report(&taken, &world, old.expose()).await;
}

/// Consumers that name one secret differently (its name, its ARN) report a revoked token in
/// one message group, the secret's ARN, with one body: the queue keeps one report, and the
/// broker never handles one secret's reports in two invocations at once.
#[tokio::test]
async fn consumers_naming_one_secret_differently_report_it_once_in_the_group_of_its_arn() {
    let world = World::new().await;
    world.put_record(20).await;
    let arn = world.arn_of(&world.token_id).await;
    let (sqs, url) = report_queue().await;
    let sources: Vec<TokenSource> = [world.token_id.as_str(), arn.as_str()]
        .into_iter()
        .map(|id| {
            TokenSource::builder(sm_client(), id)
                .report_queue(sqs.clone(), &url)
                .report_wait(Duration::from_millis(50), Duration::from_millis(300))
                .build()
        })
        .collect();
    let old = sources[0].token().await.unwrap();
    assert_eq!(sources[1].token().await.unwrap().expose(), old.expose());

    let refused = futures::future::join_all(sources.iter().map(|source| async {
        source.invalidate_token(&old);
        source.token().await
    }))
    .await;
    for answer in refused {
        assert!(
            matches!(answer, Err(TokenError::Rejected { .. })),
            "{answer:?}"
        );
    }
    assert_eq!(
        sources.iter().map(TokenSource::reports).sum::<u64>(),
        2,
        "each consumer sent its report"
    );
    let taken = sqs_poller::take_all(&sqs, &url, Duration::ZERO)
        .await
        .unwrap();
    assert_one_report(&taken, &world, old.expose()).await;
}
