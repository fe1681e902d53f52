//! Logging set-up: JSON lines when Lambda's log format is JSON, plain text otherwise.
//!
//! Every binary of the project (the Lambda, the `iadvize-token` CLI) builds its filter with
//! [`filter`], so the [`ALLOWED_BELOW_INFO`] allow-list holds whatever `RUST_LOG`,
//! `AWS_LAMBDA_LOG_LEVEL` or `-v` asks for.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. The level comes from `AWS_LAMBDA_LOG_LEVEL` or
/// `RUST_LOG` (default `info`). The AWS SDK's own logs stay at `warn` unless asked for.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let filter = filter(&level);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    // The subscriber may already be set (tests); that is fine.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Lambda's application log levels (`ApplicationLogLevel`, `AWS_LAMBDA_LOG_LEVEL`), least
/// severe first.
pub const LAMBDA_LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The `ApplicationLogLevel`s at which Lambda keeps this function's metrics. The metric lines
/// (CloudWatch embedded metric format, on stdout) carry no `level` and no `timestamp` field,
/// and Lambda's log-level filtering counts such a JSON line as INFO ("If the level value field
/// is invalid or missing, Lambda will assign the log output the level INFO", AWS Lambda
/// Developer Guide, "Log-level filtering"): above INFO every metric line is dropped before
/// CloudWatch sees it. The IaC accepts only these levels.
pub const METRICS_SAFE_LEVELS: [&str; 3] = ["TRACE", "DEBUG", "INFO"];

/// The one line to log at start-up when Lambda's log-level filtering will drop the metric
/// lines: the log format is JSON (Lambda filters only JSON logs) and `AWS_LAMBDA_LOG_LEVEL` is
/// one of Lambda's levels above INFO. `None` otherwise.
///
/// The line is a JSON object with the `level` and the RFC 3339 `timestamp` Lambda needs to
/// keep it: `ERROR`, or `FATAL` when that is the level asked for (an ERROR line would be
/// dropped there too).
pub fn metrics_dropped_line(
    log_format: Option<&str>,
    log_level: Option<&str>,
    now: time::OffsetDateTime,
) -> Option<String> {
    let json = log_format.is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let asked = log_level?.trim().to_ascii_uppercase();
    if !json
        || !LAMBDA_LOG_LEVELS.contains(&asked.as_str())
        || METRICS_SAFE_LEVELS.contains(&asked.as_str())
    {
        return None;
    }
    let level = if asked == "FATAL" { "FATAL" } else { "ERROR" };
    let timestamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .ok()?;
    // "INFO, DEBUG or TRACE": the least verbose first.
    let mut safe: Vec<&str> = METRICS_SAFE_LEVELS.iter().rev().copied().collect();
    let last = safe.pop().unwrap_or("INFO");
    let safe = if safe.is_empty() {
        last.to_owned()
    } else {
        format!("{} or {last}", safe.join(", "))
    };
    let message = format!(
        "ApplicationLogLevel {asked} drops this function's metrics: Lambda counts each metric line (CloudWatch embedded metric format, no level field) as INFO and drops it, so the token expiry alarm fires for missing data and the dashboards go blank. Set ApplicationLogLevel to {safe} (the templates accept only these)"
    );
    Some(
        serde_json::json!({
            "timestamp": timestamp,
            "level": level,
            "message": message,
            "application_log_level": asked,
        })
        .to_string(),
    )
}

/// Writes [`metrics_dropped_line`] for this process's environment (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`) to standard error, if there is one. Call it once, at start-up.
pub fn warn_if_metrics_dropped() {
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").ok();
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    if let Some(line) = metrics_dropped_line(
        format.as_deref(),
        level.as_deref(),
        time::OffsetDateTime::now_utc(),
    ) {
        use std::io::Write;
        // Nowhere to report a failed write to standard error.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Dependencies that may log below INFO, because what they log there was checked to hold
/// no secret: retry decisions and which credentials provider answered, and connection
/// set-up. Everything else below INFO is off for dependencies, whatever is asked for:
/// `lambda_runtime` logs raw events (with the RotationToken) at DEBUG/TRACE, `aws_sigv4`
/// canonical requests (with the session token), `aws_smithy_runtime` whole responses (with
/// secret values) and `h2` header frames (with the bearer token).
pub const ALLOWED_BELOW_INFO: [&str; 3] = [
    "aws_smithy_runtime::client::retries",
    "aws_config::meta::credentials::chain",
    "reqwest::connect",
];

/// The broker's own targets (`iadvize_token_broker`, the `iadvize_token` CLI, the consumer
/// crate): a filter target matches by prefix.
const OURS: &str = "iadvize_token";

/// Noisy dependencies, kept at `warn` at every level.
const QUIET: &str = "aws_config=warn,aws_smithy_runtime=warn,aws_sdk_secretsmanager=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn";

/// The filter of every binary: [`directives`] of `level` (Lambda's levels or `RUST_LOG`
/// directives, as asked by the operator), so dependencies log below INFO only through
/// [`ALLOWED_BELOW_INFO`].
pub fn filter(level: &str) -> EnvFilter {
    EnvFilter::new(directives(level))
}

/// Lambda's levels (`TRACE` … `FATAL`) or `RUST_LOG` directives, as `EnvFilter` directives.
/// Our own targets and the [`ALLOWED_BELOW_INFO`] ones get the level asked for; every other
/// target is capped at `info`. Anything unknown means `info`.
pub fn directives(level: &str) -> String {
    let level = level.trim().to_lowercase();
    let mut out = vec![QUIET.to_owned()];
    let mut base = "info";
    for part in level.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None => {
                let asked = level_name(part);
                base = capped(asked);
                out.push(format!("{OURS}={asked}"));
                out.extend(ALLOWED_BELOW_INFO.iter().map(|t| format!("{t}={asked}")));
            }
            Some((target, asked)) => {
                let target = target.trim();
                // Span-field directives (`target[span]=…`) are not needed here.
                if target.is_empty() || target.contains('[') {
                    continue;
                }
                let asked = level_name(asked.trim());
                let allowed = target.starts_with(OURS)
                    || ALLOWED_BELOW_INFO.iter().any(|t| target.starts_with(t));
                let level = if allowed { asked } else { capped(asked) };
                out.push(format!("{target}={level}"));
            }
        }
    }
    format!("{base},{}", out.join(","))
}

fn level_name(level: &str) -> &'static str {
    match level {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "error" | "fatal" => "error",
        "off" => "off",
        _ => "info",
    }
}

/// A level no more verbose than `info`.
fn capped(level: &'static str) -> &'static str {
    match level {
        "trace" | "debug" => "info",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::{METRICS_SAFE_LEVELS, directives, metrics_dropped_line};
    use time::macros::datetime;

    #[test]
    fn only_json_logs_above_info_get_the_metrics_warning() {
        let now = datetime!(2026-11-26 11:00:00.25 UTC);
        for level in METRICS_SAFE_LEVELS {
            assert_eq!(metrics_dropped_line(Some("JSON"), Some(level), now), None);
        }
        // Lambda filters only JSON logs; unknown levels are not Lambda's.
        assert_eq!(metrics_dropped_line(Some("Text"), Some("WARN"), now), None);
        assert_eq!(metrics_dropped_line(None, Some("ERROR"), now), None);
        assert_eq!(metrics_dropped_line(Some("JSON"), None, now), None);
        assert_eq!(metrics_dropped_line(Some("JSON"), Some("loud"), now), None);
        for (asked, level) in [("WARN", "ERROR"), ("error", "ERROR"), ("FATAL", "FATAL")] {
            let line = metrics_dropped_line(Some("json"), Some(asked), now).unwrap();
            let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(doc["level"], level, "{line}");
            assert_eq!(doc["timestamp"], "2026-11-26T11:00:00.25Z", "{line}");
            let message = doc["message"].as_str().unwrap();
            assert!(
                message.contains("Set ApplicationLogLevel to INFO, DEBUG or TRACE"),
                "{message}"
            );
            assert!(
                message.starts_with(&format!(
                    "ApplicationLogLevel {} drops",
                    asked.to_uppercase()
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn lambda_levels_become_filter_directives() {
        let debug = directives("DEBUG");
        assert!(debug.starts_with("info,aws_config=warn"), "{debug}");
        assert!(debug.contains(",iadvize_token=debug"), "{debug}");
        assert!(directives("FATAL").starts_with("error,"));
        assert!(directives("").starts_with("info,"));
        assert!(directives("verbose").starts_with("info,"));
        assert!(directives("iadvize_token_broker=trace").ends_with(",iadvize_token_broker=trace"));
    }

    #[test]
    fn dependencies_never_log_below_info_unless_allow_listed() {
        for asked in [
            "TRACE",
            "trace,aws_sigv4=trace,lambda_runtime=trace,h2=trace",
            "aws_smithy_runtime=trace,aws_smithy_runtime::client::orchestrator=debug",
        ] {
            let got = directives(asked);
            let filter: tracing_subscriber::EnvFilter = got.parse().unwrap();
            let text = filter.to_string();
            for target in [
                "aws_sigv4",
                "lambda_runtime",
                "h2",
                "aws_smithy_runtime::client::orchestrator",
            ] {
                assert!(
                    !text.contains(&format!("{target}=trace"))
                        && !text.contains(&format!("{target}=debug")),
                    "{asked} -> {text}"
                );
            }
            assert!(got.starts_with("info,"), "{got}");
        }
        assert!(directives("TRACE").contains("aws_smithy_runtime::client::retries=trace"));
    }
}
