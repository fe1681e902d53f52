//! `make demo`: the broker's main job, end to end, on local stand-ins.
//!
//! moto (Secrets Manager) is started by the Makefile and reached through `MOTO_ENDPOINT`;
//! this program starts the iAdvize stand-in, creates the secrets, runs the real Lambda binary
//! behind a local Lambda Runtime API, and shows what happens. Tokens are masked.

use std::path::PathBuf;
use std::time::Instant;

use aws_sdk_secretsmanager::Client;
use serde_json::{Value, json};
use standins::{LambdaHarness, Standin, StandinConfig, moto};

const TOKEN_SECRET: &str = "demo/iadvize/token";
const CREDENTIALS_SECRET: &str = "demo/iadvize/credentials";
const USERNAME: &str = "api-user@example.com";

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Fallible<()> {
    let moto =
        std::env::var("MOTO_ENDPOINT").map_err(|_| "MOTO_ENDPOINT is not set; run `make demo`")?;
    let binary = std::env::var_os("BROKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/iadvize-token-broker")
        });
    let password = format!("demo-{}", uuid::Uuid::new_v4().simple());

    heading("1. Local stand-ins");
    let standin = Standin::start(StandinConfig::default().with_user(USERNAME, &password)).await?;
    println!("   Secrets Manager (moto) ... {moto}");
    println!("   iAdvize stand-in ......... {}", standin.url());

    heading("2. Secrets");
    let sm = moto::client(&moto);
    for name in [TOKEN_SECRET, CREDENTIALS_SECRET] {
        // Left over from an earlier run against the same moto.
        let _ = sm
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
    sm.create_secret()
        .name(CREDENTIALS_SECRET)
        .secret_string(json!({"username": USERNAME, "password": password}).to_string())
        .send()
        .await?;
    sm.create_secret()
        .name(TOKEN_SECRET)
        .description("iAdvize access token, kept valid by iadvize-token-broker")
        .send()
        .await?;
    println!(
        "   credentials secret {CREDENTIALS_SECRET}: {{\"username\": \"{USERNAME}\", \"password\": \"********\"}}"
    );
    println!("   token secret       {TOKEN_SECRET}: (no value yet)");

    heading("3. The Lambda binary behind the Lambda Runtime API");
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "demo"),
        ("AWS_SECRET_ACCESS_KEY", "demo"),
        ("AWS_REGION", "us-east-1"),
        ("IADVIZE_API_URL", standin.url().as_str()),
        ("IADVIZE_TOKEN_SECRET_IDS", TOKEN_SECRET),
        ("IADVIZE_CREDENTIALS_SECRET_ID", CREDENTIALS_SECRET),
        ("IADVIZE_MIN_LOGIN_INTERVAL", "0s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let lambda = LambdaHarness::start(&binary, &env).await?;
    println!(
        "   {} (Runtime API on {})",
        binary.display(),
        lambda.runtime_api_addr()
    );

    let scheduled = read_fixture("scheduled-event.json")?;
    heading("4. Scheduled event (EventBridge), first tick");
    invoke(&lambda, &standin, &scheduled).await?;
    show_secret(&sm).await?;

    heading("5. The same scheduled event again: the token is fresh, no login");
    invoke(&lambda, &standin, &scheduled).await?;

    heading("6. A Secrets Manager rotation: RotateSecret, then the four step events");
    // moto cannot call our function itself, but it enables rotation and creates the
    // AWSPENDING version, as Secrets Manager does before it calls the function.
    let token = moto::start_rotation(&sm, TOKEN_SECRET).await?;
    println!("   AWSPENDING version: {token}");
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let event = json!({"Step": step, "SecretId": TOKEN_SECRET, "ClientRequestToken": token});
        println!("   ▸ {step}");
        invoke(&lambda, &standin, &event).await?;
    }
    let stages = sm.describe_secret().secret_id(TOKEN_SECRET).send().await?;
    println!("   versions now:");
    if let Some(map) = stages.version_ids_to_stages() {
        for (version, labels) in map {
            println!("     {version}  {labels:?}");
        }
    }
    show_secret(&sm).await?;

    heading("7. A consumer calls iAdvize GraphQL with the stored token");
    let record: Value = serde_json::from_str(
        sm.get_secret_value()
            .secret_id(TOKEN_SECRET)
            .version_stage("AWSCURRENT")
            .send()
            .await?
            .secret_string()
            .ok_or("no token")?,
    )?;
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/graphql", standin.url()))
        .bearer_auth(record["access_token"].as_str().ok_or("no access_token")?)
        .json(&json!({"query": "{ me { username } }"}))
        .send()
        .await?
        .json()
        .await?;
    println!("   POST /graphql  →  {answer}");

    heading("8. Totals at the iAdvize stand-in");
    let stats = standin.stats();
    println!(
        "   logins: {}   verifications: {}   429s: {}   graphql: {}",
        stats.login_requests, stats.verifications, stats.rate_limited, stats.graphql_requests
    );

    let logs = lambda.finish().await;
    if std::env::var_os("DEMO_SHOW_LOGS").is_some() {
        heading("The broker's logs");
        print!("{logs}");
    }
    heading(
        "Done: the Lambda binary and the iAdvize stand-in are stopped (moto is stopped by the Makefile)",
    );
    Ok(())
}

fn heading(text: &str) {
    if use_colour() {
        println!("\n\x1b[1m{text}\x1b[0m");
    } else {
        println!("\n{text}");
    }
}

/// Bold headings only on a terminal, and never when `NO_COLOR` is set (<https://no-color.org>):
/// escape codes make logs and CI output unreadable.
fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn read_fixture(name: &str) -> Fallible<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

async fn invoke(lambda: &LambdaHarness, standin: &Standin, event: &Value) -> Fallible<()> {
    let before = standin.stats();
    let started = Instant::now();
    let answer = lambda.invoke(event).await;
    let took = started.elapsed();
    let after = standin.stats();
    match answer {
        Ok(value) => println!("   answer: {}", serde_json::to_string(&value)?),
        Err(e) => println!("   error: {e}"),
    }
    let sm_calls = last_call_count(&lambda.logs()).map_or("?".to_owned(), |n| n.to_string());
    println!(
        "   ({} ms; iAdvize: {} login(s), {} verification(s); Secrets Manager: {sm_calls} call(s))",
        took.as_millis(),
        after.login_requests - before.login_requests,
        after.verifications - before.verifications,
    );
    Ok(())
}

/// `secrets_manager_calls` of the broker's last "invocation done" log line.
fn last_call_count(logs: &str) -> Option<u64> {
    let line = logs.lines().rev().find(|l| l.contains("invocation done"))?;
    let rest = line.split("secrets_manager_calls=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

async fn show_secret(sm: &Client) -> Fallible<()> {
    let value = sm
        .get_secret_value()
        .secret_id(TOKEN_SECRET)
        .version_stage("AWSCURRENT")
        .send()
        .await?;
    let mut record: Value = serde_json::from_str(value.secret_string().unwrap_or("null"))?;
    if let Some(token) = record.get("access_token").and_then(Value::as_str) {
        record["access_token"] = Value::String(mask(token));
    }
    println!(
        "   {TOKEN_SECRET} AWSCURRENT ({}):\n{}",
        value.version_id().unwrap_or("?"),
        indent(&serde_json::to_string_pretty(&record)?)
    );
    Ok(())
}

fn mask(token: &str) -> String {
    format!(
        "{}…({} chars, masked)",
        token.chars().take(4).collect::<String>(),
        token.chars().count()
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
