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

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use standins::sqs_poller;

/// A reader of the token secret in another language, run as a subprocess.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reader {
    /// examples/go (built by tests/it/go_reader.rs).
    Go,
    Node,
    Python,
    /// The recipe for AWS's caching library, aws-secretsmanager-caching (`SecretCache`).
    PythonSecretCache,
    Shell,
}

pub(crate) fn root() -> &'static Path {
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
            Reader::Go => tokio::process::Command::new(crate::go_reader::reader_binary()),
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
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
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

pub(crate) async fn run(
    reader: Reader,
    world: &World,
    proxy: &SmProxy,
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

pub(crate) async fn reads_once_and_calls_graphql_without_logging_in(reader: Reader) {
    let world = World::new().await;
    world.fill().await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
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

async fn reads_the_secret_again_once_after_a_401(reader: Reader) {
    let world = World::new().await;
    // The reader starts with a token iAdvize has revoked; the broker has a new one ready.
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    let new = world.login_directly().await;
    world.put_current(&record_json(&old)).await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
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
    let proxy = sm_proxy().await;
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

pub(crate) async fn says_when_the_secret_holds_no_token_yet(reader: Reader) {
    let world = World::new().await;
    world.put_current("placeholder-value").await;
    let proxy = sm_proxy().await;
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
    let proxy = sm_proxy().await;
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
    let cache = cache_files(&dir).pop().expect("a cache file");
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

/// Runs `reader` with the environment `env` (and `args`).
pub(crate) async fn run_with(
    reader: Reader,
    dir: &TempDir,
    env: Vec<(String, String)>,
    args: &[&str],
) -> Output {
    let mut command = reader.command(&dir.0);
    command.args(args).envs(env).env_remove("AWS_PROFILE");
    command.output().await.expect("the reader runs")
}

/// One process calls GraphQL every 100 ms with a token due for a new read every second;
/// every read after the first is throttled. It must keep calling with the cached token until
/// that expires, read again with a backoff (not once per call), then fail saying why.
pub(crate) async fn keeps_the_cached_token_while_re_reads_fail_until_it_expires(reader: Reader) {
    let world = World::new().await;
    // Long enough for a loaded machine to start the reader (the shell reader starts the AWS
    // CLI, a second or more under load) and fail a re-read before the token expires.
    let record = world.put_record_expiring_in(12).await;
    let sm = sm_proxy().await;
    sm.fail_after("GetSecretValue", 1, SmFault::error("ThrottlingException"));
    let dir = TempDir::new();
    let mut env = reader_env_without_retries(&world, &sm);
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
        sm.failed("GetSecretValue")
    );
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        ended >= record.expires_at,
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
    assert!(sm.failed("GetSecretValue") >= 2, "the read was retried");
    assert!(
        sm.failed("GetSecretValue") * 3 < calls,
        "a backoff, not a read per call: {} reads for {calls} calls",
        sm.failed("GetSecretValue")
    );
    assert_eq!(world.standin.stats().graphql_requests as u64, calls);
    assert_no_secrets(&describe(&output), &[record.access_token.expose()]);
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
    let sm = sm_proxy().await;
    let mut env = reader_env_without_retries(&world, &sm);
    env.push(("IADVIZE_TOKEN_RECHECK_SECONDS".into(), "1".into()));
    // Longer than a run that calls the AWS CLI, so that the backoff shows across runs.
    env.push(("IADVIZE_TOKEN_RETRY_SECONDS".into(), "4".into()));
    // The token must outlive a few runs that call the AWS CLI: a second or two on an idle
    // machine, ten times that on a loaded one. Time one run (with a cache of its own), and
    // give the token 15 s or eight such runs, whichever is longer.
    world.put_record_expiring_in(3600).await;
    let started = std::time::Instant::now();
    let warm_up = run_with(Reader::Shell, &TempDir::new(), env.clone(), &[]).await;
    assert!(warm_up.status.success(), "{}", describe(&warm_up));
    let lifetime = (started.elapsed() * 8).max(Duration::from_secs(15));
    let expires_at = world
        .put_record_expiring_in(lifetime.as_secs() as i64)
        .await
        .expires_at;
    sm.fail_after("GetSecretValue", 1, SmFault::error("ThrottlingException"));
    let dir = TempDir::new();

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
        sm.failed("GetSecretValue")
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
    assert!(sm.failed("GetSecretValue") >= 2, "the read was retried");
    assert!(
        without_reading >= 2,
        "a backoff shared by the runs: {} reads for {runs} runs",
        sm.failed("GetSecretValue")
    );
}

#[tokio::test]
async fn the_shell_reader_reports_an_aws_failure_as_such() {
    let world = World::new().await;
    world.fill().await;
    let sm = sm_proxy().await;
    sm.fail("GetSecretValue", SmFault::error("AccessDeniedException"));
    let dir = TempDir::new();

    let denied = run_with(
        Reader::Shell,
        &dir,
        reader_env_without_retries(&world, &sm),
        &[],
    )
    .await;

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
    let mut env = reader_env_without_retries(&world, &sm);
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
    let proxy = sm_proxy().await;
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
    let files: Vec<_> = std::fs::read_dir(&ours[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(cached["secret_id"], world.token_id.as_str());
}

/// Token secrets whose ids differ only in characters a file name cannot all keep: the shell
/// reader once mapped every character outside `[A-Za-z0-9._-]` to `_`, so these five shared
/// one cache file. Each holds the token of another iAdvize user.
const LOOK_ALIKE: [&str; 5] = ["team/a", "team_a", "team+a", "team=a", "team@a"];

/// Several iAdvize users, each with a token secret of its own, named `{prefix}{suffix}`.
struct Teams {
    standin: standins::Standin,
    /// (secret id, username, token), in the order of the suffixes.
    secrets: Vec<(String, String, String)>,
}

impl Teams {
    async fn new(suffixes: &[&str]) -> Teams {
        let prefix = unique("readers");
        let users: Vec<(String, String)> = suffixes
            .iter()
            .map(|_| (format!("{}@example.com", unique("user")), unique("pw")))
            .collect();
        let config = users.iter().fold(
            standins::StandinConfig::default(),
            |config, (user, password)| config.with_user(user, password),
        );
        let standin = standins::Standin::start(config).await.unwrap();
        let sm = sm_client();
        let mut secrets = Vec::new();
        for (suffix, (user, password)) in suffixes.iter().zip(&users) {
            let token = login(&standin.url(), user, password).await;
            let id = format!("{prefix}-{suffix}");
            sm.create_secret()
                .name(&id)
                .secret_string(record_json(&token))
                .send()
                .await
                .unwrap_or_else(|e| panic!("create {id}: {e:?}"));
            secrets.push((id, user.clone(), token));
        }
        Teams { standin, secrets }
    }

    /// The environment of a reader of these secrets through `proxy`.
    fn env(&self, proxy: &SmProxy) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", proxy.url()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("IADVIZE_API_URL", self.standin.url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn ids(&self) -> Vec<&str> {
        self.secrets.iter().map(|(id, _, _)| id.as_str()).collect()
    }

    fn tokens(&self) -> Vec<&str> {
        self.secrets.iter().map(|(_, _, t)| t.as_str()).collect()
    }
}

/// Runs `reader` for `secret_id` alone (the shell reader: one run; the others: one process).
async fn run_for(
    reader: Reader,
    teams: &Teams,
    proxy: &SmProxy,
    dir: &TempDir,
    secret_id: &str,
    args: &[&str],
) -> Output {
    let mut env = teams.env(proxy);
    env.push(("IADVIZE_TOKEN_SECRET_ID".into(), secret_id.into()));
    run_with(reader, dir, env, args).await
}

/// Two rounds over the look-alike secrets: each read gives its own user's token, and each
/// secret is read from Secrets Manager once.
pub(crate) async fn reads_look_alike_secret_ids_each_with_its_own_token(reader: Reader) {
    let teams = Teams::new(&LOOK_ALIKE).await;
    let proxy = sm_proxy().await;
    let dir = TempDir::new();

    let expected: String = teams
        .secrets
        .iter()
        .map(|(_, user, _)| format!("{user}\n"))
        .collect::<String>()
        .repeat(2);
    let mut stdout = String::new();
    let mut stderr = String::new();
    if matches!(reader, Reader::Shell) {
        // Runs one after the other, sharing one cache folder, as cron jobs would.
        for _round in 0..2 {
            for id in teams.ids() {
                let output = run_for(reader, &teams, &proxy, &dir, id, &[]).await;
                assert!(output.status.success(), "{id}: {}", describe(&output));
                stdout.push_str(&String::from_utf8_lossy(&output.stdout));
                stderr.push_str(&String::from_utf8_lossy(&output.stderr));
            }
        }
    } else {
        // One process that reads every secret, twice.
        let mut env = teams.env(&proxy);
        env.push(("READER_SECRET_IDS".into(), teams.ids().join(",")));
        env.push(("READER_CALLS".into(), "2".into()));
        let output = run_with(reader, &dir, env, &[]).await;
        assert!(output.status.success(), "{}", describe(&output));
        stdout.push_str(&String::from_utf8_lossy(&output.stdout));
        stderr.push_str(&String::from_utf8_lossy(&output.stderr));
    }

    assert_eq!(stdout, expected, "each secret gives its own user's token");
    assert_eq!(
        proxy.reads(),
        LOOK_ALIKE.len() as u64,
        "one read per secret, then each from its own cache entry"
    );
    assert_eq!(
        teams.standin.stats().login_requests,
        LOOK_ALIKE.len() as u32
    );
    assert_no_secrets(&stderr, &teams.tokens());
}

#[tokio::test]
async fn the_node_reader_keeps_look_alike_secret_ids_apart() {
    reads_look_alike_secret_ids_each_with_its_own_token(Reader::Node).await;
}

#[tokio::test]
async fn the_python_reader_keeps_look_alike_secret_ids_apart() {
    reads_look_alike_secret_ids_each_with_its_own_token(Reader::Python).await;
}

#[tokio::test]
async fn the_secret_cache_recipe_keeps_look_alike_secret_ids_apart() {
    reads_look_alike_secret_ids_each_with_its_own_token(Reader::PythonSecretCache).await;
}

#[tokio::test]
async fn the_shell_reader_keeps_look_alike_secret_ids_apart() {
    reads_look_alike_secret_ids_each_with_its_own_token(Reader::Shell).await;
}

/// The `.json` files of the shell reader's cache folder.
fn cache_files(dir: &TempDir) -> Vec<PathBuf> {
    std::fs::read_dir(dir.0.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

#[tokio::test]
async fn the_shell_reader_ignores_a_cache_file_written_for_another_secret_id() {
    let teams = Teams::new(&["team/a", "team_a"]).await;
    let (other, _, other_token) = &teams.secrets[0];
    let (id, user, _) = &teams.secrets[1];
    let proxy = sm_proxy().await;
    let dir = TempDir::new();
    let output = run_for(Reader::Shell, &teams, &proxy, &dir, id, &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let files = cache_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(
        written["secret_id"],
        id.as_str(),
        "the entry records its id"
    );

    // What another id's entry could leave there (a bug, an older version, a hand-made file):
    // a fresh record of another user's token, for another id, then without any id.
    let mut planted: serde_json::Value = serde_json::from_str(&record_json(other_token)).unwrap();
    planted["read_again_at"] = serde_json::json!(i64::from(i32::MAX));
    for recorded_for in [serde_json::json!(other), serde_json::Value::Null] {
        planted["secret_id"] = recorded_for.clone();
        std::fs::write(&files[0], planted.to_string()).unwrap();
        let reads = proxy.reads();

        let output = run_for(Reader::Shell, &teams, &proxy, &dir, id, &[]).await;

        assert!(output.status.success(), "{}", describe(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{user}\n"),
            "an entry recorded for {recorded_for} is not this secret's"
        );
        assert_eq!(proxy.reads(), reads + 1, "the secret was read instead");
    }
    let token = run_for(Reader::Shell, &teams, &proxy, &dir, id, &["token"]).await;
    assert_eq!(
        String::from_utf8_lossy(&token.stdout),
        format!("{}\n", teams.secrets[1].2)
    );
}

pub(crate) async fn says_what_it_found_when_the_value_is_binary(reader: Reader) {
    let world = World::new().await;
    let token = world.login_directly().await;
    // A valid record, stored with `--secret-binary`: not what the broker writes.
    world
        .sm
        .put_secret_value()
        .secret_id(&world.token_id)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(record_json(
            &token,
        )))
        .send()
        .await
        .unwrap();
    let proxy = sm_proxy().await;
    let dir = TempDir::new();

    let output = run(reader, &world, &proxy, &dir, &[]).await;

    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("holds binary data (SecretBinary)"),
        "{}",
        describe(&output)
    );
    assert_no_secrets(&describe(&output), &[&token]);
}

#[tokio::test]
async fn the_node_reader_says_when_the_value_is_binary() {
    says_what_it_found_when_the_value_is_binary(Reader::Node).await;
}

#[tokio::test]
async fn the_python_reader_says_when_the_value_is_binary() {
    says_what_it_found_when_the_value_is_binary(Reader::Python).await;
}

#[tokio::test]
async fn the_secret_cache_recipe_says_when_the_value_is_binary() {
    says_what_it_found_when_the_value_is_binary(Reader::PythonSecretCache).await;
}

#[tokio::test]
async fn the_shell_reader_says_when_the_value_is_binary() {
    says_what_it_found_when_the_value_is_binary(Reader::Shell).await;
}

#[tokio::test]
async fn the_shell_reader_reads_a_secret_whose_name_starts_with_a_dash() {
    // Secret names may start with `-`; passed as a separate argument, the AWS CLI took such a
    // name for an option and failed with "--secret-id: expected one argument".
    let teams = Teams::new(&["a"]).await;
    let (id, user, token) = &teams.secrets[0];
    let dash_id = format!("-{id}");
    sm_client()
        .create_secret()
        .name(&dash_id)
        .secret_string(record_json(token))
        .send()
        .await
        .unwrap();
    let proxy = sm_proxy().await;
    let dir = TempDir::new();

    let output = run_for(Reader::Shell, &teams, &proxy, &dir, &dash_id, &[]).await;

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{user}\n"));
}

// Rejection reports: after a 401, a re-read that finds the very token iAdvize refused is
// reported to the report queue in IADVIZE_REPORT_QUEUE_URL (moto's SQS, reached like Secrets
// Manager through AWS_ENDPOINT_URL), and the reader waits for the new token. The broker's
// handling is played by the test: it takes the report off the queue and publishes a new token.

async fn reports_an_unchanged_token_once_and_uses_the_new_one(reader: Reader) {
    let world = World::new().await;
    // The reader starts with a token iAdvize has revoked and the broker has not replaced yet.
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    let new = world.login_directly().await;
    world.put_current(&record_json(&old)).await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let dir = TempDir::new();
    let (sqs, url) = report_queue().await;
    let broker = broker_replaces_on_report(&world, &sqs, &url, record_json(&new));

    let output = run(
        reader,
        &world,
        &proxy,
        &dir,
        &[
            ("IADVIZE_REPORT_QUEUE_URL", url.clone()),
            ("IADVIZE_REPORT_WAIT_SECONDS", "30".into()),
        ],
    )
    .await;

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username),
        "{}",
        describe(&output)
    );
    assert_one_report(&broker.await.unwrap(), &world, &old).await;
    assert!(
        sqs_poller::take_all(&sqs, &url, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "exactly one report"
    );
    assert!(
        proxy.reads() >= 3,
        "a read, a re-read, reads until the new token"
    );
    assert_eq!(world.standin.stats().graphql_requests, 2);
    assert_eq!(world.logins(), logins, "the reader never logs in");
    assert_no_secrets(&describe(&output), &[&old, &new]);
}

async fn says_once_how_to_enable_reports_and_sends_none_without_the_setting(reader: Reader) {
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    world.put_current(&record_json(&old)).await;
    let proxy = sm_proxy().await;
    let dir = TempDir::new();
    // A queue exists, but the reader is not told about it.
    let (sqs, url) = report_queue().await;

    let output = run(reader, &world, &proxy, &dir, &[]).await;

    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{}", describe(&output));
    assert_eq!(
        stderr.matches("IADVIZE_REPORT_QUEUE_URL").count(),
        1,
        "said once: {}",
        describe(&output)
    );
    assert!(stderr.contains("sqs:SendMessage"), "{stderr}");
    assert_eq!(proxy.reads(), 2, "one read, one re-read, no wait");
    assert!(
        sqs_poller::take_all(&sqs, &url, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "no report"
    );
    assert_no_secrets(&describe(&output), &[&old]);
}

#[tokio::test]
async fn the_node_reader_reports_an_unchanged_token_once_and_uses_the_new_one() {
    reports_an_unchanged_token_once_and_uses_the_new_one(Reader::Node).await;
}

#[tokio::test]
async fn the_python_reader_reports_an_unchanged_token_once_and_uses_the_new_one() {
    reports_an_unchanged_token_once_and_uses_the_new_one(Reader::Python).await;
}

#[tokio::test]
async fn the_shell_reader_reports_an_unchanged_token_once_and_uses_the_new_one() {
    reports_an_unchanged_token_once_and_uses_the_new_one(Reader::Shell).await;
}

#[tokio::test]
async fn the_node_reader_says_once_how_to_enable_reports_and_sends_none_without_the_setting() {
    says_once_how_to_enable_reports_and_sends_none_without_the_setting(Reader::Node).await;
}

#[tokio::test]
async fn the_python_reader_says_once_how_to_enable_reports_and_sends_none_without_the_setting() {
    says_once_how_to_enable_reports_and_sends_none_without_the_setting(Reader::Python).await;
}

#[tokio::test]
async fn the_shell_reader_says_once_how_to_enable_reports_and_sends_none_without_the_setting() {
    says_once_how_to_enable_reports_and_sends_none_without_the_setting(Reader::Shell).await;
}

// End to end with the real broker: the report goes through the queue, the SQS poller hands it
// to the built binary behind the Lambda harness, which verifies, refreshes, and the reader's
// next call succeeds; one login in all.

async fn heals_through_the_real_broker(reader: Reader) {
    let world = World::new().await;
    world.fill().await;
    world.standin.revoke_all_tokens();
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let dir = TempDir::new();
    let (sqs, url) = report_queue().await;
    let broker = std::sync::Arc::new(
        standins::LambdaHarness::start(crate::support::rig::broker_binary(), &binary_env(&world))
            .await
            .expect("the harness starts the broker")
            .with_timeout(Duration::from_secs(30)),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = {
        let (poller, broker, stop) = (
            standins::sqs_poller::SqsPoller::new(sqs.clone(), &url),
            broker.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(batch) = poller
                    .poll_once(&broker, Duration::from_secs(1))
                    .await
                    .expect("poll")
                {
                    answers.push(batch.result.expect("an SQS invocation always succeeds"));
                }
            }
            answers
        })
    };

    let output = run(
        reader,
        &world,
        &proxy,
        &dir,
        &[
            ("IADVIZE_REPORT_QUEUE_URL", url.clone()),
            ("IADVIZE_REPORT_WAIT_SECONDS", "30".into()),
        ],
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = polling.await.unwrap();

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username),
        "{}",
        describe(&output)
    );
    assert_eq!(world.logins(), logins + 1, "one login: {answers:?}");
    assert!(
        answers
            .iter()
            .any(|a| a["results"][0]["outcome"] == "refreshed"),
        "{answers:?}"
    );
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn the_python_reader_heals_through_the_real_broker() {
    heals_through_the_real_broker(Reader::Python).await;
}

#[tokio::test]
async fn the_node_reader_heals_through_the_real_broker() {
    heals_through_the_real_broker(Reader::Node).await;
}

#[tokio::test]
async fn the_shell_reader_heals_through_the_real_broker() {
    heals_through_the_real_broker(Reader::Shell).await;
}
