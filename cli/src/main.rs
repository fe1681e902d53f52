//! `iadvize-token`: read the token, see the broker's state, and fix it, from a shell.
//!
//! Uses the same library code as the Lambda and the normal AWS configuration chain
//! (profile, region, `AWS_ENDPOINT_URL`, …); the broker settings come from the same
//! `IADVIZE_*` variables as the Lambda's.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use iadvize_token_broker::bounds::{AwsTimeouts, aws_config, within_deadline};
use iadvize_token_broker::consumer::TokenError;
use iadvize_token_broker::error::ErrorKind;
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::operator::{Resumed, Verified};
use iadvize_token_broker::refresh::Outcome;
use iadvize_token_broker::status::{SecretStatus, TokenState};
use iadvize_token_broker::token::rfc3339;
use iadvize_token_broker::{Broker, Config, Error, SecretStore, TokenSource, logging};

#[macro_use]
mod output;
mod check;
mod progress;

use output::{
    EXIT_BLOCKED, EXIT_CODES, EXIT_FAILED, EXIT_NO_TOKEN, EXIT_OK, EXIT_USAGE, Output, print_json,
};

/// The command's name, as installed.
const BIN_NAME: &str = "iadvize-token";

/// Read the iAdvize access token kept by iadvize-token-broker, and operate the broker.
#[derive(Debug, Parser)]
#[command(name = BIN_NAME, version, after_help = EXIT_CODES)]
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

    /// Print one JSON document on stdout instead of text (also on failure: {"error": ...}).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the current access token alone, for scripts: TOKEN=$(iadvize-token get SECRET_ID)
    /// (--json: the whole token record, with its expiry)
    Get {
        /// The token secret (name or ARN).
        secret_id: String,
    },
    /// Show each token secret's expiry, rotation, last login attempt and credentials state.
    Status {
        /// The token secrets (default: as a tick, every secret of IADVIZE_TOKEN_SECRET_IDS
        /// plus those tagged iadvize:managed=true).
        secret_ids: Vec<String>,
    },
    /// Refresh the tokens that are due, or all of them with --force, and resume stuck
    /// rotations: what the hourly tick does, from your machine. Logs in to iAdvize with the
    /// credentials secret (reads the password); waits for a login slot when the login
    /// pacing asks to (said on stderr).
    Refresh {
        /// The token secrets (default: as a tick, every secret of IADVIZE_TOKEN_SECRET_IDS
        /// plus those tagged iadvize:managed=true).
        secret_ids: Vec<String>,
        /// Log in and rotate even if the token is fresh.
        #[arg(long)]
        force: bool,
    },
    /// Ask iAdvize (/_authenticated) whether it accepts the current token (no login).
    Verify {
        /// The token secret (name or ARN).
        secret_id: String,
    },
    /// Finish an unfinished (stuck) rotation now, whatever its age.
    Resume {
        /// The token secret (name or ARN).
        secret_id: String,
    },
    /// Check a deployment end to end from here, read-only: the function's configuration,
    /// its schedule, report queue and alarms, the credentials secret (DescribeSecret only:
    /// never its value) and the token secrets. Prints what to fix; exit 1 when anything is.
    Check(check::CheckArgs),
    /// Print a shell completion script: iadvize-token completions bash > /etc/bash_completion.d/iadvize-token
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): iadvize-token manpage > iadvize-token.1; with DIR, write
    /// it and one page per command (iadvize-token-check.1, ...) into DIR.
    #[command(hide = true)]
    Manpage {
        /// Where to write every page.
        dir: Option<std::path::PathBuf>,
    },
    /// Report that iAdvize refuses a token (as consumers do through the report queue): the
    /// broker checks it and refreshes it if iAdvize rejects it.
    ReportRejected {
        /// The token secret (name or ARN).
        secret_id: String,
        /// The SHA-256 (hex) of the refused token; default: the token the secret holds now.
        #[arg(long)]
        token_sha256: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(cli.verbose);
    let deadline = tokio::time::Instant::now() + cli.timeout;
    // Every Secrets Manager call of the command ends before the deadline (bounds.rs).
    let out = Output { json: cli.json };
    let code = within_deadline(deadline, run(cli.command, out, cli.timeout, deadline)).await;
    ExitCode::from(code)
}

async fn run(
    command: Command,
    out: Output,
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> u8 {
    match command {
        Command::Get { secret_id } => get(&secret_id, out, timeout).await,
        Command::Status { secret_ids } => match broker(out).await {
            Ok(broker) => status(&broker, secret_ids, out).await,
            Err(code) => code,
        },
        Command::Refresh { secret_ids, force } => match broker(out).await {
            Ok(broker) => refresh(&broker, secret_ids, force, out, deadline).await,
            Err(code) => code,
        },
        Command::Verify { secret_id } => match broker(out).await {
            Ok(broker) => verify(&broker, &secret_id, out, deadline).await,
            Err(code) => code,
        },
        Command::Resume { secret_id } => match broker(out).await {
            Ok(broker) => resume(&broker, &secret_id, out, deadline).await,
            Err(code) => code,
        },
        Command::Check(args) => check::run(args, out, timeout).await,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut script);
            let mut script = String::from_utf8_lossy(&script).into_owned();
            if shell == clap_complete::Shell::Bash {
                script = bash_case_labels_fixed(&script, BIN_NAME);
            }
            output::print_text(&script);
            EXIT_OK
        }
        Command::Manpage { dir } => {
            let written = match dir {
                Some(dir) => clap_mangen::generate_to(Cli::command(), dir),
                None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()),
            };
            match written {
                Ok(()) => EXIT_OK,
                Err(e) => out.fail(
                    EXIT_FAILED,
                    format!("the man page could not be written: {e}"),
                ),
            }
        }
        Command::ReportRejected {
            secret_id,
            token_sha256,
        } => match broker(out).await {
            Ok(broker) => report_rejected(&broker, &secret_id, token_sha256, out, deadline).await,
            Err(code) => code,
        },
    }
}

/// A command line clap refuses: its message on stderr as clap prints it and, when `--json` is
/// among the arguments, the error document on stdout too (scripts read one JSON document
/// whatever happens). `--help` and `--version` are no failures: clap prints them as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    let json = std::env::args_os().skip(1).any(|arg| arg == "--json");
    if !e.use_stderr() || !json {
        e.exit();
    }
    let _ = e.print();
    let code = u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE);
    // Display of clap's rendered message is its plain text, without the terminal's colours.
    let text = e.render().to_string();
    let message = text.trim().trim_start_matches("error: ");
    print_json(&serde_json::json!({"error": message, "exit_code": code}));
    ExitCode::from(code)
}

/// clap_complete's bash script for a command name with a hyphen completes nothing after the
/// subcommand (clap-rs/clap#6421, open): its word loop names the state of
/// `iadvize-token check` `iadvize__token__subcmd__check` (the name's hyphen escaped as `__`),
/// but the `case` arms that list each subcommand's options are labelled
/// `iadvize__subcmd__token__subcmd__check)` (the hyphen escaped as the subcommand separator),
/// so no arm ever matches. Relabels those arms the loop's way; once clap_complete agrees with
/// itself, no label starts with the wrong spelling and this changes nothing.
fn bash_case_labels_fixed(script: &str, bin_name: &str) -> String {
    let wrong = bin_name.replace('-', "__subcmd__");
    let right = bin_name.replace('-', "__");
    if wrong == right {
        return script.to_owned();
    }
    script
        .split_inclusive('\n')
        .map(|line| {
            let label = line.trim();
            let is_arm = label
                .strip_prefix(&wrong)
                .is_some_and(|rest| rest == ")" || rest.starts_with("__subcmd__"))
                && label.ends_with(')');
            if is_arm {
                line.replacen(&wrong, &right, 1)
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// `report-rejected`: the broker's handling of a report, in-process.
async fn report_rejected(
    broker: &Broker,
    secret_id: &str,
    token_sha256: Option<String>,
    out: Output,
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
                    return out.fail(
                        EXIT_NO_TOKEN,
                        format!("{secret_id}: the current value is not a token record ({e}); run `iadvize-token refresh {secret_id}`"),
                    );
                }
            },
            // No value: either the secret has none yet or it does not exist (reading a
            // missing secret answers no value too); describing it tells which.
            Ok(None) => {
                return match broker.store().describe(secret_id).await {
                    Err(e @ Error::SecretNotFound { .. }) => out.fail(EXIT_NO_TOKEN, e),
                    Err(e) => report_error(out, &e),
                    Ok(_) => out.fail(
                        EXIT_NO_TOKEN,
                        format!("{secret_id}: the secret holds no token yet; run `iadvize-token refresh {secret_id}`"),
                    ),
                };
            }
            Err(e) => return report_error(out, &e),
        },
    };
    let event = serde_json::json!({
        "action": "report-rejected",
        "secret_id": secret_id,
        "token_sha256": hash,
    });
    let report = match Report::parse(&event) {
        Ok(report) => report,
        Err(e) => return out.fail(EXIT_USAGE, e),
    };
    let answer = match broker.report_rejected(&report, deadline).await {
        Ok(answer) => answer,
        Err(e) => return report_error(out, &e),
    };
    if out.json {
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
        if !out.json {
            say!("{line}");
        }
    }
    code
}

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
    use tracing_subscriber::prelude::*;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(logging::filter(&level));
    // Whatever the log level: one line on stderr when a command waits (login pacing).
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(progress::layer())
        .try_init();
}

async fn broker(out: Output) -> Result<Broker, u8> {
    let config = Config::from_env().map_err(|e| out.fail(EXIT_USAGE, e))?;
    let store = SecretStore::from_env(config.aws_timeouts()).await;
    Broker::new(config, store, Metrics::off()).map_err(|e| out.fail(EXIT_USAGE, e))
}

/// `get` reads like any consumer (no IADVIZE_* variable needed): the SDK's default time-outs,
/// each call bounded by `--timeout`.
async fn get(secret_id: &str, out: Output, timeout: Duration) -> u8 {
    let defaults = AwsTimeouts::default();
    let timeouts = AwsTimeouts {
        operation: defaults.operation.min(timeout),
        attempt: defaults.attempt.min(timeout),
    };
    let client = aws_sdk_secretsmanager::Client::new(&aws_config(timeouts).await);
    let source = TokenSource::builder(client, secret_id)
        .call_timeout(timeout)
        .build();
    match source.record().await {
        Ok(record) => {
            out.report(&output::TokenDocument::of(secret_id, &record), |_| {
                say!("{}", record.access_token.expose());
            });
            EXIT_OK
        }
        Err(e) => {
            let code = match e {
                TokenError::SecretsManager { .. } | TokenError::NoAnswer { .. } => EXIT_FAILED,
                _ => EXIT_NO_TOKEN,
            };
            out.fail(code, e)
        }
    }
}

async fn status(broker: &Broker, given: Vec<String>, out: Output) -> u8 {
    // No SECRET_ID: the whole fleet (listed and tagged iadvize:managed=true).
    let report = if given.is_empty() {
        match broker.status_fleet().await {
            Ok(report) => report,
            Err(e) => return report_error(out, &e),
        }
    } else {
        broker.status(&given).await
    };
    if out.json {
        print_json(&report);
    } else {
        say!("{}", report.summary);
        for secret in &report.secrets {
            say!();
            print_status(secret);
        }
        if let Some(error) = &report.discovery_error {
            say!();
            say!("(discovery of tagged secrets)");
            say!("  error:               {error}");
        }
    }
    let secrets = &report.secrets;
    if secrets.iter().any(|s| s.credentials_blocked) {
        EXIT_BLOCKED
    } else if report.discovery_error.is_some()
        || secrets
            .iter()
            .any(|s| s.error.is_some() && s.error_kind != Some(ErrorKind::SecretNotFound))
    {
        EXIT_FAILED
    } else if secrets.iter().any(|s| s.token != TokenState::Valid) {
        // A secret that does not exist has no usable token either (as for `get`, `verify`).
        EXIT_NO_TOKEN
    } else {
        EXIT_OK
    }
}

fn print_status(s: &SecretStatus) {
    let id = &s.secret_id;
    say!("{id}");
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
    say!("  token:               {token}");
    if let Some(issued) = &s.issued_at {
        say!("  issued at:           {issued}");
    }
    match &s.rotation {
        None => say!("  rotation:            none in progress"),
        Some(r) => say!(
            "  rotation:            {} (version {}, started {})",
            if r.stuck { "STUCK" } else { "in progress" },
            r.version_id,
            r.started_at.as_deref().unwrap_or("at an unknown time"),
        ),
    }
    say!(
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
            say!("  credentials:         {credentials} ({state})");
        }
        None if s.error.is_none() => say!(
            "  credentials:         unknown (no iadvize:credentials-secret-id tag and no IADVIZE_CREDENTIALS_SECRET_ID)"
        ),
        None => {}
    }
    if let Some(error) = &s.error {
        say!("  error:               {error}");
    }
    // What to do, most urgent first.
    if s.credentials_blocked {
        let credentials = s
            .credentials_secret_id
            .as_deref()
            .unwrap_or("CREDENTIALS_SECRET");
        say!(
            "  to fix:              {}, then run `iadvize-token refresh {id}`",
            output::put_credentials(credentials)
        );
    } else if s.rotation.as_ref().is_some_and(|r| r.stuck) {
        say!("  to fix:              run `iadvize-token resume {id}` (or wait for the next tick)");
    } else if matches!(
        s.token,
        TokenState::Missing | TokenState::Expired | TokenState::Invalid
    ) {
        say!("  to fix:              run `iadvize-token refresh {id}` and check the broker's logs");
    }
}

async fn refresh(
    broker: &Broker,
    given: Vec<String>,
    force: bool,
    out: Output,
    deadline: tokio::time::Instant,
) -> u8 {
    // No SECRET_ID: what the tick does, the whole fleet (listed and tagged iadvize:managed=true).
    let report = if given.is_empty() {
        match broker.refresh_fleet(force, deadline).await {
            Ok(report) => report,
            Err(e) => return report_error(out, &e),
        }
    } else {
        broker.refresh(&given, force, deadline).await
    };
    if out.json {
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
            // Held back by the login spacing, not by a rotation: nothing to resume.
            Outcome::InProgress if result.held_back.is_some() => {
                let next = result
                    .held_back
                    .as_ref()
                    .map_or("later", |held| held.next_login_at.as_str());
                let line = format!(
                    "{}: not refreshed: the login spacing holds it back (its previous login attempt started less than IADVIZE_MIN_LOGIN_INTERVAL ago); the next login may start at {next}; the current token stays{expires}",
                    result.secret_id
                );
                if force {
                    // Asked to renew it and renewed nothing: a failure to retry.
                    failed.push(result.secret_id.clone());
                    eprintln!("error: {line}");
                    continue;
                }
                line
            }
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
                "{}: deferred to the next tick (its token lasts until then){expires}",
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
        if !out.json {
            say!("{line}");
        }
    }
    if let Some(error) = &report.discovery_error {
        eprintln!(
            "error: the discovery of tagged token secrets failed; they were not refreshed: {error}"
        );
    }
    if failed.is_empty() {
        return if report.discovery_error.is_some() {
            EXIT_FAILED
        } else {
            EXIT_OK
        };
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
    out: Output,
    deadline: tokio::time::Instant,
) -> u8 {
    let verified = match broker.verify_current(secret_id, deadline).await {
        Ok(verified) => verified,
        Err(e @ Error::SecretNotFound { .. }) => return out.fail(EXIT_NO_TOKEN, e),
        Err(e) => return report_error(out, &e),
    };
    if out.json {
        print_json(&verified);
    } else {
        match &verified {
            Verified::Authenticated {
                expires_at,
                remaining_seconds,
            } => say!(
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

async fn resume(
    broker: &Broker,
    secret_id: &str,
    out: Output,
    deadline: tokio::time::Instant,
) -> u8 {
    match broker.resume(secret_id, deadline).await {
        Ok(Resumed::NothingToResume) => {
            let document = output::ResumeDocument::nothing(secret_id);
            out.report(&document, |_| {
                say!("{secret_id}: no unfinished rotation; nothing to resume")
            });
            EXIT_OK
        }
        Ok(Resumed::Finished { version_id, record }) => {
            let expires_at = rfc3339(record.expires_at);
            let document = output::ResumeDocument::finished(secret_id, &version_id, &expires_at);
            out.report(&document, |_| {
                say!(
                    "{secret_id}: finished the rotation of version {version_id}; the token expires at {expires_at}"
                )
            });
            EXIT_OK
        }
        Err(e) => report_error(out, &e),
    }
}

fn report_error(out: Output, e: &Error) -> u8 {
    let code = match e {
        Error::CredentialsBlocked { .. } | Error::CredentialsRefused { .. } => EXIT_BLOCKED,
        Error::Config(_) | Error::NoCredentialsSecret { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    };
    out.fail(code, e)
}

/// `23h 59m 12s`.
fn human(seconds: Option<u64>) -> String {
    seconds.map_or_else(
        || "unknown".to_owned(),
        |s| humantime::format_duration(Duration::from_secs(s)).to_string(),
    )
}
