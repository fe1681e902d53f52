//! The SQS poller that plays Lambda's event source mapping, against moto's SQS (a FIFO queue
//! with content-based deduplication, as the broker's report queue) and the Runtime API harness
//! running the hand-written echo function.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use serde_json::{Value, json};
use standins::LambdaHarness;
use standins::sqs_poller::{self, SqsPoller};

fn moto() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "MOTO_ENDPOINT is not set: run the tests with `scripts/with-moto.sh cargo nextest run`"
        )
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn harness() -> LambdaHarness {
    let env = [("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "broker".to_owned())];
    LambdaHarness::start(Path::new(env!("CARGO_BIN_EXE_echo-function")), &env)
        .await
        .expect("start the harness")
        .with_timeout(Duration::from_secs(20))
}

async fn queue(sqs: &Client, visibility: Duration) -> String {
    sqs_poller::create_fifo_queue(sqs, &format!("{}.fifo", unique("reports")), visibility)
        .await
        .expect("create the queue")
}

async fn send(sqs: &Client, queue_url: &str, group: &str, body: &Value) -> String {
    sqs.send_message()
        .queue_url(queue_url)
        .message_group_id(group)
        .message_body(body.to_string())
        .send()
        .await
        .expect("send")
        .message_id()
        .expect("a message id")
        .to_owned()
}

fn report(secret_id: &str, n: u8) -> Value {
    json!({"action": "report-rejected", "secret_id": secret_id, "token_sha256": format!("{n:064x}")})
}

#[tokio::test]
async fn batches_reach_the_function_as_lambda_sqs_events_and_are_deleted() {
    let sqs = sqs_poller::client(&moto());
    let queue_url = queue(&sqs, Duration::from_secs(30)).await;
    let a1 = report("team/a", 1);
    let a2 = report("team/a", 2);
    let b1 = report("team/b", 1);
    send(&sqs, &queue_url, "team/a", &a1).await;
    send(&sqs, &queue_url, "team/a", &a1).await; // a repeat: content-based deduplication drops it
    send(&sqs, &queue_url, "team/a", &a2).await;
    send(&sqs, &queue_url, "team/b", &b1).await;
    let function = harness().await;
    let poller = SqsPoller::new(sqs.clone(), &queue_url);
    let queue_name = queue_url.rsplit('/').next().expect("a name");
    assert_eq!(
        poller.queue_arn(),
        format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}")
    );

    let batches = poller
        .drain(&function, Duration::from_secs(1), 10)
        .await
        .expect("poll");

    let mut bodies_by_group: Vec<(String, Value)> = Vec::new();
    for batch in &batches {
        let answer = batch.result.as_ref().expect("the function answered");
        assert_eq!(answer["echo"], batch.event, "the function got the event");
        let records = batch.event["Records"].as_array().expect("Records");
        assert!(!records.is_empty() && records.len() <= 10);
        for record in records {
            assert_eq!(record["eventSource"], "aws:sqs");
            assert_eq!(record["eventSourceARN"], poller.queue_arn());
            assert_eq!(record["awsRegion"], "us-east-1");
            assert!(
                record["messageId"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty())
            );
            assert!(
                record["receiptHandle"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty())
            );
            assert!(
                record["md5OfBody"]
                    .as_str()
                    .is_some_and(|md5| md5.len() == 32)
            );
            assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
            assert!(record["attributes"]["SentTimestamp"].is_string());
            assert!(record["attributes"]["MessageDeduplicationId"].is_string());
            let group = record["attributes"]["MessageGroupId"]
                .as_str()
                .expect("a group");
            let body =
                serde_json::from_str(record["body"].as_str().expect("a body")).expect("JSON");
            bodies_by_group.push((group.to_owned(), body));
        }
        let ids: Vec<&str> = records
            .iter()
            .filter_map(|r| r["messageId"].as_str())
            .collect();
        assert_eq!(batch.deleted, ids, "every record handled is deleted");
    }
    let group = |name: &str| -> Vec<Value> {
        bodies_by_group
            .iter()
            .filter(|(g, _)| g == name)
            .map(|(_, body)| body.clone())
            .collect()
    };
    assert_eq!(
        group("team/a"),
        vec![a1, a2],
        "in order, the repeat dropped"
    );
    assert_eq!(group("team/b"), vec![b1]);
    assert_eq!(bodies_by_group.len(), 3);
    assert!(
        poller
            .receive(Duration::ZERO)
            .await
            .expect("receive")
            .is_none(),
        "the queue is empty"
    );
    function.shutdown().await;
}

#[tokio::test]
async fn a_failed_invocation_leaves_the_batch_and_reported_item_failures_stay_queued() {
    let sqs = sqs_poller::client(&moto());
    let queue_url = queue(&sqs, Duration::from_secs(1)).await;
    let poller = SqsPoller::new(sqs.clone(), &queue_url).batch_size(10);
    let kept = send(
        &sqs,
        &queue_url,
        "team/a",
        &json!({"fail_item": true, "n": 1}),
    )
    .await;
    let handled = send(&sqs, &queue_url, "team/b", &json!({"n": 2})).await;

    // The function reports one record as failed: only the other one is deleted.
    let function = harness().await;
    let batch = poller
        .poll_once(&function, Duration::from_secs(1))
        .await
        .expect("poll")
        .expect("a batch");
    assert_eq!(
        batch.event["Records"].as_array().map(Vec::len),
        Some(2),
        "{}",
        batch.event
    );
    assert_eq!(batch.deleted, vec![handled]);

    // A function that cannot answer: nothing is deleted, the message comes back after the
    // visibility timeout (1 s here), received a second time.
    function.shutdown().await;
    let dead = LambdaHarness::start(Path::new("/bin/true"), &[])
        .await
        .expect("start a function that exits at once");
    let mut again = None;
    for _ in 0..5 {
        again = poller
            .poll_once(&dead, Duration::from_secs(2))
            .await
            .expect("poll");
        if again.is_some() {
            break;
        }
    }
    let again = again.expect("the message came back");
    assert!(again.result.is_err(), "{:?}", again.result);
    assert!(again.deleted.is_empty());
    let record = &again.event["Records"][0];
    assert_eq!(record["messageId"], kept.as_str());
    assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
    assert_eq!(
        again.bodies(),
        vec![json!({"fail_item": true, "n": 1}).to_string()]
    );
}

#[tokio::test]
async fn a_background_poller_hands_messages_to_the_function_while_a_test_runs() {
    let sqs = sqs_poller::client(&moto());
    let queue_url = queue(&sqs, Duration::from_secs(30)).await;
    let function = Arc::new(harness().await);
    let poller = SqsPoller::new(sqs.clone(), &queue_url)
        .run_in_background(function.clone(), Duration::from_secs(1));

    let report = report("team/a", 7);
    send(&sqs, &queue_url, "team/a", &report).await;
    for _ in 0..100 {
        if poller.batches_handled() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batches = poller.stop().await.expect("no SQS error");
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].bodies(), vec![report.to_string()]);
    assert_eq!(batches[0].deleted.len(), 1);
    assert!(
        sqs_poller::take_all(&sqs, &queue_url, Duration::ZERO)
            .await
            .expect("receive")
            .is_empty()
    );
}
