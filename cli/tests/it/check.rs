//! `iadvize-token check` against deployments made in moto (Lambda, EventBridge, CloudWatch,
//! SQS, Secrets Manager): a healthy one, broken ones, and that it never reads the credentials.

use std::process::Output;

use crate::common::{BIN, code, stderr, stdout};
use crate::support::*;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    ApplicationLogLevel, Environment, FunctionCode, LogFormat, LoggingConfig, Runtime,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use standins::SmProxy;

const ACCOUNT: &str = "123456789012";
/// Where the alarms would notify (moto does not check the topic).
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:iadvize-token-broker-alarms";

/// What a deployment is made of; each field breaks one thing when changed.
struct Shape {
    /// The application log level of the function's JSON logs.
    log_level: ApplicationLogLevel,
    /// Whether the schedule rule is enabled.
    schedule_enabled: bool,
    /// The schedule rule's expression.
    schedule: &'static str,
    /// Whether there is an alarm on the function's `Errors`.
    errors_alarm: bool,
    /// Whether the credentials secret has a value.
    credentials_value: bool,
    /// Hours the stored token has left (negative: expired).
    token_hours_left: i64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            log_level: ApplicationLogLevel::Info,
            schedule_enabled: true,
            schedule: "rate(1 hour)",
            errors_alarm: true,
            credentials_value: true,
            token_hours_left: 20,
        }
    }
}

/// A deployment as the IaC makes it: the function (with its environment and log settings),
/// its hourly rule, its report queue and mapping, its two alarms; the world's secrets.
struct Deployment {
    world: World,
    function: String,
    credentials_id: String,
    rule: String,
}

fn lambda() -> aws_sdk_lambda::Client {
    moto_client!(aws_sdk_lambda)
}

fn events() -> aws_sdk_eventbridge::Client {
    moto_client!(aws_sdk_eventbridge)
}

fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    moto_client!(aws_sdk_cloudwatch)
}

/// An IAM role in moto (a function needs one that exists). No IAM SDK in the workspace: a
/// Query API request, which moto routes by the credential scope and does not verify.
async fn create_role(name: &str) -> String {
    let answer = reqwest::Client::new()
        .post(moto_endpoint())
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            ),
        ])
        .send()
        .await
        .expect("moto answers");
    assert!(
        answer.status().is_success(),
        "CreateRole: {}",
        answer.text().await.unwrap_or_default()
    );
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// The smallest zip there is (an end-of-central-directory record alone): moto stores the
/// package and never runs it.
fn empty_zip() -> Vec<u8> {
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0);
    zip
}

impl Deployment {
    async fn new(shape: Shape) -> Deployment {
        let world = World::new().await;
        world.put_record(shape.token_hours_left).await;
        let credentials_id = if shape.credentials_value {
            world.creds_id.clone()
        } else {
            let id = unique("creds-empty");
            create_empty_secret(&world.sm, &id).await;
            id
        };
        let function = unique("broker");
        let role = create_role(&unique("role")).await;
        let lambda = lambda();
        let created = lambda
            .create_function()
            .function_name(&function)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role)
            .timeout(120)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(empty_zip()))
                    .build(),
            )
            .environment(
                Environment::builder()
                    .variables("IADVIZE_TOKEN_SECRET_IDS", &world.token_id)
                    .variables("IADVIZE_CREDENTIALS_SECRET_ID", &credentials_id)
                    .variables("IADVIZE_REFRESH_BEFORE_EXPIRY", "4h")
                    .build(),
            )
            .logging_config(
                LoggingConfig::builder()
                    .log_format(LogFormat::Json)
                    .application_log_level(shape.log_level)
                    .build(),
            )
            .send()
            .await
            .expect("create the function");
        let function_arn = created.function_arn().expect("an ARN").to_owned();

        let rule = unique("tick");
        let events = events();
        events
            .put_rule()
            .name(&rule)
            .schedule_expression(shape.schedule)
            .state(if shape.schedule_enabled {
                RuleState::Enabled
            } else {
                RuleState::Disabled
            })
            .send()
            .await
            .expect("put the rule");
        events
            .put_targets()
            .rule(&rule)
            .targets(
                Target::builder()
                    .id("broker")
                    .arn(&function_arn)
                    .build()
                    .expect("a target"),
            )
            .send()
            .await
            .expect("put the target");

        let sqs = standins::sqs_poller::client(&moto_endpoint());
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{}.fifo", unique("reports")))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
            .send()
            .await
            .expect("create the queue")
            .queue_url()
            .expect("a URL")
            .to_owned();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("the queue's attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("its ARN");
        lambda
            .create_event_source_mapping()
            .function_name(&function)
            .event_source_arn(queue_arn)
            .batch_size(1)
            .send()
            .await
            .expect("map the queue");

        let cloudwatch = cloudwatch();
        if shape.errors_alarm {
            cloudwatch
                .put_metric_alarm()
                .alarm_name(format!("{function}-errors"))
                .namespace("AWS/Lambda")
                .metric_name("Errors")
                .dimensions(
                    Dimension::builder()
                        .name("FunctionName")
                        .value(&function)
                        .build(),
                )
                .statistic(Statistic::Sum)
                .period(3600)
                .evaluation_periods(1)
                .threshold(1.0)
                .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
                .alarm_actions(TOPIC)
                .send()
                .await
                .expect("put the errors alarm");
        }
        cloudwatch
            .put_metric_alarm()
            .alarm_name(format!("{function}-token-expiry"))
            .namespace("IadvizeTokenBroker")
            .metric_name("MinSecondsUntilExpiry")
            .statistic(Statistic::Minimum)
            .period(3600)
            .evaluation_periods(2)
            .threshold(10800.0)
            .comparison_operator(ComparisonOperator::LessThanThreshold)
            .alarm_actions(TOPIC)
            .send()
            .await
            .expect("put the expiry alarm");

        Deployment {
            world,
            function,
            credentials_id,
            rule,
        }
    }

    /// Runs `iadvize-token check --function NAME` with Secrets Manager behind `proxy`, and none
    /// of the broker's IADVIZE_* variables: everything comes from the function.
    async fn check(&self, proxy: &SmProxy, extra: &[&str]) -> Output {
        self.check_with(proxy, extra, &[]).await
    }

    /// [`Deployment::check`] with more environment variables.
    async fn check_with(&self, proxy: &SmProxy, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(["check", "--function", &self.function])
            .args(extra)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url())
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_LOG");
        for (key, value) in binary_env(&self.world) {
            if !key.starts_with("IADVIZE_") && key != "RUST_LOG" {
                command.env(key, value);
            }
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("IADVIZE_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().copied());
        command.output().await.expect("the CLI runs")
    }

    /// The token secret's name and ARN: the only secret `check` may read a value of.
    async fn token_names(&self) -> Vec<String> {
        let described = self
            .world
            .sm
            .describe_secret()
            .secret_id(&self.world.token_id)
            .send()
            .await
            .expect("describe the token secret");
        vec![
            self.world.token_id.clone(),
            described.arn().expect("an ARN").to_owned(),
        ]
    }
}

/// The lines that say what to fix.
fn findings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("FIX")).collect()
}

/// Asserts that `check` never asked for a secret value other than the token secret's, and
/// that it did describe the credentials secret (the proxy saw the calls).
async fn assert_credentials_never_read(deployment: &Deployment, proxy: &SmProxy) {
    let token = deployment.token_names().await;
    let read = proxy.secret_ids_of("GetSecretValue");
    assert!(!read.is_empty(), "check reads the token secret");
    for secret_id in &read {
        let secret_id = secret_id.as_deref().unwrap_or("(none)");
        assert!(
            token.iter().any(|t| t == secret_id),
            "check read the value of {secret_id}, not only the token secret's"
        );
    }
    assert_eq!(proxy.calls("BatchGetSecretValue"), 0);
    assert!(
        proxy
            .secret_ids_of("DescribeSecret")
            .iter()
            .any(|id| id.as_deref() == Some(deployment.credentials_id.as_str())),
        "check described the credentials secret: {:?}",
        proxy.log()
    );
}

#[tokio::test]
async fn a_healthy_deployment_checks_ok_without_reading_the_credentials() {
    let deployment = Deployment::new(Shape::default()).await;
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");
    let logins = deployment.world.logins();

    let output = deployment.check(&proxy, &[]).await;

    let text = stdout(&output);
    println!("{text}");
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    assert!(findings(&text).is_empty(), "{text}");
    for expected in [
        "ok    function ",
        "JSON logs at application log level INFO",
        "timeout 2m",
        "environment valid",
        &format!(
            "ok    token secret {}: a valid token record",
            deployment.world.token_id
        ),
        &format!(
            "ok    credentials secret {}: has a value",
            deployment.credentials_id
        ),
        &format!(
            "ok    schedule rule {}: ENABLED, rate(1 hour)",
            deployment.rule
        ),
        "FIFO, content-based deduplication, mapping enabled",
        &format!("ok    errors alarm {}-errors", deployment.function),
        &format!(
            "ok    token expiry alarm {}-token-expiry",
            deployment.function
        ),
        "healthy: nothing to fix",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert_eq!(deployment.world.logins(), logins, "check never logs in");
    assert_credentials_never_read(&deployment, &proxy).await;
    assert_no_secrets(
        &format!("{text}{}", stderr(&output)),
        &[&deployment.world.password, &deployment.world.username],
    );

    // The same as one JSON document.
    let output = deployment.check(&proxy, &["--json"]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["findings"], 0);
    assert!(
        json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["status"] != "fix"),
        "{json}"
    );
}

#[tokio::test]
async fn a_broken_deployment_gets_one_line_per_thing_to_fix_and_exit_1() {
    let deployment = Deployment::new(Shape {
        log_level: ApplicationLogLevel::Warn,
        schedule_enabled: false,
        errors_alarm: false,
        credentials_value: false,
        token_hours_left: -2,
        ..Shape::default()
    })
    .await;
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");

    let output = deployment.check(&proxy, &[]).await;

    let text = stdout(&output);
    println!("{text}");
    assert_eq!(code(&output), 1, "{text}{}", stderr(&output));
    let found = findings(&text);
    let expect = |what: &str| {
        assert!(
            found.iter().any(|line| line.contains(what)),
            "no finding with {what:?} in:\n{text}"
        )
    };
    expect("application log level WARN: Lambda drops the broker's metrics");
    expect(&format!(
        "credentials secret {}: has no value",
        deployment.credentials_id
    ));
    // The README's way: the password typed, passed on standard input, never in a file.
    expect(&format!(
        "aws secretsmanager put-secret-value --secret-id {} --secret-string file:///dev/stdin",
        deployment.credentials_id
    ));
    assert!(!text.contains("credentials.json"), "{text}");
    expect(&format!(
        "token secret {}: the token EXPIRED at",
        deployment.world.token_id
    ));
    expect(&format!(
        "schedule rule {}: rate(1 hour) is DISABLED",
        deployment.rule
    ));
    expect("errors alarm: no alarm on AWS/Lambda Errors (FunctionName=");
    assert_eq!(found.len(), 5, "exactly the five breakages:\n{text}");
    assert!(text.ends_with("5 things to fix\n"), "{text}");
    assert_credentials_never_read(&deployment, &proxy).await;

    let output = deployment.check(&proxy, &["--json"]).await;
    assert_eq!(code(&output), 1);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["healthy"], false);
    assert_eq!(json["findings"], 5);
    let fixes: Vec<&Value> = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fix")
        .collect();
    assert!(fixes.iter().all(|c| c["fix"].is_string()), "{json}");
}

#[tokio::test]
async fn an_unknown_function_is_a_finding_and_a_missing_one_a_usage_error() {
    let deployment = Deployment {
        world: World::new().await,
        function: unique("no-such-function"),
        credentials_id: String::new(),
        rule: String::new(),
    };
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");

    let output = deployment.check(&proxy, &[]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!(
            "FIX   function {}: not found; check --function",
            deployment.function
        )),
        "{}",
        stdout(&output)
    );

    let output = tokio::process::Command::new(BIN)
        .arg("check")
        .output()
        .await
        .expect("the CLI runs");
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("--function"),
        "{}",
        stderr(&output)
    );
}

/// The broker's Lambda binary, built beside the CLI (`make test` builds the workspace's
/// binaries first; so does `cargo nextest run --workspace`).
fn broker_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(BIN).with_file_name("iadvize-token-broker");
    assert!(
        path.exists(),
        "{} is not built: cargo build --bin iadvize-token-broker",
        path.display()
    );
    path
}

/// The Lambda API as `check --login` sees it: `Invoke` runs the real broker binary with the
/// deployment's environment; every other call (the function's configuration, its mappings)
/// goes to moto, where the deployment was made.
async fn lambda_running_the_broker(deployment: &Deployment) -> standins::LambdaApi {
    let api = standins::LambdaApi::start()
        .await
        .expect("the Lambda stand-in");
    api.forward_other_operations_to(&moto_endpoint());
    let harness = standins::LambdaHarness::start(&broker_binary(), &binary_env(&deployment.world))
        .await
        .expect("the harness starts the broker")
        .with_timeout(std::time::Duration::from_secs(30));
    api.attach(&deployment.function, std::sync::Arc::new(harness));
    api
}

#[tokio::test]
async fn check_login_has_the_function_log_in_and_still_never_reads_the_credentials() {
    let deployment = Deployment::new(Shape::default()).await;
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");
    let api = lambda_running_the_broker(&deployment).await;
    let before = deployment.world.current().await.expect("a token");
    let logins = deployment.world.logins();

    let output = deployment
        .check_with(
            &proxy,
            &["--login"],
            &[("AWS_ENDPOINT_URL_LAMBDA", api.url().as_str())],
        )
        .await;

    let text = stdout(&output);
    println!("{text}");
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    let line = format!(
        "ok    login for {}: logged in and published a verified token, expires at ",
        deployment.world.token_id
    );
    assert!(text.contains(&line), "no {line:?} in:\n{text}");
    assert!(text.contains("healthy: nothing to fix"), "{text}");
    assert_eq!(
        deployment.world.logins(),
        logins + 1,
        "one login, by the function"
    );
    let after = deployment.world.current().await.expect("a token");
    assert_ne!(after["access_token"], before["access_token"], "a new token");
    let invoked = api.invocations();
    assert_eq!(invoked.len(), 1, "one invocation");
    assert_eq!(invoked[0].payload["action"], "refresh");
    assert_eq!(invoked[0].payload["force"], true);
    // The CLI itself still only described the credentials secret.
    assert_credentials_never_read(&deployment, &proxy).await;
    assert_no_secrets(
        &format!("{text}{}", stderr(&output)),
        &[
            &deployment.world.password,
            &deployment.world.username,
            after["access_token"].as_str().expect("a token"),
        ],
    );
}

#[tokio::test]
async fn check_login_with_refused_credentials_says_what_to_fix_and_keeps_the_token() {
    let deployment = Deployment::new(Shape::default()).await;
    deployment
        .world
        .put_credentials(&deployment.world.username, "not-the-password")
        .await;
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");
    let api = lambda_running_the_broker(&deployment).await;
    let before = deployment.world.current().await.expect("a token");

    let output = deployment
        .check_with(
            &proxy,
            &["--login", "--json"],
            &[("AWS_ENDPOINT_URL_LAMBDA", api.url().as_str())],
        )
        .await;

    assert_eq!(code(&output), 1, "{}{}", stdout(&output), stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["healthy"], false, "{json}");
    let login = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| {
            c["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("login through "))
        })
        .unwrap_or_else(|| panic!("no login entry in {json}"));
    assert_eq!(login["status"], "fix", "{json}");
    let message = login["message"].as_str().expect("a message");
    assert!(message.contains("RefreshFailed"), "{message}");
    assert!(message.contains("refused"), "{message}");
    assert_eq!(
        deployment.world.current().await.expect("a token"),
        before,
        "AWSCURRENT keeps its token"
    );
    assert_no_secrets(
        &stdout(&output),
        &[&deployment.world.password, "not-the-password"],
    );
}

#[tokio::test]
async fn a_daily_cron_schedule_is_a_finding_and_an_hourly_one_is_not() {
    let daily = Deployment::new(Shape {
        schedule: "cron(0 3 * * ? *)",
        ..Shape::default()
    })
    .await;
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");

    let output = daily.check(&proxy, &[]).await;

    let text = stdout(&output);
    assert_eq!(code(&output), 1, "{text}{}", stderr(&output));
    let line = format!(
        "FIX   schedule rule {}: cron(0 3 * * ? *): does not run every hour of every day",
        daily.rule
    );
    assert!(text.contains(&line), "no {line:?} in:\n{text}");
    assert_eq!(findings(&text).len(), 1, "{text}");

    let hourly = Deployment::new(Shape {
        schedule: "cron(0 * * * ? *)",
        ..Shape::default()
    })
    .await;
    let output = hourly.check(&proxy, &[]).await;
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    assert!(
        text.contains(&format!(
            "ok    schedule rule {}: ENABLED, cron(0 * * * ? *)",
            hourly.rule
        )),
        "{text}"
    );
}

#[tokio::test]
async fn secrets_marked_for_deletion_are_findings_with_the_restore_command() {
    let deployment = Deployment::new(Shape::default()).await;
    for id in [&deployment.credentials_id, &deployment.world.token_id] {
        deployment
            .world
            .sm
            .delete_secret()
            .secret_id(id)
            .recovery_window_in_days(7)
            .send()
            .await
            .expect("mark the secret for deletion");
    }
    let proxy = SmProxy::start(&moto_endpoint()).await.expect("the proxy");

    let output = deployment.check(&proxy, &[]).await;

    let text = stdout(&output);
    println!("{text}");
    assert_eq!(code(&output), 1, "{text}{}", stderr(&output));
    for (kind, id) in [
        ("credentials", &deployment.credentials_id),
        ("token", &deployment.world.token_id),
    ] {
        let line = findings(&text)
            .into_iter()
            .find(|l| l.starts_with(&format!("FIX   {kind} secret {id}: ")))
            .unwrap_or_else(|| panic!("no finding for the {kind} secret in:\n{text}"));
        assert!(
            line.contains("marked for deletion (DeletedDate 20"),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "aws secretsmanager restore-secret --secret-id {id}"
            )),
            "{line}"
        );
    }
    assert_credentials_never_read(&deployment, &proxy).await;
}
