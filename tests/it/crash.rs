//! Crash at every point: the broker binary, behind the Lambda Runtime API harness,
//! is SIGKILLed at each of its Secrets Manager calls in turn — before the call reaches
//! Secrets Manager, and after Secrets Manager applied it but before the answer comes back —
//! during a due tick, a first fill and a Secrets-Manager-driven rotation (the four step
//! events). A new process then ticks once. Each time the secret must end fresh with no
//! AWSPENDING left, with at most one login more than the same run without a crash, and a
//! watcher reading AWSCURRENT throughout must never see a bad token.
//!
//! The call points come from a run without a crash, so the matrix follows the broker's calls
//! as they are. It is written to `target/fault-reports/crash-matrix.md`.

use crate::support::rig::*;
use crate::support::watcher::MIN_READS;
use crate::support::*;
use futures::StreamExt;
use serde_json::Value;
use standins::InvokeError;
use standins::sm_proxy::{Call, KillPoint, Outcome};

/// Cases run at once within one scenario (each has its own stand-in, secrets, proxy and
/// processes; nextest runs the three scenarios in parallel too).
const PARALLEL: usize = 2;

const ORDER: [&str; 3] = ["due-tick", "first-fill", "sm-rotation"];

#[derive(Clone, Copy, Debug)]
enum Scenario {
    DueTick,
    FirstFill,
    SmRotation,
}

impl Scenario {
    fn key(self) -> &'static str {
        match self {
            Scenario::DueTick => "due-tick",
            Scenario::FirstFill => "first-fill",
            Scenario::SmRotation => "sm-rotation",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Scenario::DueTick => "Due tick (token inside the refresh window, 2 h left)",
            Scenario::FirstFill => "First fill (token secret created without a value)",
            Scenario::SmRotation => {
                "Secrets-Manager-driven rotation (RotateSecret, then the four step events)"
            }
        }
    }

    /// Puts the token secret in the scenario's starting state; returns the events to send.
    async fn prepare(self, rig: &Rig) -> Vec<Value> {
        match self {
            Scenario::DueTick => {
                rig.world.put_record(2).await;
                vec![scheduled_event()]
            }
            Scenario::FirstFill => vec![scheduled_event()],
            Scenario::SmRotation => {
                rig.world.put_record(20).await;
                let token = rig.world.start_sm_rotation().await;
                STEPS
                    .iter()
                    .map(|step| step_event(step, &rig.world.token_id, &token))
                    .collect()
            }
        }
    }
}

/// The same scenario without a crash.
struct Baseline {
    operations: Vec<String>,
    logins: u32,
}

async fn baseline(scenario: Scenario) -> Baseline {
    let rig = Rig::new().await;
    let events = scenario.prepare(&rig).await;
    let watcher = rig.watch().await;
    let before = rig.logins();
    let broker = rig.broker(&[]).await;
    for event in &events {
        let answer = broker.invoke(event).await;
        assert!(
            !reported_failure(&answer),
            "{} without a crash: {}",
            scenario.key(),
            outcome(&answer)
        );
    }
    broker.shutdown().await;
    rig.end_state().await.assert_good();
    watcher.finish().await.assert_clean();
    Baseline {
        operations: rig.proxy.operations(),
        logins: rig.logins() - before,
    }
}

/// One cell of the matrix.
struct Row {
    call: usize,
    operation: String,
    point: KillPoint,
    recovery: String,
    extra_logins: i64,
    end: String,
    watch: String,
    pass: bool,
}

async fn crash_case(scenario: Scenario, call: usize, point: KillPoint, base: &Baseline) -> Row {
    let rig = Rig::new().await;
    let events = scenario.prepare(&rig).await;
    let watcher = rig.watch().await;
    let before = rig.logins();

    let broker = rig.broker(&[]).await;
    let pid = broker.pid().expect("the broker process has a pid");
    rig.proxy.kill(pid, Call::Nth(call as u64), point);
    let mut died = false;
    let mut answers = Vec::new();
    for event in &events {
        let answer = broker.invoke(event).await;
        if matches!(&answer, Err(InvokeError::Harness(message)) if message.contains("exited")) {
            died = true;
            break;
        }
        answers.push(outcome(&answer));
    }
    broker.shutdown().await;
    let killed_at = rig
        .proxy
        .log()
        .into_iter()
        .find(|r| matches!(r.outcome, Outcome::Killed { .. }))
        .map(|r| r.operation);

    let broker = rig.broker(&[]).await;
    let answer = broker.invoke(&scheduled_event()).await;
    broker.shutdown().await;

    let end = rig.end_state().await;
    let report = watcher.finish().await;
    let extra_logins = i64::from(rig.logins() - before) - i64::from(base.logins);
    let expected_op = base.operations.get(call - 1);
    let operation = match (&killed_at, died) {
        (Some(op), true) if Some(op) == expected_op => op.clone(),
        (Some(op), true) => format!("{op} (expected {expected_op:?})"),
        (_, _) => format!(
            "not killed (expected at {expected_op:?}; answers: {})",
            answers.join(", ")
        ),
    };
    let pass = died
        && killed_at.as_ref() == expected_op
        && !reported_failure(&answer)
        && end.is_good()
        && extra_logins <= 1
        && report.is_clean()
        && report.reads >= MIN_READS;
    Row {
        call,
        operation,
        point,
        recovery: outcome(&answer),
        extra_logins,
        end: end.describe(),
        watch: format!(
            "{} reads, {} violations",
            report.reads,
            report.violations.len()
        ),
        pass,
    }
}

async fn crash_matrix(scenario: Scenario) {
    let base = baseline(scenario).await;
    let cases: Vec<(usize, KillPoint)> = (1..=base.operations.len())
        .flat_map(|call| {
            [KillPoint::BeforeForwarding, KillPoint::AfterApplied].map(|point| (call, point))
        })
        .collect();
    let rows: Vec<Row> = futures::stream::iter(cases)
        .map(|(call, point)| crash_case(scenario, call, point, &base))
        .buffered(PARALLEL)
        .collect()
        .await;

    let mut text = format!(
        "## {}\n\nWithout a crash: {} Secrets Manager calls ({}), {} login(s). Each row: the \
         process is killed at that call, then a new process ticks once.\n\n\
         | call | operation | killed | recovery tick | extra logins | end state | watcher | result |\n\
         |---|---|---|---|---|---|---|---|\n",
        scenario.title(),
        base.operations.len(),
        base.operations.join(", "),
        base.logins,
    );
    for row in &rows {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.call,
            row.operation,
            row.point,
            row.recovery.replace('|', "/"),
            row.extra_logins,
            row.end,
            row.watch,
            if row.pass { "pass" } else { "**FAIL**" }
        ));
    }
    let failed = rows.iter().filter(|r| !r.pass).count();
    text.push_str(&format!(
        "\n{} cases, {} passed, {} failed.\n",
        rows.len(),
        rows.len() - failed,
        failed
    ));
    write_section(
        "crash-matrix",
        "Crash matrix",
        &ORDER,
        scenario.key(),
        &text,
    );
    eprintln!("{text}");
    let failures: Vec<String> = rows
        .iter()
        .filter(|r| !r.pass)
        .map(|r| {
            format!(
                "call {} ({}, {}): recovery {}; {}; {} extra login(s); watcher {}",
                r.call, r.operation, r.point, r.recovery, r.end, r.extra_logins, r.watch
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{failed} of {} crash cases failed:\n{}",
        rows.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_tick_survives_a_crash_at_every_secrets_manager_call() {
    crash_matrix(Scenario::DueTick).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_fill_survives_a_crash_at_every_secrets_manager_call() {
    crash_matrix(Scenario::FirstFill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_manager_rotation_survives_a_crash_at_every_call() {
    crash_matrix(Scenario::SmRotation).await;
}
