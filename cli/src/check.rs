//! `iadvize-token check`: a deployment checked end to end from an operator's machine, read-only.
//!
//! Everything starts from the function: its environment names the token and credentials
//! secrets (validated with the broker's own parser), the EventBridge rules that target it are
//! its schedule, its SQS event source mapping is the report queue, the alarms on its metrics
//! are its alarms. Nothing is written, nothing logs in, and the credentials secret is only ever
//! described (`DescribeSecret`: whether it has an AWSCURRENT version), never read: its value is
//! the iAdvize password. The token secrets are read (`GetSecretValue`), as any consumer does.
//!
//! With `--login`, and only then, `check` also asks the deployed function to log in: one
//! synchronous `Invoke` of `{"action": "refresh", "force": true, "secret_ids": [..]}` over the
//! token secrets it found. The function reads the password and logs in, as its schedule would;
//! the CLI still never reads the credentials, and sees only the function's answer.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricAlarm, StateValue};
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::types::{LogFormat, State};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use iadvize_token_broker::bounds::{AwsTimeouts, aws_config};
use iadvize_token_broker::logging::METRICS_SAFE_LEVELS;
use iadvize_token_broker::metrics::{Metrics, NAMESPACE};
use iadvize_token_broker::refresh::NEXT_TICK;
use iadvize_token_broker::status::{SecretStatus, TokenState};
use iadvize_token_broker::store::AWSCURRENT;
use iadvize_token_broker::{Broker, Config, Error, SecretStore};
use serde::Serialize;

use crate::output::{EXIT_FAILED, EXIT_OK, Output, put_credentials};

/// Where the deployment is.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The broker's Lambda function, name or ARN: the FunctionName output of the SAM stack,
    /// `terraform output -raw function_name` of the Terraform module. The rest (secrets,
    /// schedule, queue, alarms) is found from it.
    #[arg(long, value_name = "NAME")]
    pub function: String,
    /// Also have the function log in now: one synchronous Invoke of a forced refresh of the
    /// token secrets found (one login per secret, paced as the schedule's; each gets a new
    /// token). Proves the credentials and the whole path; the CLI still never reads the
    /// password. Needs lambda:InvokeFunction.
    #[arg(long)]
    pub login: bool,
}

/// What `check` found: one entry per thing checked.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The function, as given.
    pub function: String,
    /// Nothing to fix.
    pub healthy: bool,
    /// How many entries are `fix`.
    pub findings: usize,
    /// Every check, in the order made.
    pub checks: Vec<Check>,
}

/// One thing checked.
#[derive(Debug, Serialize)]
pub struct Check {
    /// `ok`, `note` (worth knowing, nothing broken) or `fix`.
    pub status: Status,
    /// What was checked: `function NAME`, `token secret ID`, `schedule rule NAME`, ….
    pub subject: String,
    /// What was found.
    pub message: String,
    /// What to do (for `fix`, sometimes `note`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Worth knowing; nothing broken.
    Note,
    /// To fix: the deployment does not (or will soon not) keep a valid token.
    Fix,
}

/// The checks made so far.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, status: Status, subject: &str, message: String, fix: Option<String>) {
        self.0.push(Check {
            status,
            subject: subject.to_owned(),
            message,
            fix,
        });
    }

    fn ok(&mut self, subject: &str, message: impl Into<String>) {
        self.push(Status::Ok, subject, message.into(), None);
    }

    fn note(&mut self, subject: &str, message: impl Into<String>, fix: Option<String>) {
        self.push(Status::Note, subject, message.into(), fix);
    }

    fn fix(&mut self, subject: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Fix, subject, message.into(), Some(fix.into()));
    }
}

/// The AWS clients `check` uses, from the usual configuration chain.
struct Clients {
    lambda: aws_sdk_lambda::Client,
    /// For `--login`'s Invoke: one attempt (a retried forced refresh would log in twice),
    /// bounded by the command's time-out rather than by a Secrets Manager call's.
    invoker: aws_sdk_lambda::Client,
    events: aws_sdk_eventbridge::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sqs: aws_sdk_sqs::Client,
    secrets: aws_sdk_secretsmanager::Client,
    timeouts: AwsTimeouts,
}

/// Runs `check`; the exit code: 0 healthy, 1 something to fix or not reachable.
pub async fn run(args: CheckArgs, out: Output, timeout: Duration) -> u8 {
    let defaults = AwsTimeouts::default();
    let timeouts = AwsTimeouts {
        operation: defaults.operation.min(timeout),
        attempt: defaults.attempt.min(timeout),
    };
    let config = aws_config(timeouts).await;
    let invoker = aws_sdk_lambda::config::Builder::from(&config)
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .connect_timeout(defaults.attempt.min(timeout))
                .operation_timeout(timeout)
                .operation_attempt_timeout(timeout)
                .build(),
        )
        .build();
    let clients = Clients {
        lambda: aws_sdk_lambda::Client::new(&config),
        invoker: aws_sdk_lambda::Client::from_conf(invoker),
        events: aws_sdk_eventbridge::Client::new(&config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        secrets: aws_sdk_secretsmanager::Client::new(&config),
        timeouts,
    };
    let checks = check(&clients, &args.function, args.login).await;
    let findings = checks.iter().filter(|c| c.status == Status::Fix).count();
    let report = CheckReport {
        function: args.function,
        healthy: findings == 0,
        findings,
        checks,
    };
    out.report(&report, print);
    if report.healthy { EXIT_OK } else { EXIT_FAILED }
}

/// One line per check, the findings with what to do; then the verdict.
fn print(report: &CheckReport) {
    for check in &report.checks {
        let label = match check.status {
            Status::Ok => "ok  ",
            Status::Note => "note",
            Status::Fix => "FIX ",
        };
        match &check.fix {
            Some(fix) => say!("{label}  {}: {}; {fix}", check.subject, check.message),
            None => say!("{label}  {}: {}", check.subject, check.message),
        }
    }
    match report.findings {
        0 => say!("healthy: nothing to fix"),
        1 => say!("1 thing to fix"),
        n => say!("{n} things to fix"),
    }
}

async fn check(clients: &Clients, function: &str, login: bool) -> Vec<Check> {
    let mut checks = Checks::default();
    let subject = format!("function {function}");
    let configuration = match clients
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
    {
        Ok(configuration) => configuration,
        Err(e) => {
            let (message, fix) = if e.code() == Some("ResourceNotFoundException") {
                (
                    "not found".to_owned(),
                    "check --function, the region (AWS_REGION) and the account (AWS_PROFILE)",
                )
            } else {
                (
                    format!("cannot be read: {}", sdk_message(&e)),
                    "check your AWS credentials and lambda:GetFunctionConfiguration",
                )
            };
            checks.fix(&subject, message, fix);
            return checks.0;
        }
    };
    let name = configuration.function_name().unwrap_or(function).to_owned();
    let arn = configuration.function_arn().unwrap_or_default().to_owned();
    let subject = format!("function {name}");
    let environment: HashMap<String, String> = configuration
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();

    let config = check_function(&mut checks, &subject, &configuration, &environment);
    let store = SecretStore::new(clients.secrets.clone()).with_timeouts(clients.timeouts);
    let mut token_secrets = Vec::new();
    match Broker::new(config.clone(), store, Metrics::off()) {
        Ok(broker) => {
            check_timeout(&mut checks, &subject, &configuration, &broker);
            token_secrets = check_secrets(&mut checks, clients, &broker).await;
        }
        Err(e) => checks.fix(
            &subject,
            format!("its configuration cannot be used: {e}"),
            "correct the function's environment",
        ),
    }
    check_schedule(&mut checks, clients, &arn).await;
    check_queue(&mut checks, clients, &name).await;
    check_alarms(&mut checks, clients, &name).await;
    if login {
        check_login(&mut checks, clients, &name, &token_secrets).await;
    }
    checks.0
}

/// State, runtime, log level; the environment through the broker's own parser. Returns the
/// configuration to check the rest with (the secrets' names only, when it is invalid).
fn check_function(
    checks: &mut Checks,
    subject: &str,
    configuration: &GetFunctionConfigurationOutput,
    environment: &HashMap<String, String>,
) -> Config {
    let runtime = configuration.runtime().map_or("none", |r| r.as_str());
    let architecture = configuration
        .architectures()
        .first()
        .map_or("x86_64", |a| a.as_str());
    let state = configuration.state();
    let failed_update = configuration
        .last_update_status()
        .is_some_and(|s| s.as_str() == "Failed");
    if state.is_some_and(|s| *s != State::Active) || failed_update {
        checks.fix(
            subject,
            format!(
                "state {}, last update {}: {}",
                state.map_or("unknown", |s| s.as_str()),
                configuration
                    .last_update_status()
                    .map_or("unknown", |s| s.as_str()),
                configuration
                    .state_reason()
                    .or(configuration.last_update_status_reason())
                    .unwrap_or("no reason given")
            ),
            "see the reason, then deploy again",
        );
    } else if !runtime.starts_with("provided") {
        checks.fix(
            subject,
            format!("runtime {runtime}: the broker is a `bootstrap` binary for an OS-only runtime"),
            "deploy it with runtime provided.al2023 (the IaC in infra/ does)",
        );
    } else {
        checks.ok(
            subject,
            format!("active, runtime {runtime}, {architecture}"),
        );
    }

    let logging = configuration.logging_config();
    let format = logging.and_then(|l| l.log_format());
    let level = logging
        .and_then(|l| l.application_log_level())
        .map(|l| l.as_str().to_ascii_uppercase());
    match (format, level) {
        (Some(LogFormat::Json), Some(level)) if !METRICS_SAFE_LEVELS.contains(&level.as_str()) => {
            checks.fix(
                subject,
                format!(
                    "application log level {level}: Lambda drops the broker's metrics (logged without a level, read as INFO), so the expiry alarm fires without cause"
                ),
                format!(
                    "set it to {} (SAM: ApplicationLogLevel, Terraform: application_log_level)",
                    METRICS_SAFE_LEVELS.join(", ")
                ),
            )
        }
        (Some(LogFormat::Json), level) => checks.ok(
            subject,
            format!(
                "JSON logs at application log level {}",
                level.as_deref().unwrap_or("INFO")
            ),
        ),
        (Some(format), _) => checks.ok(
            subject,
            format!("{} logs (Lambda filters no level)", format.as_str()),
        ),
        (None, _) => checks.note(
            subject,
            "its logging configuration is not reported; the metrics need an application log level of INFO, DEBUG or TRACE",
            None,
        ),
    }

    let lookup = |name: &str| environment.get(name).cloned();
    match Config::from_lookup(lookup) {
        Ok(config) => {
            checks.ok(
                subject,
                format!(
                    "environment valid: {} listed token secret(s), credentials secret {}",
                    config.token_secret_ids().len(),
                    config.credentials_secret_id().unwrap_or("from tags")
                ),
            );
            config
        }
        Err(e) => {
            checks.fix(
                subject,
                format!("its environment is invalid: {e}"),
                format!(
                    "correct {} in the function's configuration (the IaC parameter of that name)",
                    e.variable
                ),
            );
            // Go on with the secrets' names, which cannot be invalid.
            let names_only = |name: &str| {
                ["IADVIZE_TOKEN_SECRET_IDS", "IADVIZE_CREDENTIALS_SECRET_ID"]
                    .contains(&name)
                    .then(|| environment.get(name).cloned())
                    .flatten()
            };
            Config::from_lookup(names_only).unwrap_or_default()
        }
    }
}

/// The function's time-out must leave room for one rotation.
fn check_timeout(
    checks: &mut Checks,
    subject: &str,
    configuration: &GetFunctionConfigurationOutput,
    broker: &Broker,
) {
    let timeout = Duration::from_secs(configuration.timeout().unwrap_or(3).max(0) as u64);
    let needs = broker.rotation_budget();
    if timeout < needs {
        checks.fix(
            subject,
            format!(
                "timeout {}: one rotation needs {} (two iAdvize requests of IADVIZE_HTTP_TIMEOUT and the Secrets Manager writes), so every rotation is deferred",
                humantime::format_duration(timeout),
                humantime::format_duration(needs)
            ),
            "raise the function's timeout (the IaC sets 120s)",
        );
    } else {
        checks.ok(
            subject,
            format!(
                "timeout {} (one rotation needs {})",
                humantime::format_duration(timeout),
                humantime::format_duration(needs)
            ),
        );
    }
}

/// The token secrets (listed and tagged) through the broker's own status, then each
/// credentials secret they use, described only. Returns the token secrets' ids.
async fn check_secrets(checks: &mut Checks, clients: &Clients, broker: &Broker) -> Vec<String> {
    let report = match broker.status_fleet().await {
        Ok(report) => report,
        Err(e) => {
            let fix = match &e {
                Error::Config(_) => {
                    "set IADVIZE_TOKEN_SECRET_IDS on the function, or tag token secrets iadvize:managed=true"
                }
                _ => "check secretsmanager:ListSecrets and DescribeSecret for your identity",
            };
            checks.fix("token secrets", e.to_string(), fix);
            return Vec::new();
        }
    };
    if let Some(error) = &report.discovery_error {
        checks.fix(
            "token secrets",
            format!("the discovery of tagged token secrets failed; they are not checked: {error}"),
            "check secretsmanager:ListSecrets for your identity",
        );
    }
    let mut credentials: Vec<String> = broker
        .config()
        .credentials_secret_id()
        .map(str::to_owned)
        .into_iter()
        .collect();
    for secret in &report.secrets {
        // A secret marked for deletion reads as an error; say which, and how to undo it.
        let deleted = match &secret.error {
            Some(_) => deleted_date(clients, &secret.secret_id).await,
            None => None,
        };
        check_token_secret(checks, secret, deleted);
        if let Some(id) = &secret.credentials_secret_id
            && !credentials.contains(id)
        {
            credentials.push(id.clone());
        }
    }
    for id in credentials {
        check_credentials_secret(checks, clients, &id).await;
    }
    report.secrets.into_iter().map(|s| s.secret_id).collect()
}

fn check_token_secret(checks: &mut Checks, secret: &SecretStatus, deleted: Option<String>) {
    let id = &secret.secret_id;
    let subject = format!("token secret {id}");
    if let Some(date) = deleted {
        checks.fix(
            &subject,
            format!(
                "marked for deletion (DeletedDate {date}): Secrets Manager refuses its value to the broker and every consumer"
            ),
            restore(id),
        );
        return;
    }
    if let Some(error) = &secret.error {
        checks.fix(
            &subject,
            format!("cannot be read: {error}"),
            "check the name and your secretsmanager:DescribeSecret and GetSecretValue permissions",
        );
        return;
    }
    let left = secret.remaining_seconds.map(Duration::from_secs);
    let expires = secret.expires_at.as_deref().unwrap_or("an unknown time");
    match secret.token {
        TokenState::Valid if left.is_some_and(|left| left <= NEXT_TICK) => checks.fix(
            &subject,
            format!(
                "the token expires at {expires}, before the next hourly tick can replace it"
            ),
            format!("run `iadvize-token refresh {id}` and read the function's logs"),
        ),
        TokenState::Valid => checks.ok(
            &subject,
            format!(
                "a valid token record, expires at {expires} (in {})",
                humantime::format_duration(left.unwrap_or_default())
            ),
        ),
        TokenState::Expired => checks.fix(
            &subject,
            format!("the token EXPIRED at {expires}"),
            format!(
                "run `iadvize-token refresh {id}`, then find why the ticks fail (the function's logs, its schedule)"
            ),
        ),
        TokenState::Missing => checks.fix(
            &subject,
            "holds no token yet (the first tick writes it)",
            format!(
                "put the credentials, then run `iadvize-token refresh {id}` or wait for the next tick"
            ),
        ),
        TokenState::Invalid => checks.fix(
            &subject,
            format!(
                "AWSCURRENT is not a token record: {}",
                secret.invalid_reason.as_deref().unwrap_or("unknown reason")
            ),
            format!("run `iadvize-token refresh --force {id}` (only the broker writes this secret)"),
        ),
        TokenState::Error => checks.fix(
            &subject,
            "its token could not be read",
            format!("run `iadvize-token status {id}`"),
        ),
    }
    if let Some(rotation) = &secret.rotation
        && rotation.stuck
    {
        checks.fix(
            &subject,
            format!("a rotation is stuck (version {})", rotation.version_id),
            format!("run `iadvize-token resume {id}` (or wait for the next tick)"),
        );
    }
    match &secret.credentials_secret_id {
        None => checks.fix(
            &subject,
            "no credentials secret: no iadvize:credentials-secret-id tag and no IADVIZE_CREDENTIALS_SECRET_ID on the function",
            format!(
                "tag it: aws secretsmanager tag-resource --secret-id {id} --tags Key=iadvize:credentials-secret-id,Value=CREDENTIALS_SECRET"
            ),
        ),
        Some(credentials) if secret.credentials_blocked => checks.fix(
            &subject,
            format!("iAdvize refused the current credentials in {credentials}"),
            format!(
                "{}, then run `iadvize-token refresh {id}`",
                put_credentials(credentials)
            ),
        ),
        Some(_) => {}
    }
}

/// Exists, is not marked for deletion, and has an AWSCURRENT version: `DescribeSecret` only,
/// never its value.
async fn check_credentials_secret(checks: &mut Checks, clients: &Clients, id: &str) {
    let subject = format!("credentials secret {id}");
    let described = clients.secrets.describe_secret().secret_id(id).send().await;
    let described = match described {
        Ok(described) => described,
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            checks.fix(
                &subject,
                "not found",
                "create it, or correct IADVIZE_CREDENTIALS_SECRET_ID / the iadvize:credentials-secret-id tag",
            );
            return;
        }
        Err(e) => {
            checks.fix(
                &subject,
                format!("cannot be described: {}", sdk_message(&e)),
                "check secretsmanager:DescribeSecret for your identity",
            );
            return;
        }
    };
    if let Some(date) = described.deleted_date() {
        checks.fix(
            &subject,
            format!(
                "marked for deletion (DeletedDate {}): Secrets Manager refuses its value, so the broker cannot log in",
                aws_date(date)
            ),
            restore(id),
        );
        return;
    }
    let current = described
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT));
    match current {
        Some((version, _)) => checks.ok(
            &subject,
            format!("has a value (AWSCURRENT version {version}; not read)"),
        ),
        None => checks.fix(
            &subject,
            "has no value: the broker cannot log in",
            put_credentials(id),
        ),
    }
}

/// `DescribeSecret`'s `DeletedDate` of a secret, when it is marked for deletion (Secrets
/// Manager then refuses its value until `restore-secret`).
async fn deleted_date(clients: &Clients, id: &str) -> Option<String> {
    let described = clients
        .secrets
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .ok()?;
    described.deleted_date().map(aws_date)
}

/// What undoes `delete-secret` within its recovery window.
fn restore(id: &str) -> String {
    format!(
        "restore it before the recovery window ends: aws secretsmanager restore-secret --secret-id {id}"
    )
}

/// An AWS time as RFC 3339.
fn aws_date(date: &aws_sdk_secretsmanager::primitives::DateTime) -> String {
    date.fmt(aws_sdk_secretsmanager::primitives::DateTimeFormat::DateTime)
        .unwrap_or_else(|_| date.to_string())
}

/// The EventBridge rules that target the function: at least one enabled schedule, at least
/// hourly.
async fn check_schedule(checks: &mut Checks, clients: &Clients, function_arn: &str) {
    let mut names = Vec::new();
    let mut next_token = None;
    loop {
        let answer = clients
            .events
            .list_rule_names_by_target()
            .target_arn(function_arn)
            .set_next_token(next_token)
            .send()
            .await;
        match answer {
            Ok(page) => {
                names.extend(page.rule_names().iter().cloned());
                next_token = page.next_token().map(str::to_owned);
                if next_token.is_none() {
                    break;
                }
            }
            Err(e) => {
                checks.fix(
                    "schedule",
                    format!("the rules cannot be listed: {}", sdk_message(&e)),
                    "check events:ListRuleNamesByTarget for your identity",
                );
                return;
            }
        }
    }
    let mut running = 0;
    for name in &names {
        let subject = format!("schedule rule {name}");
        let rule = match clients.events.describe_rule().name(name).send().await {
            Ok(rule) => rule,
            Err(e) => {
                checks.fix(
                    &subject,
                    format!("cannot be described: {}", sdk_message(&e)),
                    "check events:DescribeRule for your identity",
                );
                continue;
            }
        };
        let Some(expression) = rule.schedule_expression() else {
            // An event-pattern rule (not a tick): not the schedule.
            continue;
        };
        let state = rule.state().map_or("unknown", |s| s.as_str());
        if state != "ENABLED" {
            checks.fix(
                &subject,
                format!("{expression} is {state}: no refresh tick runs"),
                format!("aws events enable-rule --name {name} (or apply the IaC again)"),
            );
            continue;
        }
        let hourly = "schedule the tick at least hourly (the IaC's default: rate(1 hour); or cron(0 * * * ? *))";
        match (every(expression), cron_every_hour(expression)) {
            (Some(period), _) if period > NEXT_TICK => checks.fix(
                &subject,
                format!(
                    "{expression}: ticks {} apart; a token the broker defers must last until the next tick, which it counts on within {}",
                    humantime::format_duration(period),
                    humantime::format_duration(NEXT_TICK)
                ),
                hourly,
            ),
            (None, Some(false)) => checks.fix(
                &subject,
                format!(
                    "{expression}: does not run every hour of every day; a token the broker defers must last until the next tick, which it counts on within {}",
                    humantime::format_duration(NEXT_TICK)
                ),
                hourly,
            ),
            (None, None) => checks.fix(
                &subject,
                format!("{expression}: not a schedule expression this check can read"),
                hourly,
            ),
            _ => {
                running += 1;
                checks.ok(&subject, format!("ENABLED, {expression}, targets the function"));
            }
        }
    }
    if names.is_empty() {
        checks.fix(
            "schedule",
            "no EventBridge rule targets the function: no refresh tick runs",
            "apply the IaC again (SAM: the RefreshTick event; Terraform: aws_cloudwatch_event_rule.tick)",
        );
    } else if running == 0
        && !checks
            .0
            .iter()
            .any(|c| c.subject.starts_with("schedule rule"))
    {
        checks.fix(
            "schedule",
            "the rules that target the function are not schedules: no refresh tick runs",
            "apply the IaC again",
        );
    }
}

/// `rate(1 hour)`, `rate(30 minutes)`, `rate(1 day)` as a period; `None` for a cron
/// expression (AWS EventBridge, "Schedule expressions for rules").
fn every(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok()?;
    let unit = match unit.trim().trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86400,
        _ => return None,
    };
    Some(Duration::from_secs(count * unit))
}

/// Whether an EventBridge `cron(minutes hours day-of-month month day-of-week year)` expression
/// runs at least once in every hour of every day: its hours cover all 24 and its days, months
/// and years are not restricted (any minutes field runs at least once an hour). `None` when
/// `expression` is not a six-field cron expression. AWS EventBridge, "Schedule expressions for
/// rules": <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html>.
fn cron_every_hour(expression: &str) -> Option<bool> {
    let inner = expression.strip_prefix("cron(")?.strip_suffix(')')?;
    let fields: Vec<&str> = inner.split_whitespace().collect();
    let [_minutes, hours, day_of_month, month, day_of_week, year] = fields[..] else {
        return None;
    };
    let any = |field: &str| matches!(field, "*" | "?");
    let every_hour = matches!(hours, "*" | "*/1" | "0/1" | "0-23");
    let every_day_of_week = any(day_of_week) || matches!(day_of_week, "1-7" | "SUN-SAT");
    Some(every_hour && any(day_of_month) && any(month) && every_day_of_week && any(year))
}

/// The report queue, when the function has an SQS event source mapping: enabled, and a FIFO
/// queue with content-based deduplication (consumers send no deduplication id).
async fn check_queue(checks: &mut Checks, clients: &Clients, function: &str) {
    let mappings = match clients
        .lambda
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
    {
        Ok(answer) => answer.event_source_mappings().to_vec(),
        Err(e) => {
            checks.fix(
                "report queue",
                format!(
                    "the event source mappings cannot be listed: {}",
                    sdk_message(&e)
                ),
                "check lambda:ListEventSourceMappings for your identity",
            );
            return;
        }
    };
    let queues: Vec<_> = mappings
        .iter()
        .filter(|m| {
            m.event_source_arn()
                .is_some_and(|arn| arn.contains(":sqs:"))
        })
        .collect();
    if queues.is_empty() {
        checks.note(
            "report queue",
            "none: consumers' reports of a refused token reach the broker only at the next tick",
            None,
        );
        return;
    }
    for mapping in queues {
        let queue_arn = mapping.event_source_arn().unwrap_or_default();
        let subject = format!("report queue {queue_arn}");
        let state = mapping.state().unwrap_or("unknown");
        if !state.eq_ignore_ascii_case("Enabled") {
            checks.fix(
                &subject,
                format!("its event source mapping is {state}: reports are not delivered"),
                format!(
                    "aws lambda update-event-source-mapping --uuid {} --enabled",
                    mapping.uuid().unwrap_or("UUID")
                ),
            );
            continue;
        }
        // arn:aws:sqs:REGION:ACCOUNT:NAME
        let parts: Vec<&str> = queue_arn.split(':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            checks.fix(
                &subject,
                "not an SQS queue ARN",
                "check the event source mapping",
            );
            continue;
        };
        let url = match clients
            .sqs
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
        {
            Ok(answer) => answer.queue_url().unwrap_or_default().to_owned(),
            Err(e) => {
                checks.fix(
                    &subject,
                    format!("cannot be found: {}", sdk_message(&e)),
                    "apply the IaC again, or check sqs:GetQueueUrl for your identity",
                );
                continue;
            }
        };
        let attributes = match clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
        {
            Ok(answer) => answer.attributes().cloned().unwrap_or_default(),
            Err(e) => {
                checks.fix(
                    &subject,
                    format!("its attributes cannot be read: {}", sdk_message(&e)),
                    "check sqs:GetQueueAttributes for your identity",
                );
                continue;
            }
        };
        let flag = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attributes.get(&name).is_some_and(|v| v == "true")
        };
        if !flag(aws_sdk_sqs::types::QueueAttributeName::FifoQueue)
            || !flag(aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication)
        {
            checks.fix(
                &subject,
                "not a FIFO queue with content-based deduplication: consumers' reports (no deduplication id) are refused or repeated",
                "apply the IaC again",
            );
        } else {
            checks.ok(
                &subject,
                "FIFO, content-based deduplication, mapping enabled",
            );
        }
    }
}

/// An alarm on the function's `Errors` and one on the fleet's `MinSecondsUntilExpiry`: each
/// present, its actions enabled, not in ALARM; a note when it notifies no one.
async fn check_alarms(checks: &mut Checks, clients: &Clients, function: &str) {
    let errors = [("FunctionName", function)];
    check_alarm(checks, clients, "AWS/Lambda", "Errors", &errors, "errors").await;
    check_alarm(
        checks,
        clients,
        NAMESPACE,
        "MinSecondsUntilExpiry",
        &[],
        "token expiry",
    )
    .await;
}

async fn check_alarm(
    checks: &mut Checks,
    clients: &Clients,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
    what: &str,
) {
    let subject = format!("{what} alarm");
    let mut request = clients
        .cloudwatch
        .describe_alarms_for_metric()
        .namespace(namespace)
        .metric_name(metric);
    for (name, value) in dimensions {
        request = request.dimensions(Dimension::builder().name(*name).value(*value).build());
    }
    let alarms: Vec<MetricAlarm> = match request.send().await {
        // Only the alarms on exactly this series (a dimension more is another series).
        Ok(answer) => answer
            .metric_alarms()
            .iter()
            .filter(|alarm| same_dimensions(alarm.dimensions(), dimensions))
            .cloned()
            .collect(),
        Err(e) => {
            checks.fix(
                &subject,
                format!("the alarms cannot be listed: {}", sdk_message(&e)),
                "check cloudwatch:DescribeAlarmsForMetric for your identity",
            );
            return;
        }
    };
    let series = match dimensions {
        [] => format!("{namespace} {metric}"),
        _ => format!(
            "{namespace} {metric} ({})",
            dimensions
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if alarms.is_empty() {
        checks.fix(
            &subject,
            format!("no alarm on {series}: a failing broker would go unnoticed"),
            "apply the IaC again (it creates the alarms)",
        );
        return;
    }
    for alarm in alarms {
        let name = alarm.alarm_name().unwrap_or("(unnamed)");
        let subject = format!("{what} alarm {name}");
        if alarm.actions_enabled() == Some(false) {
            checks.fix(
                &subject,
                "its actions are disabled",
                format!("aws cloudwatch enable-alarm-actions --alarm-names {name}"),
            );
        } else if alarm.state_value() == Some(&StateValue::Alarm) {
            checks.fix(
                &subject,
                format!(
                    "in ALARM: {}",
                    alarm.state_reason().unwrap_or("no reason given")
                ),
                "see the README's Operating section, Alarms",
            );
        } else if alarm.alarm_actions().is_empty() {
            checks.note(
                &subject,
                format!("on {series}, notifies no one (no alarm action)"),
                Some("set AlarmEmail or AlarmTopicArns (SAM), alarm_email or alarm_topic_arns (Terraform)".into()),
            );
        } else {
            checks.ok(
                &subject,
                format!(
                    "on {series}, {}, notifies {}",
                    alarm.state_value().map_or("no state", |s| s.as_str()),
                    alarm.alarm_actions().join(", ")
                ),
            );
        }
    }
}

fn same_dimensions(found: &[Dimension], wanted: &[(&str, &str)]) -> bool {
    found.len() == wanted.len()
        && wanted.iter().all(|(name, value)| {
            found
                .iter()
                .any(|d| d.name() == Some(*name) && d.value() == Some(*value))
        })
}

/// `--login`: the function refreshes the token secrets now, forced, in one synchronous
/// invocation; one entry per secret from its answer, or one for a failed invocation.
async fn check_login(checks: &mut Checks, clients: &Clients, function: &str, secrets: &[String]) {
    let subject = format!("login through {function}");
    if secrets.is_empty() {
        checks.fix(
            &subject,
            "not tried: no token secret was found",
            "fix the token secrets above first",
        );
        return;
    }
    let event = serde_json::json!({"action": "refresh", "force": true, "secret_ids": secrets});
    let answer = clients
        .invoker
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            checks.fix(
                &subject,
                format!("the invocation failed: {}", sdk_message(&e)),
                "check lambda:InvokeFunction for your identity, and --timeout",
            );
            return;
        }
    };
    let payload: serde_json::Value = answer
        .payload()
        .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
        .unwrap_or_default();
    let results = payload["results"].as_array();
    match (answer.function_error(), results) {
        (None, Some(results)) => {
            for result in results {
                login_result(checks, result);
            }
        }
        (error, _) => {
            // A failed tick answers Lambda's error document: the summary names each failed
            // secret and why; the function's log group has the details.
            let kind = payload["errorType"].as_str().unwrap_or("an error");
            let message = payload["errorMessage"]
                .as_str()
                .unwrap_or("no message in the answer");
            checks.fix(
                &subject,
                format!(
                    "the function answered {kind} ({}): {message}",
                    error.unwrap_or("no results")
                ),
                "read the function's log group for this invocation; refused credentials: correct the credentials secret",
            );
        }
    }
}

/// One secret of `--login`'s answer: `{"secret_id", "outcome", "expires_at", "error"?}`.
fn login_result(checks: &mut Checks, result: &serde_json::Value) {
    let id = result["secret_id"].as_str().unwrap_or("(unnamed)");
    let subject = format!("login for {id}");
    let expires_at = result["expires_at"].as_str().unwrap_or("unknown");
    match result["outcome"].as_str().unwrap_or("unknown") {
        "refreshed" | "resumed" => checks.ok(
            &subject,
            format!("logged in and published a verified token, expires at {expires_at}"),
        ),
        "in_progress" if result["held_back"].is_object() => checks.note(
            &subject,
            format!(
                "held back by the login spacing (IADVIZE_MIN_LOGIN_INTERVAL): no login this time; the next may start at {}",
                result["held_back"]["next_login_at"].as_str().unwrap_or("an unknown time")
            ),
            Some("run check --login again then".to_owned()),
        ),
        outcome @ ("deferred" | "in_progress") => checks.note(
            &subject,
            format!("{outcome}: no login this time (pacing, a 429 pause or a rotation under way)"),
            Some("run check --login again in a minute".to_owned()),
        ),
        "failed" => checks.fix(
            &subject,
            format!(
                "failed ({}): {}",
                result["error_kind"].as_str().unwrap_or("unknown"),
                result["error"].as_str().unwrap_or("no error given")
            ),
            "see the runbook in the README for this error kind",
        ),
        outcome => checks.note(
            &subject,
            format!("{outcome}, expires at {expires_at}"),
            None,
        ),
    }
}

/// `Code: message` of an AWS error (never a secret: these calls carry none), or the SDK's
/// description when the service did not answer.
fn sdk_message<E, R>(e: &aws_sdk_lambda::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_expressions_read_as_periods_and_cron_as_unknown() {
        assert_eq!(every("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(every("rate(30 minutes)"), Some(Duration::from_secs(1800)));
        assert_eq!(every("rate(2 days)"), Some(Duration::from_secs(172_800)));
        assert_eq!(every("cron(0 * * * ? *)"), None);
        assert_eq!(every("rate(soon)"), None);
    }

    #[test]
    fn a_cron_schedule_counts_as_hourly_only_when_it_runs_every_hour_of_every_day() {
        for hourly in [
            "cron(0 * * * ? *)",
            "cron(15 * ? * * *)",
            "cron(*/10 * * * ? *)",
            "cron(0,30 0-23 ? * SUN-SAT *)",
        ] {
            assert_eq!(cron_every_hour(hourly), Some(true), "{hourly}");
        }
        for sparse in [
            "cron(0 3 * * ? *)",
            "cron(0 3 ? * MON *)",
            "cron(0 */2 * * ? *)",
            "cron(0 8-18 ? * MON-FRI *)",
            "cron(0 * 1 * ? *)",
            "cron(0 * * 1-6 ? *)",
            "cron(0 * * * ? 2026)",
        ] {
            assert_eq!(cron_every_hour(sparse), Some(false), "{sparse}");
        }
        assert_eq!(cron_every_hour("rate(1 hour)"), None);
        assert_eq!(cron_every_hour("cron(0 * * * ?)"), None);
    }
}
