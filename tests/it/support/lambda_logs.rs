//! Lambda's log-level filtering for JSON-format logs, as AWS documents it (AWS Lambda Developer
//! Guide, "Log-level filtering"): a line on stdout or stderr that is a JSON object with a valid
//! `level` and a valid RFC 3339 `timestamp` keeps its level; any other line (no level, an
//! invalid one, no or an invalid timestamp, not JSON at all) counts as INFO. Lambda sends a
//! line to CloudWatch Logs when its level is at least the function's `ApplicationLogLevel`.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Lambda's levels, least severe first.
const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level))
}

/// The level Lambda gives one output line.
pub fn lambda_level(line: &str) -> &'static str {
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(line) else {
        return "INFO";
    };
    let level = doc.get("level").and_then(Value::as_str).and_then(rank);
    let timestamp = doc
        .get("timestamp")
        .and_then(Value::as_str)
        .is_some_and(|t| OffsetDateTime::parse(t, &Rfc3339).is_ok());
    match level {
        Some(rank) if timestamp => LEVELS[rank],
        _ => "INFO",
    }
}

/// The lines of `output` that Lambda keeps at `application_log_level`.
pub fn lambda_keeps<'a>(output: &'a str, application_log_level: &str) -> Vec<&'a str> {
    let floor = rank(application_log_level)
        .unwrap_or_else(|| panic!("not a Lambda log level: {application_log_level}"));
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| rank(lambda_level(line)).is_some_and(|r| r >= floor))
        .collect()
}
