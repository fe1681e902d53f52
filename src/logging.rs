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
    use super::directives;

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
