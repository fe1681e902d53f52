//! The fault suite's rig: the real broker binary behind the Lambda Runtime API harness,
//! talking to Secrets Manager through the fault proxy ([`SmProxy`]), a watcher on the token
//! secret, and the checks every fault test ends with. Reports go to `target/fault-reports/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use standins::{InvokeError, LambdaHarness};

use super::watcher::Watcher;
use super::{SmProxy, World, binary_env, sm_client, sm_proxy, stages_of, with_env};

/// Invocation deadline given to the binary; a killed process answers at once anyway.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's refresh window (the default): a token with less left is due.
pub const REFRESH_WINDOW: time::Duration = time::Duration::hours(4);

/// The broker binary cargo built for these tests. Another package's tests include this support
/// module too (the CLI's), and cargo names only the package's own binaries to its tests.
pub fn broker_binary() -> &'static Path {
    match option_env!("CARGO_BIN_EXE_iadvize-token-broker") {
        Some(path) => Path::new(path),
        None => panic!("the broker binary is built for the broker package's tests only"),
    }
}

/// One world (a stand-in user, a credentials secret, an empty token secret) and a fault proxy
/// in front of moto for the broker's calls.
pub struct Rig {
    pub world: World,
    pub proxy: SmProxy,
}

impl Rig {
    pub async fn new() -> Rig {
        let world = World::new().await;
        let proxy = sm_proxy().await;
        Rig { world, proxy }
    }

    /// The binary's environment: Secrets Manager through the proxy, no login spacing, stuck
    /// rotations resumed at once, short HTTP timeouts; then `extra`, which wins.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let proxy = self.proxy.url();
        let env = with_env(
            binary_env(&self.world),
            &[
                ("AWS_ENDPOINT_URL", &proxy),
                ("IADVIZE_MIN_LOGIN_INTERVAL", "0s"),
                ("IADVIZE_STUCK_ROTATION_AFTER", "0s"),
                ("IADVIZE_HTTP_TIMEOUT", "2s"),
                ("RUST_LOG", "info"),
            ],
        );
        with_env(env, extra)
    }

    /// A new broker process.
    pub async fn broker(&self, extra: &[(&str, &str)]) -> LambdaHarness {
        LambdaHarness::start(broker_binary(), &self.env(extra))
            .await
            .expect("the harness starts the broker")
            .with_timeout(INVOKE_TIMEOUT)
    }

    /// A watcher on the token secret, reading moto directly.
    pub async fn watch(&self) -> Watcher {
        Watcher::start(
            sm_client(),
            &self.world.token_id,
            self.world.standin.token_checker(),
        )
        .await
    }

    /// What the token secret looks like now, judged as the fault tests require.
    pub async fn end_state(&self) -> EndState {
        let stages = stages_of(&self.world.sm, &self.world.token_id).await;
        let pending = stages
            .iter()
            .filter(|(_, s)| s.iter().any(|s| s == "AWSPENDING"))
            .map(|(v, _)| v.clone())
            .collect();
        let token = match self.world.current().await {
            None => Err("AWSCURRENT has no value".to_owned()),
            Some(value) => {
                let text = match &value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                judge_fresh(&text, &self.world.standin.token_checker())
            }
        };
        EndState { token, pending }
    }

    pub fn logins(&self) -> u32 {
        self.world.logins()
    }
}

/// The token secret at the end of a fault test.
#[derive(Debug)]
pub struct EndState {
    /// `Ok(expires_at)` when AWSCURRENT holds a fresh token the stand-in accepts.
    pub token: Result<String, String>,
    /// Versions still labelled AWSPENDING.
    pub pending: Vec<String>,
}

impl EndState {
    pub fn is_good(&self) -> bool {
        self.token.is_ok() && self.pending.is_empty()
    }

    pub fn assert_good(&self) {
        assert!(self.is_good(), "bad end state: {}", self.describe());
    }

    /// One short line for reports (no token).
    pub fn describe(&self) -> String {
        let token = match &self.token {
            Ok(_) => "fresh".to_owned(),
            Err(reason) => reason.clone(),
        };
        if self.pending.is_empty() {
            token
        } else {
            format!("{token}; AWSPENDING left on {}", self.pending.len())
        }
    }
}

/// A value that must be a fresh (not due), unexpired record the stand-in accepts.
fn judge_fresh(value: &str, checker: &standins::TokenChecker) -> Result<String, String> {
    let record = iadvize_token_broker::TokenRecord::parse(value).map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc();
    if record.expires_at - now <= REFRESH_WINDOW {
        return Err(format!(
            "the token is not fresh (expires {})",
            iadvize_token_broker::token::rfc3339(record.expires_at)
        ));
    }
    if !checker.accepts(record.access_token.expose()) {
        return Err("the stand-in does not accept the token".into());
    }
    Ok(iadvize_token_broker::token::rfc3339(record.expires_at))
}

/// An operator's refresh.
pub fn refresh_event(force: bool) -> Value {
    json!({"action": "refresh", "force": force})
}

/// What an invocation reported, in a few words: the tick's outcome for its (only) secret,
/// `ok` for a step, or the error.
pub fn outcome(answer: &Result<Value, InvokeError>) -> String {
    match answer {
        Ok(value) => {
            if let Some(outcome) = value["results"][0]["outcome"].as_str() {
                match value["results"][0]["error"].as_str() {
                    Some(error) => format!("{outcome}: {error}"),
                    None => outcome.to_owned(),
                }
            } else {
                value["outcome"].as_str().unwrap_or("answered").to_owned()
            }
        }
        Err(InvokeError::Function {
            error_type,
            error_message,
        }) => format!("failed: {error_type}: {error_message}"),
        Err(other) => format!("no answer: {other}"),
    }
}

/// Whether an invocation reported a failure (an error, or a secret `failed`).
pub fn reported_failure(answer: &Result<Value, InvokeError>) -> bool {
    match answer {
        Ok(value) => value["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["outcome"] == "failed")),
        Err(_) => true,
    }
}

/// `target/fault-reports`.
pub fn report_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("fault-reports");
    std::fs::create_dir_all(&dir).expect("create target/fault-reports");
    dir
}

/// Writes one section of a report (tests run in separate processes, each writes its own),
/// then rebuilds `<report>.md` from the sections present, in `order`.
pub fn write_section(report: &str, title: &str, order: &[&str], section: &str, text: &str) {
    let sections = report_dir().join(report);
    std::fs::create_dir_all(&sections).expect("create the sections folder");
    write_atomically(&sections.join(format!("{section}.md")), text);
    let mut whole = format!(
        "# {title}\n\nWritten by the fault suite (`tests/it/crash.rs`, `tests/it/faults.rs`, `tests/it/holds.rs`).\n"
    );
    for name in order {
        if let Ok(part) = std::fs::read_to_string(sections.join(format!("{name}.md"))) {
            whole.push('\n');
            whole.push_str(&part);
        }
    }
    write_atomically(&report_dir().join(format!("{report}.md")), &whole);
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).expect("write a report");
    std::fs::rename(&tmp, path).expect("move a report in place");
}
