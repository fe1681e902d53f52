//! The readers in other languages (examples/node, examples/python, examples/shell), each run
//! as a subprocess against moto and the iAdvize stand-in: they call GraphQL with the broker's
//! token, read the secret once per token lifetime, read it again once after a 401, and never
//! log in. Secrets Manager reads are counted by a proxy in front of moto.
//!
//! Their packages come from `make reader-deps` (Node's node_modules; boto3 in .venv; the AWS
//! CLI, jq and curl on PATH). A missing one fails the test with the command to run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use iadvize_token_broker::TokenRecord;
use iadvize_token_broker::token::AccessToken;
use support::*;

#[derive(Clone, Copy, Debug)]
enum Reader {
    Node,
    Python,
    Shell,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): run `make reader-deps` (or `make test-readers`)",
        path.display()
    );
}

/// PATH with the project's .venv/bin first, where `make reader-deps` may put the AWS CLI.
fn path() -> String {
    let venv = root().join(".venv/bin");
    format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn require_command(program: &str) {
    let found = std::process::Command::new(program)
        .env("PATH", path())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{program}` is not on PATH: run `make reader-deps` (or `make test-readers`)"
    );
}

impl Reader {
    fn command(self, cache_dir: &Path) -> tokio::process::Command {
        let mut command = self.bare_command(cache_dir);
        command.env("PATH", path());
        command
    }

    fn bare_command(self, cache_dir: &Path) -> tokio::process::Command {
        match self {
            Reader::Node => {
                require_command("node");
                require(
                    &root().join("examples/node/node_modules/@aws-sdk/client-secrets-manager"),
                    "@aws-sdk/client-secrets-manager",
                );
                let mut command = tokio::process::Command::new("node");
                command.arg(root().join("examples/node/read-token.mjs"));
                command
            }
            Reader::Python => {
                let python = root().join(".venv/bin/python");
                require(&python, "the project's .venv");
                let boto3 = std::process::Command::new(&python)
                    .args(["-c", "import boto3"])
                    .output();
                assert!(
                    boto3.is_ok_and(|o| o.status.success()),
                    "boto3 is missing from .venv: run `make reader-deps` (or `make test-readers`)"
                );
                let mut command = tokio::process::Command::new(python);
                command.arg(root().join("examples/python/read_token.py"));
                command
            }
            Reader::Shell => {
                for program in ["aws", "jq", "curl"] {
                    require_command(program);
                }
                let mut command = tokio::process::Command::new("bash");
                command
                    .arg(root().join("examples/shell/read-token.sh"))
                    .env("IADVIZE_TOKEN_CACHE", cache_dir.join("token.json"));
                command
            }
        }
    }
}

/// A directory of its own for the shell reader's cache file, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique("readers"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run(
    reader: Reader,
    world: &World,
    proxy: &CountingProxy,
    dir: &TempDir,
    extra: &[(&str, String)],
) -> Output {
    let mut command = reader.command(&dir.0);
    command
        .envs(reader_env(world, proxy))
        .env_remove("AWS_PROFILE");
    for (key, value) in extra {
        command.env(key, value);
    }
    command.output().await.expect("the reader runs")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A token record for `token`, valid for 20 more hours.
fn record_json(token: &str) -> String {
    let issued = time::OffsetDateTime::now_utc() - time::Duration::hours(4);
    TokenRecord::new(AccessToken::new(token), issued, 86400).to_json()
}

async fn reads_once_and_calls_graphql_without_logging_in(reader: Reader) {
    let world = World::new().await;
    world.fill().await;
    let logins = world.logins();
    let proxy = CountingProxy::start().await;
    let dir = TempDir::new();

    let output = run(
        reader,
        &world,
        &proxy,
        &dir,
        &[("READER_CALLS", "3".into())],
    )
    .await;

    assert!(output.status.success(), "{}", describe(&output));
    let calls = if matches!(reader, Reader::Shell) {
        1
    } else {
        3
    };
    let expected = format!("{}\n", world.username).repeat(calls);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected,
        "{}",
        describe(&output)
    );
    assert_eq!(
        proxy.reads(),
        1,
        "one Secrets Manager read for {calls} call(s)"
    );
    assert_eq!(world.standin.stats().graphql_requests, calls as u32);
    assert_eq!(world.logins(), logins, "the reader never logs in");
    let token = world.current().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_no_secrets(&String::from_utf8_lossy(&output.stderr), &[&token]);
}

/// Stands between the reader and the stand-in's GraphQL: on the first 401 it plays the broker
/// rotating the secret (AWSCURRENT becomes `next`), then passes the 401 on.
#[derive(Clone)]
struct RotateOn401 {
    standin: String,
    sm: aws_sdk_secretsmanager::Client,
    secret_id: String,
    next: String,
    rotated: Arc<AtomicBool>,
}

async fn graphql_shim(
    State(shim): State<RotateOn401>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, String); 1], Bytes) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", shim.standin))
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.to_str().unwrap());
        }
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    if status == StatusCode::UNAUTHORIZED && !shim.rotated.swap(true, Ordering::SeqCst) {
        shim.sm
            .put_secret_value()
            .secret_id(&shim.secret_id)
            .secret_string(&shim.next)
            .send()
            .await
            .unwrap();
    }
    let body = answer.bytes().await.unwrap();
    (
        status,
        [(header::CONTENT_TYPE, "application/json".to_owned())],
        body,
    )
}

async fn start_shim(shim: RotateOn401) -> String {
    let app = axum::Router::new()
        .route("/graphql", axum::routing::post(graphql_shim))
        .with_state(shim);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn reads_the_secret_again_once_after_a_401(reader: Reader) {
    let world = World::new().await;
    // The reader starts with a token iAdvize has revoked; the broker has a new one ready.
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    let new = world.login_directly().await;
    world.put_current(&record_json(&old)).await;
    let logins = world.logins();
    let proxy = CountingProxy::start().await;
    let dir = TempDir::new();
    let shim = start_shim(RotateOn401 {
        standin: world.standin.url(),
        sm: world.sm.clone(),
        secret_id: world.token_id.clone(),
        next: record_json(&new),
        rotated: Arc::default(),
    })
    .await;

    let output = run(reader, &world, &proxy, &dir, &[("IADVIZE_API_URL", shim)]).await;

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username)
    );
    assert_eq!(proxy.reads(), 2, "one read, then one more after the 401");
    assert_eq!(world.standin.stats().graphql_requests, 2);
    assert_eq!(
        world.logins(),
        logins,
        "a 401 never makes the reader log in"
    );
    assert_no_secrets(&String::from_utf8_lossy(&output.stderr), &[&old, &new]);
}

async fn gives_up_when_the_token_read_again_is_refused_too(reader: Reader) {
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    world.put_current(&record_json(&old)).await;
    let logins = world.logins();
    let proxy = CountingProxy::start().await;
    let dir = TempDir::new();

    let output = run(reader, &world, &proxy, &dir, &[]).await;

    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("401"),
        "{}",
        describe(&output)
    );
    assert_eq!(proxy.reads(), 2, "exactly one re-read, no loop");
    assert_eq!(world.standin.stats().graphql_requests, 2);
    assert_eq!(world.logins(), logins);
    assert_no_secrets(&describe(&output), &[&old]);
}

async fn says_when_the_secret_holds_no_token_yet(reader: Reader) {
    let world = World::new().await;
    world.put_current("placeholder-value").await;
    let proxy = CountingProxy::start().await;
    let dir = TempDir::new();

    let output = run(reader, &world, &proxy, &dir, &[]).await;

    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("holds no token record"),
        "{}",
        describe(&output)
    );
    assert_no_secrets(&describe(&output), &["placeholder-value"]);
    assert_eq!(world.logins(), 0);
}

#[tokio::test]
async fn the_node_reader_reads_the_secret_once_and_calls_graphql_without_logging_in() {
    reads_once_and_calls_graphql_without_logging_in(Reader::Node).await;
}

#[tokio::test]
async fn the_node_reader_reads_the_secret_again_once_after_a_401() {
    reads_the_secret_again_once_after_a_401(Reader::Node).await;
}

#[tokio::test]
async fn the_node_reader_gives_up_when_the_token_read_again_is_refused_too() {
    gives_up_when_the_token_read_again_is_refused_too(Reader::Node).await;
}

#[tokio::test]
async fn the_node_reader_says_when_the_secret_holds_no_token_yet() {
    says_when_the_secret_holds_no_token_yet(Reader::Node).await;
}

#[tokio::test]
async fn the_python_reader_reads_the_secret_once_and_calls_graphql_without_logging_in() {
    reads_once_and_calls_graphql_without_logging_in(Reader::Python).await;
}

#[tokio::test]
async fn the_python_reader_reads_the_secret_again_once_after_a_401() {
    reads_the_secret_again_once_after_a_401(Reader::Python).await;
}

#[tokio::test]
async fn the_python_reader_gives_up_when_the_token_read_again_is_refused_too() {
    gives_up_when_the_token_read_again_is_refused_too(Reader::Python).await;
}

#[tokio::test]
async fn the_python_reader_says_when_the_secret_holds_no_token_yet() {
    says_when_the_secret_holds_no_token_yet(Reader::Python).await;
}

#[tokio::test]
async fn the_shell_reader_reads_the_secret_once_and_calls_graphql_without_logging_in() {
    reads_once_and_calls_graphql_without_logging_in(Reader::Shell).await;
}

#[tokio::test]
async fn the_shell_reader_reads_the_secret_again_once_after_a_401() {
    reads_the_secret_again_once_after_a_401(Reader::Shell).await;
}

#[tokio::test]
async fn the_shell_reader_gives_up_when_the_token_read_again_is_refused_too() {
    gives_up_when_the_token_read_again_is_refused_too(Reader::Shell).await;
}

#[tokio::test]
async fn the_shell_reader_says_when_the_secret_holds_no_token_yet() {
    says_when_the_secret_holds_no_token_yet(Reader::Shell).await;
}

#[tokio::test]
async fn the_shell_reader_keeps_the_token_in_a_private_cache_file_between_runs() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new().await;
    world.put_record(20).await;
    let logins = world.logins();
    let proxy = CountingProxy::start().await;
    let dir = TempDir::new();

    for _ in 0..3 {
        let output = run(Reader::Shell, &world, &proxy, &dir, &[]).await;
        assert!(output.status.success(), "{}", describe(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{}\n", world.username)
        );
    }
    let output = run(Reader::Shell, &world, &proxy, &dir, &[]).await;
    let printed = {
        let mut command = Reader::Shell.command(&dir.0);
        command.arg("token").envs(reader_env(&world, &proxy));
        command.output().await.unwrap()
    };

    assert!(output.status.success());
    assert_eq!(
        proxy.reads(),
        1,
        "three runs, one read: the cache file is shared"
    );
    assert_eq!(world.logins(), logins);
    let cache = dir.0.join("token.json");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the cache file is private");
    let token = world.current().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        format!("{token}\n"),
        "`read-token.sh token` prints it alone"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
}
