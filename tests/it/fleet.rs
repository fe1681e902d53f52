//! One broker for many integrations: discovery by tag, the batched fresh tick,
//! login pacing per user and per minute, deferral near the deadline, fleet-wide metrics and
//! status. Against moto and the iAdvize stand-in.
//!
//! Each test works in its own AWS region of the shared moto server: discovery lists every
//! tagged secret of a region, so tests running at the same time must not see each other's.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{World, current_of, deadline, scheduled_event, unverified_record};

const MANAGED: &str = "iadvize:managed";

fn outcomes(report: &Value) -> HashMap<String, String> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["secret_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_tick_manages_tagged_and_listed_secrets_once_and_ignores_untagged_ones_and_decoys() {
    let fleet = World::in_region("eu-west-1", 1).await;
    let tagged = fleet.integration(0, None).await;
    let listed = fleet.token_secret(0, &[], None).await;
    let both_by_name = fleet.integration(0, None).await;
    let both_by_arn = fleet.integration(0, None).await;
    let arn = fleet
        .sm
        .describe_secret()
        .secret_id(&both_by_arn)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let untagged = fleet.token_secret(0, &[], None).await;
    // ListSecrets' tag-key and tag-value filters are separate prefix matches: these pass them.
    let decoys = [
        fleet
            .token_secret(0, &[(MANAGED, "false"), ("team", "true")], None)
            .await,
        fleet
            .token_secret(0, &[("iadvize:managed-by", "true")], None)
            .await,
        fleet.token_secret(0, &[(MANAGED, "truex")], None).await,
    ];
    let broker = fleet.broker_with(
        fleet
            .fleet_config()
            .to_builder()
            .token_secret_ids(vec![listed.clone(), both_by_name.clone(), arn])
            .min_login_interval(Duration::ZERO)
            .build()
            .expect("a valid test configuration"),
    );

    let answer = broker
        .handle(&scheduled_event(), deadline(60))
        .await
        .unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "each managed secret once: {answer}");
    let got = outcomes(&answer);
    let want: HashSet<&String> = [&tagged, &listed, &both_by_name, &both_by_arn].into();
    assert_eq!(got.keys().collect::<HashSet<_>>(), want, "{answer}");
    assert!(got.values().all(|o| o == "refreshed"), "{answer}");
    assert_eq!(fleet.standin.stats().successful_logins, 4);
    for ignored in decoys.iter().chain([&untagged]) {
        assert!(current_of(&fleet.sm, ignored).await.is_none(), "{ignored}");
    }
}

#[tokio::test]
async fn a_fresh_tick_over_more_than_a_hundred_secrets_costs_a_few_batched_calls() {
    let fleet = World::in_region("eu-west-2", 1).await;
    let n = 105;
    for _ in 0..n {
        fleet.integration(0, Some(20)).await;
    }
    let broker = fleet.broker_with(fleet.fleet_config());
    let calls = broker.store().calls();
    let answer = broker
        .handle(&scheduled_event(), deadline(60))
        .await
        .unwrap();
    let spent = broker.store().calls() - calls;

    let got = outcomes(&answer);
    assert_eq!(got.len(), n, "every page of ListSecrets was read");
    assert!(got.values().all(|o| o == "fresh"), "{answer}");
    // Two ListSecrets pages (100 a page) and ⌈105/20⌉ = 6 BatchGetSecretValue calls; the
    // bound the fleet tick must stay within is ⌈N/20⌉ + ⌈N/100⌉ + 2 = 10 (a read per secret
    // would cost 2N = 210).
    assert_eq!(spent, 2 + 6);
    assert!(spent <= n.div_ceil(20) as u64 + n.div_ceil(100) as u64 + 2);
    assert_eq!(fleet.standin.stats().login_requests, 0);
}

#[tokio::test]
async fn secrets_that_share_a_user_log_in_the_interval_apart_within_and_across_ticks() {
    let fleet = World::in_region("eu-west-3", 1).await;
    let first = fleet.integration(0, None).await;
    let config = fleet
        .fleet_config()
        .to_builder()
        .min_login_interval(Duration::from_secs(2))
        .build()
        .expect("a valid test configuration");
    // Another invocation (its own process, its own pacer) logs in for the user first.
    fleet
        .broker_with(config.clone())
        .handle(
            &json!({"action": "refresh", "secret_ids": [first]}),
            deadline(30),
        )
        .await
        .unwrap();
    let others = [
        fleet.integration(0, None).await,
        fleet.integration(0, None).await,
    ];

    let answer = fleet
        .broker_with(config)
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    let got = outcomes(&answer);
    assert_eq!(got[&first], "fresh");
    assert!(others.iter().all(|s| got[s] == "refreshed"), "{answer}");

    let mut starts = vec![fleet.login_tag(&first).await];
    for secret in &others {
        starts.push(fleet.login_tag(secret).await);
    }
    starts.sort();
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= time::Duration::seconds(2),
            "login starts of one user closer than the interval: {starts:?}"
        );
    }
    assert_eq!(fleet.standin.logins_for(&fleet.users[0].username), 3);
    assert_eq!(fleet.standin.stats().rate_limited, 0);
}

#[tokio::test]
async fn no_rolling_window_holds_more_logins_than_the_cap() {
    let users = 7;
    let fleet = World::in_region("eu-central-1", users).await;
    let mut secrets = Vec::new();
    for user in 0..users {
        secrets.push(fleet.integration(user, None).await);
    }
    // 3 logins per 2-second window (a compressed minute).
    let window = Duration::from_secs(2);
    let broker = fleet
        .broker_with(
            fleet
                .fleet_config()
                .to_builder()
                .max_logins_per_minute(3.try_into().unwrap())
                .build()
                .expect("a valid test configuration"),
        )
        .with_login_window(window);
    let answer = broker
        .handle(&scheduled_event(), deadline(60))
        .await
        .unwrap();
    assert!(
        outcomes(&answer).values().all(|o| o == "refreshed"),
        "{answer}"
    );

    let mut starts = Vec::new();
    for secret in &secrets {
        starts.push(fleet.login_tag(secret).await);
    }
    starts.sort();
    for (i, start) in starts.iter().enumerate() {
        let in_window = starts[i..]
            .iter()
            .filter(|t| **t - *start < time::Duration::try_from(window).unwrap())
            .count();
        assert!(in_window <= 3, "more than 3 starts in a window: {starts:?}");
    }
    // 7 logins at 3 per window need at least two windows.
    assert!(
        starts[6] - starts[0] >= time::Duration::seconds(4),
        "{starts:?}"
    );
    let fleet_line = fleet
        .metric_lines()
        .into_iter()
        .find(|l| l.get("SecretsManaged").is_some())
        .unwrap();
    assert_eq!(fleet_line["LoginAttempts"], 7.0);
}

#[tokio::test]
async fn a_rotation_that_cannot_finish_before_the_deadline_is_deferred_and_fails_only_if_the_token_would_not_last()
 {
    let fleet = World::in_region("ap-southeast-1", 3).await;
    let missing = fleet.integration(0, None).await;
    let lasts = fleet.integration(1, Some(3)).await;
    let expiring = fleet.integration(2, Some(0)).await; // less than an hour left
    // One login per minute: the most urgent secret takes it, the others cannot get a slot
    // before the deadline.
    let broker = fleet.broker_with(
        fleet
            .fleet_config()
            .to_builder()
            .max_logins_per_minute(1.try_into().unwrap())
            .build()
            .expect("a valid test configuration"),
    );
    let report = broker.refresh_fleet(false, deadline(30)).await.unwrap();
    let by_id: HashMap<&str, &iadvize_token_broker::refresh::SecretResult> = report
        .results
        .iter()
        .map(|r| (r.secret_id.as_str(), r))
        .collect();
    use iadvize_token_broker::refresh::Outcome;
    assert_eq!(by_id[missing.as_str()].outcome, Outcome::Refreshed);
    assert_eq!(by_id[lasts.as_str()].outcome, Outcome::Deferred);
    assert!(
        by_id[lasts.as_str()].error.is_none(),
        "3 h left: no failure"
    );
    assert_eq!(by_id[expiring.as_str()].outcome, Outcome::Deferred);
    assert!(by_id[expiring.as_str()].error.is_some());
    let failure = report.failure().expect("the expiring token fails the tick");
    assert!(failure.to_string().contains(&expiring), "{failure}");
    assert!(!failure.to_string().contains(&lasts), "{failure}");
    assert_eq!(fleet.standin.stats().login_requests, 1);

    let fleet_line = fleet
        .metric_lines()
        .into_iter()
        .find(|l| l.get("SecretsManaged").is_some())
        .unwrap();
    assert_eq!(fleet_line["SecretsDeferred"], 2.0);
    assert_eq!(fleet_line["SecretsRefreshed"], 1.0);
}

#[tokio::test]
async fn with_too_little_time_left_nothing_starts_and_deferred_tokens_that_last_do_not_fail() {
    let fleet = World::in_region("ap-northeast-1", 1).await;
    let due = fleet.integration(0, Some(3)).await;
    let broker = fleet.broker_with(fleet.fleet_config());
    // http_timeout 2 s: a login, a verification and the writes need about 7 s.
    let answer = broker
        .handle(&scheduled_event(), deadline(4))
        .await
        .unwrap();
    assert_eq!(outcomes(&answer)[&due], "deferred", "{answer}");
    assert_eq!(fleet.standin.stats().login_requests, 0);

    let missing = fleet.integration(0, None).await;
    let err = broker
        .handle(&scheduled_event(), deadline(4))
        .await
        .expect_err("a missing token deferred is a failure");
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(err.to_string().contains("deferred"), "{err}");
    let last = fleet
        .metric_lines()
        .into_iter()
        .rfind(|l| l.get("SecretsManaged").is_some())
        .unwrap();
    assert_eq!(last["MinSecondsUntilExpiry"], 0.0, "a secret has no token");
    assert_eq!(last["SecretsDeferred"], 2.0);
}

#[tokio::test]
async fn a_tick_emits_one_fleet_wide_line_and_per_secret_lines_only_when_asked() {
    let fleet = World::in_region("ca-central-1", 2).await;
    let fresh = fleet.integration(0, Some(20)).await;
    let due = fleet.integration(1, None).await;
    fleet
        .broker_with(fleet.fleet_config())
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    // Besides the fleet-wide line, only the logins by outcome (dimension `Outcome`, a few
    // fixed values): nothing per secret.
    let (by_outcome, lines): (Vec<Value>, Vec<Value>) = fleet
        .metric_lines()
        .into_iter()
        .partition(|l| l.get("Outcome").is_some());
    assert_eq!(lines.len(), 1, "only the fleet-wide line: {lines:?}");
    assert_eq!(by_outcome.len(), 1, "{by_outcome:?}");
    assert_eq!(by_outcome[0]["Outcome"], "ok");
    assert!(by_outcome[0].get("SecretName").is_none());
    let line = &lines[0];
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "IadvizeTokenBroker");
    assert_eq!(directive["Dimensions"], json!([[]]));
    assert!(line.get("SecretName").is_none());
    assert_eq!(line["SecretsManaged"], 2.0);
    assert_eq!(line["SecretsRefreshed"], 1.0);
    assert_eq!(line["SecretsFailed"], 0.0);
    assert_eq!(line["SecretsDeferred"], 0.0);
    assert_eq!(line["LoginAttempts"], 1.0);
    // The least time left is the fresh token's (about 20 h), not the new one's (24 h).
    let min = line["MinSecondsUntilExpiry"].as_f64().unwrap();
    assert!((71_000.0..=72_000.0).contains(&min), "{min}");

    let before = fleet.metrics.lines().len();
    fleet
        .broker_with(
            fleet
                .fleet_config()
                .to_builder()
                .per_secret_metrics(true)
                .build()
                .expect("a valid test configuration"),
        )
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    let per_secret: Vec<Value> = fleet.metric_lines()[before..]
        .iter()
        .filter(|l| l.get("SecretName").is_some())
        .cloned()
        .collect();
    for secret in [&fresh, &due] {
        assert!(
            per_secret
                .iter()
                .any(|l| l["SecretName"] == **secret && l.get("SecondsUntilExpiry").is_some()),
            "{secret}: {per_secret:?}"
        );
    }
}

#[tokio::test]
async fn status_covers_the_whole_fleet_with_a_summary_first() {
    let fleet = World::in_region("sa-east-1", 1).await;
    let fresh = fleet.integration(0, Some(20)).await;
    let due = fleet.integration(0, None).await;
    let listed_expired = fleet
        .token_secret(0, &[], Some(&unverified_record(-1)))
        .await;
    let broker = fleet.broker_with(
        fleet
            .fleet_config()
            .to_builder()
            .token_secret_ids(vec![listed_expired.clone()])
            .build()
            .expect("a valid test configuration"),
    );
    let answer = broker
        .handle(&json!({"action": "status"}), deadline(30))
        .await
        .unwrap();
    assert_eq!(
        answer["summary"],
        json!({"managed": 3, "fresh": 1, "due": 1, "failed": 1, "blocked": 0}),
        "{answer}"
    );
    let ids: HashSet<&str> = answer["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["secret_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [fresh.as_str(), due.as_str(), listed_expired.as_str()].into()
    );
    assert_eq!(
        fleet.standin.stats().login_requests,
        0,
        "status never logs in"
    );
}
