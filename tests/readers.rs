//! The readers in other languages (examples/node, examples/python, examples/shell), each run
//! as a subprocess against moto and the iAdvize stand-in: they call GraphQL with the broker's
//! token, read the secret once per token lifetime, read it again once after a 401, and never
//! log in. Secrets Manager reads are counted by a proxy in front of moto.
//!
//! When Secrets Manager fails (an endpoint that fails `GetSecretValue` on demand), they keep
//! the cached token until it expires, read again after a backoff, and say what failed.
//!
//! Their packages come from `make reader-deps` (Node's node_modules; boto3 in .venv; the AWS
//! CLI, jq and curl on PATH). A missing one fails the test with the command to run.

#[path = "support/flaky_sm.rs"]
mod flaky_sm;
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use flaky_sm::FlakySm;
use iadvize_token_broker::TokenRecord;
use iadvize_token_broker::token::AccessToken;
use support::*;

#[derive(Clone, Copy, Debug)]
enum Reader {
    Node,
    Python,
    /// The recipe for AWS's caching library, aws-secretsmanager-caching (`SecretCache`).
    PythonSecretCache,
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
    // Checked once per test process: `aws --version` alone takes a second or more here.
    static FOUND: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if FOUND.lock().unwrap().iter().any(|p| p == program) {
        return;
    }
    let found = std::process::Command::new(program)
        .env("PATH", path())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{program}` is not on PATH: run `make reader-deps` (or `make test-readers`)"
    );
    FOUND.lock().unwrap().push(program.to_owned());
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
            Reader::PythonSecretCache => {
                let python = root().join(".venv/bin/python");
                require(&python, "the project's .venv");
                let library = std::process::Command::new(&python)
                    .args(["-c", "import aws_secretsmanager_caching"])
                    .output();
                assert!(
                    library.is_ok_and(|o| o.status.success()),
                    "aws-secretsmanager-caching is missing from .venv: run `make reader-deps` (or `make test-readers`)"
                );
                let mut command = tokio::process::Command::new(python);
                command.arg(root().join("examples/python/read_token_cached.py"));
                command
            }
            Reader::Shell => {
                for program in ["aws", "jq", "curl"] {
                    require_command(program);
                }
                let mut command = tokio::process::Command::new("bash");
                command
                    .arg(root().join("examples/shell/read-token.sh"))
                    .env("IADVIZE_TOKEN_CACHE_DIR", cache_dir.join("cache"));
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
    // SecretCache asks DescribeSecret which version is current; it is the one it holds, so it
    // reads no value again.
    let reads = if matches!(reader, Reader::PythonSecretCache) {
        1
    } else {
        2
    };
    assert_eq!(proxy.reads(), reads, "at most one re-read, no loop");
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
async fn the_secret_cache_recipe_reads_the_secret_once_and_calls_graphql_without_logging_in() {
    reads_once_and_calls_graphql_without_logging_in(Reader::PythonSecretCache).await;
}

#[tokio::test]
async fn the_secret_cache_recipe_reads_the_secret_again_once_after_a_401() {
    reads_the_secret_again_once_after_a_401(Reader::PythonSecretCache).await;
}

#[tokio::test]
async fn the_secret_cache_recipe_gives_up_when_the_token_read_again_is_refused_too() {
    gives_up_when_the_token_read_again_is_refused_too(Reader::PythonSecretCache).await;
}

#[tokio::test]
async fn the_secret_cache_recipe_says_when_the_secret_holds_no_token_yet() {
    says_when_the_secret_holds_no_token_yet(Reader::PythonSecretCache).await;
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
    let cache_dir = dir.0.join("cache");
    let mode = std::fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache directory is private");
    let cache = cache_dir.join(format!("{}.json", world.token_id));
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
    let leftovers: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
}

/// Runs `reader` with the environment `env` (and `args`), through `sm`.
async fn run_with(
    reader: Reader,
    dir: &TempDir,
    env: Vec<(String, String)>,
    args: &[&str],
) -> Output {
    let mut command = reader.command(&dir.0);
    command.args(args).envs(env).env_remove("AWS_PROFILE");
    command.output().await.expect("the reader runs")
}

/// Puts a record whose token (a real one from the stand-in) expires in `secs` seconds.
async fn put_record_expiring_in(world: &World, secs: i64) -> time::OffsetDateTime {
    let token = world.login_directly().await;
    let issued = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs - 86400);
    let record = TokenRecord::new(AccessToken::new(token), issued, 86400);
    world.put_current(&record.to_json()).await;
    record.expires_at
}

/// One process calls GraphQL every 100 ms with a token due for a new read every second;
/// every read after the first is throttled. It must keep calling with the cached token until
/// that expires, read again with a backoff (not once per call), then fail saying why.
async fn keeps_the_cached_token_while_re_reads_fail_until_it_expires(reader: Reader) {
    let world = World::new().await;
    let expires_at = put_record_expiring_in(&world, 6).await;
    let sm = FlakySm::start().await;
    sm.fail_reads_after(1, "ThrottlingException");
    let dir = TempDir::new();
    let mut env = sm.reader_env(&world);
    env.extend([
        ("IADVIZE_TOKEN_RECHECK_SECONDS".to_owned(), "1".to_owned()),
        ("READER_CALLS".to_owned(), "1000".to_owned()),
        ("READER_PAUSE_MS".to_owned(), "100".to_owned()),
    ]);

    let output = run_with(reader, &dir, env, &[]).await;
    let ended = time::OffsetDateTime::now_utc();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let calls = stdout.lines().count() as u64;
    println!(
        "{reader:?}: {calls} GraphQL calls with the cached token while {} re-reads failed",
        sm.failed_reads()
    );
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        ended >= expires_at,
        "it gave up before the token expired:\n{}",
        describe(&output)
    );
    assert!(
        stdout.lines().all(|line| line == world.username),
        "{}",
        describe(&output)
    );
    assert!(calls >= 10, "{}", describe(&output));
    assert!(
        stderr.contains("using the cached token"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr.contains("ThrottlingException"),
        "{}",
        describe(&output)
    );
    assert!(sm.failed_reads() >= 2, "the read was retried");
    assert!(
        sm.failed_reads() * 3 < calls,
        "a backoff, not a read per call: {} reads for {calls} calls",
        sm.failed_reads()
    );
    assert_eq!(world.standin.stats().graphql_requests as u64, calls);
}

#[tokio::test]
async fn the_node_reader_keeps_the_cached_token_while_re_reads_fail_until_it_expires() {
    keeps_the_cached_token_while_re_reads_fail_until_it_expires(Reader::Node).await;
}

#[tokio::test]
async fn the_python_reader_keeps_the_cached_token_while_re_reads_fail_until_it_expires() {
    keeps_the_cached_token_while_re_reads_fail_until_it_expires(Reader::Python).await;
}

#[tokio::test]
async fn the_shell_reader_keeps_the_cached_token_while_re_reads_fail_until_it_expires() {
    let world = World::new().await;
    // Longer than for one process: a run that calls the AWS CLI takes a second or two here.
    let expires_at = put_record_expiring_in(&world, 15).await;
    let sm = FlakySm::start().await;
    sm.fail_reads_after(1, "ThrottlingException");
    let dir = TempDir::new();
    let mut env = sm.reader_env(&world);
    env.push(("IADVIZE_TOKEN_RECHECK_SECONDS".into(), "1".into()));
    // Longer than a run that calls the AWS CLI, so that the backoff shows across runs.
    env.push(("IADVIZE_TOKEN_RETRY_SECONDS".into(), "4".into()));

    // Runs one after the other, as cron jobs or a script's loop would, until one fails.
    let mut runs = 0u64;
    let mut kept = 0;
    let mut without_reading = 0;
    let failure = loop {
        let reads_before = sm.reads();
        let output = run_with(Reader::Shell, &dir, env.clone(), &[]).await;
        if sm.reads() == reads_before {
            without_reading += 1;
        }
        if !output.status.success() {
            break output;
        }
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{}\n", world.username),
            "{}",
            describe(&output)
        );
        if String::from_utf8_lossy(&output.stderr).contains("using the cached token") {
            kept += 1;
        }
        runs += 1;
        assert!(runs < 500, "never failed, even after expiry");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ended = time::OffsetDateTime::now_utc();

    println!(
        "shell: {runs} runs succeeded ({kept} told that a read failed, {without_reading} did not read during the backoff) while {} re-reads failed",
        sm.failed_reads()
    );
    assert!(ended >= expires_at, "{}", describe(&failure));
    assert!(
        kept >= 1,
        "a run said it kept the cached token; the last run:\n{}",
        describe(&failure)
    );
    assert!(
        String::from_utf8_lossy(&failure.stderr).contains("ThrottlingException"),
        "{}",
        describe(&failure)
    );
    assert!(sm.failed_reads() >= 2, "the read was retried");
    assert!(
        without_reading >= 2,
        "a backoff shared by the runs: {} reads for {runs} runs",
        sm.failed_reads()
    );
}

#[tokio::test]
async fn the_shell_reader_reports_an_aws_failure_as_such() {
    let world = World::new().await;
    world.fill().await;
    let sm = FlakySm::start().await;
    sm.fail_reads(Some("AccessDeniedException"));
    let dir = TempDir::new();

    let denied = run_with(Reader::Shell, &dir, sm.reader_env(&world), &[]).await;

    assert!(!denied.status.success(), "{}", describe(&denied));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("AccessDeniedException") && !stderr.contains("no token record"),
        "{}",
        describe(&denied)
    );

    // No network: nothing listens on the endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut env = sm.reader_env(&world);
    env.push(("AWS_ENDPOINT_URL".into(), url));
    let offline = run_with(Reader::Shell, &TempDir::new(), env, &[]).await;

    assert!(!offline.status.success(), "{}", describe(&offline));
    let stderr = String::from_utf8_lossy(&offline.stderr);
    assert!(
        stderr.contains("Secrets Manager failed") && stderr.contains("connect"),
        "{}",
        describe(&offline)
    );
    assert!(
        !stderr.contains("no token record"),
        "{}",
        describe(&offline)
    );
}

#[tokio::test]
async fn the_shell_reader_cannot_be_broken_by_paths_another_user_created_in_a_shared_tmp() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let world = World::new().await;
    world.put_record(20).await;
    let proxy = CountingProxy::start().await;
    let tmp = TempDir::new(); // plays the shared /tmp
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    // What another user could create first: the old fixed cache path as a directory, a
    // directory and a link named like ours, all theirs (nobody's, when the tests run as root).
    let theirs = tmp.0.join("elsewhere");
    let planted = [
        tmp.0
            .join(format!("iadvize-token-{uid}-{}.json", world.token_id)),
        tmp.0.join(format!("iadvize-token-{uid}.AAAAAAAA")),
        theirs.clone(),
    ];
    for dir in &planted {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let _ = std::os::unix::fs::chown(dir, Some(65534), Some(65534));
    }
    symlink(&theirs, tmp.0.join(format!("iadvize-token-{uid}.BBBBBBBB"))).unwrap();

    for _ in 0..2 {
        let mut command = Reader::Shell.command(&tmp.0);
        command
            .envs(reader_env(&world, &proxy))
            .env_remove("AWS_PROFILE")
            .env_remove("IADVIZE_TOKEN_CACHE_DIR")
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tmp.0);
        let output = command.output().await.unwrap();
        assert!(output.status.success(), "{}", describe(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{}\n", world.username)
        );
    }

    assert_eq!(proxy.reads(), 1, "the second run used the cache");
    for dir in &planted {
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "nothing written into {}",
            dir.display()
        );
    }
    let ours: Vec<_> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !planted.contains(p) && !p.is_symlink())
        .collect();
    assert_eq!(ours.len(), 1, "one private directory of its own: {ours:?}");
    let mode = std::fs::metadata(&ours[0]).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    assert!(ours[0].join(format!("{}.json", world.token_id)).is_file());
}
