//! The Lambda Runtime API harness, driving the hand-written `echo-function` binary, and the
//! `lambda-invoke` command built on it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use standins::{InvokeError, LambdaHarness};

fn echo_function() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_echo-function"))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn invocations_reach_the_function_and_answers_come_back() {
    let harness = LambdaHarness::start(
        echo_function(),
        &env(&[("AWS_LAMBDA_FUNCTION_NAME", "broker")]),
    )
    .await
    .expect("start the harness")
    .with_timeout(Duration::from_secs(30));

    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let answer = harness
        .invoke(&json!({"action": "status", "n": 1}))
        .await
        .expect("a response");
    assert_eq!(answer["echo"], json!({"action": "status", "n": 1}));
    assert_eq!(answer["function_name"], "broker");
    assert_eq!(
        answer["function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:broker"
    );
    assert!(
        answer["trace_id"]
            .as_str()
            .expect("trace id")
            .starts_with("Root=1-")
    );
    let deadline: u128 = answer["deadline_ms"]
        .as_str()
        .expect("deadline header")
        .parse()
        .expect("epoch ms");
    assert!(
        deadline >= before + 29_000 && deadline <= before + 31_000,
        "{deadline} vs {before}"
    );
    let first_id = answer["request_id"]
        .as_str()
        .expect("request id")
        .to_owned();

    // Errors come back as Function errors; the function keeps serving afterwards.
    let error = harness
        .invoke(&json!({"fail": true, "message": "no such secret"}))
        .await
        .expect_err("an error");
    assert_eq!(
        error,
        InvokeError::Function {
            error_type: "EchoError".to_owned(),
            error_message: "no such secret".to_owned()
        }
    );
    assert!(error.to_string().contains("no such secret"));

    let answer = harness.invoke(&json!({"n": 3})).await.expect("a response");
    assert_eq!(answer["echo"]["n"], 3);
    assert_ne!(answer["request_id"], first_id.as_str());

    let logs = harness.logs();
    assert!(logs.contains(&format!("event {first_id}")), "{logs}");
    assert_eq!(
        logs.matches("echo-function: handling an event").count(),
        3,
        "{logs}"
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn ready_measures_the_initialisation_once() {
    let before_start = Instant::now();
    let harness = LambdaHarness::start(echo_function(), &[])
        .await
        .expect("start the harness");
    let init = harness
        .ready()
        .await
        .expect("the function polls for an event");
    // From the spawn to the first poll: inside the time this test has been waiting.
    assert!(init > Duration::ZERO && init <= before_start.elapsed());
    // Later polls (one after each answer) do not move the figure.
    for n in 0..2 {
        let answer = harness.invoke(&json!({"n": n})).await.expect("a response");
        assert_eq!(answer["echo"]["n"], n);
    }
    assert_eq!(harness.ready().await, Ok(init));
    harness.shutdown().await;
}

#[tokio::test]
async fn ready_fails_when_the_function_fails_to_initialise() {
    let harness = LambdaHarness::start(
        echo_function(),
        &env(&[("ECHO_INIT_ERROR", "IADVIZE_API_URL is not https")]),
    )
    .await
    .expect("start the harness");
    assert_eq!(
        harness.ready().await,
        Err(InvokeError::InitFailed {
            error_type: "EchoInitError".to_owned(),
            error_message: "IADVIZE_API_URL is not https".to_owned()
        })
    );

    // A process that exits without ever polling (`true` is not a Lambda function).
    let harness = LambdaHarness::start(Path::new("true"), &[])
        .await
        .expect("start the harness");
    let error = harness.ready().await.expect_err("no first poll");
    let InvokeError::Harness(message) = &error else {
        panic!("expected a harness error, got {error:?}");
    };
    assert!(message.contains("exited"), "{message}");
}

#[tokio::test]
async fn an_init_error_fails_invocations_promptly() {
    let harness = LambdaHarness::start(
        echo_function(),
        &env(&[("ECHO_INIT_ERROR", "IADVIZE_API_URL is not https")]),
    )
    .await
    .expect("start the harness");
    let started = Instant::now();
    let error = harness.invoke(&json!({})).await.expect_err("an init error");
    assert_eq!(
        error,
        InvokeError::InitFailed {
            error_type: "EchoInitError".to_owned(),
            error_message: "IADVIZE_API_URL is not https".to_owned()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Later invocations fail the same way, at once.
    assert!(matches!(
        harness.invoke(&json!({})).await,
        Err(InvokeError::InitFailed { .. })
    ));
    let logs = harness.finish().await;
    assert!(logs.contains("echo-function: init error"), "{logs}");
}

#[tokio::test]
async fn a_crash_mid_invocation_fails_promptly() {
    let harness = LambdaHarness::start(echo_function(), &[])
        .await
        .expect("start the harness");
    let started = Instant::now();
    let error = harness
        .invoke(&json!({"exit": 3}))
        .await
        .expect_err("a harness error");
    let InvokeError::Harness(message) = &error else {
        panic!("expected a harness error, got {error:?}");
    };
    assert!(message.contains("exited"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        harness.invoke(&json!({})).await,
        Err(InvokeError::Harness(_))
    ));
}

#[tokio::test]
async fn a_function_that_never_answers_times_out() {
    let harness = LambdaHarness::start(echo_function(), &[])
        .await
        .expect("start the harness")
        .with_timeout(Duration::from_millis(200));
    // The harness waits for the deadline plus a 10 s grace period.
    let started = Instant::now();
    let error = harness
        .invoke(&json!({"sleep_ms": 60_000}))
        .await
        .expect_err("a timeout");
    assert_eq!(error, InvokeError::Timeout);
    assert!(started.elapsed() >= Duration::from_secs(10));
    // Dropping the harness kills the sleeping function.
}

#[tokio::test]
async fn a_missing_binary_is_an_error() {
    let error = LambdaHarness::start(Path::new("/nonexistent/bootstrap"), &[])
        .await
        .expect_err("no such binary");
    assert!(
        error.to_string().contains("/nonexistent/bootstrap"),
        "{error}"
    );
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lambda-invoke-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn lambda_invoke_prints_each_result_and_reports_failures() {
    let dir = temp_dir("cli");
    let ok = dir.join("ok.json");
    let fail = dir.join("fail.json");
    let logs = dir.join("logs.txt");
    std::fs::write(&ok, r#"{"n": 1}"#).expect("event");
    std::fs::write(&fail, r#"{"fail": true, "message": "boom"}"#).expect("event");

    let output = Command::new(env!("CARGO_BIN_EXE_lambda-invoke"))
        .arg("--bin")
        .arg(echo_function())
        .args([
            "--env",
            "AWS_LAMBDA_FUNCTION_NAME=cli-test",
            "--timeout",
            "20",
        ])
        .arg("--logs")
        .arg(&logs)
        .arg(&ok)
        .arg(&fail)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(br#"{"n": 3}"#)?;
            child.wait_with_output()
        })
        .expect("run lambda-invoke");
    assert_eq!(output.status.code(), Some(1), "{output:?}");

    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let results: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("a stream of JSON values");
    assert_eq!(results.len(), 3, "{stdout}");
    assert_eq!(results[0]["echo"]["n"], 1);
    assert_eq!(results[0]["function_name"], "cli-test");
    assert_eq!(
        results[1],
        json!({"errorType": "EchoError", "errorMessage": "boom"})
    );
    assert_eq!(results[2]["echo"]["n"], 3);
    assert!(stdout.contains("\n  \""), "pretty-printed: {stdout}");

    let logs = std::fs::read_to_string(&logs).expect("logs file");
    assert_eq!(logs.matches("handling an event").count(), 3, "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lambda_invoke_exit_codes() {
    let dir = temp_dir("codes");
    let event = dir.join("event.json");
    std::fs::write(&event, "{}").expect("event");
    let run = |binary: &Path, extra_env: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-invoke"));
        command.arg("--bin").arg(binary);
        for pair in extra_env {
            command.args(["--env", pair]);
        }
        command.arg(&event).output().expect("run lambda-invoke")
    };

    let success = run(echo_function(), &[]);
    assert_eq!(success.status.code(), Some(0), "{success:?}");
    assert!(String::from_utf8_lossy(&success.stderr).contains("handling an event"));

    let init_failed = run(echo_function(), &["ECHO_INIT_ERROR=bad config"]);
    assert_eq!(init_failed.status.code(), Some(1), "{init_failed:?}");
    let result: Value = serde_json::from_slice(&init_failed.stdout).expect("JSON");
    assert_eq!(
        result,
        json!({"errorType": "EchoInitError", "errorMessage": "bad config"})
    );

    let missing = run(Path::new("/nonexistent/bootstrap"), &[]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");

    let usage = Command::new(env!("CARGO_BIN_EXE_lambda-invoke"))
        .arg(&event)
        .output()
        .expect("run lambda-invoke");
    assert_eq!(usage.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
