//! Healing between ticks: rejection reports (direct, through the report queue, from the
//! CLI's library call) and credentials events, against moto (Secrets Manager and SQS), the
//! iAdvize stand-in (which revokes tokens on demand) and the real binary behind the Lambda
//! harness fed by the SQS poller. iAdvize calls are counted by the stand-in; "nothing
//! written" is checked by comparing the secret's versions and tags before and after.
//!
//! A watching consumer reads AWSCURRENT throughout the tests that revoke a token: the only
//! value it may see refused is the one iAdvize revoked; every token the broker publishes
//! after it must be accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::rig::Rig;
use crate::support::watcher::{WatchReport, Watcher};
use crate::support::*;
use iadvize_token_broker::token::AccessToken;
use iadvize_token_consumer::TokenSource;
use iadvize_token_consumer::report::token_sha256;
use serde_json::{Value, json};
use standins::sqs_poller::{SqsClient, SqsPoller};

fn report_of(secret_id: &str, token: &str) -> Value {
    json!({
        "action": "report-rejected",
        "secret_id": secret_id,
        "token_sha256": token_sha256(&AccessToken::new(token.to_owned())),
    })
}

/// The one result of a direct report.
fn single(answer: &Value) -> &Value {
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{answer}");
    &results[0]
}

/// Versions (with stages) and tags: what "nothing written" compares.
async fn snapshot(
    world: &World,
    secret_id: &str,
) -> (HashMap<String, Vec<String>>, HashMap<String, String>) {
    (
        stages_of(&world.sm, secret_id).await,
        tags_of(&world.sm, secret_id).await,
    )
}

fn watcher(world: &World) -> impl std::future::Future<Output = Watcher> + '_ {
    Watcher::start(sm_client(), &world.token_id, world.standin.token_checker())
}

/// Only the revoked version may have been seen refused; the broker published an accepted one.
fn assert_only_the_revoked_version_was_refused(report: &WatchReport, revoked: &str) {
    assert!(
        report.violations.iter().all(|v| v.version_id == revoked),
        "a token published after the revocation was refused: {:?}",
        report.violations
    );
    assert!(report.versions_seen >= 2, "{report:?}");
}

#[tokio::test]
async fn a_report_of_a_token_that_is_no_longer_current_is_superseded_without_asking_iadvize() {
    let world = World::new().await;
    world.fill().await;
    let old = world.login_directly().await;
    let watch = watcher(&world).await;
    let before = snapshot(&world, &world.token_id).await;
    let (logins, verifications) = (world.logins(), world.verifications());

    let answer = world
        .broker()
        .handle(&report_of(&world.token_id, &old), deadline(20))
        .await
        .unwrap();

    assert_eq!(single(&answer)["outcome"], "superseded", "{answer}");
    assert!(single(&answer)["expires_at"].is_string());
    assert_eq!(
        (world.logins(), world.verifications()),
        (logins, verifications)
    );
    assert_eq!(snapshot(&world, &world.token_id).await, before);
    watch.finish().await.assert_clean();
}

#[tokio::test]
async fn a_report_of_a_token_iadvize_accepts_asks_once_and_the_answer_is_remembered_across_invocations()
 {
    let world = World::new().await;
    world.fill().await;
    let token = world.current_token().await;
    let stages = world.stages().await;
    let (logins, verifications) = (world.logins(), world.verifications());
    let event = report_of(&world.token_id, &token);

    let first = world.broker().handle(&event, deadline(20)).await.unwrap();
    assert_eq!(single(&first)["outcome"], "accepted", "{first}");
    assert_eq!(world.verifications(), verifications + 1);
    let memo = world.tags().await["iadvize:last-report-verification"].clone();
    let hash = token_sha256(&AccessToken::new(token.clone()));
    assert!(memo.ends_with(&format!(" accepted {hash}")), "{memo}");

    // Another invocation (a new broker, no shared memory) within the interval: the tag answers.
    let second = world.broker().handle(&event, deadline(20)).await.unwrap();
    assert_eq!(single(&second)["outcome"], "accepted", "{second}");
    assert_eq!(world.verifications(), verifications + 1, "no second call");
    assert_eq!(world.logins(), logins, "no login");
    assert_eq!(world.stages().await, stages, "no new version");

    // With the interval at 0s every report asks again.
    let config = world
        .config()
        .to_builder()
        .report_verify_interval(Duration::ZERO)
        .build()
        .unwrap();
    let third = world
        .broker_with(config)
        .handle(&event, deadline(20))
        .await
        .unwrap();
    assert_eq!(single(&third)["outcome"], "accepted");
    assert_eq!(world.verifications(), verifications + 2);
}

#[tokio::test]
async fn a_report_of_a_revoked_token_refreshes_it_within_the_invocation() {
    let world = World::new().await;
    world.fill().await;
    let token = world.current_token().await;
    let revoked = world.stages().await;
    let revoked = revoked
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"))
        .unwrap()
        .0
        .clone();
    let watch = watcher(&world).await;
    world.standin.revoke_all_tokens();
    let logins = world.logins();

    let answer = world
        .broker()
        .handle(&report_of(&world.token_id, &token), deadline(20))
        .await
        .unwrap();

    assert_eq!(single(&answer)["outcome"], "refreshed", "{answer}");
    assert_eq!(world.logins(), logins + 1);
    assert_valid_current(&world).await;
    assert!(
        world.tags().await["iadvize:last-report-verification"].contains(" rejected "),
        "the rejection is remembered"
    );
    // The same report again (a consumer that had not re-read yet): the token moved on.
    let again = world
        .broker()
        .handle(&report_of(&world.token_id, &token), deadline(20))
        .await
        .unwrap();
    assert_eq!(single(&again)["outcome"], "superseded");
    assert_eq!(world.logins(), logins + 1);
    assert_only_the_revoked_version_was_refused(&watch.finish().await, &revoked);
}

#[tokio::test]
async fn twenty_concurrent_reports_of_a_revoked_token_cost_one_login() {
    let world = World::new().await;
    world.fill().await;
    let token = world.current_token().await;
    world.standin.revoke_all_tokens();
    let logins = world.logins();
    let broker = world.broker();
    let event = report_of(&world.token_id, &token);

    // Twenty invocations' worth of reports at once, interleaved on one task (the broker's
    // futures are not `Send`; the Lambda runtime runs them on one task too).
    let answers =
        futures::future::join_all((0..20).map(|_| broker.handle(&event, deadline(30)))).await;

    let mut outcomes: Vec<String> = answers
        .into_iter()
        .map(|a| {
            let answer = a.unwrap();
            single(&answer)["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(world.logins(), logins + 1, "one login for twenty reports");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "refreshed").count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| o == "refreshed" || o == "superseded"),
        "{outcomes:?}"
    );
    assert_valid_current(&world).await;
}

/// Processes (Lambda execution environments) reporting one revoked token at the same moment,
/// outside the queue's one message group (operators' reports, direct invokes; half name the
/// secret, half its ARN): the per-process lock cannot serialise them, the secret's state must.
const PROCESSES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_reporting_one_revoked_token_at_once_log_in_once() {
    let rig = Rig::new().await;
    let world = &rig.world;
    world.fill().await;
    // The filling login is long past: nothing but the reports' own logins holds one back.
    tag(
        &world.sm,
        &world.token_id,
        "iadvize:last-login-attempt",
        "2026-01-01T00:00:00Z",
    )
    .await;
    let token = world.current_token().await;
    let arn = world.arn_of(&world.token_id).await;
    let mut brokers = Vec::new();
    for _ in 0..PROCESSES {
        // The login spacing (default 10 s) is what one process's login tag holds the others
        // back with.
        let broker = rig.broker(&[("IADVIZE_MIN_LOGIN_INTERVAL", "10s")]).await;
        broker.ready().await.expect("the broker starts");
        brokers.push(broker);
    }
    world.standin.revoke_all_tokens();
    let logins = world.logins();

    let answers = futures::future::join_all(brokers.iter().enumerate().map(|(i, broker)| {
        let event = report_of(if i % 2 == 0 { &world.token_id } else { &arn }, &token);
        async move { broker.invoke(&event).await }
    }))
    .await;

    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|a| {
            let answer = a.as_ref().expect("every report is answered");
            single(answer)["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    outcomes.sort();
    let spent = world.logins() - logins;
    eprintln!("{PROCESSES} processes: {spent} login(s), outcomes {outcomes:?}");
    // Each process re-reads the secret before its login and reads its login stamp back
    // after writing it: the last writer logs in, the others are held back. Secrets Manager
    // has no conditional write, so one more login remains possible when a process is slowed
    // between its read and its write for longer than another's write and read-back (about
    // one Secrets Manager round trip); without these reads every process logged in.
    assert!(
        (1..=2).contains(&spent),
        "at most one login beyond the first for {PROCESSES} processes: {spent}, {outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "refreshed").count(),
        spent as usize,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| ["refreshed", "in_progress", "superseded"].contains(&o.as_str())),
        "{outcomes:?}"
    );
    assert_valid_current(world).await;
    for broker in brokers {
        let logs = broker.finish().await;
        assert!(!logs.contains(&token), "the token never reaches the logs");
    }
}

#[tokio::test]
async fn a_secret_listed_by_its_partial_arn_is_managed_for_reports() {
    let world = World::new().await;
    world.fill().await;
    let token = world.current_token().await;
    let arn = world.arn_of(&world.token_id).await;
    // Without Secrets Manager's six-character suffix ("-AbCdEf"), as IAM policies write it.
    let partial = arn[..arn.len() - 7].to_owned();
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .token_secret_ids(vec![partial])
            .build()
            .unwrap(),
    );
    for id in [&world.token_id, &arn] {
        let answer = broker
            .handle(&report_of(id, &token), deadline(20))
            .await
            .unwrap();
        assert_eq!(single(&answer)["outcome"], "accepted", "{id}: {answer}");
    }
}

#[tokio::test]
async fn bad_reports_are_errors_naming_the_problem_and_change_nothing() {
    let world = World::new().await;
    world.fill().await;
    let token = world.current_token().await;
    world.standin.revoke_all_tokens();
    let unmanaged = unique("unmanaged");
    world
        .sm
        .create_secret()
        .name(&unmanaged)
        .secret_string(world.current().await.unwrap().to_string())
        .send()
        .await
        .unwrap();
    let hash = token_sha256(&AccessToken::new(token.clone()));
    let cases = [
        (
            report_of(&unmanaged, &token),
            "NotManaged",
            "not a token secret this broker manages",
        ),
        (
            report_of(&unique("missing"), &token),
            "SecretNotFound",
            "was not found",
        ),
        (
            json!({"action": "report-rejected", "secret_id": world.token_id, "token_sha256": &hash[..63]}),
            "InvalidEvent",
            "token_sha256 is a string of 63 characters, expected 64 hexadecimal digits",
        ),
        (
            json!({"action": "report-rejected", "secret_id": world.token_id, "token_sha256": format!("{}zz", &hash[..62])}),
            "InvalidEvent",
            "token_sha256 is a string of 64 characters, expected 64 hexadecimal digits",
        ),
        (
            json!({"action": "report-rejected", "secret_id": world.token_id, "token_sha256": 42}),
            "InvalidEvent",
            "token_sha256 is an integer, expected 64 hexadecimal digits",
        ),
        (
            json!({"action": "report-rejected", "secret_id": "", "token_sha256": hash}),
            "InvalidEvent",
            "secret_id is an empty string",
        ),
        (
            json!({"action": "report-rejected", "token_sha256": hash}),
            "InvalidEvent",
            "secret_id is missing",
        ),
        (
            json!({"action": "report-rejected", "secret_id": world.token_id}),
            "InvalidEvent",
            "token_sha256 is missing",
        ),
        (
            json!({"action": "report-rejected", "secret_id": world.token_id, "token_sha256": hash, "force": true}),
            "InvalidEvent",
            "unknown field(s) [force]",
        ),
    ];
    let before = (
        snapshot(&world, &world.token_id).await,
        snapshot(&world, &unmanaged).await,
    );
    let (logins, verifications) = (world.logins(), world.verifications());
    for (event, kind, expected) in cases {
        let error = world
            .broker()
            .handle(&event, deadline(20))
            .await
            .unwrap_err();
        assert_eq!(error.kind().as_str(), kind, "{event}: {error}");
        let message = error.to_string();
        assert!(
            message.contains(expected),
            "{message} should say {expected}"
        );
        assert!(!message.contains(&token), "the token is never echoed");
    }
    assert_eq!(
        (world.logins(), world.verifications()),
        (logins, verifications),
        "no iAdvize call"
    );
    let after = (
        snapshot(&world, &world.token_id).await,
        snapshot(&world, &unmanaged).await,
    );
    assert_eq!(after, before, "nothing written");
}

// ---------------------------------------------------------------------------------------
// Through the queue: the SQS poller plays the event source mapping, the real binary answers.
// ---------------------------------------------------------------------------------------

async fn send(sqs: &SqsClient, url: &str, group: &str, body: &str) {
    sqs.send_message()
        .queue_url(url)
        .message_group_id(group)
        .message_body(body)
        .send()
        .await
        .expect("send");
}

#[tokio::test]
async fn through_the_queue_a_report_heals_and_other_bodies_change_nothing() {
    let rig = Rig::new().await;
    let world = &rig.world;
    world.fill().await;
    let token = world.current_token().await;
    let (sqs, url) = report_queue().await;
    // Bodies that are not reports: an operator event, a rotation step, not JSON, a report
    // with a bad hash. None may do anything.
    let others = [
        json!({"action": "refresh", "force": true}).to_string(),
        step_event(
            "createSecret",
            &world.token_id,
            &uuid::Uuid::new_v4().to_string(),
        )
        .to_string(),
        "not json at all".to_owned(),
        json!({"action": "report-rejected", "secret_id": world.token_id, "token_sha256": "abc"})
            .to_string(),
    ];
    for body in &others {
        send(&sqs, &url, &world.token_id, body).await;
    }
    let broker = rig.broker(&[]).await;
    let poller = SqsPoller::new(sqs.clone(), &url).batch_size(10);
    let before = snapshot(world, &world.token_id).await;
    let (logins, verifications) = (world.logins(), world.verifications());

    let batches = poller
        .drain(&broker, Duration::from_secs(1), 5)
        .await
        .unwrap();
    let answers: Vec<&Value> = batches
        .iter()
        .map(|b| {
            b.result
                .as_ref()
                .expect("an SQS invocation always succeeds")
        })
        .collect();
    let ignored: u64 = answers.iter().map(|a| a["ignored"].as_u64().unwrap()).sum();
    assert_eq!(ignored, 4, "{answers:?}");
    assert!(answers.iter().all(|a| a.get("batchItemFailures").is_none()));
    assert_eq!(
        (world.logins(), world.verifications()),
        (logins, verifications),
        "no iAdvize call"
    );
    assert_eq!(
        snapshot(world, &world.token_id).await,
        before,
        "nothing written"
    );

    // Now a real report of a revoked token.
    let watch = rig.watch().await;
    let revoked = before
        .0
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"))
        .unwrap()
        .0
        .clone();
    world.standin.revoke_all_tokens();
    let report = report_of(&world.token_id, &token).to_string();
    send(&sqs, &url, &world.token_id, &report).await;
    let batches = poller
        .drain(&broker, Duration::from_secs(1), 5)
        .await
        .unwrap();
    let answer = batches[0].result.as_ref().unwrap();
    assert_eq!(answer["results"][0]["outcome"], "refreshed", "{answer}");
    assert_eq!(world.logins(), logins + 1);
    assert_valid_current(world).await;
    let logs = broker.finish().await;
    assert!(!logs.contains(&token), "the token never reaches the logs");
    assert!(
        logs.contains("ReportBodiesIgnored"),
        "ignored bodies are counted"
    );
    assert!(logs.contains("\"RejectionReports\""), "reports are counted");
    assert!(
        !logs.contains("MinSecondsUntilExpiry"),
        "no fleet-wide gauge"
    );
    assert_only_the_revoked_version_was_refused(&watch.finish().await, &revoked);
}

// ---------------------------------------------------------------------------------------
// Credentials events.
// ---------------------------------------------------------------------------------------

fn label_updated(arn: &str, name: &str, label: &str) -> Value {
    json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(),
        "source": "aws.secretsmanager", "detail-type": "Secret Label Updated",
        "account": "123456789012", "region": REGION, "time": "2026-11-30T10:00:00Z",
        "resources": [arn],
        "detail": {"name": name, "labelUpdated": label, "versionId": uuid::Uuid::new_v4().to_string()}
    })
}

fn cloudtrail(call: &str, secret_id: &str) -> Value {
    json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(),
        "source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": "secretsmanager.amazonaws.com", "eventName": call,
                   "requestParameters": {"secretId": secret_id}}
    })
}

#[tokio::test]
async fn the_brokers_own_write_to_a_token_secret_costs_one_describe_and_no_iadvize_call() {
    let world = World::new().await;
    world.fill().await;
    let arn = world.arn_of(&world.token_id).await;
    let broker = world.broker();
    let (logins, verifications) = (world.logins(), world.verifications());
    for event in [
        label_updated(&arn, &world.token_id, "AWSCURRENT"),
        cloudtrail("PutSecretValue", &world.token_id),
    ] {
        let calls = broker.store().calls();
        let answer = broker.handle(&event, deadline(20)).await.unwrap();
        assert_eq!(answer["results"], json!([]), "{answer}");
        assert_eq!(broker.store().calls() - calls, 1, "one DescribeSecret");
    }
    // A custom label, and a call that moves no AWSCURRENT: not even a DescribeSecret.
    for event in [
        label_updated(&arn, &world.token_id, "MYLABEL"),
        cloudtrail("TagResource", &world.token_id),
    ] {
        let calls = broker.store().calls();
        let answer = broker.handle(&event, deadline(20)).await.unwrap();
        assert_eq!(answer["results"], json!([]));
        assert_eq!(broker.store().calls(), calls);
    }
    assert_eq!(
        (world.logins(), world.verifications()),
        (logins, verifications)
    );
}

#[tokio::test]
async fn corrected_credentials_are_used_within_the_invocation_of_either_event_shape() {
    for native in [true, false] {
        let world = World::new().await;
        world.fill().await;
        // The password changes at iAdvize (which revokes the tokens); the broker is refused
        // and blocks the old credentials.
        let new_password = unique("pw2");
        world.standin.set_password(&world.username, &new_password);
        world.standin.revoke_all_tokens();
        let tick = world
            .broker()
            .refresh(std::slice::from_ref(&world.token_id), true, deadline(20))
            .await;
        assert!(tick.failure().is_some());
        assert!(world.is_blocked().await);
        let logins = world.logins();

        // The operator puts the corrected credentials; the event follows.
        world.put_credentials(&world.username, &new_password).await;
        let event = if native {
            let arn = world.arn_of(&world.creds_id).await;
            label_updated(&arn, &world.creds_id, "AWSCURRENT")
        } else {
            cloudtrail("PutSecretValue", &world.creds_id)
        };
        let answer = world.broker().handle(&event, deadline(20)).await.unwrap();

        assert_eq!(single(&answer)["outcome"], "refreshed", "{answer}");
        assert_eq!(world.logins(), logins + 1);
        assert!(!world.is_blocked().await, "the block is lifted");
        assert_valid_current(&world).await;
    }
}

#[tokio::test]
async fn a_credentials_change_verifies_a_good_token_once_and_refreshes_a_revoked_one() {
    let world = World::new().await;
    world.fill().await;
    tag(&world.sm, &world.creds_id, "iadvize:credentials", "true").await;
    // Without the default credentials setting, the tag says this is a credentials secret.
    let config = world
        .config()
        .to_builder()
        .credentials_secret_id(None)
        .build()
        .unwrap();
    tag(
        &world.sm,
        &world.token_id,
        "iadvize:credentials-secret-id",
        &world.creds_id,
    )
    .await;
    let event = cloudtrail("UpdateSecret", &world.creds_id);
    let (logins, verifications) = (world.logins(), world.verifications());

    let answer = world
        .broker_with(config.clone())
        .handle(&event, deadline(20))
        .await
        .unwrap();
    assert_eq!(single(&answer)["outcome"], "accepted", "{answer}");
    assert_eq!(world.verifications(), verifications + 1);
    assert_eq!(world.logins(), logins);

    world.standin.revoke_all_tokens();
    let answer = world
        .broker_with(config)
        .handle(&event, deadline(20))
        .await
        .unwrap();
    assert_eq!(
        single(&answer)["outcome"],
        "refreshed",
        "the remembered acceptance does not count after a credentials change: {answer}"
    );
    assert_eq!(world.logins(), logins + 1);
    assert_valid_current(&world).await;
}

// ---------------------------------------------------------------------------------------
// End to end: a consumer's 401 → report → poller → binary → the consumer's next call works.
// ---------------------------------------------------------------------------------------

/// Runs the poller against the binary until `stop` is set.
fn keep_polling(
    poller: SqsPoller,
    broker: Arc<standins::LambdaHarness>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut answers = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(batch) = poller
                .poll_once(&broker, Duration::from_secs(1))
                .await
                .expect("poll")
            {
                answers.push(batch.result.expect("an SQS invocation always succeeds"));
            }
        }
        answers
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_consumers_refused_after_a_revocation_report_and_all_succeed_with_one_login() {
    let rig = Rig::new().await;
    let world = &rig.world;
    world.fill().await;
    let (sqs, url) = report_queue().await;
    // Half the consumers name the secret, half its ARN: their reports share one group.
    let arn = world.arn_of(&world.token_id).await;
    let sources: Vec<Arc<TokenSource>> = [world.token_id.as_str(), arn.as_str()]
        .into_iter()
        .map(|id| {
            Arc::new(
                TokenSource::builder(sm_client(), id)
                    .report_queue(sqs.clone(), &url)
                    .report_wait(Duration::from_millis(100), Duration::from_secs(20))
                    .build(),
            )
        })
        .collect();
    let old = sources[0].token().await.unwrap();
    assert_eq!(sources[1].token().await.unwrap().expose(), old.expose());
    let revoked = world
        .stages()
        .await
        .into_iter()
        .find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"))
        .unwrap()
        .0;
    let watch = rig.watch().await;
    world.standin.revoke_all_tokens();
    let broker = Arc::new(rig.broker(&[]).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = keep_polling(
        SqsPoller::new(sqs.clone(), &url).batch_size(5),
        broker.clone(),
        stop.clone(),
    );
    let logins = world.logins();
    let api = world.standin.url();

    // Every caller is refused before any reports: "at once", however late a task starts.
    let refused = Arc::new(tokio::sync::Barrier::new(20));
    let callers: Vec<_> = (0..20)
        .map(|i| {
            let (source, api, refused) = (sources[i % 2].clone(), api.clone(), refused.clone());
            tokio::spawn(async move { refused_then_retried(&source, &api, &refused).await })
        })
        .collect();
    for caller in futures::future::join_all(callers).await {
        assert_eq!(caller.unwrap(), 200, "every caller's next call succeeds");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = polling.await.unwrap();
    assert_eq!(world.logins(), logins + 1, "one login in all: {answers:?}");
    assert!(
        answers
            .iter()
            .flat_map(|a| a["results"].as_array().unwrap())
            .any(|r| r["outcome"] == "refreshed"),
        "{answers:?}"
    );
    assert_ne!(world.current_token().await, old.expose());
    assert_only_the_revoked_version_was_refused(&watch.finish().await, &revoked);
}
