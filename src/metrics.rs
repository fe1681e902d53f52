//! CloudWatch Embedded Metric Format lines (namespace `IadvizeTokenBroker`). Lambda sends
//! stdout to CloudWatch Logs, which turns these lines into metrics.
//!
//! Fleet-wide series have no dimension and are emitted once per tick ([`FleetMetrics`]); they
//! drive the alarms. Per-secret series (dimension `SecretName`) are opt-in
//! (`IADVIZE_PER_SECRET_METRICS`): CloudWatch bills every series, ~$0.30 a month each.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// The metrics namespace.
pub const NAMESPACE: &str = "IadvizeTokenBroker";
/// The dimension naming the token secret.
pub const DIMENSION: &str = "SecretName";
/// The dimension of series counted by outcome (`LoginAttempts` by how the login ended,
/// `RejectionReports` by what a report led to): a few fixed values, so a few billed series.
pub const OUTCOME: &str = "Outcome";

/// How a login ended, for the `LoginAttempts` series with the `Outcome` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// iAdvize issued a token.
    Ok,
    /// iAdvize answered 429 (or the login stopped retrying while the broker pauses its logins).
    Throttled,
    /// iAdvize refused the credentials.
    Refused,
    /// Any other failure (5xx, time-outs, an unusable answer).
    Transient,
}

impl LoginOutcome {
    /// The dimension value: `ok`, `throttled`, `refused`, `transient`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Ok => "ok",
            LoginOutcome::Throttled => "throttled",
            LoginOutcome::Refused => "refused",
            LoginOutcome::Transient => "transient",
        }
    }
}

/// Where metric lines go.
#[derive(Clone, Default)]
pub struct Metrics {
    sink: Sink,
    /// Whether per-secret series are written.
    per_secret: bool,
    /// Login requests sent so far (the fleet-wide `LoginAttempts` of a tick is a difference).
    login_attempts: Arc<AtomicU64>,
}

/// The fleet-wide series of one tick (no dimension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetMetrics {
    /// Least time left on any managed token; 0 when any has no valid token.
    pub min_seconds_until_expiry: u64,
    /// Token secrets the tick managed.
    pub managed: u64,
    /// Secrets that got a new token (refreshed or resumed).
    pub refreshed: u64,
    /// Secrets that failed.
    pub failed: u64,
    /// Secrets left for the next tick.
    pub deferred: u64,
    /// Login requests sent to iAdvize during the tick (retries included).
    pub login_attempts: u64,
}

#[derive(Clone, Default)]
enum Sink {
    /// Standard output (in Lambda).
    Stdout,
    /// Kept in memory (tests, the CLI).
    Memory(Arc<Mutex<Vec<String>>>),
    /// Dropped.
    #[default]
    Off,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sink = match self.sink {
            Sink::Stdout => "stdout",
            Sink::Memory(_) => "memory",
            Sink::Off => "off",
        };
        f.debug_struct("Metrics")
            .field("sink", &sink)
            .field("per_secret", &self.per_secret)
            .finish()
    }
}

impl Metrics {
    /// Metrics written to standard output, one JSON object a line.
    pub fn stdout() -> Self {
        Metrics {
            sink: Sink::Stdout,
            ..Metrics::default()
        }
    }

    /// Metrics collected in memory; read them with [`Metrics::lines`].
    pub fn memory() -> Self {
        Metrics {
            sink: Sink::Memory(Arc::default()),
            ..Metrics::default()
        }
    }

    /// No metrics.
    pub fn off() -> Self {
        Metrics::default()
    }

    /// The same sink, with per-secret series on or off (`IADVIZE_PER_SECRET_METRICS`).
    pub fn per_secret(mut self, on: bool) -> Self {
        self.per_secret = on;
        self
    }

    /// Login requests sent so far by this process.
    pub fn login_attempts(&self) -> u64 {
        self.login_attempts.load(Ordering::Relaxed)
    }

    /// The fleet-wide series of one tick, as one EMF line without a dimension.
    pub fn fleet(&self, fleet: &FleetMetrics) {
        let values = [
            (
                "MinSecondsUntilExpiry",
                fleet.min_seconds_until_expiry as f64,
                "Seconds",
            ),
            ("SecretsManaged", fleet.managed as f64, "Count"),
            ("SecretsRefreshed", fleet.refreshed as f64, "Count"),
            ("SecretsFailed", fleet.failed as f64, "Count"),
            ("SecretsDeferred", fleet.deferred as f64, "Count"),
            ("LoginAttempts", fleet.login_attempts as f64, "Count"),
        ];
        self.write(emf_line(None, &values, now_millis()));
    }

    /// The lines collected so far by a memory sink.
    pub fn lines(&self) -> Vec<String> {
        match &self.sink {
            Sink::Memory(lines) => lines.lock().map(|l| l.clone()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Login requests sent to iAdvize (retries included) and whether the credentials were refused.
    pub fn logins(&self, secret_name: &str, attempts: u32, refused: bool) {
        self.login_attempts
            .fetch_add(u64::from(attempts), Ordering::Relaxed);
        self.emit(
            secret_name,
            &[
                ("LoginAttempts", f64::from(attempts), "Count"),
                ("LoginsRefused", if refused { 1.0 } else { 0.0 }, "Count"),
            ],
        );
    }

    /// A login ended: its requests (retries included) count towards the process's total (the
    /// tick's `LoginAttempts` gauge) and go to the `LoginAttempts` series of its outcome
    /// (dimension `Outcome`), always; the per-secret series of [`Metrics::logins`] when on.
    pub fn login_ended(&self, secret_name: &str, outcome: LoginOutcome, attempts: u32) {
        match outcome {
            LoginOutcome::Ok | LoginOutcome::Refused => {
                self.logins(secret_name, attempts, outcome == LoginOutcome::Refused);
            }
            LoginOutcome::Throttled | LoginOutcome::Transient => {
                self.login_attempts
                    .fetch_add(u64::from(attempts), Ordering::Relaxed);
            }
        }
        if attempts == 0 {
            return;
        }
        let mut doc = emf_line(
            None,
            &[("LoginAttempts", f64::from(attempts), "Count")],
            now_millis(),
        );
        doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([[OUTCOME]]);
        doc[OUTCOME] = json!(outcome.as_str());
        self.write(doc);
    }

    /// A tick or follow-up asked for a follow-up invocation (`FollowUpsSent`, no dimension).
    pub fn follow_up_sent(&self) {
        self.write(emf_line(
            None,
            &[("FollowUpsSent", 1.0, "Count")],
            now_millis(),
        ));
    }

    /// A rotation (inline, resumed or Secrets-Manager-driven) ended.
    pub fn rotation(&self, secret_name: &str, succeeded: bool) {
        let (ok, failed) = if succeeded { (1.0, 0.0) } else { (0.0, 1.0) };
        self.emit(
            secret_name,
            &[
                ("RotationsSucceeded", ok, "Count"),
                ("RotationsFailed", failed, "Count"),
            ],
        );
    }

    /// Seconds until the AWSCURRENT token expires (0 when expired or missing).
    pub fn seconds_until_expiry(&self, secret_name: &str, seconds: u64) {
        self.emit(
            secret_name,
            &[("SecondsUntilExpiry", seconds as f64, "Seconds")],
        );
    }

    /// One rejection report handled (or one token secret checked after its credentials
    /// changed), by outcome: `RejectionReports` with dimension `Outcome` (`superseded`,
    /// `accepted`, `refreshed`, `in_progress`, `deferred`, `failed`, `error` for a report
    /// refused before any check). One series per outcome that happens, whatever the fleet size.
    pub fn rejection_report(&self, outcome: &str) {
        let mut doc = emf_line(None, &[("RejectionReports", 1.0, "Count")], now_millis());
        doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([[OUTCOME]]);
        doc[OUTCOME] = json!(outcome);
        self.write(doc);
    }

    /// Queue messages that were not well-formed reports (`ReportBodiesIgnored`, no
    /// dimension): counted, logged by their shape, never acted on.
    pub fn report_bodies_ignored(&self, count: u64) {
        self.write(emf_line(
            None,
            &[("ReportBodiesIgnored", count as f64, "Count")],
            now_millis(),
        ));
    }

    fn emit(&self, secret_name: &str, values: &[(&str, f64, &str)]) {
        if !self.per_secret {
            return;
        }
        self.write(emf_line(Some(secret_name), values, now_millis()));
    }

    fn write(&self, doc: Value) {
        if matches!(self.sink, Sink::Off) {
            return;
        }
        let line = doc.to_string();
        match &self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                // A metric that cannot be written must not fail a rotation.
                let _ = writeln!(out, "{line}").and_then(|_| out.flush());
            }
            Sink::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
            Sink::Off => {}
        }
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One EMF document: the `_aws` metadata, the dimension (if any) and the values at the top
/// level.
fn emf_line(secret_name: Option<&str>, values: &[(&str, f64, &str)], timestamp: u64) -> Value {
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": if secret_name.is_some() { json!([[DIMENSION]]) } else { json!([[]]) },
                "Metrics": definitions,
            }],
        },
    });
    if let Some(name) = secret_name {
        // A dimension value from input (an operator's secret id) is capped like every echo.
        doc[DIMENSION] = json!(crate::error::echo(name));
    }
    for (name, value, _) in values {
        doc[*name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_embedded_metric_format() {
        let metrics = Metrics::memory().per_secret(true);
        metrics.logins("tok", 3, false);
        metrics.seconds_until_expiry("tok", 86_000);
        let lines = metrics.lines();
        assert_eq!(lines.len(), 2);
        let doc: Value = serde_json::from_str(&lines[0]).unwrap();
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["SecretName"]]));
        assert_eq!(doc["SecretName"], "tok");
        // every declared metric has a numeric value at the top level
        for definition in directive["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name}");
        }
        assert_eq!(doc["LoginAttempts"], 3.0);
        assert_eq!(doc["LoginsRefused"], 0.0);
        let expiry: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(expiry["SecondsUntilExpiry"], 86_000.0);
        assert_eq!(
            expiry["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
    }

    #[test]
    fn per_secret_series_are_opt_in_and_fleet_series_have_no_dimension() {
        let metrics = Metrics::memory();
        metrics.logins("tok", 2, false);
        metrics.rotation("tok", true);
        metrics.seconds_until_expiry("tok", 10);
        assert!(metrics.lines().is_empty(), "no per-secret line by default");
        assert_eq!(metrics.login_attempts(), 2, "logins are still counted");
        metrics.fleet(&FleetMetrics {
            min_seconds_until_expiry: 3600,
            managed: 500,
            refreshed: 3,
            failed: 1,
            deferred: 2,
            login_attempts: 4,
        });
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        let doc: Value = serde_json::from_str(&lines[0]).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert!(doc.get(DIMENSION).is_none());
        assert_eq!(doc["MinSecondsUntilExpiry"], 3600.0);
        assert_eq!(doc["SecretsManaged"], 500.0);
        assert_eq!(doc["SecretsRefreshed"], 3.0);
        assert_eq!(doc["SecretsFailed"], 1.0);
        assert_eq!(doc["SecretsDeferred"], 2.0);
        assert_eq!(doc["LoginAttempts"], 4.0);
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn a_dimension_value_from_input_is_capped() {
        let metrics = Metrics::memory().per_secret(true);
        metrics.seconds_until_expiry(&"a".repeat(1 << 20), 1);
        let doc: Value = serde_json::from_str(&metrics.lines()[0]).unwrap();
        let name = doc[DIMENSION].as_str().unwrap();
        // CloudWatch takes dimension values of at most 1,024 characters.
        assert!(name.chars().count() <= 1024, "{}", name.len());
        assert!(name.ends_with("…(1048576 bytes)"), "{name}");
    }

    #[test]
    fn reports_are_counted_by_outcome_and_ignored_bodies_without_a_dimension() {
        let metrics = Metrics::memory();
        metrics.rejection_report("refreshed");
        metrics.report_bodies_ignored(2);
        let lines = metrics.lines();
        assert_eq!(
            lines.len(),
            2,
            "reports are counted even without per-secret series"
        );
        let doc: Value = serde_json::from_str(&lines[0]).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Outcome"]]));
        assert_eq!(doc["Outcome"], "refreshed");
        assert_eq!(doc["RejectionReports"], 1.0);
        let ignored: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            ignored["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(ignored["ReportBodiesIgnored"], 2.0);
    }

    #[test]
    fn logins_by_outcome_have_one_dimension_and_count_towards_the_total() {
        let metrics = Metrics::memory();
        metrics.login_ended("tok", LoginOutcome::Throttled, 5);
        metrics.login_ended("tok", LoginOutcome::Ok, 1);
        metrics.login_ended("tok", LoginOutcome::Transient, 0);
        metrics.follow_up_sent();
        assert_eq!(metrics.login_attempts(), 6);
        let lines: Vec<Value> = metrics
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "no line for a login that sent nothing");
        assert_eq!(lines[0]["Outcome"], "throttled");
        assert_eq!(lines[0]["LoginAttempts"], 5.0);
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Outcome"]])
        );
        assert!(lines[0].get(DIMENSION).is_none(), "no per-secret dimension");
        assert_eq!(lines[1]["Outcome"], "ok");
        assert_eq!(lines[2]["FollowUpsSent"], 1.0);
        assert_eq!(
            lines[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }

    #[test]
    fn an_off_sink_collects_nothing() {
        let metrics = Metrics::off();
        metrics.rotation("tok", true);
        assert!(metrics.lines().is_empty());
    }
}
