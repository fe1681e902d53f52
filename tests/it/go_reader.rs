//! The Go reader (examples/go), built with the Go toolchain and the AWS SDK for Go v2 that
//! Debian packages (GOPATH mode against /usr/share/gocode: no module proxy needed), run as a
//! subprocess against moto (Secrets Manager and SQS) and the iAdvize stand-in, like the
//! readers of tests/it/readers.rs: it calls GraphQL with the broker's token, reads the secret
//! once per token lifetime, reads it again once after a 401, reports a token that is refused
//! and unchanged to the report queue, keeps a cached token while reads fail, and never logs in.
//!
//! Go and the SDK come from `make reader-deps` (apt-get as root on Debian); a missing one
//! fails the test with the command to run.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::readers::{self, Reader, TempDir, root};
use crate::support::*;
use standins::sqs_poller::{self, SqsClient};

const GO_SDK: &str = "/usr/share/gocode/src/github.com/aws/aws-sdk-go-v2/service/secretsmanager";

/// Builds examples/go once per test process into target/go-reader, and returns the binary.
pub(crate) fn reader_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let go = std::process::Command::new("go").arg("version").output();
        assert!(
            go.is_ok_and(|o| o.status.success()) && Path::new(GO_SDK).is_dir(),
            "Go or the AWS SDK for Go v2 is missing: run `make reader-deps` \
             (Debian: apt-get install golang-go golang-github-aws-aws-sdk-go-v2-dev)"
        );
        // Each test process builds (the Go build cache makes all but the first a second or
        // two) into a file of its own, then renames it into place: concurrent test processes
        // never run a half-written binary.
        let out = root().join("target/go-reader");
        if is_newer_than_the_sources(&out.join("read-token")) {
            return out.join("read-token");
        }
        std::fs::create_dir_all(out.join("gopath")).unwrap();
        let building = out.join(format!("read-token.{}", std::process::id()));
        let built = std::process::Command::new("go")
            .current_dir(root().join("examples/go"))
            .args(["build", "-o"])
            .arg(&building)
            .arg(".")
            .env("GO111MODULE", "off")
            .env(
                "GOPATH",
                format!("{}:/usr/share/gocode", out.join("gopath").display()),
            )
            .env("GOCACHE", out.join("cache"))
            .env("GOFLAGS", "")
            .output()
            .expect("go build runs");
        assert!(
            built.status.success(),
            "go build failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        std::fs::rename(&building, out.join("read-token")).unwrap();
        out.join("read-token")
    })
}

/// Whether `binary` exists and was built after every file of examples/go last changed.
fn is_newer_than_the_sources(binary: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    std::fs::read_dir(root().join("examples/go"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().modified().unwrap())
        .all(|changed| changed < built)
}

async fn run_with(env: Vec<(String, String)>) -> Output {
    readers::run_with(Reader::Go, &TempDir::new(), env, &[]).await
}

async fn run(world: &World, proxy: &SmProxy, extra: &[(&str, String)]) -> Output {
    readers::run(Reader::Go, world, proxy, &TempDir::new(), extra).await
}

#[tokio::test]
async fn the_go_reader_reads_the_secret_once_and_calls_graphql_without_logging_in() {
    reader_binary(); // before the clock of any record starts
    readers::reads_once_and_calls_graphql_without_logging_in(Reader::Go).await;
}

#[tokio::test]
async fn the_go_reader_reads_the_secret_again_once_after_a_401() {
    let world = World::new().await;
    // The reader starts with a token iAdvize has revoked; the broker has a new one ready.
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    let new = world.login_directly().await;
    world.put_current(&record_json(&old)).await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let (sqs, queue) = report_queue().await;
    let shim = start_shim(RotateOn401 {
        standin: world.standin.url(),
        sm: world.sm.clone(),
        secret_id: world.token_id.clone(),
        next: record_json(&new),
        rotated: Arc::default(),
    })
    .await;

    let output = run(
        &world,
        &proxy,
        &[
            ("IADVIZE_API_URL", shim),
            ("IADVIZE_REPORT_QUEUE_URL", queue.clone()),
        ],
    )
    .await;

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
    assert!(
        sqs_poller::take_all(&sqs, &queue, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the secret held a new token: nothing to report"
    );
    assert_no_secrets(&String::from_utf8_lossy(&output.stderr), &[&old, &new]);
}

#[tokio::test]
async fn the_go_reader_without_a_report_queue_gives_up_when_the_token_read_again_is_refused_too() {
    reader_binary(); // before the clock of any record starts
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    world.put_current(&record_json(&old)).await;
    let logins = world.logins();
    let proxy = sm_proxy().await;

    let output = run(&world, &proxy, &[]).await;

    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("set IADVIZE_REPORT_QUEUE_URL"),
        "{}",
        describe(&output)
    );
    assert_eq!(proxy.reads(), 2, "one re-read, no loop");
    assert_eq!(world.standin.stats().graphql_requests, 1);
    assert_eq!(world.logins(), logins);
    assert_no_secrets(&describe(&output), &[&old]);
}

/// The path that heals a revocation: the token read again is the refused one, so the reader
/// reports it to the queue (its SHA-256, never the token) and waits; the test plays the broker
/// that receives the report and publishes a new token; the reader's call then succeeds.
#[tokio::test]
async fn the_go_reader_reports_a_refused_token_and_uses_the_one_the_broker_publishes() {
    reader_binary(); // before the clock of any record starts
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    world.put_current(&record_json(&old)).await;
    let new = world.login_directly().await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let (sqs, queue) = report_queue().await;

    let reader = tokio::spawn({
        let mut env = reader_env(&world, &proxy);
        env.push(("IADVIZE_REPORT_QUEUE_URL".into(), queue.clone()));
        env.push(("IADVIZE_REPORT_WAIT_SECONDS".into(), "20".into()));
        run_with(env)
    });
    let reports = sqs_poller::take_first(&sqs, &queue, Duration::from_secs(15))
        .await
        .unwrap();
    // One report, its SHA-256 (never the token), one message group per token secret.
    assert_one_report(&reports, &world, &old).await;
    world.put_current(&record_json(&new)).await; // what the broker does with the report
    let output = reader.await.unwrap();

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("reported it to the broker"),
        "{}",
        describe(&output)
    );
    assert!(
        (3..=8).contains(&proxy.reads()),
        "a read, a re-read, then a few with a backoff until the new token: {}",
        proxy.reads()
    );
    assert_eq!(world.standin.stats().graphql_requests, 2);
    assert_eq!(world.logins(), logins, "the reader never logs in");
    assert_no_secrets(&describe(&output), &[&old, &new]);
    assert_no_secrets(&reports[0].body, &[&old]);
}

/// No new token after the report: the reader re-reads after 1 s, doubling to at most 5 s
/// (README rule 3), and gives up at IADVIZE_REPORT_WAIT_SECONDS. 14.9 s is the shortest wait
/// that tells the cap from an uncapped doubling: re-reads at 1, 3, 7, 12 and 14.9 s (an
/// uncapped one waits 8 s after the third, so reads at 1, 3, 7 and 14.9 s only), with ~3 s
/// to spare for slow reads on a loaded machine.
/// A secret whose token iAdvize revoked and the broker has not replaced (no broker runs),
/// the Go reader built first (before the clock of any record starts), a proxy counting reads,
/// and a report queue: the world, the revoked token, the proxy, the queue.
async fn revoked_and_unreplaced() -> (World, String, SmProxy, (SqsClient, String)) {
    reader_binary();
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    world.put_current(&record_json(&old)).await;
    let proxy = sm_proxy().await;
    let queue = report_queue().await;
    (world, old, proxy, queue)
}

#[tokio::test]
async fn the_go_reader_gives_up_when_no_new_token_comes_after_its_report() {
    let (world, old, proxy, (sqs, queue)) = revoked_and_unreplaced().await;

    let output = run(
        &world,
        &proxy,
        &[
            ("IADVIZE_REPORT_QUEUE_URL", queue.clone()),
            ("IADVIZE_REPORT_WAIT_SECONDS", "14.9".into()),
        ],
    )
    .await;

    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no new token came within 14.9s"),
        "{}",
        describe(&output)
    );
    assert_eq!(
        sqs_poller::take_all(&sqs, &queue, Duration::ZERO)
            .await
            .unwrap()
            .len(),
        1,
        "reported once"
    );
    assert_eq!(
        proxy.reads(),
        7,
        "a read, a re-read, then re-reads at 1, 3, 7, 12 and 14.9 s after the report"
    );
    assert_eq!(world.standin.stats().graphql_requests, 1);
    assert_no_secrets(&describe(&output), &[&old]);
}

#[tokio::test]
async fn the_go_reader_reports_the_same_token_again_after_a_wait_that_ended_without_a_new_one() {
    let (world, old, proxy, (_sqs, queue)) = revoked_and_unreplaced().await;

    let output = run(
        &world,
        &proxy,
        &[
            ("IADVIZE_REPORT_QUEUE_URL", queue.clone()),
            ("IADVIZE_REPORT_WAIT_SECONDS", "1".into()),
            ("READER_CALLS", "2".into()),
            ("READER_KEEP_GOING", "1".into()),
        ],
    )
    .await;

    // Each call's 401 is reported (as the other readers do); the queue, not the reader,
    // drops a copy sent within five minutes.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("reported it to the broker").count(),
        2,
        "{}",
        describe(&output)
    );
    assert_eq!(stderr.matches("no new token came within").count(), 2);
    assert_no_secrets(&describe(&output), &[&old]);
}

#[tokio::test]
async fn the_go_reader_says_what_the_secret_holds_when_it_is_not_a_token_record() {
    reader_binary();
    readers::says_when_the_secret_holds_no_token_yet(Reader::Go).await;
    readers::says_what_it_found_when_the_value_is_binary(Reader::Go).await;
}

/// One process calls GraphQL every 100 ms with a token due for a new read every second;
/// every read after the first is throttled. It must keep calling with the cached token until
/// that expires, read again with a backoff (not once per call), then fail saying why.
#[tokio::test]
async fn the_go_reader_keeps_the_cached_token_while_re_reads_fail_until_it_expires() {
    reader_binary(); // before the clock of any record starts
    readers::keeps_the_cached_token_while_re_reads_fail_until_it_expires(Reader::Go).await;
}

#[tokio::test]
async fn the_go_reader_keeps_look_alike_secret_ids_apart() {
    reader_binary();
    readers::reads_look_alike_secret_ids_each_with_its_own_token(Reader::Go).await;
}

/// A token record mounted as a file (what the External Secrets Operator syncs into a
/// Kubernetes Secret volume), in a directory removed on drop.
struct TokenFile(PathBuf);

impl TokenFile {
    fn new(record: &str) -> TokenFile {
        let dir = std::env::temp_dir().join(unique("go-reader"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token.json"), record).unwrap();
        TokenFile(dir)
    }

    fn path(&self) -> String {
        self.0.join("token.json").display().to_string()
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_go_reader_with_a_token_file_calls_graphql_without_reading_the_secret() {
    reader_binary(); // before the clock of any record starts
    let world = World::new().await;
    world.fill().await;
    let token = world.current().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = TokenFile::new(&record_json(&token));
    let proxy = sm_proxy().await;

    let output = run(
        &world,
        &proxy,
        &[
            ("IADVIZE_TOKEN_FILE", file.path()),
            ("READER_CALLS", "3".into()),
        ],
    )
    .await;

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username).repeat(3)
    );
    assert_eq!(
        proxy.reads(),
        0,
        "the mounted file, no Secrets Manager read"
    );
    assert_eq!(world.standin.stats().graphql_requests, 3);
}

/// The Kubernetes healing path: iAdvize revoked the token, the broker already published a
/// new one, but the operator has not synced it into the mounted file yet. After the 401 the
/// reader reads Secrets Manager directly, once, and goes on with the new token; no report.
#[tokio::test]
async fn the_go_reader_reads_the_secret_directly_when_the_token_file_holds_a_refused_token() {
    reader_binary(); // before the clock of any record starts
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    let new = world.login_directly().await;
    world.put_current(&record_json(&new)).await;
    let file = TokenFile::new(&record_json(&old));
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let (sqs, queue) = report_queue().await;

    let output = run(
        &world,
        &proxy,
        &[
            ("IADVIZE_TOKEN_FILE", file.path()),
            ("IADVIZE_REPORT_QUEUE_URL", queue.clone()),
            ("READER_CALLS", "2".into()),
        ],
    )
    .await;

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username).repeat(2)
    );
    assert_eq!(
        proxy.reads(),
        1,
        "one direct read after the 401, then the token it read"
    );
    assert_eq!(world.standin.stats().graphql_requests, 3);
    assert_eq!(world.logins(), logins);
    assert!(
        sqs_poller::take_all(&sqs, &queue, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "nothing to report"
    );
    assert_no_secrets(&describe(&output), &[&old, &new]);
}

/// Twenty goroutines of one process get the 401 at once: one report between them (not one
/// each), and all twenty succeed with the token the broker publishes.
#[tokio::test]
async fn the_go_reader_sends_one_report_for_twenty_concurrent_callers() {
    reader_binary(); // before the clock of any record starts
    let world = World::new().await;
    let old = world.login_directly().await;
    world.standin.revoke_all_tokens();
    world.put_current(&record_json(&old)).await;
    let new = world.login_directly().await;
    let logins = world.logins();
    let proxy = sm_proxy().await;
    let (sqs, queue) = report_queue().await;

    let reader = tokio::spawn({
        let mut env = reader_env(&world, &proxy);
        env.push(("IADVIZE_REPORT_QUEUE_URL".into(), queue.clone()));
        env.push(("IADVIZE_REPORT_WAIT_SECONDS".into(), "20".into()));
        env.push(("READER_PARALLEL".into(), "20".into()));
        run_with(env)
    });
    let reports = sqs_poller::take_first(&sqs, &queue, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    world.put_current(&record_json(&new)).await; // what the broker does with the report
    let output = reader.await.unwrap();

    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", world.username).repeat(20)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("reported it to the broker").count(),
        1,
        "one SendMessage for twenty callers:\n{stderr}"
    );
    assert_eq!(
        world.standin.stats().graphql_requests,
        40,
        "20 refused, 20 retried"
    );
    assert!(
        proxy.reads() <= 12,
        "concurrent callers share their reads: {}",
        proxy.reads()
    );
    assert_eq!(world.logins(), logins, "the reader never logs in");
    assert_no_secrets(&describe(&output), &[&old, &new]);
}
