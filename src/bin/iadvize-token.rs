//! `iadvize-token`: read the token, see the broker's state, and fix it, from a shell.
//!
//! Uses the same library code as the Lambda and the normal AWS configuration chain
//! (profile, region, `AWS_ENDPOINT_URL`, …); the broker settings come from the same
//! `IADVIZE_*` variables as the Lambda's.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use iadvize_token_broker::bounds::{AwsTimeouts, aws_config, within_deadline};
use iadvize_token_broker::consumer::TokenError;
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::operator::{Resumed, Verified};
use iadvize_token_broker::refresh::Outcome;
use iadvize_token_broker::status::{SecretStatus, TokenState};
use iadvize_token_broker::token::rfc3339;
use iadvize_token_broker::{Broker, Config, Error, SecretStore, TokenSource, logging};

/// Everything worked (`status`: every token valid, no credentials blocked).
const EXIT_OK: u8 = 0;
/// The operation failed (Secrets Manager or iAdvize unreachable, a rotation failed, …).
const EXIT_FAILED: u8 = 1;
/// Bad usage or configuration (clap's own usage errors are 2 as well).
const EXIT_USAGE: u8 = 2;
/// No usable token: the secret is missing, empty, malformed or expired, or iAdvize refuses it.
const EXIT_NO_TOKEN: u8 = 3;
/// iAdvize refused the credentials; the broker will not log in until they change.
const EXIT_BLOCKED: u8 = 4;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (status: every token valid and no credentials blocked)
  1  the operation failed (Secrets Manager or iAdvize unreachable, a rotation failed, ...)
  2  usage or configuration error
  3  no usable token: secret missing, not filled yet, malformed or expired, or iAdvize refuses it
  4  iAdvize refused the credentials: put a corrected value in the credentials secret, then `refresh`

AWS settings come from the usual chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...);
refresh and resume also read the broker's IADVIZE_* variables (IADVIZE_CREDENTIALS_SECRET_ID,
IADVIZE_API_URL, IADVIZE_MIN_LOGIN_INTERVAL, ...). Only `get` ever prints a token.";

/// Read the iAdvize access token kept by iadvize-token-broker, and operate the broker.
#[derive(Debug, Parser)]
#[command(name = "iadvize-token", version, after_help = EXIT_CODES)]
struct Cli {
    /// The broker's logs on stderr (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides.
    /// Dependencies log below INFO only through the broker's allow-list, whatever is asked.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Give up after this long (e.g. 10s, 90s, 5m), waiting on Secrets Manager or iAdvize.
    /// Each Secrets Manager call also gives up after IADVIZE_AWS_OPERATION_TIMEOUT (20s; `get`
    /// reads no IADVIZE_* variable and always uses 20s).
    #[arg(long, global = true, default_value = "2m", value_parser = humantime::parse_duration)]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the current access token alone, for scripts: TOKEN=$(iadvize-token get SECRET_ID)
    Get {
        /// The token secret (name or ARN).
        secret_id: String,
    },
    /// Show each token secret's expiry, rotation, last login attempt and credentials state.
    Status {
        /// The token secrets (default: IADVIZE_TOKEN_SECRET_IDS).
        secret_ids: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Refresh tokens that are due (as the hourly tick does), or all of them with --force.
    Refresh {
        /// The token secrets (default: IADVIZE_TOKEN_SECRET_IDS).
        secret_ids: Vec<String>,
        /// Log in and rotate even if the token is fresh.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask iAdvize (/_authenticated) whether it accepts the current token.
    Verify {
        /// The token secret (name or ARN).
        secret_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Finish an unfinished (stuck) rotation now, whatever its age.
    Resume {
        /// The token secret (name or ARN).
        secret_id: String,
    },
    // --- rejection reports (begin) ---
    /// Report that iAdvize refuses a token (as consumers do through the report queue): the
    /// broker checks it and refreshes it if iAdvize rejects it.
    ReportRejected {
        /// The token secret (name or ARN).
        secret_id: String,
        /// The SHA-256 (hex) of the refused token; default: the token the secret holds now.
        #[arg(long)]
        token_sha256: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    // --- rejection reports (end) ---
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let deadline = tokio::time::Instant::now() + cli.timeout;
    // Every Secrets Manager call of the command ends before the deadline (bounds.rs).
    let code = within_deadline(deadline, run(cli.command, cli.timeout, deadline)).await;
    ExitCode::from(code)
}

async fn run(command: Command, timeout: Duration, deadline: tokio::time::Instant) -> u8 {
    match command {
        Command::Get { secret_id } => get(&secret_id, timeout).await,
        Command::Status { secret_ids, json } => match broker().await {
            Ok(broker) => status(&broker, secret_ids, json).await,
            Err(code) => code,
        },
        Command::Refresh {
            secret_ids,
            force,
            json,
        } => match broker().await {
            Ok(broker) => refresh(&broker, secret_ids, force, json, deadline).await,
            Err(code) => code,
        },
        Command::Verify { secret_id, json } => match broker().await {
            Ok(broker) => verify(&broker, &secret_id, json, deadline).await,
            Err(code) => code,
        },
        Command::Resume { secret_id } => match broker().await {
            Ok(broker) => resume(&broker, &secret_id, deadline).await,
            Err(code) => code,
        },
        // --- rejection reports (begin) ---
        Command::ReportRejected {
            secret_id,
            token_sha256,
            json,
        } => match broker().await {
            Ok(broker) => report_rejected(&broker, &secret_id, token_sha256, json, deadline).await,
            Err(code) => code,
        },
        // --- rejection reports (end) ---
    }
}

// --- rejection reports (begin) ---
/// `report-rejected`: the broker's handling of a report, in-process.
async fn report_rejected(
    broker: &Broker,
    secret_id: &str,
    token_sha256: Option<String>,
    json: bool,
    deadline: tokio::time::Instant,
) -> u8 {
    use iadvize_token_broker::events::Report;
    use iadvize_token_broker::store::{AWSCURRENT, Version};
    let hash = match token_sha256 {
        Some(hash) => hash,
        // The operator's own observation: iAdvize refuses what the secret holds now.
        None => match broker
            .store()
            .get(secret_id, Version::Stage(AWSCURRENT))
            .await
        {
            Ok(Some(value)) => match value.record() {
                Ok(record) => iadvize_token_consumer::report::token_sha256(&record.access_token),
                Err(e) => {
                    eprintln!(
                        "error: {secret_id}: the current value is not a token record ({e}); run `iadvize-token refresh {secret_id}`"
                    );
                    return EXIT_NO_TOKEN;
                }
            },
            Ok(None) => {
                eprintln!(
                    "error: {secret_id}: the secret holds no token yet; run `iadvize-token refresh {secret_id}`"
                );
                return EXIT_NO_TOKEN;
            }
            Err(e) => return report_error(&e),
        },
    };
    let event = serde_json::json!({
        "action": "report-rejected",
        "secret_id": secret_id,
        "token_sha256": hash,
    });
    let report = match Report::parse(&event) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let answer = match broker.report_rejected(&report, deadline).await {
        Ok(answer) => answer,
        Err(e) => return report_error(&e),
    };
    if json {
        print_json(&answer);
    }
    let mut code = EXIT_OK;
    for result in &answer.results {
        let expires = result
            .expires_at
            .map(|at| format!(", expires at {}", rfc3339(at)))
            .unwrap_or_default();
        let line = match result.outcome {
            Outcome::Superseded => format!(
                "{}: superseded: the secret holds another token now; read it again{expires}",
                result.secret_id
            ),
            Outcome::Accepted => format!(
                "{}: iAdvize accepts this token; nothing changed (check the caller's permissions and platform){expires}",
                result.secret_id
            ),
            Outcome::Refreshed => format!("{}: refreshed{expires}", result.secret_id),
            _ if result.error.is_some() => {
                code = if result
                    .error_kind
                    .is_some_and(|kind| kind.is_credentials_refusal())
                {
                    EXIT_BLOCKED
                } else {
                    EXIT_FAILED
                };
                eprintln!(
                    "error: {}: {}",
                    result.secret_id,
                    result.error.as_deref().unwrap_or("failed")
                );
                continue;
            }
            other => format!("{}: {}{expires}", result.secret_id, other.as_str()),
        };
        if !json {
            println!("{line}");
        }
    }
    code
}
// --- rejection reports (end) ---

/// Logs go to stderr (stdout is for `get`'s token and the reports); quiet by default. The
/// filter is the Lambda's (`logging::filter`): however verbose the operator asks for, the
/// dependencies that log secrets below INFO (request signing with the session token, whole
/// responses with secret values) stay at INFO.
fn init_logging(verbose: u8) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            // By default the command's own messages say what failed; -v adds the broker's logs.
            match verbose {
                0 => "off",
                1 => "info",
                2 => "debug",
                _ => "trace",
            }
            .to_owned()
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(logging::filter(&level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

async fn broker() -> Result<Broker, u8> {
    let config = Config::from_env().map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })?;
    let store = SecretStore::from_env(config.aws_timeouts()).await;
    Broker::new(config, store, Metrics::off()).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}

fn secret_ids(broker: &Broker, given: Vec<String>) -> Result<Vec<String>, u8> {
    if !given.is_empty() {
        return Ok(given);
    }
    let configured = broker.config().token_secret_ids().to_vec();
    if configured.is_empty() {
        eprintln!(
            "error: no token secret given: pass SECRET_ID... or set IADVIZE_TOKEN_SECRET_IDS to a comma-separated list"
        );
        return Err(EXIT_USAGE);
    }
    Ok(configured)
}

/// `get` reads like any consumer (no IADVIZE_* variable needed): the SDK's default time-outs,
/// each call bounded by `--timeout`.
async fn get(secret_id: &str, timeout: Duration) -> u8 {
    let defaults = AwsTimeouts::default();
    let timeouts = AwsTimeouts {
        operation: defaults.operation.min(timeout),
        attempt: defaults.attempt.min(timeout),
    };
    let client = aws_sdk_secretsmanager::Client::new(&aws_config(timeouts).await);
    let source = TokenSource::builder(client, secret_id)
        .call_timeout(timeout)
        .build();
    match source.token().await {
        Ok(token) => {
            println!("{}", token.expose());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                TokenError::SecretsManager { .. } | TokenError::NoAnswer { .. } => EXIT_FAILED,
                _ => EXIT_NO_TOKEN,
            }
        }
    }
}

async fn status(broker: &Broker, given: Vec<String>, json: bool) -> u8 {
    // No SECRET_ID: the whole fleet (listed and tagged iadvize:managed=true).
    let report = if given.is_empty() {
        match broker.status_fleet().await {
            Ok(report) => report,
            Err(e) => return report_error(&e),
        }
    } else {
        broker.status(&given).await
    };
    if json {
        print_json(&report);
    } else {
        println!("{}", report.summary);
        for secret in &report.secrets {
            println!();
            print_status(secret);
        }
    }
    let secrets = &report.secrets;
    if secrets.iter().any(|s| s.credentials_blocked) {
        EXIT_BLOCKED
    } else if secrets.iter().any(|s| s.error.is_some()) {
        EXIT_FAILED
    } else if secrets.iter().any(|s| s.token != TokenState::Valid) {
        EXIT_NO_TOKEN
    } else {
        EXIT_OK
    }
}

fn print_status(s: &SecretStatus) {
    let id = &s.secret_id;
    println!("{id}");
    let token = match (s.token, &s.expires_at) {
        (TokenState::Valid, Some(at)) => {
            format!("valid, expires at {at} (in {})", human(s.remaining_seconds))
        }
        (TokenState::Expired, Some(at)) => format!("EXPIRED at {at}"),
        (TokenState::Missing, _) => "missing: the secret has no value yet".to_owned(),
        (TokenState::Invalid, _) => match &s.invalid_reason {
            Some(reason) => format!("INVALID: the value is {reason}"),
            None => "INVALID: the value is not a token record".to_owned(),
        },
        (TokenState::Valid, None) => "valid".to_owned(),
        (TokenState::Expired, None) => "expired".to_owned(),
        (TokenState::Error, _) => "error".to_owned(),
    };
    println!("  token:               {token}");
    if let Some(issued) = &s.issued_at {
        println!("  issued at:           {issued}");
    }
    match &s.rotation {
        None => println!("  rotation:            none in progress"),
        Some(r) => println!(
            "  rotation:            {} (version {}, started {})",
            if r.stuck { "STUCK" } else { "in progress" },
            r.version_id,
            r.started_at.as_deref().unwrap_or("at an unknown time"),
        ),
    }
    println!(
        "  last login attempt:  {}",
        s.last_login_attempt.as_deref().unwrap_or("none recorded")
    );
    match &s.credentials_secret_id {
        Some(credentials) => {
            let state = match (s.credentials_blocked, &s.next_probe_at) {
                (false, _) => "ok".to_owned(),
                (true, Some(at)) => {
                    format!(
                        "BLOCKED: iAdvize refused its current version; next probe login at {at}"
                    )
                }
                (true, None) => "BLOCKED: iAdvize refused its current version".to_owned(),
            };
            println!("  credentials:         {credentials} ({state})");
        }
        None if s.error.is_none() => println!(
            "  credentials:         unknown (no iadvize:credentials-secret-id tag and no IADVIZE_CREDENTIALS_SECRET_ID)"
        ),
        None => {}
    }
    if let Some(error) = &s.error {
        println!("  error:               {error}");
    }
    // What to do, most urgent first.
    if s.credentials_blocked {
        let credentials = s
            .credentials_secret_id
            .as_deref()
            .unwrap_or("CREDENTIALS_SECRET");
        println!(
            "  to fix:              put corrected credentials (aws secretsmanager put-secret-value --secret-id {credentials} --secret-string file://credentials.json), then run `iadvize-token refresh {id}`"
        );
    } else if s.rotation.as_ref().is_some_and(|r| r.stuck) {
        println!(
            "  to fix:              run `iadvize-token resume {id}` (or wait for the next tick)"
        );
    } else if matches!(
        s.token,
        TokenState::Missing | TokenState::Expired | TokenState::Invalid
    ) {
        println!(
            "  to fix:              run `iadvize-token refresh {id}` and check the broker's logs"
        );
    }
}

async fn refresh(
    broker: &Broker,
    given: Vec<String>,
    force: bool,
    json: bool,
    deadline: tokio::time::Instant,
) -> u8 {
    let ids = match secret_ids(broker, given) {
        Ok(ids) => ids,
        Err(code) => return code,
    };
    let report = broker.refresh(&ids, force, deadline).await;
    if json {
        print_json(&report);
    }
    let mut failed = Vec::new();
    let mut refused = false;
    for result in &report.results {
        let expires = result
            .expires_at
            .map(|at| format!(", expires at {}", rfc3339(at)))
            .unwrap_or_default();
        let line = match result.outcome {
            Outcome::Fresh => format!("{}: fresh, nothing to do{expires}", result.secret_id),
            Outcome::Refreshed => format!("{}: refreshed{expires}", result.secret_id),
            Outcome::InProgress => format!(
                "{}: a rotation is in progress; left alone (run `iadvize-token resume {}` to finish it now){expires}",
                result.secret_id, result.secret_id
            ),
            Outcome::Resumed => format!("{}: finished a stuck rotation{expires}", result.secret_id),
            // Only reports answer these.
            Outcome::Superseded | Outcome::Accepted => {
                format!("{}: {}{expires}", result.secret_id, result.outcome.as_str())
            }
            Outcome::Deferred if result.error.is_none() => format!(
                "{}: deferred (no time left for its rotation; its token lasts until the next tick){expires}",
                result.secret_id
            ),
            Outcome::Deferred | Outcome::Failed => {
                failed.push(result.secret_id.clone());
                refused |= result
                    .error_kind
                    .is_some_and(|kind| kind.is_credentials_refusal());
                eprintln!(
                    "error: {}: {}",
                    result.secret_id,
                    result.error.as_deref().unwrap_or("failed")
                );
                continue;
            }
        };
        if !json {
            println!("{line}");
        }
    }
    if failed.is_empty() {
        return EXIT_OK;
    }
    // Refused credentials need the operator; other failures may pass by themselves.
    if refused {
        eprintln!(
            "iAdvize refused the credentials: put a corrected value in the credentials secret, then run `iadvize-token refresh` again"
        );
        EXIT_BLOCKED
    } else {
        EXIT_FAILED
    }
}

async fn verify(
    broker: &Broker,
    secret_id: &str,
    json: bool,
    deadline: tokio::time::Instant,
) -> u8 {
    let verified = match broker.verify_current(secret_id, deadline).await {
        Ok(verified) => verified,
        Err(e @ Error::SecretNotFound { .. }) => {
            eprintln!("error: {e}");
            return EXIT_NO_TOKEN;
        }
        Err(e) => return report_error(&e),
    };
    if json {
        print_json(&verified);
    } else {
        match &verified {
            Verified::Authenticated {
                expires_at,
                remaining_seconds,
            } => println!(
                "{secret_id}: iAdvize accepts the current token (expires at {expires_at}, in {})",
                human(Some(*remaining_seconds))
            ),
            Verified::Rejected { reason } => eprintln!(
                "{secret_id}: iAdvize REFUSES the current token ({reason}); run `iadvize-token refresh --force {secret_id}`"
            ),
            Verified::Expired { expires_at } => eprintln!(
                "{secret_id}: the current token EXPIRED at {expires_at}; run `iadvize-token refresh {secret_id}` and check the broker's logs"
            ),
            Verified::Missing => eprintln!(
                "{secret_id}: the secret holds no token yet; run `iadvize-token refresh {secret_id}`"
            ),
            Verified::Invalid { reason } => eprintln!(
                "{secret_id}: the current value cannot be used ({reason}); run `iadvize-token refresh --force {secret_id}`"
            ),
        }
    }
    if verified.is_ok() {
        EXIT_OK
    } else {
        EXIT_NO_TOKEN
    }
}

async fn resume(broker: &Broker, secret_id: &str, deadline: tokio::time::Instant) -> u8 {
    match broker.resume(secret_id, deadline).await {
        Ok(Resumed::NothingToResume) => {
            println!("{secret_id}: no unfinished rotation; nothing to resume");
            EXIT_OK
        }
        Ok(Resumed::Finished { version_id, record }) => {
            println!(
                "{secret_id}: finished the rotation of version {version_id}; the token expires at {}",
                rfc3339(record.expires_at)
            );
            EXIT_OK
        }
        Err(e) => report_error(&e),
    }
}

fn report_error(e: &Error) -> u8 {
    eprintln!("error: {e}");
    match e {
        Error::CredentialsBlocked { .. } | Error::CredentialsRefused { .. } => EXIT_BLOCKED,
        Error::Config(_) | Error::NoCredentialsSecret { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: the report could not be written as JSON: {e}"),
    }
}

/// `23h 59m 12s`.
fn human(seconds: Option<u64>) -> String {
    seconds.map_or_else(
        || "unknown".to_owned(),
        |s| humantime::format_duration(Duration::from_secs(s)).to_string(),
    )
}
