//! Healing between ticks: one 429 pauses the broker's logins (one login keeps its backoff,
//! the others stop; valid tokens are deferred, not failed), and a tick that ends with urgent
//! work deferred sends follow-ups (Lambda `Invoke`, asynchronous) until the fleet is filled,
//! within `IADVIZE_MAX_FOLLOW_UPS`. Against moto, the iAdvize stand-in (which blocks an IP
//! for a while) and the Lambda Invoke stand-in running the real binary behind the Runtime API
//! harness.
//!
//! Each test works in its own AWS region of the shared moto server: discovery lists every
//! tagged secret of a region.

use std::sync::Arc;
use std::time::Duration;

use iadvize_token_broker::follow_up::FollowUps;
use iadvize_token_broker::refresh::Outcome;
use iadvize_token_broker::token::parse_rfc3339;
use serde_json::{Value, json};
use standins::iadvize::BlockScope;
use standins::lambda_api::LambdaApi;
use time::OffsetDateTime;

use crate::support::watcher::{WatchReport, Watcher};
use crate::support::{World, deadline, fleet_binary_env, scheduled_event, start_broker, with_env};

const FUNCTION: &str = "iadvize-token-broker";

/// One iAdvize user in `region` (a region of its own: discovery lists every tagged secret of
/// a region), with the stand-in's own per-user limit (10 a minute), which is not under test
/// here, out of the way.
async fn fleet_in(region: &str) -> World {
    let world = World::in_region(region, 1).await;
    world.standin.set_rate_limits(1000, 1000);
    world
}

/// A consumer reading `secret_id` straight from moto throughout.
async fn watch(world: &World, secret_id: &str) -> Watcher {
    Watcher::start(world.sm.clone(), secret_id, world.standin.token_checker()).await
}

fn lambda_client(url: &str) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .endpoint_url(url)
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    )
}

fn count(results: &[iadvize_token_broker::refresh::SecretResult], outcome: Outcome) -> usize {
    results.iter().filter(|r| r.outcome == outcome).count()
}

#[tokio::test]
async fn during_an_ip_block_one_login_retries_and_the_valid_tokens_are_deferred_not_failed() {
    let fleet = fleet_in("eu-north-1").await;
    // Due (inside the 4 h refresh window) but valid past the next tick; a consumer watches
    // one of them, whose token the stand-in issued (one login before the block).
    let mut names = fleet.integrations(0, 7, Some(2)).await;
    let watched = fleet.issued_integration(0, 2).await;
    names.push(watched.clone());
    let watch = watch(&fleet, &watched).await;
    let before = fleet.standin.stats();
    // iAdvize blocks every login for 30 s (Retry-After: 30), longer than this invocation.
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(30));
    let broker = fleet.broker_with(fleet.fleet_config());
    let report = broker.refresh_fleet(false, deadline(20)).await.unwrap();

    let stats = fleet.standin.stats();
    let login_requests = stats.login_requests - before.login_requests;
    let concurrency = broker.config().max_concurrency().get() as u32;
    // One login's attempts (the first 429's Retry-After does not fit: one attempt) plus the
    // logins already in flight when it came; never one backoff per secret.
    assert!(
        login_requests <= 1 + (concurrency - 1),
        "{} login requests for {} due secrets",
        login_requests,
        names.len()
    );
    assert_eq!(stats.successful_logins, before.successful_logins);
    let failed = count(&report.results, Outcome::Failed);
    let deferred = count(&report.results, Outcome::Deferred);
    assert_eq!(
        failed, 1,
        "only the login that waited out the 429: {report:?}"
    );
    assert_eq!(deferred, names.len() - 1, "{report:?}");
    for r in report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Deferred)
    {
        assert!(
            r.error.is_none(),
            "a valid token is deferred, not failed: {r:?}"
        );
    }
    // Logins by outcome: only throttled ones.
    let by_outcome: Vec<Value> = fleet
        .metric_lines()
        .into_iter()
        .filter(|l| l.get("Outcome").is_some())
        .collect();
    assert!(!by_outcome.is_empty());
    assert!(
        by_outcome.iter().all(|l| l["Outcome"] == "throttled"),
        "{by_outcome:?}"
    );

    // A second tick of the same process while the pause runs sends no login at all.
    let before = fleet.standin.stats().login_requests;
    let again = broker.refresh_fleet(false, deadline(20)).await.unwrap();
    assert_eq!(fleet.standin.stats().login_requests, before);
    assert_eq!(count(&again.results, Outcome::Deferred), names.len());
    // The deferred token stayed in place, usable, throughout.
    watch.finish().await.assert_clean();
}

#[tokio::test]
async fn secrets_without_a_token_held_back_by_a_429_say_so_and_are_not_blamed_on_time() {
    let fleet = fleet_in("ap-south-1").await;
    let names = fleet.integrations(0, 6, None).await;
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(30));
    let broker = fleet.broker_with(fleet.fleet_config());
    let report = broker.refresh_fleet(false, deadline(20)).await.unwrap();

    let deferred: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Deferred)
        .collect();
    assert!(!deferred.is_empty(), "{report:?}");
    for r in &deferred {
        // No token: the deferral is an error, and it names the 429 pause, not the deadline.
        let error = r.error.as_deref().unwrap_or_default();
        assert!(error.contains("HTTP 429"), "{r:?}");
        assert!(!error.contains("no time left"), "{r:?}");
        assert_eq!(
            r.error_kind.map(|k| k.as_str()),
            Some("LoginThrottled"),
            "{r:?}"
        );
    }
    assert_eq!(report.results.len(), names.len());
}

#[tokio::test]
async fn when_the_login_that_waits_out_a_429_succeeds_the_others_go_on() {
    let fleet = fleet_in("us-west-1").await;
    let names = fleet.integrations(0, 6, Some(2)).await;
    // A short block: the first 429's Retry-After (2 s) fits, the leader's retry succeeds.
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(2));
    let broker = fleet.broker_with(fleet.fleet_config());
    let report = broker.refresh_fleet(false, deadline(40)).await.unwrap();
    let concurrency = broker.config().max_concurrency().get();
    let refreshed = count(&report.results, Outcome::Refreshed);
    let deferred = count(&report.results, Outcome::Deferred);
    assert_eq!(count(&report.results, Outcome::Failed), 0, "{report:?}");
    assert_eq!(refreshed + deferred, names.len(), "{report:?}");
    // Only logins that were in flight when the first 429 came stopped; the leader and the
    // logins that had not started yet went on once it succeeded.
    assert!(deferred < concurrency, "{report:?}");
    assert!(refreshed > names.len() - concurrency, "{report:?}");
    assert!(
        report.results.iter().all(|r| r.error.is_none()),
        "{report:?}"
    );
    let stats = fleet.standin.stats();
    // At most one login's attempts (5: the first and 4 retries) and the others' in flight.
    assert!(
        stats.blocked_logins as usize <= 5 + (concurrency - 1),
        "{stats:?}"
    );
    // The next tick takes the deferred ones.
    let next = broker.refresh_fleet(false, deadline(40)).await.unwrap();
    assert_eq!(
        count(&next.results, Outcome::Refreshed),
        deferred,
        "{next:?}"
    );
    assert_eq!(fleet.standin.stats().successful_logins, names.len() as u32);
}

#[tokio::test]
async fn a_tick_paused_by_a_429_sends_a_follow_up_that_carries_the_pause() {
    let fleet = fleet_in("ap-south-2").await;
    // Expired tokens: urgent work.
    fleet.integrations(0, 3, Some(-1)).await;
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(30));
    let lambda = LambdaApi::start()
        .await
        .expect("the Lambda stand-in starts");
    lambda.add_function(FUNCTION);
    let config = fleet
        .fleet_config()
        .to_builder()
        .throttle_pause(Duration::from_secs(45))
        .build()
        .unwrap();
    let broker = fleet
        .broker_with(config)
        .with_follow_ups(Some(FollowUps::new(
            lambda_client(&lambda.url()),
            FUNCTION.to_owned(),
            Duration::from_secs(2),
        )));
    let started = OffsetDateTime::now_utc();
    let err = broker
        .handle(&scheduled_event(), deadline(15))
        .await
        .expect_err("expired tokens deferred fail the tick");
    assert!(err.to_string().contains("deferred"), "{err}");
    let events = lambda.events_of(FUNCTION);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["action"], "refresh");
    assert_eq!(events[0]["follow_up"], 1);
    let until =
        parse_rfc3339(events[0]["paused_until"].as_str().expect("paused_until")).expect("RFC 3339");
    // max(Retry-After 30 s, IADVIZE_THROTTLE_PAUSE 45 s) after the last 429.
    assert!(
        until - started >= time::Duration::seconds(44),
        "{until} vs {started}"
    );
    assert!(
        fleet
            .metrics
            .lines()
            .iter()
            .any(|l| l.contains("\"FollowUpsSent\":1.0")),
        "{:?}",
        fleet.metrics.lines()
    );

    // The follow-up takes the pause: a fresh process that gets it logs in for no secret
    // (the pause outlasts its deadline), and so the chain stops there.
    let next = fleet
        .broker_with(fleet.fleet_config())
        .with_follow_ups(Some(FollowUps::new(
            lambda_client(&lambda.url()),
            FUNCTION.to_owned(),
            Duration::from_secs(2),
        )));
    let before = fleet.standin.stats().login_requests;
    let _ = next.handle(&events[0], deadline(15)).await;
    assert_eq!(
        fleet.standin.stats().login_requests,
        before,
        "no login during the pause"
    );
    assert_eq!(lambda.events_of(FUNCTION).len(), 1, "the chain stopped");
}

/// What a refill left behind.
struct Refill {
    /// The integrations: all but the last expired two hours ago, the last one with no value
    /// yet (both urgent).
    names: Vec<String>,
    lambda: LambdaApi,
    /// Follow-ups the Lambda stand-in delivered.
    delivered: usize,
    /// What a consumer watching the last integration saw.
    watch: WatchReport,
}

/// The real binary behind the Runtime API harness, its follow-ups delivered by the Lambda
/// Invoke stand-in one after the other, as Lambda runs a queued asynchronous event. A consumer
/// watches the one integration with no value yet (an expired value would be a bad read from
/// the start).
async fn refill(fleet: &World, n: usize, extra: &[(&str, &str)]) -> Refill {
    let mut names = fleet.integrations(0, n - 1, Some(-2)).await;
    let watched = fleet.integration(0, None).await;
    names.push(watched.clone());
    let lambda = LambdaApi::start()
        .await
        .expect("the Lambda stand-in starts");
    let env = with_env(
        fleet_binary_env(fleet),
        &[
            ("AWS_ENDPOINT_URL_LAMBDA", &lambda.url()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION),
            ("IADVIZE_HTTP_TIMEOUT", "1s"),
            ("RUST_LOG", "info"),
            // Each invocation (10 s) has room for two or three logins: beyond the rotation
            // budget (1 s login, 1 s verification, 3 s for the writes) and the follow-up's
            // 2 s, about 3 s of login starts at one a second for this one iAdvize user.
            ("IADVIZE_MIN_LOGIN_INTERVAL", "1s"),
        ],
    );
    let env = with_env(env, extra);
    let watch = watch(fleet, &watched).await;
    let harness = Arc::new(
        start_broker(&env)
            .await
            .with_timeout(Duration::from_secs(10)),
    );
    lambda.attach(FUNCTION, harness.clone());
    let _ = harness.invoke(&scheduled_event()).await;
    let delivered = lambda
        .run_chain(&harness, Duration::from_secs(3), 20)
        .await
        .len();
    let watch = watch.finish().await;
    // Shown when the test fails.
    eprintln!("{}", harness.logs());
    Refill {
        names,
        lambda,
        delivered,
        watch,
    }
}

#[tokio::test]
async fn a_refill_runs_through_follow_ups_until_every_token_is_filled_then_stops() {
    let fleet = fleet_in("me-central-1").await;
    let Refill {
        names,
        lambda,
        delivered,
        watch,
    } = refill(&fleet, 6, &[]).await;
    let left = fleet.seconds_left(&names).await;
    assert!(
        left.iter().all(|s| *s > 3600),
        "every token filled without a scheduled tick: {left:?}"
    );
    let events = lambda.events_of(FUNCTION);
    assert!(!events.is_empty(), "the tick alone could not fill 6");
    assert_eq!(events.len(), delivered, "every follow-up ran");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["follow_up"], i as u64 + 1, "{events:?}");
    }
    assert_eq!(lambda.pending_events(), 0, "the chain stopped once done");
    assert_eq!(fleet.standin.stats().successful_logins, names.len() as u32);
    // The watched secret was filled on the way, and never held a bad value.
    assert!(watch.versions_seen >= 1, "{watch}");
    watch.assert_clean();
}

#[tokio::test]
async fn the_chain_stops_at_max_follow_ups_and_zero_disables_it() {
    let fleet = fleet_in("eu-south-2").await;
    let Refill {
        names,
        lambda,
        watch,
        ..
    } = refill(&fleet, 8, &[("IADVIZE_MAX_FOLLOW_UPS", "1")]).await;
    assert_eq!(
        lambda.events_of(FUNCTION).len(),
        1,
        "one follow-up, no more"
    );
    let left = fleet.seconds_left(&names).await;
    assert!(
        left.iter().any(|s| *s <= 0),
        "the rest waits for the next tick: {left:?}"
    );
    watch.assert_clean();

    let fleet = fleet_in("il-central-1").await;
    let Refill { lambda, .. } = refill(&fleet, 4, &[("IADVIZE_MAX_FOLLOW_UPS", "0")]).await;
    assert_eq!(lambda.requests(), 0, "no Invoke at all");
}

#[tokio::test]
async fn a_follow_up_pausing_beyond_the_longest_pause_is_refused_and_pauses_nothing() {
    let world = World::new().await;
    world.fill().await;
    let broker = world.broker();
    let far = json!({"action": "refresh", "follow_up": 1, "paused_until": "2099-01-01T00:00:00Z"});
    let err = broker.handle(&far, deadline(20)).await.unwrap_err();
    assert_eq!(err.kind(), "InvalidEvent", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("paused_until is at most 1day from now")
            && text.contains("got 2099-01-01T00:00:00Z")
            && text.contains("nothing was done"),
        "{text}"
    );
    // The same warm broker still logs in: a report's forced refresh, an operator's.
    let forced_refresh =
        json!({"action": "refresh", "force": true, "secret_ids": [world.token_id]});
    let logins = world.logins();
    let answer = broker.handle(&forced_refresh, deadline(20)).await.unwrap();
    assert_eq!(answer["results"][0]["outcome"], "refreshed", "{answer}");
    assert_eq!(world.logins(), logins + 1);
    // A pause the broker could have set (within a day) is still taken.
    let near = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let event = json!({"action": "refresh", "follow_up": 1, "paused_until": iadvize_token_broker::token::rfc3339(near)});
    let _ = broker.handle(&event, deadline(20)).await;
    let answer = broker.handle(&forced_refresh, deadline(20)).await.unwrap();
    assert_eq!(answer["results"][0]["outcome"], "deferred", "{answer}");
    assert_eq!(
        world.logins(),
        logins + 1,
        "no login during a pause it could set"
    );
}
