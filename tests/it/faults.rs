//! Storms and races: the real broker binary, behind the Lambda Runtime API harness,
//! talks to Secrets Manager through the fault proxy while a watcher reads AWSCURRENT from moto
//! as a consumer would.
//!
//! - Storms: 25 % throttling and 10 % `InternalServiceError` on every Secrets Manager call
//!   (seeded, so one run is reproducible): the broker keeps ticking until the secret is fresh.
//! - Races: two processes on one due secret (tick + tick, tick + operator refresh), and a tick
//!   racing a Secrets-Manager-driven rotation. Neither side may report a failure just because
//!   it lost the race.
//!
//! Every test ends with a good token and a clean watcher. The figures go to
//! `target/fault-reports/storms.md`.

use std::time::Duration;

use crate::support::rig::*;
use crate::support::*;
use iadvize_token_broker::TokenRecord;
use iadvize_token_broker::token::AccessToken;
use standins::LambdaHarness;
use standins::sm_proxy::{ProxyStats, Storm};

const ORDER: [&str; 6] = [
    "storm-due-tick",
    "storm-first-fill",
    "storm-rotation",
    "race-two-brokers",
    "race-two-brokers-spaced",
    "race-tick-rotation",
];

/// A storm ticks at most this often before the secret must be fresh.
const MAX_TICKS: usize = 10;

fn storm(seed: u64) -> Storm {
    Storm::new(seed).throttling(0.25).internal_errors(0.10)
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0 %".into();
    }
    format!("{:.0} %", part as f64 * 100.0 / whole as f64)
}

/// One invocation under a storm: what it reported.
struct Invocation {
    label: String,
    failed: bool,
}

impl Invocation {
    fn of(prefix: &str, answer: &Result<serde_json::Value, standins::InvokeError>) -> Self {
        Invocation {
            label: format!("{prefix}{}", outcome(answer)),
            failed: reported_failure(answer),
        }
    }
}

/// Everything a storm test reports.
struct StormFigures<'a> {
    key: &'a str,
    title: &'a str,
    seed: u64,
    stats: ProxyStats,
    invocations: Vec<Invocation>,
    until_fresh: Option<usize>,
    logins: u32,
    watch: String,
    note: &'a str,
}

impl StormFigures<'_> {
    fn write(&self) -> String {
        let failed = self.invocations.iter().filter(|i| i.failed).count();
        let text = format!(
            "## {}\n\n\
             | seed | Secrets Manager calls failed / total | injected | invocations (failed) | ticks until fresh | logins | watcher |\n\
             |---|---|---|---|---|---|---|\n\
             | {} | {} / {} ({}) | {} throttled, {} × 500 | {} ({failed}) | {} | {} | {} |\n\n\
             {}Invocations, in order: {}.\n",
            self.title,
            self.seed,
            self.stats.failed(),
            self.stats.total,
            percent(self.stats.failed(), self.stats.total),
            self.stats.throttled,
            self.stats.internal_errors,
            self.invocations.len(),
            self.until_fresh
                .map_or("never".to_owned(), |n| n.to_string()),
            self.logins,
            self.watch,
            self.note,
            self.invocations
                .iter()
                .map(|i| i.label.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        );
        write_section("storms", "Storms and races", &ORDER, self.key, &text);
        eprintln!("{text}");
        text
    }
}

/// Ticks one warm process under the storm until the secret is fresh; then, still under the
/// storm, two forced refreshes (the write path again) and two plain ticks.
async fn tick_through_storm(rig: &Rig, broker: &LambdaHarness) -> (Vec<Invocation>, Option<usize>) {
    let mut invocations = Vec::new();
    let mut until_fresh = None;
    for tick in 1..=MAX_TICKS {
        let answer = broker.invoke(&scheduled_event()).await;
        invocations.push(Invocation::of("tick: ", &answer));
        if !reported_failure(&answer) && rig.end_state().await.is_good() {
            until_fresh = Some(tick);
            break;
        }
    }
    if until_fresh.is_some() {
        for event in [
            refresh_event(true),
            refresh_event(true),
            scheduled_event(),
            scheduled_event(),
        ] {
            let prefix = if event.get("action").is_some() {
                "refresh --force: "
            } else {
                "tick: "
            };
            invocations.push(Invocation::of(prefix, &broker.invoke(&event).await));
        }
    }
    (invocations, until_fresh)
}

/// After the storm: one calm tick must leave (or make) the secret fresh.
async fn calm_tick(rig: &Rig, broker: &LambdaHarness) {
    rig.proxy.calm();
    let answer = broker.invoke(&scheduled_event()).await;
    assert!(
        !reported_failure(&answer),
        "calm tick: {}",
        outcome(&answer)
    );
}

async fn storm_on_a_tick(key: &str, title: &str, seed: u64, due: bool) {
    let rig = Rig::new().await;
    if due {
        rig.world.put_record(2).await;
    }
    let watcher = rig.watch().await;
    let before = rig.logins();
    let broker = rig.broker(&[]).await;
    rig.proxy.storm(storm(seed));
    let (invocations, until_fresh) = tick_through_storm(&rig, &broker).await;
    let stats = rig.proxy.stats();
    calm_tick(&rig, &broker).await;
    broker.shutdown().await;
    let end = rig.end_state().await;
    let report = watcher.finish().await;
    let figures = StormFigures {
        key,
        title,
        seed,
        stats,
        invocations,
        until_fresh,
        logins: rig.logins() - before,
        watch: report.to_string(),
        note: "",
    };
    let text = figures.write();
    assert!(
        until_fresh.is_some(),
        "never fresh under the storm:\n{text}"
    );
    end.assert_good();
    report.assert_clean();
    assert!(figures.stats.failed() > 0, "the storm injected nothing");
    // Each invocation that writes logs in once at most.
    assert!(
        figures.logins as usize <= figures.invocations.len(),
        "{} logins for {} invocations",
        figures.logins,
        figures.invocations.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_tick_gets_through_a_secrets_manager_storm() {
    storm_on_a_tick(
        "storm-due-tick",
        "Storm: due tick (25 % throttling + 10 % 500 on every call)",
        7,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_fill_gets_through_a_secrets_manager_storm() {
    storm_on_a_tick(
        "storm-first-fill",
        "Storm: first fill (25 % throttling + 10 % 500 on every call)",
        11,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_manager_rotation_gets_through_a_storm() {
    let seed = 13;
    let rig = Rig::new().await;
    rig.world.put_record(20).await;
    let token = rig.world.start_sm_rotation().await;
    let watcher = rig.watch().await;
    let before = rig.logins();
    let broker = rig.broker(&[]).await;
    rig.proxy.storm(storm(seed));
    // Secrets Manager sends the steps in order and gives up on the first failure; the
    // broker's next tick then resumes the rotation.
    let mut invocations = Vec::new();
    for step in STEPS {
        let answer = broker
            .invoke(&step_event(step, &rig.world.token_id, &token))
            .await;
        let failed = reported_failure(&answer);
        invocations.push(Invocation::of(&format!("{step}: "), &answer));
        if failed {
            break;
        }
    }
    let (ticks, until_fresh) = tick_through_storm(&rig, &broker).await;
    invocations.extend(ticks);
    let stats = rig.proxy.stats();
    calm_tick(&rig, &broker).await;
    broker.shutdown().await;
    let end = rig.end_state().await;
    let report = watcher.finish().await;
    let figures = StormFigures {
        key: "storm-rotation",
        title: "Storm: Secrets-Manager-driven rotation (the step events, then ticks)",
        seed,
        stats,
        invocations,
        until_fresh,
        logins: rig.logins() - before,
        watch: report.to_string(),
        note: "Secrets Manager stops at the first failed step; ticks (resuming a stuck rotation \
               at once) follow. Ticks until fresh: the first tick after the step events that \
               found or made the secret fresh. ",
    };
    let text = figures.write();
    assert!(
        until_fresh.is_some(),
        "never fresh under the storm:\n{text}"
    );
    end.assert_good();
    report.assert_clean();
    assert!(figures.stats.failed() > 0, "the storm injected nothing");
}

/// Two warm broker processes on one secret, each invoked at the same time, `rounds` times,
/// with the production rule for unfinished rotations (resumed after 15 min, not at once).
/// Odd rounds: tick + tick; even rounds: tick + forced operator refresh. Latency on half the
/// calls shuffles how they interleave.
/// With `stagger`, B starts only once A has recorded its login attempt (its first
/// TagResource), so the login spacing holds B back.
async fn two_brokers_race(key: &str, title: &str, extra: &[(&str, &str)], stagger: bool) {
    const ROUNDS: usize = 4;
    let rig = Rig::new().await;
    // Races are not about iAdvize's rate limits (the setup logs in each round too).
    rig.world.standin.set_rate_limits(1000, 1000);
    rig.world.put_record(2).await;
    let watcher = rig.watch().await;
    // The broker's logins, not the setup's (put_record logs in too).
    let mut logins = 0;
    let (a, b) = tokio::join!(rig.broker(extra), rig.broker(extra));
    rig.proxy
        .storm(Storm::new(3).latency(0.5, Duration::from_millis(15)));
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=ROUNDS {
        if round > 1 {
            // Due again, and (for the spaced variant) as if the spacing had passed.
            rig.world.put_record(2).await;
            untag(&rig, "iadvize:last-login-attempt").await;
        }
        let second = if round % 2 == 0 {
            refresh_event(true)
        } else {
            scheduled_event()
        };
        let tick = scheduled_event();
        let round_start = rig.logins();
        let tags_before = rig.proxy.completed("TagResource");
        let late_b = async {
            if stagger {
                let limit = tokio::time::Instant::now() + Duration::from_secs(10);
                while rig.proxy.completed("TagResource") == tags_before
                    && tokio::time::Instant::now() < limit
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            b.invoke(&second).await
        };
        let (first, second) = tokio::join!(a.invoke(&tick), late_b);
        logins += rig.logins() - round_start;
        let line = format!(
            "round {round}: A tick → {}; B {} → {}",
            outcome(&first),
            if round % 2 == 0 {
                "refresh --force"
            } else {
                "tick"
            },
            outcome(&second)
        );
        if reported_failure(&first) || reported_failure(&second) {
            failures.push(line.clone());
        }
        lines.push(line);
    }
    rig.proxy.calm();
    a.shutdown().await;
    b.shutdown().await;
    let end = rig.end_state().await;
    let report = watcher.finish().await;
    let text = format!(
        "## {title}\n\n{}\n\nLogins: {logins} in {ROUNDS} rounds (at most 2 per round). End: {}. Watcher: {report}.\n",
        lines
            .iter()
            .map(|l| format!("- {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        end.describe()
    );
    write_section("storms", "Storms and races", &ORDER, key, &text);
    eprintln!("{text}");
    end.assert_good();
    report.assert_clean();
    assert!(logins as usize <= 2 * ROUNDS, "{logins} logins");
    assert!(
        failures.is_empty(),
        "an invocation reported a failure for losing a race:\n{}",
        failures.join("\n")
    );
}

async fn untag(rig: &Rig, key: &str) {
    rig.world
        .sm
        .untag_resource()
        .secret_id(&rig.world.token_id)
        .tag_keys(key)
        .send()
        .await
        .expect("untag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_racing_on_one_due_secret_both_report_success() {
    two_brokers_race(
        "race-two-brokers",
        "Race: two broker processes on one due secret (no login spacing)",
        &[("IADVIZE_STUCK_ROTATION_AFTER", "15m")],
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_held_back_by_the_login_spacing_is_not_a_failure() {
    two_brokers_race(
        "race-two-brokers-spaced",
        "Race: two broker processes on one due secret, login spacing 10 s, B starts once A \
         recorded its login attempt",
        &[
            ("IADVIZE_MIN_LOGIN_INTERVAL", "10s"),
            ("IADVIZE_STUCK_ROTATION_AFTER", "15m"),
        ],
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_racing_a_secrets_manager_rotation_does_not_fail() {
    const ROUNDS: usize = 4;
    let rig = Rig::new().await;
    rig.world.standin.set_rate_limits(1000, 1000);
    rig.world.put_record(2).await;
    let watcher = rig.watch().await;
    let mut logins = 0;
    // The tick resumes any unfinished rotation at once (stuck after 0 s), so both work on
    // the same version: the tightest race there is.
    let (steps, ticks) = tokio::join!(rig.broker(&[]), rig.broker(&[]));
    rig.proxy
        .storm(Storm::new(5).latency(0.5, Duration::from_millis(15)));
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=ROUNDS {
        if round > 1 {
            rig.world.put_record(2).await;
        }
        let token = rig.world.start_sm_rotation().await;
        let round_start = rig.logins();
        let rotation = async {
            let mut outcomes = Vec::new();
            for step in STEPS {
                let answer = steps
                    .invoke(&step_event(step, &rig.world.token_id, &token))
                    .await;
                outcomes.push((step, reported_failure(&answer), outcome(&answer)));
            }
            outcomes
        };
        let tick = scheduled_event();
        let (rotation, tick) = tokio::join!(rotation, ticks.invoke(&tick));
        logins += rig.logins() - round_start;
        let steps_text: Vec<String> = rotation
            .iter()
            .map(|(step, _, outcome)| format!("{step} {outcome}"))
            .collect();
        let line = format!(
            "round {round}: steps → {}; tick → {}",
            steps_text.join(", "),
            outcome(&tick)
        );
        if reported_failure(&tick) || rotation.iter().any(|(_, failed, _)| *failed) {
            failures.push(line.clone());
        }
        lines.push(line);
    }
    rig.proxy.calm();
    steps.shutdown().await;
    ticks.shutdown().await;
    let end = rig.end_state().await;
    let report = watcher.finish().await;
    let text = format!(
        "## Race: a tick (resuming at once) against the four step events of a Secrets Manager rotation\n\n{}\n\nLogins: {logins} in {ROUNDS} rounds. End: {}. Watcher: {report}.\n",
        lines
            .iter()
            .map(|l| format!("- {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        end.describe()
    );
    write_section(
        "storms",
        "Storms and races",
        &ORDER,
        "race-tick-rotation",
        &text,
    );
    eprintln!("{text}");
    end.assert_good();
    report.assert_clean();
    assert!(logins as usize <= 2 * ROUNDS, "{logins} logins");
    assert!(
        failures.is_empty(),
        "an invocation reported a failure for losing a race:\n{}",
        failures.join("\n")
    );
}

/// The watcher is the suite's judge: it must catch each kind of bad value a consumer could
/// trip on, and say nothing before the first fill.
#[tokio::test]
async fn the_watcher_reports_every_kind_of_bad_token() {
    let rig = Rig::new().await;
    let watcher = rig.watch().await;
    watcher.wait_for_more_reads(2).await;

    rig.world.put_record(20).await;
    watcher.wait_for_more_reads(2).await;
    rig.world.put_current("not a record").await;
    watcher.wait_for_more_reads(2).await;
    let now = time::OffsetDateTime::now_utc();
    let expired = TokenRecord::new(
        AccessToken::new(rig.world.login_directly().await),
        now - time::Duration::hours(25),
        86400,
    );
    rig.world.put_current(&expired.to_json()).await;
    watcher.wait_for_more_reads(2).await;
    let forged = TokenRecord::new(AccessToken::new("forged-token-value"), now, 86400);
    rig.world.put_current(&forged.to_json()).await;
    watcher.wait_for_more_reads(2).await;
    rig.world.standin.revoke_all_tokens();
    rig.world.put_record(20).await; // issued after the revocation: good again
    watcher.wait_for_more_reads(2).await;
    let report = watcher.finish().await;

    assert!(report.unfilled_reads >= 2, "{report}");
    let reasons: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect();
    let saw = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    assert!(saw("not a token record"), "{report}");
    assert!(saw("expired"), "{report}");
    assert!(saw("does not accept"), "{report}");
    assert_eq!(report.versions_seen, 5, "{report}");
    let last = report.violations.last().expect("violations").read;
    assert!(
        last < report.reads,
        "the last value read was good: {report}"
    );
    let text = report.to_string();
    assert!(!text.contains("forged-token-value"), "no token in reports");
}
