//! Logging set-up: JSON lines when Lambda's log format is JSON, plain text otherwise.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. The level comes from `AWS_LAMBDA_LOG_LEVEL` or
/// `RUST_LOG` (default `info`). The AWS SDK's own logs stay at `warn` unless asked for.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let filter = EnvFilter::new(directives(&level));
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

/// Lambda's levels (`TRACE` … `FATAL`) or `RUST_LOG` directives, as `EnvFilter` directives.
/// A plain level keeps the AWS SDK and HTTP crates at `warn`; anything unknown means `info`.
fn directives(level: &str) -> String {
    let level = level.trim().to_lowercase();
    if level.contains('=') || level.contains(',') {
        return level;
    }
    let level = match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => level.as_str(),
        "fatal" => "error",
        _ => "info",
    };
    format!(
        "{level},aws_config=warn,aws_smithy_runtime=warn,aws_sdk_secretsmanager=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn"
    )
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn lambda_levels_become_filter_directives() {
        assert!(directives("DEBUG").starts_with("debug,aws_config=warn"));
        assert!(directives("FATAL").starts_with("error,"));
        assert!(directives("").starts_with("info,"));
        assert!(directives("verbose").starts_with("info,"));
        assert_eq!(
            directives("iadvize_token_broker=trace"),
            "iadvize_token_broker=trace"
        );
    }
}
