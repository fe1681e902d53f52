//! Runs a Lambda binary behind the local Runtime API harness and invokes it with events.
//!
//! ```text
//! lambda-invoke --bin PATH [--env K=V]... [--timeout SECONDS] [--logs FILE] EVENT_FILE|- ...
//! ```
//!
//! Each event file holds one JSON event (`-` reads one from stdin); they are invoked in order.
//! Each result is printed to stdout as pretty JSON; an error as
//! `{"errorType": …, "errorMessage": …}`. The function's logs go to stderr, or to `--logs FILE`.
//!
//! Exit status: 0 when every invocation succeeded, 1 when one returned an error (including an
//! initialisation error or a timeout), 2 for problems of the harness or the command line.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use standins::{InvokeError, LambdaHarness};

const USAGE: &str = "\
usage: lambda-invoke --bin PATH [--env K=V]... [--timeout SECONDS] [--logs FILE] EVENT_FILE|- ...

  --bin PATH           the Lambda binary (a Runtime API client, e.g. built with lambda_runtime)
  --env K=V            an environment variable for the function (repeatable)
  --timeout SECONDS    per-invocation deadline (default 60)
  --logs FILE          write the function's output there instead of stderr
  EVENT_FILE           a file holding one JSON event; - reads one from stdin";

/// The parsed command line.
struct Options {
    binary: PathBuf,
    envs: Vec<(String, String)>,
    timeout: Duration,
    logs: Option<PathBuf>,
    events: Vec<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut binary = None;
    let mut envs = Vec::new();
    let mut timeout = Duration::from_secs(60);
    let mut logs = None;
    let mut events = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if arg == "-" || !arg.starts_with("--") {
            events.push(arg);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bin" => binary = Some(PathBuf::from(value()?)),
            "--env" => {
                let pair = value()?;
                let (key, val) = pair
                    .split_once('=')
                    .filter(|(key, _)| !key.is_empty())
                    .ok_or("--env: expected K=V")?;
                envs.push((key.to_owned(), val.to_owned()));
            }
            "--timeout" => {
                let text = value()?;
                let seconds: f64 = text
                    .trim_end_matches('s')
                    .parse()
                    .ok()
                    .filter(|seconds: &f64| seconds.is_finite() && *seconds > 0.0)
                    .ok_or_else(|| format!("--timeout: expected seconds, got {text:?}"))?;
                timeout = Duration::from_secs_f64(seconds);
            }
            "--logs" => logs = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    let binary = binary.ok_or("--bin PATH is required")?;
    if events.is_empty() {
        return Err("at least one EVENT_FILE (or -) is required".to_owned());
    }
    Ok(Some(Options {
        binary,
        envs,
        timeout,
        logs,
        events,
    }))
}

/// Reads every event up front, so a bad file fails before the function starts.
fn read_events(sources: &[String]) -> Result<Vec<Value>, String> {
    let mut stdin_used = false;
    sources
        .iter()
        .map(|source| {
            let text = if source == "-" {
                if stdin_used {
                    return Err("- (stdin) can be given only once".to_owned());
                }
                stdin_used = true;
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|error| format!("cannot read stdin: {error}"))?;
                text
            } else {
                std::fs::read_to_string(source)
                    .map_err(|error| format!("cannot read {source}: {error}"))?
            };
            serde_json::from_str(&text).map_err(|error| format!("{source}: not JSON: {error}"))
        })
        .collect()
}

fn error_json(error: &InvokeError) -> Value {
    match error {
        InvokeError::Function {
            error_type,
            error_message,
        }
        | InvokeError::InitFailed {
            error_type,
            error_message,
        } => json!({"errorType": error_type, "errorMessage": error_message}),
        InvokeError::Timeout => json!({
            "errorType": "Sandbox.Timedout",
            "errorMessage": "the function did not answer before its deadline",
        }),
        InvokeError::Harness(message) => json!({"errorType": "Harness", "errorMessage": message}),
    }
}

fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

fn write_logs(logs: &str, path: Option<&PathBuf>) -> Result<(), String> {
    match path {
        Some(path) => std::fs::write(path, logs)
            .map_err(|error| format!("cannot write the logs to {}: {error}", path.display())),
        None => {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(logs.as_bytes());
            let _ = stderr.flush();
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("lambda-invoke: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let events = match read_events(&options.events) {
        Ok(events) => events,
        Err(message) => {
            eprintln!("lambda-invoke: {message}");
            return ExitCode::from(2);
        }
    };
    let harness = match LambdaHarness::start(&options.binary, &options.envs).await {
        Ok(harness) => harness.with_timeout(options.timeout),
        Err(error) => {
            eprintln!("lambda-invoke: {error}");
            return ExitCode::from(2);
        }
    };

    let mut status = 0u8;
    for (index, event) in events.iter().enumerate() {
        match harness.invoke(event).await {
            Ok(response) => print_json(&response),
            Err(error) => {
                print_json(&error_json(&error));
                match error {
                    InvokeError::Function { .. } => status = status.max(1),
                    InvokeError::InitFailed { .. } | InvokeError::Timeout => {
                        status = status.max(1);
                        skip_rest(events.len() - index - 1);
                        break;
                    }
                    InvokeError::Harness(_) => {
                        status = 2;
                        skip_rest(events.len() - index - 1);
                        break;
                    }
                }
            }
        }
    }

    let logs = harness.finish().await;
    if let Err(message) = write_logs(&logs, options.logs.as_ref()) {
        eprintln!("lambda-invoke: {message}");
        status = 2;
    }
    ExitCode::from(status)
}

/// Says on stderr how many events were not invoked after a fatal error.
fn skip_rest(remaining: usize) {
    if remaining > 0 {
        eprintln!("lambda-invoke: not invoking the {remaining} remaining event(s)");
    }
}
