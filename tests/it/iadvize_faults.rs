//! iAdvize misbehaving: rate limits, refused credentials, server errors, timeouts and
//! unusable answers. Whatever happens, AWSCURRENT keeps its working token.

use std::time::{Duration, SystemTime};

use crate::support::*;
use iadvize_token_broker::iadvize::RetryPolicy;
use iadvize_token_broker::metrics::Metrics;
use serde_json::{Value, json};
use standins::{Fault, RetryAfter};
use tokio::time::Instant;

fn force() -> Value {
    json!({"action": "refresh", "force": true})
}

/// Nothing of the failed attempt is left: same AWSCURRENT value, no AWSPENDING.
async fn assert_unchanged(world: &World, before: &Option<Value>) {
    assert_eq!(&world.current().await, before, "AWSCURRENT is unchanged");
    let stages = world.stages().await;
    assert!(
        !stages.values().flatten().any(|s| s == "AWSPENDING"),
        "{stages:?}"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_after_a_backoff() {
    let world = World::new().await;
    world
        .standin
        .push_login_faults(Fault::TooManyRequests(RetryAfter::None), 1);
    let started = Instant::now();
    world.broker().handle(&force(), deadline(30)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "backed off at least 1 s"
    );
    assert_eq!(world.logins(), 2);
    assert_eq!(world.standin.stats().rate_limited, 1);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_429_with_retry_after_in_seconds_waits_that_long() {
    let world = World::new().await;
    world
        .standin
        .push_login_faults(Fault::TooManyRequests(RetryAfter::Seconds(2)), 1);
    let started = Instant::now();
    world.broker().handle(&force(), deadline(30)).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(world.logins(), 2);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_429_with_retry_after_as_an_http_date_waits_until_then() {
    let world = World::new().await;
    let at = SystemTime::now() + Duration::from_secs(3);
    world
        .standin
        .push_login_faults(Fault::TooManyRequests(RetryAfter::HttpDate(at)), 1);
    let started = Instant::now();
    world.broker().handle(&force(), deadline(30)).await.unwrap();
    // HTTP dates have whole seconds, so the wait is between 2 and 3 s.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(world.logins(), 2);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_429_storm_fails_within_the_deadline_and_keeps_awscurrent() {
    let world = World::new().await;
    world.put_record(2).await;
    let before = world.current().await;
    world
        .standin
        .set_login_fault(Some(Fault::TooManyRequests(RetryAfter::None)));
    let started = Instant::now();
    let err = world
        .broker()
        .handle(&force(), deadline(10))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "gave up before the deadline: {took:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("HTTP 429") && text.contains("deadline"),
        "{text}"
    );
    assert!(world.standin.stats().rate_limited >= 2, "it did retry");
    assert_unchanged(&world, &before).await;
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
    let world = World::new().await;
    world
        .standin
        .set_login_fault(Some(Fault::TooManyRequests(RetryAfter::Seconds(120))));
    let started = Instant::now();
    let err = world
        .broker()
        .handle(&force(), deadline(20))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        err.to_string()
            .contains("would pass the invocation deadline"),
        "{err}"
    );
    assert_eq!(world.logins(), 1);
}

#[tokio::test]
async fn refused_credentials_block_further_logins_until_the_credentials_change() {
    let world = World::new().await;
    world.put_record(1).await;
    let before = world.current().await;
    let bad = world
        .put_credentials(&world.username, "not-the-password")
        .await;
    let logins = world.logins();
    let broker = world.broker();
    let tick = scheduled_event();

    let err = broker.handle(&tick, deadline(30)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("iAdvize refused the credentials in secret"),
        "{err}"
    );
    assert!(err.to_string().contains(&bad), "names the version: {err}");
    assert_eq!(world.logins() - logins, 1, "one attempt, no retry");
    assert_eq!(
        world.tags().await["iadvize:rejected-credentials-version"],
        bad
    );
    assert_unchanged(&world, &before).await;

    // The next tick and the next createSecret make no call to iAdvize.
    let err = broker.handle(&tick, deadline(30)).await.unwrap_err();
    assert!(err.to_string().contains("already refused"), "{err}");
    let pending = world.start_sm_rotation().await;
    let err = broker
        .handle(
            &step_event("createSecret", &world.token_id, &pending),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "CredentialsBlocked");
    assert_eq!(world.logins() - logins, 1, "no call while blocked");
    world
        .sm
        .update_secret_version_stage()
        .secret_id(&world.token_id)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&pending)
        .send()
        .await
        .unwrap();

    // A new credentials value lifts the block by itself.
    world
        .put_credentials(&world.username, &world.password)
        .await;
    let answer = broker.handle(&tick, deadline(30)).await.unwrap();
    assert_eq!(answer["results"][0]["outcome"], "refreshed");
    assert_valid_current(&world).await;
    assert!(!world.is_blocked().await);
}

#[tokio::test]
async fn a_401_invalid_client_counts_as_refused_credentials() {
    let world = World::new().await;
    world.standin.push_login_faults(Fault::Unauthorized, 1);
    let err = world
        .broker()
        .handle(&force(), deadline(30))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("iAdvize refused the credentials"),
        "{err}"
    );
    assert!(world.is_blocked().await);
    assert_eq!(world.logins(), 1);
}

#[tokio::test]
async fn a_transient_server_error_is_retried() {
    let world = World::new().await;
    world.standin.push_login_faults(Fault::ServerError(503), 1);
    world.broker().handle(&force(), deadline(30)).await.unwrap();
    assert_eq!(world.logins(), 2);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_four_retries() {
    let world = World::new().await;
    world.put_record(2).await;
    let before = world.current().await;
    world.standin.set_login_fault(Some(Fault::ServerError(502)));
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    let store = iadvize_token_broker::SecretStore::new(world.sm.clone());
    let broker = iadvize_token_broker::Broker::with_retry_policy(
        world.config(),
        store,
        Metrics::off(),
        retry,
    )
    .unwrap();
    let logins = world.logins();
    let err = broker.handle(&force(), deadline(30)).await.unwrap_err();
    assert!(
        err.to_string().contains("login failed after 5 attempt(s)"),
        "{err}"
    );
    assert!(err.to_string().contains("502"), "{err}");
    assert_eq!(world.logins() - logins, 5);
    assert_unchanged(&world, &before).await;
}

#[tokio::test]
async fn a_timed_out_login_is_retried() {
    let world = World::new().await;
    world
        .standin
        .push_login_faults(Fault::Slow(Duration::from_secs(3)), 1);
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .http_timeout(Duration::from_millis(500))
            .build()
            .expect("a valid test configuration"),
    );
    let started = Instant::now();
    broker.handle(&force(), deadline(30)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait for the slow answer"
    );
    assert_valid_current(&world).await;
    // The stand-in counts the slow request once it has finished sleeping.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(world.logins(), 2);
}

#[tokio::test]
async fn unusable_login_answers_are_errors_and_nothing_is_stored() {
    for (fault, expected) in [
        (Fault::MalformedJson, "the body is not JSON"),
        (Fault::MissingAccessToken, "access_token is missing"),
        (Fault::ExpiresIn(0), "expires_in is 0"),
        (Fault::ExpiresIn(-5), "expires_in is a negative number"),
        (Fault::ExpiresIn(31 * 24 * 3600), "expires_in is 2678400"),
    ] {
        let world = World::new().await;
        world.put_record(2).await;
        let before = world.current().await;
        world.standin.push_login_faults(fault.clone(), 1);
        let err = world
            .broker()
            .handle(&force(), deadline(30))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(expected) && text.contains("nothing was stored"),
            "{fault:?}: {text}"
        );
        assert_unchanged(&world, &before).await;
        assert!(!world.is_blocked().await);
    }
}

#[tokio::test]
async fn an_unreachable_iadvize_is_a_clear_error() {
    let world = World::new().await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .api_url("http://127.0.0.1:9".parse().unwrap())
            .build()
            .expect("a valid test configuration"),
    );
    let err = broker.handle(&force(), deadline(10)).await.unwrap_err();
    assert!(err.to_string().contains("connection failed"), "{err}");
    assert!(world.current().await.is_none());
}

#[tokio::test]
async fn a_bare_401_or_403_from_a_proxy_is_transient_and_blocks_nothing() {
    for status in [401, 403] {
        let world = World::new().await;
        world.put_record(1).await;
        let before = world.current().await;
        let logins = world.logins();
        world.standin.push_login_faults(Fault::Html(status), 1);
        let broker = world.broker();
        let err = broker.handle(&force(), deadline(30)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("HTTP {status}"))
                && text.contains("not treated as refused credentials"),
            "{text}"
        );
        assert!(!world.is_blocked().await, "HTTP {status} set no block");
        assert_unchanged(&world, &before).await;

        // The next tick simply logs in.
        let answer = broker.handle(&force(), deadline(30)).await.unwrap();
        assert_eq!(answer["results"][0]["outcome"], "refreshed");
        assert_eq!(world.logins() - logins, 2);
    }
}

/// Moves the token secret's last-login-attempt tag into the past.
async fn last_login_hours_ago(world: &World, hours: i64) {
    let at = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
    tag(
        &world.sm,
        &world.token_id,
        "iadvize:last-login-attempt",
        &iadvize_token_broker::token::rfc3339_precise(at),
    )
    .await;
}

#[tokio::test]
async fn refused_credentials_are_probed_once_per_retry_interval_and_heal_by_themselves() {
    let world = World::new().await;
    world.put_record(1).await;
    let logins = world.logins();
    let refused = world
        .put_credentials(&world.username, "changed-password-7a1c")
        .await;
    let broker = world.broker();
    let tick = scheduled_event();

    let err = broker.handle(&tick, deadline(30)).await.unwrap_err();
    assert_eq!(err.kind(), "RefreshFailed");
    assert!(world.is_blocked().await);
    assert_eq!(world.logins() - logins, 1);

    // Within the retry interval: blocked, and status says when the probe comes.
    let err = broker.handle(&tick, deadline(30)).await.unwrap_err();
    assert!(err.to_string().contains("next probe login at"), "{err}");
    assert_eq!(world.logins() - logins, 1);
    let status = broker
        .handle(&json!({"action": "status"}), deadline(30))
        .await
        .unwrap();
    let entry = &status["secrets"][0];
    assert_eq!(entry["credentials_blocked"], true, "{status}");
    let next = entry["next_probe_at"].as_str().expect("a probe time");
    let next =
        time::OffsetDateTime::parse(next, &time::format_description::well_known::Rfc3339).unwrap();
    let wait = next - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::hours(5) && wait <= time::Duration::hours(6),
        "{wait}"
    );

    // Six hours later: one probe, still refused, still blocked.
    last_login_hours_ago(&world, 7).await;
    let err = broker.handle(&tick, deadline(30)).await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert_eq!(world.logins() - logins, 2, "exactly one probe");
    assert_eq!(
        world.tags().await["iadvize:rejected-credentials-version"],
        refused
    );
    let err = broker.handle(&tick, deadline(30)).await.unwrap_err();
    assert!(err.to_string().contains("already refused"), "{err}");
    assert_eq!(world.logins() - logins, 2);

    // iAdvize accepts the user again: the next probe heals it without an operator.
    world
        .standin
        .set_password(&world.username, "changed-password-7a1c");
    last_login_hours_ago(&world, 7).await;
    let answer = broker.handle(&tick, deadline(30)).await.unwrap();
    assert_eq!(answer["results"][0]["outcome"], "refreshed");
    assert!(!world.is_blocked().await);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn with_probing_off_refused_credentials_wait_for_a_new_value() {
    let world = World::new().await;
    world.put_record(1).await;
    let logins = world.logins();
    world
        .put_credentials(&world.username, "changed-password-7a1c")
        .await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .refused_credentials_retry(None)
            .build()
            .expect("a valid test configuration"),
    );
    broker.handle(&force(), deadline(30)).await.unwrap_err();
    last_login_hours_ago(&world, 48).await;
    let err = broker.handle(&force(), deadline(30)).await.unwrap_err();
    assert!(err.to_string().contains("no probe login"), "{err}");
    assert_eq!(world.logins() - logins, 1);
}

#[tokio::test]
async fn a_retry_after_of_zero_does_not_shorten_the_backoff() {
    let world = World::new().await;
    world
        .standin
        .push_login_faults(Fault::TooManyRequests(RetryAfter::Seconds(0)), 3);
    let broker = world.broker_with_retry(
        world.config(),
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(200),
            safety_margin: Duration::from_secs(1),
        },
    );
    let started = Instant::now();
    broker.handle(&force(), deadline(30)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200 + 400 + 800),
        "backed off 1.4 s at least: {:?}",
        started.elapsed()
    );
    assert_eq!(world.logins(), 4);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_retry_after_that_is_not_sane_counts_as_absent() {
    for raw in ["99999999999999999999", "-5", "soon", "1e9"] {
        let world = World::new().await;
        world
            .standin
            .push_login_faults(Fault::TooManyRequests(RetryAfter::Raw(raw)), 1);
        let broker = world.broker_with_retry(
            world.config(),
            RetryPolicy {
                max_retries: 4,
                base_delay: Duration::from_millis(100),
                safety_margin: Duration::from_secs(1),
            },
        );
        let started = Instant::now();
        broker.handle(&force(), deadline(30)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100), "{raw}");
        assert!(started.elapsed() < Duration::from_secs(10), "{raw}");
        assert_eq!(world.logins(), 2, "{raw}");
    }
}

#[tokio::test]
async fn a_huge_answer_is_cut_off_and_nothing_is_stored() {
    let world = World::new().await;
    world.put_record(1).await;
    let before = world.current().await;
    // 256 MiB, chunked, no Content-Length.
    world
        .standin
        .push_login_faults(Fault::HugeBody(256 << 20), 1);
    let err = world
        .broker()
        .handle(&force(), deadline(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    assert_unchanged(&world, &before).await;

    world
        .standin
        .push_verify_faults(Fault::HugeBody(256 << 20), 1);
    let err = world
        .broker()
        .handle(&force(), deadline(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    assert_unchanged(&world, &before).await;
}

#[tokio::test]
async fn a_200_invalid_token_verification_answer_is_a_rejection() {
    let world = World::new().await;
    world.put_record(1).await;
    let before = world.current().await;
    world.standin.push_verify_faults(Fault::InvalidTokenOk, 1);
    let err = world
        .broker()
        .handle(&force(), deadline(30))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("rejected the token it just issued (invalid_token)"),
        "{err}"
    );
    assert_unchanged(&world, &before).await;

    // testSecret of a Secrets Manager rotation fails as a rejection too.
    let pending = world.start_sm_rotation().await;
    let broker = world.broker();
    broker
        .handle(
            &step_event("createSecret", &world.token_id, &pending),
            deadline(30),
        )
        .await
        .unwrap();
    world.standin.push_verify_faults(Fault::InvalidTokenOk, 1);
    let err = broker
        .handle(
            &step_event("testSecret", &world.token_id, &pending),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "TestSecretFailed");
    assert!(
        err.to_string().contains("rejected it (invalid_token)"),
        "{err}"
    );
}

/// The record AWSCURRENT holds, as stored.
async fn stored(world: &World) -> Value {
    world.current().await.expect("AWSCURRENT has a value")
}

#[tokio::test]
async fn login_answers_are_read_by_what_they_mean() {
    // Each of these answers has one meaning: a bearer token that lives 86400 s (or 86400.5,
    // rounded down). iAdvize issued a working token; throwing it away would cost a login on
    // every tick.
    let world = World::new().await;
    world.standin.set_rate_limits(1000, 1000);
    let broker = world.broker();
    for answer in [
        json!({"expires_in": "86400.0"}),
        json!({"expires_in": 86400.0}),
        json!({"expires_in": " 86400 "}),
        json!({"expires_in": "8.64e4"}),
        json!({"expires_in": 86400.5}),
        json!({"expires_in": "86400.5"}),
        json!({"token_type": null}),
        json!({"token_type": "Bearer "}),
        json!({"token_type": " bearer"}),
        json!({"token_type": "BEARER"}),
        json!({"token_type": ""}),
        json!({"access_token": " {token}\n"}),
    ] {
        let logins = world.logins();
        world
            .standin
            .push_login_faults(Fault::Answer(answer.clone()), 1);

        let report = broker.handle(&force(), deadline(30)).await;

        assert!(report.is_ok(), "{answer}: {report:?}");
        assert_eq!(world.logins(), logins + 1, "{answer}: one login");
        let record = stored(&world).await;
        assert_eq!(record["expires_in"], 86400, "{answer}: {record}");
        assert_eq!(record["token_type"], "Bearer", "{answer}");
        assert_valid_current(&world).await;
    }
}

#[tokio::test]
async fn unusable_login_answers_say_what_was_received_and_nothing_is_stored() {
    let world = World::new().await;
    world.standin.set_rate_limits(1000, 1000);
    world.put_record(2).await;
    let before = world.current().await;
    let broker = world.broker();
    for (answer, expected) in [
        (json!({"expires_in": null}), "expires_in is null"),
        (json!({"expires_in": true}), "expires_in is a boolean"),
        (
            json!({"expires_in": "soon"}),
            "expires_in is a string of 4 characters that is not a number",
        ),
        (
            json!({"expires_in": [86400]}),
            "expires_in is an array of 1 item",
        ),
        (
            json!({"expires_in": "-86400"}),
            "expires_in is a negative number",
        ),
        (json!({"expires_in": 0.5}), "expires_in is 0 seconds"),
        (
            json!({"token_type": "mac"}),
            "token_type is a string of 3 characters other than Bearer",
        ),
        (json!({"token_type": 1}), "token_type is an integer"),
        (json!({"access_token": 12345}), "access_token is an integer"),
        (json!({"access_token": null}), "access_token is null"),
        (json!({"access_token": "  "}), "access_token is empty"),
        (
            json!({"access_token": "{token}\u{7}"}),
            "characters an Authorization header cannot carry",
        ),
        (
            json!({"access_token": "{token} {token}"}),
            "characters an Authorization header cannot carry",
        ),
    ] {
        world
            .standin
            .push_login_faults(Fault::Answer(answer.clone()), 1);
        let err = broker.handle(&force(), deadline(30)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(expected) && text.contains("nothing was stored"),
            "{answer}: {text}"
        );
        assert_no_secrets(&text, &[&world.password, &world.username]);
        assert_unchanged(&world, &before).await;
        assert!(!world.is_blocked().await);
    }
    assert_eq!(world.verifications(), 0, "no unusable token was verified");
}

#[tokio::test]
async fn verification_answers_are_read_by_what_they_mean() {
    let world = World::new().await;
    world.standin.set_rate_limits(1000, 1000);
    let broker = world.broker();
    for accepted in [
        json!({"authenticated": true}),
        json!({"authenticated": "true"}),
        json!({"authenticated": " TRUE "}),
    ] {
        world
            .standin
            .push_verify_faults(Fault::Answer(accepted.clone()), 1);
        let report = broker.handle(&force(), deadline(30)).await;
        assert!(report.is_ok(), "{accepted}: {report:?}");
    }
    world.put_record(2).await;
    let before = world.current().await;
    for (answer, expected) in [
        (
            json!({"authenticated": "false"}),
            "rejected the token it just issued (authenticated: false)",
        ),
        (
            json!({"authenticated": " False"}),
            "rejected the token it just issued (authenticated: false)",
        ),
        (
            json!({"error": " INVALID_TOKEN "}),
            "rejected the token it just issued (invalid_token)",
        ),
        (
            json!({"authenticated": 1}),
            "\"authenticated\" is an integer, expected true or false",
        ),
        (
            json!({"authenticated": null}),
            "\"authenticated\" is null, expected true or false",
        ),
        (
            json!({"authenticated": "yes"}),
            "\"authenticated\" is a string of 3 characters, expected true or false",
        ),
        (
            json!({"ok": true}),
            "the answer is an object with 1 key, without \"authenticated\"",
        ),
    ] {
        world
            .standin
            .push_verify_faults(Fault::Answer(answer.clone()), 1);
        let err = broker.handle(&force(), deadline(30)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "{answer}: {text}");
        assert_unchanged(&world, &before).await;
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_put_in_a_header_fails_verification_at_once() {
    // A local failure no retry can fix: with the default policy (4 retries from 1 s), retrying
    // it would take 15 s or more before saying the same thing.
    let world = World::new().await;
    let client = iadvize_token_broker::iadvize::IadvizeClient::new(
        world.standin.url().parse().unwrap(),
        Duration::from_secs(2),
        RetryPolicy::default(),
    )
    .unwrap();
    for token in ["tok\u{7}en", "tok\nen", "tok\u{7f}"] {
        let err = client
            .verify(
                &iadvize_token_broker::token::AccessToken::new(token),
                deadline(60),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                iadvize_token_broker::iadvize::IadvizeError::Unsendable { .. }
            ),
            "{token:?}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("cannot be put in an Authorization header")
                && text.contains("not retried"),
            "{text}"
        );
        assert!(!text.contains(token), "{text}");
        assert_eq!(err.retry(), iadvize_token_broker::error::Retry::Permanent);
    }
    assert_eq!(world.verifications(), 0);
}
