//! Healing between ticks: one 429 pauses the broker's logins (one login keeps its backoff,
//! the others stop; valid tokens are deferred, not failed), and a tick that ends with urgent
//! work deferred sends follow-ups (Lambda `Invoke`, asynchronous) until the fleet is filled,
//! within `IADVIZE_MAX_FOLLOW_UPS`. Against moto, the iAdvize stand-in (which blocks an IP
//! for a while) and the Lambda Invoke stand-in running the real binary behind the Runtime API
//! harness.
//!
//! Each test works in its own AWS region of the shared moto server: discovery lists every
//! tagged secret of a region.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::types::Tag;
use iadvize_standin::iadvize::BlockScope;
use iadvize_standin::lambda_api::LambdaApi;
use iadvize_standin::lambda_harness::LambdaHarness;
use iadvize_standin::{Standin, StandinConfig};
use iadvize_token_broker::follow_up::FollowUps;
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::refresh::Outcome;
use iadvize_token_broker::token::{AccessToken, parse_rfc3339};
use iadvize_token_broker::{Broker, Config, SecretStore, TokenRecord};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{current_of, deadline, moto_endpoint, unique};

const MANAGED: &str = "iadvize:managed";
const CREDENTIALS: &str = "iadvize:credentials-secret-id";
const FUNCTION: &str = "iadvize-token-broker";

/// One iAdvize user and its integrations in a region of moto.
struct Fleet {
    region: String,
    sm: Client,
    standin: Standin,
    creds: String,
    metrics: Metrics,
}

impl Fleet {
    async fn new(region: &str) -> Fleet {
        let user = format!("{}@example.com", unique("user"));
        let password = unique("pw");
        let standin = Standin::start(StandinConfig::default().with_user(&user, &password))
            .await
            .expect("the stand-in starts");
        // The stand-in's own per-user limit (10 a minute) is not under test here.
        standin.set_rate_limits(1000, 1000);
        let sm = Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .endpoint_url(moto_endpoint())
                .region(Region::new(region.to_owned()))
                .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
                .build(),
        );
        let creds = unique("creds");
        sm.create_secret()
            .name(&creds)
            .secret_string(json!({"username": user, "password": password}).to_string())
            .send()
            .await
            .expect("create the credentials secret");
        Fleet {
            region: region.to_owned(),
            sm,
            standin,
            creds,
            metrics: Metrics::memory(),
        }
    }

    /// A managed integration whose token has `hours_left` (negative: expired that long ago).
    async fn integration(&self, hours_left: i64) -> String {
        let name = unique("token");
        let issued = OffsetDateTime::now_utc() - time::Duration::hours(24 - hours_left);
        let value = TokenRecord::new(AccessToken::new(unique("tok")), issued, 86400).to_json();
        self.sm
            .create_secret()
            .name(&name)
            .tags(Tag::builder().key(MANAGED).value("true").build())
            .tags(Tag::builder().key(CREDENTIALS).value(&self.creds).build())
            .secret_string(value)
            .send()
            .await
            .expect("create a token secret");
        name
    }

    async fn integrations(&self, n: usize, hours_left: i64) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..n {
            names.push(self.integration(hours_left).await);
        }
        names
    }

    fn config(&self) -> Config {
        Config::builder()
            .api_url(self.standin.url().parse().expect("stand-in URL"))
            .min_login_interval(Duration::ZERO)
            .http_timeout(Duration::from_secs(2))
            .build()
            .expect("a valid test configuration")
    }

    fn broker(&self, config: Config) -> Broker {
        Broker::new(
            config,
            SecretStore::new(self.sm.clone()),
            self.metrics.clone(),
        )
        .expect("broker")
    }

    /// Seconds left on each integration's AWSCURRENT token (0: expired or missing).
    async fn seconds_left(&self, names: &[String]) -> Vec<i64> {
        let mut left = Vec::new();
        for name in names {
            let expires = current_of(&self.sm, name)
                .await
                .and_then(|v| v["expires_at"].as_str().and_then(parse_rfc3339));
            left.push(expires.map_or(0, |at| (at - OffsetDateTime::now_utc()).whole_seconds()));
        }
        left
    }

    /// The environment of the real binary serving this region's fleet.
    fn binary_env(&self, lambda: &LambdaApi, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", moto_endpoint()),
            ("AWS_ENDPOINT_URL_LAMBDA", lambda.url()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION.into()),
            ("IADVIZE_API_URL", self.standin.url()),
            ("IADVIZE_HTTP_TIMEOUT", "1s".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }
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

fn scheduled() -> Value {
    json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
}

fn count(results: &[iadvize_token_broker::refresh::SecretResult], outcome: Outcome) -> usize {
    results.iter().filter(|r| r.outcome == outcome).count()
}

#[tokio::test]
async fn during_an_ip_block_one_login_retries_and_the_valid_tokens_are_deferred_not_failed() {
    let fleet = Fleet::new("eu-north-1").await;
    // Due (inside the 4 h refresh window) but valid past the next tick.
    let names = fleet.integrations(8, 2).await;
    // iAdvize blocks every login for 30 s (Retry-After: 30), longer than this invocation.
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(30));
    let broker = fleet.broker(fleet.config());
    let report = broker.refresh_fleet(false, deadline(20)).await.unwrap();

    let stats = fleet.standin.stats();
    let concurrency = broker.config().max_concurrency().get() as u32;
    // One login's attempts (the first 429's Retry-After does not fit: one attempt) plus the
    // logins already in flight when it came; never one backoff per secret.
    assert!(
        stats.login_requests <= 1 + (concurrency - 1),
        "{} login requests for {} due secrets",
        stats.login_requests,
        names.len()
    );
    assert_eq!(stats.successful_logins, 0);
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
        .metrics
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
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
}

#[tokio::test]
async fn when_the_login_that_waits_out_a_429_succeeds_the_others_go_on() {
    let fleet = Fleet::new("us-west-1").await;
    let names = fleet.integrations(6, 2).await;
    // A short block: the first 429's Retry-After (2 s) fits, the leader's retry succeeds.
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(2));
    let broker = fleet.broker(fleet.config());
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
    let fleet = Fleet::new("ap-south-2").await;
    // Expired tokens: urgent work.
    fleet.integrations(3, -1).await;
    fleet
        .standin
        .block_logins(BlockScope::Everyone, Duration::from_secs(30));
    let lambda = LambdaApi::start()
        .await
        .expect("the Lambda stand-in starts");
    lambda.add_function(FUNCTION);
    let config = fleet
        .config()
        .to_builder()
        .throttle_pause(Duration::from_secs(45))
        .build()
        .unwrap();
    let broker = fleet.broker(config).with_follow_ups(Some(FollowUps::new(
        lambda_client(&lambda.url()),
        FUNCTION.to_owned(),
        Duration::from_secs(2),
    )));
    let started = OffsetDateTime::now_utc();
    let err = broker
        .handle(&scheduled(), deadline(15))
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
        .broker(fleet.config())
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

/// The real binary behind the Runtime API harness, its follow-ups delivered by the Lambda
/// Invoke stand-in one after the other, as Lambda runs a queued asynchronous event.
async fn refill(
    fleet: &Fleet,
    n: usize,
    extra: &[(&str, &str)],
) -> (Vec<String>, LambdaApi, usize) {
    let names = fleet.integrations(n, -2).await;
    let lambda = LambdaApi::start()
        .await
        .expect("the Lambda stand-in starts");
    let env = fleet.binary_env(
        &lambda,
        &[
            // Each invocation (10 s) has room for two or three logins: beyond the rotation
            // budget (1 s login, 1 s verification, 3 s for the writes) and the follow-up's
            // 2 s, about 3 s of login starts at one a second for this one iAdvize user.
            ("IADVIZE_MIN_LOGIN_INTERVAL", "1s"),
        ],
    );
    let mut env = env;
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let harness = Arc::new(
        LambdaHarness::start(Path::new(env!("CARGO_BIN_EXE_iadvize-token-broker")), &env)
            .await
            .expect("the harness starts the binary")
            .with_timeout(Duration::from_secs(10)),
    );
    lambda.attach(FUNCTION, harness.clone());
    let _ = harness.invoke(&scheduled()).await;
    let chain = lambda
        .run_chain(&harness, Duration::from_secs(3), 20)
        .await
        .len();
    // Shown when the test fails.
    eprintln!("{}", harness.logs());
    (names, lambda, chain)
}

#[tokio::test]
async fn a_refill_runs_through_follow_ups_until_every_token_is_filled_then_stops() {
    let fleet = Fleet::new("me-central-1").await;
    let (names, lambda, delivered) = refill(&fleet, 6, &[]).await;
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
}

#[tokio::test]
async fn the_chain_stops_at_max_follow_ups_and_zero_disables_it() {
    let fleet = Fleet::new("eu-south-2").await;
    let (names, lambda, _) = refill(&fleet, 8, &[("IADVIZE_MAX_FOLLOW_UPS", "1")]).await;
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

    let fleet = Fleet::new("il-central-1").await;
    let (_, lambda, _) = refill(&fleet, 4, &[("IADVIZE_MAX_FOLLOW_UPS", "0")]).await;
    assert_eq!(lambda.requests(), 0, "no Invoke at all");
}
