//! Plays a Lambda event source mapping for an SQS queue in tests: receives a batch from the
//! queue (moto's SQS in the tests), builds the event Lambda would send the function, invokes a
//! [`LambdaHarness`] running the real binary with it, and deletes what the function handled.
//!
//! The event has the shape Lambda documents for SQS (standard and FIFO queues, see
//! <https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>):
//!
//! ```json
//! {"Records": [{"messageId": "…", "receiptHandle": "…", "body": "…",
//!               "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "…",
//!                              "SenderId": "…", "ApproximateFirstReceiveTimestamp": "…",
//!                              "MessageGroupId": "…", "MessageDeduplicationId": "…"},
//!               "messageAttributes": {}, "md5OfBody": "…", "eventSource": "aws:sqs",
//!               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:name.fifo",
//!               "awsRegion": "us-east-1"}]}
//! ```
//!
//! As the mapping does: when the invocation succeeds, every record is deleted except those the
//! answer lists in `batchItemFailures` (`{"itemIdentifier": <messageId>}`, the partial batch
//! response); when it fails, nothing is deleted and the messages come back after the queue's
//! visibility timeout.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{Map, Value, json};

use crate::lambda_harness::{InvokeError, LambdaHarness};
use crate::moto::REGION;

/// The SQS client type the helpers take (the `aws-sdk-sqs` crate's).
pub use aws_sdk_sqs::Client as SqsClient;

/// Messages per batch, Lambda's default for SQS (and SQS's maximum per receive).
pub const DEFAULT_BATCH_SIZE: i32 = 10;

/// The longest wait of one SQS call (receive's long poll excluded).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An SQS client for a moto server at `endpoint`, with dummy credentials.
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .build();
    Client::from_conf(config)
}

/// Creates a FIFO queue with content-based deduplication, as the broker's infrastructure
/// does for rejection reports, and returns its URL. `name` must end in `.fifo`.
pub async fn create_fifo_queue(
    sqs: &Client,
    name: &str,
    visibility_timeout: Duration,
) -> Result<String, PollError> {
    let created = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout.as_secs().to_string(),
        )
        .send()
        .await
        .map_err(|e| PollError::Sqs(format!("CreateQueue: {}", DisplayErrorContext(&e))))?;
    created
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| PollError::Sqs("CreateQueue answered no QueueUrl".to_owned()))
}

/// A message as a test reads it off a queue with [`take_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// SQS's id of the message.
    pub message_id: String,
    /// The body, as sent.
    pub body: String,
    /// The FIFO message group id.
    pub group_id: Option<String>,
}

/// Receives and deletes every message the queue holds (in order, per message group): receives
/// until one receive waited `wait` (whole seconds, at most 20) without a message.
pub async fn take_all(
    sqs: &Client,
    queue_url: &str,
    wait: Duration,
) -> Result<Vec<Received>, PollError> {
    let wait_seconds = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
    let mut taken = Vec::new();
    loop {
        let request = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send();
        let received = tokio::time::timeout(CALL_TIMEOUT + wait, request)
            .await
            .map_err(|_| PollError::Sqs("ReceiveMessage did not answer in time".to_owned()))?
            .map_err(|e| PollError::Sqs(format!("ReceiveMessage: {}", DisplayErrorContext(&e))))?;
        if received.messages().is_empty() {
            return Ok(taken);
        }
        for message in received.messages() {
            if let Some(handle) = message.receipt_handle() {
                tokio::time::timeout(
                    CALL_TIMEOUT,
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send(),
                )
                .await
                .map_err(|_| PollError::Sqs("DeleteMessage did not answer in time".to_owned()))?
                .map_err(|e| {
                    PollError::Sqs(format!("DeleteMessage: {}", DisplayErrorContext(&e)))
                })?;
            }
            taken.push(Received {
                message_id: message.message_id().unwrap_or_default().to_owned(),
                body: message.body().unwrap_or_default().to_owned(),
                group_id: message
                    .attributes()
                    .and_then(|attributes| {
                        attributes.get(&MessageSystemAttributeName::MessageGroupId)
                    })
                    .cloned(),
            });
        }
    }
}

/// Waits up to `within` for messages on the queue, then takes (and deletes) every message it
/// holds: what a test playing the broker's side of the report queue does first. Empty when
/// nothing came in time.
pub async fn take_first(
    sqs: &Client,
    queue_url: &str,
    within: Duration,
) -> Result<Vec<Received>, PollError> {
    let started = tokio::time::Instant::now();
    loop {
        let taken = take_all(sqs, queue_url, Duration::from_secs(1)).await?;
        if !taken.is_empty() || started.elapsed() >= within {
            return Ok(taken);
        }
    }
}

/// Why a poll could not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// An SQS call failed or did not answer in time.
    Sqs(String),
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollError::Sqs(message) => write!(f, "sqs poller: {message}"),
        }
    }
}

impl std::error::Error for PollError {}

/// One batch handed to the function.
#[derive(Debug)]
pub struct Batch {
    /// The event the function was invoked with.
    pub event: Value,
    /// The function's answer.
    pub result: Result<Value, InvokeError>,
    /// The `messageId`s of the records deleted from the queue afterwards.
    pub deleted: Vec<String>,
}

impl Batch {
    /// The records' bodies, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|record| record["body"].as_str().map(str::to_owned))
            .collect()
    }
}

/// A poller running in the background ([`SqsPoller::run_in_background`]).
#[derive(Debug)]
pub struct BackgroundPoller {
    stop: Arc<AtomicBool>,
    handled: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Result<Vec<Batch>, PollError>>,
}

impl BackgroundPoller {
    /// Batches handed to the function so far.
    pub fn batches_handled(&self) -> usize {
        self.handled.load(Ordering::Relaxed)
    }

    /// Stops after the receive under way (and the batch it brings, if any); returns every
    /// batch handled, or the SQS error that stopped the poller.
    pub async fn stop(self) -> Result<Vec<Batch>, PollError> {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .map_err(|e| PollError::Sqs(format!("the poller task failed: {e}")))?
    }
}

/// The event source mapping stand-in for one queue.
#[derive(Debug, Clone)]
pub struct SqsPoller {
    sqs: Client,
    queue_url: String,
    queue_arn: String,
    batch_size: i32,
}

impl SqsPoller {
    /// A poller of the queue at `queue_url` (moto's form: `http://host/123456789012/name`),
    /// with Lambda's default batch size of 10.
    pub fn new(sqs: Client, queue_url: &str) -> SqsPoller {
        let name = queue_url.rsplit('/').next().unwrap_or_default();
        let account = queue_url
            .rsplit('/')
            .nth(1)
            .filter(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or("123456789012");
        SqsPoller {
            sqs,
            queue_url: queue_url.to_owned(),
            queue_arn: format!("arn:aws:sqs:{REGION}:{account}:{name}"),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Messages per batch, 1 to 10 (the mapping's `BatchSize`).
    pub fn batch_size(mut self, size: i32) -> Self {
        self.batch_size = size.clamp(1, 10);
        self
    }

    /// The queue's ARN as the records name it (`eventSourceARN`).
    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// Receives one batch (long-polling up to `wait`, whole seconds, at most 20), invokes
    /// `harness` with it and deletes the records it handled. `None` when the queue had nothing.
    pub async fn poll_once(
        &self,
        harness: &LambdaHarness,
        wait: Duration,
    ) -> Result<Option<Batch>, PollError> {
        let Some(event) = self.receive(wait).await? else {
            return Ok(None);
        };
        let result = harness.invoke(&event).await;
        let failed: HashSet<String> = match &result {
            Ok(answer) => answer["batchItemFailures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
                .collect(),
            Err(_) => {
                return Ok(Some(Batch {
                    event,
                    result,
                    deleted: Vec::new(),
                }));
            }
        };
        let handled: Vec<(String, String)> = event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|record| {
                let id = record["messageId"].as_str()?;
                let handle = record["receiptHandle"].as_str()?;
                (!failed.contains(id)).then(|| (id.to_owned(), handle.to_owned()))
            })
            .collect();
        let deleted = self.delete(&handled).await?;
        Ok(Some(Batch {
            event,
            result,
            deleted,
        }))
    }

    /// Polls until a receive that waited `idle` finds the queue empty, or `max_batches` were
    /// handled; returns the batches in order.
    pub async fn drain(
        &self,
        harness: &LambdaHarness,
        idle: Duration,
        max_batches: usize,
    ) -> Result<Vec<Batch>, PollError> {
        let mut batches = Vec::new();
        while batches.len() < max_batches {
            match self.poll_once(harness, idle).await? {
                Some(batch) => batches.push(batch),
                None => break,
            }
        }
        Ok(batches)
    }

    /// Polls in a background task, as the event source mapping does while a test runs
    /// consumers against the real function: each receive waits up to `wait`; the batches are
    /// handed to `harness` one at a time. Stop it with [`BackgroundPoller::stop`].
    pub fn run_in_background(
        self,
        harness: Arc<LambdaHarness>,
        wait: Duration,
    ) -> BackgroundPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let handled = Arc::new(AtomicUsize::new(0));
        let task = {
            let (stop, handled) = (stop.clone(), handled.clone());
            tokio::spawn(async move {
                let mut batches = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(batch) = self.poll_once(&harness, wait).await? {
                        batches.push(batch);
                        handled.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(batches)
            })
        };
        BackgroundPoller {
            stop,
            handled,
            task,
        }
    }

    /// One `ReceiveMessage`, turned into the Lambda event (`None` when nothing came).
    pub async fn receive(&self, wait: Duration) -> Result<Option<Value>, PollError> {
        let wait_seconds = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
        let request = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let received = tokio::time::timeout(CALL_TIMEOUT + wait, request)
            .await
            .map_err(|_| PollError::Sqs("ReceiveMessage did not answer in time".to_owned()))?
            .map_err(|e| PollError::Sqs(format!("ReceiveMessage: {}", DisplayErrorContext(&e))))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(None);
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|message| {
                let attributes: Map<String, Value> = message
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
                    .collect();
                let message_attributes: Map<String, Value> = message
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            json!({
                                "stringValue": value.string_value(),
                                "dataType": value.data_type(),
                            }),
                        )
                    })
                    .collect();
                json!({
                    "messageId": message.message_id(),
                    "receiptHandle": message.receipt_handle(),
                    "body": message.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": message.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": REGION,
                })
            })
            .collect();
        Ok(Some(json!({ "Records": records })))
    }

    /// Deletes `(messageId, receiptHandle)` pairs; returns the ids SQS deleted.
    async fn delete(&self, messages: &[(String, String)]) -> Result<Vec<String>, PollError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = self.sqs.delete_message_batch().queue_url(&self.queue_url);
        for (index, (_, handle)) in messages.iter().enumerate() {
            let entry = DeleteMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .receipt_handle(handle)
                .build()
                .map_err(|e| PollError::Sqs(format!("DeleteMessageBatch entry: {e}")))?;
            request = request.entries(entry);
        }
        let answer = tokio::time::timeout(CALL_TIMEOUT, request.send())
            .await
            .map_err(|_| PollError::Sqs("DeleteMessageBatch did not answer in time".to_owned()))?
            .map_err(|e| {
                PollError::Sqs(format!("DeleteMessageBatch: {}", DisplayErrorContext(&e)))
            })?;
        if let Some(failed) = answer.failed().first() {
            return Err(PollError::Sqs(format!(
                "DeleteMessageBatch failed for an entry: {} {}",
                failed.code(),
                failed.message().unwrap_or_default()
            )));
        }
        Ok(answer
            .successful()
            .iter()
            .filter_map(|ok| ok.id().parse::<usize>().ok())
            .filter_map(|index| messages.get(index).map(|(id, _)| id.clone()))
            .collect())
    }
}
