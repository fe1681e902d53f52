//! A tiny Lambda function for the harness tests, written against the Runtime API by hand
//! (std + serde_json, HTTP/1.1 with `Connection: close`).
//!
//! - At start-up, if `ECHO_INIT_ERROR` is set, it posts `/init/error` and exits with status 1.
//! - For each event it prints `event <request id>` to stdout and a line to stderr, then:
//!   - `{"exit": N}`: exits with status N without answering;
//!   - `{"sleep_ms": N}`: sleeps N ms before answering;
//!   - `{"fail": true}`: posts `/error` with `EchoError` and the event's `message`;
//!   - `{"chain": N}` with N > 0: first invokes its own function asynchronously
//!     (`X-Amz-Invocation-Type: Event`) with `{"chain": N - 1}` through the Lambda endpoint in
//!     `AWS_ENDPOINT_URL_LAMBDA` (as a function asking for a follow-up does), and adds the
//!     status Lambda answered as `"invoked"` to its answer;
//!   - an SQS event (`{"Records": […]}`): its answer also carries `"batchItemFailures"`, the
//!     `messageId`s of the records whose body is a JSON object with `"fail_item": true` (the
//!     partial batch response of an event source mapping);
//!   - otherwise posts `{"echo": <event>, "request_id": …, "deadline_ms": …, "function_arn": …,
//!     "function_name": $AWS_LAMBDA_FUNCTION_NAME}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

/// A response from the Runtime API: headers (lower-cased names) and body.
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn request(api: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<HttpResponse> {
    request_with(api, method, path, "", body)
}

/// `extra_headers`: complete header lines, each ending in CRLF.
fn request_with(
    api: &str,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(api)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\
         Content-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok());
    let mut body = Vec::new();
    match length {
        Some(length) => {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn main() -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .map_err(|_| std::io::Error::other("AWS_LAMBDA_RUNTIME_API is not set"))?;
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();

    if let Ok(message) = std::env::var("ECHO_INIT_ERROR") {
        eprintln!("echo-function: init error");
        let body = json!({"errorType": "EchoInitError", "errorMessage": message}).to_string();
        request(
            &api,
            "POST",
            "/2018-06-01/runtime/init/error",
            body.as_bytes(),
        )?;
        std::process::exit(1);
    }

    loop {
        let next = request(&api, "GET", "/2018-06-01/runtime/invocation/next", b"")?;
        if next.status != 200 {
            eprintln!("echo-function: /next answered {}", next.status);
            return Ok(());
        }
        let request_id = next
            .header("lambda-runtime-aws-request-id")
            .unwrap_or_default()
            .to_owned();
        let event: Value = serde_json::from_slice(&next.body).unwrap_or(Value::Null);
        println!("event {request_id}");
        eprintln!("echo-function: handling an event");

        if let Some(code) = event.get("exit").and_then(Value::as_i64) {
            std::process::exit(i32::try_from(code).unwrap_or(1));
        }
        if let Some(ms) = event.get("sleep_ms").and_then(Value::as_u64) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let invoked = match event.get("chain").and_then(Value::as_u64) {
            Some(left) if left > 0 => Some(invoke_self(&function_name, left - 1)?),
            _ => None,
        };
        let (path, body) = if event.get("fail").and_then(Value::as_bool) == Some(true) {
            let message = event
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("asked to fail");
            (
                format!("/2018-06-01/runtime/invocation/{request_id}/error"),
                json!({"errorType": "EchoError", "errorMessage": message}),
            )
        } else {
            (
                format!("/2018-06-01/runtime/invocation/{request_id}/response"),
                json!({
                    "echo": event,
                    "request_id": request_id,
                    "deadline_ms": next.header("lambda-runtime-deadline-ms"),
                    "function_arn": next.header("lambda-runtime-invoked-function-arn"),
                    "trace_id": next.header("lambda-runtime-trace-id"),
                    "function_name": function_name,
                    "invoked": invoked,
                    "batchItemFailures": failed_items(&event),
                }),
            )
        };
        let answer = request(&api, "POST", &path, body.to_string().as_bytes())?;
        if answer.status != 202 {
            eprintln!("echo-function: answer got HTTP {}", answer.status);
        }
    }
}

/// Invokes this function asynchronously with `{"chain": left}` through the Lambda Invoke API at
/// `AWS_ENDPOINT_URL_LAMBDA` (an `http://host:port` URL); returns the HTTP status.
fn invoke_self(function_name: &str, left: u64) -> std::io::Result<u16> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_LAMBDA")
        .map_err(|_| std::io::Error::other("AWS_ENDPOINT_URL_LAMBDA is not set"))?;
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = json!({"chain": left}).to_string();
    let answer = request_with(
        host,
        "POST",
        &format!("/2015-03-31/functions/{function_name}/invocations"),
        "X-Amz-Invocation-Type: Event\r\n",
        body.as_bytes(),
    )?;
    Ok(answer.status)
}

/// For an SQS event, `[{"itemIdentifier": <messageId>}]` of the records whose body asks to
/// fail; `null` for other events.
fn failed_items(event: &Value) -> Value {
    let Some(records) = event.get("Records").and_then(Value::as_array) else {
        return Value::Null;
    };
    records
        .iter()
        .filter(|record| {
            record
                .get("body")
                .and_then(Value::as_str)
                .and_then(|body| serde_json::from_str::<Value>(body).ok())
                .is_some_and(|body| body.get("fail_item") == Some(&Value::Bool(true)))
        })
        .map(|record| json!({"itemIdentifier": record.get("messageId")}))
        .collect()
}
