//! A Secrets Manager call that never answers: the fault proxy holds it, before it reaches
//! Secrets Manager or after Secrets Manager applied it, and keeps the connection open. The
//! real broker binary, behind the Lambda Runtime API harness, must still answer before its
//! deadline: a call held before leaves AWSCURRENT untouched and is a failure that names the
//! call; a write held after it was applied is reported as not confirmed, and the next tick
//! finds the token published and spends no second login. A watcher reads AWSCURRENT as a
//! consumer would throughout.
//!
//! The figures (how long after the hold each invocation answered, against its bound) go to
//! `target/fault-reports/holds.md`. The CLI's and the consumer crate's bounds are tested in
//! `tests/cli.rs` and `tests/it/consumer.rs`.

use std::time::Duration;

use crate::support::rig::*;
use crate::support::*;
use serde_json::Value;
use standins::sm_proxy::{Call, Fault, Hold};
use standins::{InvokeError, LambdaHarness};
use tokio::time::Instant;

/// The bounds these tests give the broker: 500 ms per attempt, 1 s per operation.
const SHORT: [(&str, &str); 2] = [
    ("IADVIZE_AWS_OPERATION_TIMEOUT", "1s"),
    ("IADVIZE_AWS_ATTEMPT_TIMEOUT", "500ms"),
];

const ORDER: [&str; 5] = [
    "tick-reads",
    "tick-deadline",
    "tick-publication",
    "tick-publication-deadline",
    "rotation-steps",
];

/// One invocation with a held call, for the report.
struct Figure {
    what: String,
    bound: String,
    answered_after: Duration,
    deadline: Duration,
    outcome: String,
}

fn table(title: &str, note: &str, figures: &[Figure]) -> String {
    let mut text = format!(
        "## {title}\n\n{note}\n\n| held call | bound | answered after | deadline | answer |\n|---|---|---|---|---|\n"
    );
    for f in figures {
        text.push_str(&format!(
            "| {} | {} | {:.2} s | {:.0} s | {} |\n",
            f.what,
            f.bound,
            f.answered_after.as_secs_f64(),
            f.deadline.as_secs_f64(),
            f.outcome.replace('|', "/")
        ));
    }
    text
}

fn report(key: &str, text: &str) {
    write_section(
        "holds",
        "Secrets Manager calls that never answer",
        &ORDER,
        key,
        text,
    );
    eprintln!("{text}");
}

/// Invokes and measures how long the answer took.
async fn timed(broker: &LambdaHarness, event: &Value) -> (Result<Value, InvokeError>, Duration) {
    let started = Instant::now();
    let answer = broker.invoke(event).await;
    (answer, started.elapsed())
}

/// The error message of a failed invocation (the tick's summary or a step's error).
fn error_of(answer: &Result<Value, InvokeError>) -> String {
    match answer {
        Err(InvokeError::Function { error_message, .. }) => error_message.clone(),
        other => panic!("expected the function to report an error, got {other:?}"),
    }
}

/// The version AWSCURRENT is on.
async fn current_version(rig: &Rig) -> String {
    rig.world
        .stages()
        .await
        .into_iter()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(version, _)| version)
        .expect("an AWSCURRENT version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_whose_read_never_gets_an_answer_reports_it_within_the_operation_time_out() {
    let mut figures = Vec::new();
    for operation in [
        "ListSecrets",
        "DescribeSecret",
        "BatchGetSecretValue",
        "GetSecretValue",
    ] {
        let rig = Rig::new().await;
        rig.world.put_record(2).await; // due: the tick would log in
        let version = current_version(&rig).await;
        let watcher = rig.watch().await;
        let before = rig.logins();
        let broker = rig.broker(&SHORT).await;
        rig.proxy.hold(operation, Hold::BeforeForwarding);
        let (answer, elapsed) = timed(&broker, &scheduled_event()).await;
        rig.proxy.calm();
        broker.shutdown().await;
        let logins = rig.logins() - before;
        let report = watcher.finish().await;

        figures.push(Figure {
            what: format!("{operation} (every call, before forwarding)"),
            bound: "1s per operation".into(),
            answered_after: elapsed,
            deadline: INVOKE_TIMEOUT,
            outcome: outcome(&answer),
        });
        assert!(
            rig.proxy.held() >= 1,
            "{operation}: nothing was held; the tick made no such call"
        );
        report.assert_clean();
        match operation {
            // Discovery fails; the listed secret is still refreshed, and the tick reports the
            // discovery failure.
            "ListSecrets" => {
                let error = error_of(&answer);
                assert!(error.contains("discovery"), "{error}");
                assert!(
                    error.contains("did not answer ListSecrets within"),
                    "{error}"
                );
                assert_eq!(logins, 1);
                rig.end_state().await.assert_good();
            }
            // The batch read falls back to reading the secret alone.
            "BatchGetSecretValue" => {
                let value = answer.unwrap_or_else(|e| panic!("{operation}: {e}"));
                assert_eq!(value["results"][0]["outcome"], "refreshed", "{value}");
                assert_eq!(logins, 1);
                rig.end_state().await.assert_good();
            }
            // The secret cannot be read (or its credentials): it fails, nothing changes and
            // no login is spent.
            _ => {
                let error = error_of(&answer);
                assert!(
                    error.contains(&format!("did not answer {operation} within")),
                    "{error}"
                );
                assert!(error.contains("IADVIZE_AWS_OPERATION_TIMEOUT"), "{error}");
                assert_eq!(logins, 0, "{operation}: no login without the read");
                assert_eq!(current_version(&rig).await, version, "AWSCURRENT untouched");
            }
        }
        assert!(
            elapsed < INVOKE_TIMEOUT,
            "{operation}: answered after {elapsed:?}, past its deadline"
        );
    }
    report(
        "tick-reads",
        &table(
            "Due tick, a read held before it reaches Secrets Manager",
            "`IADVIZE_AWS_OPERATION_TIMEOUT=1s`, `IADVIZE_AWS_ATTEMPT_TIMEOUT=500ms`; every call \
             of the operation is held (the SDK's retries too).",
            &figures,
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_answers_before_its_deadline_when_a_read_never_gets_an_answer() {
    let deadline = Duration::from_secs(3);
    let rig = Rig::new().await;
    rig.world.put_record(2).await;
    let version = current_version(&rig).await;
    let before = rig.logins();
    // The default time-outs (20 s an operation) are longer than the invocation. No
    // follow-ups: a tick that may send one keeps 2 s of its deadline to send it, which would
    // leave this one 0.5 s of work, too little on a loaded machine.
    let broker = rig
        .broker(&[("IADVIZE_MAX_FOLLOW_UPS", "0")])
        .await
        .with_timeout(deadline);
    rig.proxy.hold("DescribeSecret", Hold::BeforeForwarding);
    let (answer, elapsed) = timed(&broker, &scheduled_event()).await;
    rig.proxy.calm();
    broker.shutdown().await;

    report(
        "tick-deadline",
        &table(
            "Due tick, DescribeSecret held, default time-outs, a 3 s deadline",
            "The time left before the deadline bounds the call (500 ms are kept to answer).",
            &[Figure {
                what: "DescribeSecret (every call, before forwarding)".into(),
                bound: "the deadline".into(),
                answered_after: elapsed,
                deadline,
                outcome: outcome(&answer),
            }],
        ),
    );
    let error = error_of(&answer);
    assert!(
        error.contains("did not answer DescribeSecret within"),
        "{error}"
    );
    assert!(error.contains("before the deadline"), "{error}");
    assert!(elapsed < deadline, "answered after {elapsed:?}");
    assert_eq!(rig.logins(), before);
    assert_eq!(current_version(&rig).await, version);
}

/// A due tick whose publication (`PutSecretValue`) Secrets Manager applies but never answers:
/// the invocation reports it as not confirmed; a calm tick then finds the token published.
async fn publication_held(key: &str, title: &str, extra: &[(&str, &str)], deadline: Duration) {
    let rig = Rig::new().await;
    rig.world.put_record(2).await;
    let watcher = rig.watch().await;
    let before = rig.logins();
    let broker = rig.broker(extra).await.with_timeout(deadline);
    rig.proxy.hold("PutSecretValue", Hold::AfterApplied);
    let (answer, elapsed) = timed(&broker, &scheduled_event()).await;
    let held = rig.proxy.held();
    rig.proxy.calm();
    let first_logins = rig.logins() - before;
    let (next, _) = timed(&broker, &scheduled_event()).await;
    broker.shutdown().await;
    let end = rig.end_state().await;
    let watch = watcher.finish().await;

    report(
        key,
        &table(
            title,
            &format!(
                "Then a calm tick: {}; logins in all: {}; end: {}; watcher: {watch}.",
                outcome(&next),
                rig.logins() - before,
                end.describe()
            ),
            &[Figure {
                what: "PutSecretValue (every call, after Secrets Manager applied it)".into(),
                bound: extra
                    .iter()
                    .find(|(k, _)| *k == "IADVIZE_AWS_OPERATION_TIMEOUT")
                    .map_or("the deadline".into(), |(_, v)| format!("{v} per operation")),
                answered_after: elapsed,
                deadline,
                outcome: outcome(&answer),
            }],
        ),
    );
    let error = error_of(&answer);
    assert!(error.contains("did not answer PutSecretValue"), "{error}");
    assert!(error.contains("not confirmed"), "{error}");
    assert!(elapsed < deadline, "answered after {elapsed:?}");
    assert!(held >= 1, "the publication was held");
    assert_eq!(first_logins, 1);
    let next = next.unwrap_or_else(|e| panic!("the next tick: {e}"));
    assert_eq!(next["results"][0]["outcome"], "fresh", "{next}");
    assert_eq!(rig.logins() - before, 1, "no second login");
    end.assert_good();
    watch.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_whose_answer_never_comes_is_not_confirmed_and_costs_no_second_login() {
    publication_held(
        "tick-publication",
        "Due tick, PutSecretValue applied but never answered (1 s per operation)",
        &SHORT,
        INVOKE_TIMEOUT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_whose_answer_never_comes_is_reported_before_the_deadline() {
    // The default time-outs. An 8 s invocation leaves room for the rotation it must be able
    // to finish (1 s requests: login, verification, and 3 s for the writes), or it is deferred.
    // No follow-ups: the 2 s a tick keeps to send one would leave 0.5 s to spare, too little
    // on a loaded machine.
    publication_held(
        "tick-publication-deadline",
        "Due tick, PutSecretValue applied but never answered, default time-outs, an 8 s deadline",
        &[
            ("IADVIZE_HTTP_TIMEOUT", "1s"),
            ("IADVIZE_MAX_FOLLOW_UPS", "0"),
        ],
        Duration::from_secs(8),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_held_once_is_confirmed_by_the_sdks_retry() {
    let rig = Rig::new().await;
    rig.world.put_record(2).await;
    let before = rig.logins();
    // Room for the SDK's retry: its backoff (up to 1 s) after the 500 ms attempt.
    let broker = rig
        .broker(&[
            ("IADVIZE_AWS_OPERATION_TIMEOUT", "3s"),
            ("IADVIZE_AWS_ATTEMPT_TIMEOUT", "500ms"),
        ])
        .await;
    rig.proxy.inject(
        Call::nth_of("PutSecretValue", 1),
        Fault::Hold(Hold::AfterApplied),
    );
    let answer = broker.invoke(&scheduled_event()).await;
    broker.shutdown().await;
    // The attempt time-out gave up on the first attempt; the retry (same ClientRequestToken)
    // got Secrets Manager's answer.
    let value = answer.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value["results"][0]["outcome"], "refreshed", "{value}");
    assert_eq!(rig.proxy.calls("PutSecretValue"), 2);
    assert_eq!(rig.logins() - before, 1);
    rig.end_state().await.assert_good();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_steps_whose_calls_never_get_an_answer_fail_in_time_and_their_retries_finish() {
    let rig = Rig::new().await;
    rig.world.put_record(20).await;
    let old = current_version(&rig).await;
    let token = rig.world.start_sm_rotation().await;
    let watcher = rig.watch().await;
    let before = rig.logins();
    let broker = rig.broker(&SHORT).await;
    let step = |name: &str| step_event(name, &rig.world.token_id, &token);
    let mut figures = Vec::new();

    // createSecret: Secrets Manager applies the AWSPENDING write and never answers.
    rig.proxy.hold("PutSecretValue", Hold::AfterApplied);
    let (answer, elapsed) = timed(&broker, &step("createSecret")).await;
    rig.proxy.calm();
    figures.push(Figure {
        what: "createSecret: PutSecretValue (after Secrets Manager applied it)".into(),
        bound: "1s per operation".into(),
        answered_after: elapsed,
        deadline: INVOKE_TIMEOUT,
        outcome: outcome(&answer),
    });
    let error = error_of(&answer);
    assert!(error.contains("not confirmed"), "{error}");
    assert_eq!(rig.logins() - before, 1);
    // Secrets Manager retries the step: the token is already in AWSPENDING.
    let retried = broker.invoke(&step("createSecret")).await;
    assert!(retried.is_ok(), "createSecret again: {}", outcome(&retried));
    assert_eq!(rig.logins() - before, 1, "the retry costs no second login");

    for name in ["setSecret", "testSecret"] {
        let answer = broker.invoke(&step(name)).await;
        assert!(answer.is_ok(), "{name}: {}", outcome(&answer));
    }

    // finishSecret: the stage move never reaches Secrets Manager.
    rig.proxy
        .hold("UpdateSecretVersionStage", Hold::BeforeForwarding);
    let (answer, elapsed) = timed(&broker, &step("finishSecret")).await;
    rig.proxy.calm();
    figures.push(Figure {
        what: "finishSecret: UpdateSecretVersionStage (before forwarding)".into(),
        bound: "1s per operation".into(),
        answered_after: elapsed,
        deadline: INVOKE_TIMEOUT,
        outcome: outcome(&answer),
    });
    let error = error_of(&answer);
    assert!(
        error.contains("did not answer UpdateSecretVersionStage"),
        "{error}"
    );
    assert_eq!(current_version(&rig).await, old, "AWSCURRENT untouched");
    let retried = broker.invoke(&step("finishSecret")).await;
    assert!(retried.is_ok(), "finishSecret again: {}", outcome(&retried));
    broker.shutdown().await;

    report(
        "rotation-steps",
        &table(
            "Secrets-Manager-driven rotation, a step's call held (1 s per operation)",
            "Each failed step is sent again, as Secrets Manager retries it.",
            &figures,
        ),
    );
    assert!(figures.iter().all(|f| f.answered_after < f.deadline));
    assert_eq!(current_version(&rig).await, token);
    rig.end_state().await.assert_good();
    watcher.finish().await.assert_clean();
    assert_eq!(rig.logins() - before, 1);
}
